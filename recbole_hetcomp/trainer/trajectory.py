"""Train any teacher exactly as RecBole would, recording its trajectory at each validation.

:func:`recording_trainer` puts :class:`TrajectoryTrainerMixin` in front of whatever
trainer RecBole picks for the model (Trainer, TraditionalTrainer, RecVAETrainer, ...):
losses, early stopping and best-model selection stay RecBole's; the mixin only hooks
RecBole's ``callback_fn``, which every trainer fires after each validation, and reads the
scores RecBole's full-sort validation computes anyway: the top-N of the validation's
training-masked scores is exactly the recorded list, so a model is not scored twice
(users without validation items are ranked separately in the callback).
"""

from recbole_hetcomp.trainer.base import plugin_trainer


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

    def _valid_epoch(self, valid_data, show_progress=False):
        self.recorder.start_capture()
        self._capturing = True
        try:
            return super()._valid_epoch(valid_data, show_progress=show_progress)
        finally:
            self._capturing = False

    def _full_sort_batch_eval(self, batched_data):
        if not getattr(self, "_capturing", False):
            return super()._full_sort_batch_eval(batched_data)
        model, recorder, seen = self.model, self.recorder, {}
        full_sort_predict = model.full_sort_predict

        def spy(interaction):
            # RecBole masks the returned scores in place: rank training items before that.
            scores = full_sort_predict(interaction)
            users = interaction[model.USER_ID]
            seen["observed"] = recorder.observed_ranking(users, scores.detach().view(len(users), -1))
            return scores

        model.full_sort_predict = spy
        try:
            interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        finally:
            del model.full_sort_predict
        if "observed" in seen:  # models without full_sort_predict are ranked in the callback
            recorder.capture(interaction[model.USER_ID], seen["observed"], scores)
        return interaction, scores, positive_u, positive_i


_RECORDING_CLASSES = {}


def recording_trainer(trainer_class):
    """Return ``trainer_class`` (with the checkpoint fix) that records trajectories.

    Args:
        trainer_class (type): the trainer RecBole (or the plugin) would use for the model.

    Returns:
        type: a subclass whose ``fit`` records at every validation.
    """
    base = plugin_trainer(trainer_class)
    if base not in _RECORDING_CLASSES:
        _RECORDING_CLASSES[base] = type(
            "Recording" + base.__name__, (TrajectoryTrainerMixin, base), {"__module__": __name__}
        )
    return _RECORDING_CLASSES[base]
