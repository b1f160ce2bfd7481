"""One entry point for every model: ``run_recbole_hetcomp``.

For an ordinary RecBole model (or a plugin baseline such as CML) this does what RecBole's
``run_recbole`` does (RecBole's own quick_start module is not imported: it imports ray,
which breaks on current setuptools).
"""

import json
import os
import sys
from logging import getLogger
from time import time

import numpy as np
import torch
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import init_seed, set_color

from recbole_hetcomp.compat import init_logger, is_distributed, nested_run_log, with_compat
from recbole_hetcomp.config import Config
from recbole_hetcomp.console import FILE_ONLY, config_summary, in_stage, pop_stage, push_stage
from recbole_hetcomp.data.download import fetch_dataset
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.fileio import atomic_write
from recbole_hetcomp.trainer.trajectory import recording_trainer
from recbole_hetcomp.trajectory.guard import check_guard_ratio, guard_teachers, popularity_valid_result
from recbole_hetcomp.trajectory.recorder import TrajectoryRecorder, full_sort_inference_time
from recbole_hetcomp.trajectory.teachers import parse_teachers
from recbole_hetcomp.trajectory.store import (
    Trajectory,
    dataset_fingerprint,
    load_trajectory,
    save_trajectory,
    trajectory_path,
)
from recbole_hetcomp.utils import get_trainer

# Settings copied into result files so a row can be traced to its run.
_ESSENTIAL_KEYS = [
    "seed", "student_seed", "epochs", "train_batch_size", "learning_rate", "embedding_size", "eval_args",
    "valid_metric", "topk", "metrics", "data_path",
]


# Where a run stands, for the one line printed when it is interrupted (Ctrl-C).
PROGRESS = {}


def interrupted_message():
    """One line: what an interrupted run kept, and how to resume it."""
    folder, done, total = PROGRESS.get("trajectory_folder"), PROGRESS.get("teachers_done", []), PROGRESS.get("teachers")
    stage = PROGRESS.get("stage", "starting")
    if not folder:
        return f"interrupted ({stage}); nothing was kept"
    kept = f"{len(done)} of {total} teacher trajectories kept in {folder}" + (f" ({', '.join(done)})" if done else "")
    return f"interrupted ({stage}): {kept}; run the same command again to resume (recorded teachers are reused, the student starts over)"


def is_writer(config):
    """Only rank 0 of a distributed run writes files (trajectories, results)."""
    return config["single_spec"] or config["local_rank"] == 0


def barrier():
    if is_distributed():
        torch.distributed.barrier()


def check_dataset_files(config):
    """Fail early, in one line, when the dataset's atomic files are not where RecBole looks.

    Args:
        config (Config): the run's config (``data_path`` already joined with the dataset name).

    Raises:
        ConfigError: the ``.inter`` file (or the benchmark split files) is missing and the
            dataset could not be downloaded (see :mod:`recbole_hetcomp.data.download`).
    """
    data_path, name = config["data_path"], config["dataset"]
    benchmark = config["benchmark_filename"]
    wanted = [f"{name}.{part}.inter" for part in benchmark] if benchmark else [f"{name}.inter"]
    missing = [f for f in wanted if not os.path.isfile(os.path.join(data_path, f))]
    # A dataset listed in dataset_downloads is fetched and converted by the writing rank.
    if missing and fetch_dataset(config, writer=is_writer(config), wait=barrier):
        missing = [f for f in wanted if not os.path.isfile(os.path.join(data_path, f))]
    if missing:
        raise ConfigError(
            f"dataset '{name}' not found: no {os.path.join(data_path, missing[0])}; put RecBole atomic "
            f"files there, point --data_path at the folder that holds {name}/, or convert a GroupLens "
            f"archive with `python -m recbole_hetcomp.data.movielens ARCHIVE --data_path=DIR`"
        )


