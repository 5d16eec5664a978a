"""Time SLIM's fit on ML-1M (``ncf`` split, seed 0) and compare its per-column solver with
Dacrema et al.'s call (scikit-learn ``ElasticNet`` on X with column j zeroed).

    python benchmarks/bench_slim.py --data-dir /work/shared/data [--workers 1 2] [--columns 20]

For each ``--workers`` count: the wall time of ``SLIM().fit`` (defaults) and the process's peak
resident memory so far. Then, on ``--columns`` random columns: milliseconds per column of both
solvers (the Gram matrix's construction excluded) and the largest difference between their
weights. Target on a 2-core machine: fit under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.datasets import load_dataset
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models.slim import SLIM, _solve_columns


def compare_columns(x, model: SLIM, n_columns: int) -> None:
    """Per-column time and weights of SLIM's Gram solver against ``ElasticNet`` on sparse X,
    as Dacrema et al. call it (same alpha, l1_ratio, max_iter, tol)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    n_users, n_items = x.shape
    columns = np.random.default_rng(0).choice(n_items, n_columns, replace=False)
    csc = x.tocsc().astype(np.float32)
    enet = ElasticNet(
        alpha=model.alpha, l1_ratio=model.l1_ratio, positive=True, fit_intercept=False,
        copy_X=False, max_iter=model.max_iter, tol=model.tol,
    )  # fmt: skip
    reference = {}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in columns:
            y = csc[:, j].toarray().ravel()
            start, end = csc.indptr[j], csc.indptr[j + 1]
            saved = csc.data[start:end].copy()
            csc.data[start:end] = 0.0  # Dacrema et al.: column j of X zeroed while it is fitted
            reference[j] = enet.fit(csc, y).coef_.copy()
            csc.data[start:end] = saved
    enet_ms = (time.perf_counter() - t0) / n_columns * 1e3
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    l1, l2 = n_users * model.alpha * model.l1_ratio, n_users * model.alpha * (1 - model.l1_ratio)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows, cols, values, _ = _solve_columns(
            columns, gram, csc, l1, l2, n_items, model.max_iter, model.tol
        )  # top_k = n_items: every weight, as ElasticNet returns them
    gram_ms = (time.perf_counter() - t0) / n_columns * 1e3
    w = sp.csc_matrix((values, (rows, cols)), shape=(n_items, n_items))
    diff = max(np.abs(w[:, [j]].toarray().ravel() - reference[j]).max() for j in columns)
    print(
        f"per column ({n_columns} random columns): ElasticNet on sparse X {enet_ms:.1f} ms, "
        f"SLIM's Gram solver {gram_ms:.1f} ms; max |w_gram - w_enet| {diff:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--columns", type=int, default=20, help="0 skips the comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    split = make_split(get_protocol("ncf"), data, seed=0)
    for workers in args.workers:
        t0 = time.perf_counter()
        model = SLIM().fit(split.train, workers=workers)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"workers {workers}: fit {seconds:.1f} s, W {len(model.w_data_)} non-zeros, "
            f"peak RSS so far {peak:.0f} MiB"
        )
    if args.columns:
        compare_columns(split.train.csr("binary"), SLIM(), args.columns)


if __name__ == "__main__":
    main()
