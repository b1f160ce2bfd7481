"""What a run reports: the summary table's rows, the table itself and the result file.

A run that learns from teachers ends with one table: every teacher (from its trajectory
file's metadata), their rank ensemble (evaluated here with RecBole's full-sort evaluation
and masking) and the model the run trained. The same rows go into the result JSON.
"""

from recbole_hetcomp.trainer.base import plugin_trainer
from recbole_hetcomp.trajectory.recorder import full_sort_inference_time

# Settings copied into result files so a row can be traced to its run.
ESSENTIAL_KEYS = [
    "seed", "student_seed", "epochs", "train_batch_size", "learning_rate", "embedding_size", "eval_args",
    "valid_metric", "topk", "metrics", "data_path",
]

_MARKS = {"teacher (left out: weak)": " (left out: weak)", "teacher (weak, kept)": " (weak, kept)"}


def config_essentials(config):
    """The settings a result row is traced by (:data:`ESSENTIAL_KEYS`)."""
    return {k: config[k] for k in ESSENTIAL_KEYS if k in config}


def plain(result):
    """RecBole's metric dict (OrderedDict of numpy floats) as plain floats."""
    return {k: float(v) for k, v in (result or {}).items()}


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


def metric_row(name, kind, test_result, parameters, inference_s, valid_result=None, weights=None):
    """One row of the summary table (and of the result file's ``rows``); a weighted
    ensemble's row also holds its ``weights`` (teacher -> weight)."""
    row = {
        "name": name,
        "kind": kind,
        "parameters": int(parameters),
        "inference_time_s": None if inference_s is None else round(float(inference_s), 4),
        "test_result": plain(test_result),
        "valid_result": plain(valid_result),
    }
    if weights is not None:
        row["weights"] = {str(k): float(v) for k, v in weights.items()}
    return row


def teacher_rows(config, teachers):
    """One row per configured teacher, from its trajectory file's metadata.

    Weak teachers (the guard's) keep their row, marked ``teacher (left out: weak)`` (or
    ``teacher (weak, kept)`` with ``keep_weak_teachers``).
    """
    kind = "teacher (weak, kept)" if config["keep_weak_teachers"] else "teacher (left out: weak)"
    return [
        metric_row(
            t.teacher, kind if t.teacher in teachers.weak else "teacher", t.meta.get("test_result", {}),
            t.meta.get("parameters", 0), t.meta.get("inference_time_s"), t.meta.get("valid_result", {}),
        )
        for t in teachers.all
    ]


def ensemble_row(config, teacher_rows_, valid_data, test_data, train_dataset, evaluated=None, weights=None):
    """The rank ensemble of the teachers that take part: equal weights, or ``weights``.

    Its inference cost is every member's plus the aggregation; its parameters are the
    members'. Evaluated here (build it while the run's :class:`TeacherSet` is shared: no
    file is reread) unless ``evaluated`` already holds its results: a run of the
    equal-weight RankEnsemble itself (``valid_result``, ``test_result``, ``inference_time_s``).

    Args:
        weights (dict or None): teacher -> weight, the weights a student's ``ensemble_weights:
            validation`` chose (``config["ensemble_weights"]`` holds them as a list); a teacher
            weighted 0 is not served, so it adds neither parameters nor time.
    """
    members = [r for r in teacher_rows_ if r["kind"] != "teacher (left out: weak)"
               and (weights is None or weights.get(r["name"], 0) > 0)]
    if evaluated is not None:
        valid_result, test_result = evaluated["valid_result"], evaluated["test_result"]
        aggregation = evaluated["inference_time_s"]
    else:
        from recbole.trainer import Trainer

        from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble

        ensemble = RankEnsemble(config, train_dataset).to(config["device"])
        evaluator = plugin_trainer(Trainer)(config, ensemble)
        valid_result = evaluator.evaluate(valid_data, load_best_model=False)
        test_result = evaluator.evaluate(test_data, load_best_model=False)
        aggregation = full_sort_inference_time(ensemble, train_dataset, max(config["topk"]), config["eval_batch_size"])
    teacher_times = [r["inference_time_s"] for r in members]
    total = None if None in teacher_times else sum(teacher_times) + aggregation
    name = "Ensemble" if weights is None else f"Ensemble, weights {weights}"
    return metric_row(name, "ensemble", test_result, sum(r["parameters"] for r in members), total, valid_result, weights)


def evaluates_itself(config):
    """Whether the run's own model is the equal-weight ensemble (its row is the run's result)."""
    return config["model"] == "RankEnsemble" and config["ensemble_weights"] is None


def summary_rows(config, rows, model, trainer, fitted):
    """The summary table: the teachers' and ensemble's ``rows``, then the run's own model.

    Args:
        config (Config): the run's config.
        rows (list of dict): :func:`teacher_rows` and, unless :func:`evaluates_itself`,
            the :func:`ensemble_row` evaluated before the model trained.
        model (AbstractRecommender): the trained model (best checkpoint loaded).
        trainer (AbstractTrainer): its trainer (``chosen_weights`` for a weighted ensemble).
        fitted (dict): ``valid_result``, ``test_result`` and ``inference_time_s`` of the model.

    Returns:
        list of dict: see :func:`metric_row`.
    """
    rows = list(rows)
    if evaluates_itself(config):
        # A run of the equal-weight ensemble has just evaluated it: not a second time.
        rows.append(ensemble_row(config, rows, None, None, None, evaluated=fitted))
    elif config["model"] != "RankEnsemble":
        rows.append(metric_row(
            config["model"], "student", fitted["test_result"], n_parameters(model), fitted["inference_time_s"],
            fitted["valid_result"],
        ))
    else:
        # per teacher that took part (the guard may have dropped some of the configured list)
        searched = getattr(trainer, "chosen_weights", None)
        weights = searched or dict(zip(model.teacher_names, model.weights.tolist()))
        # Costed like the weighted row a student's run shows: a teacher weighted 0 is not
        # served; the run's own inference time is the aggregation of the stored lists.
        members = [r for r in rows if r["kind"].startswith("teacher")]
        rows.append(ensemble_row(config, members, None, None, None, evaluated=fitted, weights=weights))
        if not searched:  # a list given in the config: not to be footnoted as chosen on validation
            rows[-1]["weights_from"] = "config"
    return rows


def format_summary(rows, topk=(10, 20, 50)):
    """A plain-text results table (test metrics), one row per model."""
    metrics = [f"{m}@{k}" for m in ("recall", "ndcg") for k in topk]
    header = ["model", "params", "infer s"] + [m.replace("recall", "R").replace("ndcg", "N") for m in metrics]
    lines, notes = [header], []
    for r in rows:
        t = r["inference_time_s"]
        name = r["name"]
        if r.get("weights"):  # six teachers' weights would widen the whole table: under it instead
            origin = "as configured" if r.get("weights_from") == "config" else "chosen on validation"
            notes.append(f"{'*' * (len(notes) + 1)} weights {origin}: {r['weights']}")
            name = f"Ensemble, weighted{'*' * len(notes)}"
        lines.append(
            [name + _MARKS.get(r["kind"], ""), f"{r['parameters']:,}", "-" if t is None else f"{t:.3f}"]
            + [f"{r['test_result'].get(m, float('nan')):.4f}" for m in metrics]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in lines]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out + notes)
