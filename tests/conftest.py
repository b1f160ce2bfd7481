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
def run_script(workdir):
    """Run ``run_recbole_hetcomp.py ARGS`` in this process; return (exit code, result JSON or None)."""
    sys.path.insert(0, REPO)
    import run_recbole_hetcomp

    def run(*args):
        result_file = workdir / "result.json"
        if result_file.exists():
            result_file.unlink()
        code = run_recbole_hetcomp.main([*QUICK, f"--result_file={result_file}", *args])
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


def write_tiny_dataset(folder, name="tiny", n_users=60, n_items=90, per_user=14, seed=0):
    """Write a small clustered implicit dataset in RecBole atomic format; return data_path.

    Users of cluster c mostly pick items of cluster c, so every model has something to learn.
    """
    import random

    rng = random.Random(seed)
    clusters = 3
    rows = []
    for u in range(1, n_users + 1):
        c = u % clusters
        own = [i for i in range(1, n_items + 1) if i % clusters == c]
        chosen = set(rng.sample(own, min(per_user - 2, len(own))))
        while len(chosen) < per_user:
            chosen.add(rng.randint(1, n_items))
        rows += [f"u{u}\ti{i}" for i in sorted(chosen)]
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.inter").write_text("user_id:token\titem_id:token\n" + "\n".join(rows) + "\n")
    return str(folder)


@pytest.fixture
def tiny(tmp_path, workdir):
    """config_dict entries that point RecBole at a freshly written tiny dataset (cwd: tmp_path)."""
    data_path = write_tiny_dataset(tmp_path / "data")
    return {
        "dataset": "tiny",
        "data_path": data_path,
        "show_progress": False,
        "state": "WARNING",
        "trajectory_dir": str(tmp_path / "trajectories"),
        "checkpoint_dir": str(tmp_path / "saved"),
    }


def write_sparse_dataset(folder, name="sparse", n_users=300, n_items=3000, per_user=15, clusters=10, own=0.85, seed=0):
    """Write a sparse, large-catalogue implicit dataset (0.5% dense by default); return data_path.

    Users and items fall into ``clusters`` groups; a user takes about ``own`` of its items
    from its group (popular ones more often: weight 1/(rank+5) within the group) and the
    rest uniformly from the catalogue. The groups are what a working model learns; the
    popularity ranking sees only the within-group popularity (valid NDCG@20 0.02 against
    0.08-0.15 for ItemAE and EASE under the paper's protocol).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    items = np.arange(1, n_items + 1)
    rows = []
    for u in range(1, n_users + 1):
        group = items[items % clusters == u % clusters]
        weight = 1.0 / (np.arange(len(group)) + 5.0)
        chosen = set(rng.choice(group, rng.binomial(per_user, own), replace=False, p=weight / weight.sum()).tolist())
        while len(chosen) < per_user:
            chosen.add(int(rng.integers(1, n_items + 1)))
        rows += [f"u{u}\ti{i}" for i in sorted(chosen)]
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.inter").write_text("user_id:token\titem_id:token\n" + "\n".join(rows) + "\n")
    return str(folder)


def one_line_error(proc):
    """The single stderr line of a command that failed with a user error (exit 2, no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def split_and_model(config_dict, model="BPR", build=True):
    """Config and RecBole splits of ``config_dict['dataset']``, as a run builds them; with
    ``build``, also a fresh ``model`` and its trainer (a student needs its teachers recorded).

    Returns:
        tuple: ``(config, (train, valid, test))``, plus ``model, trainer`` when ``build``.
    """
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.checks import check_student_seed
    from recbole_hetcomp.config import Config
    from recbole_hetcomp.quick_start import seed_model
    from recbole_hetcomp.utils import get_model, get_trainer

    config = Config(model=model, dataset=config_dict["dataset"], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    splits = data_preparation(config, create_dataset(config))
    if not build:
        return config, splits
    seed_model(config, splits[0], check_student_seed(config))  # as a run seeds the model it builds
    net = get_model(model)(config, splits[0].dataset).to(config["device"])  # as the pipeline: on a GPU if one is visible
    return config, splits, net, get_trainer(config["MODEL_TYPE"], model)(config, net)
