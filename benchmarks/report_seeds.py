"""Tables and figures of the multi-seed comparison, rebuilt from its result files alone.

    python benchmarks/bench_seeds.py --out=benchmarks/results/ml-100k --report=docs/results-ml-100k-seeds.md --plots

Reads ``<out>/<row>/seed<k>.json`` and ``<out>/ensemble*/run.json`` written by
:mod:`benchmarks.bench_seeds`; nothing is recomputed. Means and standard deviations are
over student seeds (sample std, n - 1); paired differences subtract, seed by seed, two rows
trained from the same seed. The no-KD learning rate is chosen on mean validation score.
"""

import glob
import json
import os
import re
import statistics

MAIN = "ndcg@20"
SHOWN = ["ndcg@10", "ndcg@20", "ndcg@50", "recall@20", "recall@50"]
PAIRS = [("hetcomp", "final-only"), ("hetcomp-reference", "final-only"), ("hetcomp-reference", "final-only-reference"),
         ("hetcomp-default", "hetcomp-reference"), ("hetcomp-default", "final-only-default"), ("hetcomp-default", "rrd-default"), ("hetcomp-default", "rrd-default-1000"), ("final-only-default", "rrd-default-1000"),
         ("rrd-default-1000", "rrd-default"),
         ("hetcomp", "rrd"), ("hetcomp-reference", "rrd"), ("hetcomp", "hetcomp-reference"), ("hetcomp-weighted", "final-only-weighted"),
         ("hetcomp-weighted", "hetcomp"), ("hetcomp-all-pairs", "hetcomp"), ("hetcomp-period5", "hetcomp"),
         ("hetcomp-all-pairs", "final-only"), ("hetcomp-period5", "final-only"),
         ("hetcomp-reference-detailed", "final-only-reference"), ("hetcomp-reference-detailed", "hetcomp-reference"),
         ("hetcomp-reference-weighted", "hetcomp-reference"), ("final-only-reference-weighted", "final-only-reference"),
         ("hetcomp-reference-weighted", "final-only-reference-weighted")]
SIZES = (2, 16, 32, 64)
PAIRS += [(f"hetcomp-reference-d{d}", f"final-only-reference-d{d}") for d in SIZES]
PAIRS += [(f"hetcomp-default-d{d}", f"final-only-default-d{d}") for d in SIZES[1:]]
PAIRS += [("hetcomp-reference-d2-hold", "hetcomp-reference-d2"), ("hetcomp-reference-d2-hold", "final-only-reference-d2")]
DIAGNOSTICS_D64 = ("detailed", "patience20", "overall", "stall2")  # bench_seeds.DIAGNOSTICS_D64
DIAGNOSTICS_D6 = ("overall", "stall2")  # bench_seeds.DIAGNOSTICS_D6
for _f in DIAGNOSTICS_D64:
    PAIRS += [(f"hetcomp-default-d64-{_f}", "final-only-default-d64"), (f"hetcomp-default-d64-{_f}", "hetcomp-default-d64")]
for _f in DIAGNOSTICS_D6:
    PAIRS += [(f"hetcomp-default-{_f}", "final-only-default"), (f"hetcomp-default-{_f}", "hetcomp-default")]
FACTORS = ("k50", "t1", "t3", "t30", "overall-x10", "t3-detailed")  # bench_seeds.FACTORS (a test keeps them equal)
WEIGHTS_FROM = "@ensemble-weighted"  # bench_seeds.WEIGHTS_FROM
PAIRS += [("hetcomp-default-t3-detailed", "final-only-default-t3"), ("hetcomp-default-t3-detailed", "hetcomp-default-t3")]
for _f in FACTORS:
    PAIRS += [(f"hetcomp-default-{_f}", f"final-only-default-{_f}"), (f"hetcomp-default-{_f}", "hetcomp-default"),
              (f"hetcomp-default-{_f}", "final-only-default"), (f"final-only-default-{_f}", "final-only-default")]
