"""Shared helpers: run the command-line script in-process or as a user would."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "run_recbole_hetcomp.py")

# Small, fast settings every test run adds unless it overrides them.
QUICK = ["--show_progress=False", "--state=WARNING"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch working directory: RecBole writes log/, saved/, log_tensorboard/ into the cwd."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_script(workdir, monkeypatch):
    """Run ``run_recbole_hetcomp.py ARGS`` in this process; return (exit code, result JSON or None)."""
    sys.path.insert(0, REPO)
    import run_recbole_hetcomp

    def run(*args):
        result_file = workdir / "result.json"
        if result_file.exists():
            result_file.unlink()
        argv = ["run_recbole_hetcomp.py", *QUICK, f"--result_file={result_file}", *args]
        monkeypatch.setattr(sys, "argv", argv)
        code = run_recbole_hetcomp.main(argv[1:])
        payload = json.loads(result_file.read_text()) if result_file.exists() else None
        return code, payload

    yield run
    sys.path.remove(REPO)


@pytest.fixture
def run_cli(workdir):
    """Run the script as a separate process, as a user types it; return CompletedProcess."""

    def run(*args, timeout=300):
        return subprocess.run(
            [sys.executable, SCRIPT, *QUICK, *args],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
