r"""
CML
################################################
Reference:
    Cheng-Kang Hsieh et al. "Collaborative Metric Learning." in WWW 2017.

HetComp's metric-learning teacher (Kang et al., WWW 2023); RecBole has no CML.

Users and items are points in the unit ball of R^d; a user prefers the items closest to
her, so the score is the negative squared Euclidean distance. Training pulls each
observed item inside a margin around its user and pushes the hardest of several sampled
unobserved items out of it.
"""

import torch
import torch.nn as nn

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType


class CML(GeneralRecommender):
    r"""CML embeds users and items in one metric space, scores by negative squared distance
    and trains with a hinge loss against the hardest of ``neg_sample_num`` sampled negatives.

    Note:

        Negatives. RecBole's training loader gives one negative per positive
        (``train_neg_sample_args``, never one of the user's training items). We add
        ``neg_sample_num - 1`` negatives drawn uniformly inside :meth:`calculate_loss`,
        drop the draws that are training items of the user (at ml-100k's density the
        closest of 10 raw draws would often be one of the user's own positives) and keep
        the closest remaining candidate. The hardest negative needs a wider margin than a
        random one: on ml-100k (validation NDCG@20) the closest of 10 with margin 1.0
        beat one random negative (margin 0.5 or 1.0) and the closest of 20 with margin
        0.5; docs/teachers.md has the numbers. The paper's rank-based loss weights and
        covariance regulariser are not implemented.

        Unit ball. RecBole's trainer steps the optimizer after :meth:`calculate_loss`
        returns, so the model cannot project right after the step. Instead every entry
        point (:meth:`calculate_loss`, :meth:`predict`, :meth:`full_sort_predict`) first
        projects the rows that left the ball back onto its surface (the paper's
        ``clip_by_norm``); every score is therefore computed from in-ball embeddings.
    """

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset):
        super(CML, self).__init__(config, dataset)

        # load parameters info
        self.embedding_size = config["embedding_size"]
        self.margin = config["margin"]
        self.neg_sample_num = config["neg_sample_num"]
        self.max_norm = config["max_norm"]

        if self.neg_sample_num < 1:
            raise ValueError(f"neg_sample_num must be >= 1, got {self.neg_sample_num}")
        if self.max_norm <= 0:
            raise ValueError(f"max_norm must be > 0, got {self.max_norm}")

        # load dataset info: sorted keys user * n_items + item of the training pairs,
        # to recognise sampled candidates that are in fact positives (binary search).
        inter = dataset.inter_matrix(form="coo")
        keys = torch.as_tensor(inter.row, dtype=torch.long) * self.n_items + torch.as_tensor(
            inter.col, dtype=torch.long
        )
        self.register_buffer("train_keys", torch.unique(keys), persistent=False)

        # define layers
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)

        # parameters initialization: std 1/sqrt(d) gives norms near 1, so the points start
        # spread over the whole ball, on the scale of the margin.
        nn.init.normal_(self.user_embedding.weight, std=self.embedding_size**-0.5)
        nn.init.normal_(self.item_embedding.weight, std=self.embedding_size**-0.5)
        self.project_to_ball()

    @torch.no_grad()
    def project_to_ball(self):
        r"""Scale every user and item embedding whose norm exceeds ``max_norm`` back to ``max_norm``."""
        for weight in (self.user_embedding.weight, self.item_embedding.weight):
            norms = weight.norm(dim=1, keepdim=True)
            weight.mul_(torch.clamp(self.max_norm / norms.clamp_min(1e-12), max=1.0))

    def get_user_embedding(self, user):
        r"""Get a batch of user embeddings.

        Args:
            user (torch.LongTensor): user ids, shape: [batch_size, ]

        Returns:
            torch.FloatTensor: shape: [batch_size, embedding_size]
        """
        return self.user_embedding(user)

    def get_item_embedding(self, item):
        r"""Get a batch of item embeddings.

        Args:
            item (torch.LongTensor): item ids, any shape [*]

        Returns:
            torch.FloatTensor: shape: [*, embedding_size]
        """
        return self.item_embedding(item)

    def forward(self, user, item):
        r"""Negative squared distance of each user to each paired item.

        Args:
            user (torch.LongTensor): shape: [batch_size, ]
            item (torch.LongTensor): shape: [batch_size, ] or [batch_size, n_candidates]

        Returns:
            torch.FloatTensor: scores, shape of ``item``.
        """
        user_e = self.get_user_embedding(user)
        item_e = self.get_item_embedding(item)
        if item.dim() == 2:
            user_e = user_e.unsqueeze(1)
        return -(user_e - item_e).pow(2).sum(dim=-1)

    def sample_negatives(self, user, neg_item):
        r"""Candidate negatives: RecBole's negative plus ``neg_sample_num - 1`` uniform draws.

        Args:
            user (torch.LongTensor): shape: [batch_size, ]
            neg_item (torch.LongTensor): RecBole's sampled negatives, shape: [batch_size, ]

        Returns:
            tuple: candidates (torch.LongTensor, shape: [batch_size, neg_sample_num]) and
            a mask of the draws that are training items of the user (torch.BoolTensor,
            same shape; always False in column 0, RecBole's negative).
        """
        n_draws = self.neg_sample_num - 1
        # id 0 is RecBole's padding item: draw from 1..n_items-1.
        draws = torch.randint(1, self.n_items, (user.shape[0], n_draws), device=user.device)
        keys = user.unsqueeze(1) * self.n_items + draws
        pos = torch.searchsorted(self.train_keys, keys).clamp_max(self.train_keys.numel() - 1)
        is_positive = self.train_keys[pos] == keys
        candidates = torch.cat([neg_item.unsqueeze(1), draws], dim=1)
        mask = torch.cat([torch.zeros_like(neg_item, dtype=torch.bool).unsqueeze(1), is_positive], dim=1)
        return candidates, mask

    def calculate_loss(self, interaction):
        # The previous optimizer step may have moved rows out of the ball.
        self.project_to_ball()

        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]

        pos_score = self.forward(user, pos_item)  # [batch_size]
        candidates, is_positive = self.sample_negatives(user, neg_item)
        with torch.no_grad():
            cand_score = self.forward(user, candidates)  # [batch_size, neg_sample_num]
            cand_score = cand_score.masked_fill(is_positive, float("-inf"))
            hardest = candidates.gather(1, cand_score.argmax(dim=1, keepdim=True)).squeeze(1)
        # Recompute the chosen negative's score with gradient: cheaper than keeping the
        # graph of all candidates.
        neg_score = self.forward(user, hardest)

        # pos_score - neg_score = d(u, j)^2 - d(u, i)^2
        loss = torch.relu(self.margin - pos_score + neg_score)
        return loss.mean()

    def predict(self, interaction):
        self.project_to_ball()
        user = interaction[self.USER_ID]
        item = interaction[self.ITEM_ID]
        return self.forward(user, item)

    def full_sort_predict(self, interaction):
        self.project_to_ball()
        user = interaction[self.USER_ID]
        user_e = self.get_user_embedding(user)  # [B, d]
        all_item_e = self.item_embedding.weight  # [n_items, d]
        # ||u - i||^2 = ||u||^2 - 2 u.i + ||i||^2, one matmul instead of B*n_items differences.
        dist = (
            user_e.pow(2).sum(dim=1, keepdim=True)
            - 2.0 * torch.matmul(user_e, all_item_e.transpose(0, 1))
            + all_item_e.pow(2).sum(dim=1).unsqueeze(0)
        )
        return (-dist).view(-1)