def check_rankable(config, dataset):
    """Refuse datasets and cut-offs that leave nothing to rank, before any training."""
    n_items = dataset.item_num - 1  # without RecBole's padding item
    if n_items < 2:
        raise ConfigError(f"dataset '{config['dataset']}' has {n_items} item(s): top-K recommendation needs at least 2")
    if max(config["topk"]) >= dataset.item_num:
        raise ConfigError(
            f"topk {max(config['topk'])} is not smaller than the catalogue ({n_items} items): "
            f"use cut-offs below {n_items}, e.g. --topk=[{max(1, min(10, n_items - 1))}]"
        )
    users = dataset.inter_feat[dataset.uid_field]
    users = users.to_numpy() if hasattr(users, "to_numpy") else users.numpy()
    counts = np.bincount(users.astype(np.int64), minlength=dataset.user_num)
    if int(counts.max()) >= n_items:
        user = dataset.id2token(dataset.uid_field, int(counts.argmax()))
        raise ConfigError(
            f"user {user} interacted with every item of '{config['dataset']}': nothing is left to recommend; "
            f"remove such users (e.g. --user_inter_num_interval=\"[0,{n_items - 1}]\") or use a larger catalogue"
        )


def check_student_seed(config):
    """The seed of the model trained by this run (default: ``seed``), checked before any data loads."""
    student_seed = config["student_seed"]
    if student_seed is None:
        return int(config["seed"])
    if isinstance(student_seed, bool) or not isinstance(student_seed, int) or student_seed < 0:
        raise ConfigError(f"student_seed must be an integer >= 0 (or ~ to use seed), got {student_seed!r}")
    return student_seed


def check_result_file(path):
    """Fail before training, not after, when results could not be written."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"result_file folder {folder} does not exist: create it or choose another --result_file")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"result_file folder {folder} is not writable: choose another --result_file")


def check_trajectory_settings(config):
    """Fail before training when trajectories could not be recorded or stored."""
    from recbole_hetcomp.trajectory.recorder import CHECKPOINT_RULES

    n_ckpt, topn, observed = config["trajectory_checkpoints"], config["trajectory_topn"], config["trajectory_observed"]
    if not isinstance(n_ckpt, int) or n_ckpt < 1:
        raise ConfigError(f"trajectory_checkpoints (T) must be an integer >= 1, got {n_ckpt!r}")
    if not isinstance(topn, int) or topn < 1:
        raise ConfigError(f"trajectory_topn must be an integer >= 1, got {topn!r}")
    if not isinstance(observed, int) or observed < 0:
        raise ConfigError(f"trajectory_observed must be an integer >= 0, got {observed!r}")
    rule = config["trajectory_checkpoint_rule"]
    if rule not in CHECKPOINT_RULES:
        raise ConfigError(f"trajectory_checkpoint_rule must be one of {', '.join(CHECKPOINT_RULES)}, got {rule!r}")
    if rule == "epochs" and not config["trajectory_checkpoint_epochs"]:
        raise ConfigError("trajectory_checkpoint_rule 'epochs' needs trajectory_checkpoint_epochs, e.g. [10, 20, 40]")
    check_guard_ratio(config["teacher_guard_ratio"])
    if rule == "even" and config["trajectory_keep"] != "all":
        raise ConfigError("trajectory_checkpoint_rule 'even' needs every validation kept: set trajectory_keep: all")
    folder = os.path.join(config["trajectory_dir"], config["dataset"])
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"trajectory_dir {config['trajectory_dir']} cannot be created ({err.strerror}): choose another --trajectory_dir") from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"trajectory folder {folder} is not writable: choose another --trajectory_dir")


def write_json_atomic(path, payload):
    """Write JSON so that readers see the old file or the new one, never half of one."""

    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, default=str)

    atomic_write(path, dump, suffix=".json")


def config_essentials(config):
    return {k: config[k] for k in _ESSENTIAL_KEYS if k in config}


def _plain(result):
    return {k: float(v) for k, v in (result or {}).items()}


# Keys that describe how the *student* (or whatever model the command line names) trains;
# teachers trained inside its run do not inherit them.
_MODEL_LEVEL_KEYS = {
    "model", "epochs", "learning_rate", "train_batch_size", "embedding_size", "weight_decay",
    "learner", "stopping_step", "eval_step", "train_neg_sample_args", "result_file",
    "record_trajectory", "trajectory_name", "clip_grad_norm", "reg_weight", "student_seed",
}


def teacher_config_dict(config, overrides, name):
    """Config for a teacher trained inside another model's run: the run's dataset,
    protocol and trajectory settings, the teacher's own model defaults, then
    ``teacher_defaults`` and the teacher's overrides."""
    inherited = {k: v for k, v in config.external_config_dict.items() if k not in _MODEL_LEVEL_KEYS}
    inherited.update(config["teacher_defaults"] or {})
    inherited.update(overrides)
    inherited.update(record_trajectory=True, trajectory_name=name, result_file=None)
    return inherited


