"""Every patch this plugin needs to run RecBole 1.2.1 on today's stack, in one place.

RecBole 1.2.1 (Feb 2025, the newest release) predates numpy 2, scipy 1.13, pandas 3 and
torch 2.6; each break below is patched here rather than pinned away, so the plugin runs on
today's releases (README "Install" lists the measured combinations). :func:`patch_stack`
applies the library patches; our ``Config`` calls it where RecBole applies its own.

* numpy >= 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, which RecBole's
  ``Config.compatibility_settings`` reads to re-create the aliases ``np.float``,
  ``np.complex``, ``np.unicode``, ``np.str``, ``np.object``, ``np.int`` (dropped in numpy
  1.24) that RecBole's metrics, dataset and layers still use: every ``Config()`` fails.
  Upstream: RecBole issue #2215 (open), PR #2203 (closed unmerged). Fix:
  :func:`_numpy_aliases` sets the same aliases from the names numpy 2 still has.
* scipy 1.13 removed ``dok_matrix._update``, with which LightGCN, NGCF, NCL, GCMC,
  SpectralCF (and the knowledge-aware models) fill their adjacency matrix. Upstream:
  RecBole issue #2034 (open). Fix: :func:`_scipy_dok_update` restores the method (a plain
  update of the matrix's key -> value dict, as it was).
* pandas 3 made copy-on-write the only mode (pandas PR #56064 warned of it for
  ``fillna(inplace=True)``) and stopped ``Series.agg(func)`` from applying ``func`` element
  by element. RecBole's ``Dataset._fill_nan`` calls ``df[field].fillna(..., inplace=True)``,
  which now fills a copy: missing token and float values silently stay NaN; ``_remap`` splits
  ``token_seq`` ids at ``np.cumsum(df[field].agg(len))``, now one number: loading any
  ``token_seq`` field fails with "Length of values (1) does not match length of index";
  ``_load_feat``'s ``fillna("", inplace=True)`` on sequence columns fills nothing, so one
  empty ``token_seq``/``float_seq`` cell fails with "'float' object has no attribute
  'split'". No upstream issue found. Fix: :func:`_pandas_dataset` replaces ``_fill_nan``
  and ``_remap`` by ones that assign the filled column and take per-row lengths with
  ``map(len)``, and gives RecBole's dataset module a ``read_csv`` that returns empty
  sequence cells as ``""`` (what its ``fillna`` meant to do). Not patched (measured, none
  used by this plugin's models): normalising or discretising ``float_seq`` fields, knowledge
  graph datasets' sequence remapping and sequential datasets' benchmark files take lengths
  the same way and fail on pandas 3; normalising a ``float_seq`` field stops with a
  ConfigError naming the way out (``normalize_all: False`` or ``pandas<3``).
* Python >= 3.12: RecBole requires ``ray<=2.6.3``, which has no wheel there, so
  ``pip install recbole==1.2.1`` fails; ray is imported only by ``recbole.quick_start``
  (hyper-parameter tuning), which this plugin never imports. README's Python 3.12 route
  installs RecBole with ``--no-deps`` and its import-time needs from setup.cfg.
  Upstream: issue #1820 (open) is about RecBole's ray range; none about Python 3.12.

* torch >= 2.6 defaults ``torch.load(weights_only=True)``, whose unpickler rejects the
  checkpoints RecBole itself writes (pickled ``Config`` inside, protocol 4), so every
  ``Trainer.evaluate(load_best_model=True)`` and ``resume_checkpoint`` fails with
  "Unsupported operand 149". Upstream: RecBole issue #2212 and PR #2219 (open) report
  the same default change for NeuMF's pretrain loading. Fix: :func:`load_own_checkpoint`
  loads a checkpoint file this program wrote with ``weights_only=False``; the plugin's
  trainers (:mod:`recbole_hetcomp.trainer.base`) load through it and hand RecBole an
  already-loaded model. The relaxed loader is never used on a file this program did not
  write, and never switched on process-wide.
* Distributed training (RecBole's ``nproc``) hard-codes NCCL and CUDA devices and passes
  ``device_ids`` to DDP, so it cannot run on a machine without GPUs; each rank names its
  best checkpoint after its own clock, so ranks > 0 look for a file nobody wrote; and
  ``_map_reduce`` weights each rank's metrics by its number of *batches* (``len`` of the
  4-tuple each batch is), not of users. Upstream: no issue found for the CPU and file-name
  problems; PR #1872 (closed) discussed how RecBole combines metrics across ranks.
  :func:`init_distributed_device` (used by our Config) and :func:`patch_recbole_ddp` fix
  the first (gloo on CPU, NCCL on GPUs unchanged); the plugin's trainers
  (:mod:`recbole_hetcomp.trainer.base`) broadcast rank 0's file name to all ranks and
  weight metrics by evaluated users. DDP's default re-sends every module buffer from rank 0
  before each forward: the students' large, rank-identical buffers made an ml-1m epoch on 2
  processes 10x slower; :func:`patch_recbole_ddp` keeps that only for models with
  normalisation layers. RecBole's ``ensure_dir``
  (exists-then-create) races between ranks starting together (``FileExistsError: ./log``):
  see the next point.
* Runs started side by side in one working folder (``bench_compare.py --jobs``, several
  shells, distributed ranks) collide on RecBole's files: ``ensure_dir`` (exists, then
  create) raises ``FileExistsError: './log/<model>'`` in whichever run loses the race; the
  log file is named after model, dataset, the *second* the run started and a hash of the
  config, so two runs of one config started in the same second write into one file; the
  TensorBoard folder is named after that log file, and the best checkpoint after model and
  second. Upstream: no RecBole issue found for any of these. :func:`init_logger` (used
  instead of RecBole's) and :func:`patch_for_concurrent_runs` fix them: ``ensure_dir``
  becomes ``os.makedirs(exist_ok=True)`` everywhere, the log file's time stamp carries the
  process id, each trainer claims its own TensorBoard folder with an atomic ``mkdir`` (``-2``,
  ``-3``, ... when the name is taken), and each checkpoint name carries the process id and
  is never handed out twice in one process.
* RecBole's ``init_logger`` installs its console and file handlers with
  ``logging.basicConfig``, which does nothing once the root logger has handlers: every run
  after the first in a process (each teacher a student's run trains, each test) logs into
  the first run's file and leaves its own log file empty. Its console shows everything the
  file holds (the whole config for every model, three lines per epoch, a line per
  checkpoint save: about 5,200 lines for the main job). Upstream: no RecBole issue found.
  :func:`init_logger` attaches each run's own file handler (a teacher's run detaches its
  student's, :func:`nested_run_log` puts it back) and one console handler per process
  that shows what :mod:`recbole_hetcomp.console` keeps.
* PyTorch allocates CPU tensors with the C library's allocator (vendoring jemalloc was
  proposed, pytorch/pytorch#55675, closed unmerged). glibc serves every block above its
  mmap threshold (adaptive, at most 32 MB) from a fresh mapping and unmaps it when freed,
  so each batch's full-catalogue score blocks (about 60 MB on citeulike-a's 17k items)
  page-fault in again every batch: about half of a student epoch there was kernel time.
  :func:`keep_freed_cpu_memory` (key ``cpu_keep_freed_memory``), called before each run's
  training, lifts the mmap threshold just above the run's largest batch block (and the trim
  threshold to 2 GB) with ``mallopt``, so those blocks are reused: 1.8x faster student
  epochs on citeulike-a, the same numbers (docs/scale.md). Catalogues whose batch blocks fit
  under glibc's own 32 MB ceiling (ml-1m) are left alone: raising the thresholds there
  gained nothing and added 270 MB of peak memory. Linux with glibc only.
"""

