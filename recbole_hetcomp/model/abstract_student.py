"""The abstract MF students of HetComp and the distillation baselines (no model here).

As RecBole's ``abstract_recommender.py`` for its models: every student model file
(``general_recommender/hetcomp.py``, ``rrd.py``, ``cldrd.py``) subclasses one of these
and no model file imports another.

Scores are ``s_ui = <e_u, e_i>``. A training batch is a batch of training interactions;
the distillation loss covers its unique users over the full catalogue (as the HetComp
reference code does), plus an optional BPR term on the interactions themselves.
Subclasses build their knowledge in ``__init__`` and implement :meth:`kd_loss`.
"""

from logging import getLogger

import torch
from torch import nn

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.model.loss import BPRLoss
from recbole.utils import InputType

from recbole_hetcomp.distill.akt import flat_items
from recbole_hetcomp.distill.dkc import build_targets
from recbole_hetcomp.distill.mf import MFScores
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.history import padded_rows, training_items_csr
from recbole_hetcomp.trajectory.teacherset import TeacherSet


class DistillationStudent(GeneralRecommender):
    r"""MF student; subclasses define what it learns from (:meth:`kd_loss`)."""

    input_type = InputType.POINTWISE
    uses_teachers = True

    def _build_mf(self, config, dataset):
        """Embeddings, the optional BPR term and each user's training items.

        Args:
            config (Config): holds ``embedding_size``, ``bpr_loss_weight`` and optionally
                ``student_init`` (``xavier_normal``, RecBole's usual, or ``normal``) with
                ``student_init_std``.
            dataset (Dataset): the training split.
        """
        self.check_student_settings(config)
        self.embedding_size = config["embedding_size"]
        self.bpr_weight = config["bpr_loss_weight"]
        # Each user's training items in CSR form only: RecBole's padded history matrix (plus
        # its value matrix while it is built) is U x the heaviest user's count, 67 MB each
        # on ml-1m, where the real entries take 5 MB.
        indptr, indices = training_items_csr(dataset)
        self.register_buffer("train_indptr", indptr, persistent=False)
        self.register_buffer("train_indices", indices, persistent=False)
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.bpr_loss = BPRLoss()
        if (config["student_init"] or "xavier_normal") == "normal":
            # The HetComp reference initialises both embedding tables from N(0, std^2).
            for table in (self.user_embedding, self.item_embedding):
                nn.init.normal_(table.weight, mean=0.0, std=float(config["student_init_std"]))
        else:
            self.apply(xavier_normal_initialization)

    @staticmethod
    def check_student_settings(config):
        """The MF student's own keys (``bpr_loss_weight``, ``student_init``, its std), checked.

        Raises:
            ConfigError: the first bad value, with the rule.
        """
        bpr = config["bpr_loss_weight"]
        if isinstance(bpr, bool) or not isinstance(bpr, (int, float)) or bpr < 0:
            raise ConfigError(f"bpr_loss_weight must be >= 0, got {bpr!r}")
        init, std = config["student_init"] or "xavier_normal", config["student_init_std"]
        if init not in ("xavier_normal", "normal"):
            raise ConfigError(f"student_init must be xavier_normal or normal, got {init!r}")
        if init == "normal" and (isinstance(std, bool) or not isinstance(std, (int, float)) or std <= 0):
            raise ConfigError(f"student_init_std must be a number > 0, got {std!r}")

    def _take_teachers(self, config, dataset):
        """The teachers this student learns from and their ``ensemble_weights`` (teachers
        weighted 0 left out, see :meth:`TeacherSet.for_student`); keeps their names and the
        digest checkpoints carry (a resumed run must learn from the same teachers).

        Returns:
            tuple: (TeacherSet, list of float or None): the set and one weight per member
            (None: equal weights).
        """
        members = TeacherSet.of(config, dataset)
        teachers, weights = members.for_student(config["ensemble_weights"])
        left_out = [name for name in members.names if name not in teachers.names]
        if left_out:
            getLogger().info(f"{config['model']}: teachers weighted 0 left out of the targets: {', '.join(left_out)}")
        self.teacher_names = teachers.names
        self.teachers_digest = teachers.digest()
        # every member's weight, zeros included: what a result file reports the student learned
        given = members.student_weights(config["ensemble_weights"])
        self.weights_by_teacher = None if given is None else dict(zip(members.names, given))
        return teachers, weights

    def train_items_of(self, users):
        """Training items of ``users`` as flat ``(rows, cols)`` indices (see :func:`flat_items`)."""
        return flat_items(self.train_indptr, self.train_indices, users)

    def train_items_padded(self, users):
        """Training items of ``users`` as long ``[B, L]``, 0-padded to the batch's heaviest user."""
        return padded_rows(self.train_indptr, self.train_indices, users)

    def has_training_items(self):
        """Bool [n_users]: users with at least one training item (not RecBole's padding user 0)."""
        return self.train_indptr[1:] > self.train_indptr[:-1]

    def kd_loss(self, scores, users):
        """Distillation loss of a batch of users.

        Args:
            scores (MFScores): [B, n_items] full-catalogue student scores as their factors
                (the losses of ``distill`` take them as they are; ``scores.dense()`` builds
                the matrix).
            users (torch.Tensor): long [B] distinct user ids.

        Returns:
            torch.Tensor: scalar, weighted and summed over users.
        """
        raise NotImplementedError

    def forward(self, user, item):
        return (self.user_embedding(user) * self.item_embedding(item)).sum(dim=-1)

    def calculate_loss(self, interaction):
        users = torch.unique(interaction[self.USER_ID])
        scores = MFScores(self.user_embedding(users), self.item_embedding.weight)  # [B, n_items]
        loss = self.kd_loss(scores, users)
        if self.bpr_weight > 0:
            user, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
            neg = torch.randint(1, self.n_items, pos.shape, device=pos.device)
            loss = loss + self.bpr_weight * self.bpr_loss(self.forward(user, pos), self.forward(user, neg))
        return loss

    def predict(self, interaction):
        return self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        r"""Scores of all items for a batch of users.

        Args:
            interaction (Interaction): holds ``USER_ID`` [B].

        Returns:
            torch.Tensor: [B * n_items].
        """
        user_e = self.user_embedding(interaction[self.USER_ID])
        return (user_e @ self.item_embedding.weight.T).view(-1)


