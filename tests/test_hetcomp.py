"""The HetComp student: DKC and AKT as a RecBole model, end to end on a tiny dataset."""

import pytest
import torch

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.quick_start import run_recbole_hetcomp
from recbole_hetcomp.summary import format_summary

from conftest import split_and_model

# A short curriculum: DKC every 2 epochs from epoch 2, so 20 epochs see it finish.
FAST_CURRICULUM = {"dkc_start": 2, "dkc_period": 2, "eval_step": 2, "stopping_step": 50, "hetcomp_k": 20,
                   "discrepancy_depth": 10, "detailed_long": 10, "detailed_short": 5, "embedding_size": 4,
                   "learning_rate": 0.01}
TEACHERS = {"teachers": ["BPR", "EASE"], "teacher_defaults": {"epochs": 8, "learning_rate": 0.01}}
# The curriculum's mechanics with both teachers in it: the default (`validation`) lets the
# weight search leave one out on tiny data, and a model built outside a run needs a list.
EQUAL = {"ensemble_weights": None}


def run(tiny, model="HetComp", **overrides):
    config = dict(tiny, **TEACHERS, **FAST_CURRICULUM, **EQUAL)
    config.update(overrides)
    return run_recbole_hetcomp(model=model, dataset="tiny", config_dict=config)


def load_split_and_model(tiny, **overrides):
    return split_and_model({**tiny, **TEACHERS, **FAST_CURRICULUM, **EQUAL, **overrides}, "HetComp")


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


def test_the_test_harness_builds_the_student_as_a_run_does(tiny):
    # tests that compare a student trained here with a run's rely on it (student_seed included)
    ran = run(tiny, epochs=4, student_seed=3)
    _, (train, valid, _), _, trainer = load_split_and_model(tiny, epochs=4, student_seed=3)
    trainer.fit(train, valid, saved=False, show_progress=False)
    assert trainer.valid_history == ran["valid_history"]
    assert len({score for _, score in trainer.valid_history}) > 1  # (scores that moved: a real comparison)


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


def test_student_topk_is_the_same_whatever_the_chunking(tiny, monkeypatch):
    from recbole_hetcomp.distill.ranking import topk_unobserved

    run(tiny, model="RankEnsemble")  # records the teachers
    _, _, model, _ = load_split_and_model(tiny)
    whole = topk_unobserved(model.user_embedding.weight @ model.item_embedding.weight.T,
                            model.train_mask(torch.arange(model.n_users)), 10)
    assert torch.equal(model.student_topk(10), whole)
    monkeypatch.setattr(type(model), "SCORE_BUDGET", {"cpu": 7 * model.n_items, "cuda": 7 * model.n_items})
    assert torch.equal(model.student_topk(10), whole)  # 7 users per chunk


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


def test_resume_file_continues_an_interrupted_run_to_the_uninterrupted_numbers(tiny):
    # several batches per epoch: the batch order must continue, not restart
    settings = dict(epochs=16, eval_step=1, train_batch_size=128)
    uninterrupted = run(tiny, **settings)
    interrupted = run(tiny, **dict(settings, epochs=9))  # "killed" after epoch 8: its best checkpoint is kept
    resumed = run(tiny, **settings, resume_file=interrupted["checkpoint_file"])
    assert resumed["test_result"] == uninterrupted["test_result"]
    assert resumed["valid_history"] == uninterrupted["valid_history"]
    assert [h["epoch"] for h in resumed["dkc_history"]] == [h["epoch"] for h in uninterrupted["dkc_history"]]
    assert resumed["checkpoint_file"] == interrupted["checkpoint_file"]  # new bests overwrite it


