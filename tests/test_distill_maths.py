"""Brute-force checks of HetComp's tensor maths (``recbole_hetcomp.distill``).

Each batched function is compared with a plain-Python computation written
straight from the method description (Kang et al., WWW 2023) on tiny inputs:
a few users, about ten items, padding (id 0) in lists, ties, one-shot
teachers. Python loops over users live only here, as the reference.
"""

import math
import random

import pytest
import torch

from recbole_hetcomp.distill.akt import detailed_loss, overall_loss, plackett_luce
from recbole_hetcomp.distill.dkc import (
    CurriculumState,
    advance_rule,
    build_targets,
    discrepancy,
    dkc_step,
    dkc_threshold,
)
from recbole_hetcomp.distill.ranking import (
    importance,
    rank_ensemble_scores,
    rank_ensemble_topk,
    stable_topk,
    topk_unobserved,
)

# ----------------------------------------------------------------------------
# Plain-Python references
# ----------------------------------------------------------------------------


def ref_topk(score_of, candidates, k):
    """Best k candidates by score, ties to the lower id, 0-padded."""
    best = sorted(candidates, key=lambda i: (-score_of[i], i))[:k]
    return best + [0] * (k - len(best))


def ref_ensemble_scores(lists_of_user, n_items, temperature=10.0, weights=None):
    """lists_of_user: one ranked list per teacher for one user."""
    weights = weights or [1.0] * len(lists_of_user)
    score = [0.0] * n_items
    for w, ranked in zip(weights, lists_of_user):
        for pos, item in enumerate(ranked):
            if item != 0:
                score[item] += w * math.exp(-pos / temperature)
    return score


def ref_ensemble_topk(lists_of_user, n_items, k, excluded=(), weights=None):
    score = ref_ensemble_scores(lists_of_user, n_items, weights=weights)
    candidates = [i for i in range(1, n_items) if score[i] > 0 and i not in excluded]
    return ref_topk(score, candidates, k)


def ref_discrepancy(student, teacher, temperature=10.0):
    """1 - NDCG of the student's list against the teacher's as a set, straight from the
    method: position p weighs g(p) / log2(p + 2), g(p) = 2^exp(-p / temperature) - 1."""
    teacher_set = {i for i in teacher if i != 0}
    weights = [(2 ** math.exp(-p / temperature) - 1) / math.log2(p + 2) for p in range(len(student))]
    dcg = sum(w for w, i in zip(weights, student) if i != 0 and i in teacher_set)
    return 1 - dcg / sum(weights)


def ref_plackett_luce(score, ranked, negatives, floor=0.0):
    s = [max(-40.0, min(40.0, x)) for x in score]
    neg = sum(math.exp(s[j]) for j in negatives)
    loss = 0.0
    for k, item in enumerate(ranked):
        loss -= math.log(math.exp(s[item]) / max(sum(math.exp(s[i]) for i in ranked[k:]) + neg, floor))
    return loss


def ref_overall(score, observed, target, train, floor=0.0):
    n_items = len(score)
    rest = [j for j in range(1, n_items) if j not in train and j not in target]
    neg = sum(math.exp(score[j]) for j in rest)
    return -sum(math.log(math.exp(score[i]) / max(math.exp(score[i]) + neg, floor)) for i in observed + target)


def ref_detailed(score, observed, target, train, n_obs, n_long, n_short, weight, floor=0.0):
    n_items = len(score)
    unobserved = [j for j in range(1, n_items) if j not in train]
    long_t, short_t = target[:n_long], target[:n_short]
    outside_long = [j for j in unobserved if j not in long_t]
    outside_short = [j for j in unobserved if j not in short_t]
    return ref_plackett_luce(score, observed[:n_obs], outside_long, floor) + weight * (
        ref_plackett_luce(score, long_t, outside_long, floor) + ref_plackett_luce(score, short_t, outside_short, floor)
    )


def ref_dkc_step(ckpt, d_ref, n_calls, traj, n_ckpt, student, tau, depth):
    """Per-pair loop version of dkc_step on nested lists (mutates ckpt, d_ref)."""
    for x in range(len(ckpt)):
        last = n_ckpt[x] - 1
        for u in range(len(ckpt[x])):
            if ckpt[x][u] >= last:
                continue
            d_next = ref_discrepancy(student[u][:depth], traj[x][ckpt[x][u] + 1][u][:depth])
            if n_calls == 0 or math.isnan(d_ref[x][u]):
                d_ref[x][u] = d_next
                continue
            ratio = math.inf if d_next == 0 else d_ref[x][u] / d_next
            if ratio > tau or ratio < 1:
                ckpt[x][u] += 1
                if ckpt[x][u] < last:
                    d_ref[x][u] = ref_discrepancy(student[u][:depth], traj[x][ckpt[x][u] + 1][u][:depth])
                else:
                    d_ref[x][u] = math.nan


def random_lists(gen, n_lists, n_users, length, n_items, pad_prob=0.2):
    """Random ranked lists without repeats, each with a random 0-padded tail."""
    out = torch.zeros(n_lists, n_users, length, dtype=torch.long)
    for x in range(n_lists):
        for u in range(n_users):
            perm = torch.randperm(n_items - 1, generator=gen)[:length] + 1
            keep = length - int(torch.rand((), generator=gen) < pad_prob) * int(
                torch.randint(1, length, (), generator=gen)
            )
            out[x, u, :keep] = perm[:keep]
    return out


