"""Settings checks that run before any data loads, and the data checks right after.

A bad value is one :class:`~recbole_hetcomp.errors.ConfigError` line naming the problem and
the fix, raised before any teacher or student trains (and, for everything that does not
need the data, before the dataset is read).
"""

import os

import numpy as np

from recbole_hetcomp.data.download import fetch_dataset
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.trajectory.guard import check_guard_ratio
from recbole_hetcomp.trajectory.teacherset import check_weight_list, parse_teachers
from recbole_hetcomp.utils import barrier, is_writer


def check_settings(config):
    """Every check that needs only the config, in the order a user would fix them.

    Args:
        config (Config): the run's config.

    Returns:
        int: the seed of the model this run trains (``student_seed``, default ``seed``).

    Raises:
        ConfigError: the first bad setting, or a dataset whose files are missing and
            cannot be downloaded.
    """
    check_result_file(config["result_file"])
    check_resume_file(config)
    student_seed = check_student_seed(config)
    model_class = config.model_class
    if getattr(model_class, "uses_teachers", False):
        parse_teachers(config["teachers"])
        check_ensemble_weights(config["ensemble_weights"])
    if hasattr(model_class, "check_settings"):
        model_class.check_settings(config, None)  # the catalogue-size checks follow once data is loaded
    if config["record_trajectory"] or getattr(model_class, "uses_teachers", False):
        check_trajectory_settings(config)
    check_valid_metric(config)
    check_dataset_files(config)
    return student_seed


def check_data(config, dataset):
    """The checks that need the loaded dataset (catalogue size, users, the model's own)."""
    check_rankable(config, dataset)
    if hasattr(config.model_class, "check_settings"):
        config.model_class.check_settings(config, dataset.item_num)


def check_valid_metric(config):
    """``valid_metric`` must be one of the metrics the run computes."""
    metric = str(config["valid_metric"]).lower()
    reported = {f"{m.lower()}@{k}" for m in config["metrics"] for k in config["topk"]}
    if "@" in metric and metric not in reported:
        raise ConfigError(
            f"valid_metric {config['valid_metric']} is not among the reported metrics ({', '.join(sorted(reported))}): "
            f"add its K to --topk or choose another --valid_metric"
        )


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


def check_ensemble_weights(weights):
    """``ensemble_weights``' form, before any teacher trains; the count is checked once the
    teachers taking part are known (the guard may leave some out)."""
    if weights is None or weights == "validation":
        return
    check_weight_list(weights)


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


def check_resume_file(config):
    """``resume_file`` must be an existing checkpoint, and not for a teacher being recorded."""
    path = config["resume_file"]
    if not path:
        return
    if not os.path.isfile(path):
        raise ConfigError(f"resume_file {path} does not exist: give the checkpoint an interrupted run wrote (saved/<Model>-....pth)")
    if config["record_trajectory"]:
        raise ConfigError("resume_file cannot continue a teacher's recording (its trajectory is kept in memory "
                          "until it ends): record the teacher again, without --resume_file")
    if not config["single_spec"]:
        raise ConfigError("resume_file continues single-process runs only (each rank's random state would have to be "
                          "kept): resume without --nproc, or start the distributed run over")


# Settings that may change when a run is resumed: where files go, how much is shown, the
# thread count (which can move the last digits of floating-point sums) and the epoch cap (to
# extend a run). Any other difference (the device, data-loading workers, ...) would make the
# continued run something no uninterrupted run computes.
# config_files is where the settings were read from, not a setting: the settings themselves are
# compared key by key, so the same protocol files from another checkout (a worktree) may continue a run.
RESUME_MAY_CHANGE = {
    "resume_file", "config_files", "result_file", "epochs", "show_progress", "state", "progress_interval", "torch_num_threads",
    "cpu_keep_freed_memory",
    "checkpoint_dir", "trajectory_dir", "data_path", "log_tensorboard", "check_keys", "download", "dataset_downloads",
}


def check_resume_compatible(config, checkpoint, path, teachers_digest=None, teacher_names=None):
    """Refuse a checkpoint written by another model, under other settings (first difference
    named), from other teachers (the members named when they differ), or at the epoch cap already."""
    saved = checkpoint.get("config")
    if saved is None or "rng_state" not in checkpoint:
        raise ConfigError(f"resume_file {path} is not a checkpoint written by this plugin: start the run over")
    if str(saved["model"]).lower() != str(config["model"]).lower():
        raise ConfigError(f"resume_file {path} was written by model {saved['model']}, not {config['model']}: "
                          f"give a {config['model']} checkpoint")
    if (checkpoint["rng_state"] or {}).get("batch_order") is None:
        raise ConfigError(f"resume_file {path} holds no batch order (written before 2026-12-04): "
                          f"it cannot be continued exactly; start the run over")
    if checkpoint["epoch"] + 1 >= config["epochs"]:
        raise ConfigError(f"resume_file {path} was written at epoch {checkpoint['epoch']}, the last of --epochs="
                          f"{config['epochs']}: nothing is left to train; raise --epochs to continue it")
    # Settings before teachers: a changed setting (ensemble_weights, teachers) also changes the
    # teachers taking part, and the setting is the difference the user can act on.
    differs = first_difference(resolved_settings(saved), resolved_settings(config), ignore={"epochs"})
    if differs:
        key, then, now = differs
        raise ConfigError(f"resume_file {path} was written with {key}={then!r}, this run has "
                          f"{key}={now!r}: resume with the same settings (only {', '.join(sorted(RESUME_MAY_CHANGE - {'resume_file'}))} may change)")
    # (checkpoints written before the digest was kept, earlier on 2026-12-04, hold none)
    if "teachers_digest" in checkpoint and checkpoint["teachers_digest"] != teachers_digest:
        then_names, now_names = checkpoint.get("teacher_names"), list(teacher_names or [])
        if then_names and then_names != now_names:
            # same settings, other members: the teacher guard judged other recordings, or the
            # code that picks members changed (teachers weighted 0 are left out since 2026-12-05)
            raise ConfigError(f"resume_file {path} was trained from teachers {', '.join(then_names)}; with the same "
                              f"settings this run takes {', '.join(now_names) or 'none'}: continue it with the "
                              f"trajectory files and code version that started it, or start the run over")
        raise ConfigError(f"resume_file {path} was trained from other teachers ({checkpoint.get('teachers_digest')}) "
                          f"than those in trajectory_dir now ({teachers_digest}): resume with the same trajectory files")


