"""Adaptive Knowledge Transfer (AKT) losses of HetComp.

Kang et al., "Distillation from Heterogeneous Models for Top-K Recommendation",
WWW 2023, Sec. "Adaptive knowledge transfer". The student first learns the
*overall* ranking (target and teacher-ranked observed items above everything
else, :func:`overall_loss`), then, once the DKC curriculum has finished, the
*detailed* ranking (Plackett-Luce likelihood of the orders,
:func:`detailed_loss`). Both use the full catalogue as competitors (no
sampling).

All losses take the student's full-catalogue scores ``[B, n_items]`` and
return per-user sums ``[B]``; the caller sums over the batch (the reference
sums rather than averages). Scores are clamped to ``[-40, 40]`` first.

Item sets, per user u (item 0 never belongs to any of them):

* training items R_u: the non-zero ids of ``train_items[u]``;
* unobserved items: every item not in R_u;
* O_u: valid entries of ``observed[u]`` (teacher-ranked training items);
* T_u: non-zero entries of ``target[u]`` (the DKC ensemble target).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from recbole_hetcomp.distill.mf import MFScores, mf_rest_logsumexp_and_gather

__all__ = [
    "SCORE_CLAMP", "MASKED_SCORE", "clamp_scores", "plackett_luce", "plackett_luce_terms", "log_add_items",
    "overall_loss", "detailed_loss", "rest_logsumexp_and_gather", "flat_items",
]

SCORE_CLAMP = 40.0

# Stand-in score for masked entries. Real scores are clamped to [-40, 40], so
# e^{-1e4} is exactly 0 next to any real term (even in float64), while, unlike
# -inf, it keeps every gradient finite when a set is empty.
MASKED_SCORE = -1.0e4


def _clamp(scores: torch.Tensor) -> torch.Tensor:
    return scores.clamp(-SCORE_CLAMP, SCORE_CLAMP)


def _masked_logsumexp(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log sum_{j: mask} e^{s_j}`` per row ``[B]``; ~-1e4 for an empty set."""
    return torch.logsumexp(scores.masked_fill(~mask, MASKED_SCORE), dim=1)


def clamp_scores(scores: torch.Tensor) -> torch.Tensor:
    """Scores clamped to ``[-SCORE_CLAMP, SCORE_CLAMP]``, as every loss here and in the
    baselines' modules takes them; skipped (same values, same gradients) when nothing is
    out of range.

    The clamp and its backward are two full passes over ``[B, n_items]``; a max and a min
    are two cheap reductions (cheaper than one ``torch.aminmax`` on CPU, torch 2.13: see
    ``benchmarks/bench_epoch.py --profile``), and MF students rarely leave [-40, 40].
    :class:`~recbole_hetcomp.distill.mf.MFScores` pass unchanged: their chunks are
    clamped as they are computed (same values, same gradients).
    """
    if isinstance(scores, MFScores):
        return scores
    values = scores.detach()
    if values.amax() > SCORE_CLAMP or values.amin() < -SCORE_CLAMP:
        return _clamp(scores)
    return scores


class _RestAndPicked(torch.autograd.Function):
    """``log sum_{j not excluded} e^{s_j}`` and ``s[items]`` in one pass over ``[B, n_items]``.

    Autograd would keep several ``[B, n_items]`` intermediates (exp, masked copy, the
    dense zeros of each gather's backward) and add them up; here the backward writes the
    gradient once: ``e_j / sum`` on the kept items plus the picked items' gradients.
    """

    @staticmethod
    def forward(ctx, scores, items, *excluded):
        # Scores are clamped to +-SCORE_CLAMP, so e^s cannot overflow float32 even summed
        # over millions of items: no max shift (one full pass fewer).
        e = torch.exp(scores)
        for item_set in excluded:
            if isinstance(item_set, tuple):  # flat (rows, cols): no padding to write
                e[item_set] = 0.0
            else:
                e.scatter_(1, item_set, 0.0)
        e[:, 0] = 0.0
        total = e.sum(dim=1).clamp_min(_TINY)
        ctx.save_for_backward(e, total, items)
        ctx.n_excluded = len(excluded)
        return torch.log(total), scores.gather(1, items)

    @staticmethod
    def backward(ctx, grad_log_rest, grad_picked):
        e, total, items = ctx.saved_tensors
        grad = e * (grad_log_rest / total)[:, None]
        grad.scatter_add_(1, items, grad_picked)
        return (grad, None) + (None,) * ctx.n_excluded


