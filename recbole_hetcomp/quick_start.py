"""One entry point for every model: ``run_recbole_hetcomp`` (and ``run``, ``load_data_and_model``).

For an ordinary RecBole model (or a plugin baseline such as CML) this does what RecBole's
``run_recbole`` does (RecBole's own quick_start module is not imported: it imports ray,
which breaks on current setuptools). For a model that learns from teachers the run reads::

    check settings -> load data -> teachers (record missing, load once) -> their ensemble
    -> model -> fit, test -> summary

each step one function below.
"""

import os
from contextlib import nullcontext
from logging import getLogger
from time import time

import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed, set_color

from recbole_hetcomp.checks import check_data, check_settings, resolved_settings, settings_read
from recbole_hetcomp.compat import init_logger, keep_freed_memory_for_training
from recbole_hetcomp.config import Config
from recbole_hetcomp.console import FILE_ONLY, PROGRESS, config_summary, in_stage
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.fileio import write_json_atomic
from recbole_hetcomp.summary import (
    config_essentials,
    ensemble_row,
    evaluates_itself,
    format_summary,
    n_parameters,
    plain,
    summary_rows,
    teacher_rows,
)
from recbole_hetcomp.trainer.trajectory import recording_trainer
from recbole_hetcomp.trajectory.record import prepare_teachers, save_recorded_trajectory
from recbole_hetcomp.trajectory.recorder import TrajectoryRecorder, full_sort_inference_time
from recbole_hetcomp.utils import get_trainer, is_writer

__all__ = ["load_data_and_model", "run", "run_recbole_hetcomp"]


def uses_teachers(config):
    return getattr(config.model_class, "uses_teachers", False)


def start_logging(config, config_files, command_line=None):
    """Threads, seed and the run's log file; the console gets one line per model."""
    if config["torch_num_threads"]:
        torch.set_num_threads(int(config["torch_num_threads"]))
    init_seed(config["seed"], config["reproducibility"])
    log_file = init_logger(config)
    logger = getLogger()
    for message in config.unknown_key_warnings:
        logger.warning(message)
    logger.info(config_summary(config, config_files, log_file))
    # A teacher's run has no command line of its own: it names the run that trains it.
    origin = "trained inside another run" if in_stage() else f"command-line settings: {command_line or {}}"
    logger.info(origin, extra=FILE_ONLY)
    logger.info(config, extra=FILE_ONLY)
    return logger, log_file


def load_data(config, logger):
    """RecBole's dataset and its split, checked (catalogue size, the model's own checks)."""
    dataset = create_dataset(config)
    logger.info(dataset, extra=FILE_ONLY)
    if not in_stage():  # a teacher's data is its student's
        logger.info(f"data: {dataset.user_num - 1} users, {dataset.item_num - 1} items, {dataset.inter_num} interactions")
    check_data(config, dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return train_data, valid_data, test_data


def ensemble_line(row, config):
    """One console line: what the student aims at, before it trains."""
    metric = str(config["valid_metric"]).lower()
    score = row["valid_result"].get(metric)
    shown = f"valid {config['valid_metric']} {score:.4f}" if score is not None else "evaluated"
    which = f"ensemble (weights {row['weights']})" if row.get("weights") else "ensemble"
    return set_color(which, "green") + f" of the teachers that take part: {shown} (the student's target)"


def weights_on_validation(config, train_dataset, valid_data):
    """A student's ``ensemble_weights: validation``: the teachers' weights the rank
    ensemble's search chooses on validation (:class:`RankEnsembleTrainer`), set in the
    config before the student is built, so its targets (and its checkpoint's config) use them.

    Returns:
        dict: teacher -> chosen weight (the teachers that take part).
    """
    from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble
    from recbole_hetcomp.trainer.rankensemble import RankEnsembleTrainer
    from recbole_hetcomp.trainer.base import plugin_trainer

    ensemble = RankEnsemble(config, train_dataset).to(config["device"])
    chosen = plugin_trainer(RankEnsembleTrainer)(config, ensemble).search_weights(valid_data)
    config["ensemble_weights"] = [chosen[name] for name in ensemble.teacher_names]
    return chosen


def seed_model(config, train_data, student_seed):
    """Seed what the model about to be built draws: its initialisation, batch order, sampling.

    The split (and so the teachers' fingerprint) depends on ``seed`` only; ``student_seed``
    moves these. Called right before the model is built (tests build theirs the same way).
    """
    init_seed(student_seed + config["local_rank"], config["reproducibility"])
    train_data.generator.manual_seed(student_seed)


def build_model(config, train_data, student_seed, logger):
    """The model and its trainer (recording the trajectory when ``record_trajectory``),
    seeded by :func:`seed_model`."""
    seed_model(config, train_data, student_seed)
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model, extra=FILE_ONLY)
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    if not config["record_trajectory"]:
        return model, trainer_class(config, model), None
    trainer = recording_trainer(trainer_class)(config, model)
    trainer.recorder = TrajectoryRecorder(
        train_data._dataset,
        top_n=config["trajectory_topn"],
        n_observed=config["trajectory_observed"],
        batch_scores=config["eval_batch_size"],
        keep=config["trajectory_keep"],
    )
    return model, trainer, trainer.recorder