def test_a_run_killed_after_its_best_continues_from_its_latest_state(tiny, monkeypatch):
    import os

    from recbole_hetcomp.trainer.base import PluginTrainerMixin, latest_file

    monkeypatch.setattr(PluginTrainerMixin, "LATEST_EVERY_S", 0.0)  # every validation without a gain
    settings = dict(epochs=16, eval_step=1, train_batch_size=128)
    run(tiny, model="RankEnsemble")  # records the teachers
    _, (train, valid, _), _, uninterrupted = load_split_and_model(tiny, **settings)
    uninterrupted.fit(train, valid, saved=False, show_progress=False)

    class Killed(Exception):
        pass

    _, (train, valid, _), _, trainer = load_split_and_model(tiny, **settings)
    latest = latest_file(trainer.saved_model_file)

    def kill_once_past_the_best(epoch_idx, valid_score):
        # (a latest state is written as the epoch after a validation without gain starts: kill
        # once one continues the current best, not while an older one is still on disk)
        if os.path.exists(latest) and torch.load(latest, weights_only=False)["best_epoch"] == trainer._best_epoch:
            raise Killed

    with pytest.raises(Killed):
        trainer.fit(train, valid, saved=True, show_progress=False, callback_fn=kill_once_past_the_best)
    best, state = torch.load(trainer.saved_model_file, weights_only=False), torch.load(latest, weights_only=False)
    assert state["epoch"] > best["epoch"] == state["best_epoch"]

    from recbole_hetcomp.trainer import base

    continued_from, newer = [], base.newer_latest_state
    monkeypatch.setattr(base, "newer_latest_state", lambda *args: continued_from.append(newer(*args)) or continued_from[-1])
    resumed = run(tiny, **settings, resume_file=trainer.saved_model_file)
    assert [s["epoch"] for s in continued_from] == [state["epoch"]]  # from there, not from the best
    assert resumed["valid_history"] == uninterrupted.valid_history  # every validation, to the digit
    assert resumed["best_valid_score"] == uninterrupted.best_valid_score
    assert resumed["checkpoint_file"] == os.path.abspath(trainer.saved_model_file)
    assert not os.path.exists(latest)  # a finished fit leaves none


def test_a_latest_state_older_than_the_best_checkpoint_is_not_used(tmp_path):
    from recbole_hetcomp.trainer.base import latest_file, newer_latest_state

    best = str(tmp_path / "HetComp.pth")
    torch.save({"epoch": 12, "best_epoch": 9}, latest_file(best))  # left before the best of epoch 12
    assert newer_latest_state(best, {"epoch": 12}, "cpu") is None
    torch.save({"epoch": 15, "best_epoch": 12}, latest_file(best))
    assert newer_latest_state(best, {"epoch": 12}, "cpu")["epoch"] == 15


def test_resume_file_accepts_the_same_settings_read_from_files_elsewhere(tiny, tmp_path):
    # e.g. the protocol files of another git worktree: the settings match, only their path differs
    def run_with_file(folder, learning_rate, **overrides):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "protocol.yaml").write_text(f"learning_rate: {learning_rate}\n")
        config = {**tiny, **TEACHERS, **FAST_CURRICULUM, "eval_step": 1, **overrides}
        del config["learning_rate"]
        config["config_files"] = str(tmp_path / folder / "protocol.yaml")  # as --config_files= puts it
        return run_recbole_hetcomp(model="HetComp", dataset="tiny", config_dict=config,
                                   config_file_list=[config["config_files"]])

    interrupted = run_with_file("a", 0.02, epochs=3)
    resumed = run_with_file("b", 0.02, epochs=6, resume_file=interrupted["checkpoint_file"])
    assert resumed["checkpoint_file"] == interrupted["checkpoint_file"]  # continued, not started over
    with pytest.raises(ConfigError, match="was written with learning_rate=0.02, this run has learning_rate=0.05"):
        run_with_file("b", 0.05, epochs=12, resume_file=interrupted["checkpoint_file"])


def test_a_checkpoint_from_before_a_new_key_resumes_when_the_key_keeps_the_old_behaviour(tiny):
    # switch_patience came after runs were under way: absent means None, which is its default
    interrupted = run(tiny, epochs=3, eval_step=1)
    checkpoint = torch.load(interrupted["checkpoint_file"], weights_only=False)
    del checkpoint["config"].final_config_dict["switch_patience"]
    torch.save(checkpoint, interrupted["checkpoint_file"])
    resumed = run(tiny, epochs=6, eval_step=1, resume_file=interrupted["checkpoint_file"])
    assert resumed["checkpoint_file"] == interrupted["checkpoint_file"]  # continued, not refused


