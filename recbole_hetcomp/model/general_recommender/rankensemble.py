r"""RankEnsemble: the teachers' rank ensemble, evaluated like any RecBole model.

The accuracy HetComp's student tries to reach (Kang et al., "Distillation from
Heterogeneous Models for Top-K Recommendation", WWW 2023): each teacher's final
(best-validation) top-N list, an item scored by the sum over teachers of
``w_x * exp(-position / temperature)``, the same aggregation the student's targets use.
Nothing is trained; the scores come from the recorded trajectory files, so the ensemble
costs every teacher's inference when served (and only a lookup here).
"""

import torch
from torch import nn

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from recbole_hetcomp.distill.ranking import rank_ensemble_scores
from recbole_hetcomp.trajectory.teacherset import TeacherSet, check_weight_list


class RankEnsemble(GeneralRecommender):
    r"""Rank ensemble of the configured ``teachers``' final checkpoints."""

    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL
    uses_teachers = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.temperature = config["importance_temperature"]
        teachers = TeacherSet.of(config, dataset)
        weights = teachers.ensemble_weights(config["ensemble_weights"])
        self.search_weights = weights == "validation"
        if self.search_weights or weights is None:
            weights = [1.0] * len(teachers.members)
        else:
            weights = check_weight_list(weights, len(teachers.members))
        # Persistent: weights chosen on validation travel with the best checkpoint.
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float))
        self.teacher_names = teachers.names

        # define layers: only the final lists; not part of the checkpoint (they come
        # from the trajectory files, validated against this dataset's fingerprint)
        final_lists = teachers.final_lists()
        self.register_buffer("final_lists", torch.from_numpy(final_lists).long(), persistent=False)
        # RecBole's trainers need one parameter to build an optimiser and a checkpoint.
        self.dummy_param = nn.Parameter(torch.zeros(1))
        self.other_parameter_name = []

    def calculate_loss(self, interaction):
        return torch.nn.Parameter(torch.zeros(1))

    def full_sort_predict(self, interaction):
        r"""Ensemble scores of all items for a batch of users.

        Args:
            interaction (Interaction): holds ``USER_ID`` [B].

        Returns:
            torch.Tensor: [B * n_items] scores (0 for items in no teacher's list).
        """
        users = interaction[self.USER_ID]
        lists = self.final_lists[:, users]  # [M, B, N]
        scores = rank_ensemble_scores(lists, self.n_items, self.temperature, self.weights)
        return scores.view(-1)

    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        lists = self.final_lists[:, users]
        scores = rank_ensemble_scores(lists, self.n_items, self.temperature, self.weights)
        return scores.gather(1, items[:, None]).squeeze(1)
