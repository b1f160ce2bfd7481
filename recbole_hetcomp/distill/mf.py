"""Full-catalogue MF scores with a backward pass shaped for small embedding sizes.

The student's losses need ``s = E_u @ E_i^T`` for a batch of users over every item.
With d = 6 the default autograd backward computes ``grad^T @ E_u`` as a badly shaped
product (measured 17 ms for 934 users x 3,707 items at 1 thread), while the same
numbers as ``(E_u^T @ grad)^T`` take 1.9 ms. Values and gradients are identical.

:class:`MFScores` keeps the scores as their factors for losses that need only a sum of
exponentials over the catalogue and a few entries (all the students' losses): computed a
chunk of users at a time, with the same numbers; citeulike-a student epochs 1.3-1.4x faster than with whole-matrix
passes on CPU (docs/scale.md, ``benchmarks/bench_epoch.py``).
"""

from typing import NamedTuple

import torch


class _FullScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, user_e, item_e):
        ctx.save_for_backward(user_e, item_e)
        return user_e @ item_e.T

    @staticmethod
    def backward(ctx, grad):
        user_e, item_e = ctx.saved_tensors
        grad_user = grad_item = None
        if ctx.needs_input_grad[0]:
            grad_user = (item_e.T.contiguous() @ grad.T).T
        if ctx.needs_input_grad[1]:
            grad_item = (user_e.T @ grad).T
        return grad_user, grad_item


def full_scores(user_e, item_e):
    """``user_e @ item_e.T`` with a faster backward.

    Args:
        user_e: float ``[B, d]``.
        item_e: float ``[n_items, d]``.

    Returns:
        Float ``[B, n_items]``.
    """
    return _FullScores.apply(user_e, item_e)


class MFScores(NamedTuple):
    """Full-catalogue scores ``user_e @ item_e.T`` ``[B, n_items]``, kept as their factors.

    The students' losses read their scores only through
    :func:`~recbole_hetcomp.distill.akt.rest_logsumexp_and_gather` (a sum of exponentials
    over the catalogue and a few gathered entries). Given this form, it computes them a
    chunk of users at a time while the chunk is in cache, instead of passing over the
    whole ``[B, n_items]`` block in memory once per operation; :meth:`dense` builds the
    matrix for anything else.
    """

    user_e: torch.Tensor  # float [B, d]
    item_e: torch.Tensor  # float [n_items, d]

    def dense(self):
        """The scores as one float ``[B, n_items]`` tensor (:func:`full_scores`)."""
        return full_scores(self.user_e, self.item_e)


# Score cells per chunk of users in :func:`mf_rest_logsumexp_and_gather`: about 4 MB of
# float32, kept in a CPU core's cache from the product to the sum. On a GPU the whole
# batch is one chunk (a few large kernels beat many small ones).
CHUNK_CELLS = {"cpu": 1_000_000}
# Chunks are a multiple of this many users, and no chunk is shorter: a one-user product
# is a matrix-vector call whose sums may round differently from the batched product.
CHUNK_ROWS = 16


