"""Bad input: a clear one-line error and a non-zero exit, before hours are spent, and nothing lost."""

import os

import pytest

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.quick_start import run_recbole_hetcomp
from recbole_hetcomp.trajectory.store import TrajectoryError, trajectory_path

from conftest import one_line_error, write_tiny_dataset


def run(tiny, model="HetComp", **overrides):
    config = dict(tiny, teachers=["BPR", "EASE"], teacher_defaults={"epochs": 3}, epochs=2, hetcomp_k=20,
                  discrepancy_depth=10, detailed_long=10, detailed_short=5)
    config.update(overrides)
    return run_recbole_hetcomp(model=model, dataset="tiny", config_dict=config)


def test_cli_unknown_teacher_lists_close_names(run_cli, tiny):
    line = one_line_error(run_cli(
        "--model=HetComp", "--dataset=tiny", f"--data_path={tiny['data_path']}", "--teachers=['BPR','LightGNC']", "--hetcomp_k=20"
    ))
    assert "teacher: unknown model 'LightGNC'" in line and "LightGCN" in line


def test_cli_empty_teacher_list(run_cli, tiny):
    line = one_line_error(run_cli("--model=RankEnsemble", "--dataset=tiny", f"--data_path={tiny['data_path']}", "--teachers=[]"))
    assert "teachers is empty" in line


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hetcomp_k": 0}, "hetcomp_k must be a positive integer"),
        ({"hetcomp_k": 10_000, "trajectory_topn": 10_000}, "not smaller than the catalogue"),
        ({"trajectory_checkpoints": 0}, r"trajectory_checkpoints \(T\) must be an integer >= 1"),
        ({"detailed_loss_weight": -0.1}, "detailed_loss_weight must be >= 0"),
        ({"dkc_alpha": -1.0}, "dkc_alpha must be > 0"),
        ({"discrepancy_depth": 200}, "discrepancy_depth must be in"),
        ({"trajectory_topn": 10}, "needs teachers' lists of at least 20 items"),
        ({"trajectory_checkpoint_rule": "epochs"}, "needs trajectory_checkpoint_epochs"),
        ({"topk": [200], "valid_metric": "NDCG@200"}, "topk 200 is not smaller than the catalogue"),
        ({"topk": [5, 10]}, "valid_metric NDCG@20 is not among the reported metrics"),
    ],
)
def test_bad_settings_fail_before_any_teacher_trains(tiny, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(tiny, **overrides)
    assert not os.path.exists(trajectory_path(tiny["trajectory_dir"], "tiny", "BPR"))


def test_unwritable_trajectory_dir_fails_before_training(tiny, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot be created"):
        run(tiny, trajectory_dir=str(blocker / "trajectories"))


def test_a_file_where_recbole_writes_its_log_folder_is_named_not_a_traceback(run_cli, tiny, workdir):
    (workdir / "log").write_text("a user's notes, not a folder")
    line = one_line_error(run_cli("--model=BPR", "--dataset=tiny", f"--data_path={tiny['data_path']}", "--epochs=1"))
    assert "cannot create the folder log/BPR: log is a file, not a folder" in line
    assert (workdir / "log").read_text() == "a user's notes, not a folder"


def test_users_with_fewer_training_items_than_the_observed_list(tiny, tmp_path):
    data_path = write_tiny_dataset(tmp_path / "few", per_user=6)
    result = run(dict(tiny, data_path=data_path), observed_k=10, topk=[5, 10], valid_metric="NDCG@10")
    assert result["rows"][-1]["name"] == "HetComp"


def test_failed_run_keeps_existing_good_trajectory(tiny):
    run(tiny, model="RankEnsemble")
    path = trajectory_path(tiny["trajectory_dir"], "tiny", "BPR")
    before = open(path, "rb").read()
    with pytest.raises(ConfigError, match="hetcomp_k must be a positive integer"):
        run(tiny, hetcomp_k=0)
    with pytest.raises(TrajectoryError, match="was recorded on another dataset split"):
        run(tiny, seed=5)  # another split: refused, not overwritten
    assert open(path, "rb").read() == before


def test_single_user_and_single_item_datasets(tiny, tmp_path):
    (tmp_path / "one_user").mkdir()
    (tmp_path / "one_user" / "one_user.inter").write_text(
        "user_id:token\titem_id:token\n" + "".join(f"u1\ti{i}\n" for i in range(1, 30)))
    (tmp_path / "one_item").mkdir()
    (tmp_path / "one_item" / "one_item.inter").write_text(
        "user_id:token\titem_id:token\n" + "".join(f"u{u}\ti1\n" for u in range(1, 30)))
    for name, message in (("one_user", "interacted with every item"), ("one_item", "has 1 item")):
        with pytest.raises(ConfigError, match=message):
            run_recbole_hetcomp(model="HetComp", dataset=name,
                                config_dict=dict(tiny, data_path=str(tmp_path), topk=[5], valid_metric="NDCG@5"))


def test_unknown_akt_mode(tiny):
    with pytest.raises(ConfigError, match="akt_mode must be"):
        run(tiny, akt_mode="sometimes")


def test_ctrl_c_stops_with_one_line_saying_what_was_kept(tiny, workdir):
    import signal
    import subprocess
    import sys
    import time

    from conftest import QUICK, SCRIPT

    # The second teacher trains long enough to be interrupted once the first is recorded.
    teachers = "['BPR', {'model': 'BPR', 'name': 'SlowBPR', 'epochs': 100000, 'stopping_step': 100000}]"
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, *QUICK, "--model=HetComp", "--dataset=tiny", f"--data_path={tiny['data_path']}",
         f"--trajectory_dir={tiny['trajectory_dir']}", f"--teachers={teachers}", "--hetcomp_k=20",
         "--discrepancy_depth=20", "--teacher_defaults={'epochs': 3}"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As in a terminal: a test run started in the background (`cmd &` in a script) hands
        # its children SIGINT ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = workdir / "trajectories" / "tiny" / "BPR.safetensors"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[1][-2000:]
    time.sleep(1.0)  # well inside the second teacher's training
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    assert len(lines) == 1, stderr[-2000:]
    assert "interrupted (teacher 2 of 2: SlowBPR): 1 of 2 teacher trajectories kept in" in lines[0]
    assert "(BPR); run the same command again to resume" in lines[0]
