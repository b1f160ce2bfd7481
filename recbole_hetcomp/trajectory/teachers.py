"""The ``teachers`` config key and loading the teachers' trajectory files.

Training missing teachers is the pipeline's job (:mod:`recbole_hetcomp.quick_start`);
models that learn from teachers (the rank ensemble, HetComp) only load.
"""

import os

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.trajectory.guard import guard_teachers
from recbole_hetcomp.trajectory.store import dataset_fingerprint, load_trajectory, trajectory_path
from recbole_hetcomp.utils import get_model


def parse_teachers(teachers):
    """Normalise the ``teachers`` config key.

    Each entry is a model name (``"BPR"``) or a dict with ``model`` and optional overrides
    (any config key: ``embedding_size``, ``epochs``, ``train_batch_size``,
    ``learning_rate``, ...) and an optional ``name`` (the trajectory file's stem, needed
    when one model appears twice).

    Returns:
        list of (str, str, dict): (name, model, overrides) per teacher.

    Raises:
        ConfigError: empty list, unknown model, malformed entry or duplicate name.
    """
    if not teachers:
        raise ConfigError("teachers is empty: list at least one model, e.g. --teachers=\"['BPR','LightGCN']\"")
    if isinstance(teachers, str):
        teachers = [teachers]
    parsed, seen = [], set()
    for entry in teachers:
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise ConfigError(f"teacher entry {entry!r} must be a model name or a dict with a 'model' key")
        overrides = {k: v for k, v in entry.items() if k not in ("model", "name")}
        model, name = entry["model"], str(entry.get("name", entry["model"]))
        try:
            get_model(model)
        except ConfigError as err:
            raise ConfigError(f"teacher: {err}") from None
        if name in seen:
            raise ConfigError(f"teacher name '{name}' appears twice: give each a distinct 'name' key")
        seen.add(name)
        parsed.append((name, model, overrides))
    return parsed


def load_teacher_trajectories(config, train_dataset):
    """Load (never train) the configured teachers' trajectory files for this split.

    Weak teachers (see :mod:`recbole_hetcomp.trajectory.guard`) are left out here unless
    ``keep_weak_teachers`` is set, so the rank ensemble and every student (HetComp, RRD,
    CL-DRD) see the same teachers. The pipeline reports them once per run, before this.

    Returns:
        list of Trajectory: the teachers that take part, in config order.

    Raises:
        ConfigError: a file is missing, or every teacher is weak.
    """
    fingerprint = dataset_fingerprint(config, train_dataset)
    paths = [trajectory_path(config["trajectory_dir"], config["dataset"], name) for name, _, _ in parse_teachers(config["teachers"])]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ConfigError(
            f"trajectory file {missing[0]} is missing: run the teacher with --record_trajectory=True "
            f"or let run_recbole_hetcomp train it"
        )
    kept, _ = guard_teachers([load_trajectory(p, fingerprint) for p in paths], config)
    return kept


def teacher_weights(config, trajectories):
    """``ensemble_weights`` for the teachers that take part.

    A list with one weight per *configured* teacher loses the weights of the teachers the
    guard left out; anything else (None, ``validation``, a list of another length, which
    the models reject with their own message) is returned unchanged.
    """
    weights = config["ensemble_weights"]
    if isinstance(weights, (list, tuple)):
        names = [name for name, _, _ in parse_teachers(config["teachers"])]
        taking_part = {t.teacher for t in trajectories}
        if len(weights) == len(names) and len(trajectories) < len(names):
            return [w for name, w in zip(names, weights) if name in taking_part]
    return weights


def student_weights(config, trajectories):
    """``ensemble_weights`` for a student's targets (HetComp, RRD, CL-DRD), checked.

    Returns:
        list of float or None: one weight per teacher taking part; None for equal weights.

    Raises:
        ConfigError: ``validation`` (a RankEnsemble option), a list of the wrong length, or
            weights that are negative or all 0.
    """
    weights = teacher_weights(config, trajectories)
    if weights is None:
        return None
    if weights == "validation":
        raise ConfigError(
            "ensemble_weights: validation is a RankEnsemble option; run --model=RankEnsemble "
            "--ensemble_weights=validation and give the weights it logs as a list here"
        )
    rule = "ensemble_weights must be one weight >= 0 per teacher, at least one > 0"
    if not isinstance(weights, (list, tuple)) or len(weights) != len(trajectories):
        count = len(weights) if isinstance(weights, (list, tuple)) else 1
        raise ConfigError(f"ensemble_weights has {count} values for {len(trajectories)} teachers; {rule}")
    if min(weights) < 0 or max(weights) <= 0:
        raise ConfigError(f"{rule}, got {weights!r}")
    return [float(w) for w in weights]
