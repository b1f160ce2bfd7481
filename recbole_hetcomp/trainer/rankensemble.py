"""RankEnsembleTrainer: RecBole's TraditionalTrainer that always validates its one epoch,
and, with ``ensemble_weights: validation``, chooses the teachers' weights on validation.

With ``eval_step`` > 1 (e.g. inherited from a student's protocol file), RecBole would skip
the only validation of a one-epoch model and then fail to load a best checkpoint that
was never written.

Equal-weight rank fusion can fall below its best member when weak teachers pull it down
(measured on ml-1m: six teachers below EASE alone). The weight search is a coordinate
ascent on the validation metric over a small grid per teacher, starting from equal
weights, so it never ends below the equal-weight ensemble on validation; the test split
is not looked at.
"""

import torch
from recbole.trainer import TraditionalTrainer
from recbole.utils import calculate_valid_score, set_color

WEIGHT_GRID = (0.0, 0.5, 1.0, 2.0, 4.0)


class RankEnsembleTrainer(TraditionalTrainer):
    """Evaluates the (untrained) rank ensemble once on validation, then on test."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_step = 1

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if getattr(self.model, "search_weights", False) and valid_data:
            self.search_weights(valid_data)
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    def _validation_score(self, valid_data, weights):
        self.model.weights.copy_(torch.tensor(weights, dtype=torch.float))
        result = self.evaluate(valid_data, load_best_model=False)
        return calculate_valid_score(result, self.valid_metric)

    def search_weights(self, valid_data, rounds=2):
        """Coordinate ascent of the teachers' weights on the validation metric (in place)."""
        sign = 1.0 if self.valid_metric_bigger else -1.0
        weights = [1.0] * len(self.model.teacher_names)
        best = self._validation_score(valid_data, weights)
        start = best
        for _ in range(rounds):
            changed = False
            for x in range(len(weights)):
                for w in WEIGHT_GRID:
                    trial = list(weights)
                    trial[x] = w
                    if trial == weights or max(trial) <= 0:
                        continue
                    score = self._validation_score(valid_data, trial)
                    if sign * score > sign * best:
                        best, weights, changed = score, trial, True
            if not changed:
                break
        self.model.weights.copy_(torch.tensor(weights, dtype=torch.float))
        self.chosen_weights = dict(zip(self.model.teacher_names, weights))
        self.logger.info(
            set_color("ensemble weights chosen on validation", "green")
            + f": {self.chosen_weights} ({self.valid_metric} {start:.4f} with equal weights -> {best:.4f})"
        )
        return self.chosen_weights
