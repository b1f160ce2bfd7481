"""CLDRDTrainer: RecBole's Trainer plus the CL-DRD curriculum schedule.

At the start of every epoch the trainer sets the student's curriculum stage from the
epoch (Zeng, Zamani, Vinay, SIGIR 2022, adapted in
:mod:`recbole_hetcomp.model.general_recommender.cldrd`): stage c from epoch
``c * cldrd_period``, the last stage to the end. The stage is a function of the epoch,
so a resumed run is at the right stage whatever its checkpoint held. Everything else
(optimiser, early stopping on validation, best checkpoint, evaluation) is RecBole's.
"""

from recbole.trainer import Trainer
from recbole.utils import set_color


class CLDRDTrainer(Trainer):
    """Trainer for :class:`recbole_hetcomp.model.general_recommender.cldrd.CLDRD`.

    Attributes:
        curriculum_history (list of dict): one entry per stage change (and the first
            epoch trained): ``epoch``, ``stage``, ``n_ordered``.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.curriculum_history = []

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        stage = self.model.stage_at(epoch_idx)
        if not self.curriculum_history or stage != int(self.model.cldrd_stage):
            self.model.set_stage(stage)
            entry = {"epoch": epoch_idx, "stage": stage, "n_ordered": self.model.n_ordered}
            self.curriculum_history.append(entry)
            self.logger.info(
                set_color(f"epoch {epoch_idx} CL-DRD", "pink")
                + f": stage {stage}, top {self.model.n_ordered} of {self.model.length} ordered,"
                + f" the next {self.model.length - self.model.n_ordered} above the rest"
            )
            self.tensorboard.add_scalar("CLDRD/n_ordered", self.model.n_ordered, epoch_idx)
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
