"""The plugin's base trainer behaviour, put in front of any RecBole trainer class.

Every model this plugin runs (its own and RecBole's, teachers and students) trains through
RecBole's trainer with :class:`PluginTrainerMixin` in front (:func:`plugin_trainer`; the
lookup :func:`recbole_hetcomp.utils.get_trainer` applies it). It adds:

* **History for result files and curves:** ``valid_history`` ([epoch, valid score]),
  ``valid_results_history`` (every metric at every validation) and
  ``epoch_train_times``, kept in checkpoints.
* **Checkpoints an exact resume can trust:** RecBole's checkpoints hold no random-number
  state and not the best validation result, and are written in place: a resumed run
  diverges from an uninterrupted one, and a kill during ``torch.save`` leaves a corrupt
  best checkpoint. Here checkpoints are written atomically with the RNG states, the best
  validation result and the history, and restored on resume, so a resumed run ends with
  the same numbers as an uninterrupted one (the training loader's batch-order generator
  included: RecBole's own resume replays the first epoch's batch order). Trainers add their
  own state through ``_extra_checkpoint_state`` / ``_load_extra_checkpoint_state``.
* **A run killed between two bests loses little:** after each validation that is not a new
  best, the whole training state is also written beside the best checkpoint, as
  ``<checkpoint>.latest`` (removed when the fit ends); resuming the best checkpoint continues
  from that state when it is newer, instead of training every epoch since the best again.
* **One checkpoint name per run:** carrying the process id (several runs started in one
  second), shared by all ranks of a distributed run (RecBole names it after each rank's
  clock), loaded with :func:`recbole_hetcomp.compat.load_own_checkpoint` (torch >= 2.6).
* **Distributed metrics weighted by evaluated users**, not by batches (see RecBole PR #1872).
* **A readable console:** one progress line per interval and one summary line per model
  (best validation, where the checkpoint is), instead of RecBole's lines per epoch and save.

The RecBole patches it relies on (checkpoint loading, DDP on CPU, race-free folders) are
in :mod:`recbole_hetcomp.compat`.
"""

import os
import random
from time import perf_counter

import numpy as np
import torch

from recbole_hetcomp.compat import (
    is_distributed,
    load_own_checkpoint,
    patch_for_concurrent_runs,
    patch_recbole_ddp,
    unique_checkpoint_name,
)
from recbole_hetcomp.fileio import atomic_write

__all__ = ["PluginTrainerMixin", "plugin_trainer", "latest_file", "newer_latest_state"]


