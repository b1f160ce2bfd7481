"""Teachers inside a run: train and record the missing ones, then hand out one TeacherSet.

A model that learns from teachers (``uses_teachers``) first needs every configured
teacher's trajectory file for this split. :func:`prepare_teachers` reuses the files that
are there, trains and records the missing ones (each a nested run of the
``run`` function the pipeline hands in, :func:`recbole_hetcomp.quick_start.run_recbole_hetcomp`,
with its own log file), and then
loads all of them once into a :class:`~recbole_hetcomp.trajectory.teacherset.TeacherSet`.
:func:`save_recorded_trajectory` is the other side: the end of a teacher's own run.

One writer per trajectory file, even across processes: a teacher is trained under an
exclusive lock on a hidden file beside it (``.<teacher>.safetensors.lock``); a second run (another shell, another benchmark row)
that needs the same teacher waits, then reuses the file the first one wrote.
"""

import os
from contextlib import contextmanager
from logging import getLogger

from recbole.utils import set_color

from recbole_hetcomp.compat import nested_run_log
from recbole_hetcomp.console import PROGRESS, pop_stage, push_stage
from recbole_hetcomp.summary import n_parameters, plain
from recbole_hetcomp.trajectory.guard import popularity_valid_result
from recbole_hetcomp.trajectory.store import (
    Trajectory, dataset_fingerprint, read_metadata, save_trajectory, trajectory_path,
)
from recbole_hetcomp.trajectory.teacherset import TeacherSet, parse_teachers
from recbole_hetcomp.utils import barrier, is_writer

# Keys that describe how the *student* (or whatever model the command line names) trains;
# teachers trained inside its run do not inherit them.
MODEL_LEVEL_KEYS = {
    "model", "epochs", "learning_rate", "train_batch_size", "embedding_size", "weight_decay",
    "learner", "stopping_step", "eval_step", "train_neg_sample_args", "result_file",
    "record_trajectory", "trajectory_name", "clip_grad_norm", "reg_weight", "student_seed", "resume_file",
}


def teacher_config_dict(config, overrides, name):
    """Config for a teacher trained inside another model's run: the run's dataset,
    protocol and trajectory settings, the teacher's own model defaults, then
    ``teacher_defaults`` and the teacher's overrides."""
    inherited = {k: v for k, v in config.external_config_dict.items() if k not in MODEL_LEVEL_KEYS}
    inherited.update(config["teacher_defaults"] or {})
    inherited.update(overrides)
    inherited.update(record_trajectory=True, trajectory_name=name, result_file=None)
    return inherited


