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

The teachers are trained (and recorded) first, once, by the ensemble row alone, unless their
files are already in --trajectory_dir (also when --only leaves the ensemble row out: the
rows it names need the teachers); the other rows then run --jobs at a time, each in a fresh
process. A row that fails is reported at once in one line (its traceback is kept in
<row>.error.txt) while the others go on; the command then exits with an error naming the
failed rows. Each row's result JSON is kept in --work (default benchmarks/runs/<dataset>/); a
rerun reuses rows whose JSON exists (and refuses one computed with other --set values), so
an interrupted comparison continues where it stopped. At the end every model is loaded from
its checkpoint and timed back to back in this process. The report (Markdown, plus .csv and
.json next to it, and PNG figures with --plots) states the command, date, machine and
threads. --set applies to the student rows only (teachers keep the protocol's settings).
The students learn the equal-weight ensemble, as the paper (and as the committed reports
were run); `--set ensemble_weights=validation` gives every one of them the weighted one.

What runs is in compare_rows.py (the rows, their scheduling, the timings, kept in
<work>/measurements.json); the tables and figures are in compare_report.py, which rebuilds
them from the work folder alone:

    python benchmarks/compare_report.py --work=benchmarks/runs/ml-1m --out=docs/results-ml-1m.md --plots
"""


import argparse
import os
import sys
import time

import compare_report
import compare_rows


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
                        "words (and the teachers they need), then stop (e.g. 'no-KD,EASE' while the teachers "
                        "train elsewhere)")
    parser.add_argument("--allow_missing", action="store_true", help="write the report even if baseline or "
                        "ablation rows are still being computed elsewhere (they are listed as missing)")
    parser.add_argument("--plots", action="store_true", help="also write PNG figures next to --out (needs matplotlib)")
    args = parser.parse_args()
    if args.plots:
        compare_report.check_plots()

    files = [os.path.abspath(f) for f in args.config_files.split()]
    work = os.path.abspath(args.work or os.path.join(compare_rows.REPO, "benchmarks", "runs", args.dataset))
    os.makedirs(work, exist_ok=True)
    base, student = compare_rows.settings(args.data_path, args.trajectory_dir, args.threads, args.set)
    rows = compare_rows.plan(base, student, args.ease_weights.split(","), args.lrs.split(","))
    start = time.time()
    computed, failed, blocked = compare_rows.run_rows(
        rows, compare_rows.select(rows, args.only), args.jobs, args.dataset, files, work, args.threads)
    compare_rows.log_invocation(work, time.time() - start, computed, failed, args.jobs, args.threads)
    if failed:
        sys.exit(compare_rows.failure_message(failed, blocked, work))
    if args.only:
        return

    missing = [name for name in rows if not os.path.exists(compare_rows.row_file(work, name))]
    ease = [n for n, row in rows.items() if row.model == "EASE"]
    problem = compare_report.missing_problem(missing, ease, args.allow_missing)
    if problem:
        sys.exit(problem)
    present = [name for name in rows if name not in missing]
    measurements = compare_rows.measure(rows, present, args.dataset, files, base, args.threads, work)
    measurements.update(
        command=command_line(args), dataset=args.dataset, jobs=args.jobs, threads=args.threads,
        rows=list(rows), missing=missing, ease=ease, no_kd=[n for n, row in rows.items() if row.model == "BPR"])
    compare_rows.write_measurements(work, measurements)
    report = compare_report.rebuild(work, args.out, args.plots)
    print(report["markdown"])


def command_line(args):
    """This invocation as the report states it (the flags that change what is computed or written)."""
    return ("python benchmarks/bench_compare.py" + (f" --dataset={args.dataset}" if args.dataset != "ml-100k" else "")
            + (f" --data_path={args.data_path}" if args.data_path != "dataset" else "")
            + (f" --config_files={args.config_files}" if args.config_files else "")
            + (f" --jobs={args.jobs}" if args.jobs != 1 else "") + (f" --threads={args.threads}" if args.threads else "")
            + "".join(f" --set {s}" for s in args.set) + (f" --out={args.out}" if args.out else "")
            + (" --plots" if args.plots else ""))


if __name__ == "__main__":
    main()
