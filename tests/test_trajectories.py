"""Teachers' trajectories: recording, the store, fingerprints, and the rank ensemble."""

import logging
import os

import numpy as np
import pytest
import torch

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.quick_start import run_recbole_hetcomp
from recbole_hetcomp.summary import format_summary
from recbole_hetcomp.history import padded_rows
from recbole_hetcomp.trajectory.recorder import TrajectoryRecorder, select_checkpoints
from recbole_hetcomp.trajectory.store import (
    Trajectory,
    TrajectoryError,
    load_trajectory,
    read_metadata,
    save_trajectory,
    trajectory_path,
)
from recbole_hetcomp.trajectory.teacherset import check_weight_list, parse_teachers

from conftest import split_and_model


def record(tiny, model, **overrides):
    config = dict(tiny, record_trajectory=True, **overrides)
    result = run_recbole_hetcomp(model=model, dataset="tiny", config_dict=config)
    path = trajectory_path(tiny["trajectory_dir"], "tiny", overrides.get("trajectory_name") or model)
    return result, path


def dataset_splits(tiny, model="BPR"):
    return split_and_model(dict(tiny), model, build=False)


def test_progress_rule_picks_first_validation_reaching_each_fraction_of_best():
    scores = [0.05, 0.12, 0.2, 0.31, 0.35, 0.4, 0.39]
    # best 0.4 at index 5; 1/4, 2/4, 3/4 of it: 0.1, 0.2, 0.3
    assert select_checkpoints(scores, 4, "progress") == [1, 2, 3, 5]


def test_ties_take_the_later_best_like_recbole_early_stopping():
    assert select_checkpoints([0.1, 0.3, 0.3], 1) == [2]


def test_even_and_epochs_rules_and_duplicates_collapse():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert select_checkpoints(scores, 3, "even") == [0, 2, 4]
    # epoch 15 -> the validation at epoch 20; 35 is past every validation before the best
    assert select_checkpoints(scores, 3, "epochs", epochs=[0, 10, 20, 30, 40], explicit_epochs=[15, 35]) == [2, 4]
    # a teacher that is good at once: the fractions all hit the first validation
    assert select_checkpoints([0.9, 0.95, 1.0], 4) == [0, 2]
    # one validation (one-shot models such as EASE): a single checkpoint
    assert select_checkpoints([0.3], 4) == [0]


def test_bad_rule_settings_are_clear():
    with pytest.raises(ConfigError, match="must be one of"):
        select_checkpoints([0.1], 2, "sometimes")
    with pytest.raises(ConfigError, match=">= 1"):
        select_checkpoints([0.1], 0)
    with pytest.raises(ConfigError, match="no validation"):
        select_checkpoints([], 4)


# --- recording -----------------------------------------------------------------------


def test_recorded_lists_hold_no_training_item_and_no_padding(tiny):
    result, path = record(tiny, "BPR", epochs=6, learning_rate=0.01)
    config, (train, valid, test) = dataset_splits(tiny)
    trajectory = load_trajectory(path)
    history = train.dataset.history_item_matrix()[0].numpy()
    assert trajectory.n_checkpoints >= 2
    assert trajectory.meta["checkpoint_epochs"][-1] == max(
        (e for e, s in trajectory.meta["all_validations"] if s == result["best_valid_score"])
    )
    for topn in trajectory.topn:
        for u in range(1, topn.shape[0]):
            listed = topn[u][topn[u] != 0]
            assert len(listed) == len(set(listed))
            assert not set(listed) & set(history[u][history[u] != 0])
            # padding only ever at the end (a tiny catalogue has fewer than N unobserved items)
            assert (topn[u][: len(listed)] != 0).all()
    for observed in trajectory.observed:
        for u in range(1, observed.shape[0]):
            ranked = observed[u][observed[u] != 0]
            assert set(ranked) <= set(history[u][history[u] != 0])
    assert (trajectory.topn[:, 0] == 0).all()