import ctypes
import hashlib
import logging
import os
import platform
import re
from contextlib import contextmanager

import numpy as np
import torch


def _version(module):
    """``(major, minor)`` of a module's ``__version__`` ("3.0.0rc1" -> (3, 0))."""
    return tuple(int(re.match(r"\d*", part).group() or 0) for part in module.__version__.split(".")[:2])


def _numpy_aliases():
    # RecBole's compatibility_settings, with numpy 2's names for what numpy 2 removed.
    aliases = {
        "bool": np.bool_, "int": np.int_, "float": np.float64, "complex": np.complex128,
        "object": np.object_, "str": np.str_, "long": np.int_, "unicode": np.str_,
    }
    for name, value in aliases.items():
        setattr(np, name, value)


def _scipy_dok_update():
    import scipy.sparse as sp

    if hasattr(sp.dok_matrix, "_update"):
        return

    def _update(self, data):
        # What scipy < 1.13 did: no checks, the caller passes valid (row, col) -> value.
        self._dict.update(data)

    sp.dok_matrix._update = _update


def _fill_nan(self):
    """RecBole's ``Dataset._fill_nan`` that assigns the filled columns (pandas 3)."""
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x)


def _remap(self, remap_list):
    """RecBole's ``Dataset._remap`` with per-row sequence lengths taken by ``map(len)`` (pandas 3)."""
    import pandas as pd
    from recbole.utils import FeatureType

    if len(remap_list) == 0:
        return
    tokens, split_point = self._concat_remaped_tokens(remap_list)
    new_ids_list, mp = pd.factorize(tokens)
    new_ids_list = np.split(new_ids_list + 1, split_point)
    mp = np.array(["[PAD]"] + list(mp))
    token_id = {t: i for i, t in enumerate(mp)}
    for (feat, field, ftype), new_ids in zip(remap_list, new_ids_list):
        if field not in self.field2id_token:
            self.field2id_token[field] = mp
            self.field2token_id[field] = token_id
        if ftype == FeatureType.TOKEN:
            feat[field] = new_ids
        elif ftype == FeatureType.TOKEN_SEQ:
            lengths = feat[field].map(len).to_numpy()
            feat[field] = np.split(new_ids, np.cumsum(lengths)[:-1])


