"""Trajectory files: one teacher's recorded rankings on one dataset split.

File format: a safetensors file (plain arrays, no pickle) named
``<trajectory_dir>/<dataset>/<teacher name>.safetensors`` holding

* ``topn``     int32 [T, n_users, N]: per checkpoint, each user's top-N unobserved items
  (training items masked), best first; row 0 is RecBole's padding user;
* ``observed`` int32 [T, n_users, L]: per checkpoint, the teacher's ranking of the user's
  training items, first L kept, 0-padded where a user has fewer;

and a readable JSON header (``safetensors`` metadata key ``hetcomp``): teacher name and
config, the dataset fingerprint, checkpoint epochs and their validation scores, the
teacher's valid/test metrics. ``python -m recbole_hetcomp.trajectory.store FILE`` prints it.

Files are written atomically (temp file + ``os.replace``) and only reused when their
fingerprint matches the current dataset split; a mismatch is an error that says what
differs, never a silent mix of ids.
"""

import hashlib
import json
import os

import sys
from dataclasses import dataclass, field

import numpy as np

from recbole_hetcomp.errors import HetCompError
from recbole_hetcomp.fileio import atomic_write

FORMAT_VERSION = 1
SUFFIX = ".safetensors"

# Config keys that decide which interactions survive and how they are split.
FINGERPRINT_CONFIG_KEYS = [
    "seed",
    "eval_args",
    "load_col",
    "unload_col",
    "rm_dup_inter",
    "val_interval",
    "filter_inter_by_user_or_item",
    "user_inter_num_interval",
    "item_inter_num_interval",
    "threshold",
    "benchmark_filename",
]


class TrajectoryError(HetCompError):
    """A trajectory file is missing, damaged, or belongs to another dataset split."""


