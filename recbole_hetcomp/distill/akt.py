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

* training items R_u: ``train_mask[u]``;
* unobserved items: every item not in R_u;
* O_u: valid entries of ``observed[u]`` (teacher-ranked training items);
* T_u: non-zero entries of ``target[u]`` (the DKC ensemble target).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SCORE_CLAMP", "plackett_luce", "overall_loss", "detailed_loss"]

SCORE_CLAMP = 40.0

# Stand-in score for masked entries. Real scores are clamped to [-40, 40], so
# e^{-1e4} is exactly 0 next to any real term (even in float64), while, unlike
# -inf, it keeps every gradient finite when a set is empty.
_MASKED = -1.0e4


def _clamp(scores: torch.Tensor) -> torch.Tensor:
    return scores.clamp(-SCORE_CLAMP, SCORE_CLAMP)


def _members(ids: torch.Tensor, n_items: int) -> torch.Tensor:
    """Bool ``[B, n_items]``: True at the ids of each row, never at item 0."""
    mask = torch.zeros(ids.shape[0], n_items, dtype=torch.bool, device=ids.device)
    mask.scatter_(1, ids.long(), True)
    mask[:, 0] = False
    return mask


def _unobserved(train_mask: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, n_items]``: not a training item and not item 0."""
    mask = ~train_mask
    mask[:, 0] = False
    return mask


def _masked_logsumexp(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log sum_{j: mask} e^{s_j}`` per row ``[B]``; ~-1e4 for an empty set."""
    return torch.logsumexp(scores.masked_fill(~mask, _MASKED), dim=1)


def _plackett_luce_clamped(
    scores: torch.Tensor,
    ranked: torch.Tensor,
    ranked_mask: torch.Tensor,
    negative_mask: torch.Tensor,
) -> torch.Tensor:
    """:func:`plackett_luce` on already clamped scores."""
    valid = ranked_mask & (ranked != 0)
    ranked_scores = scores.gather(1, ranked.long()).masked_fill(~valid, _MASKED)
    # log sum_{l >= k} e^{s_pi_l}: a cumulative logsumexp from the list's end.
    suffix = ranked_scores.flip(1).logcumsumexp(dim=1).flip(1)
    negatives = _masked_logsumexp(scores, negative_mask)
    log_denominator = torch.logaddexp(suffix, negatives[:, None])
    terms = (log_denominator - ranked_scores).masked_fill(~valid, 0.0)
    return terms.sum(dim=1)


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
    train_mask: torch.Tensor,
) -> torch.Tensor:
    """Stage-1 loss: each item of O_u and of T_u against the rest.

    ``L_u = -sum_{i in O_u + T_u} log( e^{s_i} / (e^{s_i} + sum_{j in rest} e^{s_j}) )``
    with rest = items that are not training items, not in T_u, not item 0.
    Items of O_u and T_u never appear among each other's competitors.

    Args:
        scores: float ``[B, n_items]``.
        observed: integer ``[B, o]`` teacher-ranked training items.
        observed_mask: bool ``[B, o]`` (False or id 0 = padding).
        target: integer ``[B, K]`` DKC target (0 = padding).
        train_mask: bool ``[B, n_items]`` training items.

    Returns:
        Float ``[B]`` per-user loss.
    """
    scores = _clamp(scores)
    n_items = scores.shape[1]
    rest = _unobserved(train_mask) & ~_members(target, n_items)
    log_rest = _masked_logsumexp(scores, rest)
    items = torch.cat([observed, target.to(observed.dtype)], dim=1).long()
    valid = torch.cat([observed_mask & (observed != 0), target != 0], dim=1)
    # -log(e^s / (e^s + e^c)) = softplus(c - s), stable for any gap.
    terms = F.softplus(log_rest[:, None] - scores.gather(1, items))
    return terms.masked_fill(~valid, 0.0).sum(dim=1)


def detailed_loss(
    scores: torch.Tensor,
    observed: torch.Tensor,
    observed_mask: torch.Tensor,
    target: torch.Tensor,
    train_mask: torch.Tensor,
    n_observed: int = 10,
    n_long: int = 50,
    n_short: int = 10,
    target_weight: float = 0.5,
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
        scores: float ``[B, n_items]``.
        observed: integer ``[B, o]`` teacher-ranked training items.
        observed_mask: bool ``[B, o]`` (False or id 0 = padding).
        target: integer ``[B, K]`` DKC target (0 = padding).
        train_mask: bool ``[B, n_items]`` training items.
        n_observed: observed items whose order is learned (paper: 10).
        n_long: long target prefix (paper: 50).
        n_short: short target prefix (paper: 10).
        target_weight: weight of the two target terms (paper: 1/2).

    Returns:
        Float ``[B]`` per-user loss.
    """
    scores = _clamp(scores)
    n_items = scores.shape[1]
    unobserved = _unobserved(train_mask)
    long_target, short_target = target[:, :n_long], target[:, :n_short]
    outside_long = unobserved & ~_members(long_target, n_items)
    outside_short = unobserved & ~_members(short_target, n_items)

    observed_part = _plackett_luce_clamped(
        scores, observed[:, :n_observed], observed_mask[:, :n_observed], outside_long
    )
    long_part = _plackett_luce_clamped(scores, long_target, long_target != 0, outside_long)
    short_part = _plackett_luce_clamped(scores, short_target, short_target != 0, outside_short)
    return observed_part + target_weight * (long_part + short_part)