def ensure_teacher_trajectories(config, train_dataset, config_files=None):
    """Reuse each configured teacher's trajectory file when it fits this split, else train it.

    Args:
        config (Config): the run's config (``teachers``, ``trajectory_dir``, ...).
        train_dataset (Dataset): this run's training split, to fingerprint.
        config_files (list of str, optional): the run's property files (their settings
            reach the teachers through the config; the names go into their summaries).

    Returns:
        list of Trajectory: one per teacher, in config order.
    """
    logger = getLogger()
    teachers = parse_teachers(config["teachers"])
    fingerprint = dataset_fingerprint(config, train_dataset)
    trajectories = []
    PROGRESS.update(trajectory_folder=os.path.join(config["trajectory_dir"], config["dataset"]),
                    teachers=len(teachers), teachers_done=[])
    for i, (name, model, overrides) in enumerate(teachers, start=1):
        stage = f"teacher {i} of {len(teachers)}: {name}"
        PROGRESS["stage"] = stage
        path = trajectory_path(config["trajectory_dir"], config["dataset"], name)
        if os.path.isfile(path):
            trajectory = load_trajectory(path, fingerprint)
            recorded = trajectory.meta.get("teacher_config", {})
            if recorded.get("model") != model:
                raise ConfigError(
                    f"{path} holds teacher model {recorded.get('model')}, but teacher '{name}' is {model}: "
                    f"delete the file or give the teacher another name"
                )
            logger.info(set_color(stage, "green") + f" reused from {path}")
        else:
            logger.info(set_color(stage, "green") + " training and recording")
            push_stage(stage)
            try:
                with nested_run_log():  # the teacher's run logs into its own file
                    result = run_recbole_hetcomp(
                        model=model,
                        dataset=config["dataset"],
                        config_dict=teacher_config_dict(config, overrides, name),
                        read_command_line=False,
                        _config_files=config_files,
                    )
            finally:
                pop_stage()
            logger.info(set_color(stage, "green") + f" recorded; its log: {result['log_file']}")
            barrier()  # rank 0 has written the file
            trajectory = load_trajectory(path, fingerprint)
        trajectories.append(trajectory)
        PROGRESS["teachers_done"].append(name)
    return trajectories


def _teacher_meta(config, model, recorder, kept, best_valid_result, test_result, train_dataset, train_time,
                  checkpoint_file=None, popularity_result=None):
    popularity_result = _plain(popularity_result)
    return {
        "teacher_config": {
            "model": config["model"],
            **{k: config[k] for k in ("embedding_size", "epochs", "train_batch_size", "learning_rate", "seed") if k in config},
            "model_properties": {k: config[k] for k in sorted(config.internal_config_dict) if k not in ("MODEL_TYPE",) and k in config and not isinstance(config[k], type)},
        },
        "fingerprint": dataset_fingerprint(config, train_dataset),
        "checkpoint_epochs": [e for e, _ in kept],
        "checkpoint_valid_scores": [s for _, s in kept],
        "checkpoint_rule": config["trajectory_checkpoint_rule"],
        "valid_metric": config["valid_metric"],
        "all_validations": recorder.evaluations,
        "valid_result": _plain(best_valid_result),
        "test_result": _plain(test_result),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_time_s": round(train_time, 3),
        "recording_time_s": round(recorder.recording_time, 3),
        "checkpoint_file": checkpoint_file,
        # the teacher guard's yardstick (trajectory/guard.py): same metric, data and masking
        "popularity_valid_result": popularity_result,
        "popularity_valid_score": popularity_result.get(str(config["valid_metric"]).lower()),
    }