# ----------------------------------------------------------------------------
# ranking.py
# ----------------------------------------------------------------------------


def test_importance_is_exponential_decay_of_position():
    positions = torch.tensor([0, 1, 10, 25])
    expected = torch.tensor([math.exp(-p / 10) for p in [0, 1, 10, 25]])
    assert torch.allclose(importance(positions), expected)
    assert torch.allclose(importance(positions.float(), temperature=5.0), torch.exp(-positions / 5.0))


def test_stable_topk_breaks_ties_by_lower_index():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    values, ids = stable_topk(scores, 2)
    assert ids.tolist() == [[1, 2], [0, 1]]
    assert values.tolist() == [[3.0, 3.0], [0.0, 0.0]]

    # Many ties (5 distinct values, some -inf): rows with and without ties
    # straddling the k-th value.
    gen = torch.Generator().manual_seed(6)
    scores = torch.randint(0, 5, (40, 11), generator=gen).float()
    scores[torch.rand(40, 11, generator=gen) < 0.3] = float("-inf")
    for k in (1, 4, 11, 15):
        _, ids = stable_topk(scores, k)
        for u in range(40):
            row = scores[u].tolist()
            assert ids[u].tolist() == sorted(range(11), key=lambda i: (-row[i], i))[:k]
    with pytest.raises(ValueError, match="must not contain NaN"):
        stable_topk(torch.tensor([[1.0, float("nan"), 0.0]]), 2)


def test_topk_unobserved_skips_training_items_and_item_zero():
    # Ties on purpose (items 2, 3, 5 all score 4.0) and a user with only
    # three candidate items.
    scores = torch.tensor(
        [
            [9.0, 4.0, 4.0, 4.0, 1.0, 4.0, 0.5, 7.0],
            [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        ]
    )
    train_mask = torch.zeros(2, 8, dtype=torch.bool)
    train_mask[0, 7] = True  # user 0's best non-padding item is a training item
    train_mask[1, 1:5] = True
    train_mask[1, 6] = True
    top = topk_unobserved(scores, train_mask, k=4)
    for u in range(2):
        candidates = [i for i in range(1, 8) if not train_mask[u, i]]
        assert top[u].tolist() == ref_topk(scores[u].tolist(), candidates, 4)
    assert top.tolist() == [[1, 2, 3, 5], [7, 5, 0, 0]]


def test_rank_ensemble_scores_sum_weighted_importances():
    n_items = 10
    # 2 teachers x 3 users x 4 positions; 0 = padding.
    lists = torch.tensor(
        [
            [[3, 1, 7, 0], [2, 4, 6, 8], [0, 0, 0, 0]],
            [[1, 3, 9, 2], [8, 6, 0, 0], [5, 0, 0, 0]],
        ]
    )
    for weights in (None, [0.5, 2.0]):
        dense = rank_ensemble_scores(lists, n_items, weights=weights)
        for u in range(3):
            expected = ref_ensemble_scores([lists[x, u].tolist() for x in range(2)], n_items, weights=weights)
            assert torch.allclose(dense[u], torch.tensor(expected)), (weights, u)
        assert (dense[:, 0] == 0).all()


def test_rank_ensemble_topk_matches_reference_with_ties_exclusions_and_padding():
    n_items = 12
    lists = torch.tensor(
        [
            # user 0: items 1 and 2 tie (positions 1 and 2, swapped), as do
            # items 3 and 5 (each first in one list).
            [[3, 1, 2, 0], [4, 6, 8, 10], [7, 0, 0, 0]],
            [[5, 2, 1, 0], [4, 9, 8, 11], [0, 0, 0, 0]],
        ]
    )
    exclude = torch.zeros(3, n_items, dtype=torch.bool)
    exclude[1, 4] = True  # both teachers' top item is excluded for user 1
    top = rank_ensemble_topk(lists, n_items, k=6, exclude_mask=exclude)
    for u in range(3):
        excluded = {i for i in range(n_items) if exclude[u, i]}
        expected = ref_ensemble_topk([lists[x, u].tolist() for x in range(2)], n_items, 6, excluded)
        assert top[u].tolist() == expected
    # user 0: ties go to the lower id; only 4 items are listed, so the tail
    # is 0 padding (never an unlisted item with score 0).
    assert top[0].tolist() == [1, 2, 3, 5, 0, 0]
    assert top[2].tolist() == [7, 0, 0, 0, 0, 0]


def test_rank_ensemble_topk_random_against_reference():
    gen = torch.Generator().manual_seed(0)
    n_items, k = 15, 7
    lists = random_lists(gen, 3, 5, 6, n_items)
    weights = [1.0, 0.5, 2.0]
    exclude = torch.rand(5, n_items, generator=gen) < 0.2
    top = rank_ensemble_topk(lists, n_items, k, weights=weights, exclude_mask=exclude)
    for u in range(5):
        excluded = {i for i in range(n_items) if exclude[u, i]}
        expected = ref_ensemble_topk([lists[x, u].tolist() for x in range(3)], n_items, k, excluded, weights)
        assert top[u].tolist() == expected


def test_rank_ensemble_topk_is_the_same_in_chunks_of_users(monkeypatch):
    # The scratch buffer holds a few users at a time: here 2 per chunk, 7 users, so the
    # last chunk is short; zero weights and a tiny temperature give many exact ties.
    from recbole_hetcomp.distill import ranking
    gen = torch.Generator().manual_seed(3)
    n_items, k = 13, 9
    lists = random_lists(gen, 4, 7, 5, n_items)
    weights = [1.0, 0.0, 2.0, 1.0]
    exclude = torch.rand(7, n_items, generator=gen) < 0.2
    whole = rank_ensemble_topk(lists, n_items, k, weights=weights, exclude_mask=exclude)
    monkeypatch.setattr(ranking, "ENSEMBLE_BUFFER_BUDGET", 2 * n_items)
    assert torch.equal(rank_ensemble_topk(lists, n_items, k, weights=weights, exclude_mask=exclude), whole)
    for u in range(7):
        excluded = {i for i in range(n_items) if exclude[u, i]}
        expected = ref_ensemble_topk([lists[x, u].tolist() for x in range(4)], n_items, k, excluded, weights)
        assert whole[u].tolist() == expected


# ----------------------------------------------------------------------------
# dkc.py: discrepancy, threshold, rule
# ----------------------------------------------------------------------------


def test_discrepancy_is_one_minus_set_ndcg():
    student = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 1, 0]])
    teacher = torch.tensor([[4, 3, 2, 1], [9, 8, 7, 6], [1, 0, 0, 0]])
    d = discrepancy(student, teacher)
    assert d[0].item() == pytest.approx(0.0, abs=1e-6)  # same set, any order
    assert d[1].item() == pytest.approx(1.0)  # disjoint
    for u in range(3):
        assert d[u].item() == pytest.approx(ref_discrepancy(student[u].tolist(), teacher[u].tolist()), abs=1e-6)


