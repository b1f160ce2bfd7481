"""How the DKC step and the student's training cost grow with users and items (synthetic).

For each size (users x items), with M = 6 teachers x T = 4 checkpoints x top-100 lists:
- one whole DKC step as the trainer runs it: the student's top-D ranking of every user
  (MF, d = 6, 50 training items per user masked), a DKC call where most pairs advance and
  are re-measured, and the target rebuild;
- the student's loss (overall and detailed stage) forward + backward + Adam step on one
  batch of ~1,000 unique users over the full catalogue, and the epoch this implies for
  R = 50 interactions per user in batches of 1,024 (R / 1,024 batches);
- the memory the trajectories take (int64, as the student holds them) and the process's
  peak resident memory after the size (it only grows: read the increments).

    python benchmarks/bench_scale.py --threads=1
    python benchmarks/bench_scale.py --sizes 6040x3706 30000x15000 100000x50000 --threads=1
    python benchmarks/bench_scale.py --device cuda          # on a GPU: peak memory is the GPU's
"""

import argparse
import resource
import time

import torch

from recbole_hetcomp.distill.akt import detailed_loss, overall_loss
from recbole_hetcomp.distill.dkc import CurriculumState, build_targets, dkc_step
from recbole_hetcomp.distill.mf import full_scores
from recbole_hetcomp.distill.ranking import topk_unobserved


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn, repeats=1, device=torch.device("cpu")):
    """Best wall time of ``repeats`` calls; on a GPU after one untimed warm-up, synchronised."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        fn()
        sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def one_size(n_users, n_items, args, gen):
    m, t, n, d = 6, 4, 100, 6
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    traj = torch.randint(1, n_items, (m, t, n_users, n), generator=gen).to(device)  # int64, as in the student
    traj_gb = traj.numel() * 8 / 2**30
    history = torch.randint(1, n_items, (n_users, 50), generator=gen).to(device)
    user_e = torch.randn(n_users, d, generator=gen).to(device)
    item_e = torch.randn(n_items, d, generator=gen).to(device)
    n_ckpt = torch.full((m,), t, dtype=torch.long, device=device)

    def student_ranking():
        step = max(1, 1_000_000 // n_items)
        out = torch.empty(n_users, args.depth, dtype=torch.long, device=device)
        for start in range(0, n_users, step):
            rows = slice(start, min(start + step, n_users))
            mask = torch.zeros(rows.stop - start, n_items, dtype=torch.bool, device=device).scatter_(1, history[rows], True)
            out[rows] = topk_unobserved(user_e[rows] @ item_e.T, mask, args.depth)
        return out

    student = student_ranking()
    measured = CurriculumState.start(n_ckpt, n_users, device)
    dkc_step(measured, traj, n_ckpt, student, epoch=10, depth=args.depth)
    saved = measured.state_dict()

    def later_call():
        state = CurriculumState.start(n_ckpt, n_users, device)
        state.load_state_dict(saved)
        dkc_step(state, traj, n_ckpt, student, epoch=200, depth=args.depth)

    t_student = timed(student_ranking, device=device)
    t_dkc = timed(later_call, device=device)
    t_targets = timed(lambda: build_targets(traj, measured.checkpoint, n_items, args.k), device=device)

    batch_users = min(n_users - 1, 1000)
    users = (torch.randperm(n_users - 1, generator=gen)[:batch_users] + 1).to(device)
    target = build_targets(traj[:, :, users], measured.checkpoint[:, users], n_items, args.k)
    observed = history[users, :10]
    ue = torch.nn.Parameter(user_e.clone())
    ie = torch.nn.Parameter(item_e.clone())
    opt = torch.optim.Adam([ue, ie], lr=1e-3)

    def batch(loss_fn):
        def run():
            scores = full_scores(ue[users], ie)
            loss = loss_fn(scores, observed, observed != 0, target, history[users]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return run

    t_overall = timed(batch(overall_loss), repeats=3, device=device)
    t_detailed = timed(batch(detailed_loss), repeats=3, device=device)
    batches = 50 * n_users / 1024
    return {
        "size": f"{n_users:,} x {n_items:,}",
        "trajectories_gb": traj_gb,
        "student_s": t_student,
        "dkc_s": t_dkc,
        "targets_s": t_targets,
        "step_s": t_student + t_dkc + t_targets,
        "batch_overall_s": t_overall,
        "batch_detailed_s": t_detailed,
        "epoch_overall_est_s": batches * t_overall,
        "epoch_detailed_est_s": batches * t_detailed,
        "peak_rss_gb": peak_rss_gb(),
        "peak_gpu_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["6040x3706", "30000x15000", "100000x50000"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu, torch threads = {args.threads}"
    print(f"{where}; torch {torch.__version__}; M = 6 teachers x T = 4 checkpoints x N = 100; K = {args.k}, D = {args.depth}")
    print("| users x items | trajectories (int64) | student top-D | DKC call | targets | whole DKC step "
          "| batch, overall loss | batch, detailed loss | epoch est. (R = 50/user), overall / detailed | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        users, items = (int(x) for x in size.lower().split("x"))
        r = one_size(users + 1, items + 1, args, gen)  # + RecBole's padding ids
        print(f"| {r['size']} | {r['trajectories_gb']:.2f} GB | {r['student_s']:.2f} s | {r['dkc_s']:.2f} s | "
              f"{r['targets_s']:.2f} s | {r['step_s']:.2f} s | {r['batch_overall_s'] * 1000:.0f} ms | "
              f"{r['batch_detailed_s'] * 1000:.0f} ms | {r['epoch_overall_est_s']:.0f} s / {r['epoch_detailed_est_s']:.0f} s | "
              f"{r['peak_rss_gb']:.1f} GB" + ("" if r["peak_gpu_gb"] is None else f", GPU {r['peak_gpu_gb']:.1f} GB") + " |",
              flush=True)


if __name__ == "__main__":
    main()
