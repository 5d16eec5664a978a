"""Time leave-one-out (+ second-latest validation) and 99/100 sampled candidates on ML-1M.

    python benchmarks/bench_split.py --data-dir /work/shared/data [--repeat 5] [--threads 1]
        [--out FILE]

One JSON line per stage (``what``: leave_one_out, negatives_99, negatives_100, total_99) with
the median wall seconds (``min``, ``max``) over ``--repeat`` runs; target < 5 s. ``--threads``
also sets the OpenMP/BLAS thread variables (unless already set) before numpy and torch load.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

# Thread pools are sized when numpy/torch load, so set the limits before importing them.
_ARGS = " ".join(sys.argv[1:]).replace("--threads=", "--threads ").split()
_THREADS = _ARGS[_ARGS.index("--threads") + 1] if "--threads" in _ARGS[:-1] else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

from harness import emit, parser, setup  # noqa: E402

from ncflab.data.datasets import load_dataset  # noqa: E402
from ncflab.data.splits import leave_one_out, with_negatives  # noqa: E402


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(repeat=5)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("the split runs on the CPU only")
    setup(args)
    inter = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    stages = {"leave_one_out": [], "negatives_99": [], "negatives_100": [], "total_99": []}
    for run in range(max(1, args.repeat)):
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
        emit(args, model="split", dataset="ml-1m", seconds=statistics.median(times),
             runs=len(times), what=name, min=round(min(times), 4), max=round(max(times), 4),
             records=len(inter))  # fmt: skip


if __name__ == "__main__":
    main()