def _chunk_bounds(n_rows, n_items, device):
    budget = CHUNK_CELLS.get(device.type)
    if budget is None:
        return [0, n_rows]
    step = max(CHUNK_ROWS, budget // max(n_items, 1) // CHUNK_ROWS * CHUNK_ROWS)
    bounds = list(range(0, n_rows, step)) + [n_rows]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < CHUNK_ROWS:
        del bounds[-2]
    return bounds


class _MFRestAndPicked(torch.autograd.Function):
    """The full-catalogue part of the losses from the factors, one chunk of users at a time.

    Forward, per chunk: scores, clamp, gather, exp, zero the excluded items, row sums.
    The exponentials are kept (one ``[B, n_items]`` block, the only one) and the
    backward turns them into the score gradient in place, chunk by chunk, with the
    users' gradient while each chunk is in cache. Same operations, per entry, as
    :func:`full_scores` followed by ``akt._RestAndPicked``.
    """

    @staticmethod
    def forward(ctx, user_e, item_e, items, clamp, tiny, *excluded):
        n_rows, n_items = user_e.shape[0], item_e.shape[0]
        bounds = _chunk_bounds(n_rows, n_items, user_e.device)
        e = user_e.new_empty(n_rows, n_items)
        total = user_e.new_empty(n_rows)
        picked = user_e.new_empty(items.shape)
        flat = []
        for item_set in excluded:
            if isinstance(item_set, tuple):  # (rows, cols): split by chunk of rows
                rows, cols = item_set
                if rows.numel() > 1 and bool((rows[1:] < rows[:-1]).any()):
                    order = torch.argsort(rows, stable=True)
                    rows, cols = rows[order], cols[order]
                starts = torch.searchsorted(rows, torch.tensor(bounds, device=rows.device)).tolist()
                flat.append((rows, cols, starts))
        padded = [item_set for item_set in excluded if not isinstance(item_set, tuple)]
        item_t = item_e.T
        out_of_range = {}
        for chunk, (s, t) in enumerate(zip(bounds[:-1], bounds[1:])):
            block = e[s:t]
            torch.mm(user_e[s:t], item_t, out=block)
            if block.amax() > clamp or block.amin() < -clamp:
                out_of_range[chunk] = (block > clamp) | (block < -clamp)  # clamp passes no gradient there
                block.clamp_(-clamp, clamp)
            picked[s:t] = block.gather(1, items[s:t])
            block.exp_()
            for rows, cols, starts in flat:
                block[rows[starts[chunk] : starts[chunk + 1]] - s, cols[starts[chunk] : starts[chunk + 1]]] = 0.0
            for item_set in padded:
                block.scatter_(1, item_set[s:t], 0.0)
            block[:, 0] = 0.0
            torch.sum(block, dim=1, out=total[s:t])
        total.clamp_min_(tiny)
        ctx.save_for_backward(user_e, item_e, e, total, items)
        ctx.bounds, ctx.out_of_range = bounds, out_of_range
        return torch.log(total), picked

    @staticmethod
    def backward(ctx, grad_log_rest, grad_picked):
        # e is overwritten with the score gradient: a second backward through the same
        # graph is refused by autograd (the saved tensor was modified).
        user_e, item_e, e, total, items = ctx.saved_tensors
        coef = (grad_log_rest / total)[:, None]
        grad_user = torch.empty_like(user_e) if ctx.needs_input_grad[0] else None
        item_t = item_e.T.contiguous()
        for chunk, (s, t) in enumerate(zip(ctx.bounds[:-1], ctx.bounds[1:])):
            block = e[s:t]
            block.mul_(coef[s:t])
            block.scatter_add_(1, items[s:t], grad_picked[s:t])
            if chunk in ctx.out_of_range:
                block.masked_fill_(ctx.out_of_range[chunk], 0.0)
            if grad_user is not None:
                grad_user[s:t] = (item_t @ block.T).T
        grad_item = (user_e.T @ e).T if ctx.needs_input_grad[1] else None
        return (grad_user, grad_item, None, None, None) + (None,) * (len(ctx.needs_input_grad) - 5)


def mf_rest_logsumexp_and_gather(scores, excluded, items, clamp, tiny):
    """:func:`~recbole_hetcomp.distill.akt.rest_logsumexp_and_gather` on :class:`MFScores`.

    Args:
        scores (MFScores): the factors of ``[B, n_items]`` scores (clamped to
            ``[-clamp, clamp]`` here, with the clamp's gradient).
        excluded (list): item sets, each a long ``[B, L]`` tensor (0 = padding) or a
            ``(rows, cols)`` pair of long tensors.
        items (torch.Tensor): long ``[B, M]`` ids whose (clamped) scores are returned.
        clamp (float): score bound.
        tiny (float): floor of each row's sum (an empty set gives ``log(tiny)``).

    Returns:
        tuple: ``log_rest`` float [B], ``picked`` float [B, M].
    """
    return _MFRestAndPicked.apply(scores.user_e, scores.item_e, items, clamp, tiny, *excluded)
