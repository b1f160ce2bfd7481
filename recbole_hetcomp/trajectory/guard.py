"""The teacher guard: leave out teachers that learned nothing a popularity count does not give.

A teacher that trained to random level (a model that cannot learn on the data, or settings
that stop it before it starts) would otherwise enter the rank ensemble and the students'
targets with an equal weight and pull both down, silently. When a teacher is recorded, the
popularity ranking's validation score (RecBole's ``Pop``: items by training-interaction
count, evaluated on the same validation data, metric and masking) is written beside its
own; a run that learns from teachers then calls a teacher *weak* when

(a) its best validation score is not above ``teacher_guard_ratio`` times the popularity
    ranking's, or
(b) it was validated more than once and no later validation beat its first (it never
    improved; a one-shot model such as EASE, validated once, is not weak by this rule).

Weak teachers are left out of the ensemble and of every student's targets unless
``keep_weak_teachers`` is set. Files recorded before the guard have no popularity score:
for them only rule (b) applies.
"""

from recbole.trainer import Trainer

from recbole_hetcomp.trainer.base import plugin_trainer
from recbole_hetcomp.errors import ConfigError


def never_improved(scores, bigger=True):
    """Whether a teacher validated more than once never beat its first validation.

    Args:
        scores (list of float): validation scores in order.
        bigger (bool): whether a bigger score is better.

    Returns:
        bool: True when there are at least two scores and none after the first is
        strictly better than it (equal scores, e.g. a model that does not move, count as
        no improvement).
    """
    if len(scores) < 2:
        return False
    sign = 1.0 if bigger else -1.0
    return all(sign * s <= sign * scores[0] for s in scores[1:])


def weak_reason(meta, ratio, bigger=True):
    """Why a recorded teacher is weak, or None.

    Args:
        meta (dict): the trajectory file's metadata (``all_validations``, ``valid_metric``,
            and ``popularity_valid_score`` when recorded with the guard).
        ratio (float): ``teacher_guard_ratio``.
        bigger (bool): whether a bigger validation score is better.

    Returns:
        str or None: a short reason with the scores, e.g. ``"best valid ndcg@20 0.0006 is
        not above 1.1 x the popularity ranking's 0.0123"``.
    """
    scores = [float(s) for _, s in meta.get("all_validations", [])]
    if not scores:
        return None
    metric = str(meta.get("valid_metric", "score")).lower()
    best = max(scores) if bigger else min(scores)
    pop = meta.get("popularity_valid_score")
    pop_text = "not recorded" if pop is None else f"{pop:.4f}"
    if pop is not None:
        clear = best > ratio * pop if bigger else best * ratio < pop
        if not clear:
            return f"best valid {metric} {best:.4f} is not above {ratio} x the popularity ranking's {pop:.4f}"
    if never_improved(scores, bigger):
        return (
            f"best valid {metric} {best:.4f} is its first of {len(scores)} validations: it never improved "
            f"(popularity ranking {pop_text})"
        )
    return None


def check_guard_ratio(ratio):
    """Return ``teacher_guard_ratio`` as a float, or fail in one line.

    Raises:
        ConfigError: not a number >= 0.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio < 0:
        raise ConfigError(f"teacher_guard_ratio must be a number >= 0 (0 turns the popularity rule off), got {ratio!r}")
    return float(ratio)


def guard_teachers(trajectories, config, logger=None):
    """Split the teachers into those that take part and the weak ones left out.

    Args:
        trajectories (list of Trajectory): every configured teacher, in config order.
        config (Config): holds ``teacher_guard_ratio``, ``keep_weak_teachers``,
            ``valid_metric_bigger``.
        logger (logging.Logger, optional): when given, one warning line per weak teacher
            and one note for files recorded without a popularity score.

    Returns:
        tuple: the teachers that take part (list of Trajectory, config order) and
        ``{name: reason}`` of the weak ones (left out, or kept with ``keep_weak_teachers``).

    Raises:
        ConfigError: every teacher is weak and ``keep_weak_teachers`` is not set, or
            ``teacher_guard_ratio`` is not a number >= 0.
    """
    ratio, keep = check_guard_ratio(config["teacher_guard_ratio"]), bool(config["keep_weak_teachers"])
    bigger = config["valid_metric_bigger"]
    weak = {}
    for t in trajectories:
        reason = weak_reason(t.meta, ratio, bigger)
        if reason is not None:
            weak[t.teacher] = reason
    if logger is not None:
        unguarded = [t.teacher for t in trajectories if "popularity_valid_score" not in t.meta]
        if unguarded:
            logger.info(
                f"teacher guard: {', '.join(unguarded)} recorded without a popularity score (older files): "
                f"only the never-improved rule applies; delete the files to re-record them"
            )
        for name, reason in weak.items():
            fate = "kept (keep_weak_teachers: True)" if keep else "left out of the ensemble and the students' targets; --keep_weak_teachers=True keeps it"
            logger.warning(f"weak teacher {name}: {reason}; {fate}")
    if keep:
        return list(trajectories), weak
    kept = [t for t in trajectories if t.teacher not in weak]
    if not kept:
        raise ConfigError(
            f"every teacher is weak ({', '.join(weak)}: none clearly beats the popularity ranking or improves "
            f"on its first validation): fix their settings, or set --keep_weak_teachers=True to use them"
        )
    return kept, weak


def popularity_valid_result(config, train_dataset, valid_data):
    """The popularity ranking's validation metrics, evaluated exactly as RecBole evaluates a model.

    RecBole's ``Pop`` model with its counts set from the training split (what one epoch
    of its training does), run through RecBole's ``Trainer.evaluate``: same validation
    data, metrics and training-item masking as the teacher's own validation.

    Args:
        config (Config): the teacher's run config.
        train_dataset (Dataset): the training split.
        valid_data (AbstractDataLoader): the validation data loader.

    Returns:
        dict: metric name -> value (``valid_metric`` among them).
    """
    import torch
    from recbole.model.general_recommender import Pop

    pop = Pop(config, train_dataset).to(config["device"])
    items = torch.as_tensor(train_dataset.inter_feat[train_dataset.iid_field], dtype=torch.long)
    counts = torch.bincount(items, minlength=pop.n_items).to(pop.item_cnt.device)
    pop.item_cnt = counts.view(-1, 1)
    pop.max_cnt = pop.item_cnt.max(dim=0)[0]
    evaluator = plugin_trainer(Trainer)(config, pop)
    return {k: float(v) for k, v in evaluator.evaluate(valid_data, load_best_model=False).items()}
