"""The teachers of a run: the ``teachers`` key parsed once, each trajectory file loaded once.

A :class:`TeacherSet` is built by the pipeline once the teachers are recorded
(:func:`recbole_hetcomp.pipeline.prepare_teachers`): every file is read and checked against
the split's fingerprint once, the teacher guard runs once, and the same arrays are handed
to every model that learns from the teachers (the rank ensemble, HetComp, RRD, CL-DRD) and
to the run's summary. A model built outside a pipeline run (a test, a reloaded checkpoint)
loads the set itself with :meth:`TeacherSet.of`.
"""

import hashlib
import os
from contextlib import contextmanager

import numpy as np

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.trajectory.guard import guard_teachers
from recbole_hetcomp.trajectory.store import dataset_fingerprint, load_trajectory, trajectory_path
from recbole_hetcomp.utils import get_model

__all__ = ["TeacherSet", "parse_teachers", "stack_trajectories"]


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


def stack_trajectories(trajectories, use="all"):
    """Stack teachers' checkpoints into one padded array.

    Args:
        trajectories (list of Trajectory): one per teacher.
        use (str): ``all`` recorded checkpoints, or ``final`` only (the no-DKC ablation).

    Returns:
        tuple: ``topn`` int32 [M, Tmax, U, N], ``observed`` int32 [M, Tmax, U, L],
        ``n_checkpoints`` int64 [M]. Slots past a teacher's own checkpoints repeat its
        last one (they are never read as a target).
    """
    if use not in ("all", "final"):
        raise ConfigError(f"hetcomp_checkpoints must be 'all' or 'final', got {use!r}")
    tops, obs = [], []
    for t in trajectories:
        tops.append(t.topn[-1:] if use == "final" else t.topn)
        obs.append(t.observed[-1:] if use == "final" else t.observed)
    n_checkpoints = np.array([a.shape[0] for a in tops], dtype=np.int64)
    t_max = int(n_checkpoints.max())

    def pad(a):
        return np.concatenate([a, np.repeat(a[-1:], t_max - a.shape[0], axis=0)]) if a.shape[0] < t_max else a

    widths = {a.shape[2] for a in tops}
    if len(widths) != 1:
        raise ConfigError(f"teachers recorded different top-N lengths {sorted(widths)}: record them with one trajectory_topn")
    obs_width = min(a.shape[2] for a in obs)
    topn = np.stack([pad(a) for a in tops])
    observed = np.stack([pad(a[:, :, :obs_width]) for a in obs])
    return topn, observed, n_checkpoints


WEIGHT_RULE = "a list of one weight >= 0 per teacher, at least one > 0"


def check_weight_list(weights, n_teachers=None):
    """The one rule for ``ensemble_weights`` given as numbers, wherever an ensemble is built
    (the settings check before data loads, the rank ensemble, a student's targets).

    Args:
        weights: the configured value (not None and not ``validation``: those are resolved
            by the caller).
        n_teachers (int or None): the teachers taking part; None checks the form only (before
            the guard has decided which teachers take part).

    Returns:
        list of float: the weights.

    Raises:
        ConfigError: not a non-empty list of numbers >= 0 with one > 0, or (with ``n_teachers``)
            a list of another length.
    """
    numbers = isinstance(weights, (list, tuple)) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)
    if not numbers or not weights or min(weights) < 0 or max(weights) <= 0:
        raise ConfigError(
            f"ensemble_weights must be validation (chosen on validation), None (equal weights) or {WEIGHT_RULE}, "
            f"got {weights!r}: e.g. --ensemble_weights=None"
        )
    if n_teachers is not None and len(weights) != n_teachers:
        raise ConfigError(
            f"ensemble_weights has {len(weights)} values for {n_teachers} teacher{'s' if n_teachers != 1 else ''} "
            f"taking part: give {WEIGHT_RULE}, or None for equal weights"
        )
    return [float(w) for w in weights]


