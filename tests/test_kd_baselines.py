"""The final-knowledge KD baselines RRD and CL-DRD: losses, targets, curriculum, pipeline."""

import math
import os

import pytest
import torch

from recbole_hetcomp.distill.akt import overall_loss
from recbole_hetcomp.distill.ranking import stable_topk
from recbole_hetcomp.distill.cldrd import cldrd_loss
from recbole_hetcomp.distill.rrd import rrd_loss, sample_uninteresting
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.model.general_recommender.cldrd import CLDRD
from recbole_hetcomp.model.general_recommender.rrd import RRD
from recbole_hetcomp.quick_start import run_recbole_hetcomp
from recbole_hetcomp.utils import get_model, get_trainer

from conftest import split_and_model

TEACHERS = {"teachers": ["BPR", "EASE"], "teacher_defaults": {"epochs": 8, "learning_rate": 0.01}}
EQUAL = {"ensemble_weights": None}  # both teachers in the targets (the default searches the weights)
SHORT = {"eval_step": 2, "stopping_step": 50, "embedding_size": 4, "learning_rate": 0.01,
         "rrd_k": 10, "rrd_n": 20, "cldrd_length": 20, "cldrd_ordered": [0, 5, 20], "cldrd_period": 2}


def run(tiny, model, **overrides):
    config = dict(tiny, **TEACHERS, **SHORT, **EQUAL)
    config.update(overrides)
    return run_recbole_hetcomp(model=model, dataset="tiny", config_dict=config)


def load_split_and_model(tiny, model, **overrides):
    """Config, splits, a fresh model and its trainer (the teachers must be recorded already)."""
    return split_and_model({**tiny, **TEACHERS, **SHORT, **EQUAL, **overrides}, model)


def _clamped(scores):
    return scores.clamp(-40.0, 40.0).tolist()


def _plackett_luce_reference(s, ranked, negatives):
    """-sum_k log(e^{s_k} / (sum_{l >= k} e^{s_l} + sum_{j in N} e^{s_j})), item by item."""
    loss = 0.0
    for k, item in enumerate(ranked):
        denominator = sum(math.exp(s[i]) for i in ranked[k:]) + sum(math.exp(s[j]) for j in negatives)
        loss -= s[item] - math.log(denominator)
    return loss


def rrd_reference(scores, target, train_items, k, n, uninteresting=None):
    out = []
    n_items = scores.shape[1]
    for u, s in enumerate(_clamped(scores)):
        ranked = [i for i in target[u, :k].tolist() if i != 0]
        excluded = set(train_items[u].tolist()) | set(target[u, :n].tolist()) | {0}
        if uninteresting is None:
            negatives = [j for j in range(n_items) if j not in excluded]
        else:
            negatives = [j for j in uninteresting[u].tolist() if j != 0]
        out.append(_plackett_luce_reference(s, ranked, negatives))
    return torch.tensor(out, dtype=torch.float64)


def cldrd_reference(scores, target, train_items, n_ordered, length):
    out = []
    n_items = scores.shape[1]
    for u, s in enumerate(_clamped(scores)):
        top = target[u, :length].tolist()
        ordered = [i for i in top[:n_ordered] if i != 0]
        unordered = [i for i in top[n_ordered:] if i != 0]
        excluded = set(train_items[u].tolist()) | set(top) | {0}
        rest = [j for j in range(n_items) if j not in excluded]
        loss = _plackett_luce_reference(s, ordered, unordered + rest)
        rest_sum = sum(math.exp(s[j]) for j in rest)
        for i in unordered:
            loss -= s[i] - math.log(math.exp(s[i]) + rest_sum)
        out.append(loss)
    return torch.tensor(out, dtype=torch.float64)