def test_recorder_pads_histories_per_batch_like_recbole_pads_them_for_all_users(tiny):
    config, (train, valid, test) = dataset_splits(tiny)
    # Same random stream as RecBole's matrix (it lists items in a random order): teachers
    # recorded before this layout record the same again.
    torch.manual_seed(0)
    padded, _, lengths = train.dataset.history_item_matrix()
    after_recbole = torch.rand(1)
    torch.manual_seed(0)
    recorder = TrajectoryRecorder(train.dataset)
    assert torch.equal(torch.rand(1), after_recbole)
    users = torch.tensor([3, 1, 7, 0, 2])
    batch = padded_rows(recorder.train_indptr, recorder.train_indices, users)
    assert batch.shape == (5, int(lengths[users].max()))
    assert torch.equal(batch, padded[users][:, : batch.shape[1]])
    assert torch.equal(padded_rows(recorder.train_indptr, recorder.train_indices, torch.arange(len(padded))), padded)


def test_recall_from_recorded_final_checkpoint_equals_recbole_validation(tiny):
    result, path = record(tiny, "BPR", epochs=5, learning_rate=0.01)
    config, (train, valid, test) = dataset_splits(tiny)
    final = load_trajectory(path).topn[-1]
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    users = valid.dataset.inter_feat[uid].numpy()
    items = valid.dataset.inter_feat[iid].numpy()
    recalls = []
    for u in np.unique(users):
        relevant = set(items[users == u])
        recalls.append(len(relevant & set(final[u][:10])) / len(relevant))
    assert round(float(np.mean(recalls)), 4) == result["valid_result"]["recall@10"]


def test_recording_does_not_change_training(tiny):
    plain = run_recbole_hetcomp(model="BPR", dataset="tiny", config_dict=dict(tiny, epochs=3))
    recorded, _ = record(tiny, "BPR", epochs=3)
    assert plain["test_result"] == recorded["test_result"]
    # and the result file keeps the settings the training read, not every default the
    # trajectory's metadata copies (a knowledge-graph key BPR never reads)
    assert recorded["resolved_config"]["learning_rate"] == plain["resolved_config"]["learning_rate"]
    assert "kg_reverse_r" not in recorded["resolved_config"] and "kg_reverse_r" not in plain["resolved_config"]


def test_one_shot_model_yields_one_checkpoint(tiny):
    _, path = record(tiny, "EASE")
    trajectory = load_trajectory(path)
    assert trajectory.n_checkpoints == 1
    assert trajectory.meta["checkpoint_epochs"] == [0]


# --- the store -----------------------------------------------------------------------


def small_trajectory():
    rng = np.random.default_rng(0)
    topn = rng.integers(1, 20, size=(3, 5, 4)).astype(np.int32)
    observed = rng.integers(0, 20, size=(3, 5, 2)).astype(np.int32)
    meta = {"fingerprint": {"dataset": "x", "n_users": 5, "n_items": 20, "settings": {"seed": 1}},
            "checkpoint_epochs": [1, 2, 3], "teacher_config": {"model": "BPR"}}
    return Trajectory("BPR", topn, observed, meta)


def test_store_round_trip_without_pickle(tmp_path):
    path = str(tmp_path / "x" / "BPR.safetensors")
    save_trajectory(path, small_trajectory())
    loaded = load_trajectory(path, expected_fingerprint=small_trajectory().meta["fingerprint"])
    assert np.array_equal(loaded.topn, small_trajectory().topn)
    assert np.array_equal(loaded.observed, small_trajectory().observed)
    assert loaded.meta["checkpoint_epochs"] == [1, 2, 3]
    assert read_metadata(path)["teacher"] == "BPR"
    # plain arrays: readable by safetensors alone, no pickle involved
    from safetensors.numpy import load_file

    assert set(load_file(path)) == {"topn", "observed"}
    assert not [f for f in os.listdir(tmp_path / "x") if f.startswith(".tmp-")]