def test_discrepancy_hand_worked_with_ndcg_discount():
    # Student [1, 2], teacher {2}: only position 1 hits.
    #   w(0) = (2^e^0 - 1) / log2(2) = 1
    #   w(1) = (2^e^-0.1 - 1) / log2(3) = 0.87233 / 1.58496 = 0.55038
    #   D = 1 - w(1) / (w(0) + w(1)) = 1 / 1.55038 = 0.64500
    w1 = (2 ** math.exp(-0.1) - 1) / math.log2(3)
    d = discrepancy(torch.tensor([[1, 2]]), torch.tensor([[2, 7]]))
    assert d.item() == pytest.approx(1 / (1 + w1), abs=1e-6)
    assert d.item() == pytest.approx(0.64500, abs=1e-5)
    # Without the discount it would be 1 - 0.87233 / 1.87233 = 0.53410: a real difference.
    assert abs(d.item() - 0.53410) > 0.1
    # Student [5, 6, 1, 0], teacher {1}: the hit is at position 2, weight 0.76378 / 2.
    d = discrepancy(torch.tensor([[5, 6, 1, 0]]), torch.tensor([[1, 0, 0, 0]]))
    assert d.item() == pytest.approx(0.82807, abs=1e-5)


def test_batched_discrepancy_equals_per_user_loop_at_depth_50():
    gen = torch.Generator().manual_seed(11)
    n_users, depth, n_items = 40, 50, 120
    student = random_lists(gen, 1, n_users, depth, n_items, pad_prob=0.1)[0]
    teacher = random_lists(gen, 1, n_users, depth, n_items, pad_prob=0.1)[0]
    teacher[:5] = student[:5].flip(1)  # some identical sets
    d = discrepancy(student, teacher)
    for u in range(n_users):
        assert d[u].item() == pytest.approx(ref_discrepancy(student[u].tolist(), teacher[u].tolist()), abs=1e-6)


def test_discrepancy_broadcasts_over_teachers_and_ignores_padding():
    gen = torch.Generator().manual_seed(1)
    teachers = random_lists(gen, 3, 4, 5, 9, pad_prob=0.5)  # [M=3, U=4, D=5]
    student = random_lists(gen, 1, 4, 5, 9, pad_prob=0.5)[0]  # [U=4, D=5]
    d = discrepancy(student, teachers)
    assert d.shape == (3, 4)
    for x in range(3):
        for u in range(4):
            ref = ref_discrepancy(student[u].tolist(), teachers[x, u].tolist())
            assert d[x, u].item() == pytest.approx(ref, abs=1e-6)


def test_threshold_decays_below_one_near_epoch_100():
    assert dkc_threshold(1.05, 0.995, 0, 10) == pytest.approx(1.05)
    # Whole periods only: tau steps down at epochs 10, 20, ... and not in between.
    assert dkc_threshold(1.05, 0.995, 15, 10) == pytest.approx(1.05 * 0.995)
    assert dkc_threshold(1.05, 0.995, 19, 10) == dkc_threshold(1.05, 0.995, 10, 10)
    assert dkc_threshold(1.05, 0.995, 29, 10) == pytest.approx(1.05 * 0.995**2)
    assert dkc_threshold(1.05, 0.995, 99, 10) > 1.0  # 1.05 * 0.995^9
    assert dkc_threshold(1.05, 0.995, 10, 10) == pytest.approx(1.05 * 0.995)
    assert dkc_threshold(1.05, 0.995, 90, 10) > 1.0
    assert dkc_threshold(1.05, 0.995, 100, 10) < 1.0


