"""The multi-seed comparison on a tiny dataset: shared teachers, one file per run, reuse, report."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, write_tiny_dataset

BENCH = os.path.join(REPO, "benchmarks", "bench_seeds.py")
STUDENT = ["--set", "epochs=4", "--set", "eval_step=1", "--set", "dkc_start=1", "--set", "dkc_period=1"]


def bench(tmp_path, *extra):
    return subprocess.run(
        [sys.executable, BENCH, "--dataset=tiny", f"--data_path={tmp_path / 'data'}",
         f"--config_files={tmp_path / 'protocol.yaml'}", f"--work={tmp_path / 'work'}", f"--out={tmp_path / 'results'}",
         "--jobs=2", "--threads=1", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )


def test_seeds_share_teachers_write_one_file_per_run_and_are_reused(tmp_path):
    write_tiny_dataset(tmp_path / "data")
    (tmp_path / "protocol.yaml").write_text(
        "teachers: [BPR, EASE]\nteacher_defaults: {epochs: 4, eval_step: 1}\nhetcomp_k: 20\ndetailed_long: 20\n"
        "discrepancy_depth: 20\ntrajectory_topn: 20\n"
    )
    rows = ["--rows", "ensemble,hetcomp,final-only", "--seeds", "1", "2", *STUDENT]
    done = bench(tmp_path, *rows)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    files = sorted(str(p.relative_to(tmp_path / "results")) for p in (tmp_path / "results").rglob("*.json"))
    assert files == ["ensemble/run.json", "final-only/seed1.json", "final-only/seed2.json",
                     "hetcomp/seed1.json", "hetcomp/seed2.json"]
    runs = [json.loads((tmp_path / "results" / f).read_text()) for f in files]
    assert len({r["trajectory_hash"] for r in runs}) == 1  # one set of teachers for every run
    assert len({r["code"] for r in runs}) == 1 and runs[0]["code"]  # the commit they ran from
    one, two = (json.loads((tmp_path / "results" / "hetcomp" / f"seed{k}.json").read_text()) for k in (1, 2))
    assert (one["student_seed"], two["student_seed"]) == (1, 2)
    assert one["test_result"] != two["test_result"]  # the seed moves the student
    assert one["curriculum"] and "ndcg@20" in one["valid_history"][0]  # every metric per validation
    assert one["settings"]["overrides"]["epochs"] == 300 and one["settings"]["set"]["epochs"] == 4  # --set wins
    assert one["inference_time_s"] > 0  # serving time of the student, for the accuracy/serving figure
    teachers = json.loads((tmp_path / "results" / "ensemble" / "run.json").read_text())["teacher_checkpoints"]
    bpr = teachers["BPR"]
    assert len(bpr["curve"]) == bpr["validations"] > 1 and bpr["popularity_valid_score"] > 0  # the teacher's curve
    assert [e for e, _ in bpr["curve"] if e in bpr["epochs"]] == bpr["epochs"]  # kept checkpoints lie on it
    assert bpr["recorded_on"]["cpu_capability"] and bpr["recorded_on"]["torch"]  # where, should a re-recording differ

    again = bench(tmp_path, *rows)
    assert again.returncode == 0 and again.stdout.count(": kept") == 4, again.stdout

    # A file computed under other settings is refused, not silently mixed in.
    changed = bench(tmp_path, "--rows", "ensemble,hetcomp", "--seeds", "1", *STUDENT[:-2], "--set", "dkc_period=2")
    assert changed.returncode != 0 and "computed under other settings" in changed.stderr

    # So is one whose row resolves to other settings today: same files named, other contents
    # (a protocol file or a model YAML default edited since), every setting compared...
    protocol = (tmp_path / "protocol.yaml").read_text()
    (tmp_path / "protocol.yaml").write_text(protocol + "learning_rate: 0.01\n")
    stale = bench(tmp_path, *rows)
    assert stale.returncode != 0 and "was computed with learning_rate=0.001; its row now runs with learning_rate=0.01" \
        in stale.stderr, stale.stderr[-2000:]
    # ... and, in files written before they held every setting, the essentials they recorded.
    for path in (tmp_path / "results").rglob("*.json"):
        payload = json.loads(path.read_text())
        # the settings each run read: the student's K, not in the ensemble's file (it never read it)
        assert payload["resolved_config"].get("hetcomp_k") == (None if payload["slug"] == "ensemble" else 20)
        path.write_text(json.dumps({k: v for k, v in payload.items() if k != "resolved_config"}))
    legacy = bench(tmp_path, *rows)
    assert legacy.returncode != 0 and "learning_rate=0.01" in legacy.stderr, legacy.stderr[-2000:]
    (tmp_path / "protocol.yaml").write_text(protocol)
    assert bench(tmp_path, *rows).stdout.count(": kept") == 4

    # Teachers that are not the results' (other code, another machine's float kernels) are refused, with the way out.
    ensemble = tmp_path / "results" / "ensemble" / "run.json"
    payload = json.loads(ensemble.read_text())
    ensemble.write_text(json.dumps(dict(payload, trajectory_hash="0" * 16)))
    other = bench(tmp_path, "--rows", "ensemble,hetcomp", "--seeds", "1", *STUDENT)
    assert other.returncode != 0 and "run these rows into a new --out folder" in other.stderr, other.stderr[-2000:]
    assert other.stderr.count("recorded on") == 2 and "torch" in other.stderr  # both machines named
    # Teachers recorded with narrower vector kernels than this machine's: the refusal says how to use them here.
    import torch

    narrower = dict(payload, trajectory_hash="0" * 16, teacher_checkpoints={
        name: dict(t, recorded_on=dict(t["recorded_on"], cpu_capability="DEFAULT"))
        for name, t in payload["teacher_checkpoints"].items()})
    ensemble.write_text(json.dumps(narrower))
    other = bench(tmp_path, "--rows", "ensemble,hetcomp", "--seeds", "1", *STUDENT)
    assert other.returncode != 0
    wider_here = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    assert ("run again with ATEN_CPU_CAPABILITY=default set" in other.stderr) == wider_here, other.stderr[-2000:]
    # ... and on a fresh machine (no teachers in --work), the re-recording uses those kernels by itself.
    ensemble.write_text(json.dumps(dict(narrower, trajectory_hash=payload["trajectory_hash"])))
    fresh = bench(tmp_path, "--rows", "ensemble", f"--work={tmp_path / 'fresh'}")
    rerecorded = json.loads((tmp_path / "fresh" / "rerecorded-ensemble.json").read_text())["teacher_checkpoints"]
    assert rerecorded["BPR"]["recorded_on"]["kernel_settings"] == ({"ATEN_CPU_CAPABILITY": "default"} if wider_here else {})
    assert ("recording with ATEN_CPU_CAPABILITY=default" in fresh.stdout) == wider_here, fresh.stdout[-2000:]
    ensemble.write_text(json.dumps(payload))

    report = tmp_path / "report.md"
    made = subprocess.run([sys.executable, BENCH, f"--out={tmp_path / 'results'}", f"--report={report}"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    page = report.read_text()
    assert "| HetComp, 300-epoch schedule | 2 (1,2) |" in page
    assert "HetComp, 300-epoch schedule − HetComp, final checkpoints only, 300-epoch schedule | 2 |" in page

    # With --plots, the figures the page links; a folder of the ensembles alone (a comparison
    # just begun) gets the teachers' curves, and no empty student figure.
    plotted = subprocess.run([sys.executable, BENCH, f"--out={tmp_path / 'results'}", f"--report={report}", "--plots"],
                             capture_output=True, text=True, timeout=300)
    assert plotted.returncode == 0, plotted.stderr[-2000:]
    for figure in ("curriculum", "validation", "teachers"):
        assert (tmp_path / f"report-{figure}.png").is_file() and f"(report-{figure}.png)" in report.read_text()
    (tmp_path / "begun" / "ensemble").mkdir(parents=True)
    (tmp_path / "begun" / "ensemble" / "run.json").write_text(ensemble.read_text())
    begun = tmp_path / "begun.md"
    made = subprocess.run([sys.executable, BENCH, f"--out={tmp_path / 'begun'}", f"--report={begun}", "--plots"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    assert "(begun-teachers.png)" in begun.read_text()
    assert not list(tmp_path.glob("begun-curriculum.png")) + list(tmp_path.glob("begun-validation.png"))


def test_every_row_the_bench_runs_has_its_place_in_the_report():
    # report_seeds reads files only and repeats bench_seeds' row families: they must not drift
    sys.path.insert(0, REPO)
    from benchmarks import bench_seeds, report_seeds

    assert report_seeds.SIZES == bench_seeds.STUDENT_SIZES
    assert set(report_seeds.FACTORS) == set(bench_seeds.FACTORS)
    assert set(report_seeds.DIAGNOSTICS_D64) == set(bench_seeds.DIAGNOSTICS_D64)
    assert set(report_seeds.DIAGNOSTICS_D6) == set(bench_seeds.DIAGNOSTICS_D6)
    assert report_seeds.WEIGHTS_FROM == bench_seeds.WEIGHTS_FROM
    missing = [slug for slug in bench_seeds.ROWS if slug not in report_seeds.ORDER and not slug.startswith("no-kd")]
    assert missing == []


def test_a_refusal_names_the_kernels_to_record_with_only_where_this_machine_can_run_them():
    from benchmarks.bench_seeds import kernel_hint, narrower_capability

    def recorded(*levels):
        return {f"T{i}": {"recorded_on": {"cpu_capability": level}} for i, level in enumerate(levels)}

    assert "ATEN_CPU_CAPABILITY=avx2" in kernel_hint(recorded("AVX2", "AVX2"), recorded("AVX512", "AVX512"))
    assert kernel_hint(recorded("AVX512"), recorded("AVX2")) == ""  # this machine cannot run the wider kernels
    assert kernel_hint(recorded("AVX2"), recorded("AVX2")) == ""  # the same kernels: the difference is elsewhere
    assert kernel_hint(recorded("AVX2", None), recorded("AVX512")) == ""  # some teachers not noted: no guess
    assert kernel_hint(recorded("SVE256"), recorded("AVX512")) == ""  # levels of another architecture
    assert narrower_capability(recorded("AVX2", "AVX2"), "AVX512") == "AVX2"
    assert narrower_capability(recorded("AVX512"), "AVX512") is None and narrower_capability({}, "AVX512") is None


def test_serving_points_are_one_per_model_with_seed_means():
    sys.path.insert(0, REPO)
    from benchmarks.report_seeds import serving_points, serving_table

    runs = {
        "ensemble": [{"student_seed": None, "inference_time_s": 0.9, "test_result": {"ndcg@20": 0.37},
                      "teacher_rows": [{"name": "BPR", "inference_time_s": 0.1, "test_result": {"ndcg@20": 0.33}}]}],
        "hetcomp-reference": [{"student_seed": k, "inference_time_s": t, "test_result": {"ndcg@20": v}}
                              for k, t, v in ((1, 0.02, 0.35), (2, 0.04, 0.36))],
    }
    assert serving_points(runs) == [("BPR", 0.1, 0.33), ("ensemble", 0.9, 0.37),
                                    ("hetcomp-reference", 0.03, 0.355)]
    # The report's table answers the user's question: which model serves near the ensemble's
    # accuracy (0.355 is 0.96x) at a tenth of its cost (0.03 s against 0.9 s)?
    table = "\n".join(serving_table(runs))
    assert "| hetcomp-reference | 0.3550 | 0.959 | 0.030 | 0.033 |" in table
    assert "<= 0.1x of its serving time: hetcomp-reference." in table
    assert "no model measured so far" in "\n".join(serving_table(runs, share=0.99))


def test_curriculum_means_are_named_after_the_teachers_the_student_learned_from():
    sys.path.insert(0, REPO)
    from benchmarks.report_seeds import members

    teachers = ["BPR", "CML", "LightGCN", "ItemAE"]
    runs = {"ensemble": [{"teacher_rows": [{"name": "LightGCN", "kind": "teacher (left out: weak)"},
                                           {"name": "BPR", "kind": "teacher"}]}]}
    # The guard's weak teacher is out; so is one weighted 0 (a student leaves it out of its targets).
    weighted = {"teachers": teachers, "ensemble_weights": {"BPR": 0.0, "CML": 1.0, "ItemAE": 2.0}}
    assert members(runs, weighted) == ["CML", "ItemAE"]
    assert members(runs, {"teachers": teachers, "ensemble_weights": None}) == ["BPR", "CML", "ItemAE"]
    # A run given the ensemble-weighted row's weights as a list, whose file does not name them
    runs["ensemble-weighted"] = [{"ensemble_weights": {"BPR": 0.0, "CML": 1.0, "ItemAE": 0.0}}]
    given = {"teachers": teachers, "ensemble_weights": None, "settings": {"overrides": {"ensemble_weights": "@ensemble-weighted"}}}
    assert members(runs, given) == ["CML"]
    # Code before 2026-12-05 kept a weight-0 teacher as a member: three means, three names
    older = dict(weighted, curriculum=[{"epoch": 10, "mean_checkpoint": [1.0, 2.0, 3.0]}])
    assert members(runs, older) == ["BPR", "CML", "ItemAE"]
    assert members(runs, dict(older, curriculum=[{"epoch": 10, "mean_checkpoint": [2.0, 3.0]}])) == ["CML", "ItemAE"]


def test_rows_given_the_chosen_weights_get_one_per_teacher_taking_part(tmp_path):
    # e.g. ml-100k, teachers of 2026-12-05: the guard left LightGCN out of the weighted ensemble
    sys.path.insert(0, REPO)
    from argparse import Namespace

    from benchmarks.bench_seeds import chosen_weights

    (tmp_path / "ensemble-weighted").mkdir()
    (tmp_path / "ensemble-weighted" / "run.json").write_text(json.dumps({
        "teachers": ["BPR", "CML", "LightGCN", "ItemAE"], "ensemble_weights": {"BPR": 0.0, "CML": 1.0, "ItemAE": 2.0}}))
    assert chosen_weights(Namespace(out=str(tmp_path))) == [0.0, 1.0, 2.0]


def test_a_row_left_unfinished_continues_from_its_checkpoint_to_the_same_numbers(tmp_path):
    write_tiny_dataset(tmp_path / "data")
    (tmp_path / "protocol.yaml").write_text(
        "teachers: [BPR, EASE]\nteacher_defaults: {epochs: 4, eval_step: 1}\nhetcomp_k: 20\ndetailed_long: 20\n"
        "discrepancy_depth: 20\ntrajectory_topn: 20\n"
    )
    rows = ["--rows", "ensemble,hetcomp", "--seeds", "1", *STUDENT[2:]]

    def row(out, work, epochs):
        done = subprocess.run(
            [sys.executable, BENCH, "--dataset=tiny", f"--data_path={tmp_path / 'data'}",
             f"--config_files={tmp_path / 'protocol.yaml'}", f"--work={tmp_path / work}", f"--out={tmp_path / out}",
             "--jobs=1", "--threads=1", *rows, "--set", f"epochs={epochs}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
        return done.stdout, json.loads((tmp_path / out / "hetcomp" / "seed1.json").read_text())

    # A run cut short (as by the end of a session) leaves its best checkpoint in work/hetcomp-seed1/.
    row("cut", "work", epochs=3)
    log, continued = row("continued", "work", epochs=7)
    assert "hetcomp seed 1: continuing from hetcomp-seed1/saved/HetComp-" in log
    _, never_cut = row("never-cut", "fresh-work", epochs=7)
    assert continued["resumed_from"] and never_cut["resumed_from"] is None
    assert continued["test_result"] == never_cut["test_result"]
    assert continued["valid_history"] == never_cut["valid_history"]


def test_a_row_folder_is_claimed_by_one_invocation_and_moved_aside_when_its_settings_change(tmp_path):
    sys.path.insert(0, REPO)
    from benchmarks.bench_seeds import claim_folder

    work = tmp_path / "hetcomp-seed1"
    first = claim_folder(str(work), {"set": {"dkc_period": "1"}})
    try:
        with pytest.raises(RuntimeError, match="in use by another bench_seeds invocation"):
            claim_folder(str(work), {"set": {"dkc_period": "1"}})
    finally:
        first.close()
    (work / "saved").mkdir()
    claim_folder(str(work), {"set": {"dkc_period": "2"}}).close()  # other settings: not continued
    moved = [p.name for p in tmp_path.iterdir() if p.name.startswith("hetcomp-seed1.other-settings-")]
    assert len(moved) == 1 and (tmp_path / moved[0] / "saved").is_dir() and not (work / "saved").exists()


def test_report_picks_the_no_kd_learning_rate_among_the_6_dimensional_rows_only(tmp_path):
    # The larger trained-alone students validate better, but are rows of their own.
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import report_seeds

    for slug, valid in (("no-kd-lr0.01", 0.03), ("no-kd-lr0.001", 0.04), ("no-kd-lr0.001-d64", 0.09)):
        (tmp_path / slug).mkdir()
        (tmp_path / slug / "seed1.json").write_text(json.dumps(
            {"slug": slug, "student_seed": 1, "best_valid_score": valid, "trajectory_hash": "h"}))
    runs = report_seeds.load([str(tmp_path)])
    assert runs["no-kd"] is runs["no-kd-lr0.001"]
