"""Every row of the HetComp comparison on one dataset, under one protocol, in one report.

Rows: each teacher and their rank ensemble (equal weights, and weights chosen on
validation), EASE, the no-KD student (BPR of the student's size, learning rate chosen on
validation), HetComp, its ablations (final checkpoints only, overall loss only, detailed
loss only) and the distillation baselines RRD and CL-DRD, all from the same recorded
teachers, with the same student size, epoch budget and selection on validation NDCG@20.

    # quick mode: ml-100k (bundled), RecBole's default split
    python benchmarks/bench_compare.py --out=docs/results-ml-100k.md
    # the paper's protocol on ml-1m, two rows at a time at 1 thread each
    python benchmarks/bench_compare.py --dataset=ml-1m --data_path=../shared/data \\
        --config_files=properties/protocol/hetcomp-paper.yaml --jobs=2 --threads=1 \\
        --set epochs=70 --set eval_step=5 --set dkc_start=5 --set dkc_period=5 \\
        --out=docs/results-ml-1m.md

The teachers are trained (and recorded) first, by the ensemble row, unless their files are
already in --trajectory_dir; the other rows then run --jobs at a time, each in a fresh
process. A row that fails is reported at once in one line (its traceback is kept in
<row>.error.txt) while the others go on; the command then exits with an error naming the
failed rows. Each row's result JSON is kept in --work (default benchmarks/runs/<dataset>/); a
rerun reuses rows whose JSON exists (and refuses one computed with other --set values), so
an interrupted comparison continues where it stopped. At the end every model is loaded from
its checkpoint and timed back to back in this process. The report (Markdown, plus .csv and
.json next to it, and PNG figures with --plots) states the command, date, machine and
threads. --set applies to the student rows only (teachers keep the protocol's settings).
"""

import argparse
import copy
import csv
import json
import os
import platform
import resource
import signal
import sys
import time
import traceback
from datetime import date
from multiprocessing import get_context
from multiprocessing.connection import wait

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

TEACHERS_ROW = "Teachers and ensemble"
WEIGHTED_ROW = "Ensemble, weights chosen on validation"
# (row name, model, overrides); every student row gets --set on top of the protocol.
KD_ROWS = [
    ("HetComp", "HetComp", {}),
    ("HetComp, final checkpoints only (no DKC)", "HetComp", {"hetcomp_checkpoints": "final"}),
    ("HetComp, overall loss only", "HetComp", {"akt_mode": "overall"}),
    ("HetComp, detailed loss only", "HetComp", {"akt_mode": "detailed"}),
    ("RRD", "RRD", {}),
    ("CL-DRD", "CLDRD", {}),
]
NOTES_MARKER = "<!-- Written by hand below this line; bench_compare.py keeps it when it rewrites the tables. -->"
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (10, 20, 50)]
MAIN = "ndcg@20"
# The reference HetComp code on the same ml-1m split, CPU, 1 thread
# (../shared/docs/reference-ml1m.md): the cost goals are stated against it.
REFERENCE = {"epoch_s": 28.0, "dkc_s": (4.5 + 2.0, 7.6 + 2.6), "trajectory_gib": 2.0, "peak_gib": 5.2}


def row_file(work, name):
    keep = "".join(c if c.isalnum() or c in "-." else "_" for c in name)
    return os.path.join(work, "_".join(filter(None, keep.split("_"))) + ".json")


def error_file(work, name):
    return row_file(work, name)[: -len(".json")] + ".error.txt"