class _PandasWithFilledSequences:
    """pandas as RecBole's dataset module sees it: ``read_csv`` fills empty sequence cells.

    That module's only ``read_csv`` call is in ``Dataset._load_feat``; at that point the
    columns are still named ``field:type`` from the atomic file's header.
    """

    def __getattr__(self, name):
        import pandas

        return getattr(pandas, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        import pandas

        df = pandas.read_csv(*args, **kwargs)
        sequences = [column for column in df.columns if str(column).endswith("_seq")]
        if sequences:
            df[sequences] = df[sequences].fillna("")
        return df


def _checked_normalize(self):
    """RecBole's ``Dataset._normalize``, refusing ``float_seq`` fields it cannot handle on pandas 3."""
    from recbole.utils import FeatureType

    from recbole_hetcomp.errors import ConfigError

    fields = self.config["normalize_field"] or (list(self.field2type) if self.config["normalize_all"] else [])
    sequences = [field for field in fields if self.field2type.get(field) == FeatureType.FLOAT_SEQ]
    if sequences:
        raise ConfigError(
            f"float_seq field(s) {', '.join(sequences)} cannot be normalised by RecBole 1.2.1 on pandas 3: "
            "set normalize_all: False (or list other fields in normalize_field), or install 'pandas<3'"
        )
    return _RECBOLE_NORMALIZE[0](self)


_RECBOLE_NORMALIZE = []


def _pandas_dataset():
    import pandas as pd
    import recbole.data.dataset.dataset as recbole_dataset
    from recbole.data.dataset import Dataset

    if _version(pd) < (3, 0) or Dataset._fill_nan is _fill_nan:
        return
    Dataset._fill_nan = _fill_nan
    Dataset._remap = _remap
    _RECBOLE_NORMALIZE.append(Dataset._normalize)
    Dataset._normalize = _checked_normalize
    recbole_dataset.pd = _PandasWithFilledSequences()


def patch_stack():
    """Apply the numpy, scipy and pandas patches of the module docstring (idempotent).

    Called by our ``Config`` in place of RecBole's ``compatibility_settings``, so every run
    that has a config has them; each patch is applied only where its library needs it.
    """
    _numpy_aliases()
    _scipy_dok_update()
    _pandas_dataset()


def load_own_checkpoint(path, device):
    """Load a RecBole checkpoint that this program wrote itself.

    Args:
        path (str): checkpoint file written by a RecBole trainer's ``_save_checkpoint``.
        device (torch.device): where tensors are mapped.

    Returns:
        dict: RecBole's checkpoint dict (``state_dict``, ``other_parameter``, ...).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"checkpoint {path} does not exist: train the model first or pass an existing file"
        )
    # RecBole pickles its Config into the checkpoint: weights_only cannot read it.
    return torch.load(path, map_location=device, weights_only=False)


def is_distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def init_distributed_device(config_dict):
    """RecBole's distributed device setup, with gloo and CPU devices when no GPU is used.

    Args:
        config_dict (dict): ``Config.final_config_dict`` holding ``local_rank``,
            ``world_size``, ``offset``, ``ip``, ``port``, ``gpu_id``, ``use_gpu``.
    """
    gpu_id = config_dict["gpu_id"]
    use_cuda = bool(config_dict.get("use_gpu", True)) and torch.cuda.is_available() and len(gpu_id) > 0
    rank = config_dict["local_rank"] + config_dict.get("offset", 0)
    patch_for_concurrent_runs()
    if not is_distributed():
        torch.distributed.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            rank=rank,
            world_size=config_dict["world_size"],
            init_method=f"tcp://{config_dict['ip']}:{config_dict['port']}",
        )
    if use_cuda:
        torch.cuda.set_device(config_dict["local_rank"])
        config_dict["device"] = torch.device("cuda", config_dict["local_rank"])
    else:
        config_dict["device"] = torch.device("cpu")
    config_dict["single_spec"] = False
    if config_dict["local_rank"] != 0:
        config_dict["state"] = "error"
        config_dict["show_progress"] = False
        config_dict["verbose"] = False


def _make_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # RecBole writes log/, saved/ and log_tensorboard/ into the working directory: a file
        # of one of those names there is a user's, and must not end in a traceback.
        from recbole_hetcomp.errors import ConfigError

        blocker = path
        while os.path.dirname(blocker) and not os.path.isfile(blocker):
            blocker = os.path.dirname(blocker)
        raise ConfigError(f"cannot create the folder {path}: {blocker} is a file, not a folder; move it away, "
                          f"or run from another working directory") from None


def _stamp_with_pid():
    # RecBole's second-resolution time (looked up at call time), then this process's id.
    from recbole.utils import utils as recbole_utils

    return f"{recbole_utils.get_local_time()}-{os.getpid()}"


def _own_tensorboard(logger):
    """RecBole's ``get_tensorboard``, but the folder is claimed with an atomic ``mkdir``.

    The folder is named after the run's log file as in RecBole; when another trainer (in
    this process or another) already holds that name, ``-2``, ``-3``, ... is appended.
    """
    from torch.utils.tensorboard import SummaryWriter

    base = None
    for handler in logger.handlers:
        if hasattr(handler, "baseFilename"):
            base = os.path.basename(handler.baseFilename).split(".")[0]
            break
    if base is None:
        base = f"model-{_stamp_with_pid()}"
    root = "log_tensorboard"
    _make_dir(root)
    n = 1
    while True:
        path = os.path.join(root, base if n == 1 else f"{base}-{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            n += 1
            continue
        return SummaryWriter(path)


_CLAIMED_CHECKPOINTS = set()


def unique_checkpoint_name(path):
    """``saved/BPR-<time>.pth`` -> ``saved/BPR-<time>-<pid>.pth``, never twice in one process.

    The process id separates runs started in the same second by different processes; a
    second trainer of the same model started in the same second in *this* process (two
    teachers of one model in a pipeline) gets ``-<pid>-2``, ``-<pid>-3``, ...
    """
    stem, ext = os.path.splitext(path)
    name, n = f"{stem}-{os.getpid()}{ext}", 1
    while name in _CLAIMED_CHECKPOINTS:
        n += 1
        name = f"{stem}-{os.getpid()}-{n}{ext}"
    _CLAIMED_CHECKPOINTS.add(name)
    return name


def patch_for_concurrent_runs():
    """Make RecBole's log, TensorBoard and checkpoint folders safe for runs started together.

    Idempotent; called by :func:`init_logger`, by every compat trainer and by distributed
    setup. See the module docstring.
    """
    import importlib

    # Every module that imported RecBole's ensure_dir by name gets the race-free one.
    for name in ("recbole.utils.logger", "recbole.trainer.trainer", "recbole.data.utils", "recbole.data.dataset.dataset"):
        module = importlib.import_module(name)
        if hasattr(module, "ensure_dir"):
            module.ensure_dir = _make_dir
    recbole_logger = importlib.import_module("recbole.utils.logger")
    recbole_logger.get_local_time = _stamp_with_pid  # only the log file's name
    importlib.import_module("recbole.trainer.trainer").get_tensorboard = _own_tensorboard


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}

# File handlers of runs that enclose the current one (a student's, while it trains a
# teacher): detached, not closed; nested_run_log re-attaches them.
_HELD_FILE_HANDLERS = []


class _RunFileHandler(logging.FileHandler):
    """A run's log file (told apart from handlers that others attached to the root logger)."""