def resume_model(config, trainer, logger):
    """``resume_file``: continue from a checkpoint an interrupted run of the same settings wrote.

    The checkpoint holds the model, the optimiser, every random state (batch order included),
    the trainer's state (a student's curriculum) and the history; training continues after
    the checkpoint's epoch and ends with the numbers of an uninterrupted run. New best
    checkpoints overwrite the resumed file (atomically).

    Raises:
        ConfigError: the checkpoint was written by another model or under other settings.
    """
    from recbole_hetcomp.checks import check_resume_compatible
    from recbole_hetcomp.compat import load_own_checkpoint
    from recbole_hetcomp.trainer.base import latest_file, newer_latest_state

    path = config["resume_file"]
    checkpoint = load_own_checkpoint(path, trainer.device)
    # The run may have trained past its best checkpoint: its latest state saves those epochs.
    # Both come from one run, so the state it continues from is the one to check.
    latest = newer_latest_state(path, checkpoint, trainer.device)
    state = latest if latest is not None else checkpoint
    check_resume_compatible(config, state, path if latest is None else latest_file(path),
                            teachers_digest=getattr(trainer.model, "teachers_digest", None),
                            teacher_names=getattr(trainer.model, "teacher_names", None))
    trainer.resume_checkpoint(path, state)
    since = f" (its latest state, epoch {latest['epoch']}, beside the best of epoch {checkpoint['epoch']})" if latest is not None else ""
    logger.info(f"resumed from {path}{since}: best valid {config['valid_metric']} {float(checkpoint['best_valid_score']):.4f} "
                f"so far; training continues at epoch {trainer.start_epoch}")


def fit_and_test(config, model, trainer, train_data, valid_data, test_data, saved, logger):
    """RecBole's fit, then the test with the best checkpoint, then the serving time."""
    keep_freed_memory_for_training(config, train_data._dataset.item_num)
    fit_start = time()
    if config["record_trajectory"] is not True:
        PROGRESS["stage"] = f"training {config['model']}"
        if saved:
            PROGRESS["checkpoint"] = trainer.saved_model_file  # what an interrupted run can resume from
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_time = time() - fit_start
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    inference_time = full_sort_inference_time(model, train_data._dataset, max(config["topk"]), config["eval_batch_size"])
    return {
        "best_valid_score": float(best_valid_score),
        "valid_result": best_valid_result,
        "test_result": test_result,
        "train_time_s": train_time,
        "inference_time_s": inference_time,
        "checkpoint_file": os.path.abspath(trainer.saved_model_file) if saved else None,
    }


