"""Train any teacher exactly as RecBole would, recording its trajectory at each validation.

:func:`recording_trainer` puts :class:`TrajectoryTrainerMixin` in front of whatever
trainer RecBole picks for the model (Trainer, TraditionalTrainer, RecVAETrainer, ...):
losses, early stopping and best-model selection stay RecBole's; the mixin only hooks
RecBole's ``callback_fn``, which every trainer fires after each validation.
"""

from recbole_hetcomp.compat import with_compat


class TrajectoryTrainerMixin:
    """Records ``self.recorder`` (a :class:`TrajectoryRecorder`) after each validation."""

    recorder = None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if self.recorder is None:
            raise RuntimeError("set trainer.recorder before fit()")

        def record_then_call(epoch_idx, valid_score):
            self.recorder.on_validation(self.model, epoch_idx, valid_score, bigger=self.valid_metric_bigger)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        return super().fit(train_data, valid_data, verbose, saved, show_progress, record_then_call)


_RECORDING_CLASSES = {}


def recording_trainer(trainer_class):
    """Return ``trainer_class`` (with the checkpoint fix) that records trajectories.

    Args:
        trainer_class (type): the trainer RecBole (or the plugin) would use for the model.

    Returns:
        type: a subclass whose ``fit`` records at every validation.
    """
    base = with_compat(trainer_class)
    if base not in _RECORDING_CLASSES:
        _RECORDING_CLASSES[base] = type(
            "Recording" + base.__name__, (TrajectoryTrainerMixin, base), {"__module__": __name__}
        )
    return _RECORDING_CLASSES[base]
