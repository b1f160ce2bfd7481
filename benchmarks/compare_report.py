"""Tables and figures of the HetComp comparison, rebuilt from its work folder alone.

    python benchmarks/compare_report.py --work=benchmarks/runs/ml-1m --out=docs/results-ml-1m.md --plots

Reads the rows' result files (``<work>/<row>.json``), the back-to-back timings and machine
description ``benchmarks/bench_compare.py`` measured (``<work>/measurements.json``) and the
invocations log (``<work>/invocations.json``); nothing is trained, loaded or timed, so a
report can be rewritten (another layout, a figure added) without running anything. Writes
the Markdown page (notes under its marker are kept), ``.csv`` and ``.json`` next to it, and
with ``--plots`` three PNG figures.
"""

import argparse
import csv
import json
import os
import sys

from compare_rows import INVOCATIONS, KD_ROWS, MEASUREMENTS, REPO, TEACHERS_ROW, WEIGHTED_ROW, load_row, row_file

NOTES_MARKER = "<!-- Written by hand below this line; bench_compare.py keeps it when it rewrites the tables. -->"
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (10, 20, 50)]
MAIN = "ndcg@20"
# The reference HetComp code on the same ml-1m split, CPU, 1 thread
# (../shared/docs/reference-ml1m.md): the cost goals are stated against it.
REFERENCE = {"epoch_s": 28.0, "dkc_s": (4.5 + 2.0, 7.6 + 2.6), "trajectory_gib": 2.0, "peak_gib": 5.2}


def missing_problem(missing, ease, allow_missing):
    """Why a report cannot be built without the ``missing`` rows, or None if it can.

    The teachers, both ensembles, HetComp, the first EASE weight and every no-KD learning
    rate are needed; the ablations, the baselines and further EASE weights may be missing
    with ``allow_missing`` (the page then lists them).
    """
    optional = {n for n, _, _ in KD_ROWS if n != "HetComp"} | set(ease[1:])
    if missing and not (allow_missing and set(missing) <= optional):
        return f"rows not computed yet (another invocation is on them): {', '.join(missing)}; rerun when it is done"
    return None


def load(work):
    """The measurements, the rows they were taken on (by name) and the invocations log."""
    path = os.path.join(work, MEASUREMENTS)
    if not os.path.exists(path):
        sys.exit(f"no {MEASUREMENTS} in {work}: run benchmarks/bench_compare.py there first "
                 "(it computes the rows and times them)")
    with open(path, encoding="utf-8") as f:
        measurements = json.load(f)
    measured = [n for n in measurements["rows"] if n not in measurements["missing"]]
    absent = [n for n in measured if not os.path.exists(row_file(work, n))]
    if absent:
        sys.exit(f"{work} lacks the result files of rows that were measured: {', '.join(absent)}; "
                 "rerun benchmarks/bench_compare.py (it recomputes them)")
    results = {n: load_row(work, n) for n in measured}
    with open(os.path.join(work, INVOCATIONS), encoding="utf-8") as f:
        invocations = json.load(f)
    return measurements, results, invocations


def rebuild(work, out=None, plots=False):
    """Build the report from ``work`` and, with ``out``, write it (and its figures with ``plots``).

    Returns:
        dict: the report (``markdown`` and the rows, goals and costs it shows).
    """
    measurements, results, invocations = load(work)
    report = build_report(measurements, results, invocations, work)
    if out:
        write(report, os.path.abspath(out))
        if plots:
            plot(report, results, measurements["no_kd"], os.path.splitext(os.path.abspath(out))[0])
    return report