def result_payload(config, model, trainer, fitted, log_file, start, resolved, rows=None, recorder=None):
    """What ``run_recbole_hetcomp`` returns and writes to ``result_file``; ``resolved``: the
    settings the run read, as configured (:func:`~recbole_hetcomp.checks.settings_read` of
    :func:`~recbole_hetcomp.checks.resolved_settings`, taken before the run fills in what it
    chose, e.g. ensemble weights chosen on validation)."""
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": fitted["best_valid_score"],
        "valid_score_bigger": config["valid_metric_bigger"],
        "valid_result": plain(fitted["valid_result"]),
        "test_result": plain(fitted["test_result"]),
        "parameters": n_parameters(model),
        "inference_time_s": round(fitted["inference_time_s"], 4),
        "checkpoint_file": fitted["checkpoint_file"],
        "valid_history": trainer.valid_history,
        "valid_results_history": getattr(trainer, "valid_results_history", []),
        "epoch_train_times_s": trainer.epoch_train_times,
        "train_time_s": round(fitted["train_time_s"], 3),
        "wall_time_s": round(time() - start, 3),
        "log_file": log_file,
        "config": config_essentials(config),
        # the settings the run read: a kept result can be checked against today's defaults
        "resolved_config": resolved,
    }
    if rows is not None:
        result["rows"] = rows
    if getattr(trainer, "dkc_history", None):
        result["dkc_history"] = trainer.dkc_history
    if getattr(trainer, "chosen_weights", None):
        result["ensemble_weights"] = trainer.chosen_weights
    if recorder is not None:
        result["recording_time_s"] = round(recorder.recording_time, 3)
    return result


def run_recbole_hetcomp(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, command_line=None,
    _config_files=None,
):
    """Train and evaluate one model the RecBole way, with the plugin's lookup and defaults.

    With ``record_trajectory: True`` the model is trained as a teacher and its trajectory
    is written to ``<trajectory_dir>/<dataset>/<trajectory_name or model>.safetensors``.
    Models that learn from teachers (``uses_teachers = True``: the rank ensemble, HetComp,
    RRD, CL-DRD) first reuse or train every teacher in ``teachers``.

    Args:
        model (str, optional): model name (plugin first, then RecBole). Default: from the config.
        dataset (str, optional): dataset name. Default: from the config.
        config_file_list (list of str, optional): YAML property files.
        config_dict (dict, optional): overrides above the files.
        saved (bool): keep the best checkpoint and reload it for the test.
        command_line (dict, optional): ``--key=value`` settings as parsed by
            :func:`recbole_hetcomp.cli.parse_settings` (values are strings, converted as
            RecBole converts its command line); they win over ``config_dict`` and an
            unknown key is an error.
        _config_files (list of str, optional): for a teacher trained inside another run, that
            run's property files (named in the teacher's summary line).

    Returns:
        dict: ``model``, ``dataset``, ``best_valid_score``, ``valid_result``, ``test_result``,
        ``parameters``, ``wall_time_s``, ``log_file``, the config essentials, and ``rows``
        (the summary table) for a model that learns from teachers (as written to ``result_file``).
    """
    start = time()
    config = Config(model, dataset, config_file_list, config_dict, command_line=command_line)
    resolved = resolved_settings(config)
    student_seed = check_settings(config)
    config_files = config_file_list or _config_files
    logger, log_file = start_logging(config, config_files, command_line)
    train_data, valid_data, test_data = load_data(config, logger)
    teachers, rows, chosen = None, None, None
    if uses_teachers(config):
        teachers = prepare_teachers(config, train_data._dataset, run_recbole_hetcomp, config_files, logger)
        rows = teacher_rows(config, teachers)

    with teachers.shared() if teachers is not None else nullcontext():  # every model takes these teachers
        if teachers is not None:
            members = list(rows)
            if not evaluates_itself(config):  # (a run of the equal-weight ensemble evaluates it below)
                rows.append(ensemble_row(config, members, valid_data, test_data, train_data._dataset))
            if config["model"] != "RankEnsemble" and config["ensemble_weights"] == "validation":
                chosen = weights_on_validation(config, train_data._dataset, valid_data)
                # The student learns this one: the table shows it next to the equal-weight one.
                rows.append(ensemble_row(config, members, valid_data, test_data, train_data._dataset, weights=chosen))
            if not evaluates_itself(config):
                logger.info(ensemble_line(rows[-1], config))
            logger.info(set_color(f"model {config['model']}", "green") + " (teachers ready)")
        model, trainer, recorder = build_model(config, train_data, student_seed, logger)
        if config["resume_file"]:
            resume_model(config, trainer, logger)
        fitted = fit_and_test(config, model, trainer, train_data, valid_data, test_data, saved, logger)
    if teachers is not None:
        rows = summary_rows(config, rows, model, trainer, fitted)
        logger.info(set_color("summary (test)", "yellow") + "\n" + format_summary(rows, config["topk"]))
    # (before the trajectory's metadata and the result file read settings only to record them)
    read = settings_read(resolved, config.read_keys())
    if recorder is not None:
        save_recorded_trajectory(config, model, recorder, fitted, train_data._dataset, valid_data,
                                 fitted["checkpoint_file"], logger)

    result = result_payload(config, model, trainer, fitted, log_file, start, read, rows, recorder)
    if chosen is not None:
        result["ensemble_weights"] = chosen
    elif getattr(model, "weights_by_teacher", None):  # a list given in the config
        result["ensemble_weights"] = model.weights_by_teacher
    if config["result_file"] and is_writer(config):
        write_json_atomic(config["result_file"], result)
        logger.info(f"results written to {config['result_file']}")
    return result