def init_logger(config):
    """RecBole's ``init_logger``, with a log file per run and a readable console.

    Same file layout as RecBole's, but the time stamp ends with the process id
    (``log/<model>/<model>-<dataset>-<time>-<pid>-<hash>.log``), so two runs of one config
    started in the same second write two files; the folders are created race-free. The
    previous run's file handler is closed (or, inside :func:`nested_run_log`, detached and
    kept for the enclosing run); the console handler (one per process) shows what
    :class:`recbole_hetcomp.console.ConsoleFilter` lets through. Handlers that others
    attached to the root logger are left alone.

    Args:
        config (Config): the run's config, as for RecBole's ``init_logger``.

    Returns:
        str: the path of this run's log file.
    """
    import colorlog
    from colorama import init as colorama_init
    from recbole.utils import logger as recbole_logger

    from recbole_hetcomp.console import ConsoleFilter, ConsoleHandler, console_handler

    patch_for_concurrent_runs()
    colorama_init(autoreset=True)
    level = _LEVELS.get(str(config["state"] or "info").lower(), logging.INFO)
    folder = os.path.join("log", config["model"])
    _make_dir(folder)
    config_str = "".join(str(value) for value in config.final_config_dict.values())
    md5 = hashlib.md5(config_str.encode(encoding="utf-8")).hexdigest()[:6]
    path = os.path.join(folder, f"{config['model']}-{config['dataset']}-{_stamp_with_pid()}-{md5}.log")

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _RunFileHandler)]:
        root.removeHandler(handler)
        if handler not in _HELD_FILE_HANDLERS:
            handler.close()
    file_handler = _RunFileHandler(path)
    file_handler.setLevel(level)
    file_handler.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    file_handler.addFilter(recbole_logger.RemoveColorFilter())
    root.addHandler(file_handler)

    console = console_handler()
    if console is None:
        console = ConsoleHandler()
        console.setFormatter(colorlog.ColoredFormatter(
            "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M",
            log_colors=recbole_logger.log_colors_config,
        ))
        console.addFilter(ConsoleFilter())
        root.addHandler(console)
    console.setLevel(level)
    root.setLevel(level)
    return path


