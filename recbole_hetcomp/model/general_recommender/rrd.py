r"""RRD: Relaxed Ranking Distillation into an MF student, as a HetComp baseline.

Reference:
    SeongKu Kang, Junyoung Hwang, Wonbin Kweon, Hwanjo Yu.
    "DE-RRD: A Knowledge Distillation Framework for Recommender System." CIKM 2020.
    (RRD is the ranking half of DE-RRD; DE, the latent-knowledge half, needs a teacher's
    hidden representations and is not part of this baseline.)

Used here as a baseline of Kang et al., "Distillation from Heterogeneous Models for
Top-K Recommendation" (HetComp, WWW 2023): the student is the same MF student as
HetComp's, and the teacher is the same set of heterogeneous teachers, but only their
*final* (best-validation) checkpoints, aggregated once by the rank ensemble that
:class:`RankEnsemble` evaluates. There is no curriculum.

The RRD loss in the paper, per user u: from the teacher's top-N unobserved items, K
"interesting" items are sampled with rank-aware probabilities and kept in the
teacher's order pi; L "uninteresting" items are sampled uniformly from the items below
the top-N; the student maximises the relaxed permutation probability in which the
interesting items must be ranked in order, each above all later interesting items and
above every uninteresting item, while the uninteresting items' own order is ignored::

    L_u = - sum_{k=1..K} log( e^{s_pi_k} / ( sum_{l=k..K} e^{s_pi_l} + sum_{j in N_u} e^{s_j} ) )

Choices made here (each a config key in ``properties/model/RRD.yaml``):

* **No sampling of top-ranked items**, as the HetComp authors ran their baselines:
  the interesting items are the ensemble's top-``rrd_k`` in order (default 50, the
  length of the longest list whose order HetComp's own detailed loss learns, so the two
  students learn orders of the same length; the paper's setting of sampling from a
  teacher's top-N is not reproduced).
* **Uninteresting items over the full catalogue** by default (``rrd_negatives: 0``):
  every unobserved item ranked below the ensemble's top-``rrd_n`` (default
  ``rrd_n = rrd_k``: every other unobserved item), the same full softmax HetComp uses.
  With ``rrd_negatives: L > 0`` they are instead a fresh uniform sample (without
  replacement) of L such items per user and batch, as in the paper. Items at ranks
  ``rrd_k .. rrd_n - 1`` are in neither set, like the teacher's top-N items RRD does
  not sample as interesting.
* **Observed (training) items are left out**: RRD distils only the ranking of
  unobserved items, so training items are neither interesting nor uninteresting. In the
  paper the student's base loss (e.g. BPR) handles them; here that term is the optional
  ``bpr_loss_weight`` (default 0, as HetComp's reference, so the comparison is KD-only;
  the evaluation masks training items anyway).
* Scores are clamped to [-40, 40], the per-user losses are summed over the batch's
  unique users and weighted by ``rrd_loss_weight`` (default 0.005, HetComp's weight for
  its Plackett-Luce loss), exactly as HetComp's losses.

The loss itself is :func:`recbole_hetcomp.distill.rrd.rrd_loss`; the final-ensemble
targets come from :class:`~recbole_hetcomp.model.abstract_student.FinalEnsembleStudent`.
"""

from recbole_hetcomp.distill.rrd import rrd_loss, sample_uninteresting
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.model.abstract_student import FinalEnsembleStudent

__all__ = ["RRD"]


class RRD(FinalEnsembleStudent):
    r"""MF student trained with the relaxed ranking distillation loss on the final ensemble.

    The targets are the ensemble's top-``rrd_n`` unobserved items (its first ``rrd_k`` are
    the interesting items); see the module docstring for the loss and the choices.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.check_settings(config, dataset.item_num)
        self.k = config["rrd_k"]
        self.n = self.k if config["rrd_n"] is None else config["rrd_n"]
        self.n_negatives = config["rrd_negatives"]
        self.rrd_weight = config["rrd_loss_weight"]

        # targets, layers, initialization
        self._build_student(config, dataset, self.n)

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
        k = config["rrd_k"]
        n = k if config["rrd_n"] is None else config["rrd_n"]
        if not isinstance(k, int) or k <= 0:
            raise ConfigError(f"rrd_k must be a positive integer, got {k!r}")
        if not isinstance(n, int) or n < k:
            raise ConfigError(f"rrd_n must be an integer >= rrd_k ({k}), got {n!r}")
        if n_items is not None and n >= n_items:
            raise ConfigError(f"rrd_n={n} is not smaller than the catalogue ({n_items - 1} items)")
        if isinstance(config["rrd_negatives"], bool) or not isinstance(config["rrd_negatives"], int) or config["rrd_negatives"] < 0:
            raise ConfigError(f"rrd_negatives must be an integer >= 0 (0 = full catalogue), got {config['rrd_negatives']!r}")
        if not isinstance(config["rrd_loss_weight"], (int, float)) or config["rrd_loss_weight"] < 0:
            raise ConfigError(f"rrd_loss_weight must be >= 0, got {config['rrd_loss_weight']!r}")

    def kd_loss(self, scores, users):
        """``rrd_loss_weight * sum_u L_u`` (see :func:`rrd_loss`).

        Args:
            scores (MFScores or torch.Tensor): [B, n_items] student scores.
            users (torch.Tensor): long [B] distinct user ids.

        Returns:
            torch.Tensor: scalar loss.
        """
        target = self.targets[users]
        # Sampling needs the padded form; the full-catalogue loss is faster with flat indices.
        train_items = self.train_items_padded(users) if self.n_negatives else self.train_items_of(users)
        uninteresting = None
        if self.n_negatives > 0:
            uninteresting = sample_uninteresting(train_items, target[:, : self.n], self.n_items, self.n_negatives)
        return self.rrd_weight * rrd_loss(scores, target, train_items, self.k, self.n, uninteresting).sum()
