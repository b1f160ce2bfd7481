"""Peak resident memory of a HetComp student run, stage by stage, on recorded teachers.

Prints the process's resident set (now) and its peak so far after each stage: imports,
dataset, split, student built (trajectories loaded, targets built), one DKC step, one
training epoch, one full-sort validation. The teachers must be recorded already (any
pipeline run of the same dataset and protocol leaves them in ``--trajectory_dir``).

    python benchmarks/bench_memory.py --dataset=ml-1m --data_path=../shared/data \\
        --trajectory_dir=trajectories --config_files properties/protocol/hetcomp-paper.yaml \\
        properties/protocol/hetcomp-reference.yaml
"""

import argparse
import os
import resource
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def memory(label):
    with open("/proc/self/status", encoding="ascii") as f:
        current = int(f.read().split("VmRSS:")[1].split()[0]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {label} | {current:,.0f} MB | {peak:,.0f} MB |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--trajectory_dir", default="trajectories")
    parser.add_argument("--config_files", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE (YAML value) for the student")
    args = parser.parse_args(argv)
    print("| stage | resident now | peak so far |\n|---|---|---|")
    memory("imports (python)")
    import torch

    torch.set_num_threads(args.threads)
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    import yaml

    from recbole_hetcomp.compat import keep_freed_memory_for_training, quiet_known_warnings
    from recbole_hetcomp.config import Config
    from recbole_hetcomp.utils import get_model, get_trainer

    quiet_known_warnings()
    memory("imports (torch, RecBole)")
    overrides = {"trajectory_dir": os.path.abspath(args.trajectory_dir), "state": "WARNING", "show_progress": False}
    if args.data_path:
        overrides["data_path"] = os.path.abspath(args.data_path)
    overrides.update({k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    files = [f if os.path.isabs(f) else os.path.join(REPO, f) for f in args.config_files]
    config = Config(model="HetComp", dataset=args.dataset, config_file_list=files, config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    memory("dataset loaded")
    train, valid, _ = data_preparation(config, dataset)
    keep_freed_memory_for_training(config, dataset.item_num)  # as a run does (--set cpu_keep_freed_memory=False: glibc's default)
    memory("split")
    model = get_model("HetComp")(config, train.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "HetComp")(config, model)
    memory("student built (trajectories, targets)")
    trainer.dkc(epoch_idx=trainer.dkc_start)
    trainer.dkc(epoch_idx=trainer.dkc_start + trainer.dkc_period)
    memory("two DKC steps")
    trainer._train_epoch(train, epoch_idx=0)
    memory("one training epoch")
    trainer._valid_epoch(valid)
    memory("one validation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