@contextmanager
def one_writer(path, config, logger=None):
    """Hold an exclusive lock on ``.<name>.lock`` beside ``path`` (a distributed run's ranks train together: no lock).

    The lock file stays (removing it would let a third process lock a file nobody else
    sees); it is hidden, empty and never read.
    """
    if not config["single_spec"]:
        yield
        return
    import fcntl

    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f".{name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if logger is not None:
                logger.info(f"another run is recording {path}: waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_missing_teachers(config, run, config_files=None, logger=None):
    """Train and record every configured teacher whose trajectory file is not there yet.

    Args:
        config (Config): the run's config (``teachers``, ``trajectory_dir``, ...).
        run (callable): trains one teacher, ``run(model=, dataset=, config_dict=,
            _config_files=)`` as :func:`recbole_hetcomp.quick_start.run_recbole_hetcomp`.
        config_files (list of str, optional): the run's property files (their settings
            reach the teachers through the config; the names go into their summaries).
        logger (logging.Logger, optional): one line per teacher.
    """
    logger = logger or getLogger()
    specs = parse_teachers(config["teachers"])
    PROGRESS.update(trajectory_folder=os.path.join(config["trajectory_dir"], config["dataset"]),
                    teachers=len(specs), teachers_done=[])
    for i, (name, model, overrides) in enumerate(specs, start=1):
        stage = f"teacher {i} of {len(specs)}: {name}"
        PROGRESS["stage"] = stage
        path = trajectory_path(config["trajectory_dir"], config["dataset"], name)
        with one_writer(path, config, logger):
            if os.path.isfile(path):
                logger.info(set_color(stage, "green") + f" reused from {path}")
                note = reused_teacher_note(path, name, model, teacher_config_dict(config, overrides, name), config["dataset"])
                if note:
                    logger.warning(note)
            else:
                logger.info(set_color(stage, "green") + " training and recording")
                push_stage(stage)
                try:
                    with nested_run_log():  # the teacher's run logs into its own file
                        result = run(
                            model=model, dataset=config["dataset"],
                            config_dict=teacher_config_dict(config, overrides, name), _config_files=config_files,
                        )
                finally:
                    pop_stage()
                logger.info(set_color(stage, "green") + f" recorded; its log: {result['log_file']}")
        barrier()  # rank 0 has written the file
        PROGRESS["teachers_done"].append(name)


def reused_teacher_note(path, name, model, teacher_dict, dataset):
    """Whether a reused trajectory file was recorded with the settings this run gives its teacher.

    A teacher may be recorded in a run of its own, with settings the student's ``teachers``
    list does not repeat, so a difference is reported, not refused (another split is refused
    when the files are loaded). Without it, an edited teacher override, ``teacher_defaults``
    or model YAML default would leave the teacher as it was, silently.

    Returns:
        str or None: one line naming the first setting that differs, both values and the
        fix; None when the teacher would be trained the same way today.
    """
    from recbole_hetcomp.checks import teacher_settings_differences
    from recbole_hetcomp.config import resolve_settings

    differences = teacher_settings_differences(read_metadata(path), resolve_settings(model, dataset, None, teacher_dict))
    if not differences:
        return None
    key, then, now = differences[0]
    others = [k for k, _, _ in differences[1:]]
    more = f" (and {len(others)} more: {', '.join(others[:3])}{', ...' if len(others) > 3 else ''})" if others else ""
    return (f"teacher {name} reused from {path} was recorded with {key}={then!r} where this run's settings give "
            f"{key}={now!r}{more}: delete the file (or use another trajectory_dir) to record it with this run's settings")


def prepare_teachers(config, train_dataset, run, config_files=None, logger=None):
    """Every teacher recorded (by ``run``, see :func:`record_missing_teachers`), then all
    loaded once; weak teachers reported in one line each.

    Returns:
        TeacherSet: the run's teachers, to share with every model the run builds.
    """
    record_missing_teachers(config, run, config_files, logger)
    return TeacherSet.load(config, train_dataset, logger or getLogger())


# Environment variables that change which float kernels run (and so the last digits of a
# training run): MKL's code path, ATen's vectorisation level, oneDNN's instruction set.
KERNEL_SETTINGS = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def recording_machine(config):
    """Where a teacher was recorded. Training is deterministic on one machine, but float
    kernels differ by CPU and library, so a re-recording on another machine may differ in
    its last digits and then in its chosen checkpoints: this says which machines to compare
    when two recordings' hashes do not match."""
    import platform

    import torch

    cpu = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key in ("vendor_id", "model name", "cpu family", "model", "stepping") and key not in cpu:
                    cpu[key] = value
                if not line.strip() and cpu:
                    break
    except OSError:  # not Linux
        cpu["model name"] = platform.processor() or platform.machine()
    return {
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(),
        "kernel_settings": {k: os.environ[k] for k in KERNEL_SETTINGS if k in os.environ},
    }


def teacher_meta(config, model, recorder, kept, fitted, train_dataset, valid_data, checkpoint_file=None):
    """The metadata stored beside a recorded teacher's arrays (see trajectory/store.py)."""
    popularity = plain(popularity_valid_result(config, train_dataset, valid_data))
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
        "valid_result": plain(fitted["valid_result"]),
        "test_result": plain(fitted["test_result"]),
        "parameters": n_parameters(model),
        "train_time_s": round(fitted["train_time_s"], 3),
        "recording_time_s": round(recorder.recording_time, 3),
        "checkpoint_file": checkpoint_file,
        # the teacher guard's yardstick (trajectory/guard.py): same metric, data and masking
        "popularity_valid_result": popularity,
        "popularity_valid_score": popularity.get(str(config["valid_metric"]).lower()),
        "inference_time_s": round(fitted["inference_time_s"], 4),
        "recorded_on": recording_machine(config),
    }


def save_recorded_trajectory(config, model, recorder, fitted, train_dataset, valid_data, checkpoint_file, logger):
    """End of a teacher's run: pick its checkpoints and write its trajectory file."""
    topn, observed, kept = recorder.checkpoints(
        config["trajectory_checkpoints"],
        config["trajectory_checkpoint_rule"],
        config["trajectory_checkpoint_epochs"],
        config["valid_metric_bigger"],
    )
    name = config["trajectory_name"] or config["model"]
    path = trajectory_path(config["trajectory_dir"], config["dataset"], name)
    meta = teacher_meta(config, model, recorder, kept, fitted, train_dataset, valid_data, checkpoint_file)
    if is_writer(config):
        save_trajectory(path, Trajectory(teacher=name, topn=topn, observed=observed, meta=meta))
    logger.info(
        set_color("trajectory", "green")
        + f" of {name}: {len(kept)} checkpoints at epochs {[e for e, _ in kept]} -> {path}"
        + f" (recording took {recorder.recording_time:.2f}s of {fitted['train_time_s']:.2f}s training)"
    )