_TINY = 1e-37


def rest_logsumexp_and_gather(scores: torch.Tensor, excluded, items: torch.Tensor):
    """``log sum_{j not excluded, j != 0} e^{s_j}`` per row, and the scores of ``items``.

    The one full-catalogue computation every loss here needs, fused with the gathers of
    its listed items. Excluded ids may repeat or overlap; an empty set gives log(1e-37)
    with zero gradient.

    Args:
        scores: float ``[B, n_items]``, already clamped to [-40, 40]; or their factors as
            :class:`~recbole_hetcomp.distill.mf.MFScores` (clamped chunk by chunk here;
            same numbers, faster on CPU, no ``[B, n_items]`` copies).
        excluded: a list of item sets, each an integer ``[B, L]`` tensor of ids (0 =
            padding; item 0 is always excluded) or a ``(rows, cols)`` pair of flat index
            tensors (see :func:`flat_items`).
        items: integer ``[B, M]`` ids whose scores are returned (0 allowed; mask it yourself).

    Returns:
        tuple: ``log_rest`` float [B], ``picked`` float [B, M].
    """
    sets = [tuple(t.long() for t in x) if isinstance(x, (tuple, list)) else x.long() for x in excluded]
    if isinstance(scores, MFScores):
        return mf_rest_logsumexp_and_gather(scores, sets, items.long(), SCORE_CLAMP, _TINY)
    return _RestAndPicked.apply(scores, items.long(), *sets)


def flat_items(indptr: torch.Tensor, indices: torch.Tensor, users: torch.Tensor):
    """The item sets of ``users`` as flat ``(rows, cols)`` indices, from a CSR layout.

    A heavy user pads a ``[B, L]`` id matrix to thousands of columns for every batch
    (1,388 on ml-1m, where the average is 100); the flat form costs only the real entries.

    Args:
        indptr: integer ``[n_users + 1]``, user u's items are ``indices[indptr[u]:indptr[u + 1]]``.
        indices: integer ``[nnz]`` item ids.
        users: integer ``[B]`` user ids.

    Returns:
        tuple: ``rows`` [N] (positions in ``users``) and ``cols`` [N] (item ids).
    """
    starts = indptr[users]
    lengths = indptr[users + 1] - starts
    rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
    first = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
    return rows, indices[first + torch.arange(len(rows), device=users.device)]


