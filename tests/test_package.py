"""The plugin as a package: built, installed without -e, run as a user runs it.

The property files live in the repository's top-level properties/ folder; setup.py copies
them into the built package. These tests build an sdist and wheels offline with this
environment's setuptools (setup.cfg's `test` extra asks for one that needs no `wheel`
package), install a wheel into a folder of its own and run models from another folder.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

from recbole_hetcomp.config import Config
from recbole_hetcomp.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a build reads; copied so that building leaves nothing (build/, *.egg-info) in the checkout.
BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "properties", "recbole_hetcomp")
QUICK = ["--show_progress=False", "--state=WARNING", "--epochs=1"]


def _check(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _property_files():
    root = os.path.join(REPO, "properties")
    return sorted(
        "recbole_hetcomp/properties/" + os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/")
        for folder, _, files in os.walk(root) for f in files if f.endswith(".yaml")
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """An sdist, a wheel built from the tree (as `pip install .`), one from the sdist, the
    tree's wheel installed (no -e) into site/; returns their paths."""
    root = tmp_path_factory.mktemp("package")
    src = root / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    # The PEP 517 hook that `python -m build --sdist --no-isolation` calls.
    hook = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    sdist = root / "sdist" / _check([sys.executable, "-c", hook, str(root / "sdist")], cwd=src).stdout.split()[-1]
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir"]
    _check([*pip_wheel, "-w", str(root / "from-tree"), str(src)])
    _check([*pip_wheel, "-w", str(root / "from-sdist"), str(sdist)])
    (wheel,) = (root / "from-tree").glob("*.whl")
    (sdist_wheel,) = (root / "from-sdist").glob("*.whl")
    site = root / "site"
    _check([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--target", str(site), str(wheel)])
    return {"sdist": sdist, "wheel": wheel, "sdist_wheel": sdist_wheel, "site": site}


def _run_installed(package, tmp_path, cmd):
    """Run ``cmd`` in an empty folder with the installed copy first on the path."""
    env = dict(os.environ, PYTHONPATH=str(package["site"]), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_and_sdist_carry_the_property_files(package):
    wanted = _property_files()
    assert "recbole_hetcomp/properties/overall.yaml" in wanted
    assert "recbole_hetcomp/properties/model/HetComp.yaml" in wanted
    assert "recbole_hetcomp/properties/protocol/hetcomp-paper.yaml" in wanted
    with zipfile.ZipFile(package["wheel"]) as whl:
        names = whl.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "recbole-hetcomp = recbole_hetcomp.cli:main" in whl.read(entry_points).decode()
    assert sorted(n for n in names if n.startswith("recbole_hetcomp/properties/")) == wanted
    assert "recbole_hetcomp/__main__.py" in names
    with tarfile.open(package["sdist"]) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        assert f"{top}/properties/overall.yaml" in sdist.getnames()
    # A wheel built from the sdist (pip's route for an sdist from an index) is the same.
    with zipfile.ZipFile(package["sdist_wheel"]) as whl:
        assert sorted(whl.namelist()) == sorted(names)


def test_installed_wheel_runs_a_model_from_another_folder(package, tmp_path):
    where = _run_installed(package, tmp_path, [
        sys.executable, "-c",
        "import recbole_hetcomp, recbole_hetcomp.resources as r; print(recbole_hetcomp.__file__); print(r.PROPERTIES_DIR)",
    ])
    module_file, properties_dir = where.stdout.split("\n")[:2]
    assert module_file.startswith(str(package["site"])), where.stdout + where.stderr
    assert properties_dir == os.path.join(str(package["site"]), "recbole_hetcomp", "properties")

    proc = _run_installed(package, tmp_path, [
        sys.executable, "-m", "recbole_hetcomp", "--model=BPR", "--dataset=ml-100k", *QUICK, "--result_file=bpr.json",
    ])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "bpr.json").read_text())
    # @50 is in the packaged overall.yaml's topk, not in RecBole's default [10].
    assert result["model"] == "BPR" and result["test_result"]["ndcg@50"] > 0


def test_console_command_runs_a_shipped_protocol_by_name(package, tmp_path):
    command = package["site"] / "bin" / "recbole-hetcomp"
    proc = _run_installed(package, tmp_path, [
        str(command), "--model=BPR", "--dataset=ml-100k", "--config_files=hetcomp-paper.yaml", *QUICK,
        "--result_file=bpr.json",
    ])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "bpr.json").read_text())
    assert result["config"]["eval_args"]["split"] == {"RS": [0.6, 0.2, 0.2]}
    assert result["test_result"]["recall@20"] > 0


def test_help_and_package_import_load_neither_recbole_nor_torch():
    code = (
        "import sys, recbole_hetcomp, recbole_hetcomp.cli, recbole_hetcomp.resources\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'recbole', 'torch'})\n"
        "assert not heavy, heavy\n"
    )
    _check([sys.executable, "-c", code], cwd=REPO)
    usage = _check([sys.executable, "-m", "recbole_hetcomp", "--help"], cwd=REPO).stdout
    assert usage.startswith("usage: python -m recbole_hetcomp") and "--config_files" in usage


# --- shipped protocols by name, from a checkout ---------------------------------------------
def test_bare_protocol_name_reads_the_shipped_protocol(workdir):
    config = Config(model="BPR", dataset="ml-100k", config_file_list=["hetcomp-paper.yaml"])
    assert config["eval_args"]["split"] == {"RS": [0.6, 0.2, 0.2]}
    assert config["user_inter_num_interval"] == "[5,inf)"


def test_file_of_that_name_in_the_working_directory_wins(workdir):
    (workdir / "hetcomp-paper.yaml").write_text("topk: [5]\n")
    config = Config(model="BPR", dataset="ml-100k", config_file_list=["hetcomp-paper.yaml"])
    assert config["topk"] == [5]
    assert config["eval_args"]["split"] == {"RS": [0.8, 0.1, 0.1]}


def test_unknown_bare_name_lists_the_shipped_protocols(workdir):
    with pytest.raises(ConfigError, match=r"config file nope\.yaml does not exist.*"
                                          r"shipped protocols, usable by name: citeulike-a-teachers\.yaml, hetcomp-paper\.yaml, "
                                          r"hetcomp-reference\.yaml"):
        Config(model="BPR", dataset="ml-100k", config_file_list=["nope.yaml"])
