"""EASE's fit: the float32 in-place Cholesky solve against the float64 explicit inverse it
replaced, on real data, one BLAS thread.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ease.py --datasets ml-1m ml-latest-small
        [--runs 3] [--l2 1000] [--data-dir DIR]

Each fit runs in a fresh process (its peak memory is that process's max RSS, the data loaded
before the fit included). Prints one JSON line per (dataset, method): items, median seconds of
``--runs`` fits, max RSS, and for the Cholesky solve the largest difference of B from the
float64 inverse's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def inverse_weights(x, l2: float) -> np.ndarray:
    """The former fit: B from an explicit float64 inverse (LU)."""
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b.astype(np.float32)


def one(dataset: str, method: str, runs: int, l2: float, data_dir: str | None) -> dict:
    from ncflab.data.datasets import load_dataset
    from ncflab.models.ease import ease_weights

    x = load_dataset(dataset, data_dir=data_dir).csr("binary")
    fit = ease_weights if method == "cholesky-f32" else inverse_weights
    times, b = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        b = fit(x, l2)
        times.append(time.perf_counter() - t0)
    row = {
        "dataset": dataset,
        "items": int(x.shape[1]),
        "method": method,
        "seconds": round(float(np.median(times)), 2),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    if method == "cholesky-f32":  # after the max RSS is read: the reference takes more
        ref = inverse_weights(x, l2)
        row["max_abs_diff_vs_f64"] = float(f"{np.abs(b - ref).max():.3g}")
        row["max_abs_b"] = float(f"{np.abs(ref).max():.3g}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-1m", "ml-latest-small"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--l2", type=float, default=1000.0)
    parser.add_argument("--data-dir", default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.runs, args.l2, args.data_dir)), flush=True)
        return
    for dataset in args.datasets:
        for method in ("inverse-f64", "cholesky-f32"):
            cmd = [sys.executable, __file__, "--one", dataset, method, "--runs", str(args.runs)]
            cmd += ["--l2", str(args.l2)] + (["--data-dir", args.data_dir] if args.data_dir else [])
            subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