def test_resume_file_under_other_settings_is_refused_in_one_line(tiny):
    interrupted = run(tiny, epochs=3, eval_step=1)
    with pytest.raises(ConfigError, match="was written with learning_rate=0.01, this run has learning_rate=0.05"):
        run(tiny, epochs=6, eval_step=1, learning_rate=0.05, resume_file=interrupted["checkpoint_file"])
    with pytest.raises(ConfigError, match="was written by model HetComp, not BPR"):
        run(tiny, model="BPR", resume_file=interrupted["checkpoint_file"])
    with pytest.raises(ConfigError, match="resume_file .*missing.pth does not exist"):
        run(tiny, resume_file="saved/missing.pth")
    with pytest.raises(ConfigError, match="the last of --epochs=1: nothing is left to train"):
        run(tiny, epochs=1, eval_step=1, resume_file=interrupted["checkpoint_file"])
    other_teachers = dict(trajectory_dir=tiny["trajectory_dir"] + "-other", teacher_defaults={"epochs": 3, "learning_rate": 0.01})
    run(tiny, model="RankEnsemble", **other_teachers)  # records them
    with pytest.raises(ConfigError, match="was written with teacher_defaults=.*resume with the same settings"):
        run(tiny, epochs=6, eval_step=1, resume_file=interrupted["checkpoint_file"], **other_teachers)


def test_resume_file_from_other_teachers_is_refused_naming_them(tiny, tmp_path):
    from recbole_hetcomp.compat import load_own_checkpoint

    interrupted = run(tiny, epochs=3, eval_step=1)
    checkpoint = load_own_checkpoint(interrupted["checkpoint_file"], torch.device("cpu"))
    assert checkpoint["teacher_names"] == ["BPR", "EASE"]
    # Same settings, other recorded lists (e.g. teachers recorded again on another machine)
    checkpoint["teachers_digest"] = "0" * 16
    torch.save(checkpoint, tmp_path / "elsewhere.pth")
    with pytest.raises(ConfigError, match=r"trained from other teachers \(0{16}\) than those in trajectory_dir now"):
        run(tiny, epochs=6, eval_step=1, resume_file=str(tmp_path / "elsewhere.pth"))
    # Same settings, other members (a weight-0 teacher was a member before 2026-12-05, or the
    # teacher guard judged another recording): both lists are named
    checkpoint["teacher_names"] = ["BPR", "EASE", "ItemKNN"]
    torch.save(checkpoint, tmp_path / "older_code.pth")
    with pytest.raises(ConfigError, match="trained from teachers BPR, EASE, ItemKNN; with the same settings this run "
                                          "takes BPR, EASE: continue it with the trajectory files and code version"):
        run(tiny, epochs=6, eval_step=1, resume_file=str(tmp_path / "older_code.pth"))


def test_resume_file_is_refused_for_distributed_runs_and_not_passed_to_teachers(tmp_path):
    from recbole_hetcomp.checks import check_resume_file
    from recbole_hetcomp.trajectory.record import MODEL_LEVEL_KEYS

    checkpoint = tmp_path / "HetComp.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(ConfigError, match="continues single-process runs only"):
        check_resume_file({"resume_file": str(checkpoint), "record_trajectory": False, "single_spec": False})
    assert "resume_file" in MODEL_LEVEL_KEYS  # a teacher trained inside a resumed run starts fresh


@pytest.mark.parametrize("mode, stages", [("overall", {0}), ("detailed", {1})])
def test_single_loss_ablations(tiny, mode, stages):
    result = run(tiny, epochs=14, akt_mode=mode)
    assert {h["stage"] for h in result["dkc_history"]} == stages


def test_early_stopping_waits_for_the_curriculum(tiny):
    run(tiny, model="RankEnsemble")  # records the teachers
    _, _, model, trainer = load_split_and_model(tiny, stopping_step=3, hold_early_stopping=True)
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