def hand_made_batch():
    """Four users over 10 items (0 = padding), with padding in every list.

    User 0: ordinary; user 1: short target (padded tail) and a score above the clamp;
    user 2: an empty target; user 3: padding inside the target prefix.
    """
    scores = torch.randn(4, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2.0
    scores[1, 4] = 55.0
    target = torch.tensor([
        [5, 2, 9, 7, 1, 4],
        [4, 8, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [6, 0, 3, 9, 2, 0],
    ])
    train_items = torch.tensor([
        [3, 6, 0],
        [1, 2, 5],
        [7, 0, 0],
        [1, 0, 0],
    ])
    return scores, target, train_items


# --- RRD ----------------------------------------------------------------------------------
@pytest.mark.parametrize("k, n", [(1, 1), (3, 3), (3, 5), (6, 6)])
def test_rrd_loss_full_catalogue_matches_brute_force(k, n):
    scores, target, train_items = hand_made_batch()
    got = rrd_loss(scores, target, train_items, k, n)
    assert torch.allclose(got, rrd_reference(scores, target, train_items, k, n), rtol=1e-9, atol=1e-9)
    assert got[2] == 0.0  # empty target: no term


def test_rrd_loss_with_sampled_uninteresting_items_matches_brute_force():
    scores, target, train_items = hand_made_batch()
    uninteresting = torch.tensor([[8, 0, 9], [3, 6, 0], [1, 2, 0], [0, 0, 0]])
    got = rrd_loss(scores, target, train_items, 3, 5, uninteresting)
    want = rrd_reference(scores, target, train_items, 3, 5, uninteresting)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)


def test_rrd_loss_gradients_are_finite_when_no_uninteresting_item_is_left():
    # every item is a training item or in the target: an empty N_u
    scores = torch.randn(1, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_()
    target, train_items = torch.tensor([[3, 1, 4]]), torch.tensor([[2, 0]])
    loss = rrd_loss(scores, target, train_items, 3)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(scores.grad).all()
    s = scores.detach()[0].tolist()
    assert math.isclose(loss.item(), _plackett_luce_reference(s, [3, 1, 4], []), rel_tol=1e-9)


def test_sampled_uninteresting_items_are_valid_distinct_and_uniform():
    n_items, draws = 12, 7000
    train_items = torch.tensor([[1, 2]]).repeat(draws, 1)
    top = torch.tensor([[3, 4, 0]]).repeat(draws, 1)
    gen = torch.Generator().manual_seed(0)
    ids = sample_uninteresting(train_items, top, n_items, 3, generator=gen)
    assert ids.shape == (draws, 3)
    assert (ids >= 5).all(), "never item 0, a training item or a top item"
    assert (ids.sort(dim=1).values.diff(dim=1) > 0).all(), "without replacement"
    counts = torch.bincount(ids.flatten(), minlength=n_items)[5:].double()
    expected = draws * 3 / 7
    assert ((counts - expected).abs() < 6 * math.sqrt(expected)).all()
    # fewer candidates than asked: the missing entries are padding
    few = sample_uninteresting(torch.tensor([[1, 2, 3, 4, 5]]), torch.tensor([[6, 7]]), 10, 4, generator=gen)
    assert sorted(few[0].tolist()) == [0, 0, 8, 9]


# --- CL-DRD -------------------------------------------------------------------------------
@pytest.mark.parametrize("n_ordered", [0, 1, 3, 6])
def test_cldrd_loss_matches_brute_force(n_ordered):
    scores, target, train_items = hand_made_batch()
    got = cldrd_loss(scores, target, train_items, n_ordered, 6)
    want = cldrd_reference(scores, target, train_items, n_ordered, 6)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-9)
    assert got[2] == 0.0


def test_cldrd_stages_span_overall_loss_to_rrd():
    scores, target, train_items = hand_made_batch()
    # no ordered item: top-L against the rest, HetComp's overall loss without observed items
    no_observed = torch.zeros(4, 0, dtype=torch.long)
    coarse = overall_loss(scores, no_observed, no_observed.bool(), target[:, :5], train_items)
    assert torch.allclose(cldrd_loss(scores, target, train_items, 0, 5), coarse, rtol=1e-9, atol=1e-9)
    # all ordered: RRD's loss on the top-L
    fine = rrd_loss(scores, target, train_items, 5)
    assert torch.allclose(cldrd_loss(scores, target, train_items, 5, 5), fine, rtol=1e-9, atol=1e-9)


def test_cldrd_loss_rejects_an_ordered_prefix_longer_than_the_list():
    scores, target, train_items = hand_made_batch()
    with pytest.raises(ValueError, match="n_ordered"):
        cldrd_loss(scores, target, train_items, 7, 6)


# --- models -------------------------------------------------------------------------------
def test_models_and_trainer_are_found_by_name():
    assert get_model("RRD") is RRD and get_model("CLDRD") is CLDRD
    assert RRD.uses_teachers and CLDRD.uses_teachers
    from recbole.trainer import Trainer
    from recbole.utils import ModelType

    from recbole_hetcomp.trainer import CLDRDTrainer

    assert issubclass(get_trainer(ModelType.GENERAL, "CLDRD"), CLDRDTrainer)
    assert not issubclass(get_trainer(ModelType.GENERAL, "RRD"), CLDRDTrainer)
    assert issubclass(get_trainer(ModelType.GENERAL, "RRD"), Trainer)


@pytest.mark.parametrize("model", ["RRD", "CLDRD"])
def test_pipeline_trains_teachers_ensemble_and_student(tiny, model):
    result = run(tiny, model, epochs=6)
    assert [r["name"] for r in result["rows"]] == ["BPR", "EASE", "Ensemble", model]
    student = result["rows"][-1]
    assert student["kind"] == "student"
    assert student["parameters"] < result["rows"][0]["parameters"]
    assert student["test_result"] == result["test_result"]
    assert result["test_result"]["ndcg@50"] > 0


def test_sampled_rrd_runs_end_to_end(tiny):
    result = run(tiny, "RRD", epochs=2, rrd_negatives=30, bpr_loss_weight=1.0)
    assert result["rows"][-1]["name"] == "RRD"


def test_targets_are_the_final_ensemble_ranking(tiny):
    from recbole.data.interaction import Interaction

    from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble
    from recbole_hetcomp.trajectory.teacherset import TeacherSet

    run(tiny, "RankEnsemble")  # records the teachers
    config, (train, _, _), rrd, _ = load_split_and_model(tiny, "RRD")
    _, _, cldrd, _ = load_split_and_model(tiny, "CLDRD")
    # BPR left several checkpoints, so "final" is a real choice
    assert TeacherSet.load(config, train.dataset).members[0].topn.shape[0] > 1

    ensemble = RankEnsemble(config, train.dataset)  # the teachers' last checkpoints
    users = torch.arange(1, rrd.n_users)
    scores = ensemble.full_sort_predict(Interaction({rrd.USER_ID: users})).view(len(users), -1)
    values, ids = stable_topk(scores, rrd.n)
    expected = ids.masked_fill(values <= 0, 0)
    assert (expected[:, -1] != 0).any(), "the test compares full lists, not only padding"
    assert torch.equal(rrd.targets.cpu()[users], expected)
    assert torch.equal(cldrd.targets.cpu()[users], expected[:, : cldrd.length])

    history = train.dataset.history_item_matrix()[0]
    train_mask = torch.zeros(rrd.n_users, rrd.n_items, dtype=torch.bool).scatter_(1, history, True)
    train_mask[:, 0] = False
    assert not train_mask.gather(1, rrd.targets).any(), "targets hold no training item"


@pytest.mark.parametrize("model", ["RRD", "CLDRD"])
def test_a_teacher_weighted_zero_is_left_out_of_the_targets(tiny, model):
    run(tiny, "RankEnsemble")  # records the teachers
    _, _, weighted, _ = load_split_and_model(tiny, model, ensemble_weights=[0.0, 1.0])  # BPR weighs nothing
    _, _, ease_only, _ = load_split_and_model(tiny, model, teachers=["EASE"])
    assert weighted.teacher_names == ease_only.teacher_names == ["EASE"]
    assert torch.equal(weighted.targets, ease_only.targets)


def test_curriculum_advances_on_schedule_and_is_checkpointed(tiny):
    run(tiny, "RankEnsemble")
    _, (train, valid, _), model, trainer = load_split_and_model(tiny, "CLDRD", epochs=7, eval_step=1)
    assert model.stages == [0, 5, 20] and int(model.cldrd_stage) == 0
    assert [model.stage_at(e) for e in range(8)] == [0, 0, 1, 1, 2, 2, 2, 2]
    trainer.fit(train, valid, saved=True, show_progress=False)
    history = trainer.curriculum_history
    assert [(h["epoch"], h["stage"], h["n_ordered"]) for h in history] == [(0, 0, 0), (2, 1, 5), (4, 2, 20)]
    assert int(model.cldrd_stage) == 2 and model.n_ordered == 20
    saved = torch.load(trainer.saved_model_file, weights_only=False)  # written by this test's run
    assert "cldrd_stage" in saved["state_dict"]
    assert "targets" not in saved["state_dict"], "targets are rebuilt from the trajectory files"


@pytest.mark.parametrize(
    "model, overrides, message",
    [
        ("RRD", {"rrd_k": 0}, "rrd_k must be a positive integer"),
        ("RRD", {"rrd_k": 10, "rrd_n": 5}, "rrd_n must be an integer >= rrd_k"),
        ("RRD", {"rrd_negatives": -1}, "rrd_negatives must be"),
        ("RRD", {"rrd_loss_weight": -1.0}, "rrd_loss_weight must be >= 0"),
        ("RRD", {"bpr_loss_weight": -1.0}, "bpr_loss_weight must be >= 0"),
        ("RRD", {"ensemble_weights": [1.0]}, "ensemble_weights has 1 values for 2 teachers"),
        ("CLDRD", {"cldrd_ordered": [5, 0]}, "must not decrease"),
        ("CLDRD", {"cldrd_ordered": [0, 30]}, r"cldrd_ordered must be a non-empty list"),
        ("CLDRD", {"cldrd_period": 0}, "cldrd_period must be a positive integer"),
        ("CLDRD", {"cldrd_length": 500}, "not smaller than the catalogue"),
    ],
)
def test_bad_settings_fail_before_training(tiny, model, overrides, message):
    if "ensemble_weights" in overrides:  # one weight per teacher: checked once the teachers are known
        run(tiny, "RankEnsemble")
        with pytest.raises(ConfigError, match=message):
            load_split_and_model(tiny, model, **overrides)
        return
    with pytest.raises(ConfigError, match=message):
        run(tiny, model, **overrides)
    assert not os.path.exists(os.path.join(tiny["trajectory_dir"], "tiny", "BPR.safetensors"))  # no teacher trained


def test_a_result_file_keeps_the_settings_its_run_read_and_a_kept_one_is_checked_on_them(tiny):
    from recbole_hetcomp.checks import kept_result_difference
    from recbole_hetcomp.config import resolve_settings

    result = run(tiny, "RRD", epochs=2)
    read = result["resolved_config"]
    assert read["rrd_k"] == 10 and read["epochs"] == 2 and read["model"] == "RRD"
    assert "hetcomp_k" not in read  # HetComp's K, set in HetComp.yaml: RRD never reads it
    assert "student_init" in read and read["student_init"] is None  # read, set by no file of RRD's
    assert "data_path" not in read and "torch_num_threads" not in read  # where files go, threads: not settings

    def today(**changes):
        return resolve_settings("RRD", "tiny", None, {**tiny, **TEACHERS, **SHORT, **EQUAL, "epochs": 2, **changes})

    assert kept_result_difference(result, today()) is None
    assert kept_result_difference(result, today(hetcomp_k=7)) is None  # another model's key
    assert kept_result_difference(result, today(student_init="normal")) == ("student_init", None, "normal")
    assert kept_result_difference(result, today(rrd_k=5)) == ("rrd_k", 10, 5)
    given = dict(tiny, rrd_k="5")
    assert resolve_settings("RRD", "tiny", None, given)["rrd_k"] == 5 and given["rrd_k"] == "5"  # converted, not in place