def test_advance_rule_cases():
    nan = float("nan")
    # One teacher, one column per case; last checkpoint index 3.
    cases = [
        # (checkpoint, d_ref, d_next, advances?)
        (0, 0.60, 0.50, True),  # r = 1.2 > tau = 1.1: moved toward the next
        (0, 0.54, 0.50, False),  # r = 1.08 in [1, tau]: wait
        (0, 0.50, 0.50, False),  # r = 1: wait
        (0, 0.40, 0.50, True),  # r = 0.8 < 1: moved away
        (1, 0.30, 0.00, True),  # already matches the next checkpoint
        (1, 0.00, 0.00, True),  # 0/0: still a match
        (1, 0.00, 0.20, True),  # r = 0 < 1
        (3, 0.90, 0.10, False),  # at the last checkpoint: never past it
        (0, nan, 0.50, False),  # no reference yet
        (0, 0.50, nan, False),
    ]
    checkpoint = torch.tensor([[c[0] for c in cases]])
    d_ref = torch.tensor([[c[1] for c in cases]])
    d_next = torch.tensor([[c[2] for c in cases]])
    got = advance_rule(checkpoint, d_ref, d_next, tau=1.1, last=torch.tensor([[3]]))
    assert got[0].tolist() == [c[3] for c in cases]


# ----------------------------------------------------------------------------
# dkc.py: curriculum state and steps
# ----------------------------------------------------------------------------


def test_curriculum_state_roundtrip_and_one_shot_teacher():
    # Teacher 1 (e.g. EASE) has a single checkpoint: always at its last.
    state = CurriculumState.start([4, 1], n_users=3)
    assert state.at_last().tolist() == [[False] * 3, [True] * 3]
    assert state.fraction_at_last() == pytest.approx(0.5)
    assert state.finished(0.5) and not state.finished()
    state.checkpoint[0] = 3
    assert state.finished()

    state.n_calls, state.switched = 7, True
    state.d_ref[0, 1] = 0.25
    saved = state.state_dict()
    restored = CurriculumState.start([4, 1], n_users=3)
    restored.load_state_dict(saved)
    assert torch.equal(restored.checkpoint, state.checkpoint)
    assert torch.equal(torch.isnan(restored.d_ref), torch.isnan(state.d_ref))
    assert restored.d_ref[0, 1].item() == 0.25
    assert (restored.n_calls, restored.switched) == (7, True)
    with pytest.raises(ValueError, match="curriculum shape mismatch"):
        CurriculumState.start([4, 1], n_users=5).load_state_dict(saved)


def test_curriculum_converges_when_rounded_mean_checkpoint_is_last():
    # Teacher 0 has 4 checkpoints (last index 3), teacher 1 is one-shot (always done).
    # 201 users: one straggler at checkpoint 2 leaves a mean of 2.9950 -> 3.00: converged.
    state = CurriculumState.start([4, 1], n_users=202)
    users = torch.ones(202, dtype=torch.bool)
    users[0] = False  # RecBole's padding user has no knowledge and does not count
    state.checkpoint[0, 1:] = 3
    state.checkpoint[0, 1] = 2
    assert state.mean_checkpoint(users)[0].item() == pytest.approx(3 - 1 / 201)
    assert state.converged(users)
    assert not state.finished(1.0, users)  # not every pair is at its last
    assert not state.converged()  # counting the padding user at 0: mean 2.980 -> 2.98
    # Two stragglers: 3 - 2/201 = 2.9900 -> 2.99: not yet.
    state.checkpoint[0, 2] = 2
    assert not state.converged(users)


def constructed_trajectories():
    """One teacher, 3 checkpoints, 4 users, lists of depth 4 over 30 items.

    Every user's checkpoint 1 list is {1, 2, 3, 4} and checkpoint 2 is
    {5, 6, 7, 8}; checkpoint 0 is irrelevant to the rule.
    """
    traj = torch.zeros(1, 3, 4, 4, dtype=torch.long)
    traj[0, 0] = torch.tensor([20, 21, 22, 23])
    traj[0, 1] = torch.tensor([1, 2, 3, 4])
    traj[0, 2] = torch.tensor([5, 6, 7, 8])
    return traj


def test_dkc_step_first_call_measures_reference_only():
    traj = constructed_trajectories()
    state = CurriculumState.start([3], n_users=4)
    student = torch.tensor([[1, 2, 10, 11]] * 4)
    stats = dkc_step(state, traj, None, student, epoch=10, depth=4)
    assert stats["first_call"] and stats["n_advanced"] == 0
    assert state.checkpoint.tolist() == [[0, 0, 0, 0]]
    expected = ref_discrepancy([1, 2, 10, 11], [1, 2, 3, 4])
    assert torch.allclose(state.d_ref, torch.full((1, 4), expected))
    assert state.n_calls == 1