def test_dkc_ends_at_the_switch_and_targets_stay_fixed(tiny):
    run(tiny, model="RankEnsemble")  # records the teachers
    _, _, model, trainer = load_split_and_model(tiny)
    last = (model.dkc_n_checkpoints - 1)[:, None].expand_as(model.dkc_checkpoint)
    # Every real user at the last checkpoint but one: the mean rounds to the last index
    # on a 60-user dataset only if the straggler is close; put all there, then move one
    # user back by one checkpoint on a teacher with several (BPR).
    model.dkc_checkpoint.copy_(last)
    bpr = model.teacher_names.index("BPR")
    assert int(model.dkc_n_checkpoints[bpr]) > 1
    users = torch.nonzero(model.curriculum_users).flatten()
    n_real = len(users)
    straggler = int(users[0])
    model.dkc_checkpoint[bpr, straggler] -= 1
    mean = model.curriculum.mean_checkpoint(model.curriculum_users)[bpr].item()
    assert mean == pytest.approx(int(model.dkc_n_checkpoints[bpr]) - 1 - 1 / n_real)
    converged = round(mean, 2) == int(model.dkc_n_checkpoints[bpr]) - 1
    model.rebuild_targets()

    stats = trainer.dkc(epoch_idx=40)
    assert stats["converged"] == converged
    if not converged:  # 60 users: one straggler is 1.7% of them, so the reference rule waits
        assert int(model.akt_stage) == 0
        model.dkc_checkpoint[bpr, straggler] += 1
        stats = trainer.dkc(epoch_idx=50)
    assert stats["switched"] and int(model.akt_stage) == 1
    frozen_checkpoint, frozen_targets = model.dkc_checkpoint.clone(), model.targets.clone()
    # After the switch no DKC step runs: even a pair pushed back stays there.
    model.dkc_checkpoint[bpr, straggler] = 0
    stats = trainer.dkc(epoch_idx=60)
    assert stats["n_advanced"] == 0 and model.dkc_checkpoint[bpr, straggler] == 0
    assert torch.equal(model.targets, frozen_targets)
    assert not torch.equal(model.dkc_checkpoint, frozen_checkpoint)  # untouched by DKC, only by us


def test_a_stalled_overall_stage_switches_before_the_curriculum_converges(tiny):
    run(tiny, model="RankEnsemble")  # records the teachers
    _, _, model, trainer = load_split_and_model(tiny, switch_patience=2, stopping_step=3, hold_early_stopping=True)
    model.dkc_checkpoint.zero_()  # every pair at its first checkpoint: far from converged
    model.rebuild_targets()
    trainer._hold_early_stopping()
    trainer.cur_step = 1  # one validation without gain: not yet
    stats = trainer.dkc(epoch_idx=40)
    assert not stats["switched"] and int(model.akt_stage) == 0
    trainer.cur_step = 2  # the second: the overall stage has stalled
    stats = trainer.dkc(epoch_idx=50)
    assert stats["switched"] and stats["switch_reason"] == "stalled" and not stats["converged"]
    assert int(model.akt_stage) == 1
    # The detailed stage gets the whole patience, and DKC has ended: the targets stay.
    assert (trainer.stopping_step, trainer.cur_step) == (3, 0)
    trainer._hold_early_stopping()
    assert (trainer.stopping_step, trainer.cur_step) == (3, 0)
    frozen = model.targets.clone()
    trainer.cur_step = 5
    stats = trainer.dkc(epoch_idx=60)
    assert stats["n_advanced"] == 0 and not stats["switched"] and torch.equal(model.targets, frozen)

    # Off (the default and the reference), a stalled overall stage waits for the curriculum.
    _, _, model, trainer = load_split_and_model(tiny, stopping_step=3)
    model.dkc_checkpoint.zero_()
    model.rebuild_targets()
    trainer.cur_step = 100
    assert not trainer.dkc(epoch_idx=40)["switched"] and int(model.akt_stage) == 0


def test_switch_waits_for_every_pair_with_all_pairs_rule(tiny):
    run(tiny, model="RankEnsemble")
    _, _, model, trainer = load_split_and_model(tiny, switch_rule="all_pairs")
    last = (model.dkc_n_checkpoints - 1)[:, None].expand_as(model.dkc_checkpoint)
    model.dkc_checkpoint.copy_(last)
    bpr = model.teacher_names.index("BPR")
    straggler = int(torch.nonzero(model.curriculum_users).flatten()[0])
    model.dkc_checkpoint[bpr, straggler] -= 1
    assert not trainer.curriculum_done()
    model.dkc_checkpoint[bpr, straggler] += 1
    assert trainer.curriculum_done()