ORDER = ["ensemble", "ensemble-weighted", "hetcomp-reference", "hetcomp-default", "final-only-default", "rrd-default", "rrd-default-1000",
         "hetcomp", "final-only", "final-only-reference", "rrd", "no-kd", "hetcomp-weighted", "final-only-weighted", "hetcomp-all-pairs", "hetcomp-period5",
         "hetcomp-reference-detailed", "hetcomp-reference-weighted", "final-only-reference-weighted"]
ORDER += [f"{row}-d{d}" for d in SIZES for row in ("hetcomp-reference", "final-only-reference", "no-kd-lr0.001")]
ORDER.insert(ORDER.index("final-only-reference-d2"), "hetcomp-reference-d2-hold")
ORDER += [f"{row}-d{d}" for d in SIZES[1:] for row in ("hetcomp-default", "final-only-default")]
ORDER += [f"hetcomp-default-d64-{f}" for f in DIAGNOSTICS_D64] + [f"hetcomp-default-{f}" for f in DIAGNOSTICS_D6]
ORDER += [f"{row}-{f}" for f in FACTORS for row in ("hetcomp-default", "final-only-default")]
MARKER = "<!-- notes below this line are kept when the report is rebuilt -->"


def load(folders):
    runs = {}
    seen = set()
    for out in folders:
        for path in sorted(glob.glob(os.path.join(out, "*", "*.json"))):
            with open(path, encoding="utf-8") as f:
                r = json.load(f)
            if (r["slug"], r["student_seed"]) in seen:
                continue  # the first folder given wins (e.g. its own ensemble rows)
            seen.add((r["slug"], r["student_seed"]))
            runs.setdefault(r["slug"], []).append(r)
    for slug in runs:
        runs[slug].sort(key=lambda r: r["student_seed"] or 0)
    hashes = {r["trajectory_hash"] for rs in runs.values() for r in rs}
    if len(hashes) > 1:
        raise SystemExit(f"result files in {', '.join(folders)} come from different teachers: {sorted(hashes)}")
    # the d6 rows only: the larger students (no-kd-lr0.001-d16, ...) are rows of their own
    no_kd = [s for s in runs if re.fullmatch(r"no-kd-lr[0-9.e-]+", s)]
    if no_kd:  # learning rate chosen on validation only
        best = max(no_kd, key=lambda s: statistics.mean(r["best_valid_score"] for r in runs[s]))
        runs["no-kd"] = runs[best]
    return runs


def members(runs, run):
    """The teachers a student learned from (in the order of its curriculum means): its
    teachers minus those the guard left out (marked in the ensemble row's teacher rows) and,
    since 2026-12-05, those its weights (a dict in its result file) set to 0. A run of older
    code kept its weight-0 teachers as members: its curriculum means say so by their count."""
    rows = (runs.get("ensemble") or [{}])[0].get("teacher_rows") or []
    weak = {t["name"] for t in rows if t.get("kind") == "teacher (left out: weak)"}
    weights = run.get("ensemble_weights")
    if weights is None and run.get("settings", {}).get("overrides", {}).get("ensemble_weights") == WEIGHTS_FROM:
        # given the ensemble-weighted row's list (bench_seeds.WEIGHTS_FROM): a run before
        # 2026-12-05 16:30 did not write the weights it was given into its result file
        weights = (runs.get("ensemble-weighted") or [{}])[0].get("ensemble_weights")
    names = [t for t in run["teachers"] if t not in weak]
    if not isinstance(weights, dict):
        return names
    taught = [t for t in names if weights.get(t, 1.0) != 0]
    counted = len(run["curriculum"][0]["mean_checkpoint"]) if run.get("curriculum") else None
    return names if counted == len(names) != len(taught) else taught


def mean_std(values):
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values, digits=4):
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def paired(runs, a, b, metric):
    by_seed = {r["student_seed"]: r["test_result"][metric] for r in runs.get(b, [])}
    return [r["test_result"][metric] - by_seed[r["student_seed"]] for r in runs.get(a, []) if r["student_seed"] in by_seed]