def test_dkc_step_advances_on_constructed_discrepancies():
    traj = constructed_trajectories()
    state = CurriculumState.start([3], n_users=4)
    dkc_step(state, traj, None, torch.tensor([[1, 2, 10, 11]] * 4), epoch=10, depth=4)
    d_ref = state.d_ref[0, 0].item()

    later = torch.tensor(
        [
            [1, 2, 3, 11],  # closer to checkpoint 1: r well above tau
            [1, 2, 10, 11],  # unchanged: r = 1, waits while tau > 1
            [1, 10, 11, 12],  # drifted away: r < 1
            [1, 2, 3, 4],  # matches checkpoint 1: d_next = 0
        ]
    )
    d_later = [ref_discrepancy(s, [1, 2, 3, 4]) for s in later.tolist()]
    tau = dkc_threshold(1.05, 0.995, 20, 10)
    assert d_ref / d_later[0] > tau and d_ref / d_later[1] == pytest.approx(1.0) and d_ref / d_later[2] < 1

    stats = dkc_step(state, traj, torch.tensor([3]), later, epoch=20, depth=4)
    assert stats["tau"] == pytest.approx(tau)
    assert state.checkpoint.tolist() == [[1, 0, 1, 1]]
    # Advanced pairs now refer to checkpoint 2 = {5, 6, 7, 8}, measured with
    # the student of this call; the waiting pair keeps its old reference.
    for u in (0, 2, 3):
        expected = ref_discrepancy(later[u].tolist(), [5, 6, 7, 8])
        assert state.d_ref[0, u].item() == pytest.approx(expected)
    assert state.d_ref[0, 1].item() == pytest.approx(d_ref)

    # Moving on to checkpoint 2 (the last): the reference becomes NaN, and no
    # further call takes the pair past it.
    student = torch.tensor([[5, 6, 7, 8]] * 4)
    dkc_step(state, traj, None, student, epoch=30, depth=4)
    assert state.checkpoint[0, [0, 2, 3]].tolist() == [2, 2, 2]
    assert torch.isnan(state.d_ref[0, [0, 2, 3]]).all()
    for epoch in (40, 50, 60):
        dkc_step(state, traj, None, student, epoch=epoch, depth=4)
    assert state.checkpoint.max().item() == 2


def test_curriculum_always_finishes_once_tau_drops_below_one():
    gen = torch.Generator().manual_seed(2)
    n_users, n_items = 6, 20
    traj = torch.stack([random_lists(gen, 4, n_users, 5, n_items) for _ in range(3)])  # [M=3, T=4, U, 5]
    n_ckpt = torch.tensor([4, 2, 1])  # includes a one-shot teacher
    state = CurriculumState.start(n_ckpt, n_users)
    # A student that never changes: ratios stay at 1, so only tau < 1 moves it.
    student = random_lists(gen, 1, n_users, 5, n_items, pad_prob=0.0)[0]
    epochs = []
    for call in range(1, 40):
        dkc_step(state, traj, n_ckpt, student, epoch=10 * call, alpha=1.05, decay=0.9, depth=5)
        epochs.append(10 * call)
        if state.finished():
            break
    assert state.finished()
    assert state.checkpoint.tolist() == [[3] * n_users, [1] * n_users, [0] * n_users]
    # tau = 1.05 * 0.9^(t/10) < 1 from t = 10 on, so at most one advance per call
    # after the first: 1 + 3 calls suffice for 4 checkpoints.
    assert len(epochs) <= 4


def test_batched_dkc_step_and_targets_equal_per_user_loop():
    gen = torch.Generator().manual_seed(3)
    n_teachers, t_max, n_users, length, n_items, depth, k = 3, 4, 7, 6, 16, 5, 8
    traj = torch.stack([random_lists(gen, t_max, n_users, length, n_items) for _ in range(n_teachers)])
    traj = traj.to(torch.int32)  # trajectories are stored as int32
    n_ckpt = [4, 3, 1]
    state = CurriculumState.start(n_ckpt, n_users)

    ckpt = [[0] * n_users for _ in range(n_teachers)]
    d_ref = [[math.nan] * n_users for _ in range(n_teachers)]
    rnd = random.Random(3)
    student = torch.zeros(n_users, depth + 2, dtype=torch.long)
    for call, epoch in enumerate(range(10, 160, 10)):
        # Each user's student list either stays (ratio exactly 1: waits while
        # tau > 1) or jumps near a random checkpoint (ratios above and below).
        for u in range(n_users):
            if call > 0 and rnd.random() < 0.4:
                continue
            x, t = rnd.randrange(n_teachers), rnd.randrange(t_max)
            base = [i for i in traj[x, t, u].tolist() if i != 0]
            pool = base + [i for i in range(1, n_items) if i not in base]
            picked = pool[: rnd.randrange(1, depth)] + rnd.sample(pool[depth:], k=depth + 2)
            picked = list(dict.fromkeys(picked))[: depth + 2]
            student[u] = 0
            student[u, : len(picked)] = torch.tensor(picked)
        # alpha 1.3, decay 0.97: tau > 1 until epoch 90, then below 1.
        tau = dkc_threshold(1.3, 0.97, epoch, 10)
        ref_dkc_step(ckpt, d_ref, call, traj.tolist(), n_ckpt, student.tolist(), tau, depth)
        dkc_step(
            state, traj, torch.tensor(n_ckpt), student, epoch, alpha=1.3, decay=0.97, depth=depth, chunk_size=3
        )

        assert state.checkpoint.tolist() == ckpt, f"call {call}"
        got = state.d_ref.tolist()
        for x in range(n_teachers):
            for u in range(n_users):
                assert (math.isnan(got[x][u]) and math.isnan(d_ref[x][u])) or got[x][u] == pytest.approx(
                    d_ref[x][u], abs=1e-6
                )

        targets = build_targets(traj, state.checkpoint, n_items, k, chunk_size=3)
        for u in range(n_users):
            lists = [traj[x, ckpt[x][u], u].tolist() for x in range(n_teachers)]
            assert targets[u].tolist() == ref_ensemble_topk(lists, n_items, k)
        # Some users only (those whose checkpoint moved): their rows, in the order asked.
        some = torch.tensor([u for u in range(n_users) if (u * 7 + call) % 3 == 0][::-1])
        assert torch.equal(build_targets(traj, state.checkpoint, n_items, k, chunk_size=2, users=some), targets[some])
    assert state.finished()