def run_row(name, model, dataset, files, config, work, threads):
    """One row in this (fresh) process; returns its result JSON path."""
    import torch

    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.quick_start import run_recbole_hetcomp

    quiet_known_warnings()
    if threads:
        torch.set_num_threads(threads)
    os.chdir(work)  # RecBole writes log/, saved/ and log_tensorboard/ here
    path = row_file(work, name)
    start = time.time()
    try:
        result = run_recbole_hetcomp(model=model, dataset=dataset, config_file_list=files,
                                     config_dict=dict(config, result_file=path + ".part"))
        result.update(
            row_name=name,
            row_overrides=config,
            row_wall_time_s=round(time.time() - start, 1),
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            torch_threads=torch.get_num_threads(),
        )
        with open(path + ".part", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(path + ".part", path)
    finally:
        if os.path.exists(path + ".lock"):
            os.remove(path + ".lock")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default="dataset")
    parser.add_argument("--config_files", default="")
    parser.add_argument("--trajectory_dir", default="trajectories")
    parser.add_argument("--work", default=None, help="folder for per-row result JSON files")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per row (0: torch's default)")
    parser.add_argument("--jobs", type=int, default=1, help="rows run at once, each in its own process")
    parser.add_argument("--lrs", default="0.001,0.01", help="no-KD student learning rates, chosen on validation")
    parser.add_argument("--ease_weights", default="250,1000,3000", help="EASE's L2 weights, chosen on validation")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every student row (e.g. epochs=70)")
    parser.add_argument("--out", default=None, help="Markdown report (.csv and .json with the rows are written next to it)")
    parser.add_argument("--only", default="", help="compute only rows whose name contains one of these comma-separated "
                        "words, then stop (e.g. 'no-KD,EASE' while the teachers train elsewhere)")
    parser.add_argument("--allow_missing", action="store_true", help="write the report even if baseline or "
                        "ablation rows are still being computed elsewhere (they are listed as missing)")
    parser.add_argument("--plots", action="store_true", help="also write PNG figures next to --out (needs matplotlib)")
    args = parser.parse_args()
    if args.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.exit("--plots needs matplotlib: pip install -e '.[plot]' (or drop --plots)")

    files = [os.path.abspath(f) for f in args.config_files.split()]
    work = os.path.abspath(args.work or os.path.join(REPO, "benchmarks", "runs", args.dataset))
    os.makedirs(work, exist_ok=True)
    base = {
        "data_path": os.path.abspath(args.data_path),
        "trajectory_dir": os.path.abspath(args.trajectory_dir),
        "show_progress": False,
        "state": "WARNING",
    }
    if args.threads:
        base["torch_num_threads"] = args.threads
    student = dict(base)
    for item in args.set:
        key, _, value = item.partition("=")
        student[key] = json.loads(value) if value[:1] in "[{0123456789-" or value in ("true", "false") else value

    rows = {TEACHERS_ROW: ("RankEnsemble", dict(base), None),
            WEIGHTED_ROW: ("RankEnsemble", dict(base, ensemble_weights="validation"), TEACHERS_ROW),
            }
    for name, model, overrides in KD_ROWS:
        rows[name] = (model, dict(student, **overrides), TEACHERS_ROW)
    ease = [f"EASE reg_weight {w}" for w in args.ease_weights.split(",")]
    for name, w in zip(ease, args.ease_weights.split(",")):
        rows[name] = ("EASE", dict(base, reg_weight=float(w)), None)
    size = student.get("embedding_size", 6)
    no_kd = [f"no-KD student BPR d{size} lr {lr}" for lr in args.lrs.split(",")]
    for name, lr in zip(no_kd, args.lrs.split(",")):
        rows[name] = ("BPR", dict(student, embedding_size=size, learning_rate=float(lr)), None)

    if args.only:
        words = [w for w in args.only.split(",") if w]
        # A word that is a row's whole name picks that row only ("HetComp"), else any row containing it.
        rows = {n: (m, c, None) for n, (m, c, _) in rows.items()
                if any(w == n or (w not in rows and w in n) for w in words)}
    start = time.time()
    computed, failed, blocked = run_rows(rows, args, files, work)
    wall = time.time() - start
    log_path = os.path.join(work, "invocations.json")
    invocations = json.load(open(log_path)) if os.path.exists(log_path) else []
    invocations.append({"date": str(date.today()), "wall_time_s": round(wall, 1), "rows_computed": computed,
                        "rows_failed": list(failed), "jobs": args.jobs, "threads": args.threads})
    with open(log_path, "w") as f:
        json.dump(invocations, f, indent=2)
    if failed:
        sys.exit(f"{len(failed)} row(s) failed: {'; '.join(f'{n}: {e}' for n, e in failed.items())}"
                 + (f"; not run, as a row they need failed: {'; '.join(blocked)}" if blocked else "")
                 + f". Each error is above (tracebacks in {work}/<row>.error.txt); finished rows are kept, "
                 "so a rerun computes only what is missing")
    if args.only:
        return

    missing = [name for name in rows if not os.path.exists(row_file(work, name))]
    optional = {n for n, _, _ in KD_ROWS if n != "HetComp"} | set(ease[1:])
    if missing and not (args.allow_missing and set(missing) <= optional):
        sys.exit(f"rows not computed yet (another invocation is on them): {', '.join(missing)}; rerun when it is done")
    results = {name: json.load(open(row_file(work, name))) for name in rows if name not in missing}
    timings = time_inference_back_to_back(results, args.dataset, files, base, args.threads, work)
    students = [n for n, _, _ in KD_ROWS if n in results] + [max(no_kd, key=lambda n: results[n]["best_valid_score"])]
    timings["epochs"] = time_epochs_back_to_back(results, students, args.dataset, files, args.threads)
    report = build_report(results, timings, no_kd, ease, args, invocations, work, missing)
    print(report["markdown"])
    if args.out:
        out = os.path.abspath(args.out)
        stem = os.path.splitext(out)[0]
        notes = ""
        if os.path.exists(out):
            previous = open(out).read()
            if NOTES_MARKER in previous:
                notes = previous[previous.index(NOTES_MARKER):]
        with open(out, "w") as f:
            f.write(report["markdown"] + "\n" + (notes or NOTES_MARKER + "\n"))
        with open(stem + ".json", "w") as f:
            json.dump({k: v for k, v in report.items() if k != "markdown"}, f, indent=2)
        with open(stem + ".csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "kind", "parameters", "inference_s", "inference_ratio_to_student",
                             "epoch_s_back_to_back", "epoch_ratio_to_no_kd", "mean_epoch_s_in_row"]
                            + [f"test_{m}" for m in METRICS] + [f"valid_{MAIN}"])
            for r in report["rows"]:
                writer.writerow([r["name"], r["kind"], r["parameters"], r["inference_s"], r["inference_ratio"],
                                 r["epoch_b2b_s"], r["epoch_b2b_ratio"], r["epoch_s"]]
                                + [r["test"].get(m) for m in METRICS] + [r["valid"].get(MAIN)])
        if args.plots:
            plot(report, results, no_kd, stem)


