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

The module also holds :class:`FinalEnsembleStudent`, the part this student shares with
the other final-knowledge baselines (e.g. :class:`~recbole_hetcomp.model.general_recommender.cldrd.CLDRD`).
"""

import torch

from recbole_hetcomp.distill.akt import _MASKED, _clamp_if_needed, _plackett_luce_terms, rest_logsumexp_and_gather
from recbole_hetcomp.distill.dkc import build_targets
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.model.general_recommender.hetcomp import stack_trajectories
from recbole_hetcomp.model.student import DistillationStudent
from recbole_hetcomp.trajectory.teachers import load_teacher_trajectories, student_weights

__all__ = ["FinalEnsembleStudent", "RRD", "rrd_loss", "sample_uninteresting"]


def sample_uninteresting(train_items, top, n_items, count, generator=None):
    """Uniform samples, without replacement, of each user's uninteresting items.

    Candidates are the unobserved items outside ``top`` (item 0 never). Each row draws
    i.i.d. uniform keys for the whole catalogue and keeps the ``count`` largest keys among
    its candidates: a uniform random subset, batched.

    Args:
        train_items (torch.Tensor): integer [B, L_train] training items, 0-padded.
        top (torch.Tensor): integer [B, N] the ensemble's top-N (0 = padding).
        n_items (int): catalogue size.
        count (int): samples per user.
        generator (torch.Generator, optional): random source (default torch's global one).

    Returns:
        torch.Tensor: long [B, count] distinct item ids per row; where a user has fewer
        than ``count`` candidates the missing entries are 0 (padding).
    """
    n_users = train_items.shape[0]
    keys = torch.rand(n_users, n_items, device=train_items.device, generator=generator)
    keys.scatter_(1, torch.cat([train_items.long(), top.long()], dim=1), -1.0)
    keys[:, 0] = -1.0
    values, ids = keys.topk(min(count, n_items), dim=1)
    ids = ids.masked_fill(values < 0, 0)
    if ids.shape[1] < count:
        ids = torch.nn.functional.pad(ids, (0, count - ids.shape[1]), value=0)
    return ids


def rrd_loss(scores, target, train_items, k, n=None, uninteresting=None):
    r"""Relaxed ranking distillation loss per user (no sampling of interesting items).

    ``L_u = -sum_{k} log( e^{s_pi_k} / (sum_{l >= k} e^{s_pi_l} + sum_{j in N_u} e^{s_j}) )``
    with ``pi = target[:, :k]`` (padding 0 adds no term and is in no sum) and N_u either
    the given ``uninteresting`` ids or, when None, every unobserved item outside
    ``target[:, :n]`` (item 0 never).

    Args:
        scores (torch.Tensor): float [B, n_items] student scores (clamped to [-40, 40] here).
        target (torch.Tensor): integer [B, >= max(k, n)] the ensemble's ranking, best first, 0-padded.
        train_items (torch.Tensor or tuple): training items, integer [B, L_train] 0-padded,
            or flat ``(rows, cols)`` (see :func:`~recbole_hetcomp.distill.akt.flat_items`).
        k (int): interesting items, the ranked prefix whose order is learned.
        n (int, optional): full-catalogue N_u starts below rank n (default k; n >= k).
        uninteresting (torch.Tensor, optional): integer [B, L] sampled N_u ids (0 = padding),
            e.g. from :func:`sample_uninteresting`; they must be outside ``target[:, :k]``.

    Returns:
        torch.Tensor: float [B] per-user loss.
    """
    n = k if n is None else n
    scores = _clamp_if_needed(scores)
    ranked = target[:, :k].long()
    if uninteresting is None:
        log_negatives, ranked_scores = rest_logsumexp_and_gather(scores, [train_items, target[:, :n]], ranked)
    else:
        uninteresting = uninteresting.long()
        sampled = scores.gather(1, uninteresting).masked_fill(uninteresting == 0, _MASKED)
        log_negatives = torch.logsumexp(sampled, dim=1)
        ranked_scores = scores.gather(1, ranked)
    return _plackett_luce_terms(ranked_scores, ranked != 0, log_negatives)


class FinalEnsembleStudent(DistillationStudent):
    r"""MF student whose knowledge is the rank ensemble of the teachers' final checkpoints.

    Shared by the final-knowledge baselines: targets built once in ``__init__``
    (``targets`` [n_users, length], the ensemble's top unobserved items, best first,
    0-padded; equal to :class:`RankEnsemble`'s ranking). Subclasses call
    :meth:`_build_student` from their ``__init__`` and implement :meth:`kd_loss`.
    """

    def _build_student(self, config, dataset, length):
        """Load the teachers' final lists, build the targets and the embeddings.

        Args:
            config (Config): holds ``embedding_size``, ``importance_temperature``,
                ``ensemble_weights``, ``bpr_loss_weight``, ``teachers``, ``trajectory_dir``.
            dataset (Dataset): the training split.
            length (int): target length (the longest prefix any loss reads).
        """
        self.temperature = config["importance_temperature"]
        self.target_length = length

        trajectories = load_teacher_trajectories(config, dataset)
        self.teacher_names = [t.teacher for t in trajectories]
        weights = student_weights(config, trajectories)
        final_lists, _, _ = stack_trajectories(trajectories, "final")  # [M, 1, U, N]
        if final_lists.shape[-1] < length:
            raise ConfigError(
                f"teachers' lists hold {final_lists.shape[-1]} items but {config['model']} reads the ensemble's "
                f"top {length}: record teachers with trajectory_topn >= {length}"
            )
        final_lists = torch.from_numpy(final_lists).long()
        at_final = torch.zeros(final_lists.shape[0], final_lists.shape[2], dtype=torch.long)
        targets = build_targets(final_lists, at_final, self.n_items, length, self.temperature, weights=weights)
        # Rebuilt from the trajectory files (validated against this split): not in checkpoints.
        self.register_buffer("targets", targets, persistent=False)
        self._build_mf(config, dataset)


class RRD(FinalEnsembleStudent):
    r"""MF student trained with the relaxed ranking distillation loss on the final ensemble.

    The targets are the ensemble's top-``rrd_n`` unobserved items (its first ``rrd_k`` are
    the interesting items); see the module docstring for the loss and the choices.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.k = config["rrd_k"]
        self.n = self.k if config["rrd_n"] is None else config["rrd_n"]
        self.n_negatives = config["rrd_negatives"]
        self.rrd_weight = config["rrd_loss_weight"]
        self._check_settings(dataset)

        # targets, layers, initialization
        self._build_student(config, dataset, self.n)

    def _check_settings(self, dataset):
        if not isinstance(self.k, int) or self.k <= 0:
            raise ConfigError(f"rrd_k must be a positive integer, got {self.k!r}")
        if not isinstance(self.n, int) or self.n < self.k:
            raise ConfigError(f"rrd_n must be an integer >= rrd_k ({self.k}), got {self.n!r}")
        if self.n >= dataset.item_num:
            raise ConfigError(f"rrd_n={self.n} is not smaller than the catalogue ({dataset.item_num - 1} items)")
        if not isinstance(self.n_negatives, int) or self.n_negatives < 0:
            raise ConfigError(f"rrd_negatives must be an integer >= 0 (0 = full catalogue), got {self.n_negatives!r}")
        if self.rrd_weight is None or self.rrd_weight < 0:
            raise ConfigError(f"rrd_loss_weight must be >= 0, got {self.rrd_weight!r}")

    def kd_loss(self, scores, users):
        """``rrd_loss_weight * sum_u L_u`` (see :func:`rrd_loss`).

        Args:
            scores (torch.Tensor): float [B, n_items] student scores.
            users (torch.Tensor): long [B] distinct user ids.

        Returns:
            torch.Tensor: scalar loss.
        """
        target = self.targets[users]
        # Sampling needs the padded form; the full-catalogue loss is faster with flat indices.
        train_items = self.history[users] if self.n_negatives else self.train_items_of(users)
        uninteresting = None
        if self.n_negatives > 0:
            uninteresting = sample_uninteresting(train_items, target[:, : self.n], self.n_items, self.n_negatives)
        return self.rrd_weight * rrd_loss(scores, target, train_items, self.k, self.n, uninteresting).sum()