def test_build_targets_can_exclude_training_items():
    traj = torch.tensor([[[[3, 1, 2]]], [[[1, 4, 0]]]])  # M=2, T=1, U=1, N=3
    checkpoint = torch.zeros(2, 1, dtype=torch.long)
    no_mask = build_targets(traj, checkpoint, n_items=6, k=4)
    assert no_mask.tolist() == [[1, 3, 4, 2]]

    def train_items(users):
        mask = torch.zeros(len(users), 6, dtype=torch.bool)
        mask[:, 1] = True
        return mask

    masked = build_targets(traj, checkpoint, n_items=6, k=4, train_mask_fn=train_items)
    assert masked.tolist() == [[3, 4, 2, 0]]


# ----------------------------------------------------------------------------
# akt.py
# ----------------------------------------------------------------------------


def test_plackett_luce_with_padding_and_negative_sets():
    scores = torch.tensor(
        [
            [0.0, 2.0, -1.0, 0.5, 3.0, 1.0, -2.0, 0.0, 1.5],
            [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # all tied
            [0.0, 50.0, -60.0, 0.3, 0.1, 2.0, 0.0, 0.0, 0.0],  # clamped scores
        ],
        dtype=torch.float64,
    )
    ranked = torch.tensor([[4, 0, 1, 5], [2, 7, 3, 0], [2, 1, 5, 3]])
    ranked_mask = torch.tensor(
        [[True, False, True, True], [True, True, True, False], [True, True, False, True]]
    )
    negative_mask = torch.zeros(3, 9, dtype=torch.bool)
    negative_mask[0, [3, 6, 8]] = True
    negative_mask[1, [1, 4]] = True
    # user 2: empty negative set.
    loss = plackett_luce(scores, ranked, ranked_mask, negative_mask)
    for u in range(3):
        listed = [i for i, m in zip(ranked[u].tolist(), ranked_mask[u].tolist()) if m and i != 0]
        negatives = [j for j in range(9) if negative_mask[u, j]]
        assert loss[u].item() == pytest.approx(ref_plackett_luce(scores[u].tolist(), listed, negatives))


def akt_case():
    """3 users, 12 items; observed lists and targets with padding."""
    gen = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 12, generator=gen, dtype=torch.float64) * 2
    scores[1, 5] = scores[1, 6] = scores[1, 7]  # ties do not matter to losses
    train_mask = torch.zeros(3, 12, dtype=torch.bool)
    train_mask[0, [1, 2, 3]] = True
    train_mask[1, [4, 5]] = True
    train_mask[2, [9, 10, 11]] = True
    observed = torch.tensor([[2, 1, 3], [5, 4, 0], [11, 9, 10]])
    observed_mask = torch.tensor([[True, True, True], [True, True, False], [True, False, True]])
    target = torch.tensor([[7, 4, 9, 5, 0], [1, 2, 3, 6, 7], [2, 0, 0, 0, 0]])
    return scores, observed, observed_mask, target, train_mask


def items_of(train_mask):
    """The losses take each user's training items as 0-padded id lists, not a mask."""
    lists = [torch.nonzero(row).flatten().tolist() for row in train_mask]
    width = max(1, max(len(x) for x in lists))
    return torch.tensor([x + [0] * (width - len(x)) for x in lists])


def _valid(ids, mask=None):
    mask = mask if mask is not None else [True] * len(ids)
    return [i for i, m in zip(ids, mask) if m and i != 0]


def test_overall_loss_each_item_against_the_rest():
    scores, observed, observed_mask, target, train_mask = akt_case()
    loss = overall_loss(scores, observed, observed_mask, target, items_of(train_mask))
    for u in range(3):
        train = {i for i in range(12) if train_mask[u, i]}
        expected = ref_overall(
            scores[u].tolist(),
            _valid(observed[u].tolist(), observed_mask[u].tolist()),
            _valid(target[u].tolist()),
            train,
        )
        assert loss[u].item() == pytest.approx(expected)


def test_detailed_loss_small_cutoffs():
    scores, observed, observed_mask, target, train_mask = akt_case()
    loss = detailed_loss(
        scores, observed, observed_mask, target, items_of(train_mask), n_observed=2, n_long=4, n_short=2, target_weight=0.5
    )
    for u in range(3):
        train = {i for i in range(12) if train_mask[u, i]}
        obs = _valid(observed[u, :2].tolist(), observed_mask[u, :2].tolist())
        tgt = target[u].tolist()
        expected = ref_detailed(
            scores[u].tolist(), obs, _valid(tgt[:4]), train, 2, len(_valid(tgt[:4])), len(_valid(tgt[:2])), 0.5
        )
        assert loss[u].item() == pytest.approx(expected)


def test_detailed_loss_default_cutoffs():
    gen = torch.Generator().manual_seed(5)
    n_users, n_items = 2, 90
    scores = torch.randn(n_users, n_items, generator=gen, dtype=torch.float64)
    train_mask = torch.zeros(n_users, n_items, dtype=torch.bool)
    train_mask[:, 1:15] = True
    observed = torch.arange(14, 0, -1).repeat(n_users, 1)  # 14 ranked, 10 used
    observed_mask = torch.ones_like(observed, dtype=torch.bool)
    target = torch.stack([torch.randperm(75, generator=gen)[:60] + 15 for _ in range(n_users)])
    target[1, 55:] = 0
    loss = detailed_loss(scores, observed, observed_mask, target, items_of(train_mask))
    for u in range(n_users):
        tgt = _valid(target[u].tolist())
        expected = ref_detailed(scores[u].tolist(), observed[u, :10].tolist(), tgt, set(range(1, 15)), 10, 50, 10, 0.5)
        assert loss[u].item() == pytest.approx(expected)