def code_line(runs):
    """Which commits the files came from (recorded since 2026-12-05; older files have none)."""
    versions = sorted({r.get("code") or "not recorded" for rs in runs.values() for r in rs})
    return f" Code: {', '.join(f'`{v}`' for v in versions)}." if versions != ["not recorded"] else ""


def write_report(folders, report_path, plots=False):
    folders = [folders] if isinstance(folders, str) else list(folders)
    out = " + ".join(folders)
    runs = load(folders)
    if not runs:
        raise SystemExit(f"no result files under {out}")
    ensemble = runs.get("ensemble", [{}])[0]
    lines = [f"# Multi-seed comparison: {ensemble.get('settings', {}).get('dataset', '?')}", ""]
    any_run = next(iter(runs.values()))[0]
    lines += [
        f"Result files: `{out}` (one JSON per run; this page is rebuilt from them by "
        f"`python benchmarks/bench_seeds.py --out={folders[0]}"
        f"{(' --also ' + ' '.join(folders[1:])) if folders[1:] else ''} --report={report_path}{' --plots' if plots else ''}`).",
        f"Teachers' trajectory hash: `{any_run['trajectory_hash']}` (the same in every file); "
        f"property files: {', '.join(f'`{f}`' for f in any_run['settings']['config_files']) or 'none'}; "
        f"torch threads per run: {any_run['threads']}.{code_line(runs)}",
        "Student rows: one run per student seed (`student_seed`: initialisation and batch order; the "
        "split and the teachers are the same in every run). Test metrics, mean ± std over seeds.",
        "",
        "| row | seeds (which) | " + " | ".join(m.replace("ndcg", "N").replace("recall", "R") for m in SHOWN)
        + " | share of ensemble N@20 | best epoch | epochs run | wall min |",
        "|---" * (len(SHOWN) + 6) + "|",
    ]
    base = ensemble.get("test_result", {}).get(MAIN)
    for slug in ORDER:
        if slug not in runs:
            continue
        rs = runs[slug]
        name = rs[0]["row"]
        share = fmt([r["test_result"][MAIN] / base for r in rs], 3) if base else "-"
        # the count first: a lone "2" would read as two seeds when it is seed 2
        seeds = f"{len(rs)} ({','.join(str(r['student_seed']) for r in rs)})" if rs[0]["student_seed"] is not None else "-"
        lines.append(
            f"| {name} | {seeds} | " + " | ".join(fmt([r["test_result"][m] for r in rs]) for m in SHOWN)
            + f" | {share} | {fmt([r['best_epoch'] or 0 for r in rs], 0)} | {fmt([r['epochs_run'] for r in rs], 0)}"
            + f" | {fmt([r['wall_time_s'] / 60 for r in rs], 1)}{'*' if any(r.get('resumed_from') for r in rs) else ''} |"
        )
    if any(r.get("resumed_from") for rs in runs.values() for r in rs):
        lines += ["", "\\* continued from a checkpoint after an interruption: the wall time is the last process's only."]
    lines += ["", "Paired differences, seed by seed (test; positive = the first row is better):", "",
              "| difference | seeds | N@20 | R@50 | per seed (N@20) |", "|---|---|---|---|---|"]
    for a, b in PAIRS:
        d20, d50 = paired(runs, a, b, MAIN), paired(runs, a, b, "recall@50")
        if d20:
            names = f"{runs[a][0]['row']} − {runs[b][0]['row']}"
            lines.append(f"| {names} | {len(d20)} | {fmt(d20)} | {fmt(d50)} | {', '.join(f'{d:+.4f}' for d in d20)} |")
    lines += ["", "Curriculum (DKC) per run: epoch of the switch to the detailed loss, the epochs the run trained "
              "(a stop within 5 validations of the switch, or before it, is where `hold_early_stopping` matters), and "
              "each teacher's mean checkpoint index at the switch (the last index is T - 1):", "",
              "| row | seed | switch epoch | epochs run | mean checkpoint at the switch |", "|---|---|---|---|---|"]
    for slug in [s for s in ORDER if s.startswith("hetcomp")]:  # every HetComp row, none forgotten
        for r in runs.get(slug, []):
            at = next((c for c in r["curriculum"] if c["epoch"] == r["switch_epoch"]), None)
            means = ", ".join(f"{t} {m:.2f}" for t, m in zip(members(runs, r), at["mean_checkpoint"])) if at else "-"
            switch = r["switch_epoch"]
            if switch is None:
                one_loss = r["settings"].get("overrides", {}).get("akt_mode") in ("overall", "detailed")
                switch = "- (one loss throughout)" if one_loss else "none"
            lines.append(f"| {r['row']} | {r['student_seed']} | {switch} | {r['epochs_run']} | {means} |")
    if "ensemble" in runs and ensemble.get("teacher_rows"):
        checkpoints = ensemble.get("teacher_checkpoints") or {}
        lines += ["", "Teachers (recorded once, shared by every row) and the checkpoints each kept (epoch: "
                  "validation score of the teacher's valid_metric at that checkpoint):", "",
                  "| teacher | test N@20 | test R@50 | validations | kept checkpoints |", "|---|---|---|---|---|"]
        for t in ensemble["teacher_rows"]:
            c = checkpoints.get(t["name"], {})
            kept = ", ".join(f"{e}: {v:.3f}" for e, v in zip(c.get("epochs") or [], c.get("valid_scores") or []))
            mark = {"teacher (left out: weak)": " (left out: weak)", "teacher (weak, kept)": " (weak, kept)"}.get(t.get("kind"), "")
            lines.append(f"| {t['name']}{mark} | {t['test_result'].get(MAIN, float('nan')):.4f} | "
                         f"{t['test_result'].get('recall@50', float('nan')):.4f} | {c.get('validations', '-')} | {kept or '-'} |")
    lines += serving_table(runs)
    if plots:
        lines += ["", *make_plots(runs, report_path)]
    notes = ""
    if os.path.isfile(report_path):
        with open(report_path, encoding="utf-8") as f:
            text = f.read()
        if MARKER in text:
            notes = text.split(MARKER, 1)[1]
    lines += ["", MARKER]
    with open(report_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + notes.rstrip("\n") + "\n")
    print(f"wrote {report_path}")


