"""Time leave-one-out (+ second-latest validation) and 99/100 sampled candidates on ML-1M.

    python benchmarks/bench_split.py --data-dir /work/shared/data [--runs 5] [--threads 1]

Prints the median (and min/max) wall time of each stage over ``--runs`` runs; target < 5 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Thread pools are sized when numpy/torch load, so set the limits before importing them.
_ARGS = " ".join(sys.argv[1:]).replace("--threads=", "--threads ").split()
_THREADS = _ARGS[_ARGS.index("--threads") + 1] if "--threads" in _ARGS[:-1] else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ncflab.data.datasets import load_dataset  # noqa: E402
from ncflab.data.splits import leave_one_out, with_negatives  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("NCFLAB_DATA_DIR", "/work/shared/data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=int(_THREADS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inter = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"ml-1m: {len(inter):,} records, {inter.n_users:,} users, {inter.n_items:,} items")
    print(f"numpy {np.__version__}, threads {args.threads}, runs {args.runs}")
    stages = {"leave_one_out": [], "negatives_99": [], "negatives_100": [], "total_99": []}
    for run in range(args.runs):
        t0 = time.perf_counter()
        split = leave_one_out(inter, validation="latest")
        t1 = time.perf_counter()
        with_negatives(split, 99, seed=run)
        t2 = time.perf_counter()
        with_negatives(split, 100, seed=run)
        t3 = time.perf_counter()
        stages["leave_one_out"].append(t1 - t0)
        stages["negatives_99"].append(t2 - t1)
        stages["negatives_100"].append(t3 - t2)
        stages["total_99"].append(t2 - t0)
    for name, times in stages.items():
        t = np.array(times)
        print(f"{name:>14}: median {np.median(t):.3f} s  (min {t.min():.3f}, max {t.max():.3f})")


if __name__ == "__main__":
    main()
