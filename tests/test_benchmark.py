"""The comparison benchmark end to end on a tiny dataset: every row, the report, reuse of rows."""

import csv
import json
import os
import subprocess
import sys

from conftest import REPO, write_tiny_dataset

BENCH = os.path.join(REPO, "benchmarks", "bench_compare.py")
REPORT = os.path.join(REPO, "benchmarks", "compare_report.py")


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

    # The page is rebuilt from the work folder alone: the same tables and summary, and neither
    # torch nor RecBole imported (nothing trained, loaded or timed).
    argv = ["compare_report.py", f"--work={tmp_path / 'work'}", f"--out={tmp_path / 'rebuilt' / 'results.md'}"]
    rebuild = (f"import runpy, sys; sys.path.insert(0, {os.path.dirname(REPORT)!r}); sys.argv = {argv!r}; "
               f"runpy.run_path({REPORT!r}, run_name='__main__'); "
               "assert 'torch' not in sys.modules and 'recbole' not in sys.modules, 'torch or recbole imported'")
    rebuilt = subprocess.run([sys.executable, "-c", rebuild], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (tmp_path / "rebuilt" / "results.md").read_text() == page
    assert json.loads((tmp_path / "rebuilt" / "results.json").read_text()) == report

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
    # Nor is one whose property file says something else today, under the same --set values.
    (tmp_path / "protocol.yaml").write_text(PROTOCOL.replace("rrd_k: 10", "rrd_k: 5"))
    edited = bench(tmp_path)
    assert edited.returncode != 0 and "Traceback" not in edited.stderr
    assert "RRD.json was computed with rrd_k=10; the row now runs with rrd_k=5" in edited.stderr, edited.stderr[-2000:]
    (tmp_path / "protocol.yaml").write_text(PROTOCOL)

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


def teacher_logs(work):
    """{model: process ids of the runs that trained it}, read from RecBole's log file names."""
    return {model: sorted(int(p.name.split("-")[-2]) for p in (work / "log" / model).glob("*.log"))
            for model in ("BPR", "MultiVAE", "RankEnsemble") if (work / "log" / model).exists()}


def test_only_distillation_rows_still_record_the_teachers_once_before_them(tmp_path):
    write_tiny_dataset(tmp_path / "data")
    (tmp_path / "protocol.yaml").write_text(PROTOCOL)
    work = tmp_path / "work"
    # Two distillation rows side by side, no teachers recorded yet, the teachers row not named.
    run = bench(tmp_path, "--only=RRD,CL-DRD")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("computing Teachers and ensemble first, alone")
    assert lines[1] == "done: Teachers and ensemble" and sorted(lines[2:]) == ["done: CL-DRD", "done: RRD"]
    # Each teacher trained once, by the teachers row's own process.
    logs = teacher_logs(work)
    assert len(logs["BPR"]) == len(logs["MultiVAE"]) == 1
    assert logs["BPR"] == logs["MultiVAE"] == logs.get("RankEnsemble")
    # ... and its trajectory file was complete before either student row started.
    files = sorted((tmp_path / "trajectories" / "tiny").glob("*.safetensors"))
    assert [f.name for f in files] == ["BPR.safetensors", "MultiVAE.safetensors"]
    starts = [json.loads((work / f"{row}.json").read_text())["row_started_at"] for row in ("RRD", "CL-DRD")]
    assert max(f.stat().st_mtime for f in files) <= min(starts)

    # Trajectories gone, the teachers row kept: it records them again, alone, before HetComp.
    for f in files:
        f.unlink()
    again = bench(tmp_path, "--only=HetComp")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines() == [
        "computing Teachers and ensemble first, alone (its teachers are gone: re-recording them), "
        "then 1 rows, 2 at a time: HetComp", "done: Teachers and ensemble", "done: HetComp"]
    logs = teacher_logs(work)
    assert len(logs["BPR"]) == len(logs["MultiVAE"]) == 2
    assert logs["BPR"] == logs["MultiVAE"] == logs["RankEnsemble"]
    started = json.loads((work / "HetComp.json").read_text())["row_started_at"]
    assert all(f.stat().st_mtime <= started for f in files)


def test_a_report_without_measurements_asks_for_the_command_that_takes_them(tmp_path):
    (tmp_path / "work").mkdir()
    run = subprocess.run([sys.executable, REPORT, f"--work={tmp_path / 'work'}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"no measurements.json in {tmp_path / 'work'}: run benchmarks/bench_compare.py there")
