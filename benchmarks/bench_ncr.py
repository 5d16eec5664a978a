"""Time a DNCR training epoch on ML-1M and the pairwise ranking of every user's 101 candidates.

    python benchmarks/bench_ncr.py --data-dir /work/shared/data [--threads-list 1 2]
        [--repeat 1] [--threads 1] [--out FILE]

Preset ``ncr`` (users/items with < 10 records dropped, leave-one-out, 100 sampled negatives).
Times, per thread count, ``--repeat`` times each: one epoch of DNCR (defaults: factors 8,
96 → 32 → 16 → 8, batch 256, one negative, so 2 × 986,459 instances) as a one-epoch fit
(``what`` "fit-1-epoch") and as the later epochs of one fit (``what`` "later-epochs"), and the
sampled test evaluation (``what`` "rank-win-counts"), which ranks the 101 candidates of each of
the 6,040 users by win counts over all 101 × 101 ordered pairs (6040 · 101² ≈ 61.6 M pair
logits). Also times Algorithm 1 (top-10) on the same pair logits (``what`` "algorithm1-top10").
One JSON line each with the median wall seconds (``min``, ``max``), the median process CPU
seconds (``cpu_s``) and the 1-minute load average (``load_1m``): on a shared machine wall time
includes waiting for a core. Targets (2-core CPU): epoch < 30 s, ranking < 30 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from harness import add_threads_list, emit, load_split, parser, setup, thread_counts

from ncflab.data.splits import Split
from ncflab.evaluation.protocols import evaluate
from ncflab.models import FitOptions
from ncflab.models.ncr import DNCR
from ncflab.models.ncr_rank import algorithm1_topk


def wall_cpu(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn(*args, **kwargs)``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - w0, time.process_time() - c0


def report(args: argparse.Namespace, what: str, times: list[tuple[float, float]], **extra):
    wall = [t[0] for t in times]
    emit(args, model="dncr", dataset="ml-1m/ncr", seconds=statistics.median(wall),
         runs=len(times), what=what, min=round(min(wall), 3), max=round(max(wall), 3),
         cpu_s=round(statistics.median(t[1] for t in times), 3),
         load_1m=round(os.getloadavg()[0], 2), **extra)  # fmt: skip


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.set_defaults(repeat=1)
    args = p.parse_args()
    setup(args)
    split = load_split("ml-1m", "ncr", args.data_dir)
    for at in thread_counts(args):
        bench(at, split)


def bench(args: argparse.Namespace, split: Split) -> None:
    """Time the epoch, the win-count ranking and Algorithm 1 ``--repeat`` times each."""
    runs = args.repeat
    model, options = DNCR(epochs=1, seed=0), FitOptions(device=args.device)
    epochs = [wall_cpu(model.fit, split.train, options) for _ in range(runs)]
    report(args, "fit-1-epoch", epochs, batch=model.batch_size, samples=2 * len(split.train),
           pairs=len(split.train))  # fmt: skip
    # A one-epoch fit also pays the setup and its first epoch's sampling; in a real run the
    # loop samples each later epoch in a background thread while the current one trains, so a
    # later epoch costs what the training loop records (history "seconds") from epoch 2 on.
    later = DNCR(epochs=runs + 1, seed=0).fit(split.train, options).history_[1:]
    steady = [e["seconds"] for e in later]
    emit(args, model="dncr", dataset="ml-1m/ncr", seconds=statistics.median(steady),
         batch=model.batch_size, runs=len(steady), samples=2 * len(split.train),
         what="later-epochs", min=round(min(steady), 3), max=round(max(steady), 3),
         load_1m=round(os.getloadavg()[0], 2))  # fmt: skip
    kw = {"part": "test", "protocol": "sampled", "ks": (10,)}
    ranks = [wall_cpu(evaluate, model, split, **kw) for _ in range(runs)]
    report(args, "rank-win-counts", ranks, users=split.n_users, candidates=101)
    users = np.arange(split.n_users)
    items = np.concatenate([split.test.csr("binary").indices[:, None], split.negatives], 1)
    pairs = model.pair_logits(users, items)
    algos = [wall_cpu(algorithm1_topk, pairs, 10) for _ in range(runs)]
    report(args, "algorithm1-top10", algos, users=split.n_users, candidates=101)


if __name__ == "__main__":
    main()
