"""Dynamic Knowledge Construction (DKC) of HetComp.

Kang et al., "Distillation from Heterogeneous Models for Top-K Recommendation",
WWW 2023, Sec. "Dynamic knowledge construction". Every teacher x leaves a
trajectory of T ranked lists per user (checkpoints 0..T-1, the last being the
converged teacher). Each (teacher, user) pair holds a checkpoint index v[x, u]
starting at 0; the student's target for user u is the rank ensemble of the
teachers' lists at v[., u]. Periodically the student's top list is compared to
each pair's *next* checkpoint and the pair moves on when the student has
clearly moved toward it (ratio of discrepancies above a decaying threshold
tau) or away from it (ratio below 1). Because tau decays below 1, every pair
eventually reaches its last checkpoint.

Everything is batched over users (processed in chunks to bound memory); the
only Python loops are over those chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from .ranking import Weights, importance, rank_ensemble_topk

__all__ = [
    "discrepancy",
    "dkc_threshold",
    "advance_rule",
    "CurriculumState",
    "dkc_step",
    "build_targets",
]


def discrepancy(
    student_topk: torch.Tensor,
    teacher_topk: torch.Tensor,
    temperature: float = 10.0,
) -> torch.Tensor:
    """``1 - NDCG`` of the student's list against the teacher's list as a set.

    Position p (0-based) of the student's list is a hit when its item is in the
    teacher's list (padding 0 ignored on both sides). Each position weighs
    ``g(p) / log2(p + 2)`` with gain ``g(p) = 2**exp(-p / temperature) - 1``
    and the usual NDCG discount; the ideal DCG assumes every student position
    is a hit, so identical sets give 0 and disjoint ones 1::

        D = 1 - sum_p hit(p) g(p) / log2(p + 2)  /  sum_p g(p) / log2(p + 2)

    Args:
        student_topk: integer ``[..., D]`` (D = discrepancy depth).
        teacher_topk: integer ``[..., D']``, leading dims broadcastable with
            the student's; usually D' = D.
        temperature: gain temperature.

    Returns:
        Float ``[...]`` (broadcast leading shape), values in ``[0, 1]``.
    """
    lead = torch.broadcast_shapes(student_topk.shape[:-1], teacher_topk.shape[:-1])
    depth, t_len = student_topk.shape[-1], teacher_topk.shape[-1]
    student = student_topk.long().expand(*lead, depth).reshape(-1, depth)
    teacher = teacher_topk.long().expand(*lead, t_len).reshape(-1, t_len)
    hit = _members(student, teacher)
    positions = torch.arange(depth, device=student.device, dtype=torch.get_default_dtype())
    weight = (torch.exp2(importance(positions, temperature)) - 1.0) / torch.log2(positions + 2.0)
    ndcg = (hit.to(weight.dtype) * weight).sum(dim=1) / weight.sum()
    return (1.0 - ndcg).reshape(lead)


# Bits per block of membership rows (see _members): 4 MB, whatever the catalogue.
MEMBERSHIP_BUDGET = 4_000_000


def _members(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Bool ``[R, D]``: is ``student[r, p]`` in ``teacher[r]`` (id 0, padding, never).

    Each block of rows scatters its teacher lists into a bool row per list over the ids
    and gathers the student's ids from it: the DKC call is 3.2x faster at 1 thread than
    with sorted teacher lists and a binary search (``benchmarks/bench_dkc_step.py``, ml-1m
    shape), memory bounded by :data:`MEMBERSHIP_BUDGET`.
    """
    n_rows = student.shape[0]
    n_ids = int(max(int(student.max()), int(teacher.max()))) + 1 if n_rows else 1
    block = max(1, MEMBERSHIP_BUDGET // n_ids)
    hit = torch.empty(student.shape, dtype=torch.bool, device=student.device)
    for start in range(0, n_rows, block):
        rows = slice(start, min(start + block, n_rows))
        present = torch.zeros(rows.stop - start, n_ids, dtype=torch.bool, device=student.device)
        present.scatter_(1, teacher[rows], True)
        present[:, 0] = False
        hit[rows] = present.gather(1, student[rows])
    return hit


def dkc_threshold(alpha: float, decay: float, epoch: int, period: int) -> float:
    """Advancement threshold ``tau = alpha * decay ** floor(epoch / period)``.

    The exponent is the whole number of DKC periods elapsed, as in the
    reference code (tau steps down once per period, never in between). With
    the reference values (alpha 1.05, decay 0.995, period 10) tau falls below
    1 at epoch 100, after which an unchanged discrepancy (ratio 1) also
    advances: this is what guarantees the curriculum finishes.
    """
    if period <= 0:
        raise ValueError(f"DKC period must be > 0, got {period}")
    return float(alpha) * float(decay) ** math.floor(epoch / period)


def advance_rule(
    checkpoint: torch.Tensor,
    d_ref: torch.Tensor,
    d_next: torch.Tensor,
    tau: float,
    last: Union[int, torch.Tensor],
) -> torch.Tensor:
    """Which (teacher, user) pairs move to their next checkpoint.

    A pair advances when it is not at its last checkpoint and, with
    ``r = d_ref / d_next``, either ``r > tau`` (the student got clearly
    closer to the next checkpoint) or ``r < 1`` (it drifted away).

    Edge cases, made explicit because they come from divisions by 0:

    * ``d_next == 0`` (the student already matches the next checkpoint's
      set): advance, whatever ``d_ref`` is (including 0, where r is 0/0).
    * ``d_ref == 0 < d_next``: r = 0 < 1, advance (moved away from a match).
    * ``d_ref`` or ``d_next`` NaN (no reference measured yet): never advance.

    Args:
        checkpoint: integer ``[M, U]`` current checkpoint indices.
        d_ref: float ``[M, U]`` reference discrepancy to the next checkpoint.
        d_next: float ``[M, U]`` current discrepancy to the next checkpoint.
        tau: threshold from :func:`dkc_threshold`.
        last: last checkpoint index, an int or a tensor broadcastable to
            ``checkpoint`` (e.g. ``(n_checkpoints - 1)[:, None]``).

    Returns:
        Bool ``[M, U]``.
    """
    known = ~(torch.isnan(d_ref) | torch.isnan(d_next))
    matched = d_next == 0
    ratio = d_ref / torch.where(matched, torch.ones_like(d_next), d_next)
    moved = matched | (ratio > tau) | (ratio < 1.0)
    return (checkpoint < last) & known & moved


@dataclass
class CurriculumState:
    """Per-(teacher, user) progress of the DKC curriculum.

    Attributes:
        n_checkpoints: LongTensor ``[M]``, checkpoints per teacher (T_x >= 1;
            a one-shot teacher such as EASE has 1 and is always at its last).
        checkpoint: LongTensor ``[M, U]``, current checkpoint index, from 0.
        d_ref: float ``[M, U]``, reference discrepancy to checkpoint + 1; NaN
            until measured and for pairs at their last checkpoint.
        n_calls: number of :func:`dkc_step` calls made so far.
        switched: whether the trainer has switched the AKT loss to stage 2
            (kept here so a resumed run does not switch back).
    """

    n_checkpoints: torch.Tensor
    checkpoint: torch.Tensor
    d_ref: torch.Tensor
    n_calls: int = 0
    switched: bool = False

    @classmethod
    def start(
        cls, n_checkpoints: Union[torch.Tensor, list[int]], n_users: int, device: Optional[torch.device] = None
    ) -> "CurriculumState":
        """Fresh state: every pair at checkpoint 0, no reference measured.

        Args:
            n_checkpoints: checkpoints per teacher ``[M]``.
            n_users: users U (RecBole's padding user included).
            device: where the state lives; it must be the trajectories' device.
        """
        n_ckpt = torch.as_tensor(n_checkpoints, dtype=torch.long).reshape(-1)
        if (n_ckpt < 1).any():
            raise ValueError("every teacher needs at least one checkpoint")
        n_teachers = n_ckpt.numel()
        return cls(
            n_checkpoints=n_ckpt.to(device),
            checkpoint=torch.zeros(n_teachers, n_users, dtype=torch.long, device=device),
            d_ref=torch.full((n_teachers, n_users), float("nan"), device=device),
        )

    @property
    def last(self) -> torch.Tensor:
        """LongTensor ``[M, 1]``: each teacher's last checkpoint index."""
        return (self.n_checkpoints - 1)[:, None]

    def at_last(self) -> torch.Tensor:
        """Bool ``[M, U]``: pairs at their teacher's last checkpoint."""
        return self.checkpoint >= self.last

    def fraction_at_last(self, user_mask: Optional[torch.Tensor] = None) -> float:
        """Share of (teacher, user) pairs at the last checkpoint.

        Args:
            user_mask: optional bool ``[U]`` of users to count (e.g. to leave
                out RecBole's padding user 0); default all.
        """
        done = self.at_last()
        if user_mask is not None:
            done = done[:, user_mask]
        if done.numel() == 0:
            return 1.0
        return done.float().mean().item()

    def finished(self, fraction: float = 1.0, user_mask: Optional[torch.Tensor] = None) -> bool:
        """True when at least ``fraction`` of the pairs are at their last checkpoint."""
        return self.fraction_at_last(user_mask) >= fraction

    def mean_checkpoint(self, user_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Float64 ``[M]``: each teacher's checkpoint index averaged over users.

        Args:
            user_mask: optional bool ``[U]`` of users to average over (e.g. to
                leave out RecBole's padding user 0); default all.
        """
        checkpoint = self.checkpoint if user_mask is None else self.checkpoint[:, user_mask]
        if checkpoint.shape[1] == 0:
            return self.last[:, 0].double()
        # float64, so the rounding in converged() sees the mean a Python/numpy mean would
        return checkpoint.double().mean(dim=1)

    def converged(self, user_mask: Optional[torch.Tensor] = None) -> bool:
        """The reference's end of DKC: for every teacher, the mean checkpoint index
        over users, rounded to 2 decimals, equals its last index.

        So the curriculum ends when about 99.5% of the users (not every pair) have
        reached the final knowledge; the stragglers keep their current targets.
        """
        rounded = torch.round(self.mean_checkpoint(user_mask) * 100) / 100
        return bool((rounded >= self.last[:, 0].double()).all())

    def state_dict(self) -> dict:
        """Plain tensors and Python scalars, safe for ``torch.save``."""
        return {
            "n_checkpoints": self.n_checkpoints.clone(),
            "checkpoint": self.checkpoint.clone(),
            "d_ref": self.d_ref.clone(),
            "n_calls": int(self.n_calls),
            "switched": bool(self.switched),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` output (shapes must match)."""
        if tuple(state["checkpoint"].shape) != tuple(self.checkpoint.shape):
            raise ValueError(
                f"curriculum shape mismatch: saved {tuple(state['checkpoint'].shape)}, "
                f"expected {tuple(self.checkpoint.shape)}"
            )
        device = self.checkpoint.device
        self.n_checkpoints = state["n_checkpoints"].to(device, torch.long, copy=True)
        self.checkpoint = state["checkpoint"].to(device, torch.long, copy=True)
        self.d_ref = state["d_ref"].to(device, torch.float, copy=True)
        self.n_calls = int(state["n_calls"])
        self.switched = bool(state["switched"])


def _lists_at(
    trajectories: torch.Tensor,
    checkpoint: torch.Tensor,
    users: torch.Tensor,
    length: Optional[int] = None,
) -> torch.Tensor:
    """Each teacher's list at a per-pair checkpoint.

    Args:
        trajectories: ``[M, Tmax, U, N]``.
        checkpoint: LongTensor ``[M, C]`` checkpoint per (teacher, chunk user).
        users: LongTensor ``[C]`` user ids of the chunk.
        length: keep only the first ``length`` entries of each list.

    Returns:
        ``[M, C, length or N]`` (same dtype as ``trajectories``).
    """
    teachers = torch.arange(trajectories.shape[0], device=trajectories.device)[:, None]
    if length is not None:
        trajectories = trajectories[..., :length]  # a view: copy only what is used
    return trajectories[teachers, checkpoint, users[None, :]]


def _check_shapes(state: CurriculumState, trajectories: torch.Tensor) -> None:
    n_teachers, t_max, n_users, _ = trajectories.shape
    if tuple(state.checkpoint.shape) != (n_teachers, n_users):
        raise ValueError(
            f"state is {tuple(state.checkpoint.shape)} but trajectories hold "
            f"{n_teachers} teachers x {n_users} users"
        )
    if int(state.n_checkpoints.max()) > t_max:
        raise ValueError(f"n_checkpoints up to {int(state.n_checkpoints.max())} but Tmax = {t_max}")


def dkc_step(
    state: CurriculumState,
    trajectories: torch.Tensor,
    n_checkpoints: Optional[torch.Tensor],
    student_topk: torch.Tensor,
    epoch: float,
    alpha: float = 1.05,
    decay: float = 0.995,
    period: float = 10.0,
    depth: int = 50,
    chunk_size: int = 4096,
    temperature: float = 10.0,
) -> dict:
    """One DKC update of the curriculum, in place.

    First call (``state.n_calls == 0``): measure ``d_ref`` = discrepancy to
    checkpoint v + 1 for every pair not at its last checkpoint; nothing
    advances. Later calls: measure the same discrepancy ``d_next``, advance by
    one checkpoint where :func:`advance_rule` holds with
    ``tau = dkc_threshold(alpha, decay, epoch, period)``, and re-measure
    ``d_ref`` against the new next checkpoint for the pairs that advanced
    (NaN once they reach the last one). A pair not at its last checkpoint
    that somehow has no reference yet (NaN) gets one and waits.

    Args:
        state: the curriculum, updated in place (``n_calls`` incremented).
        trajectories: integer ``[M, Tmax, U, N]`` teacher x checkpoint x user
            ranked lists (0-padded); slots past a teacher's checkpoint count
            are never read.
        n_checkpoints: LongTensor ``[M]`` or None (use ``state.n_checkpoints``;
            if given it must agree with it).
        student_topk: integer ``[U, >= depth]`` the student's current top
            unobserved items for all users.
        epoch: current epoch, for the threshold.
        alpha, decay, period: threshold parameters.
        depth: discrepancy depth D (student and teacher lists cut to D).
        chunk_size: users per chunk (bounds memory, not semantics).
        temperature: gain temperature of :func:`discrepancy`.

    Returns:
        Dict of plain Python statistics: ``tau``, ``first_call``,
        ``n_advanced``, ``frac_advanced`` (over all M*U pairs),
        ``mean_discrepancy`` (over the pairs measured, NaN if none),
        ``mean_checkpoint`` (list, per teacher, after the step) and
        ``frac_at_last``.
    """
    if n_checkpoints is not None and not torch.equal(
        torch.as_tensor(n_checkpoints, dtype=torch.long, device=state.n_checkpoints.device).reshape(-1),
        state.n_checkpoints,
    ):
        raise ValueError("n_checkpoints disagrees with the curriculum state")
    _check_shapes(state, trajectories)
    if student_topk.shape[1] < depth:
        raise ValueError(f"student_topk has {student_topk.shape[1]} columns, depth is {depth}")

    n_users = trajectories.shape[2]
    tau = dkc_threshold(alpha, decay, epoch, period)
    first_call = state.n_calls == 0
    last = state.last
    n_advanced = 0
    d_sum, d_count = 0.0, 0

    for start in range(0, n_users, chunk_size):
        stop = min(start + chunk_size, n_users)
        users = torch.arange(start, stop, device=trajectories.device)
        ckpt = state.checkpoint[:, start:stop]
        d_ref = state.d_ref[:, start:stop]
        student = student_topk[start:stop, :depth]
        open_pairs = ckpt < last

        next_lists = _lists_at(trajectories, torch.minimum(ckpt + 1, last), users, depth)
        d_next = discrepancy(student, next_lists, temperature)
        d_next = d_next.masked_fill(~open_pairs, float("nan"))
        d_sum += torch.nan_to_num(d_next, nan=0.0).sum().item()
        d_count += int(open_pairs.sum())

        unset = open_pairs & torch.isnan(d_ref)
        if first_call:
            advance = torch.zeros_like(open_pairs)
        else:
            advance = advance_rule(ckpt, d_ref, d_next, tau, last)
        d_ref = torch.where(unset, d_next, d_ref)

        if bool(advance.any()):
            ckpt = ckpt + advance.long()
            still_open = ckpt < last
            new_lists = _lists_at(trajectories, torch.minimum(ckpt + 1, last), users, depth)
            d_new = discrepancy(student, new_lists, temperature)
            d_new = d_new.masked_fill(~still_open, float("nan"))
            d_ref = torch.where(advance, d_new, d_ref)
            n_advanced += int(advance.sum())

        state.checkpoint[:, start:stop] = ckpt
        state.d_ref[:, start:stop] = d_ref.to(state.d_ref.dtype)

    state.n_calls += 1
    n_pairs = state.checkpoint.numel()
    return {
        "tau": tau,
        "first_call": first_call,
        "n_advanced": n_advanced,
        "frac_advanced": n_advanced / n_pairs if n_pairs else 0.0,
        "mean_discrepancy": d_sum / d_count if d_count else math.nan,
        "mean_checkpoint": state.checkpoint.float().mean(dim=1).tolist(),
        "frac_at_last": state.fraction_at_last(),
    }


def build_targets(
    trajectories: torch.Tensor,
    checkpoint: torch.Tensor,
    n_items: int,
    k: int,
    temperature: float = 10.0,
    weights: Weights = None,
    train_mask_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    chunk_size: int = 4096,
    users: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Ensemble targets T_u from each teacher's list at the user's checkpoint.

    Args:
        trajectories: integer ``[M, Tmax, U, N]`` (0-padded ranked lists; they
            already exclude training items).
        checkpoint: LongTensor ``[M, U]`` (e.g. ``state.checkpoint``).
        n_items: catalogue size.
        k: target length K.
        temperature: importance temperature of the rank ensemble.
        weights: optional per-teacher weights ``[M]``.
        train_mask_fn: optional callable mapping a LongTensor of user ids
            ``[C]`` to a bool ``[C, n_items]`` mask of items to exclude; only
            needed if the trajectories might contain training items.
        chunk_size: users per chunk (the dense ``[C, n_items]`` score block is
            the memory peak).
        users: optional LongTensor ``[S]`` of user ids: only their targets are
            built (a DKC step where only some users moved rebuilds only theirs).

    Returns:
        LongTensor ``[U, k]`` (``[S, k]`` with ``users``, in their order), best
        first, 0-padded where fewer than k items appear in the user's lists
        (see :func:`rank_ensemble_topk`).
    """
    n_teachers, _, n_users, _ = trajectories.shape
    if tuple(checkpoint.shape) != (n_teachers, n_users):
        raise ValueError(f"checkpoint must be [{n_teachers}, {n_users}], got {tuple(checkpoint.shape)}")
    if users is None:
        users = torch.arange(n_users, device=trajectories.device)
    targets = torch.zeros(len(users), k, dtype=torch.long, device=trajectories.device)
    for start in range(0, len(users), chunk_size):
        chunk = users[start : start + chunk_size]
        lists = _lists_at(trajectories, checkpoint[:, chunk], chunk)
        exclude = None if train_mask_fn is None else train_mask_fn(chunk)
        targets[start : start + len(chunk)] = rank_ensemble_topk(lists, n_items, k, temperature, weights, exclude)
    return targets