def run_rows(rows, args, files, work):
    """Compute the missing rows, --jobs at a time, dependencies first.

    Each row runs in its own fresh process (not a process pool: a pool's dead worker breaks
    the pool and takes the other running rows with it). A row that fails is reported at
    once, in one line, and the others go on; rows that need it are not started.

    Returns:
        tuple: names of the rows computed, {failed row: last line of its error}, and the
        names of rows not run because a row they need failed.
    """
    todo = {}
    for name, (model, config, needs) in rows.items():
        path = row_file(work, name)
        if os.path.exists(path):
            done = json.load(open(path))
            if done.get("row_overrides", config) != config:
                sys.exit(f"{path} was computed with other settings ({done.get('row_overrides')}): "
                         f"delete it to recompute, or use another --work folder")
        else:
            todo[name] = (model, config, needs)
    if not todo:
        return [], {}, []
    print(f"computing {len(todo)} rows, {args.jobs} at a time: {', '.join(todo)}", flush=True)
    context = get_context("spawn")
    running, computed, elsewhere, failed, blocked = {}, [], [], {}, []
    try:
        while todo or running:
            for name in [n for n, (_, _, needs) in todo.items()
                         if needs not in todo and needs not in [r for r, _ in running.values()]]:
                if len(running) >= args.jobs:
                    break
                model, config, needs = todo.pop(name)
                if os.path.exists(row_file(work, name)):
                    continue  # another invocation finished it meanwhile
                if needs in failed or needs in blocked:
                    blocked.append(name)
                    print(f"not run: {name} (needs {needs}, which failed)", flush=True)
                    continue
                if needs in elsewhere or not _lock(row_file(work, name)):
                    elsewhere.append(name)  # another invocation computes it (or what it needs)
                    print(f"skipped: {name} (being computed by another invocation; if none is running, "
                          f"delete {row_file(work, name)}.lock)", flush=True)
                    continue
                if os.path.exists(error_file(work, name)):
                    os.remove(error_file(work, name))  # from an earlier invocation
                process = context.Process(target=_row_process, name=name,
                                          args=(name, model, args.dataset, files, config, work, args.threads))
                process.start()
                running[process.sentinel] = (name, process)
            if not running:
                continue
            for sentinel in wait(list(running)):
                name, process = running.pop(sentinel)
                process.join()
                if process.exitcode == 0:
                    computed.append(name)
                    print(f"done: {name}", flush=True)
                else:
                    failed[name] = _failure_line(process.exitcode, error_file(work, name))
                    print(f"failed: {name}: {failed[name]}", flush=True)
                    _unlock(row_file(work, name))  # a killed row could not remove its own lock
    finally:
        for name, process in running.values():  # this process is stopping: so are its rows
            process.join(timeout=5)  # after Ctrl-C each row stops by itself and removes its lock
            if process.is_alive():
                process.terminate()
                process.join()
            _unlock(row_file(work, name))
    return computed, failed, blocked


