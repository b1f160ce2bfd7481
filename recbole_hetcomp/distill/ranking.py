"""Ranking primitives for HetComp's ensemble targets.

HetComp (Kang et al., "Distillation from Heterogeneous Models for Top-K
Recommendation", WWW 2023) builds the student's target for a user from the
ranked lists of several teachers: every item gets the positional importance it
has in each teacher's list, summed over teachers, and the top-K items of that
sum form the target. This module holds those pieces as plain batched tensor
code (torch only, no RecBole objects).

Conventions shared by the whole ``distill`` package:

* item id 0 is padding and never a valid item;
* positions are 0-based (the first item of a list has position 0);
* ranked lists are integer tensors of item ids, padded with 0 where shorter;
* ``train_mask``/``exclude_mask`` are bool ``[B, n_items]``, True = excluded;
  item 0 is always excluded whatever column 0 holds.

Ties: every top-k here breaks ties by the lower item id (see
:func:`stable_topk`), so results are deterministic and reproducible by a
brute-force reference.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

Weights = Optional[Union[torch.Tensor, Sequence[float]]]

__all__ = [
    "importance",
    "stable_topk",
    "topk_unobserved",
    "rank_ensemble_scores",
    "rank_ensemble_topk",
]


def importance(positions: torch.Tensor, temperature: float = 10.0) -> torch.Tensor:
    """Positional importance ``exp(-position / temperature)``.

    Args:
        positions: any-shaped tensor of 0-based positions (int or float).
        temperature: decay scale; 10 in the paper's reference setting.

    Returns:
        Float tensor of the same shape (the default float dtype for integer
        input, otherwise the input's dtype).
    """
    if not torch.is_floating_point(positions):
        positions = positions.to(torch.get_default_dtype())
    return torch.exp(-positions / temperature)


def stable_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row, ties broken by the lower column index.

    ``torch.topk`` does not specify which of several equal values it returns,
    and rank-ensemble scores tie often (two teachers' first items score the
    same), so ties are resolved explicitly. Most rows need only ``topk`` plus
    a reorder of the k winners; rows where the k-th value is shared with
    entries left out are redone by :func:`_boundary_tie_topk`.

    Args:
        scores: float ``[B, n]``, no NaN (``-inf`` is fine and sorts last).
        k: number of entries to return; clipped to ``n``.

    Returns:
        ``(values, indices)``, each ``[B, min(k, n)]``, values descending,
        equal values in increasing index order.
    """
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        empty = scores.new_empty((n_rows, k))
        return empty, empty.long()
    if torch.isnan(scores).any():
        raise ValueError("stable_topk: scores must not contain NaN")
    cols = scores.topk(k, dim=1, sorted=False).indices
    values = scores.gather(1, cols)
    kth = values.min(dim=1, keepdim=True).values
    # Rows where an entry equal to the k-th value was left out: which of the
    # tied entries made the cut is up to topk, so choose them again.
    outside_ties = (scores >= kth).sum(dim=1) > k
    if bool(outside_ties.any()):
        rows = outside_ties.nonzero().squeeze(1)
        cols[rows] = _boundary_tie_topk(scores[rows], kth[rows], k)
    cols = cols.sort(dim=1).values
    values = scores.gather(1, cols)
    values, order = values.sort(dim=1, descending=True, stable=True)
    return values, cols.gather(1, order)


def _boundary_tie_topk(scores: torch.Tensor, kth: torch.Tensor, k: int) -> torch.Tensor:
    """Column ids of each row's top-k, lowest indices first among k-th-value ties.

    Args:
        scores: float ``[R, n]``.
        kth: float ``[R, 1]``, each row's k-th largest value.
        k: number of columns to keep.

    Returns:
        LongTensor ``[R, k]`` in increasing column order (unsorted by value).
    """
    above = scores > kth
    tied = scores == kth
    free_slots = k - above.sum(dim=1, keepdim=True)
    keep = above | (tied & (tied.cumsum(dim=1, dtype=torch.int32) <= free_slots))
    # nonzero walks row-major, so each row's k winners come out in index order.
    return keep.nonzero()[:, 1].view(scores.shape[0], k)


def _mask_invalid(scores: torch.Tensor, exclude_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Copy of ``scores`` with excluded items and item 0 set to ``-inf``."""
    masked = scores.clone()
    if exclude_mask is not None:
        masked.masked_fill_(exclude_mask, float("-inf"))
    masked[:, 0] = float("-inf")
    return masked


def _pad_columns(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Right-pad ``[B, k']`` ids with 0 up to ``k`` columns."""
    if ids.shape[1] >= k:
        return ids
    return torch.nn.functional.pad(ids, (0, k - ids.shape[1]), value=0)


def topk_unobserved(scores: torch.Tensor, train_mask: Optional[torch.Tensor], k: int) -> torch.Tensor:
    """The k best-scored items of each user that are not training items.

    Args:
        scores: float ``[B, n_items]`` full-catalogue scores, no NaN.
        train_mask: bool ``[B, n_items]``, True for training items (or None).
        k: list length.

    Returns:
        LongTensor ``[B, k]`` of item ids, best first; ties go to the lower id.
        Where a user has fewer than k candidate items the list is padded
        with 0.
    """
    masked = _mask_invalid(scores, train_mask)
    values, ids = stable_topk(masked, k)
    ids = ids.masked_fill(values == float("-inf"), 0)
    return _pad_columns(ids, k)


def _as_weights(weights: Weights, n_lists: int, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.ones(n_lists, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    if w.shape != (n_lists,):
        raise ValueError(f"weights must have shape ({n_lists},), got {tuple(w.shape)}")
    return w


def rank_ensemble_scores(
    lists: torch.Tensor,
    n_items: int,
    temperature: float = 10.0,
    weights: Weights = None,
) -> torch.Tensor:
    """Dense rank-ensemble scores ``sum_x w_x * importance(pos of i in list x)``.

    Args:
        lists: integer ``[M, B, N]``: M teachers' ranked lists for B users,
            padded with 0. An item repeated inside one list (not expected)
            would count once per occurrence.
        n_items: catalogue size (ids ``0..n_items-1``).
        temperature: importance temperature.
        weights: optional per-teacher weights ``[M]`` (default all 1); they
            should be positive, since :func:`rank_ensemble_topk` only picks
            items with a positive score.

    Returns:
        Float ``[B, n_items]``; items in no list and column 0 are 0.
    """
    n_lists, n_users, length = lists.shape
    per_position = importance(torch.arange(length, device=lists.device), temperature)
    w = _as_weights(weights, n_lists, per_position)
    contrib = (w[:, None] * per_position[None, :])[:, None, :].expand(n_lists, n_users, length)
    # Padding entries point at column 0 and must add nothing there.
    contrib = contrib.masked_fill(lists == 0, 0.0)
    ids = lists.long().permute(1, 0, 2).reshape(n_users, n_lists * length)
    contrib = contrib.permute(1, 0, 2).reshape(n_users, n_lists * length)
    out = torch.zeros(n_users, n_items, dtype=contrib.dtype, device=lists.device)
    out.scatter_add_(1, ids, contrib)
    out[:, 0] = 0.0
    return out


def _listed_item_scores(
    lists: torch.Tensor, temperature: float, weights: Weights
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-ensemble scores of the distinct listed items only.

    Same sums as :func:`rank_ensemble_scores`, but over the ``M * N`` list
    entries of each user instead of the whole catalogue, which keeps the
    top-k that follows small.

    Returns:
        ``(candidates, scores)``, each ``[B, M * N]``: each user's list
        entries sorted by id; ``scores`` holds the item's ensemble score at
        the first entry of each distinct positive-scored id and ``-inf``
        elsewhere (repeats, padding, zero-weight items).
    """
    n_lists, n_users, length = lists.shape
    per_position = importance(torch.arange(length, device=lists.device), temperature)
    w = _as_weights(weights, n_lists, per_position)
    contrib = (w[:, None] * per_position[None, :])[:, None, :].expand(n_lists, n_users, length)
    ids = lists.long().permute(1, 0, 2).reshape(n_users, n_lists * length)
    contrib = contrib.permute(1, 0, 2).reshape(n_users, n_lists * length)
    # A stable sort keeps each item's entries in teacher order, so the sums
    # below add in the same order as the dense scatter.
    candidates, order = ids.sort(dim=1, stable=True)
    contrib = contrib.gather(1, order)
    first = torch.ones_like(candidates, dtype=torch.bool)
    first[:, 1:] = candidates[:, 1:] != candidates[:, :-1]
    run = first.cumsum(dim=1) - 1
    sums = torch.zeros_like(contrib).scatter_add_(1, run, contrib)
    scores = sums.gather(1, run)
    keep = first & (candidates != 0) & (scores > 0)
    return candidates, scores.masked_fill(~keep, float("-inf"))


def rank_ensemble_topk(
    lists: torch.Tensor,
    n_items: int,
    k: int,
    temperature: float = 10.0,
    weights: Weights = None,
    exclude_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Top-k items of the rank ensemble of several ranked lists.

    Only items with a strictly positive ensemble score (i.e. present in at
    least one list with positive weight) are eligible, so an item outside
    every list is never ranked ahead of, or in place of, a listed one.

    Args:
        lists: integer ``[M, B, N]`` ranked lists (0-padded).
        n_items: catalogue size (ids must be below it; the computation only
            touches the listed items, so it is not otherwise needed).
        k: target length.
        temperature: importance temperature.
        weights: optional per-teacher weights ``[M]``.
        exclude_mask: optional bool ``[B, n_items]``, True = never chosen.

    Returns:
        LongTensor ``[B, k]``, best first, ties to the lower id. Where fewer
        than k items are eligible the tail is padded with 0, so ``ids != 0``
        marks the valid entries.
    """
    candidates, scores = _listed_item_scores(lists, temperature, weights)
    if exclude_mask is not None:
        excluded = exclude_mask.gather(1, candidates)
        scores = scores.masked_fill(excluded, float("-inf"))
    # Candidates are sorted by id, so stable_topk's index tie-break is the
    # lower-id tie-break.
    values, slots = stable_topk(scores, k)
    ids = candidates.gather(1, slots).masked_fill(values == float("-inf"), 0)
    return _pad_columns(ids, k)
