"""RecBole 1.2.1 on today's numpy, scipy and pandas: each patch in compat.py, and the install route.

The expectations are RecBole's own behaviour on the stack it was written for (numpy 1,
scipy < 1.13, pandas 2), so the same tests pass on old and new releases alike.
"""

import ast
import configparser
import os
import re
import subprocess
import sys
import warnings
from importlib.metadata import packages_distributions

import numpy as np
import pytest
import recbole
import scipy.sparse as sp
from recbole.data import create_dataset
from recbole.utils import init_seed

from recbole_hetcomp.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(model="BPR", **config_dict):
    return Config(model=model, config_dict={"show_progress": False, "state": "WARNING", **config_dict})


def test_config_sets_recbole_numpy_aliases(tiny):
    _config(**tiny)
    # RecBole's metrics, dataset and layers still write dtype=np.float / np.long / np.bool.
    assert np.zeros(2, dtype=np.float).dtype == np.float64
    assert np.zeros(2, dtype=np.long).dtype == np.int64
    assert np.full(2, True, dtype=np.bool).dtype == np.bool_
    from recbole.evaluator.metrics import NDCG

    pos_index = np.array([[True, False, True]])
    ndcg = NDCG(_config(**tiny)).metric_info(pos_index, np.array([2]))
    assert ndcg[0, -1] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))


def test_dok_matrix_update_fills_entries(tiny):
    _config(**tiny)
    matrix = sp.dok_matrix((2, 3), dtype=np.float32)
    matrix._update({(0, 1): 1.0, (1, 2): 3.0})
    assert matrix.toarray().tolist() == [[0, 1, 0], [0, 0, 3]]


def test_lightgcn_builds_its_normalised_adjacency(tiny):
    # LightGCN fills its (users + items) square adjacency with dok_matrix._update.
    from recbole.data import data_preparation
    from recbole.model.general_recommender import LightGCN

    config = _config("LightGCN", **tiny)
    init_seed(config["seed"], config["reproducibility"])
    train = data_preparation(config, create_dataset(config))[0]._dataset
    model = LightGCN(config, train)
    inter = train.inter_matrix(form="coo").astype(np.float32).toarray()
    n_users, n_items = inter.shape
    adjacency = np.zeros((n_users + n_items, n_users + n_items), dtype=np.float32)
    adjacency[:n_users, n_users:] = inter
    adjacency[n_users:, :n_users] = inter.T
    degree = adjacency.sum(axis=1) + 1e-7
    expected = adjacency / np.sqrt(degree)[:, None] / np.sqrt(degree)[None, :]
    assert np.allclose(model.norm_adj_matrix.to_dense().numpy(), expected, atol=1e-6)


def _write_gappy_dataset(folder):
    """Atomic files with an empty cell in each kind of column; return data_path."""
    path = folder / "gappy"
    path.mkdir(parents=True)
    (path / "gappy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\tcity:token\n"
        "1\t1\t4.0\ta\n1\t2\t\tb\n2\t1\t2.0\t\n2\t3\t3.0\ta\n3\t2\t5.0\tb\n3\t3\t1.0\tc\n"
    )
    (path / "gappy.item").write_text(
        "item_id:token\tgenre:token_seq\tscores:float_seq\tprice:float\n"
        "1\tx y\t0.5 1.5\t1.0\n2\t\t\t\n3\ty\t2.0\t3.0\n"
    )
    return str(folder)


def test_dataset_fills_missing_values_and_remaps_sequences(tmp_path, workdir):
    data_path = _write_gappy_dataset(tmp_path / "data")
    config = _config(dataset="gappy", data_path=data_path, load_col=None, normalize_all=False)
    dataset = create_dataset(config)
    inter, item = dataset.inter_feat, dataset.item_feat  # DataFrames until data_preparation
    # Missing float: the column mean; missing token: [PAD] (id 0).
    assert inter["rating"].tolist() == pytest.approx([4.0, 3.0, 2.0, 3.0, 5.0, 1.0])
    assert dataset.id2token("city", inter["city"].to_numpy()).tolist() == ["a", "b", "[PAD]", "a", "b", "c"]
    # Item rows are in id order; row 0 is RecBole's padding item.
    assert dataset.id2token("item_id", item["item_id"].to_numpy()).tolist() == ["[PAD]", "1", "2", "3"]
    # token_seq ids map back to the file's tokens; empty cells and the padding row are empty.
    assert [dataset.id2token("genre", ids).tolist() for ids in item["genre"]] == [[], ["x", "y"], [], ["y"]]
    assert [scores.tolist() for scores in item["scores"]] == [[], [0.5, 1.5], [], [2.0]]
    assert item["price"][1:].tolist() == pytest.approx([1.0, 2.0, 3.0])


