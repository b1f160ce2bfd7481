"""The teacher guard: weak teachers are reported, left out by default, kept on request."""

import logging
import os

import pytest

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.quick_start import run_recbole_hetcomp
from recbole_hetcomp.summary import format_summary
from recbole_hetcomp.trajectory.guard import never_improved, weak_reason
from recbole_hetcomp.trajectory.store import read_metadata, trajectory_path

from conftest import split_and_model

# A teacher that cannot learn: BPR with learning rate 0 validates the same scores every
# epoch (deterministic, a second on the tiny dataset). EASE (one validation) learns.
FROZEN_BPR = {"model": "BPR", "learning_rate": 0.0, "epochs": 3}


def ensemble(tiny, teachers, **overrides):
    config = dict(tiny, teachers=teachers, **overrides)
    return run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=config)


# --- the rules, on plain numbers ------------------------------------------------------


def test_never_improved_means_no_later_validation_beats_the_first():
    assert never_improved([0.30, 0.25, 0.20])  # best at the first validation, then declining
    assert never_improved([0.30, 0.30, 0.30])  # a model that does not move
    assert not never_improved([0.30, 0.25, 0.31])
    assert not never_improved([0.30])  # one-shot models (EASE) are validated once
    assert never_improved([1.5, 1.7], bigger=False)  # smaller-is-better metrics


def test_weak_reason_names_the_scores_and_skips_the_ratio_rule_for_older_files():
    meta = {"valid_metric": "NDCG@20", "all_validations": [[0, 0.010], [1, 0.020]], "popularity_valid_score": 0.019}
    assert weak_reason(meta, 1.1) == "best valid ndcg@20 0.0200 is not above 1.1 x the popularity ranking's 0.0190"
    assert weak_reason(dict(meta, popularity_valid_score=0.010), 1.1) is None
    assert weak_reason({**meta, "popularity_valid_score": 0.5, "all_validations": [[0, 0.6]]}, 1.1) is None
    # recorded before the guard: no popularity score, only the never-improved rule
    old = {"valid_metric": "NDCG@20", "all_validations": [[0, 0.020], [1, 0.015]]}
    assert weak_reason(old, 1.1) == (
        "best valid ndcg@20 0.0200 is its first of 2 validations: it never improved (popularity ranking not recorded)"
    )
    assert weak_reason({**old, "all_validations": [[0, 0.01], [1, 0.02]]}, 1.1) is None


# --- recording ------------------------------------------------------------------------


def test_popularity_score_is_recorded_and_equals_recbole_pop(tiny):
    run_recbole_hetcomp(model="BPR", dataset="tiny", config_dict=dict(tiny, epochs=1, record_trajectory=True))
    meta = read_metadata(trajectory_path(tiny["trajectory_dir"], "tiny", "BPR"))
    # RecBole's Pop counts an item once per training batch that holds it, so batches of one
    # interaction give the plain training counts the guard uses.
    pop = run_recbole_hetcomp(model="Pop", dataset="tiny",
                              config_dict=dict(tiny, epochs=1, train_batch_size=1, train_neg_sample_args=None))
    assert meta["popularity_valid_result"] == pop["valid_result"]
    assert meta["popularity_valid_score"] == pop["valid_result"]["ndcg@20"] > 0


# --- the pipeline ---------------------------------------------------------------------


def test_teacher_that_cannot_learn_is_left_out_by_default_and_kept_with_the_setting(tiny, caplog):
    alone = ensemble(tiny, ["EASE"])
    with caplog.at_level(logging.WARNING):
        guarded = ensemble(tiny, [FROZEN_BPR, "EASE"], ensemble_weights=[1.0, 2.0])
    warnings = [r.getMessage() for r in caplog.records if "weak teacher" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("weak teacher BPR: best valid ndcg@20 ")
    assert "never improved (popularity ranking 0." in warnings[0] and "--keep_weak_teachers=True keeps it" in warnings[0]
    kinds = {r["name"]: r["kind"] for r in guarded["rows"]}
    assert kinds == {"BPR": "teacher (left out: weak)", "EASE": "teacher", "Ensemble": "ensemble",
                     "Ensemble, weights {'EASE': 2.0}": "ensemble"}
    # the ensemble is EASE alone (its weight from the list, BPR's dropped)
    assert guarded["test_result"] == alone["test_result"]
    assert "BPR (left out: weak)" in format_summary(guarded["rows"])

    kept = ensemble(tiny, [FROZEN_BPR, "EASE"], keep_weak_teachers=True)
    assert {r["name"]: r["kind"] for r in kept["rows"]}["BPR"] == "teacher (weak, kept)"
    assert kept["test_result"] != alone["test_result"]


def test_students_get_the_same_guarded_teachers(tiny):
    from recbole_hetcomp.trajectory.teacherset import TeacherSet

    ensemble(tiny, [FROZEN_BPR, "EASE"])  # records both teachers
    config, (train, _, _) = split_and_model(dict(tiny, teachers=[FROZEN_BPR, "EASE"]), build=False)
    assert TeacherSet.load(config, train.dataset).names == ["EASE"]
    config, (train, _, _) = split_and_model(dict(tiny, teachers=[FROZEN_BPR, "EASE"], keep_weak_teachers=True), build=False)
    assert TeacherSet.load(config, train.dataset).names == ["BPR", "EASE"]


def test_all_teachers_weak_is_a_one_line_error(tiny):
    with pytest.raises(ConfigError, match=r"every teacher is weak \(BPR: .*--keep_weak_teachers=True"):
        ensemble(tiny, [FROZEN_BPR])


def test_bad_guard_ratio_is_a_one_line_error_before_any_teacher_trains(tiny):
    with pytest.raises(ConfigError, match="teacher_guard_ratio must be a number >= 0.*got 'high'"):
        ensemble(tiny, ["EASE"], teacher_guard_ratio="high")
    assert not os.path.exists(trajectory_path(tiny["trajectory_dir"], "tiny", "EASE"))
