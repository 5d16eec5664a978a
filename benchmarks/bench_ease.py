"""EASE's fit: the float32 in-place Cholesky solve against the float64 explicit inverse it
replaced, on real data, one BLAS thread.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ease.py --datasets ml-1m ml-latest-small
        [--repeat 3] [--l2 1000] [--data-dir DIR] [--out FILE]

Each method's fits run in a fresh process (its ``peak_mb`` is that process's max RSS after the
fits, the data loaded before them included). One JSON line per (dataset, method): ``items``,
the median seconds of ``--repeat`` fits, ``blas_threads``, and for the Cholesky solve the
largest difference of B from the float64 inverse's (``max_abs_diff_vs_f64``, computed after
``peak_mb`` is read: the reference takes more memory).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from unittest import mock

import harness  # benchmarks/ is on sys.path when the script is run
import numpy as np
from harness import emit, parser, setup, timed


def inverse_weights(x, l2: float) -> np.ndarray:
    """The former fit: B from an explicit float64 inverse (LU)."""
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def one(args: argparse.Namespace, dataset: str, method: str) -> None:
    from ncflab.data.datasets import load_dataset
    from ncflab.models.ease import ease_weights

    x = load_dataset(dataset, data_dir=args.data_dir).csr("binary")
    fit = ease_weights if method == "cholesky-f32" else inverse_weights
    out = {}
    times = [timed(lambda: out.update(b=fit(x, args.l2))) for _ in range(max(1, args.repeat))]
    peak = harness.peak_mb()
    extra = {}
    if method == "cholesky-f32":  # after the max RSS is read: the reference takes more
        ref = inverse_weights(x, args.l2)
        extra["max_abs_diff_vs_f64"] = float(f"{np.abs(out['b'] - ref).max():.3g}")
        extra["max_abs_b"] = float(f"{np.abs(ref).max():.3g}")
    with mock.patch.object(harness, "peak_mb", lambda: peak):
        emit(args, model="ease", dataset=dataset, seconds=statistics.median(times),
             runs=len(times), method=method, items=int(x.shape[1]), l2=args.l2,
             blas_threads=os.environ.get("OPENBLAS_NUM_THREADS"), **extra)  # fmt: skip


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--datasets", nargs="+", default=["ml-1m", "ml-latest-small"])
    p.add_argument("--l2", type=float, default=1000.0)
    p.add_argument("--one", nargs=2, metavar=("DATASET", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("EASE's fit runs on the CPU only")
    setup(args)
    if args.one:
        one(args, *args.one)
        return
    for dataset in args.datasets:
        for method in ("inverse-f64", "cholesky-f32"):
            cmd = [sys.executable, sys.argv[0], "--one", dataset, method, "--l2", str(args.l2),
                   "--repeat", str(args.repeat), "--threads", str(args.threads)]  # fmt: skip
            cmd += ["--data-dir", args.data_dir] if args.data_dir else []
            cmd += ["--out", str(args.out)] if args.out else []
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