def test_observed_list_is_fixed_from_the_final_checkpoints_by_default(tiny):
    run(tiny, model="RankEnsemble")
    _, _, model, _ = load_split_and_model(tiny)
    assert model.observed_source == "final"
    before = model.observed_targets.clone()
    model.dkc_checkpoint.zero_()  # back to the easiest knowledge
    model.rebuild_targets()
    assert torch.equal(model.observed_targets, before)  # O_u is not part of the curriculum
    _, _, following, _ = load_split_and_model(tiny, observed_source="curriculum")
    final = (following.dkc_n_checkpoints - 1)[:, None].expand_as(following.dkc_checkpoint)
    following.dkc_checkpoint.copy_(final)
    following.rebuild_targets()
    assert torch.equal(following.observed_targets, before)  # same lists once at the last checkpoint


def test_rebuilding_the_moved_users_only_gives_the_full_rebuild(tiny):
    run(tiny, model="RankEnsemble")
    _, _, model, _ = load_split_and_model(tiny, observed_source="curriculum")
    initial = model.targets.clone()
    moved = torch.tensor([3, 1, 8])
    model.dkc_checkpoint[:, moved] = (model.dkc_n_checkpoints - 1)[:, None]
    model.rebuild_targets(moved)
    assert not torch.equal(model.targets[moved], initial[moved])  # their knowledge really moved
    targets, observed = model.targets.clone(), model.observed_targets.clone()
    model.rebuild_targets()
    assert torch.equal(model.targets, targets) and torch.equal(model.observed_targets, observed)


def test_reference_initialisation_is_normal_with_std_001(tiny):
    run(tiny, model="RankEnsemble")
    _, _, model, _ = load_split_and_model(tiny, embedding_size=64)
    std = model.item_embedding.weight.std().item()
    assert 0.008 < std < 0.012
    _, _, xavier, _ = load_split_and_model(tiny, embedding_size=64, student_init="xavier_normal")
    assert abs(xavier.item_embedding.weight.std().item() - 0.01) > 0.02  # sqrt(2 / (91 + 64)) = 0.11


def test_strict_early_stopping_does_not_count_a_tie_as_a_gain(tiny):
    run(tiny, model="RankEnsemble")
    _, (train, valid, _), _, trainer = load_split_and_model(tiny, early_stopping_strict=True)
    score, _ = trainer._valid_epoch(valid)
    trainer.best_valid_score = score
    tie, _ = trainer._valid_epoch(valid)  # same model, same score: not a strict gain
    assert tie < score and tie == pytest.approx(score, abs=1e-12)
    _, (_, valid, _), _, lenient = load_split_and_model(tiny, early_stopping_strict=False)
    score, _ = lenient._valid_epoch(valid)
    lenient.best_valid_score = score
    assert lenient._valid_epoch(valid)[0] == score  # RecBole's rule: a tie is a gain


def test_reference_profile_sets_every_reference_choice():
    import os

    from recbole_hetcomp.config import Config

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [os.path.join(root, "properties", "protocol", f) for f in ("hetcomp-paper.yaml", "hetcomp-reference.yaml")]
    config = Config(model="HetComp", dataset="ml-100k", config_file_list=files)
    expected = {
        "student_init": "normal", "student_init_std": 0.01, "epochs": 1000, "eval_step": 10,
        "dkc_start": 10, "dkc_period": 10, "valid_metric": "Recall@50", "early_stopping_strict": True,
        "stopping_step": 4, "log_denominator_floor": 1e-5, "observed_source": "final",
        "hold_early_stopping": False, "switch_rule": "mean_checkpoint", "dkc_alpha": 1.05, "dkc_decay": 0.995,
        "embedding_size": 6, "learning_rate": 0.001, "train_batch_size": 1024, "ensemble_weights": None,
        "importance_temperature": 10.0, "switch_patience": None,
    }
    assert {k: config[k] for k in expected} == expected
    assert config["eval_args"]["split"] == {"RS": [0.6, 0.2, 0.2]}  # the paper's protocol stays


