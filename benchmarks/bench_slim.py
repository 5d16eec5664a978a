"""Time SLIM's fit on ML-1M (``ncf`` split, seed 0) and compare its per-column solver with
Dacrema et al.'s call (scikit-learn ``ElasticNet`` on X with column j zeroed).

    python benchmarks/bench_slim.py --data-dir /work/shared/data [--workers 1 2] [--columns 20]
        [--repeat 1] [--threads 1] [--out FILE]

For each ``--workers`` count, one JSON line (``what`` "fit"): the median wall seconds of
``--repeat`` fits of ``SLIM()`` (defaults; one fit by default), W's non-zeros (``nnz``) and the
process's peak resident memory so far. Then, on ``--columns`` random columns, one line per
solver (``what`` "columns", ``variant`` "elasticnet" or "gram"): the seconds for all the
columns and ``ms_per_column`` (the Gram matrix's construction excluded), the Gram line with the
largest difference between their weights (``max_abs_diff``). Target on a 2-core machine: fit
under 2 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.sparse as sp
from harness import emit, load_split, parser, setup

from ncflab.models.slim import SLIM, _solve_columns


def compare_columns(args: argparse.Namespace, x, model: SLIM, n_columns: int) -> None:
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
    enet_s = time.perf_counter() - t0
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    l1, l2 = n_users * model.alpha * model.l1_ratio, n_users * model.alpha * (1 - model.l1_ratio)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows, cols, values, _ = _solve_columns(
            columns, gram, csc, l1, l2, n_items, model.max_iter, model.tol
        )  # top_k = n_items: every weight, as ElasticNet returns them
    gram_s = time.perf_counter() - t0
    w = sp.csc_matrix((values, (rows, cols)), shape=(n_items, n_items))
    diff = max(np.abs(w[:, [j]].toarray().ravel() - reference[j]).max() for j in columns)
    for variant, seconds, extra in (
        ("elasticnet", enet_s, {}),
        ("gram", gram_s, {"max_abs_diff": float(f"{diff:.3g}")}),
    ):
        emit(args, model="slim", dataset="ml-1m/ncf", seconds=seconds, what="columns",
             variant=variant, columns=n_columns,
             ms_per_column=round(seconds / n_columns * 1e3, 2), **extra)  # fmt: skip


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--workers", type=int, nargs="+", default=[1])
    p.add_argument("--columns", type=int, default=20, help="0 skips the comparison")
    p.set_defaults(repeat=1)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("SLIM's fit runs on the CPU only")
    setup(args)
    split = load_split("ml-1m", "ncf", args.data_dir)
    for workers in args.workers:
        times, model = [], None
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            model = SLIM().fit(split.train, workers=workers)
            times.append(time.perf_counter() - t0)
        emit(args, model="slim", dataset="ml-1m/ncf", seconds=statistics.median(times),
             runs=len(times), what="fit", workers=workers, nnz=len(model.w_data_),
             times=[round(t, 2) for t in times])  # fmt: skip
    if args.columns:
        compare_columns(args, split.train.csr("binary"), SLIM(), args.columns)


if __name__ == "__main__":
    main()