def curriculum_figure(plt, runs, shown, path):
    """Each teacher's mean checkpoint index against the epoch, the switch marked: one panel per row."""
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 3.8), sharey=True, squeeze=False)
    axes = axes[0]
    # one colour per teacher across panels: a row whose weights leave a teacher out has fewer lines
    colour = {}
    for slug in shown:
        for teacher in members(runs, runs[slug][0]):
            colour.setdefault(teacher, f"C{len(colour)}")
    for ax, slug in zip(axes, shown):
        r = runs[slug][0]
        for i, teacher in enumerate(members(runs, r)):
            ax.plot([c["epoch"] for c in r["curriculum"]], [c["mean_checkpoint"][i] for c in r["curriculum"]],
                    marker=".", color=colour[teacher], label=teacher)
        if r["switch_epoch"] is not None:
            ax.axvline(r["switch_epoch"], color="k", linestyle="--", linewidth=1, label="switch")
        ax.set_title(f"{r['row']} (seed {r['student_seed']})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("mean checkpoint index over users")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![curriculum]({os.path.basename(path)})"


def make_plots(runs, report_path):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = os.path.splitext(report_path)[0]
    figures = []
    # the first seed of each main HetComp row (a panel per factor row would crowd the figure)
    shown = [slug for slug in ("hetcomp", "hetcomp-reference", "hetcomp-default", "hetcomp-reference-detailed")
             if runs.get(slug)]
    if shown:
        figures.append(curriculum_figure(plt, runs, shown, f"{stem}-curriculum.png"))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    plotted = False
    for slug in ("hetcomp", "final-only", "no-kd", "hetcomp-reference", "hetcomp-default", "final-only-reference", "final-only-default"):
        for j, r in enumerate(runs.get(slug, [])):
            points = [(h["epoch"], h.get(MAIN)) for h in r["valid_history"] if isinstance(h, dict) and MAIN in h]
            if points:
                plotted = True
                ax.plot(*zip(*points), color=f"C{ORDER.index(slug)}", alpha=0.6, linewidth=1,
                        label=r["row"] if j == 0 else None)
    if plotted:  # (a page of ensembles only has no student curve yet)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation NDCG@20")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = f"{stem}-validation.png"
        fig.savefig(path, dpi=110)
        figures.append(f"![validation NDCG@20]({os.path.basename(path)})")
    plt.close(fig)
    teachers = (runs.get("ensemble") or [{}])[0].get("teacher_checkpoints") or {}
    if any(c.get("curve") for c in teachers.values()):
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        for i, (name, c) in enumerate(sorted(teachers.items())):
            if c.get("curve"):
                ax.plot(*zip(*c["curve"]), color=f"C{i}", linewidth=1, label=name)
                ax.plot(c["epochs"], c["valid_scores"], "o", color=f"C{i}", markersize=4)
            if c.get("popularity_valid_score") is not None:
                ax.axhline(c["popularity_valid_score"], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("teacher epoch")
        ax.set_ylabel(f"validation {next(iter(teachers.values())).get('valid_metric')}")
        ax.set_title("teachers' validation curves (dots: kept checkpoints; dotted: popularity)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = f"{stem}-teachers.png"
        fig.savefig(path, dpi=110)
        figures.append(f"![teachers' validation curves]({os.path.basename(path)})")
    points = serving_points(runs)
    if len(points) > 1:
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        for label, seconds, score in points:
            ax.plot(seconds, score, "o")
            ax.annotate(label, (seconds, score), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("full-sort serving time of all users, s (log; measured inside each run)")
        ax.set_ylabel("test NDCG@20")
        fig.tight_layout()
        path = f"{stem}-serving.png"
        fig.savefig(path, dpi=110)
        figures.append(f"![accuracy against serving time]({os.path.basename(path)})")
    plt.close("all")
    return figures


def serving_table(runs, share=0.95, cost=0.1):
    """Markdown lines: each model's accuracy and serving time next to the ensemble's, and which
    models reach ``share`` of its test NDCG@20 at no more than ``cost`` of its serving time."""
    points = serving_points(runs)
    ensemble = next(((sec, score) for label, sec, score in points if label == "ensemble"), None)
    if not ensemble or len(points) < 2:
        return []
    lines = ["", "Accuracy against serving time (full-sort of all users, measured inside each run on a shared "
             "machine: read the ratios; students: means over seeds):", "",
             "| model | test N@20 | share of the ensemble's N@20 | serving s | share of the ensemble's serving time |",
             "|---|---|---|---|---|"]
    for label, seconds, score in sorted(points, key=lambda p: p[1]):
        lines.append(f"| {label} | {score:.4f} | {score / ensemble[1]:.3f} | {seconds:.3f} | {seconds / ensemble[0]:.3f} |")
    reach = [label for label, seconds, score in points
             if label != "ensemble" and score >= share * ensemble[1] and seconds <= cost * ensemble[0]]
    lines += ["", f"At >= {share:.2f}x of the ensemble's test NDCG@20 and <= {cost:g}x of its serving time: "
              + (", ".join(reach) if reach else "no model measured so far") + "."]
    return lines


def serving_points(runs):
    """(label, serving seconds, test NDCG@20) per model: teachers, the ensemble, each student row (seed means)."""
    points = []
    ensemble = (runs.get("ensemble") or [{}])[0]
    for t in ensemble.get("teacher_rows") or []:
        if t.get("inference_time_s"):
            points.append((t["name"], t["inference_time_s"], t["test_result"].get(MAIN)))
    if ensemble.get("inference_time_s"):
        points.append(("ensemble", ensemble["inference_time_s"], ensemble["test_result"][MAIN]))
    for slug in ORDER:
        rs = [r for r in runs.get(slug, []) if r.get("inference_time_s") and r["student_seed"] is not None]
        if rs and slug != "no-kd":
            points.append((slug, statistics.mean(r["inference_time_s"] for r in rs),
                           statistics.mean(r["test_result"][MAIN] for r in rs)))
    return points