def test_losses_clamp_denominators_at_the_floor():
    # Scores near -15: every softmax denominator is ~e^-15 = 3e-7 < 1e-5, so the
    # reference's floor decides the loss; with no floor the exact log is kept.
    scores, observed, observed_mask, target, train_mask = akt_case()
    scores = scores.double() - 15.0
    floor = 1e-5
    overall = overall_loss(scores, observed, observed_mask, target, items_of(train_mask), log_floor=math.log(floor))
    detailed = detailed_loss(
        scores, observed, observed_mask, target, items_of(train_mask),
        n_observed=2, n_long=4, n_short=2, log_floor=math.log(floor),
    )
    exact = overall_loss(scores, observed, observed_mask, target, items_of(train_mask))
    for u in range(3):
        train = {i for i in range(12) if train_mask[u, i]}
        obs = _valid(observed[u].tolist(), observed_mask[u].tolist())
        tgt = _valid(target[u].tolist())
        assert overall[u].item() == pytest.approx(ref_overall(scores[u].tolist(), obs, tgt, train, floor))
        assert exact[u].item() == pytest.approx(ref_overall(scores[u].tolist(), obs, tgt, train))
        assert overall[u].item() > exact[u].item()  # a floored denominator: each term is log(1e-5) - s
        tl = target[u].tolist()
        obs2 = _valid(observed[u, :2].tolist(), observed_mask[u, :2].tolist())
        expected = ref_detailed(
            scores[u].tolist(), obs2, _valid(tl[:4]), train, 2, len(_valid(tl[:4])), len(_valid(tl[:2])), 0.5, floor
        )
        assert detailed[u].item() == pytest.approx(expected)


