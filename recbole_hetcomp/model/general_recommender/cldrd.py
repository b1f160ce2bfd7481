r"""CL-DRD: a coarse-to-fine curriculum over the final ensemble ranking, as a HetComp baseline.

Reference:
    Hansi Zeng, Hamed Zamani, Vishwa Vinay.
    "Curriculum Learning for Dense Retrieval Distillation." SIGIR 2022.

Used here as a baseline of Kang et al., "Distillation from Heterogeneous Models for
Top-K Recommendation" (HetComp, WWW 2023). CL-DRD distils a re-ranker's ranking into a
dense retriever through iterations of growing difficulty: the teacher's ranked list of
a query is split into groups, the top group's internal order is supervised, the next
group only has to rank above the rest (its internal order is ignored), and the rest
(sampled negatives in the paper) comes last; from iteration to iteration the ordered
group grows, so the supervision moves from coarse-grained preferences to fine-grained
pairwise orders. Its curriculum is over *one* (final) teacher ranking, which makes it
the natural contrast to HetComp's curriculum over the teachers' training trajectories.

This implementation, per user u with T_u = the ensemble's top-``cldrd_length`` (L)
unobserved items (rank ensemble of the teachers' final checkpoints, built once) and
stage c with ``K_c = cldrd_ordered[c]`` ordered items:

* G1 = T_u[:K_c] (ordered), G2 = T_u[K_c:L] (unordered), R = every other unobserved item
  (full catalogue, no sampling, item 0 never)::

    L_u = - sum_{k < K_c}   log( e^{s_G1_k} / ( sum_{l=k..K_c-1} e^{s_G1_l} + sum_{j in G2 + R} e^{s_j} ) )
          - sum_{i in G2}   log( e^{s_i} / ( e^{s_i} + sum_{j in R} e^{s_j} ) )

  The first sum is the Plackett-Luce likelihood of G1's order with G2 and R as
  unordered competitors (G1 in order, above everything below it); the second puts each
  G2 item above R (the set-level form of HetComp's overall loss). With K_c = 0 the loss
  is "top-L versus the rest" (HetComp's overall loss on final knowledge, without the
  observed list); with K_c = L it is RRD's list-wise loss on the top-L.
* Stage c runs from epoch ``c * cldrd_period``; the last stage lasts to the end. The
  stage is set by :class:`recbole_hetcomp.trainer.CLDRDTrainer` at the start of each
  epoch and kept in a persistent buffer (``cldrd_stage``), so it is in every checkpoint.
* Defaults: L = 50 and ``cldrd_ordered: [0, 10, 25, 50]`` with a 20-epoch period, so the
  final stage supervises the same ordered top-50 as RRD's default and HetComp's
  detailed loss, and the curriculum ends at epoch 60 (HetComp's DKC typically by 100).

Simplifications, stated honestly:

* The paper trains with a LambdaRank-style listwise loss on graded labels derived from
  the groups, over a candidate list of a few tens of documents plus sampled negatives.
  A pairwise LambdaRank over the full catalogue costs B x L x n_items pairs per batch;
  here the same group structure (G1 ordered > G2 > rest) is expressed with the
  softmax/Plackett-Luce losses HetComp and RRD use, over the full catalogue.
* The paper's iterations retrain on fresh teacher lists of the student's own
  retrievals; here the teacher lists are fixed (the final ensemble), only the group
  boundaries move, on a fixed epoch schedule.
* Observed (training) items are in no group (the ranking of unobserved items is
  distilled); the optional ``bpr_loss_weight`` (default 0, HetComp's reference) adds a
  base BPR term. Scores clamped to [-40, 40], losses summed over the batch's unique
  users and weighted by ``cldrd_loss_weight`` (default 0.005, HetComp's weight for its
  Plackett-Luce loss).
"""

import torch

from recbole_hetcomp.distill.cldrd import cldrd_loss
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.model.abstract_student import FinalEnsembleStudent