class FinalEnsembleStudent(DistillationStudent):
    r"""MF student whose knowledge is the rank ensemble of the teachers' final checkpoints.

    Shared by the final-knowledge baselines (RRD, CL-DRD): targets built once in
    ``__init__`` (``targets`` [n_users, length], the ensemble's top unobserved items, best
    first, 0-padded; equal to :class:`RankEnsemble`'s ranking). Subclasses call
    :meth:`_build_student` from their ``__init__`` and implement :meth:`kd_loss`.
    """

    def _build_student(self, config, dataset, length):
        """Take the teachers' final lists, build the targets and the embeddings.

        Args:
            config (Config): holds ``embedding_size``, ``importance_temperature``,
                ``ensemble_weights``, ``bpr_loss_weight``, ``teachers``, ``trajectory_dir``.
            dataset (Dataset): the training split.
            length (int): target length (the longest prefix any loss reads).
        """
        self.temperature = config["importance_temperature"]
        self.target_length = length

        teachers, weights = self._take_teachers(config, dataset)
        final_lists = teachers.final_lists()  # [M, U, N]
        if final_lists.shape[-1] < length:
            raise ConfigError(
                f"teachers' lists hold {final_lists.shape[-1]} items but {config['model']} reads the ensemble's "
                f"top {length}: record teachers with trajectory_topn >= {length}"
            )
        final_lists = torch.from_numpy(final_lists[:, None]).long()  # [M, 1, U, N]: one checkpoint each
        at_final = torch.zeros(final_lists.shape[0], final_lists.shape[2], dtype=torch.long)
        targets = build_targets(final_lists, at_final, self.n_items, length, self.temperature, weights=weights)
        # Rebuilt from the trajectory files (validated against this split): not in checkpoints.
        self.register_buffer("targets", targets, persistent=False)
        self._build_mf(config, dataset)