@pytest.mark.parametrize("model", ["HetComp", "RRD", "CLDRD"])
def test_students_learn_the_ensemble_weighted_on_validation_by_default(model):
    from recbole_hetcomp.config import Config

    # Every student gets the same knowledge; the rank ensemble itself stays the paper's.
    assert Config(model=model, dataset="ml-100k")["ensemble_weights"] == "validation"
    assert Config(model="RankEnsemble", dataset="ml-100k")["ensemble_weights"] is None


def test_early_stopping_waits_for_the_switch_by_default_and_not_under_the_reference_profile():
    from conftest import REPO
    from recbole_hetcomp.config import Config

    reference = f"{REPO}/properties/protocol/hetcomp-reference.yaml"
    assert Config(model="HetComp", dataset="ml-100k")["hold_early_stopping"] is True
    assert Config(model="HetComp", dataset="ml-100k", config_file_list=[reference])["hold_early_stopping"] is False


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"switch_rule": "half"}, "switch_rule must be mean_checkpoint"),
        ({"observed_source": "teachers"}, "observed_source must be final"),
        ({"student_init": "uniform"}, "student_init must be xavier_normal or normal"),
        ({"student_init_std": 0}, "student_init_std must be a number > 0"),
        ({"log_denominator_floor": -1}, "log_denominator_floor must be a number >= 0"),
        ({"dkc_period": 2.5}, "dkc_period must be an integer >= 0"),
        ({"student_seed": -3}, "student_seed must be an integer >= 0"),
        ({"ensemble_weights": "equal"}, "ensemble_weights must be validation .* or a list"),
        ({"ensemble_weights": [0, 0]}, "ensemble_weights must be validation .* or a list"),
        ({"switch_patience": -1}, "switch_patience must be an integer >= 0"),
        ({"switch_patience": 2.5}, "switch_patience must be an integer >= 0"),
    ],
)
def test_bad_reference_keys_fail_before_any_data_loads(tiny, overrides, message):
    # The dataset does not even exist: the settings error must come first.
    config = dict(tiny, **TEACHERS, dataset="no-such-dataset", **overrides)
    with pytest.raises(ConfigError, match=message):
        run_recbole_hetcomp(model="HetComp", dataset="no-such-dataset", config_dict=config)


def test_student_seed_moves_the_student_not_the_split_or_the_teachers(tiny):
    import os

    base = run(tiny, epochs=6)
    stamp = {f: os.path.getmtime(os.path.join(tiny["trajectory_dir"], "tiny", f))
             for f in os.listdir(os.path.join(tiny["trajectory_dir"], "tiny"))}
    other = run(tiny, epochs=6, student_seed=7)
    again = run(tiny, epochs=6, student_seed=7)
    # Same split and teachers: the trajectory files were reused, not re-recorded.
    assert stamp == {f: os.path.getmtime(os.path.join(tiny["trajectory_dir"], "tiny", f)) for f in stamp}
    assert [r["test_result"] for r in other["rows"][:3]] == [r["test_result"] for r in base["rows"][:3]]
    assert other["test_result"] != base["test_result"]  # another initialisation and batch order
    assert again["test_result"] == other["test_result"]  # and reproducible
    assert other["config"]["student_seed"] == 7 and other["config"]["seed"] == base["config"]["seed"]


def test_teacher_weights_shape_the_targets(tiny):
    run(tiny, model="RankEnsemble")
    _, _, model, _ = load_split_and_model(tiny, ensemble_weights=[1.0, 3.0])
    _, _, equal, _ = load_split_and_model(tiny)
    from recbole_hetcomp.distill.dkc import build_targets

    users = model.curriculum_users
    weighted = build_targets(model.trajectories, model.dkc_checkpoint, model.n_items, model.k, weights=[1.0, 3.0])
    assert torch.equal(model.targets[users], weighted[users])
    assert not torch.equal(equal.targets[users], model.targets[users])
    with pytest.raises(ConfigError, match="ensemble_weights has 1 values for 2 teachers taking part"):
        load_split_and_model(tiny, ensemble_weights=[1.0])
    with pytest.raises(ConfigError, match="validation is chosen by a run"):
        load_split_and_model(tiny, ensemble_weights="validation")