def log_add_items(log_base: torch.Tensor, picked: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``log(e^{log_base} + sum_{valid} e^{picked})`` per row ``[B]``.

    Args:
        log_base: float ``[B]``, e.g. a ``log_rest`` of :func:`rest_logsumexp_and_gather`.
        picked: float ``[B, m]`` scores of listed items.
        valid: bool ``[B, m]``; False entries add nothing.
    """
    listed = torch.logsumexp(picked.masked_fill(~valid, MASKED_SCORE), dim=1)
    return torch.logaddexp(log_base, listed)


def _floored(log_denominator: torch.Tensor, log_floor: Optional[float]) -> torch.Tensor:
    """``log max(denominator, e^log_floor)``: the reference clamps every softmax
    denominator at >= 1e-5 before its log; None keeps the exact log."""
    return log_denominator if log_floor is None else log_denominator.clamp_min(log_floor)


def plackett_luce_terms(
    ranked_scores: torch.Tensor, valid: torch.Tensor, log_negatives: torch.Tensor, log_floor: Optional[float] = None
):
    """Plackett-Luce negative log-likelihood per row, from the ranked items' scores.

    Args:
        ranked_scores: float ``[B, m]`` scores of the ranked items, best first, within
            [-SCORE_CLAMP, SCORE_CLAMP] (as :func:`clamp_scores` leaves them; the suffix sums
            rely on it).
        valid: bool ``[B, m]``; False = padding (no term, in no suffix sum).
        log_negatives: float ``[B]`` ``log sum_{j in N} e^{s_j}`` of the unordered set N.
        log_floor: if given, each denominator is clamped at ``>= e^log_floor`` before its log.

    Returns:
        Float ``[B]`` per-user loss.
    """
    if ranked_scores.shape[1] == 0:  # an empty list has no term
        return ranked_scores.sum(dim=1)
    ranked_scores = ranked_scores.masked_fill(~valid, MASKED_SCORE)
    # log sum_{l >= k} e^{s_pi_l}, from the list's end. Shifted by the row's largest score, as a
    # plain cumulative sum: torch's logcumsumexp and its backward were most of the detailed
    # stage's extra cost on CPU (docs/scale.md), and this is exact enough here: real scores are
    # clamped to [-40, 40], so every shifted term is >= e^-80, a normal float32 (padding's
    # e^-1e4 is 0, as it should be).
    top = ranked_scores.detach().amax(dim=1, keepdim=True)
    suffix = torch.log((ranked_scores - top).exp().flip(1).cumsum(dim=1).flip(1)) + top
    log_denominator = _floored(torch.logaddexp(suffix, log_negatives[:, None]), log_floor)
    return (log_denominator - ranked_scores).masked_fill(~valid, 0.0).sum(dim=1)


def _plackett_luce_clamped(
    scores: torch.Tensor,
    ranked: torch.Tensor,
    ranked_mask: torch.Tensor,
    negative_mask: torch.Tensor,
) -> torch.Tensor:
    """:func:`plackett_luce` on already clamped scores."""
    valid = ranked_mask & (ranked != 0)
    negatives = _masked_logsumexp(scores, negative_mask)
    return plackett_luce_terms(scores.gather(1, ranked.long()), valid, negatives)


def plackett_luce(
    scores: torch.Tensor,
    ranked: torch.Tensor,
    ranked_mask: torch.Tensor,
    negative_mask: torch.Tensor,
) -> torch.Tensor:
    """Truncated Plackett-Luce negative log-likelihood of a ranked list.

    ``PL(pi; N) = -sum_k log( e^{s_pi_k} / (sum_{l >= k} e^{s_pi_l} + sum_{j in N} e^{s_j}) )``
    over the valid positions k of ``pi``: the k-th item must beat every later
    listed item and the unordered set N.

    Args:
        scores: float ``[B, n_items]`` student scores (clamped here).
        ranked: integer ``[B, m]`` item ids, best first.
        ranked_mask: bool ``[B, m]``; False (and id 0) = padding, which adds
            no term and is in no suffix sum.
        negative_mask: bool ``[B, n_items]`` marking N (should exclude the
            ranked items; an empty N is fine).

    Returns:
        Float ``[B]`` per-user loss.
    """
    return _plackett_luce_clamped(_clamp(scores), ranked, ranked_mask, negative_mask)


def overall_loss(
    scores: torch.Tensor,
    observed: torch.Tensor,
    observed_mask: torch.Tensor,
    target: torch.Tensor,
    train_items: torch.Tensor,
    log_floor: Optional[float] = None,
) -> torch.Tensor:
    """Stage-1 loss: each item of O_u and of T_u against the rest.

    ``L_u = -sum_{i in O_u + T_u} log( e^{s_i} / (e^{s_i} + sum_{j in rest} e^{s_j}) )``
    with rest = items that are not training items, not in T_u, not item 0.
    Items of O_u and T_u never appear among each other's competitors.

    Args:
        scores: float ``[B, n_items]``, or their factors (:class:`~recbole_hetcomp.distill.mf.MFScores`).
        observed: integer ``[B, o]`` teacher-ranked training items.
        observed_mask: bool ``[B, o]`` (False or id 0 = padding).
        target: integer ``[B, K]`` DKC target (0 = padding).
        train_items: each user's training items: integer ``[B, L]``, 0-padded, or flat
            ``(rows, cols)`` (see :func:`flat_items`).
        log_floor: if given, every denominator is clamped at ``>= e^log_floor``
            before its log (the reference: log(1e-5)); None = exact.

    Returns:
        Float ``[B]`` per-user loss.
    """
    scores = clamp_scores(scores)
    items = torch.cat([observed.long(), target.long()], dim=1)
    valid = torch.cat([observed_mask & (observed != 0), target != 0], dim=1)
    log_rest, picked = rest_logsumexp_and_gather(scores, [train_items, target], items)
    if log_floor is None:
        # -log(e^s / (e^s + e^c)) = softplus(c - s), stable for any gap.
        terms = F.softplus(log_rest[:, None] - picked)
    else:
        terms = _floored(torch.logaddexp(picked, log_rest[:, None]), log_floor) - picked
    return terms.masked_fill(~valid, 0.0).sum(dim=1)


def detailed_loss(
    scores: torch.Tensor,
    observed: torch.Tensor,
    observed_mask: torch.Tensor,
    target: torch.Tensor,
    train_items: torch.Tensor,
    n_observed: int = 10,
    n_long: int = 50,
    n_short: int = 10,
    target_weight: float = 0.5,
    log_floor: Optional[float] = None,
) -> torch.Tensor:
    """Stage-2 loss: Plackett-Luce on the orders of O_u and T_u.

    With U = unobserved items (not training items, not item 0),
    ``T50 = T_u[:n_long]`` and ``T10 = T_u[:n_short]``::

        L_u = PL(O_u[:n_observed]; N = U minus T50)
            + target_weight * ( PL(T50; N = U minus T50)
                              + PL(T10; N = U minus T10) )

    So in the last term the items of ``T_u[n_short:n_long]`` are unordered
    competitors of the top ``n_short``.

    Args:
        scores: float ``[B, n_items]``, or their factors (:class:`~recbole_hetcomp.distill.mf.MFScores`).
        observed: integer ``[B, o]`` teacher-ranked training items.
        observed_mask: bool ``[B, o]`` (False or id 0 = padding).
        target: integer ``[B, K]`` DKC target (0 = padding).
        train_items: each user's training items: integer ``[B, L]``, 0-padded, or flat
            ``(rows, cols)`` (see :func:`flat_items`).
        n_observed: observed items whose order is learned (paper: 10).
        n_long: long target prefix (paper: 50).
        n_short: short target prefix (paper: 10).
        target_weight: weight of the two target terms (paper: 1/2).
        log_floor: if given, every denominator is clamped at ``>= e^log_floor``
            before its log (the reference: log(1e-5)); None = exact.

    Returns:
        Float ``[B]`` per-user loss.
    """
    scores = clamp_scores(scores)
    obs = observed[:, :n_observed].long()
    obs_valid = observed_mask[:, :n_observed] & (obs != 0)
    long_target = target[:, :n_long].long()
    long_valid = long_target != 0
    # N for the long list: unobserved items outside T50. N for the short list adds
    # T[n_short:n_long] to it: a sum of positives, computed without subtraction.
    log_long, picked = rest_logsumexp_and_gather(
        scores, [train_items, long_target], torch.cat([obs, long_target], dim=1)
    )
    obs_scores, long_scores = picked[:, : obs.shape[1]], picked[:, obs.shape[1]:]
    log_short = log_add_items(log_long, long_scores[:, n_short:], long_valid[:, n_short:])

    observed_part = plackett_luce_terms(obs_scores, obs_valid, log_long, log_floor)
    long_part = plackett_luce_terms(long_scores, long_valid, log_long, log_floor)
    short_part = plackett_luce_terms(long_scores[:, :n_short], long_valid[:, :n_short], log_short, log_floor)
    return observed_part + target_weight * (long_part + short_part)