def _hash_tokens(tokens):
    digest = hashlib.sha256()
    for token in tokens:
        digest.update(str(token).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _jsonable(value):
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def dataset_fingerprint(config, train_dataset):
    """Identify a dataset split so trajectories are only ever reused on the same ids.

    Args:
        config (Config): the run's config.
        train_dataset (Dataset): RecBole's training dataset (``train_data.dataset``).

    Returns:
        dict: dataset name, filtering and split settings, seed, n_users, n_items, and
        hashes of the user id map, the item id map and the training interactions.
    """
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    users = train_dataset.inter_feat[uid].numpy().astype(np.int64)
    items = train_dataset.inter_feat[iid].numpy().astype(np.int64)
    order = np.lexsort((items, users))
    train_digest = hashlib.sha256(np.stack([users[order], items[order]]).tobytes()).hexdigest()[:16]
    return {
        "dataset": config["dataset"],
        "settings": {k: _jsonable(config[k]) for k in FINGERPRINT_CONFIG_KEYS if k in config},
        "n_users": int(train_dataset.user_num),
        "n_items": int(train_dataset.item_num),
        "user_map": _hash_tokens(train_dataset.field2id_token[uid]),
        "item_map": _hash_tokens(train_dataset.field2id_token[iid]),
        "train_interactions": train_digest,
    }


def fingerprint_differences(expected, found):
    """Human-readable differences between two fingerprints (empty when they match)."""
    diffs = []
    for key in sorted(set(expected) | set(found)):
        if key == "settings":
            a, b = expected.get(key, {}), found.get(key, {})
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    diffs.append(f"{sub}: file has {b.get(sub)!r}, this run has {a.get(sub)!r}")
        elif expected.get(key) != found.get(key):
            diffs.append(f"{key}: file has {found.get(key)!r}, this run has {expected.get(key)!r}")
    return diffs


@dataclass
class Trajectory:
    """One teacher's recorded checkpoints.

    Attributes:
        teacher (str): the teacher's name (file stem), e.g. ``"LightGCN"``.
        topn (np.ndarray): int32 [T, n_users, N] top-N unobserved items per checkpoint.
        observed (np.ndarray): int32 [T, n_users, L] ranked training items per checkpoint.
        meta (dict): JSON-able metadata (see module docstring).
    """

    teacher: str
    topn: np.ndarray
    observed: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_checkpoints(self):
        return int(self.topn.shape[0])

    @property
    def fingerprint(self):
        return self.meta.get("fingerprint", {})


def trajectory_path(trajectory_dir, dataset, teacher):
    return os.path.join(trajectory_dir, dataset, teacher + SUFFIX)


def save_trajectory(path, trajectory):
    """Write a trajectory file atomically: a killed run leaves the old file or none.

    Args:
        path (str): destination file.
        trajectory (Trajectory): what to write.
    """
    from safetensors.numpy import save_file

    topn = np.ascontiguousarray(trajectory.topn, dtype=np.int32)
    observed = np.ascontiguousarray(trajectory.observed, dtype=np.int32)
    if topn.ndim != 3 or observed.ndim != 3 or topn.shape[:2] != observed.shape[:2]:
        raise ValueError(f"bad trajectory shapes topn {topn.shape}, observed {observed.shape}")
    meta = dict(trajectory.meta, teacher=trajectory.teacher, format_version=FORMAT_VERSION)
    arrays = {"topn": topn, "observed": observed}
    header = {"hetcomp": json.dumps(_jsonable(meta), sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata=header), suffix=SUFFIX)


def read_metadata(path):
    """Read only the JSON header of a trajectory file (cheap)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            raw = (f.metadata() or {}).get("hetcomp")
    except Exception as err:  # safetensors raises several types for damaged files
        raise TrajectoryError(
            f"trajectory file {path} is damaged or not a trajectory file ({err}); delete it to re-record the teacher"
        ) from None
    if raw is None:
        raise TrajectoryError(f"{path} has no HetComp metadata; delete it to re-record the teacher")
    return json.loads(raw)


def load_trajectory(path, expected_fingerprint=None):
    """Load and validate a trajectory file.

    Args:
        path (str): the file.
        expected_fingerprint (dict, optional): the current split's fingerprint; when
            given, any difference is an error listing what differs.

    Returns:
        Trajectory: the arrays and metadata.

    Raises:
        TrajectoryError: missing, truncated or edited file, wrong shapes, other split.
    """
    from safetensors.numpy import load_file

    if not os.path.isfile(path):
        raise TrajectoryError(f"trajectory file {path} does not exist")
    meta = read_metadata(path)
    try:
        arrays = load_file(path)
    except Exception as err:
        raise TrajectoryError(
            f"trajectory file {path} is damaged ({err}); delete it to re-record the teacher"
        ) from None
    teacher = meta.get("teacher", os.path.basename(path)[: -len(SUFFIX)])
    if set(arrays) != {"topn", "observed"}:
        raise TrajectoryError(f"{path} holds arrays {sorted(arrays)}, expected topn and observed; delete it to re-record")
    topn, observed = arrays["topn"], arrays["observed"]
    fingerprint = meta.get("fingerprint", {})
    n_users, n_items = fingerprint.get("n_users"), fingerprint.get("n_items")
    epochs = meta.get("checkpoint_epochs", [])
    problems = []
    if topn.ndim != 3 or observed.ndim != 3:
        problems.append(f"arrays must be 3-d, found topn {topn.shape} and observed {observed.shape}")
    elif topn.shape[:2] != observed.shape[:2] or topn.shape[1] != n_users:
        problems.append(f"shapes topn {topn.shape}, observed {observed.shape} do not fit n_users={n_users}")
    elif len(epochs) != topn.shape[0]:
        problems.append(f"{topn.shape[0]} checkpoints stored but metadata lists {len(epochs)}")
    elif topn.size and (topn.min() < 0 or topn.max() >= n_items or observed.min() < 0 or observed.max() >= n_items):
        problems.append(f"item ids outside [0, {n_items})")
    if problems:
        raise TrajectoryError(f"trajectory file {path} is inconsistent: {problems[0]}; delete it to re-record the teacher")
    if expected_fingerprint is not None:
        diffs = fingerprint_differences(expected_fingerprint, fingerprint)
        if diffs:
            raise TrajectoryError(
                f"trajectory file {path} was recorded on another dataset split ({'; '.join(diffs[:3])}); "
                f"delete it or use another trajectory_dir to retrain {teacher} on this split"
            )
    return Trajectory(teacher=teacher, topn=topn, observed=observed, meta=meta)


def main(argv=None):
    """Print the metadata of trajectory files: ``python -m recbole_hetcomp.trajectory.store FILE...``."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m recbole_hetcomp.trajectory.store FILE [FILE ...]", file=sys.stderr)
        return 2
    for path in paths:
        try:
            meta = read_metadata(path)
        except TrajectoryError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