def _metric_row(name, kind, test_result, parameters, inference_s, valid_result=None):
    return {
        "name": name,
        "kind": kind,
        "parameters": int(parameters),
        "inference_time_s": None if inference_s is None else round(float(inference_s), 4),
        "test_result": _plain(test_result),
        "valid_result": _plain(valid_result),
    }


def distillation_rows(config, trajectories, valid_data, test_data, train_dataset, weak=None):
    """Rows for each teacher (from its trajectory file) and for their rank ensemble.

    The ensemble is evaluated here with RecBole's full-sort evaluation and masking; its
    inference cost is every teacher's plus the aggregation. Weak teachers (``weak``:
    name -> reason, from the teacher guard) keep their row, marked ``teacher (left out:
    weak)`` (or ``teacher (weak, kept)`` with ``keep_weak_teachers``); the ensemble's
    parameters and time count only the teachers that take part.
    """
    from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble

    weak = weak or {}
    kind = "teacher (weak, kept)" if config["keep_weak_teachers"] else "teacher (left out: weak)"
    rows = []
    for t in trajectories:
        rows.append(_metric_row(
            t.teacher, kind if t.teacher in weak else "teacher", t.meta.get("test_result", {}),
            t.meta.get("parameters", 0), t.meta.get("inference_time_s"), t.meta.get("valid_result", {}),
        ))
    members = [r for r in rows if r["kind"] != "teacher (left out: weak)"]
    ensemble = RankEnsemble(config, train_dataset).to(config["device"])
    evaluator = with_compat(Trainer)(config, ensemble)
    valid_result = evaluator.evaluate(valid_data, load_best_model=False)
    test_result = evaluator.evaluate(test_data, load_best_model=False)
    aggregation = full_sort_inference_time(ensemble, train_dataset, max(config["topk"]), config["eval_batch_size"])
    teacher_times = [r["inference_time_s"] for r in members]
    total = None if None in teacher_times else sum(teacher_times) + aggregation
    rows.append(_metric_row(
        "Ensemble", "ensemble", test_result, sum(r["parameters"] for r in members), total, valid_result
    ))
    return rows


def format_summary(rows, topk=(10, 20, 50)):
    """A plain-text results table (test metrics), one row per model."""
    metrics = [f"{m}@{k}" for m in ("recall", "ndcg") for k in topk]
    header = ["model", "params", "infer s"] + [m.replace("recall", "R").replace("ndcg", "N") for m in metrics]
    lines = [header]
    for r in rows:
        t = r["inference_time_s"]
        marked = {"teacher (left out: weak)": " (left out: weak)", "teacher (weak, kept)": " (weak, kept)"}
        lines.append(
            [r["name"] + marked.get(r["kind"], ""), f"{r['parameters']:,}", "-" if t is None else f"{t:.3f}"]
            + [f"{r['test_result'].get(m, float('nan')):.4f}" for m in metrics]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in lines]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)