class TeacherSet:
    """The configured teachers' trajectories, loaded once, and which of them take part.

    Attributes:
        specs (list of (str, str, dict)): (name, model, overrides) per configured teacher.
        all (list of Trajectory): every configured teacher's trajectory, in config order.
        weak (dict): name -> reason, the teachers the guard calls weak.
        members (list of Trajectory): the teachers that take part (weak ones left out
            unless ``keep_weak_teachers``), in config order.
        fingerprint (dict): the split the files were checked against.
    """

    # The set a pipeline run shares with the models it builds (see :meth:`shared`).
    _shared = None

    def __init__(self, specs, trajectories, weak, members, fingerprint, paths, train_dataset=None):
        self.specs = specs
        self.train_dataset = train_dataset  # the split it was checked against (no re-hash for the same object)
        self.all = trajectories
        self.weak = weak
        self.members = members
        self.fingerprint = fingerprint
        self.paths = paths

    @property
    def names(self):
        """Names of the teachers that take part, in config order."""
        return [t.teacher for t in self.members]

    def digest(self):
        """16 hex digits over the members' names and recorded lists: the knowledge a student
        learns (kept in its checkpoints, so a resumed run cannot switch teachers)."""
        hashed = hashlib.sha256()
        for member in self.members:
            hashed.update(member.teacher.encode())
            for lists in (member.topn, member.observed):
                hashed.update(str(lists.shape).encode() + np.ascontiguousarray(lists).tobytes())
        return hashed.hexdigest()[:16]

    # --- loading --------------------------------------------------------------------
    @classmethod
    def load(cls, config, train_dataset, logger=None):
        """Read (never train) every configured teacher's trajectory file for this split.

        Args:
            config (Config): holds ``teachers``, ``trajectory_dir``, ``dataset`` and the
                guard's keys (``teacher_guard_ratio``, ``keep_weak_teachers``).
            train_dataset (Dataset): the training split (its fingerprint must match the files').
            logger (logging.Logger, optional): where the guard reports weak teachers, one
                line each.

        Raises:
            ConfigError: a file is missing, holds another model, or every teacher is weak.
            TrajectoryError: a file is damaged or was recorded on another split.
        """
        specs = parse_teachers(config["teachers"])
        fingerprint = dataset_fingerprint(config, train_dataset)
        paths = [trajectory_path(config["trajectory_dir"], config["dataset"], name) for name, _, _ in specs]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise ConfigError(
                f"trajectory file {missing[0]} is missing: run the teacher with --record_trajectory=True "
                f"or let run_recbole_hetcomp train it"
            )
        trajectories = []
        for (name, model, _), path in zip(specs, paths):
            trajectory = load_trajectory(path, fingerprint)
            recorded = trajectory.meta.get("teacher_config", {}).get("model")
            if recorded != model:
                raise ConfigError(
                    f"{path} holds teacher model {recorded}, but teacher '{name}' is {model}: "
                    f"delete the file or give the teacher another name"
                )
            trajectories.append(trajectory)
        members, weak = guard_teachers(trajectories, config, logger)
        return cls(specs, trajectories, weak, members, fingerprint, paths, train_dataset)

    @classmethod
    def of(cls, config, train_dataset):
        """The teachers for a model built on this split: the set the running pipeline
        shares when it matches (same files, same split), else loaded from the files."""
        shared = cls._shared
        if shared is not None:
            paths = [trajectory_path(config["trajectory_dir"], config["dataset"], name)
                     for name, _, _ in parse_teachers(config["teachers"])]
            same_split = train_dataset is shared.train_dataset or dataset_fingerprint(config, train_dataset) == shared.fingerprint
            if paths == shared.paths and same_split:
                return shared
        return cls.load(config, train_dataset)

    @contextmanager
    def shared(self):
        """While in this block, models built on the same split take this set (no reload)."""
        previous, TeacherSet._shared = TeacherSet._shared, self
        try:
            yield self
        finally:
            TeacherSet._shared = previous

    # --- what the models read -------------------------------------------------------
    def stacked(self, use="all"):
        """The members' checkpoints as padded arrays (see :func:`stack_trajectories`)."""
        return stack_trajectories(self.members, use)

    def final_lists(self):
        """int32 [M, U, N]: each member's final (best-validation) top-N lists."""
        return stack_trajectories(self.members, "final")[0][:, 0]

    def ensemble_weights(self, weights):
        """``ensemble_weights`` for the members.

        A list with one weight per *configured* teacher loses the weights of the teachers
        the guard left out; anything else (None, ``validation``, a list of another length,
        which the models reject with their own message) is returned unchanged.
        """
        if isinstance(weights, (list, tuple)) and len(weights) == len(self.specs) and len(self.members) < len(self.specs):
            taking_part = set(self.names)
            return [w for (name, _, _), w in zip(self.specs, weights) if name in taking_part]
        return weights

    def student_weights(self, weights):
        """``ensemble_weights`` for a student's targets (HetComp, RRD, CL-DRD), checked.

        Returns:
            list of float or None: one weight per member; None for equal weights.

        Raises:
            ConfigError: ``validation`` (resolved by a run, not here), a list of the wrong length,
                or weights that are negative or all 0.
        """
        weights = self.ensemble_weights(weights)
        if weights is None:
            return None
        if weights == "validation":
            raise ConfigError(
                "ensemble_weights: validation is chosen by a run (run_recbole_hetcomp searches the weights on "
                "validation before it builds the student); a student built directly needs a list of weights, or None for equal ones"
            )
        return check_weight_list(weights, len(self.members))

    def for_student(self, weights):
        """The teachers a student learns from, and their weights (see :meth:`student_weights`).

        A teacher weighted 0 adds nothing to any ensemble the student learns from, so it is
        left out, as the guard leaves out a weak one: otherwise its trajectory would still
        cost DKC steps and hold the switch until the student's lists pass along it.

        Returns:
            tuple: (TeacherSet, list of float or None): a set whose members are the teachers
            weighted > 0 (this set itself when none is 0), and their weights.
        """
        weights = self.student_weights(weights)
        if weights is None or min(weights) > 0:
            return self, weights
        kept = [i for i, w in enumerate(weights) if w > 0]
        taught = TeacherSet(self.specs, self.all, self.weak, [self.members[i] for i in kept],
                            self.fingerprint, self.paths, self.train_dataset)
        return taught, [weights[i] for i in kept]
