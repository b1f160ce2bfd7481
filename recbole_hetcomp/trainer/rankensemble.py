"""RankEnsembleTrainer: RecBole's TraditionalTrainer that always validates its one epoch.

With ``eval_step`` > 1 (e.g. inherited from a student's protocol file), RecBole would skip
the only validation of a one-epoch model and then fail to load a best checkpoint that
was never written.
"""

from recbole.trainer import TraditionalTrainer


class RankEnsembleTrainer(TraditionalTrainer):
    """Evaluates the (untrained) rank ensemble once on validation, then on test."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_step = 1
