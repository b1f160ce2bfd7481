"""RecBole's distributed engine (--nproc) on a machine without GPUs: gloo on CPU."""

import json

import pytest

ARGS = [
    "--model=HetComp", "--dataset=tiny", "--epochs=12", "--teachers=['BPR','EASE']", "--teacher_defaults={'epochs':5}",
    "--hetcomp_k=20", "--discrepancy_depth=10", "--detailed_long=10", "--detailed_short=5", "--dkc_start=2",
    "--dkc_period=2", "--eval_step=2",
]


def test_two_processes_match_one_process(run_cli, tiny, tmp_path):
    common = [*ARGS, f"--data_path={tiny['data_path']}", f"--trajectory_dir={tmp_path / 'trajectories'}"]
    two = run_cli(*common, "--nproc=2", "--port=29517", f"--result_file={tmp_path / 'two.json'}")
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_cli(*common, f"--result_file={tmp_path / 'one.json'}")  # reuses the teachers rank 0 wrote
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    # the curriculum is computed on every rank from the synchronised student: same as one process
    assert [h["mean_checkpoint"] for h in b["dkc_history"]] == [h["mean_checkpoint"] for h in a["dkc_history"]]
    for metric, value in a["test_result"].items():
        assert b["test_result"][metric] == pytest.approx(value, abs=0.01)
    # one file per teacher (beside them only the hidden lock files of the one-process run)
    visible = sorted(p.name for p in (tmp_path / "trajectories" / "tiny").iterdir() if not p.name.startswith("."))
    assert visible == ["BPR.safetensors", "EASE.safetensors"]
