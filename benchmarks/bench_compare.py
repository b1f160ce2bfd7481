"""Every row of the HetComp comparison on one dataset, under one protocol, in one table.

Rows: each teacher and their rank ensemble (from the pipeline), EASE, the no-KD student
(BPR of the student's size, learning rate chosen on validation), HetComp, its ablations
(final checkpoints only, overall loss only, detailed loss only) and the distillation
baselines RRD and CL-DRD, all from the same recorded teachers, with the same student size,
epoch budget and selection on validation NDCG@20.

    # quick mode: ml-100k (bundled), RecBole's default split
    python benchmarks/bench_compare.py --out=docs/results-ml-100k.md
    # the paper's protocol on ml-1m (teachers reused from --trajectory_dir when present)
    python benchmarks/bench_compare.py --dataset=ml-1m --data_path=../shared/data \\
        --config_files=properties/protocol/hetcomp-paper.yaml --out=docs/results-ml-1m.md

Each row's result JSON is kept in --work (default benchmarks/runs/<dataset>/); a rerun skips
rows whose JSON exists, so an interrupted comparison continues where it stopped.
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import date

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

STUDENT_ROWS = [
    ("HetComp", "HetComp", {}),
    ("HetComp, final checkpoints only (no DKC)", "HetComp", {"hetcomp_checkpoints": "final"}),
    ("HetComp, overall loss only", "HetComp", {"akt_mode": "overall"}),
    ("HetComp, detailed loss only", "HetComp", {"akt_mode": "detailed"}),
    ("RRD", "RRD", {}),
    ("CL-DRD", "CLDRD", {}),
]
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (10, 20, 50)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default="dataset")
    parser.add_argument("--config_files", default="")
    parser.add_argument("--trajectory_dir", default="trajectories")
    parser.add_argument("--work", default=None, help="folder for per-row result JSON files")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--lrs", default="0.001,0.01", help="no-KD student learning rates, chosen on validation")
    parser.add_argument("--set", action="append", default=[], help="extra KEY=VALUE for every run (e.g. epochs=2)")
    parser.add_argument("--out", default=None, help="Markdown results file (a .json with the rows is written next to it)")
    args = parser.parse_args()

    import torch

    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.quick_start import run_recbole_hetcomp

    quiet_known_warnings()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = [os.path.abspath(f) for f in args.config_files.split()]
    work = os.path.abspath(args.work or os.path.join(REPO, "benchmarks", "runs", args.dataset))
    os.makedirs(work, exist_ok=True)
    out = os.path.abspath(args.out) if args.out else None
    base = {
        "data_path": os.path.abspath(args.data_path),
        "trajectory_dir": os.path.abspath(args.trajectory_dir),
        "show_progress": False,
        "state": "WARNING",
    }
    if args.threads:
        base["torch_num_threads"] = args.threads
    for item in args.set:
        key, value = item.split("=", 1)
        base[key] = json.loads(value) if value[:1] in "[{0123456789-" or value in ("true", "false") else value
    os.chdir(work)  # RecBole writes log/, saved/ and log_tensorboard/ here
    start = time.time()

    def row(name, model, overrides):
        path = os.path.join(work, name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "") + ".json")
        if not os.path.exists(path):
            config = dict(base, result_file=path, **overrides)
            run_recbole_hetcomp(model=model, dataset=args.dataset, config_file_list=files, config_dict=config,
                                read_command_line=False)
        with open(path) as f:
            return json.load(f)

    results = []
    hetcomp = None
    for name, model, overrides in STUDENT_ROWS:
        result = row(name, model, overrides)
        hetcomp = hetcomp or result
        results.append({"name": name, "kind": "student", **_pick(result)})
    student_size = hetcomp["config"].get("embedding_size", 6)
    epochs = hetcomp["config"].get("epochs", 300)
    no_kd = [row(f"BPR d{student_size} lr {lr}", "BPR", {"embedding_size": student_size, "learning_rate": float(lr),
                                                          "epochs": epochs, "eval_step": 10, "stopping_step": 5})
             for lr in args.lrs.split(",")]
    best = max(no_kd, key=lambda r: r["best_valid_score"])
    results.append({"name": f"no-KD student: BPR d{student_size} (lr {best['config']['learning_rate']}, chosen on validation)",
                    "kind": "student", **_pick(best)})
    results.append({"name": "EASE (closed form)", "kind": "reference", **_pick(row("EASE", "EASE", {}))})
    teachers = [dict(r, kind=r["kind"]) for r in hetcomp["rows"] if r["kind"] in ("teacher", "ensemble")]
    rows = teachers + results
    wall = time.time() - start

    lines = [
        f"# Results on {args.dataset}",
        "",
        f"Measured {date.today()} on {platform.machine()}, {os.cpu_count()} cores, CPU only, "
        f"torch threads = {torch.get_num_threads()}. Test split; every model selected on validation NDCG@20.",
        "",
        f"Command: `python benchmarks/bench_compare.py --dataset={args.dataset} --data_path={args.data_path}"
        + (f" --config_files={args.config_files}" if args.config_files else "")
        + "".join(f" --set {item}" for item in args.set) + (f" --out={args.out}" if args.out else "") + "`"
        + f" (this run: {wall / 60:.1f} min; rows already computed are reused from {os.path.relpath(work, REPO)}).",
        "",
        "| model | params | inference s (all users) | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in METRICS) + " |",
        "|---|---|---|" + "---|" * len(METRICS),
    ]
    for r in rows:
        t = r.get("inference_time_s")
        lines.append(f"| {r['name']} | {r['parameters']:,} | {'' if t is None else f'{t:.3f}'} | "
                     + " | ".join(f"{r['test_result'].get(m, float('nan')):.4f}" for m in METRICS) + " |")
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump(rows, f, indent=2)


def _pick(result):
    return {
        "parameters": result["parameters"],
        "inference_time_s": result.get("inference_time_s"),
        "test_result": result["test_result"],
        "valid_result": result["valid_result"],
        "train_time_s": result.get("train_time_s"),
    }


if __name__ == "__main__":
    main()
