r"""The CL-DRD loss of one curriculum stage, a baseline of HetComp.

Reference:
    Hansi Zeng, Hamed Zamani, Vishwa Vinay.
    "Curriculum Learning for Dense Retrieval Distillation." SIGIR 2022.

A teacher's ranked list is split into an ordered top group G1, an unordered group G2 and
the rest R; G1 must be ranked in order above everything below it, each G2 item above R.
From stage to stage G1 grows (coarse to fine). Here, with the softmax / Plackett-Luce
terms HetComp's own losses use, over the full catalogue::

    L_u = PL(G1; N = G2 + R) - sum_{i in G2} log( e^{s_i} / (e^{s_i} + sum_{j in R} e^{s_j}) )

The model, its stage schedule and how it departs from the paper's LambdaRank loss are in
:mod:`recbole_hetcomp.model.general_recommender.cldrd`.
"""

import torch.nn.functional as F

from recbole_hetcomp.distill.akt import clamp_scores, log_add_items, plackett_luce_terms, rest_logsumexp_and_gather

__all__ = ["cldrd_loss"]


def cldrd_loss(scores, target, train_items, n_ordered, length):
    r"""Grouped ranking loss of one curriculum stage, per user.

    With ``G1 = target[:, :n_ordered]``, ``G2 = target[:, n_ordered:length]`` and R = the
    unobserved items outside ``target[:, :length]`` (item 0 never)::

        L_u = PL(G1; N = G2 + R) - sum_{i in G2} log( e^{s_i} / (e^{s_i} + sum_{j in R} e^{s_j}) )

    Padding entries (id 0) of ``target`` add no term and are in no sum.

    Args:
        scores (torch.Tensor or MFScores): float [B, n_items] student scores (clamped to [-40, 40] here).
        target (torch.Tensor): integer [B, >= length] the ensemble's ranking, best first, 0-padded.
        train_items (torch.Tensor or tuple): training items, integer [B, L_train] 0-padded,
            or flat ``(rows, cols)`` (see :func:`~recbole_hetcomp.distill.akt.flat_items`).
        n_ordered (int): K_c, the ordered prefix (0 <= n_ordered <= length).
        length (int): L, the supervised prefix.

    Returns:
        torch.Tensor: float [B] per-user loss.
    """
    if not 0 <= n_ordered <= length:
        raise ValueError(f"n_ordered must be in [0, {length}], got {n_ordered}")
    scores = clamp_scores(scores)
    top = target[:, :length].long()
    ordered, unordered = top[:, :n_ordered], top[:, n_ordered:]
    log_rest, picked = rest_logsumexp_and_gather(scores, [train_items, top], top)
    ordered_scores, unordered_scores = picked[:, :n_ordered], picked[:, n_ordered:]
    log_below = log_add_items(log_rest, unordered_scores, unordered != 0)  # N = G2 + R
    ordered_part = plackett_luce_terms(ordered_scores, ordered != 0, log_below)
    # -log(e^s / (e^s + e^c)) = softplus(c - s)
    group_part = F.softplus(log_rest[:, None] - unordered_scores).masked_fill(unordered == 0, 0.0)
    return ordered_part + group_part.sum(dim=1)
