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
    # One entry more than asked: the (k+1)-th value tells whether a tie straddles the cut,
    # without another pass over the whole row. topk ranks NaN first, so any NaN shows here.
    values, cols = scores.topk(min(k + 1, n_cols), dim=1, sorted=False)
    if torch.isnan(values).any():
        raise ValueError("stable_topk: scores must not contain NaN")
    cols, order = cols.sort(dim=1)
    values, order = values.gather(1, order).sort(dim=1, descending=True, stable=True)
    cols = cols.gather(1, order)
    if k == n_cols:
        return values, cols
    # Rows where an entry equal to the k-th value was left out: which of the
    # tied entries made the cut is up to topk, so choose them again.
    outside_ties = values[:, k] == values[:, k - 1]
    values, cols = values[:, :k].contiguous(), cols[:, :k].contiguous()
    if bool(outside_ties.any()):
        rows = outside_ties.nonzero().squeeze(1)
        redone = _boundary_tie_topk(scores[rows], values[rows, k - 1 :], k)
        redone_values, order = scores[rows].gather(1, redone).sort(dim=1, descending=True, stable=True)
        values[rows], cols[rows] = redone_values, redone.gather(1, order)
    return values, cols


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


def _mask_invalid(scores: torch.Tensor, exclude_mask: Optional[torch.Tensor], overwrite: bool = False) -> torch.Tensor:
    """``scores`` (a copy unless ``overwrite``) with excluded items and item 0 set to ``-inf``."""
    masked = scores if overwrite else scores.clone()
    if exclude_mask is not None:
        masked.masked_fill_(exclude_mask, float("-inf"))
    masked[:, 0] = float("-inf")
    return masked


def _pad_columns(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Right-pad ``[B, k']`` ids with 0 up to ``k`` columns."""
    if ids.shape[1] >= k:
        return ids
    return torch.nn.functional.pad(ids, (0, k - ids.shape[1]), value=0)


def topk_unobserved(
    scores: torch.Tensor, train_mask: Optional[torch.Tensor], k: int, overwrite: bool = False
) -> torch.Tensor:
    """The k best-scored items of each user that are not training items.

    Args:
        scores: float ``[B, n_items]`` full-catalogue scores, no NaN.
        train_mask: bool ``[B, n_items]``, True for training items (or None).
        k: list length.
        overwrite: mask ``scores`` in place instead of a copy (for a caller that
            computed them only for this).

    Returns:
        LongTensor ``[B, k]`` of item ids, best first; ties go to the lower id.
        Where a user has fewer than k candidate items the list is padded
        with 0.
    """
    masked = _mask_invalid(scores, train_mask, overwrite)
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


# Cells of the per-chunk scratch buffer in rank_ensemble_topk (16 MB of float32, of which only
# the listed items' cells are ever touched): a bounded allocation whatever the catalogue size,
# with enough users per chunk to keep the per-chunk overhead small.
ENSEMBLE_BUFFER_BUDGET = 4_000_000


def _ranking_keys(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """int64 keys that order entries by score, then by the lower id.

    A positive float32's bit pattern read as an integer grows with its value, so
    ``bits << 32`` keeps the score order exactly and the id below it breaks ties: a
    plain ``topk`` of the keys is the tie-broken top-k, with no tie handling left.

    Args:
        scores: float32 ``[B, L]``, > 0 wherever the key will be used.
        ids: LongTensor ``[B, L]`` of ids below 2**32.

    Returns:
        LongTensor ``[B, L]``.
    """
    return (scores.view(torch.int32).long() << 32) - ids


def _ensemble_topk_rows(
    ids: torch.Tensor,
    contrib: torch.Tensor,
    entry: torch.Tensor,
    buffer: torch.Tensor,
    k: int,
    exclude_mask: Optional[torch.Tensor],
) -> torch.Tensor:
    """:func:`rank_ensemble_topk` for one chunk of users.

    Args:
        ids: LongTensor ``[C, M * N]``: each user's list entries, teacher after teacher.
        contrib: float32 ``[C, M * N]``: each entry's weighted importance.
        entry: float32 ``[C, M * N]``: the entry's column (0, 1, ...).
        buffer: float32 ``[C, n_items]`` scratch; only the listed items' cells are
            written, and each is written before it is read.
        k: target length.
        exclude_mask: optional bool ``[C, n_items]``.

    Returns:
        LongTensor ``[C, min(k, M * N)]``.
    """
    # Sums over every list, in teacher order (as the dense scatter adds them), read back
    # at each entry; include_self=False so no cell needs clearing first.
    buffer.scatter_reduce_(1, ids, contrib, "sum", include_self=False)
    sums = buffer.gather(1, ids)
    # An item listed several times counts once, at its first entry.
    buffer.scatter_reduce_(1, ids, entry, "amin", include_self=False)
    keep = (buffer.gather(1, ids) == entry) & (ids != 0) & (sums > 0)
    if exclude_mask is not None:
        keep &= ~exclude_mask.gather(1, ids)
    keys = _ranking_keys(sums, ids).masked_fill_(~keep, -1)
    values, slots = keys.topk(min(k, keys.shape[1]), dim=1)
    return ids.gather(1, slots).masked_fill_(values < 0, 0)


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
    Scores are float32 sums whatever torch's default dtype (the same sums as
    :func:`rank_ensemble_scores` under RecBole's float32 default), touched only at the
    listed items. Catalogues above ``ENSEMBLE_BUFFER_BUDGET`` items (4M) go one user per
    chunk, which is slower.

    Args:
        lists: integer ``[M, B, N]`` ranked lists (0-padded).
        n_items: catalogue size (ids must be below it).
        k: target length.
        temperature: importance temperature.
        weights: optional per-teacher weights ``[M]``.
        exclude_mask: optional bool ``[B, n_items]``, True = never chosen.

    Returns:
        LongTensor ``[B, k]``, best first, ties to the lower id. Where fewer
        than k items are eligible the tail is padded with 0, so ``ids != 0``
        marks the valid entries.
    """
    n_lists, n_users, length = lists.shape
    if n_lists * length >= 1 << 24:  # entry columns are float32 in the first-entry test
        raise ValueError(f"rank_ensemble_topk: at most 2**24 list entries per user, got {n_lists * length}")
    device = lists.device
    per_position = importance(torch.arange(length, device=device), temperature).float()
    w = _as_weights(weights, n_lists, per_position)
    contrib = (w[:, None] * per_position[None, :]).reshape(1, n_lists * length)
    entry = torch.arange(n_lists * length, dtype=torch.float32, device=device).view(1, -1)
    out = torch.zeros(n_users, k, dtype=torch.long, device=device)
    step = max(1, min(n_users, ENSEMBLE_BUFFER_BUDGET // max(n_items, 1)))
    buffer = torch.empty(step, n_items, dtype=torch.float32, device=device)
    for start in range(0, n_users, step):
        chunk = lists[:, start : start + step]
        ids = chunk.long().permute(1, 0, 2).reshape(chunk.shape[1], n_lists * length)
        exclude = None if exclude_mask is None else exclude_mask[start : start + step]
        top = _ensemble_topk_rows(ids, contrib.expand_as(ids), entry.expand_as(ids), buffer[: len(ids)], k, exclude)
        out[start : start + len(ids), : top.shape[1]] = top
    return out