@contextmanager
def nested_run_log():
    """Around a run started inside another (a teacher inside a student's run): the inner
    run writes its own log file; afterwards the outer run's file handler is back."""
    root = logging.getLogger()
    outer = [h for h in root.handlers if isinstance(h, _RunFileHandler)]
    level = root.level
    _HELD_FILE_HANDLERS.extend(outer)
    try:
        yield
    finally:
        for handler in outer:
            _HELD_FILE_HANDLERS.remove(handler)
        for handler in [h for h in root.handlers if isinstance(h, _RunFileHandler) and h not in outer]:
            root.removeHandler(handler)
            handler.close()
        for handler in outer:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        from recbole_hetcomp.console import console_handler

        console = console_handler()
        if console is not None and outer:
            console.setLevel(outer[0].level)


def _ddp_for_any_device(module, device_ids=None, **kwargs):
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.parallel import DistributedDataParallel

    on_cpu = next(module.parameters()).device.type == "cpu"
    # DDP re-sends every buffer from rank 0 before each forward. The students' buffers
    # (trajectories, targets, training items: about 200 MB on ml-1m) are the same on every
    # rank, each rank running the same DKC step; re-sending them made an ml-1m epoch on 2
    # processes 10x slower than on one (152 s against 15 s). Only normalisation layers'
    # running statistics drift between ranks: those are still synchronised.
    kwargs.setdefault("broadcast_buffers", any(isinstance(m, _NormBase) for m in module.modules()))
    return DistributedDataParallel(module, device_ids=None if on_cpu else device_ids, **kwargs)