def resolved_settings(config):
    """Every setting that can move a run's numbers, as plain data (JSON-ready): the final
    config less what only says where files go, how much is shown and the thread count
    (:data:`RESUME_MAY_CHANGE`; the epoch cap is kept). Result files hold those the run read,
    so a kept result can be checked against what its row resolves to today, model YAML
    defaults included (:func:`kept_result_difference`)."""
    return {key: _comparable(value) for key, value in sorted(config.final_config_dict.items()) if _counts(key)}


def settings_read(resolved, read):
    """What a result file keeps of a run's :func:`resolved_settings`: the settings it read
    (``read``: :meth:`recbole_hetcomp.config.Config.read_keys`). A key it read that nothing
    set is kept as None: a property file setting it later would change the run."""
    return {key: resolved.get(key) for key in sorted(k for k in read if isinstance(k, str)) if _counts(key)}


def _counts(key):
    """Whether a setting can change a run's numbers (the epoch cap can: it ends a run)."""
    return key == "epochs" or key not in RESUME_MAY_CHANGE


# A kept result may come from another device: the same computation, float-level differences.
KEPT_MAY_DIFFER = {"device", "gpu_id", "use_gpu"}


def kept_result_difference(result, now):
    """Whether a kept result file still stands for a run configured as ``now``.

    Args:
        result (dict): a result file (``result_file``) of an earlier run; its
            ``resolved_config`` holds the settings that run read (a key its property files
            set but it never read, e.g. another model's, cannot have moved its numbers).
        now (dict): :func:`resolved_settings` of the run it would be today.

    Returns:
        tuple or None: ``(key, then_value, now_value)`` of the first of those settings that
        differs (the device aside), else None. Files written before 2026-12-05 hold only the
        essentials (:data:`recbole_hetcomp.summary.ESSENTIAL_KEYS`): those are compared.
    """
    then = result.get("resolved_config")
    if then is None:
        then = {k: _comparable(v) for k, v in (result.get("config") or {}).items() if _counts(k)}
    return first_difference(then, {k: now.get(k) for k in then}, ignore=KEPT_MAY_DIFFER)


# What a recorded teacher's settings may differ in from today's and still stand for the same
# teacher: where files go, what is shown, the device and threads (as for a resumed run), how
# the evaluation is reported (the validation metric itself counts: it picks the checkpoints),
# and the student's settings a teacher's config carries without using them.
TEACHER_MAY_DIFFER = (RESUME_MAY_CHANGE - {"epochs"}) | KEPT_MAY_DIFFER | {
    "teachers", "teacher_defaults", "keep_weak_teachers", "teacher_guard_ratio", "student_seed",
    "record_trajectory", "trajectory_name", "metrics", "topk", "eval_batch_size", "metric_decimal_place",
    "loss_decimal_place", "log_wandb", "wandb_project", "worker", "dataset_save_path", "dataloaders_save_path",
    "save_dataset", "save_dataloaders",
}


def teacher_settings_differences(meta, now):
    """What a recorded teacher was trained with that its config no longer gives.

    Args:
        meta (dict): a trajectory file's metadata (:func:`recbole_hetcomp.trajectory.store.read_metadata`);
            its ``teacher_config`` holds the model, the main training settings and
            ``model_properties`` (every default the teacher's run was configured with).
        now (dict): :func:`resolved_settings` of the teacher's config today.

    Returns:
        list of tuple: ``(key, recorded_value, value_today)`` in key order, the keys of
        :data:`TEACHER_MAY_DIFFER` aside; empty when the teacher would be trained the same way.
    """
    recorded = meta.get("teacher_config") or {}
    then = dict(recorded.get("model_properties") or {})
    then.update((k, v) for k, v in recorded.items() if k != "model_properties")
    then = {k: _comparable(v) for k, v in then.items()}
    return differences(then, {k: now.get(k) for k in then}, ignore=TEACHER_MAY_DIFFER)


def differences(then, now, ignore=()):
    """``(key, then_value, now_value)`` for every key (in name order) whose value differs
    between two :func:`resolved_settings` dicts (a key one lacks counts as None)."""
    return [(key, then.get(key), now.get(key)) for key in sorted(set(then) | set(now))
            if key not in ignore and then.get(key) != now.get(key)]


def first_difference(then, now, ignore=()):
    """The first of :func:`differences`, else None."""
    found = differences(then, now, ignore)
    return found[0] if found else None


def _comparable(value):
    """Config values as plain data (enums and tuples as their text)."""
    if isinstance(value, dict):
        return {str(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