def load_data_and_model(model_file):
    """A saved model back for serving: RecBole's ``load_data_and_model`` for this plugin.

    The checkpoint's config rebuilds the same split (a student reloads its teachers'
    trajectory files, checked against that split) and the model with its best parameters.

    Args:
        model_file (str): a checkpoint a run of this plugin wrote (``saved/<Model>-....pth``;
            a result file's ``checkpoint_file``).

    Returns:
        tuple: ``(config, model, dataset, train_data, valid_data, test_data)`` as RecBole's,
        the model in eval mode on the config's device.

    Raises:
        FileNotFoundError: no such checkpoint.
    """
    from recbole_hetcomp.compat import load_own_checkpoint, patch_stack

    patch_stack()  # the checkpoint holds RecBole objects that need numpy's old aliases
    checkpoint = load_own_checkpoint(model_file, "cpu")
    config = checkpoint["config"]
    config.compatibility_settings()
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model.eval(), dataset, train_data, valid_data, test_data


def _distributed_worker(local_rank, model, dataset, config_file_list, config_dict, command_line, queue):
    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.errors import HetCompError

    quiet_known_warnings()
    config_dict = dict(config_dict, local_rank=local_rank)
    try:
        result = run_recbole_hetcomp(model, dataset, config_file_list, config_dict, command_line=command_line)
    except HetCompError as err:
        if local_rank == 0:
            queue.put(("error", str(err)))
        return
    if local_rank == 0:
        queue.put(("ok", result))


def run(model=None, dataset=None, config_file_list=None, config_dict=None, nproc=1, world_size=-1,
        ip="localhost", port="5678", group_offset=0, command_line=None):
    """Run in this process (``nproc=1``) or on RecBole's distributed engine (one process per rank).

    The distributed arguments are RecBole's: ``nproc`` processes on this node, ``world_size``
    in all (several nodes: same ``ip``/``port`` of rank 0's node, each node its
    ``group_offset``). Without GPUs the ranks use gloo on CPU.

    Returns:
        dict: rank 0's result (see :func:`run_recbole_hetcomp`).
    """
    if nproc == 1 and world_size <= 0:
        return run_recbole_hetcomp(model, dataset, config_file_list, config_dict, command_line=command_line)
    import torch.multiprocessing as mp

    config_dict = dict(config_dict or {})
    config_dict.update(world_size=nproc if world_size == -1 else world_size, ip=ip, port=str(port), nproc=nproc,
                       offset=group_offset)
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_distributed_worker, args=(model, dataset, config_file_list, config_dict, command_line, queue),
             nprocs=nproc, join=True)
    if queue.empty():
        return None
    status, payload = queue.get()
    if status == "error":
        raise ConfigError(payload)
    return payload
