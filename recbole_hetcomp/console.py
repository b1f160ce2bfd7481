"""What a run prints: a short console beside RecBole's complete log file.

RecBole logs everything it knows to the console and to the run's log file alike: the whole
config, the dataset and the model for every model trained, and three lines per epoch. A
pipeline of six teachers and a student printed about 5,200 lines. Here the log file keeps
all of it; the console shows a summary per model, the pipeline's progress (stage, epoch e
of max, ETA) and the results. Records go to the file only when they carry
:data:`FILE_ONLY` or are RecBole's per-epoch and per-loader INFO lines (see
:class:`ConsoleFilter`); warnings always reach the console.
"""

import logging
import os
import sys
from time import perf_counter

import torch

# ``extra=`` of a record that belongs in the log file only (the full config, the dataset, the model).
FILE_ONLY = {"file_only": True}

# RecBole modules whose INFO lines are per epoch or per data loader: the file has them.
_FILE_ONLY_MODULES = (
    os.path.join("recbole", "trainer", "trainer.py"),
    os.path.join("recbole", "data", "utils.py"),
)

# The stage of the pipeline the current training belongs to, outermost first
# (["teacher 2 of 6: CML"] while a student's run trains its second teacher).
_STAGES = []


class ConsoleFilter(logging.Filter):
    """Keeps the console readable; the log file is not filtered.

    Dropped: records marked :data:`FILE_ONLY`; INFO and DEBUG records of RecBole's trainer
    and data-loader modules (three lines per epoch, two per loader); a warning identical to
    one already shown (RecBole repeats some for every model).
    """

    def __init__(self):
        super().__init__()
        self._warned = set()

    def filter(self, record):
        if getattr(record, "file_only", False):
            return False
        if record.levelno < logging.WARNING:
            return not record.pathname.endswith(_FILE_ONLY_MODULES)
        message = record.getMessage()
        if message in self._warned:
            return False
        self._warned.add(message)
        return True


class ConsoleHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (as RecBole's), through tqdm so a bar stays whole."""

    def __init__(self):
        super().__init__(sys.stderr)

    def emit(self, record):
        try:
            from tqdm import tqdm

            self.stream = sys.stderr  # the stream of now (replaced by test runners, redirections)
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


# Where a run stands, for the one line printed when it is interrupted (Ctrl-C).
PROGRESS = {}


def interrupted_message():
    """One line: what an interrupted run kept, and how to resume it."""
    folder, done, total = PROGRESS.get("trajectory_folder"), PROGRESS.get("teachers_done", []), PROGRESS.get("teachers")
    stage = PROGRESS.get("stage", "starting")
    checkpoint = PROGRESS.get("checkpoint")
    resume = (f"; its best checkpoint so far is {checkpoint}: add --resume_file={checkpoint} to continue from it"
              if checkpoint and os.path.isfile(checkpoint) else "")
    if not folder:
        return f"interrupted ({stage}); " + (f"nothing else was kept{resume}" if resume else "nothing was kept")
    kept = f"{len(done)} of {total} teacher trajectories kept in {folder}" + (f" ({', '.join(done)})" if done else "")
    return (f"interrupted ({stage}): {kept}; run the same command again to resume (recorded teachers are reused, "
            f"the student starts over{resume})")


def console_handler():
    """The console handler of this process's root logger, or None."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, ConsoleHandler)), None)


def push_stage(label):
    """Name the stage that the training which follows belongs to (pair with :func:`pop_stage`)."""
    _STAGES.append(label)


def pop_stage():
    if _STAGES:
        _STAGES.pop()


def in_stage():
    """Whether this training is a stage of an enclosing pipeline (a teacher in a student's run)."""
    return bool(_STAGES)


def stage_label(model):
    """The innermost stage's label, or the model's name when no pipeline stage is open."""
    return _STAGES[-1] if _STAGES else model


def device_description(device):
    """The device the run really uses, in words: ``cpu (no GPU visible)``, ``cuda:0 (NVIDIA H200)``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu" and not torch.cuda.is_available():
        return "cpu (no GPU visible)"
    return str(device)


def config_summary(config, config_files=None, log_file=None):
    """One line: what is trained, where, and how (the full config is in the log file).

    Args:
        config (Config): the run's config.
        config_files (list of str, optional): the property files given (``--config_files``).
        log_file (str, optional): the run's log file, named at the end.
    """
    from recbole.utils import ModelType

    threads = torch.get_num_threads()
    if isinstance(config_files, str):
        config_files = config_files.split()  # as RecBole's Config reads a string
    files = ", ".join(os.path.basename(f) for f in config_files) if config_files else "none"
    if config["MODEL_TYPE"] == ModelType.TRADITIONAL:
        training = "one fit, no epochs"  # RecBole's TraditionalTrainer (EASE, the rank ensemble, ...)
    else:
        training = f"epochs {config['epochs']}, batch {config['train_batch_size']}, learning rate {config['learning_rate']}"
    parts = [
        f"{config['model']} on {config['dataset']}",
        f"device {device_description(config['device'])}, {threads} torch thread{'s' if threads != 1 else ''}",
        training,
        f"config files: {files}",
    ]
    if log_file:
        parts.append(f"full config in {log_file}")
    return "; ".join(parts)


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class EpochProgress:
    """Progress of one model's training: ``<stage>: epoch e of max``, with an ETA.

    On a terminal (the console handler's stream is a TTY) a tqdm bar; otherwise a plain
    INFO line after the first epoch and then at most every ``interval`` seconds (0: every
    epoch). The ETA assumes every remaining epoch runs (early stopping may end sooner) at
    the mean wall time per epoch so far, validations included.

    Args:
        label (str): the stage, e.g. ``teacher 2 of 6: CML``.
        total (int): the maximum number of epochs.
        start (int): the first epoch trained (> 0 when resuming).
        interval (float): seconds between plain lines.
        logger (logging.Logger): where plain lines go.
    """

    def __init__(self, label, total, start=0, interval=30.0, logger=None):
        self.label, self.total, self.start, self.interval = label, int(total), int(start), float(interval)
        self.logger = logger or logging.getLogger()
        self._t0 = perf_counter()
        self._last_line = None
        self.lines = 0
        self.bar = None
        handler = console_handler()
        shown = handler is not None and handler.level <= logging.INFO and self.logger.isEnabledFor(logging.INFO)
        if shown and self.total > 1 and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.start, desc=f"{label}: epoch", unit="epoch",
                            file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(self, epoch_idx, note=""):
        """Epoch ``epoch_idx`` (0-based) has ended; ``note``: e.g. the best validation so far."""
        done = epoch_idx + 1
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if note:
                self.bar.set_postfix_str(note, refresh=True)
            return
        now = perf_counter()
        first = self._last_line is None
        if done >= self.total or not (first or self.interval <= 0 or now - self._last_line >= self.interval):
            return  # the last epoch is reported by the trainer's summary line
        self._last_line = now
        elapsed = now - self._t0
        per_epoch = elapsed / max(done - self.start, 1)
        eta = per_epoch * (self.total - done)
        self.lines += 1
        self.logger.info(
            f"{self.label}: epoch {done} of {self.total}, {per_epoch:.2f}s per epoch, "
            f"ETA {_duration(eta)} at most (early stopping may end it sooner)" + (f"; {note}" if note else "")
        )

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