@pytest.mark.parametrize("extreme", [1000.0, -1000.0])
def test_losses_have_finite_gradients_at_extreme_scores(extreme):
    _, observed, observed_mask, target, train_mask = akt_case()
    scores = torch.full((3, 12), extreme, requires_grad=True)
    with torch.no_grad():
        scores[:, ::2] *= -1  # mix +-1000
    losses = [
        overall_loss(scores, observed, observed_mask, target, items_of(train_mask)).sum(),
        detailed_loss(scores, observed, observed_mask, target, items_of(train_mask), n_long=4, n_short=2).sum(),
        plackett_luce(scores, target, target != 0, torch.zeros(3, 12, dtype=torch.bool)).sum(),
    ]
    for loss in losses:
        (grad,) = torch.autograd.grad(loss, scores)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_full_scores_match_autograd_values_and_gradients():
    from recbole_hetcomp.distill.mf import full_scores

    gen = torch.Generator().manual_seed(9)
    user_e = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    item_e = torch.randn(7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.equal(full_scores(user_e, item_e), user_e @ item_e.T)
    assert torch.autograd.gradcheck(full_scores, (user_e, item_e))


def test_rest_logsumexp_and_gather_values_and_gradients():
    from recbole_hetcomp.distill.akt import rest_logsumexp_and_gather

    gen = torch.Generator().manual_seed(11)
    scores = (torch.rand(3, 9, generator=gen, dtype=torch.float64) * 80 - 40).requires_grad_()
    excluded = torch.tensor([[1, 2, 2, 0], [8, 0, 0, 0], [1, 2, 3, 4]])  # repeats and padding
    items = torch.tensor([[1, 5, 5], [0, 8, 3], [2, 6, 7]])  # excluded, repeated and item 0
    log_rest, picked = rest_logsumexp_and_gather(scores, [excluded], items)
    for u in range(3):
        kept = [j for j in range(1, 9) if j not in excluded[u].tolist()]
        assert log_rest[u].item() == pytest.approx(torch.logsumexp(scores[u, kept], 0).item())
    assert torch.equal(picked, scores.gather(1, items))
    assert torch.autograd.gradcheck(lambda s: rest_logsumexp_and_gather(s, [excluded], items), (scores,))


def test_flat_training_items_give_the_same_losses_and_gradients():
    from recbole_hetcomp.distill.akt import flat_items

    gen = torch.Generator().manual_seed(12)
    history = torch.tensor([[3, 7, 0, 0], [0, 0, 0, 0], [1, 2, 4, 9], [5, 0, 0, 0]])  # user 1: none
    lengths = (history != 0).sum(1)
    indptr = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    users = torch.tensor([2, 0, 1, 3, 2])
    rows, cols = flat_items(indptr, history[history != 0], users)
    for r, u in enumerate(users.tolist()):
        assert sorted(cols[rows == r].tolist()) == sorted(i for i in history[u].tolist() if i)

    scores = torch.randn(5, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    observed = history[users][:, :2]
    target = torch.stack([torch.randperm(11, generator=gen)[:4] + 1 for _ in range(5)])
    for loss in (overall_loss, lambda *a: detailed_loss(*a, n_observed=2, n_long=4, n_short=2)):
        padded = loss(scores, observed, observed != 0, target, history[users])
        flat = loss(scores, observed, observed != 0, target, (rows, cols))
        assert torch.allclose(padded, flat)
        assert torch.allclose(*(torch.autograd.grad(x.sum(), scores)[0] for x in (padded, flat)))


def test_plackett_luce_suffix_sums_hold_over_the_whole_clamped_range():
    """The suffix log-sums are a shifted cumulative sum in float32: scores 80 apart (the clamp's
    whole range) and padding must give float64's exact logcumsumexp, values and gradients."""
    from recbole_hetcomp.distill.akt import plackett_luce_terms

    gen = torch.Generator().manual_seed(5)
    scores = torch.rand(64, 50, generator=gen) * 80 - 40
    scores[:, 0], scores[:, -1] = 40.0, -40.0  # extremes in every row
    valid = torch.rand(64, 50, generator=gen) > 0.1
    valid[0] = False  # a row of padding only
    negatives = torch.randn(64, generator=gen) * 20

    def exact(ranked, ok, log_neg):
        ranked = ranked.masked_fill(~ok, -1.0e4)
        suffix = ranked.flip(1).logcumsumexp(dim=1).flip(1)
        return (torch.logaddexp(suffix, log_neg[:, None]) - ranked).masked_fill(~ok, 0.0).sum(dim=1)

    fast = scores.clone().requires_grad_()
    reference = scores.double().requires_grad_()
    got, want = plackett_luce_terms(fast, valid, negatives), exact(reference, valid, negatives.double())
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-4)
    (g_fast,), (g_ref,) = torch.autograd.grad(got.sum(), fast), torch.autograd.grad(want.sum(), reference)
    assert torch.allclose(g_fast.double(), g_ref, rtol=1e-4, atol=1e-5)


def test_scores_kept_as_factors_give_the_dense_losses_and_gradients(monkeypatch):
    """Students pass their scores as ``MFScores(user_e, item_e)``; every loss gives what the
    ``[B, n_items]`` matrix gives, computed a chunk of users at a time."""
    import recbole_hetcomp.distill.mf as mf
    from recbole_hetcomp.distill.cldrd import cldrd_loss
    from recbole_hetcomp.distill.rrd import rrd_loss, sample_uninteresting

    n_users, n_items = 40, 60
    monkeypatch.setattr(mf, "CHUNK_CELLS", {"cpu": 16 * n_items})  # 16 users per chunk
    assert mf._chunk_bounds(n_users, n_items, torch.device("cpu")) == [0, 16, 40]  # a short tail joins
    gen = torch.Generator().manual_seed(21)
    user_e = torch.randn(n_users, 4, generator=gen, dtype=torch.float64)
    user_e[20] *= 40  # scores beyond +-40 in the second chunk only: clamped, no gradient there
    item_e = torch.randn(n_items, 4, generator=gen, dtype=torch.float64)
    assert (user_e[20] @ item_e.T).abs().max() > 40
    history = torch.randint(0, n_items, (n_users, 6), generator=gen)  # training items, 0 = padding
    rows, position = history.nonzero(as_tuple=True)
    shuffled = torch.randperm(len(rows), generator=gen)  # flat sets need not be grouped by user
    train = (rows[shuffled], history[rows, position][shuffled])
    target = torch.stack([torch.randperm(n_items - 1, generator=gen)[:12] + 1 for _ in range(n_users)])
    target[3, 8:] = 0  # padding
    observed = torch.stack([torch.randperm(n_items - 1, generator=gen)[:3] + 1 for _ in range(n_users)])
    sampled = sample_uninteresting(history, target, n_items, 7, generator=gen)
    losses = {
        "overall": lambda s: overall_loss(s, observed, observed != 0, target, train),
        "detailed": lambda s: detailed_loss(s, observed, observed != 0, target, train, n_observed=2, n_long=8, n_short=3),
        "rrd": lambda s: rrd_loss(s, target, history, 4, 8),
        "rrd, sampled": lambda s: rrd_loss(s, target, history, 4, 8, sampled),
        "cldrd": lambda s: cldrd_loss(s, target, train, 3, 8),
    }
    for name, loss in losses.items():
        results = []
        for as_factors in (False, True):
            u, i = user_e.clone().requires_grad_(), item_e.clone().requires_grad_()
            scores = mf.MFScores(u, i)
            value = loss(scores if as_factors else scores.dense())
            results.append((value, *torch.autograd.grad(value.sum(), (u, i))))
        for dense, factors in zip(*results):
            assert torch.allclose(dense, factors, rtol=1e-12, atol=1e-12), name


def test_scores_kept_as_factors_take_one_backward():
    """The exponentials kept for the backward become the gradient in place: a second
    backward through the same graph is refused (as for any tensor modified in place)."""
    from recbole_hetcomp.distill.mf import MFScores

    user_e = torch.randn(3, 2, requires_grad=True)
    scores = MFScores(user_e, torch.randn(5, 2))
    loss = overall_loss(scores, torch.tensor([[1], [2], [0]]), torch.ones(3, 1, dtype=torch.bool),
                        torch.tensor([[3], [4], [1]]), torch.tensor([[2], [0], [0]])).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_discrepancy_is_the_same_whatever_the_membership_blocks(monkeypatch):
    import recbole_hetcomp.distill.dkc as dkc

    gen = torch.Generator().manual_seed(3)
    student = torch.stack([torch.randperm(300, generator=gen)[:50] + 1 for _ in range(40)])
    teacher = torch.stack([torch.randperm(300, generator=gen)[:50] + 1 for _ in range(40)])
    teacher[:5, 40:] = 0  # padded lists
    whole = dkc.discrepancy(student, teacher)
    monkeypatch.setattr(dkc, "MEMBERSHIP_BUDGET", 700)  # two rows per block
    assert torch.equal(dkc.discrepancy(student, teacher), whole)