# glibc's mallopt parameters (malloc.h); the ceiling of glibc's own adaptive mmap threshold
# on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): blocks up to it are already reused after the first.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_ADAPTIVE_MAX = 32 << 20
_C_INT_MAX = (1 << 31) - 1


def keep_freed_cpu_memory(block_bytes):
    """Let glibc reuse freed blocks up to ``block_bytes`` instead of unmapping them.

    glibc itself does this for blocks up to 32 MB (its adaptive threshold); above that
    every block is mapped afresh. This raises the threshold just above ``block_bytes`` (and
    the trim threshold to 2 GB, so freed heap memory stays), so a batch's score blocks are
    reused while larger, rarer blocks are still mapped and returned to the system.
    Process-wide and lasting until set again; results are unchanged (only where memory
    comes from). See the module's notes.

    Args:
        block_bytes (int): the largest block a training step allocates again and again.

    Returns:
        int or None: the mmap threshold set, or None where nothing was changed (blocks
        within glibc's adaptive range, or not Linux with glibc).
    """
    if block_bytes <= _GLIBC_ADAPTIVE_MAX:
        return None
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    threshold = min(int(block_bytes) + (1 << 20), _C_INT_MAX)
    if not libc.mallopt(_M_MMAP_THRESHOLD, threshold):  # glibc builds that cap it at 32 MB refuse
        return None
    # A step frees several such blocks at once: with glibc's trim rule (twice the mmap
    # threshold) the top of the heap could go back to the system after each step.
    libc.mallopt(_M_TRIM_THRESHOLD, _C_INT_MAX)
    return threshold


def keep_freed_memory_for_training(config, n_items):
    """:func:`keep_freed_cpu_memory` sized for this run's batches, where ``cpu_keep_freed_memory``
    is on and the run is on a CPU; called right before training (after any teachers trained
    inside the run, whose batches differ).

    The bound on a step's largest block is a batch's scores over the catalogue (at most
    ``train_batch_size`` users x ``n_items``), counted at 8 bytes a cell, twice float32, as
    headroom for a float64 or int64 block of that shape.
    """
    if config["cpu_keep_freed_memory"] and torch.device(config["device"]).type == "cpu":
        return keep_freed_cpu_memory(int(config["train_batch_size"]) * int(n_items) * 8)
    return None


def patch_recbole_ddp():
    # RecBole's AbstractTrainer builds DDP with device_ids=[local_rank] even for CPU modules.
    import recbole.trainer.trainer as recbole_trainer

    recbole_trainer.DistributedDataParallel = _ddp_for_any_device


def quiet_known_warnings():
    """Silence the warnings RecBole 1.2.1 itself triggers on today's pandas and torch.

    Every dataset load warns about chained ``fillna(inplace=True)`` (a FutureWarning on
    pandas 2, a ChainedAssignmentError on pandas 3, where :func:`patch_stack` makes the call
    harmless) and, on pandas 3, that torch got a read-only NumPy array (copy-on-write marks
    DataFrame arrays read-only; RecBole drops the DataFrame once it has the tensors); every
    trainer warns about ``torch.cuda.amp.GradScaler``; LightGCN (and RecBole's other graph
    models) build their adjacency with the deprecated ``torch.sparse.FloatTensor``: noise in
    each run's output that users cannot act on. Only warnings raised from RecBole's own modules are filtered; called by
    the command-line entry point, not on import.
    """
    import warnings

    import pandas as pd

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=r"recbole\.")
    warnings.filterwarnings("ignore", message=r"torch\.sparse\.SparseTensor", module=r"recbole\.")
    chained = getattr(pd.errors, "ChainedAssignmentError", None)
    if chained is not None:
        warnings.filterwarnings("ignore", category=chained, module=r"recbole\.")