def test_a_teacher_weighted_zero_is_left_out_like_an_unlisted_one(tiny):
    run(tiny, model="RankEnsemble")
    _, _, weighted, _ = load_split_and_model(tiny, ensemble_weights=[1.0, 0.0])  # EASE weighs nothing
    _, _, bpr_only, _ = load_split_and_model(tiny, teachers=["BPR"])
    assert weighted.teacher_names == bpr_only.teacher_names == ["BPR"]
    # EASE's trajectory is neither followed by DKC nor waited for by the switch.
    assert torch.equal(weighted.dkc_n_checkpoints, bpr_only.dkc_n_checkpoints)
    assert torch.equal(weighted.trajectories, bpr_only.trajectories)
    users = weighted.curriculum_users
    assert torch.equal(weighted.targets[users], bpr_only.targets[users])
    assert torch.equal(weighted.observed_targets[users], bpr_only.observed_targets[users])
    assert weighted.teachers_digest == bpr_only.teachers_digest  # a resumed run checks the same teachers
    # The result file names every teacher's weight, the one left out included
    assert run(tiny, epochs=2, ensemble_weights=[1.0, 0.0])["ensemble_weights"] == {"BPR": 1.0, "EASE": 0.0}
    assert "ensemble_weights" not in run(tiny, epochs=2)  # equal weights (these tests' default)


def test_a_run_chooses_the_students_teacher_weights_on_validation(tiny):
    searched = run(tiny, model="RankEnsemble", ensemble_weights="validation")
    student = run(tiny, epochs=2, ensemble_weights="validation")
    assert student["ensemble_weights"] == searched["ensemble_weights"]  # the rank ensemble's search, same choice
    checkpoint = torch.load(student["checkpoint_file"], weights_only=False)
    names = [r["name"] for r in student["rows"] if r["kind"] == "teacher"]
    assert checkpoint["config"]["ensemble_weights"] == [searched["ensemble_weights"][n] for n in names]
    # The summary shows the ensemble the student learns next to the equal-weight one.
    equal, weighted = [r for r in student["rows"] if r["kind"] == "ensemble"]
    assert (equal["name"], weighted["name"]) == ("Ensemble", f"Ensemble, weights {searched['ensemble_weights']}")
    assert "weights" not in equal and weighted["weights"] == searched["ensemble_weights"]
    assert weighted["test_result"] == searched["test_result"]
    table = format_summary(student["rows"]).splitlines()
    assert table[-1] == f"* weights chosen on validation: {searched['ensemble_weights']}"
    assert any(line.startswith("Ensemble, weighted* ") for line in table)
    assert weighted["parameters"] == sum(r["parameters"] for r in student["rows"]
                                         if r["kind"] == "teacher" and searched["ensemble_weights"][r["name"]] > 0)


def test_detailed_only_ablation_still_runs_the_curriculum(tiny):
    result = run(tiny, epochs=14, akt_mode="detailed")
    history = result["dkc_history"]
    assert {h["stage"] for h in history} == {1}  # the detailed loss from the start
    bpr = [h["mean_checkpoint"][0] for h in history]
    assert bpr[-1] > bpr[0]  # and the targets still move along BPR's trajectory


def test_training_items_in_csr_are_recboles_history_rows(tiny):
    from recbole_hetcomp.history import training_items_csr

    run(tiny, model="RankEnsemble")  # records the teachers
    _, (train, _, _), model, _ = load_split_and_model(tiny)
    dataset = train.dataset
    torch.manual_seed(7)
    history, _, lengths = dataset.history_item_matrix()  # RecBole's padded form (it shuffles first)
    torch.manual_seed(7)
    indptr, indices = training_items_csr(dataset)
    assert torch.equal(indptr[1:] - indptr[:-1], lengths)
    for user in range(dataset.user_num):
        assert torch.equal(indices[indptr[user]:indptr[user + 1]], history[user, : lengths[user]])
    users = torch.tensor([3, 0, 17])  # padded to the batch's heaviest user; user 0 has none
    padded = model.train_items_padded(users)
    assert padded.shape == (3, int(lengths[users].max()))
    assert torch.equal(torch.sort(padded[0]).values[-int(lengths[3]):], torch.sort(history[3, : lengths[3]]).values)
    assert not padded[1].any()
    assert model.has_training_items().tolist() == (lengths > 0).tolist()
