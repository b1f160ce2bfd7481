"""Time one DKC curriculum update and one target rebuild on random data.

HetComp (Kang et al., WWW 2023) rebuilds the student's targets every few
epochs; this checks that the batched DKC maths stays well under a second at
MovieLens-1M scale (6,041 users incl. padding, 3,707 items, 6 teachers x 4
checkpoints x top-100 lists) on a CPU-only machine.

    python benchmarks/bench_dkc_step.py --threads 1 2
    python benchmarks/bench_dkc_step.py --device cuda      # on a GPU

"whole step" = the student's top-D ranking of all users + a later DKC call (the
expensive case: most pairs advance and are re-measured) + the target rebuild.
"""

from __future__ import annotations

import argparse
import time

import torch

from recbole_hetcomp.distill.dkc import CurriculumState, build_targets, dkc_step
from recbole_hetcomp.distill.ranking import topk_unobserved


def random_ranked_lists(n_lists: int, n_users: int, n_items: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """``[n_lists, n_users, length]`` int32 lists of distinct item ids >= 1."""
    out = torch.empty(n_lists, n_users, length, dtype=torch.int32)
    for i in range(n_lists):
        noise = torch.rand(n_users, n_items - 1, generator=gen)
        out[i] = (noise.topk(length, dim=1).indices + 1).to(torch.int32)
    return out


def best_of(fn, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    """Best wall time of ``repeats`` calls (after one untimed warm-up on a GPU)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        fn()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=6041)
    parser.add_argument("--items", type=int, default=3707)
    parser.add_argument("--teachers", type=int, default=6)
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--length", type=int, default=100, help="trajectory list length N")
    parser.add_argument("--k", type=int, default=100, help="target length K")
    parser.add_argument("--depth", type=int, default=50, help="discrepancy depth")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)

    gen = torch.Generator().manual_seed(0)
    m, t, u = args.teachers, args.checkpoints, args.users
    traj = random_ranked_lists(m * t, u, args.items, args.length, gen).view(m, t, u, args.length)
    # A one-shot teacher (like EASE) among them, as in practice.
    n_ckpt = torch.full((m,), t, dtype=torch.long)
    n_ckpt[-1] = 1
    student = random_ranked_lists(1, u, args.items, args.depth, gen)[0]
    traj, n_ckpt_dev, student = traj.to(device), n_ckpt.to(device), student.to(device)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"users={u} items={args.items} teachers={m} checkpoints={t} N={args.length} "
          f"K={args.k} depth={args.depth} chunk={args.chunk_size} device={name} torch={torch.__version__}")
    # The student's own ranking, which the trainer computes before each step (MF, d = 6,
    # about 100 training items per user masked), chunked like HetComp.student_topk.
    user_e, item_e = torch.randn(u, 6, generator=gen), torch.randn(args.items, 6, generator=gen)
    history = torch.randint(1, args.items, (u, 100), generator=gen)
    user_e, item_e, history = user_e.to(device), item_e.to(device), history.to(device)

    def student_ranking() -> None:
        step = max(1, 1_000_000 // args.items)
        for start in range(0, u, step):
            rows = slice(start, min(start + step, u))
            mask = torch.zeros(rows.stop - start, args.items, dtype=torch.bool, device=device).scatter_(1, history[rows], True)
            topk_unobserved(user_e[rows] @ item_e.T, mask, args.depth)

    print(f"{'threads':>7} {'student':>10} {'dkc first':>10} {'dkc later':>10} {'targets':>10} {'whole step':>10}  advanced")
    for threads in args.threads:
        torch.set_num_threads(threads)

        def first_call() -> None:
            dkc_step(CurriculumState.start(n_ckpt, u, device), traj, n_ckpt_dev, student, epoch=10,
                     depth=args.depth, chunk_size=args.chunk_size)

        # Later calls are timed from a state with references measured and a
        # threshold below 1, so every open pair advances and is re-measured
        # (the most expensive case).
        measured = CurriculumState.start(n_ckpt, u, device)
        dkc_step(measured, traj, n_ckpt_dev, student, epoch=10, depth=args.depth, chunk_size=args.chunk_size)
        saved = measured.state_dict()
        stats = {}

        def later_call() -> None:
            state = CurriculumState.start(n_ckpt, u, device)
            state.load_state_dict(saved)
            stats.update(dkc_step(state, traj, n_ckpt_dev, student, epoch=200,
                                  depth=args.depth, chunk_size=args.chunk_size))

        def targets() -> None:
            build_targets(traj, measured.checkpoint, args.items, args.k, chunk_size=args.chunk_size)

        t_student = best_of(student_ranking, args.repeats, device)
        t_first = best_of(first_call, args.repeats, device)
        t_later = best_of(later_call, args.repeats, device)
        t_targets = best_of(targets, args.repeats, device)
        print(f"{threads:>7} {t_student:>9.3f}s {t_first:>9.3f}s {t_later:>9.3f}s {t_targets:>9.3f}s "
              f"{t_student + t_later + t_targets:>9.3f}s  {stats['frac_advanced']:.2f}")


if __name__ == "__main__":
    main()
