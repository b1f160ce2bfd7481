r"""The RRD loss (relaxed ranking distillation), a baseline of HetComp.

Reference:
    SeongKu Kang, Junyoung Hwang, Wonbin Kweon, Hwanjo Yu.
    "DE-RRD: A Knowledge Distillation Framework for Recommender System." CIKM 2020.

Per user u: from the teacher's top-N unobserved items, K "interesting" items are kept in
the teacher's order pi; L "uninteresting" items come from below the top-N; the student
maximises the relaxed permutation probability in which the interesting items must be
ranked in order, each above all later interesting items and above every uninteresting
item, while the uninteresting items' own order is ignored::

    L_u = - sum_{k=1..K} log( e^{s_pi_k} / ( sum_{l=k..K} e^{s_pi_l} + sum_{j in N_u} e^{s_j} ) )

The model that trains with it, and the choices made (no sampling of interesting items,
full-catalogue or sampled uninteresting items), are in
:mod:`recbole_hetcomp.model.general_recommender.rrd`.
"""

import torch

from recbole_hetcomp.distill.akt import MASKED_SCORE, clamp_scores, plackett_luce_terms, rest_logsumexp_and_gather
from recbole_hetcomp.distill.mf import MFScores

__all__ = ["rrd_loss", "sample_uninteresting"]


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
        scores (torch.Tensor or MFScores): float [B, n_items] student scores (clamped to [-40, 40] here).
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
    if uninteresting is not None and isinstance(scores, MFScores):
        scores = scores.dense()  # sampled entries are read from the whole matrix
    scores = clamp_scores(scores)
    ranked = target[:, :k].long()
    if uninteresting is None:
        log_negatives, ranked_scores = rest_logsumexp_and_gather(scores, [train_items, target[:, :n]], ranked)
    else:
        uninteresting = uninteresting.long()
        sampled = scores.gather(1, uninteresting).masked_fill(uninteresting == 0, MASKED_SCORE)
        log_negatives = torch.logsumexp(sampled, dim=1)
        ranked_scores = scores.gather(1, ranked)
    return plackett_luce_terms(ranked_scores, ranked != 0, log_negatives)