def write(report, out):
    """The Markdown page (keeping the notes under its marker), and .json and .csv next to it."""
    from recbole_hetcomp.fileio import atomic_write

    stem = os.path.splitext(out)[0]
    notes = ""
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            previous = f.read()
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER):]

    def page(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(report["markdown"] + "\n" + (notes or NOTES_MARKER + "\n"))

    def summary(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({k: v for k, v in report.items() if k != "markdown"}, f, indent=2)

    def table(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "kind", "parameters", "inference_s", "inference_ratio_to_student",
                             "epoch_s_back_to_back", "epoch_ratio_to_no_kd", "mean_epoch_s_in_row"]
                            + [f"test_{m}" for m in METRICS] + [f"valid_{MAIN}"])
            for r in report["rows"]:
                writer.writerow([r["name"], r["kind"], r["parameters"], r["inference_s"], r["inference_ratio"],
                                 r["epoch_b2b_s"], r["epoch_b2b_ratio"], r["epoch_s"]]
                                + [r["test"].get(m) for m in METRICS] + [r["valid"].get(MAIN)])

    atomic_write(out, page)
    atomic_write(stem + ".json", summary)
    atomic_write(stem + ".csv", table)


def _mean(values):
    values = list(values)
    return sum(values) / len(values) if values else None


def build_report(measurements, results, invocations, work):
    """Accuracy and cost rows, goal checks and the Markdown page.

    Args:
        measurements (dict): ``<work>/measurements.json`` (what bench_compare.py measured
            after the rows, and the rows, command and machine it measured them for).
        results (dict): row name -> its result JSON, for the rows that were measured.
        invocations (list of dict): ``<work>/invocations.json``.
        work (str): the work folder (named in the JSON summary).

    Returns:
        dict: ``markdown`` and the rows, goals and costs it shows.
    """
    timings, epochs, machine = measurements["inference"], measurements["epochs"], measurements["machine"]
    no_kd, ease, missing = measurements["no_kd"], measurements["ease"], measurements["missing"]
    dataset, jobs, threads, command = (measurements[k] for k in ("dataset", "jobs", "threads", "command"))
    seconds = timings["seconds"]
    teacher_rows = results[TEACHERS_ROW]["rows"]
    chosen_no_kd = max(no_kd, key=lambda n: results[n]["best_valid_score"])
    student_time = seconds.get("HetComp")
    ensemble_time = None
    if timings["teachers_complete"]:
        # a teacher the guard left out is not served by the ensemble
        left_out = {f"teacher {t['name']}" for t in teacher_rows[:-1] if t.get("kind") == "teacher (left out: weak)"}
        ensemble_time = sum(v for k, v in seconds.items() if k.startswith("teacher ") and k not in left_out) \
            + seconds["ensemble aggregation"]

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
        # "teacher", or "teacher (left out: weak)" / "teacher (weak, kept)" (the teacher guard's mark)
        rows.append(row(t["name"], t.get("kind", "teacher"), plain=t, inference=seconds.get(f"teacher {t['name']}")))
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
    base_epoch = epochs["seconds"].get(chosen_no_kd)
    for r in rows:
        r["epoch_b2b_s"] = epochs["seconds"].get(keys.get(r["name"]))
        r["epoch_b2b_ratio"] = round(r["epoch_b2b_s"] / base_epoch, 2) if r["epoch_b2b_s"] and base_epoch else None

    hetcomp = results["HetComp"]
    dkc = [h for h in hetcomp.get("dkc_history", []) if h.get("mean_checkpoint") is not None]
    dkc_work = [h["seconds"] for h in dkc if h.get("frac_at_last", 1.0) < 1.0 or h.get("first_call")]
    trajectories = measurements["trajectories"]
    traj_mb = sum(t["bytes"] for t in trajectories) / 2**20
    overheads = [(t["model"], t["recording_time_s"] / t["train_time_s"]) for t in trajectories if t.get("train_time_s")]
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
    if dataset == "ml-1m":  # the reference code's costs were measured on ml-1m only
        goals += reference_goals
    lines = [
        f"# Results on {dataset}",
        "",
        f"Measured {measurements['date']} on {machine['arch']} ({machine['processor']}), "
        f"{machine['cores']} cores, CPU only, torch {machine['torch']}; every row trained with "
        f"torch threads = {threads or 'default'}, {jobs} row(s) at a time; inference timed back to back "
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
        f"(DKC steps included) was measured with {jobs} row(s) sharing the machine.",
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
        "command": command, "date": measurements["date"], "cores": machine["cores"], "threads": threads,
        "jobs": jobs, "rows": rows, "inference_seconds": timings["seconds"], "dkc_seconds": dkc_work,
        "recording_overhead": dict(overheads), "trajectory_mb": round(traj_mb, 2),
        "goals": [{"goal": g, "met": ok, "measured": e} for g, ok, e in goals],
        "wall_time_s": {"invocations": round(wall_invocations, 1), "rows_summed": round(wall_rows, 1)},
        "work": os.path.relpath(work, REPO),
    }


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="bench_compare.py's --work folder (benchmarks/runs/<dataset>)")
    parser.add_argument("--out", default=None,
                        help="Markdown report (.csv and .json with the rows are written next to it)")
    parser.add_argument("--plots", action="store_true", help="also write PNG figures next to --out (needs matplotlib)")
    args = parser.parse_args()
    if args.plots:
        check_plots()
    print(rebuild(os.path.abspath(args.work), args.out, args.plots)["markdown"])


def check_plots():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("--plots needs matplotlib: pip install -e '.[plot]' (or drop --plots)")


if __name__ == "__main__":
    main()
