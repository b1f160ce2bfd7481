"""Teachers on one dataset: training time with and without trajectory recording, the store's
size on disk, and full-sort inference time of each teacher and of their rank ensemble.

Each teacher is trained twice back to back in this process (plain, then recording), same
seed and settings, so the two times are comparable on a noisy shared machine; the recorder
also times itself (recording_time_s), which is the less noisy overhead figure.

    python benchmarks/bench_teachers.py --dataset=ml-1m --data_path=../shared/data --epochs=5 --threads=1

Writes a Markdown table to stdout and, with --out, to a file (plus a JSON next to it).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default="dataset")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per teacher run (validation every epoch)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config_files", default=os.path.join(REPO, "properties", "protocol", "hetcomp-paper.yaml"))
    parser.add_argument("--teachers", default=None, help="comma-separated subset of the protocol's teachers")
    parser.add_argument("--out", default=None, help="Markdown file to write")
    args = parser.parse_args()

    import torch

    from recbole_hetcomp.compat import quiet_known_warnings
    from recbole_hetcomp.config import Config
    from recbole_hetcomp.quick_start import run_recbole_hetcomp
    from recbole_hetcomp.trajectory.record import teacher_config_dict
    from recbole_hetcomp.trajectory.store import trajectory_path
    from recbole_hetcomp.trajectory.teacherset import parse_teachers

    quiet_known_warnings()
    torch.set_num_threads(args.threads)
    files = [os.path.abspath(f) for f in args.config_files.split()]
    data_path = os.path.abspath(args.data_path)
    out = os.path.abspath(args.out) if args.out else None
    work = tempfile.mkdtemp(prefix="bench-teachers-")
    os.chdir(work)  # RecBole writes log/ and saved/ into the working directory
    base = {"data_path": data_path, "show_progress": False, "state": "WARNING",
            "trajectory_dir": os.path.join(work, "trajectories"), "torch_num_threads": args.threads}
    probe = Config(model="RankEnsemble", dataset=args.dataset, config_file_list=files, config_dict=base)
    teachers = parse_teachers(probe["teachers"])
    if args.teachers:
        wanted = set(args.teachers.split(","))
        teachers = [t for t in teachers if t[0] in wanted]
    rows = []
    start = time.time()
    for name, model, overrides in teachers:
        settings = teacher_config_dict(probe, overrides, name)
        settings.update(epochs=args.epochs, eval_step=1, stopping_step=args.epochs + 1)
        plain = dict(settings, record_trajectory=False)
        timings = {}
        for label, cfg in (("plain", plain), ("recording", settings)):
            result = run_recbole_hetcomp(model=model, dataset=args.dataset, config_file_list=files, config_dict=cfg)
            timings[label] = result
        path = trajectory_path(base["trajectory_dir"], args.dataset, name)
        rows.append({
            "teacher": name,
            "train_s_plain": timings["plain"]["train_time_s"],
            "train_s_recording": timings["recording"]["train_time_s"],
            "recording_s": timings["recording"]["recording_time_s"],
            "store_mb": os.path.getsize(path) / 2**20,
            "inference_s": timings["recording"]["inference_time_s"],
            "test_ndcg@20": timings["recording"]["test_result"].get("ndcg@20"),
        })
        print(json.dumps(rows[-1]), flush=True)
    ensemble = run_recbole_hetcomp(
        model="RankEnsemble", dataset=args.dataset, config_file_list=files,
        config_dict=dict(base, teachers=[{"model": m, "name": n, **o} for n, m, o in teachers]),
    )
    ens_row = ensemble["rows"][-1]
    total = time.time() - start

    lines = [
        f"Measured {date.today()} on {platform.machine()}, {os.cpu_count()} cores, CPU only, torch threads = {args.threads}, "
        f"dataset {args.dataset}, {args.epochs} epochs per teacher with validation (and recording) every epoch.",
        "",
        f"Command: `python benchmarks/bench_teachers.py --dataset={args.dataset} --data_path={args.data_path} "
        f"--epochs={args.epochs} --threads={args.threads}`",
        "",
        "| teacher | train s (plain) | train s (recording) | wall overhead | recorder's own time | store MB | full-sort inference s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['teacher']} | {r['train_s_plain']:.1f} | {r['train_s_recording']:.1f} | "
            f"{(r['train_s_recording'] / r['train_s_plain'] - 1):+.1%} | {r['recording_s'] / r['train_s_recording']:.1%} | "
            f"{r['store_mb']:.2f} | {r['inference_s']:.3f} |"
        )
    lines.append(
        f"| **rank ensemble** | | | | | {sum(r['store_mb'] for r in rows):.2f} (all files) | "
        f"{ens_row['inference_time_s']:.3f} (all teachers + aggregation) |"
    )
    lines += ["", f"End-to-end wall time of this benchmark: {total / 60:.1f} min."]
    text = "\n".join(lines)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump({"rows": rows, "ensemble": ens_row, "threads": args.threads, "epochs": args.epochs}, f, indent=2)


if __name__ == "__main__":
    main()
