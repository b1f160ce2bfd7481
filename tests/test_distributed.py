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


def test_buffers_are_sent_between_ranks_only_for_models_with_running_statistics(tmp_path):
    # A student's buffers (trajectories, targets) are the same on every rank: re-sending
    # them before every batch made an ml-1m epoch on 2 processes 10x slower.
    import torch

    from recbole_hetcomp.compat import patch_recbole_ddp

    patch_recbole_ddp()
    import recbole.trainer.trainer as recbole_trainer

    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        student = torch.nn.Linear(3, 2)
        student.register_buffer("targets", torch.zeros(10, 4, dtype=torch.long))
        with_norm = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        assert recbole_trainer.DistributedDataParallel(student, device_ids=[0]).broadcast_buffers is False
        assert recbole_trainer.DistributedDataParallel(with_norm, device_ids=[0]).broadcast_buffers is True
    finally:
        torch.distributed.destroy_process_group()


def test_the_curriculum_checksum_moves_with_any_checkpoint_or_target():
    import torch

    from recbole_hetcomp.trainer.hetcomp import curriculum_checksum

    checkpoint = torch.tensor([[0, 1, 2], [1, 1, 0]])
    targets = torch.tensor([[5, 7], [7, 5], [3, 0]])
    base = curriculum_checksum(checkpoint, targets)
    swapped = targets.clone()
    swapped[0] = torch.tensor([7, 5])  # same items, other order
    moved = checkpoint.clone()
    moved[1, 2] = 1
    assert not torch.equal(curriculum_checksum(checkpoint, swapped), base)
    assert not torch.equal(curriculum_checksum(moved, targets), base)
    assert torch.equal(curriculum_checksum(checkpoint.clone(), targets.clone()), base)
