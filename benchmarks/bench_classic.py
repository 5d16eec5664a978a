"""Fit time of the closed-form and neighbourhood baselines on ML-1M (``ncf`` split, seed 0),
with their defaults: ``ease``, ``itemknn``, ``userknn``, ``p3alpha``, ``rp3beta``, ``puresvd``
(and ``slim`` with ``--slim``: about two minutes per fit).

    python benchmarks/bench_classic.py --data-dir /work/shared/data [--repeats 3]
        [--threads 1 2] [--models ease itemknn] [--slim]

For each thread count and model: the median (min, max) wall seconds of ``fit`` over
``--repeats`` fits, the median process CPU seconds (on a shared machine, wall time overstates
the work), the stored model's size and the process's peak resident memory so far. Targets on
this 2-core machine (issue 6): EASE under 10 s, ItemKNN under 5 s, SLIM under 2 minutes.
``benchmarks/bench_mf.py`` times the ALS epochs, ``benchmarks/bench_slim.py`` SLIM's solver.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from ncflab.data.datasets import load_dataset
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models import MODELS

FAST = ("ease", "itemknn", "userknn", "p3alpha", "rp3beta", "puresvd")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def state_mb(model: object) -> float:
    """Size of the learned arrays that ``save`` would write."""
    return sum(t.numel() * t.element_size() for t in model.state_arrays().values()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--models", nargs="+", default=list(FAST))
    parser.add_argument("--slim", action="store_true", help="also time slim (one fit)")
    args = parser.parse_args()
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    train = make_split(get_protocol("ncf"), data, seed=0).train
    print(f"ml-1m train: {train.n_users} users, {train.n_items} items, {len(train)} records")
    names = list(args.models) + (["slim"] if args.slim else [])
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in names:
            repeats = 1 if name == "slim" else args.repeats
            wall, cpu = [], []
            for _ in range(repeats):
                model = MODELS[name]()
                w0, c0 = time.perf_counter(), time.process_time()
                model.fit(train)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
            wall_a = np.array(wall)
            print(
                f"{name:8s} threads={threads}: fit {np.median(wall_a):6.2f} s "
                f"({wall_a.min():.2f}–{wall_a.max():.2f}, {repeats} fits), CPU "
                f"{np.median(cpu):6.2f} s, model {state_mb(model):6.1f} MB, "
                f"peak RSS {peak_mb():.0f} MB"
            )


if __name__ == "__main__":
    main()