class PluginTrainerMixin:
    """Put in front of any RecBole trainer class (see :func:`plugin_trainer`).

    See the module docstring for what it adds to RecBole's trainer.
    """

    _last_valid_result = None
    _batch_order = None  # the training loader's torch.Generator (its state goes into checkpoints)
    _pending_batch_order = None  # a resumed checkpoint's generator state, applied by fit

    def __init__(self, config, model):
        if not config["single_spec"]:
            patch_recbole_ddp()
        patch_for_concurrent_runs()
        super().__init__(config, model)
        # RecBole names the file after the second it was created in: two runs of one model
        # started in the same second (teachers inside a pipeline, parallel jobs) would share it.
        self.saved_model_file = unique_checkpoint_name(self.saved_model_file)
        if is_distributed():
            names = [self.saved_model_file]
            torch.distributed.broadcast_object_list(names, src=0)
            self.saved_model_file = names[0]
        # For result files, curves and per-epoch cost: [epoch, valid score] and seconds per epoch.
        self.valid_history = []
        self.valid_results_history = []
        self.epoch_train_times = []
        self._epoch_idx = None
        # Checkpoint saves are reported once, when fit ends (RecBole logs every one).
        self.checkpoint_saves = 0
        self._best_epoch = None
        self._progress = None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        from recbole_hetcomp.console import EpochProgress, stage_label

        # The loader's generator draws each epoch's batch order: checkpoints keep its state.
        self._batch_order = getattr(train_data, "generator", None)
        if self._pending_batch_order is not None and self._batch_order is not None:
            self._batch_order.set_state(self._pending_batch_order)
            self._pending_batch_order = None
        label = stage_label(self.config["model"])
        writer = self.config["single_spec"] or self.config["local_rank"] == 0
        interval = self.config["progress_interval"]
        self._progress = EpochProgress(label, self.epochs, self.start_epoch,
                                       interval=30.0 if interval is None else interval, logger=self.logger) \
            if writer and verbose else None
        self._saving = saved and writer
        try:
            result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        finally:
            if self._progress is not None:
                self._progress.close()
            self._progress = None
        # A finished fit leaves nothing to continue (a killed one keeps the file).
        if self._saving and os.path.exists(latest_file(self.saved_model_file)):
            os.remove(latest_file(self.saved_model_file))
        if verbose and writer:
            self.logger.info(self._fit_summary(label, saved))
        return result

    def _fit_summary(self, label, saved):
        """One line per model: epochs run, best validation, where the best checkpoint is."""
        trained = (self._epoch_idx + 1) if self._epoch_idx is not None else self.start_epoch
        ended = "all epochs" if trained >= self.epochs else "early stop"
        line = f"{label}: trained {trained} of {self.epochs} epochs ({ended})"
        if self.best_valid_result is not None and self._best_epoch is not None:
            line += f", best valid {self.valid_metric} {float(self.best_valid_score):.4f} at epoch {self._best_epoch}"
        if saved:
            times = "once" if self.checkpoint_saves == 1 else f"{self.checkpoint_saves} times"
            line += f"; best checkpoint kept in {self.saved_model_file}, updated {times}"
        return line

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._epoch_idx is not None and self._progress is not None:
            self._progress.update(self._epoch_idx, self._progress_note())  # the previous epoch and its validation
        if self._latest_due():
            self._save_latest(self._epoch_idx)
        self._epoch_idx = epoch_idx
        start = perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.epoch_train_times.append(round(perf_counter() - start, 4))
        return loss

    def _progress_note(self):
        if self._best_epoch is None or self.best_valid_result is None:
            return ""
        return f"best valid {self.valid_metric} {float(self.best_valid_score):.4f} at epoch {self._best_epoch}"

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        self._evaluated_users += len(interaction)
        return interaction, scores, positive_u, positive_i

    def _map_reduce(self, result, num_sample):
        return super()._map_reduce(result, self._evaluated_users or num_sample)

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        # RecBole saves the checkpoint before it records this result as the best one.
        self._last_valid_result = valid_result
        self.valid_history.append([self._epoch_idx, float(valid_score)])
        # Every metric, not only valid_metric: curves of other metrics (e.g. NDCG@20 of a run
        # selected on Recall@50) need no second evaluation.
        self.valid_results_history.append(dict({"epoch": self._epoch_idx}, **{k: float(v) for k, v in valid_result.items()}))
        return valid_score, valid_result

    _saving = False
    # At most one latest state per this many seconds: a teacher validating every epoch with
    # large optimiser states would otherwise spend its time writing them.
    LATEST_EVERY_S = 60.0
    _last_write = None

    def _latest_due(self):
        """Whether the previous epoch of this process validated without a new best (a new
        best's state is the best checkpoint itself), and no state was written too recently."""
        previous = self._epoch_idx
        return (self._saving and previous is not None and self.eval_step > 0
                and (previous + 1) % self.eval_step == 0 and previous != self._best_epoch
                and (self._last_write is None or perf_counter() - self._last_write >= self.LATEST_EVERY_S))

    def _save_latest(self, epoch):
        # Taken before the next epoch starts: the same point of the run as a best checkpoint.
        state = self._checkpoint_state(epoch, self.best_valid_result)
        state["best_epoch"] = self._best_epoch  # the best checkpoint this state continues
        atomic_write(latest_file(self.saved_model_file), lambda tmp: torch.save(state, tmp, pickle_protocol=4), suffix=".pth")
        self._last_write = perf_counter()

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        # RecBole's fields, plus what an exact resume needs; written atomically.
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = self._checkpoint_state(epoch, self._last_valid_result)
        atomic_write(saved_model_file, lambda tmp: torch.save(state, tmp, pickle_protocol=4), suffix=".pth")
        self.checkpoint_saves += 1  # reported once, by fit (RecBole logs each save)
        self._best_epoch = epoch
        self._last_write = perf_counter()

    def _checkpoint_state(self, epoch, best_valid_result):
        return {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "best_valid_result": best_valid_result,
            "rng_state": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                          "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                          "batch_order": self._batch_order.get_state() if self._batch_order is not None else None},
            # A trainer may define _extra_checkpoint_state() / _load_extra_checkpoint_state(state).
            "trainer_state": getattr(self, "_extra_checkpoint_state", dict)(),
            "teachers_digest": getattr(self.model, "teachers_digest", None),
            "teacher_names": list(getattr(self.model, "teacher_names", None) or []),
            "history": {"valid": list(self.valid_history), "valid_results": list(self.valid_results_history),
                        "epoch_train_times": list(self.epoch_train_times)},
        }

    _evaluated_users = 0

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        self._evaluated_users = 0
        if load_best_model and eval_data:
            if is_distributed():
                torch.distributed.barrier()  # rank 0 has finished writing the file
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_own_checkpoint(checkpoint_file, self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            from recbole_hetcomp.console import FILE_ONLY

            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}", extra=FILE_ONLY)
        return super().evaluate(
            eval_data, load_best_model=False, model_file=None, show_progress=show_progress
        )

    def resume_checkpoint(self, resume_file, checkpoint=None):
        # Same state as RecBole's resume_checkpoint restores; only the loading differs
        # (``checkpoint``: the file's content when the caller has read it already).
        resume_file = str(resume_file)
        checkpoint = checkpoint if checkpoint is not None else load_own_checkpoint(resume_file, self.device)
        self.saved_model_file = resume_file
        self._best_epoch = checkpoint.get("best_epoch", checkpoint["epoch"])
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"checkpoint {resume_file} was written by model {checkpoint['config']['model']}, "
                f"not {self.config['model']}: loading its parameters may fail"
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("best_valid_result") is not None:
            self.best_valid_result = checkpoint["best_valid_result"]
        rng = checkpoint.get("rng_state")
        if rng is not None:
            # The checkpoint is loaded onto the run's device; RNG states are CPU byte tensors.
            torch.set_rng_state(rng["torch"].cpu())
            if rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])
            if rng.get("batch_order") is not None:
                self._pending_batch_order = rng["batch_order"].cpu()
        history = checkpoint.get("history") or {}
        self.valid_history = list(history.get("valid", []))
        self.valid_results_history = list(history.get("valid_results", []))
        self.epoch_train_times = list(history.get("epoch_train_times", []))
        if hasattr(self, "_load_extra_checkpoint_state"):
            self._load_extra_checkpoint_state(checkpoint.get("trainer_state") or {})
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
        return checkpoint