def test_fingerprint_mismatch_says_what_differs(tmp_path):
    path = str(tmp_path / "BPR.safetensors")
    save_trajectory(path, small_trajectory())
    other = dict(small_trajectory().meta["fingerprint"], settings={"seed": 2})
    with pytest.raises(TrajectoryError, match=r"another dataset split \(seed: file has 1, this run has 2\).*retrain BPR"):
        load_trajectory(path, expected_fingerprint=other)


def test_truncated_or_reshaped_files_fail_clearly(tmp_path):
    path = tmp_path / "BPR.safetensors"
    save_trajectory(str(path), small_trajectory())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TrajectoryError, match="damaged"):
        load_trajectory(str(path))
    wrong = small_trajectory()
    wrong.meta["fingerprint"]["n_users"] = 7
    save_trajectory(str(path), wrong)
    with pytest.raises(TrajectoryError, match="inconsistent"):
        load_trajectory(str(path))


def test_teacher_list_errors():
    with pytest.raises(ConfigError, match="teachers is empty"):
        parse_teachers([])
    with pytest.raises(ConfigError, match="teacher: unknown model 'LigthGCN'.*LightGCN"):
        parse_teachers(["BPR", "LigthGCN"])
    with pytest.raises(ConfigError, match="appears twice"):
        parse_teachers(["BPR", {"model": "BPR"}])
    assert parse_teachers(["BPR", {"model": "BPR", "name": "BPR-d8", "embedding_size": 8}]) == [
        ("BPR", "BPR", {}), ("BPR-d8", "BPR", {"embedding_size": 8})
    ]


def test_trajectory_of_another_split_is_refused_by_the_pipeline(tiny):
    record(tiny, "BPR", epochs=2)
    with pytest.raises(TrajectoryError, match="another dataset split"):
        run_recbole_hetcomp(
            model="RankEnsemble", dataset="tiny", config_dict=dict(tiny, teachers=["BPR"], seed=99)
        )


# --- the ensemble --------------------------------------------------------------------


def test_ensemble_of_one_teacher_equals_the_teacher(tiny):
    teacher, _ = record(tiny, "BPR", epochs=5, learning_rate=0.01)
    ensemble = run_recbole_hetcomp(
        model="RankEnsemble", dataset="tiny", config_dict=dict(tiny, teachers=["BPR"])
    )
    assert ensemble["valid_result"] == teacher["valid_result"]
    for k in (10, 20):
        assert ensemble["test_result"][f"ndcg@{k}"] == teacher["test_result"][f"ndcg@{k}"]


def test_ensemble_trains_missing_teachers_then_reuses_them(tiny):
    config = dict(tiny, teachers=["BPR", {"model": "EASE", "reg_weight": 10.0}], teacher_defaults={"epochs": 2})
    first = run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=config)
    paths = [trajectory_path(tiny["trajectory_dir"], "tiny", n) for n in ("BPR", "EASE")]
    stamps = [os.stat(p).st_mtime_ns for p in paths]
    second = run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=config)
    assert [os.stat(p).st_mtime_ns for p in paths] == stamps
    assert first["test_result"] == second["test_result"]
    assert [r["name"] for r in second["rows"]] == ["BPR", "EASE", "Ensemble"]
    assert load_trajectory(paths[1]).meta["teacher_config"]["model_properties"]["reg_weight"] == 10.0


def test_a_reused_teacher_recorded_with_other_settings_is_reported_in_one_line(tiny, caplog):
    # A teacher may be recorded in a run of its own; a student run that gives it other
    # settings (an edited override, teacher_defaults or model YAML) reuses the file but says so.
    config = dict(tiny, teachers=[{"model": "BPR", "learning_rate": 0.01}], teacher_defaults={"epochs": 2},
                  keep_weak_teachers=True)  # (two epochs teach BPR little)
    run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=config)
    path = trajectory_path(tiny["trajectory_dir"], "tiny", "BPR")
    stamp = os.stat(path).st_mtime_ns

    def notes(**changes):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=dict(config, **changes))
        assert os.stat(path).st_mtime_ns == stamp  # reused, never re-recorded behind the user's back
        return [r.getMessage() for r in caplog.records if "teacher BPR reused" in r.getMessage()]

    # how the evaluation is reported and what is shown do not make another teacher
    assert notes(topk=[10, 20, 50, 5], metrics=["Recall", "NDCG", "Precision"], show_progress=True) == []
    assert notes(teachers=[{"model": "BPR", "learning_rate": 0.001}]) == [
        f"teacher BPR reused from {path} was recorded with learning_rate=0.01 where this run's settings give "
        f"learning_rate=0.001: delete the file (or use another trajectory_dir) to record it with this run's settings"
    ]
    (note,) = notes(teacher_defaults={"epochs": 3, "embedding_size": 8})
    assert note.startswith(f"teacher BPR reused from {path} was recorded with embedding_size=64 where this run's "
                           f"settings give embedding_size=8 (and 1 more: epochs): delete the file")