def _row_process(name, model, dataset, files, config, work, threads):
    """A row's own process: run it; on any failure keep its traceback and exit with status 1."""
    try:
        run_row(name, model, dataset, files, config, work, threads)
    except BaseException:
        text = traceback.format_exc()
        path = error_file(work, name)
        with open(path + ".part", "w") as f:
            f.write(text)
        os.replace(path + ".part", path)
        sys.exit(1)


def _failure_line(exitcode, error_path):
    """The last line of a failed row's traceback, or how its process died."""
    if os.path.exists(error_path):
        lines = [line for line in open(error_path).read().splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()
    if exitcode is not None and exitcode < 0:
        signame = signal.Signals(-exitcode).name
        return f"its process was killed by {signame}" + (" (out of memory?)" if signame == "SIGKILL" else "")
    return f"its process exited with status {exitcode} and left no error"


def _unlock(path):
    if os.path.exists(path + ".lock"):
        os.remove(path + ".lock")


def _lock(path):
    """Claim a row for this invocation: several invocations may share one --work folder."""
    try:
        fd = os.open(path + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def time_inference_back_to_back(results, dataset, files, base, threads, work):
    """Full-sort top-K seconds for every model, loaded from its checkpoint, in this process.

    Teachers come from their trajectory files' checkpoints; the ensemble costs every
    teacher plus its aggregation (a RankEnsemble over the stored lists).
    """
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.compat import init_logger, load_own_checkpoint, quiet_known_warnings
    from recbole_hetcomp.config import Config
    from recbole_hetcomp.model.general_recommender.rankensemble import RankEnsemble
    from recbole_hetcomp.trajectory.recorder import full_sort_inference_time
    from recbole_hetcomp.trajectory.store import read_metadata
    from recbole_hetcomp.utils import get_model

    quiet_known_warnings()
    if threads:
        torch.set_num_threads(threads)
    config = Config(model="RankEnsemble", dataset=dataset, config_file_list=files, config_dict=base)
    init_seed(config["seed"], config["reproducibility"])  # the split is random: same seed, same split as the rows
    init_logger(config)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    train_dataset = train_data.dataset
    k = max(config["topk"])

    def timed(checkpoint_file):
        # Result files name checkpoints as their run saw them: relative to the work folder.
        checkpoint = load_own_checkpoint(os.path.join(work, checkpoint_file), "cpu")
        model_config = checkpoint["config"]
        model_config["device"] = torch.device("cpu")
        model = get_model(model_config["model"])(model_config, train_dataset)
        model.load_state_dict(checkpoint["state_dict"])
        model.load_other_parameter(checkpoint.get("other_parameter"))
        model.eval()
        return full_sort_inference_time(model, train_dataset, k, config["eval_batch_size"])

    times = {}
    teachers = {}
    for path in sorted(_trajectory_files(config)):
        meta = read_metadata(path)
        if meta.get("checkpoint_file") and os.path.exists(meta["checkpoint_file"]):
            teachers[os.path.basename(path).rsplit(".", 1)[0]] = timed(meta["checkpoint_file"])
    times.update({f"teacher {n}": t for n, t in teachers.items()})
    ensemble = RankEnsemble(config, train_dataset)
    times["ensemble aggregation"] = full_sort_inference_time(ensemble, train_dataset, k, config["eval_batch_size"])
    for name, result in results.items():
        if result.get("model") != "RankEnsemble" and result.get("checkpoint_file"):
            times[name] = timed(result["checkpoint_file"])
    return {"seconds": times, "threads": torch.get_num_threads(),
            "teachers_complete": len(teachers) == len(results[TEACHERS_ROW]["rows"]) - 1}


def time_epochs_back_to_back(results, names, dataset, files, threads):
    """Seconds of one training epoch of each student, run one after another in this process.

    The rows' own epoch times were measured while other rows ran beside them; these are
    measured on a machine this process has to itself, so their ratios compare.
    """
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.config import Config
    from recbole_hetcomp.utils import get_trainer

    if threads:
        torch.set_num_threads(threads)
    seconds, shared = {}, None
    for name in names:
        overrides = dict(results[name].get("row_overrides") or {}, state="WARNING", epochs=1)
        config = Config(model=results[name]["model"], dataset=dataset, config_file_list=files,
                        config_dict=overrides)
        init_seed(config["seed"], config["reproducibility"])
        if shared is None:
            shared = create_dataset(config)  # the same interactions for every student
        train_data, _, _ = data_preparation(config, copy.deepcopy(shared))  # building consumes a dataset
        init_seed(config["seed"], config["reproducibility"])
        model = config.model_class(config, train_data.dataset)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        start = time.perf_counter()
        trainer._train_epoch(train_data, 0)  # epoch 0: before any DKC step, in stage 1 unless detailed-only
        seconds[name] = round(time.perf_counter() - start, 4)
        print(f"one epoch of {name}: {seconds[name]} s", flush=True)
    return {"seconds": seconds, "threads": torch.get_num_threads()}


def _trajectory_files(config):
    from recbole_hetcomp.trajectory.store import trajectory_path
    from recbole_hetcomp.trajectory.teacherset import parse_teachers

    return [trajectory_path(config["trajectory_dir"], config["dataset"], name)
            for name, _, _ in parse_teachers(config["teachers"])]


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


def build_report(results, timings, no_kd, ease, args, invocations, work, missing=()):
    """Accuracy and cost rows, goal checks and the Markdown page."""
    from recbole_hetcomp.trajectory.store import read_metadata

    seconds = timings["seconds"]
    teacher_rows = results[TEACHERS_ROW]["rows"]
    chosen_no_kd = max(no_kd, key=lambda n: results[n]["best_valid_score"])
    student_time = seconds.get("HetComp")
    ensemble_time = None
    if timings["teachers_complete"]:
        ensemble_time = sum(v for k, v in seconds.items() if k.startswith("teacher ")) + seconds["ensemble aggregation"]

    def row(name, kind, result=None, plain=None, inference=None):
        plain = plain or {}
        test = (result or plain).get("test_result", {})
        valid = (result or plain).get("valid_result", {}) or {}
        epoch = _mean(result.get("epoch_train_times_s", [])) if result else None
        return {
            "name": name, "kind": kind,
            "parameters": (result or plain).get("parameters"),
            "inference_s": None if inference is None else round(inference, 4),
            "inference_ratio": None if inference is None or not student_time else round(inference / student_time, 1),
            "epoch_s": None if epoch is None else round(epoch, 2),
            "epochs_run": len(result.get("epoch_train_times_s", [])) if result else None,
            "best_epoch": _best_epoch(result) if result else None,
            "peak_rss_mb": result.get("peak_rss_mb") if result else None,
            "test": test, "valid": valid,
        }

    rows = []
    for t in teacher_rows[:-1]:
        rows.append(row(t["name"], "teacher", plain=t, inference=seconds.get(f"teacher {t['name']}")))
    rows.append(row("Ensemble (equal weights)", "ensemble", plain=teacher_rows[-1], inference=ensemble_time))
    weighted = results[WEIGHTED_ROW]
    weights = weighted.get("ensemble_weights")
    rows.append(row(f"Ensemble, weights chosen on validation {weights}", "ensemble",
                    plain=dict(weighted, parameters=rows[-1]["parameters"]), inference=ensemble_time))
    chosen_ease = max([n for n in ease if n in results], key=lambda n: results[n]["best_valid_score"])
    rows.append(row(f"EASE (closed form, {chosen_ease.split(' ', 1)[1]} chosen on validation)", "reference",
                    results[chosen_ease], inference=seconds.get(chosen_ease)))
    rows[-1]["parameters"] = None  # its n_items x n_items weights are a buffer, not parameters
    keys = {}
    for name, _, _ in KD_ROWS:
        if name in results:
            rows.append(row(name, "student", results[name], inference=seconds.get(name)))
            keys[name] = name
    lr = results[chosen_no_kd]["config"].get("learning_rate")
    rows.append(row(f"no-KD student: BPR (lr {lr}, chosen on validation)", "student", results[chosen_no_kd],
                    inference=seconds.get(chosen_no_kd)))
    keys[rows[-1]["name"]] = chosen_no_kd
    epochs = timings["epochs"]
    base_epoch = epochs["seconds"].get(chosen_no_kd)
    for r in rows:
        r["epoch_b2b_s"] = epochs["seconds"].get(keys.get(r["name"]))
        r["epoch_b2b_ratio"] = round(r["epoch_b2b_s"] / base_epoch, 2) if r["epoch_b2b_s"] and base_epoch else None

    hetcomp = results["HetComp"]
    dkc = [h for h in hetcomp.get("dkc_history", []) if h.get("mean_checkpoint") is not None]
    dkc_work = [h["seconds"] for h in dkc if h.get("frac_at_last", 1.0) < 1.0 or h.get("first_call")]
    trajectories = _trajectory_files_from(results, args)
    traj_mb = sum(os.path.getsize(p) for p in trajectories) / 2**20
    teacher_metas = [read_metadata(p) for p in trajectories]
    overheads = [(m.get("teacher_config", {}).get("model"), m["recording_time_s"] / m["train_time_s"])
                 for m in teacher_metas if m.get("train_time_s")]
    best_teacher = max(rows[: len(teacher_rows) - 1], key=lambda r: r["test"].get(MAIN, 0))
    by_name = {r["name"]: r for r in rows}
    het = by_name["HetComp"]
    others = [r for r in rows if r["kind"] == "student" and r["name"] != "HetComp"]
    ens = by_name["Ensemble (equal weights)"]
    hetcomp_epoch = het["epoch_b2b_s"] or het["epoch_s"]
    wall_rows = sum(r.get("row_wall_time_s") or r.get("wall_time_s") or 0 for r in results.values())
    wall_invocations = sum(i["wall_time_s"] for i in invocations)
    goals = [
        ("HetComp above every baseline and ablation (test N@20)",
         all(het["test"][MAIN] > r["test"][MAIN] for r in others),
         "; ".join(f"{r['name']} {r['test'][MAIN]:.4f}" for r in others) + f"; HetComp {het['test'][MAIN]:.4f}"),
        ("HetComp within 5% of the ensemble's N@20",
         het["test"][MAIN] >= 0.95 * ens["test"][MAIN],
         f"{het['test'][MAIN]:.4f} / {ens['test'][MAIN]:.4f} = {het['test'][MAIN] / ens['test'][MAIN]:.1%}"),
        ("at least 20x cheaper to serve than the ensemble",
         bool(ensemble_time and student_time and ensemble_time / student_time >= 20),
         f"{ensemble_time:.2f} s / {student_time:.3f} s = {ensemble_time / student_time:.0f}x" if ensemble_time and student_time else "not measured"),
    ]
    reference_goals = [
        (f"student epoch at least 5x faster than the reference's {REFERENCE['epoch_s']:.0f} s (1 thread)",
         bool(hetcomp_epoch and REFERENCE["epoch_s"] / hetcomp_epoch >= 5),
         f"{hetcomp_epoch} s per epoch (back to back, 1 row on the machine) = {REFERENCE['epoch_s'] / hetcomp_epoch:.1f}x" if hetcomp_epoch else "not measured"),
        ("one DKC step with target rebuild under 1 s",
         bool(dkc_work) and max(dkc_work) < 1.0,
         f"mean {_mean(dkc_work):.2f} s, max {max(dkc_work):.2f} s over {len(dkc_work)} steps" if dkc_work else "no DKC step"),
        ("trajectory files under 100 MB", traj_mb < 100, f"{traj_mb:.1f} MB for {len(trajectories)} teachers"),
        ("peak memory under 1 GiB (HetComp row's process, RecBole data included)",
         bool(het["peak_rss_mb"]) and het["peak_rss_mb"] < 1024, f"{het['peak_rss_mb']} MB"),
    ]
    if args.dataset == "ml-1m":  # the reference code's costs were measured on ml-1m only
        goals += reference_goals
    command = ("python benchmarks/bench_compare.py" + (f" --dataset={args.dataset}" if args.dataset != "ml-100k" else "")
               + (f" --data_path={args.data_path}" if args.data_path != "dataset" else "")
               + (f" --config_files={args.config_files}" if args.config_files else "")
               + (f" --jobs={args.jobs}" if args.jobs != 1 else "") + (f" --threads={args.threads}" if args.threads else "")
               + "".join(f" --set {s}" for s in args.set) + (f" --out={args.out}" if args.out else "")
               + (" --plots" if args.plots else ""))
    import torch

    lines = [
        f"# Results on {args.dataset}",
        "",
        f"Measured {date.today()} on {platform.machine()} ({platform.processor() or 'unknown CPU'}), "
        f"{os.cpu_count()} cores, CPU only, torch {torch.__version__}; every row trained with "
        f"torch threads = {args.threads or 'default'}, {args.jobs} row(s) at a time; inference timed back to back "
        f"in one process at {timings['threads']} thread(s). Test split; every model selected on validation {MAIN} only.",
        "",
        f"Command: `{command}`",
        "",
        *([f"**Rows not computed yet, so missing below: {', '.join(missing)}.**", ""] if missing else []),
        f"Wall time: {wall_invocations / 60:.1f} min over {len(invocations)} invocation(s) of the command "
        f"(rows are reused between invocations); {wall_rows / 60:.1f} min summed over rows (one core's worth).",
        "",
        "## Accuracy and serving cost",
        "",
        "| model | kind | params | inference s | x student | " + " | ".join(_short(m) for m in METRICS) + f" | valid {_short(MAIN)} |",
        "|---|---|---|---|---|" + "---|" * (len(METRICS) + 1),
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['kind']} | {_fmt(r['parameters']) or 'n_items^2'} | {_fmt(r['inference_s'], 3)} | {_fmt(r['inference_ratio'], 1)} | "
            + " | ".join(_fmt(r["test"].get(m), 4) for m in METRICS) + f" | {_fmt(r['valid'].get(MAIN), 4)} |"
        )
    lines += [
        "",
        f"Best single teacher: {best_teacher['name']} (test {_short(MAIN)} {best_teacher['test'][MAIN]:.4f}); "
        f"the equal-weight ensemble {'beats' if ens['test'][MAIN] > best_teacher['test'][MAIN] else 'does not beat'} it "
        f"({ens['test'][MAIN]:.4f}); EASE (not a teacher): {rows[len(teacher_rows) + 1]['test'][MAIN]:.4f}.",
        "",
        "## Training cost of the students",
        "",
        f"One epoch of each student timed back to back in one process at {epochs['threads']} thread(s) "
        "(epoch 0: the overall stage for HetComp and the overall-only ablation); the rows' own mean epoch "
        f"(DKC steps included) was measured with {args.jobs} row(s) sharing the machine.",
        "",
        "| student | one epoch, s (back to back) | x no-KD | mean epoch in its row, s | epochs run | best epoch | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] in ("student", "reference"):
            lines.append(f"| {r['name']} | {_fmt(r['epoch_b2b_s'], 2)} | {_fmt(r['epoch_b2b_ratio'], 2)} | "
                         f"{_fmt(r['epoch_s'], 2)} | {_fmt(r['epochs_run'])} | {_fmt(r['best_epoch'])} | {_fmt(r['peak_rss_mb'])} |")
    lines += [
        "",
        "DKC steps of the HetComp run (with target rebuild): "
        + (f"mean {_mean(dkc_work):.2f} s, max {max(dkc_work):.2f} s over {len(dkc_work)} steps." if dkc_work else "none."),
        "",
        "Teachers' recording overhead (recorder's own time / training time): "
        + ", ".join(f"{m} {o:.1%}" for m, o in overheads) + f". Trajectory files: {traj_mb:.1f} MB in all.",
        "",
        "## Goals",
        "",
        "| goal | met | measured |",
        "|---|---|---|",
    ]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {evidence} |" for g, ok, evidence in goals]
    lines.append("")
    return {
        "markdown": "\n".join(lines),
        "command": command, "date": str(date.today()), "cores": os.cpu_count(), "threads": args.threads,
        "jobs": args.jobs, "rows": rows, "inference_seconds": timings["seconds"], "dkc_seconds": dkc_work,
        "recording_overhead": dict(overheads), "trajectory_mb": round(traj_mb, 2),
        "goals": [{"goal": g, "met": ok, "measured": e} for g, ok, e in goals],
        "wall_time_s": {"invocations": round(wall_invocations, 1), "rows_summed": round(wall_rows, 1)},
        "work": os.path.relpath(work, REPO),
    }


def _trajectory_files_from(results, args):
    from recbole_hetcomp.trajectory.store import trajectory_path

    names = [r["name"] for r in results[TEACHERS_ROW]["rows"][:-1]]
    return [trajectory_path(os.path.abspath(args.trajectory_dir), args.dataset, n) for n in names]


def _best_epoch(result):
    history = result.get("valid_history") or []
    if not history:
        return None
    best = max(history, key=lambda h: h[1]) if result.get("valid_score_bigger", True) else min(history, key=lambda h: h[1])
    return best[0]


def _short(metric):
    return metric.replace("recall", "R").replace("ndcg", "N")


def _fmt(value, digits=None):
    if value is None:
        return ""
    if digits is None:
        return f"{value:,}" if isinstance(value, int) else str(value)
    return f"{value:.{digits}f}"


def plot(report, results, no_kd, stem):
    """Three PNG figures next to the report: curriculum, validation curves, accuracy vs cost."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    hetcomp = results["HetComp"]
    teachers = [r["name"] for r in results[TEACHERS_ROW]["rows"][:-1]]
    history = [h for h in hetcomp.get("dkc_history", []) if h.get("mean_checkpoint") is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, name in enumerate(teachers):
        ax.step([h["epoch"] for h in history], [h["mean_checkpoint"][i] + 1 for h in history], where="post",
                marker="o", ms=3, label=name)
    switch = [h["epoch"] for h in history if h.get("switched")]
    for epoch in switch:
        ax.axvline(epoch, color="grey", ls="--", lw=1)
        ax.text(epoch, ax.get_ylim()[0], " overall -> detailed loss", color="grey", va="bottom", fontsize=8)
    ax.set(xlabel="student epoch", ylabel="mean checkpoint used (1 = earliest)",
           title="HetComp curriculum (DKC): mean teacher checkpoint per epoch")
    ax.legend(fontsize=8)
    paths.append(_save(fig, stem + "-curriculum.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4))
    chosen = max(no_kd, key=lambda n: results[n]["best_valid_score"])
    for name, label in (("HetComp", "HetComp"), (chosen, "no-KD student (BPR)"), ("RRD", "RRD")):
        curve = results.get(name, {}).get("valid_history") or []
        ax.plot([e for e, _ in curve], [s for _, s in curve], marker="o", ms=3, label=label)
    valid = {r["name"]: r["valid"].get(MAIN) for r in report["rows"]}
    ax.axhline(valid["Ensemble (equal weights)"], color="black", ls="--", lw=1, label="ensemble")
    best = max(teachers, key=lambda n: valid.get(n) or 0)
    ax.axhline(valid[best], color="grey", ls=":", lw=1, label=f"best teacher ({best})")
    ax.set(xlabel="epoch", ylabel=f"validation {_short(MAIN)}", title="Students' validation accuracy")
    ax.legend(fontsize=8)
    paths.append(_save(fig, stem + "-validation.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for r in report["rows"]:
        if r["inference_s"]:
            ax.scatter(r["inference_s"], r["test"][MAIN], s=18)
            ax.annotate(_label(r["name"]), (r["inference_s"], r["test"][MAIN]), fontsize=7, xytext=(3, 2),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="full-sort inference for all users, s (log)", ylabel=f"test {_short(MAIN)}",
           title="Accuracy versus serving cost")
    paths.append(_save(fig, stem + "-cost.png"))
    return paths


def _label(name):
    short = {"HetComp, final checkpoints only (no DKC)": "final only", "HetComp, overall loss only": "overall only",
             "HetComp, detailed loss only": "detailed only", "Ensemble (equal weights)": "ensemble"}
    if name in short:
        return short[name]
    if name.startswith("Ensemble, weights"):
        return "ensemble (valid. weights)"
    return name.split(" (")[0].split(":")[0]


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path + ".part.png", dpi=110)
    os.replace(path + ".part.png", path)
    return path


if __name__ == "__main__":
    main()
