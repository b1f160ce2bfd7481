"""Full-catalogue MF scores with a backward pass shaped for small embedding sizes.

The student's losses need ``s = E_u @ E_i^T`` for a batch of users over every item.
With d = 6 the default autograd backward computes ``grad^T @ E_u`` as a badly shaped
product (measured 17 ms for 934 users x 3,707 items at 1 thread), while the same
numbers as ``(E_u^T @ grad)^T`` take 1.9 ms. Values and gradients are identical.
"""

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