def test_ensemble_weights_must_match_teacher_count(tiny):
    record(tiny, "BPR", epochs=2)
    with pytest.raises(ConfigError, match="ensemble_weights has 2 values for 1 teacher taking part"):
        run_recbole_hetcomp(
            model="RankEnsemble", dataset="tiny", config_dict=dict(tiny, teachers=["BPR"], ensemble_weights=[1.0, 2.0])
        )


@pytest.mark.parametrize("weights, n_teachers, message", [
    ([1, 0.5], 2, None),
    ((0, 2), None, None),  # the form alone, before the guard has chosen the teachers
    ([0, 0], 2, "must be validation .* got \\[0, 0\\]"),
    ([-1, 2], 2, "one weight >= 0 per teacher"),
    ([True, 1], 2, "must be validation"),
    ([], None, "must be validation"),
    ("equal", None, "must be validation"),
    ([1.0], 2, "has 1 values for 2 teachers taking part"),
])
def test_one_rule_for_ensemble_weights_everywhere(weights, n_teachers, message):
    if message is None:
        assert check_weight_list(weights, n_teachers) == [float(w) for w in weights]
    else:
        with pytest.raises(ConfigError, match=message):
            check_weight_list(weights, n_teachers)


def test_ensemble_weights_chosen_on_validation_down_weight_a_useless_teacher(tiny):
    teachers = ["BPR", {"model": "BPR", "name": "untrained", "learning_rate": 0.0}]
    # keep_weak_teachers: the guard would otherwise leave the untrained teacher out itself
    config = dict(tiny, teachers=teachers, teacher_defaults={"epochs": 8, "learning_rate": 0.01},
                  keep_weak_teachers=True)
    equal = run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=config)
    tuned = run_recbole_hetcomp(model="RankEnsemble", dataset="tiny",
                                config_dict=dict(config, ensemble_weights="validation"))
    weights = tuned["ensemble_weights"]
    assert weights["untrained"] < weights["BPR"]
    assert tuned["best_valid_score"] >= equal["best_valid_score"]
    assert tuned["rows"][-1]["name"].startswith("Ensemble, weights")
    assert format_summary(tuned["rows"]).splitlines()[-1] == f"* weights chosen on validation: {weights}"
    # Weights given in the config are shown as such, not as chosen on validation.
    given = run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=dict(config, ensemble_weights=[1.0, 0.5]))
    assert given["rows"][-1]["weights"] == {"BPR": 1.0, "untrained": 0.5}
    assert format_summary(given["rows"]).splitlines()[-1] == "* weights as configured: {'BPR': 1.0, 'untrained': 0.5}"
    # A teacher weighted 0 is not served: the weighted ensemble costs its other members'
    # serving time plus this run's own (the aggregation), and holds only their parameters.
    bpr_only = run_recbole_hetcomp(model="RankEnsemble", dataset="tiny", config_dict=dict(config, ensemble_weights=[1.0, 0.0]))
    bpr, untrained, equal_row, weighted_row = bpr_only["rows"]
    assert weighted_row["parameters"] == bpr["parameters"] < equal_row["parameters"]
    assert weighted_row["inference_time_s"] == pytest.approx(bpr["inference_time_s"] + bpr_only["inference_time_s"], abs=2e-4)
