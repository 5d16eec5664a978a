"""Time a DNCR training epoch on ML-1M and the pairwise ranking of every user's 101 candidates.

    python benchmarks/bench_ncr.py --data-dir /work/shared/data [--threads 1] [--runs 3]

Preset ``ncr`` (users/items with < 10 records dropped, leave-one-out, 100 sampled negatives).
Times, per thread count: one epoch of DNCR (defaults: factors 8, 96 → 32 → 16 → 8, batch 256,
one negative, so 2 × 986,459 instances) as a one-epoch fit and as the later epochs of one fit,
and the sampled test evaluation, which ranks the 101 candidates of each of the 6,040 users by win
counts over all 101 × 101 ordered pairs (6040 · 101² ≈ 61.6 M pair logits). Also times
Algorithm 1 (top-10) on the same pair logits.
Targets (2-core CPU): epoch < 30 s, ranking < 30 s. Wall and CPU (process) time are both
printed, with the load average: on a shared machine wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ncflab.data.datasets import load_dataset
from ncflab.data.splits import Split
from ncflab.evaluation.protocols import evaluate
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models import FitOptions
from ncflab.models.ncr import DNCR
from ncflab.models.ncr_rank import algorithm1_topk


def timed(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of ``fn(*args, **kwargs)``."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return time.perf_counter() - w0, time.process_time() - c0, out


def report(what: str, times: list[tuple[float, float]]) -> None:
    wall, cpu = np.array([t[0] for t in times]), np.array([t[1] for t in times])
    print(
        f"  {what}: wall median {np.median(wall):.1f} s (min {wall.min():.1f}, max "
        f"{wall.max():.1f}), CPU median {np.median(cpu):.1f} s, load {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("NCFLAB_DATA_DIR", "/work/shared/data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir))
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    inter = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    split = make_split(get_protocol("ncr"), inter, seed=0)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"ml-1m ncr: {split.n_users:,} users x {split.n_items:,} items")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"threads {threads}:")
        bench(split, args.runs)


def bench(split: Split, runs: int) -> None:
    """Time the epoch, the win-count ranking and Algorithm 1 ``runs`` times each."""
    model, options = DNCR(epochs=1, seed=0), FitOptions(device="cpu")
    epochs = [timed(model.fit, split.train, options)[:2] for _ in range(runs)]
    report(f"DNCR fit of 1 epoch ({len(split.train):,} pairs, 2 instances each)", epochs)
    # A one-epoch fit also pays the setup and its first epoch's sampling; in a real run the
    # loop samples each later epoch in a background thread while the current one trains, so a
    # later epoch costs what the training loop records (history "seconds") from epoch 2 on.
    steady = DNCR(epochs=runs + 1, seed=0).fit(split.train, options).history_[1:]
    print(
        f"  DNCR later epochs (2..{runs + 1} of one fit): wall median "
        f"{np.median([e['seconds'] for e in steady]):.1f} s"
    )
    kw = {"part": "test", "protocol": "sampled", "ks": (10,)}
    ranks = [timed(evaluate, model, split, **kw)[:2] for _ in range(runs)]
    report(f"rank 101 candidates of {split.n_users:,} users (win counts)", ranks)
    users = np.arange(split.n_users)
    items = np.concatenate([split.test.csr("binary").indices[:, None], split.negatives], 1)
    pairs = model.pair_logits(users, items)
    algos = [timed(algorithm1_topk, pairs, 10)[:2] for _ in range(runs)]
    report("Algorithm 1 top-10 on the pair logits", algos)


if __name__ == "__main__":
    main()
