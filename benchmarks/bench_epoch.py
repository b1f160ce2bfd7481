"""One HetComp student epoch on a real dataset, side by side with its arithmetic floor.

The split and the batches are RecBole's (the dataset and protocol given); the teachers are
synthetic (random top-N lists of the recorded shape, written as trajectory files with the
split's fingerprint), so no teacher has to be trained and the figures hold for any
teachers of that shape. Printed, measured in one process one after the other:

- the student's epoch as the trainer runs it, in the overall and in the detailed stage;
- the arithmetic floor of the same batches: scores of the batch's users over the whole
  catalogue, one log-sum-exp per row, a gather of the K target scores, backward, Adam;
- one DKC step with target rebuild (a later call, most pairs advancing);
- peak resident memory of the process (and of the GPU, on one).

The device is RecBole's (``use_gpu``/``gpu_id``): a GPU where one is visible.

    python benchmarks/bench_epoch.py --dataset=ml-1m --data_path=../shared/data \\
        --config_files=properties/protocol/hetcomp-paper.yaml --threads=1
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def synthetic_teachers(config, train_dataset, folder, n_checkpoints, top_n, n_observed, seed=0):
    """Write one random trajectory file per configured teacher, fingerprinted for this split."""
    from recbole_hetcomp.trajectory.store import Trajectory, dataset_fingerprint, save_trajectory, trajectory_path
    from recbole_hetcomp.trajectory.teacherset import parse_teachers

    rng = np.random.default_rng(seed)
    n_users, n_items = train_dataset.user_num, train_dataset.item_num
    history, _, lengths = train_dataset.history_item_matrix()
    history = history.numpy()
    fingerprint = dataset_fingerprint(config, train_dataset)
    for name, model, _ in parse_teachers(config["teachers"]):
        topn = np.stack([np.argsort(rng.random((n_users, n_items - 1)), axis=1)[:, :top_n] + 1
                         for _ in range(n_checkpoints)]).astype(np.int32)
        order = np.argsort(rng.random(history.shape) + (history == 0), axis=1)[:, :n_observed]
        observed = np.broadcast_to(np.take_along_axis(history, order, axis=1), (n_checkpoints, n_users, n_observed))
        scores = [0.1 * (t + 1) for t in range(n_checkpoints)]  # a teacher that keeps improving
        meta = {"teacher_config": {"model": model}, "fingerprint": fingerprint, "synthetic": True,
                "checkpoint_epochs": list(range(n_checkpoints)), "checkpoint_valid_scores": scores,
                "all_validations": [[t, s] for t, s in enumerate(scores)]}
        save_trajectory(trajectory_path(folder, config["dataset"], name),
                        Trajectory(teacher=name, topn=topn, observed=np.ascontiguousarray(observed), meta=meta))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--config_files", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per stage (the best is printed)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE (YAML value) for the student")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print torch.profiler's table (self CPU time per op) over N training batches per stage")
    parser.add_argument("--compile", action="store_true",
                        help="also time both stages with the loss under torch.compile (CPU: inductor), after a check "
                             "that it gives the same loss and gradients")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import yaml
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_hetcomp.compat import keep_freed_memory_for_training, quiet_known_warnings
    from recbole_hetcomp.config import Config
    from recbole_hetcomp.utils import get_model, get_trainer

    quiet_known_warnings()
    work = tempfile.mkdtemp(prefix="bench-epoch-")
    overrides = {"trajectory_dir": os.path.join(work, "trajectories"), "show_progress": False, "state": "WARNING",
                 "torch_num_threads": args.threads}
    if args.data_path:
        overrides["data_path"] = os.path.abspath(args.data_path)
    os.chdir(work)  # RecBole's log/ and saved/
    overrides.update({k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    files = [f if os.path.isabs(f) else os.path.join(REPO, f) for f in args.config_files]
    config = Config(model="HetComp", dataset=args.dataset, config_file_list=files, config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    start = time.perf_counter()
    train, valid, _ = data_preparation(config, create_dataset(config))
    keep_freed_memory_for_training(config, train.dataset.item_num)  # as a run does (--set cpu_keep_freed_memory=False: glibc's default)
    load_s = time.perf_counter() - start
    synthetic_teachers(config, train.dataset, overrides["trajectory_dir"], config["trajectory_checkpoints"],
                       config["trajectory_topn"], config["trajectory_observed"])
    model = get_model("HetComp")(config, train.dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "HetComp")(config, model)
    device = config["device"]
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"{args.dataset}: {train.dataset.user_num - 1:,} users x {train.dataset.item_num - 1:,} items, "
          f"{len(train.dataset):,} training interactions in batches of {config['train_batch_size']}; "
          f"{where}; torch {torch.__version__}; data loading {load_s:.1f} s")

    def epoch(stage):
        model.akt_stage.fill_(stage)
        sync()
        begin = time.perf_counter()
        trainer._train_epoch(train, epoch_idx=1)
        sync()
        return time.perf_counter() - begin

    t_overall = min(epoch(0) for _ in range(args.epochs))
    t_detailed = min(epoch(1) for _ in range(args.epochs))

    # The arithmetic floor: the same batches, only the full-catalogue arithmetic.
    ue = torch.nn.Parameter(model.user_embedding.weight.detach().clone())
    ie = torch.nn.Parameter(model.item_embedding.weight.detach().clone())
    opt = torch.optim.Adam([ue, ie], lr=1e-3)

    def floor_epoch():
        sync()
        begin = time.perf_counter()
        for interaction in train:
            users = torch.unique(interaction[config["USER_ID_FIELD"]].to(device))
            scores = ue[users] @ ie.T
            loss = (torch.logsumexp(scores, dim=1)[:, None] - scores.gather(1, model.targets[users])).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync()
        return time.perf_counter() - begin

    t_floor = min(floor_epoch() for _ in range(args.epochs))

    def dkc():
        sync()
        begin = time.perf_counter()
        trainer.dkc(epoch_idx=trainer.dkc_start + 10 * trainer.dkc_period)
        sync()
        return time.perf_counter() - begin

    model.akt_stage.fill_(0)
    trainer.dkc(epoch_idx=trainer.dkc_start)  # the first call only measures references
    t_dkc = dkc()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = (f"; peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB"
           if torch.device(device).type == "cuda" else "")
    print("| epoch, overall stage | epoch, detailed stage | arithmetic floor | DKC step + targets | peak RSS |")
    print("|---|---|---|---|---|")
    print(f"| {t_overall:.2f} s | {t_detailed:.2f} s | {t_floor:.2f} s | {t_dkc:.2f} s | {peak:.0f} MB{gpu} |")
    print(f"overall / floor = {t_overall / t_floor:.2f}x, detailed / floor = {t_detailed / t_floor:.2f}x")
    if args.profile:
        profile_batches(model, trainer, train, args.profile)
    if args.compile:
        compiled_epochs(model, trainer, train, config, epoch, t_overall, t_detailed)
    return 0


def profile_batches(model, trainer, train, n_batches):
    """Where a training batch's time goes: torch.profiler over ``n_batches`` batches per stage."""
    batches = [batch for _, batch in zip(range(n_batches + 3), train)]
    for stage in (0, 1):
        model.akt_stage.fill_(stage)

        def step(batch):
            trainer.optimizer.zero_grad()
            model.calculate_loss(batch).backward()
            trainer.optimizer.step()

        for batch in batches[:3]:  # warm-up
            step(batch)
        begin = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for batch in batches[3:]:
                step(batch)
        print(f"stage {stage}: {(time.perf_counter() - begin) / max(1, len(batches) - 3) * 1000:.1f} ms per batch (profiled)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def compiled_epochs(model, trainer, train, config, epoch, t_overall, t_detailed):
    """The loss under torch.compile (dynamic shapes: every batch has its own user count):
    same loss and gradients on one batch first, then the epoch times beside the eager ones."""
    eager = model.calculate_loss
    begin = time.perf_counter()
    compiled = torch.compile(eager, dynamic=True)
    batch = next(iter(train)).to(config["device"])
    for stage in (0, 1):
        model.akt_stage.fill_(stage)
        grads = []
        for loss_func in (eager, compiled):
            model.zero_grad()
            loss = loss_func(batch)
            loss.backward()
            grads.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
        (l0, g0), (l1, g1) = grads
        worst = max([abs(float(l1 - l0)) / max(abs(float(l0)), 1e-12)]
                    + [float(((a - b).abs().max() / a.abs().max().clamp_min(1e-12))) for a, b in zip(g0, g1)])
        print(f"stage {stage}: compiled loss and gradients within {worst:.1e} (relative) of eager")
    compile_s = time.perf_counter() - begin
    model.zero_grad()
    model.calculate_loss = compiled
    first = epoch(0)  # may still compile new shapes
    c_overall = min([first] + [epoch(0)])
    c_detailed = min(epoch(1) for _ in range(2))
    model.calculate_loss = eager
    print(f"torch.compile: first compilation {compile_s:.1f} s, first compiled epoch {first:.2f} s")
    print("| | epoch, overall stage | epoch, detailed stage |")
    print("|---|---|---|")
    print(f"| eager | {t_overall:.2f} s | {t_detailed:.2f} s |")
    print(f"| torch.compile | {c_overall:.2f} s ({c_overall / t_overall:.2f}x) | {c_detailed:.2f} s ({c_detailed / t_detailed:.2f}x) |")


if __name__ == "__main__":
    sys.exit(main())
