"""The comparison benchmark end to end on a tiny dataset: every row, the report, reuse of rows."""

import csv
import json
import os
import subprocess
import sys

from conftest import REPO, write_tiny_dataset

BENCH = os.path.join(REPO, "benchmarks", "bench_compare.py")


def bench(tmp_path, *extra):
    return subprocess.run(
        [sys.executable, BENCH, "--dataset=tiny", f"--data_path={tmp_path / 'data'}",
         f"--config_files={tmp_path / 'protocol.yaml'}", f"--trajectory_dir={tmp_path / 'trajectories'}",
         f"--work={tmp_path / 'work'}", "--jobs=2", "--threads=1", "--set", "epochs=3", "--set", "eval_step=1",
         "--set", "dkc_start=1", "--set", "dkc_period=1", f"--out={tmp_path / 'docs' / 'results.md'}", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )


PROTOCOL = (
    "teachers: [BPR, MultiVAE]\nteacher_defaults: {epochs: 3, eval_step: 1}\nhetcomp_k: 20\ndetailed_long: 20\n"
    "discrepancy_depth: 20\ntrajectory_topn: 20\nrrd_k: 10\nrrd_n: 20\ncldrd_length: 20\n"
    "cldrd_ordered: [0, 5, 20]\ncldrd_period: 2\n"
)


def test_comparison_writes_every_row_and_reuses_them(tmp_path):
    write_tiny_dataset(tmp_path / "data")
    (tmp_path / "protocol.yaml").write_text(PROTOCOL)
    (tmp_path / "docs").mkdir()
    done = bench(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "docs" / "results.md").read_text()
    for name in ("BPR", "MultiVAE", "Ensemble (equal weights)", "Ensemble, weights chosen on validation",
                 "EASE (closed form, reg_weight", "HetComp", "final checkpoints only", "overall loss only", "detailed loss only",
                 "RRD", "CL-DRD", "no-KD student"):
        assert name in page
    assert "Command: `python benchmarks/bench_compare.py --dataset=tiny" in page and "torch threads = 1" in page
    report = json.loads((tmp_path / "docs" / "results.json").read_text())
    hetcomp = next(r for r in report["rows"] if r["name"] == "HetComp")
    assert hetcomp["inference_ratio"] == 1.0 and hetcomp["epochs_run"] == 3 and hetcomp["peak_rss_mb"] > 0
    no_kd = next(r for r in report["rows"] if r["name"].startswith("no-KD student"))
    assert hetcomp["epoch_b2b_s"] > 0 and no_kd["epoch_b2b_ratio"] == 1.0  # epochs timed side by side
    # Accuracy and serving goals everywhere; the cost goals against the reference code are ml-1m's.
    assert [g["goal"][:20] for g in report["goals"]] == [
        "HetComp above every ", "HetComp within 5% of", "at least 20x cheaper"]
    with open(tmp_path / "docs" / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(report["rows"])

    # Notes under the marker survive a rerun; a rerun computes nothing new.
    with open(tmp_path / "docs" / "results.md", "a") as f:
        f.write("Our reading of these numbers.\n")
    again = bench(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "computing" not in again.stdout
    assert (tmp_path / "docs" / "results.md").read_text().endswith("Our reading of these numbers.\n")
    invocations = json.loads((tmp_path / "work" / "invocations.json").read_text())
    assert len(invocations) == 2 and invocations[1]["rows_computed"] == []

    # A row computed under another budget is never mixed in silently.
    other = bench(tmp_path, "--set", "learning_rate=0.01")
    assert other.returncode != 0
    assert "was computed with other settings" in other.stderr and "Traceback" not in other.stderr

    # Invocations sharing a work folder split the rows: a row another one has claimed is skipped.
    (tmp_path / "work" / "RRD.json").unlink()
    (tmp_path / "work" / "RRD.json.lock").write_text("12345")
    shared = bench(tmp_path)
    assert shared.returncode != 0 and "skipped: RRD" in shared.stdout
    assert "rows not computed yet (another invocation is on them): RRD" in shared.stderr
    partial = bench(tmp_path, "--allow_missing")  # a page now, the rest when it is done
    assert partial.returncode == 0, partial.stderr[-3000:]
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "Rows not computed yet, so missing below: RRD." in page and "| RRD |" not in page


def test_a_failing_row_is_reported_at_once_in_one_line_while_the_other_row_finishes(tmp_path):
    write_tiny_dataset(tmp_path / "data")
    (tmp_path / "protocol.yaml").write_text(PROTOCOL)
    # Two no-KD rows side by side (--jobs=2); a negative learning rate fails its row at once.
    run = bench(tmp_path, "--only=no-KD", "--lrs=0.01,-1", "--set", "epochs=100", "--set", "eval_step=100")
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    failed = [line for line in lines if line.startswith("failed:")]
    assert failed == ["failed: no-KD student BPR d6 lr -1: ValueError: Invalid learning rate: -1.0"]
    good = "done: no-KD student BPR d6 lr 0.01"
    assert good in lines and lines.index(failed[0]) < lines.index(good)  # reported while the other ran
    assert (tmp_path / "work" / "no-KD_student_BPR_d6_lr_0.01.json").exists()
    traceback = (tmp_path / "work" / "no-KD_student_BPR_d6_lr_-1.error.txt").read_text()
    assert traceback.startswith("Traceback") and "Invalid learning rate" in traceback
    assert not list((tmp_path / "work").glob("*.lock"))
    assert run.stderr.startswith("1 row(s) failed: no-KD student BPR d6 lr -1: ValueError: Invalid learning rate: -1.0. ")
    assert "Traceback" not in run.stderr
    invocations = json.loads((tmp_path / "work" / "invocations.json").read_text())
    assert invocations[-1]["rows_computed"] == ["no-KD student BPR d6 lr 0.01"]
    assert list(invocations[-1]["rows_failed"]) == ["no-KD student BPR d6 lr -1"]