def test_plugin_never_imports_ray(workdir):
    # On Python >= 3.12 ray (RecBole's quick_start) is not installed at all: a whole run,
    # model lookup included, must not reach it.
    code = (
        "import sys\n"
        "from recbole_hetcomp.quick_start import run_recbole_hetcomp\n"
        "from recbole_hetcomp.utils import get_model, get_trainer\n"
        "get_model('LightGCN'), get_trainer('general', 'HetComp')\n"
        "run_recbole_hetcomp(model='BPR', dataset='ml-100k', config_dict={'epochs': 1, 'show_progress': False,"
        " 'state': 'WARNING', 'use_gpu': False}, saved=False)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'ray' or m.startswith('recbole.quick_start'))\n"
        "print('leaked:', leaked)\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "leaked: []" in proc.stdout


def _module_level_imports(path):
    """Top-level names imported at module level (not inside functions) by one source file."""
    names = set()
    with warnings.catch_warnings():
        # Some RecBole docstrings hold invalid escapes ("\\p"): Python >= 3.12 warns on parsing.
        warnings.simplefilter("ignore", SyntaxWarning)
        tree = ast.parse(open(path, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def _declared_requirements():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    lines = parser["options"]["install_requires"].splitlines()
    names = {re.match(r"[A-Za-z0-9_.-]+", line).group().lower() for line in lines if line.strip() and not line.strip().startswith("#")}
    return {name.replace("_", "-") for name in names}


def test_setup_cfg_lists_what_recbole_imports():
    # setup.cfg replaces RecBole's requirements on Python >= 3.12 (--no-deps install):
    # every third-party module RecBole's modules import at load time must come from it.
    # Skipped like there: quick_start (ray), exlib models (lightgbm/xgboost), imports inside
    # functions (thop, psutil, plotly: get_flops, get_environment, hyper-parameter tuning).
    root = os.path.dirname(recbole.__file__)
    modules = set()
    for folder, _, files in os.walk(root):
        if "quick_start" in folder or "exlib_recommender" in folder:
            continue
        for name in files:
            if name.endswith(".py") and name != "hyper_tuning.py":
                modules |= _module_level_imports(os.path.join(folder, name))
    # torch.utils.tensorboard is torch's module, but needs the tensorboard distribution.
    tops = {m.split(".")[0] for m in modules} | ({"tensorboard"} if "torch.utils.tensorboard" in modules else set())
    tops -= set(sys.stdlib_module_names) | {"recbole", "__future__"}
    owners = packages_distributions()
    needed = {owners[top][0].lower() for top in tops}
    assert needed, "no third-party import found: the scan is broken"
    missing = needed - _declared_requirements()
    assert not missing, f"RecBole imports {sorted(missing)}, not listed in setup.cfg's install_requires"


@pytest.mark.skipif(int(__import__("pandas").__version__.split(".")[0]) < 3, reason="pandas < 3 normalises float_seq")
def test_float_seq_normalisation_on_pandas3_names_the_way_out(tmp_path, workdir):
    from recbole_hetcomp.errors import ConfigError

    config = _config(dataset="gappy", data_path=_write_gappy_dataset(tmp_path / "data"), load_col=None, normalize_all=True)
    with pytest.raises(ConfigError, match="float_seq field.*scores.*normalize_all: False"):
        create_dataset(config)


def test_runs_keep_freed_memory_of_their_batch_size_unless_told_not_to(tiny, monkeypatch):
    # glibc unmaps each freed block above 32 MB and page-faults it in again every batch
    # (compat notes): a run lifts that limit to its own batch blocks; the key turns it off.
    import platform

    from recbole_hetcomp import compat
    from recbole_hetcomp.quick_start import run_recbole_hetcomp

    libc, version = platform.libc_ver()
    # measured on glibc 2.36; older builds may cap the threshold at 32 MB and refuse
    settable = platform.system() == "Linux" and libc == "glibc" and tuple(map(int, version.split("."))) >= (2, 35)
    assert compat.keep_freed_cpu_memory(16 << 20) is None  # glibc already reuses these
    threshold = compat.keep_freed_cpu_memory(64 << 20)  # process-wide from here on (harmless)
    assert threshold == (65 << 20) if settable else threshold in (None, 65 << 20)
    calls = []
    monkeypatch.setattr(compat, "keep_freed_cpu_memory", calls.append)
    for keep in (True, False):
        run_recbole_hetcomp(model="Pop", dataset="tiny",
                            config_dict={**tiny, "cpu_keep_freed_memory": keep, "train_batch_size": 512})
    assert calls == [512 * 91 * 8]  # batch x items (tiny: 90 + padding) x 8 bytes, once