__all__ = ["CLDRD"]


class CLDRD(FinalEnsembleStudent):
    r"""MF student trained on the final ensemble ranking with a coarse-to-fine curriculum.

    The targets are the ensemble's top-``cldrd_length`` unobserved items; the current stage
    (buffer ``cldrd_stage``, long scalar) selects how many of them are ordered. See the
    module docstring for the loss and the schedule.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.check_settings(config, dataset.item_num)
        self.length = config["cldrd_length"]
        stages = config["cldrd_ordered"]
        self.stages = [stages] if isinstance(stages, int) else list(stages)
        self.period = config["cldrd_period"]
        self.cldrd_weight = config["cldrd_loss_weight"]

        # targets, layers, initialization; curriculum state (persistent: in checkpoints)
        self._build_student(config, dataset, self.length)
        self.register_buffer("cldrd_stage", torch.zeros((), dtype=torch.long))

    @staticmethod
    def check_settings(config, n_items):
        """Refuse bad settings before any teacher or student trains.

        Args:
            config (Config): the run's config.
            n_items (int or None): catalogue size including the padding item; None before
                the data is loaded (the catalogue check is then skipped).

        Raises:
            ConfigError: the first problem, with the key, the value and the rule.
        """
        FinalEnsembleStudent.check_student_settings(config)
        length, stages, period = config["cldrd_length"], config["cldrd_ordered"], config["cldrd_period"]
        if not isinstance(length, int) or length <= 0:
            raise ConfigError(f"cldrd_length must be a positive integer, got {length!r}")
        if n_items is not None and length >= n_items:
            raise ConfigError(f"cldrd_length={length} is not smaller than the catalogue ({n_items - 1} items)")
        if isinstance(stages, int):
            stages = [stages]
        if (
            not isinstance(stages, (list, tuple)) or not stages
            or not all(isinstance(s, int) and 0 <= s <= length for s in stages)
        ):
            raise ConfigError(f"cldrd_ordered must be a non-empty list of integers in [0, cldrd_length={length}], got {stages!r}")
        if any(b < a for a, b in zip(stages, stages[1:])):
            raise ConfigError(f"cldrd_ordered must not decrease (the curriculum goes from coarse to fine), got {stages!r}")
        if isinstance(period, bool) or not isinstance(period, int) or period <= 0:
            raise ConfigError(f"cldrd_period must be a positive integer (epochs per stage), got {period!r}")
        if not isinstance(config["cldrd_loss_weight"], (int, float)) or config["cldrd_loss_weight"] < 0:
            raise ConfigError(f"cldrd_loss_weight must be >= 0, got {config['cldrd_loss_weight']!r}")

    # --- curriculum -------------------------------------------------------------------
    def stage_at(self, epoch):
        """Curriculum stage of an epoch: ``min(epoch // cldrd_period, n_stages - 1)``."""
        return min(int(epoch) // self.period, len(self.stages) - 1)

    @property
    def n_ordered(self):
        """K_c of the current stage."""
        return self.stages[int(self.cldrd_stage)]

    def set_stage(self, stage):
        """Move the curriculum to ``stage`` (an index into ``cldrd_ordered``)."""
        if not 0 <= stage < len(self.stages):
            raise ValueError(f"stage must be in [0, {len(self.stages)}), got {stage}")
        self.cldrd_stage.fill_(stage)

    def kd_loss(self, scores, users):
        """``cldrd_loss_weight * sum_u L_u`` at the current stage (see :func:`cldrd_loss`).

        Args:
            scores (MFScores or torch.Tensor): [B, n_items] student scores.
            users (torch.Tensor): long [B] distinct user ids.

        Returns:
            torch.Tensor: scalar loss.
        """
        loss = cldrd_loss(scores, self.targets[users], self.train_items_of(users), self.n_ordered, self.length)
        return self.cldrd_weight * loss.sum()