def run_recbole_hetcomp(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, read_command_line=True,
    _config_files=None,
):
    """Train and evaluate one model the RecBole way, with the plugin's lookup and defaults.

    With ``record_trajectory: True`` the model is trained as a teacher and its trajectory
    is written to ``<trajectory_dir>/<dataset>/<trajectory_name or model>.safetensors``.
    Models that learn from teachers (``uses_teachers = True``: the rank ensemble, HetComp)
    first reuse or train every teacher in ``teachers``.

    Args:
        model (str, optional): model name (plugin first, then RecBole). Default: from the config.
        dataset (str, optional): dataset name. Default: from the config.
        config_file_list (list of str, optional): YAML property files.
        config_dict (dict, optional): overrides above the files.
        saved (bool): keep the best checkpoint and reload it for the test.
        read_command_line (bool): also read ``--key=value`` from ``sys.argv``.
        _config_files (list of str, optional): for a teacher trained inside another run, that
            run's property files (named in the teacher's summary line).

    Returns:
        dict: ``model``, ``dataset``, ``best_valid_score``, ``valid_result``, ``test_result``,
        ``parameters``, ``wall_time_s``, ``log_file`` and the config essentials (as written
        to ``result_file``).
    """
    start = time()
    config = Config(
        model=model,
        dataset=dataset,
        config_file_list=config_file_list,
        config_dict=config_dict,
        read_command_line=read_command_line,
    )
    check_result_file(config["result_file"])
    student_seed = check_student_seed(config)
    if getattr(config.model_class, "uses_teachers", False):
        parse_teachers(config["teachers"])
    if hasattr(config.model_class, "check_settings"):
        config.model_class.check_settings(config, None)  # the catalogue-size checks follow once data is loaded
    if config["record_trajectory"] or getattr(config.model_class, "uses_teachers", False):
        check_trajectory_settings(config)
    check_dataset_files(config)
    if config["torch_num_threads"]:
        torch.set_num_threads(int(config["torch_num_threads"]))
    init_seed(config["seed"], config["reproducibility"])
    log_file = init_logger(config)
    logger = getLogger()
    for message in config.unknown_key_warnings:
        logger.warning(message)
    # The console gets one line per model; the log file everything RecBole logs.
    config_files = config_file_list or _config_files
    logger.info(config_summary(config, config_files, log_file))
    # A teacher's run does not read the command line: it names the run that trains it.
    logger.info(("trained inside the run of: " if in_stage() else "") + str(sys.argv), extra=FILE_ONLY)
    logger.info(config, extra=FILE_ONLY)

    dataset = create_dataset(config)
    logger.info(dataset, extra=FILE_ONLY)
    if not in_stage():  # a teacher's data is its student's
        logger.info(f"data: {dataset.user_num - 1} users, {dataset.item_num - 1} items, {dataset.inter_num} interactions")
    metric = str(config["valid_metric"]).lower()
    reported = {f"{m.lower()}@{k}" for m in config["metrics"] for k in config["topk"]}
    if "@" in metric and metric not in reported:
        raise ConfigError(
            f"valid_metric {config['valid_metric']} is not among the reported metrics ({', '.join(sorted(reported))}): "
            f"add its K to --topk or choose another --valid_metric"
        )
    check_rankable(config, dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    train_dataset = train_data._dataset

    model_class = config.model_class  # resolved by Config (plugin first, then RecBole)
    if hasattr(model_class, "check_settings"):
        model_class.check_settings(config, dataset.item_num)  # now with the catalogue's size
    trajectories, weak = None, None
    if getattr(model_class, "uses_teachers", False):
        trajectories = ensure_teacher_trajectories(config, train_dataset, config_files)
        _, weak = guard_teachers(trajectories, config, logger)  # one line per weak teacher, before the student trains
        logger.info(set_color(f"model {config['model']}", "green") + " (teachers ready)")

    # The split (and so the teachers' fingerprint) depends on `seed` only; `student_seed`
    # moves this model's initialisation, its batch order and its sampling.
    init_seed(student_seed + config["local_rank"], config["reproducibility"])
    train_data.generator.manual_seed(student_seed)
    model = model_class(config, train_dataset).to(config["device"])
    logger.info(model, extra=FILE_ONLY)
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    recorder = None
    if config["record_trajectory"]:
        trainer_class = recording_trainer(trainer_class)
    trainer = trainer_class(config, model)
    if config["record_trajectory"]:
        recorder = TrajectoryRecorder(
            train_dataset,
            top_n=config["trajectory_topn"],
            n_observed=config["trajectory_observed"],
            batch_scores=config["eval_batch_size"],
            keep=config["trajectory_keep"],
        )
        trainer.recorder = recorder

    fit_start = time()
    if config["record_trajectory"] is not True:
        PROGRESS["stage"] = f"training {config['model']}"
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_time = time() - fit_start
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")

    inference_time = full_sort_inference_time(model, train_dataset, max(config["topk"]), config["eval_batch_size"])
    rows = None
    if trajectories is not None:
        rows = distillation_rows(config, trajectories, valid_data, test_data, train_dataset, weak)
        if config["model"] != "RankEnsemble":
            rows.append(_metric_row(
                config["model"], "student", test_result, sum(p.numel() for p in model.parameters()),
                inference_time, best_valid_result,
            ))
        elif config["ensemble_weights"] is not None:
            # per teacher that took part (the guard may have dropped some of the configured list)
            weights = getattr(trainer, "chosen_weights", None) or dict(zip(model.teacher_names, model.weights.tolist()))
            rows.append(_metric_row(
                f"Ensemble, weights {weights}", "ensemble", test_result, rows[-1]["parameters"],
                rows[-1]["inference_time_s"], best_valid_result,
            ))
        logger.info(set_color("summary (test)", "yellow") + "\n" + format_summary(rows, config["topk"]))

    if recorder is not None:
        topn, observed, kept = recorder.checkpoints(
            config["trajectory_checkpoints"],
            config["trajectory_checkpoint_rule"],
            config["trajectory_checkpoint_epochs"],
            config["valid_metric_bigger"],
        )
        name = config["trajectory_name"] or config["model"]
        path = trajectory_path(config["trajectory_dir"], config["dataset"], name)
        meta = _teacher_meta(
            config, model, recorder, kept, best_valid_result, test_result, train_dataset, train_time,
            checkpoint_file=os.path.abspath(trainer.saved_model_file) if saved else None,
            popularity_result=popularity_valid_result(config, train_dataset, valid_data),
        )
        meta["inference_time_s"] = round(inference_time, 4)
        if is_writer(config):
            save_trajectory(path, Trajectory(teacher=name, topn=topn, observed=observed, meta=meta))
        logger.info(
            set_color("trajectory", "green")
            + f" of {name}: {len(kept)} checkpoints at epochs {[e for e, _ in kept]} -> {path}"
            + f" (recording took {recorder.recording_time:.2f}s of {train_time:.2f}s training)"
        )

    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "valid_result": _plain(best_valid_result),
        "test_result": _plain(test_result),
        "parameters": sum(p.numel() for p in model.parameters()),
        "inference_time_s": round(inference_time, 4),
        "checkpoint_file": os.path.abspath(trainer.saved_model_file) if saved else None,
        "valid_history": trainer.valid_history,
        "valid_results_history": getattr(trainer, "valid_results_history", []),
        "epoch_train_times_s": trainer.epoch_train_times,
        "train_time_s": round(train_time, 3),
        "wall_time_s": round(time() - start, 3),
        "log_file": log_file,
        "config": config_essentials(config),
    }
    if rows is not None:
        result["rows"] = rows
    if getattr(trainer, "dkc_history", None):
        result["dkc_history"] = trainer.dkc_history
    if getattr(trainer, "chosen_weights", None):
        result["ensemble_weights"] = trainer.chosen_weights
    if recorder is not None:
        result["recording_time_s"] = round(recorder.recording_time, 3)
    if config["result_file"] and is_writer(config):
        write_json_atomic(config["result_file"], result)
        logger.info(f"results written to {config['result_file']}")
    return result


