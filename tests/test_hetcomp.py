"""The HetComp student: DKC and AKT as a RecBole model, end to end on a tiny dataset."""

import pytest
import torch

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.quick_start import run_recbole_hetcomp

# A short curriculum: DKC every 2 epochs from epoch 2, so 20 epochs see it finish.
FAST_CURRICULUM = {"dkc_start": 2, "dkc_period": 2, "eval_step": 2, "stopping_step": 50, "hetcomp_k": 20,
                   "discrepancy_depth": 10, "detailed_long": 10, "detailed_short": 5, "embedding_size": 4,
                   "learning_rate": 0.01}
TEACHERS = {"teachers": ["BPR", "EASE"], "teacher_defaults": {"epochs": 8, "learning_rate": 0.01}}


def run(tiny, model="HetComp", **overrides):
    config = dict(tiny, **TEACHERS, **FAST_CURRICULUM)
    config.update(overrides)
    return run_recbole_hetcomp(model=model, dataset="tiny", config_dict=config, read_command_line=False)


def load_split_and_model(tiny, **overrides):
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.config import Config
    from recbole_hetcomp.utils import get_model, get_trainer

    config_dict = dict(tiny, **TEACHERS, **FAST_CURRICULUM)
    config_dict.update(overrides)
    config = Config(model="HetComp", dataset="tiny", config_dict=config_dict, read_command_line=False)
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    model = get_model("HetComp")(config, train.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "HetComp")(config, model)
    return config, (train, valid, test), model, trainer


def test_pipeline_trains_teachers_ensemble_and_student(tiny):
    result = run(tiny, epochs=24)
    assert [r["name"] for r in result["rows"]] == ["BPR", "EASE", "Ensemble", "HetComp"]
    student = result["rows"][-1]
    assert student["parameters"] < result["rows"][0]["parameters"]
    assert student["test_result"]["ndcg@10"] > 0
    history = result["dkc_history"]
    assert [h["epoch"] for h in history] == list(range(2, 24, 2))
    # BPR has several checkpoints; EASE (one-shot) is at its last from the start
    assert history[-1]["mean_checkpoint"][1] == 0.0
    assert history[-1]["mean_checkpoint"][0] > history[0]["mean_checkpoint"][0]
    assert any(h["switched"] for h in history), "the curriculum finished, so AKT switched"


def test_same_seed_same_student(tiny):
    first = run(tiny, epochs=6)
    second = run(tiny, epochs=6)
    assert first["test_result"] == second["test_result"]


def test_targets_exclude_training_items_and_observed_lists_are_padded(tiny):
    run(tiny, model="RankEnsemble")  # records the teachers
    config, (train, _, _), model, _ = load_split_and_model(tiny, observed_k=20)
    history = train.dataset.history_item_matrix()[0]
    for u in range(1, model.n_users):
        train_items = set(history[u].tolist()) - {0}
        targets = set(model.targets[u].tolist()) - {0}
        assert not targets & train_items
        observed = model.observed_targets[u]
        assert set(observed.tolist()) - {0} <= train_items
        # fewer training items than observed_k: the rest is padding
        assert (observed[len(train_items):] == 0).all()


def test_only_one_shot_teachers_start_with_the_detailed_loss(tiny):
    run(tiny, model="RankEnsemble", teachers=["EASE"])
    _, _, model, trainer = load_split_and_model(tiny, teachers=["EASE"])
    assert int(model.akt_stage) == 1


def test_final_checkpoints_only_ablation_has_no_curriculum(tiny):
    run(tiny, model="RankEnsemble")
    _, _, model, _ = load_split_and_model(tiny, hetcomp_checkpoints="final")
    assert model.dkc_n_checkpoints.tolist() == [1, 1]


def test_resume_continues_the_curriculum(tiny):
    first = run(tiny, epochs=9, eval_step=1)
    saved = torch.load(first["checkpoint_file"], weights_only=False)  # written by this test's run
    assert int(saved["state_dict"]["dkc_calls"]) > 0
    config, (train, valid, _), model, trainer = load_split_and_model(tiny, epochs=14, eval_step=1)
    trainer.resume_checkpoint(first["checkpoint_file"])
    for key in ("dkc_checkpoint", "dkc_calls", "akt_stage", "targets"):
        assert torch.equal(getattr(model, key), saved["state_dict"][key])
    assert trainer.start_epoch == saved["epoch"] + 1
    calls_before = int(model.dkc_calls)
    trainer.fit(train, valid, saved=False, show_progress=False)
    assert int(model.dkc_calls) > calls_before
    assert trainer.dkc_history[-1]["epoch"] > saved["epoch"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hetcomp_k": 0}, "hetcomp_k must be a positive integer"),
        ({"hetcomp_k": 500}, "not smaller than the catalogue"),
        ({"discrepancy_depth": 30}, "discrepancy_depth must be in"),
        ({"overall_loss_weight": -1.0}, "overall_loss_weight must be >= 0"),
        ({"dkc_alpha": 0.0}, "dkc_alpha must be > 0"),
    ],
)
def test_bad_settings_fail_before_training(tiny, overrides, message):
    run(tiny, model="RankEnsemble")
    with pytest.raises(ConfigError, match=message):
        load_split_and_model(tiny, **overrides)


def test_resumed_student_ends_with_the_same_results_as_an_uninterrupted_one(tiny):
    uninterrupted = run(tiny, epochs=16, eval_step=1)
    # "killed" after epoch 8: the run that stopped there left its best checkpoint
    interrupted = run(tiny, epochs=9, eval_step=1)
    config, (train, valid, test), model, trainer = load_split_and_model(tiny, epochs=16, eval_step=1)
    trainer.resume_checkpoint(interrupted["checkpoint_file"])
    best_score, best_result = trainer.fit(train, valid, saved=True, show_progress=False)
    test_result = trainer.evaluate(test, load_best_model=True)
    assert best_score == uninterrupted["best_valid_score"]
    assert dict(test_result) == uninterrupted["test_result"]
    assert [h["epoch"] for h in trainer.dkc_history] == [h["epoch"] for h in uninterrupted["dkc_history"]]


@pytest.mark.parametrize("mode, stages", [("overall", {0}), ("detailed", {1})])
def test_single_loss_ablations(tiny, mode, stages):
    result = run(tiny, epochs=14, akt_mode=mode)
    assert {h["stage"] for h in result["dkc_history"]} == stages


def test_early_stopping_waits_for_the_curriculum(tiny):
    run(tiny, model="RankEnsemble")  # records the teachers
    _, _, model, trainer = load_split_and_model(tiny, stopping_step=3)
    trainer._hold_early_stopping()
    assert trainer.stopping_step == float("inf")  # curriculum under way: RecBole never stops
    trainer.cur_step = 7  # validations without gain so far
    model.dkc_checkpoint.copy_((model.dkc_n_checkpoints - 1)[:, None].expand_as(model.dkc_checkpoint))  # all at the last
    trainer._hold_early_stopping()
    assert (trainer.stopping_step, trainer.cur_step) == (3, 0)  # patience counts from here
    trainer.cur_step = 2
    trainer._hold_early_stopping()
    assert (trainer.stopping_step, trainer.cur_step) == (3, 2)  # and only once

    _, _, _, plain = load_split_and_model(tiny, stopping_step=3, hold_early_stopping=False)
    plain._hold_early_stopping()
    assert plain.stopping_step == 3