def latest_file(checkpoint_file):
    """Where a run keeps its latest training state beside its best checkpoint (not ``.pth``:
    tools that look for a run's checkpoints by that suffix find the best one only)."""
    return f"{checkpoint_file}.latest"


def newer_latest_state(checkpoint_file, checkpoint, device):
    """The latest state a killed run left beside ``checkpoint_file``, if it continues that
    checkpoint (written after its last best) and is newer; else None."""
    path = latest_file(checkpoint_file)
    if not os.path.isfile(path):
        return None
    latest = load_own_checkpoint(path, device)
    if latest.get("best_epoch") != checkpoint["epoch"] or latest["epoch"] <= checkpoint["epoch"]:
        return None  # left before a later best: the best checkpoint is newer
    return latest


_PLUGIN_CLASSES = {}


def plugin_trainer(trainer_class):
    """Return ``trainer_class`` with :class:`PluginTrainerMixin` in front (cached).

    Args:
        trainer_class (type): any RecBole trainer class.

    Returns:
        type: a subclass with the same name, suitable wherever RecBole expects the original.
    """
    if issubclass(trainer_class, PluginTrainerMixin):
        return trainer_class
    if trainer_class not in _PLUGIN_CLASSES:
        _PLUGIN_CLASSES[trainer_class] = type(
            trainer_class.__name__,
            (PluginTrainerMixin, trainer_class),
            {"__module__": trainer_class.__module__, "__doc__": trainer_class.__doc__},
        )
    return _PLUGIN_CLASSES[trainer_class]