def _distributed_worker(local_rank, model, dataset, config_file_list, config_dict, queue):
    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.errors import HetCompError

    quiet_known_warnings()
    config_dict = dict(config_dict, local_rank=local_rank)
    try:
        result = run_recbole_hetcomp(model, dataset, config_file_list, config_dict)
    except HetCompError as err:
        if local_rank == 0:
            queue.put(("error", str(err)))
        return
    if local_rank == 0:
        queue.put(("ok", result))


def run(model=None, dataset=None, config_file_list=None, config_dict=None, nproc=1, world_size=-1,
        ip="localhost", port="5678", group_offset=0):
    """Run in this process (``nproc=1``) or on RecBole's distributed engine (one process per rank).

    The distributed arguments are RecBole's: ``nproc`` processes on this node, ``world_size``
    in all (several nodes: same ``ip``/``port`` of rank 0's node, each node its
    ``group_offset``). Without GPUs the ranks use gloo on CPU.

    Returns:
        dict: rank 0's result (see :func:`run_recbole_hetcomp`).
    """
    if nproc == 1 and world_size <= 0:
        return run_recbole_hetcomp(model, dataset, config_file_list, config_dict)
    import torch.multiprocessing as mp

    config_dict = dict(config_dict or {})
    config_dict.update(world_size=nproc if world_size == -1 else world_size, ip=ip, port=str(port), nproc=nproc,
                       offset=group_offset)
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_distributed_worker, args=(model, dataset, config_file_list, config_dict, queue), nprocs=nproc, join=True)
    if queue.empty():
        return None
    status, payload = queue.get()
    if status == "error":
        raise ConfigError(payload)
    return payload
