"""SLIM: Sparse Linear Methods for top-N recommendation (Ning & Karypis, ICDM 2011), the
ElasticNet variant as tuned by Dacrema, Cremonesi & Jannach (RecSys 2019; TOIS 2021).

Scores are S = X W (Ning & Karypis, Eq. 1) with X the binary training matrix (n_users, n_items)
and W (n_items, n_items) sparse, non-negative, with a zero diagonal: the solution of (Eq. 2)

    min_W ½‖X − X W‖²_F + (β/2)‖W‖²_F + λ‖W‖₁   subject to  W ≥ 0,  diag(W) = 0,

which separates into one independent problem per column (Eq. 3):

    w_j = argmin_w ½‖x_j − X w‖² + l1‖w‖₁ + (l2/2)‖w‖²   subject to  w ≥ 0,  w_j = 0.

Dacrema et al. solve each column with scikit-learn's ``ElasticNet(positive=True,
fit_intercept=False, max_iter=100, tol=1e-4)`` on X with column j zeroed, whose objective is the
one above divided by n_users, so l1 = n_users·alpha·l1_ratio and l2 = n_users·alpha·(1 −
l1_ratio); they keep each column's ``top_k`` largest weights. This module solves the same
problems with the same coordinate descent (scikit-learn's own Cython routine, cyclic order, the
same stopping rule: duality gap ≤ tol·‖x_j‖²) on the Gram matrix G = XᵀX instead of on X:
zeroing column j of X is zeroing row and column j of G, and with G precomputed a column costs
O(n_items × active weights) per sweep instead of O(nnz(X)). On ml-1m that is 5–7× faster per
column than Dacrema et al.'s call, with the same weights to 1e-5 (``benchmarks/bench_slim.py``;
tests/test_slim.py checks them against ``ElasticNet``). Columns are independent, so they are
solved by ``workers`` threads (the routine releases the GIL), each with its own copy of G
(memory: (1 + workers) dense n_items² float32 matrices while fitting, then W sparse with at most
``top_k`` entries per column); the weights do not depend on the number of workers.

Two departures from Dacrema et al.'s code: the coordinates are visited in cyclic order (their
``selection="random"`` makes a fit depend on a random stream), and a column with fewer than
``top_k`` non-zero weights keeps them all (their code then drops the smallest one).

A new user is scored from their row like a training user, S_new = x_new W (fold-in).
"""

from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.models.similarity import store_csr, stored_csr
from ncflab.training.options import FitOptions

__all__ = ["SLIM", "slim_weights"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class SLIM(Recommender):
    """SLIM ElasticNet (see the module docstring for the problem and the solver).

    Attributes:
        alpha: scikit-learn's overall penalty; l1 = n_users·alpha·l1_ratio (λ in Ning & Karypis,
            Eq. 2) and l2 = n_users·alpha·(1 − l1_ratio) (β).
        l1_ratio: the share of ``alpha`` that is L1, in [0, 1].
        top_k: largest weights kept per column of W (Dacrema et al.'s ``topK``).
        max_iter: coordinate-descent sweeps per column at most (Dacrema et al.: 100).
        tol: stop a column when its duality gap is ≤ tol·‖x_j‖² (scikit-learn's rule; 1e-4).

    Defaults alpha 0.05, l1_ratio 0.01, top_k 200: the best validation NDCG@10 on ML-1M
    (``ncf`` protocol, seed 0), on a plateau where the L1 term alone leaves few enough weights
    per column that a larger top_k hardly matters. The grid, the test figures and the
    comparison with Dacrema et al.'s refitted results are in docs/defaults.md.

    Learned state: ``W`` (n_items, n_items) sparse as ``w_indptr_``/``w_indices_``/``w_data_``
    (column j = the weights predicting item j) and the binary training matrix as
    ``indptr_``/``indices_``.
    """

    name: ClassVar[str] = "slim"
    # ``ncflab tune``'s default space: Dacrema et al.'s ranges (alpha 1e-3–1, topK 5–1000,
    # l1_ratio from 1e-5) but l1_ratio from 1e-3: a smaller L1 leaves denser columns and slower
    # fits (timings in docs/defaults.md).
    search_space: ClassVar[dict] = {
        "alpha": {"low": 1e-3, "high": 1.0, "log": True},
        "l1_ratio": {"low": 1e-3, "high": 1.0, "log": True},
        "top_k": {"low": 5, "high": 1000, "log": True, "int": True},
    }
    alpha: float = 0.05
    l1_ratio: float = 0.01
    top_k: int = 200
    max_iter: int = 100
    tol: float = 1e-4

    def _check_params(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if not 0 <= self.l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        for field in ("top_k", "max_iter"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol!r}")

    def fit(
        self,
        train: Interactions,
        options: FitOptions | None = None,
        *,
        workers: int | None = None,
    ) -> Self:
        """Solve every column of W (Eq. 3). ``workers``: threads solving columns, a runtime
        option that does not change the result; None = ``torch.get_num_threads()`` (what
        ``ncflab train --set train.threads=N`` sets)."""
        self._check_params()
        workers = torch.get_num_threads() if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        x = train.csr("binary")
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        n = max(self.n_users_, 1)
        w = slim_weights(
            x,
            l1=n * self.alpha * self.l1_ratio,
            l2=n * self.alpha * (1.0 - self.l1_ratio),
            top_k=self.top_k,
            max_iter=self.max_iter,
            tol=self.tol,
            workers=workers,
        )
        store_csr(self, "", x, values=False)
        store_csr(self, "w_", w)
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: the users' training rows times W."""
        users = self.check_users(users)
        x = stored_csr(self, "", (self.n_users_, self.n_items_))
        return self._score(x[users])

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), scipy sparse, any value
        > 0 = interacted: x_new W, no refitting (fold-in)."""
        return self._score(self.check_rows(rows))

    def _score(self, rows: sp.csr_matrix) -> torch.Tensor:
        w = stored_csr(self, "w_", (self.n_items_, self.n_items_))
        return torch.from_numpy((rows @ w).toarray().astype(np.float32, copy=False))


def slim_weights(
    x: sp.csr_matrix,
    *,
    l1: float,
    l2: float,
    top_k: int,
    max_iter: int = 100,
    tol: float = 1e-4,
    workers: int = 1,
) -> sp.csr_matrix:
    """W (n_items, n_items) float32 CSR of SLIM (Eq. 3) for training matrix ``x``
    (n_users, n_items): column j minimises ½‖x_j − X w‖² + l1‖w‖₁ + (l2/2)‖w‖² over w ≥ 0 with
    w_j = 0, keeping its ``top_k`` largest weights. Columns are split over ``workers`` threads;
    the result does not depend on how many."""
    # Imported here: scikit-learn (and its threadpoolctl) load only when a SLIM is fitted.
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    n_items = x.shape[1]
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    csc = sp.csc_matrix(x, dtype=np.float32)
    workers = max(1, min(workers, n_items))
    # Interleaved columns balance popular (slow) and rare (fast) items across the workers.
    groups = [np.arange(r, n_items, workers) for r in range(workers)]
    # One BLAS thread: parallelism is over columns, and a single-threaded BLAS sums in the same
    # order whatever the machine's thread settings, so the weights are repeatable bit for bit.
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # Columns that stop at max_iter are counted and logged once, not warned one by one.
        warnings.simplefilter("ignore", ConvergenceWarning)
        args = (gram, csc, l1, l2, top_k, max_iter, tol)
        if workers == 1:
            parts = [_solve_columns(groups[0], *args)]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(lambda cols: _solve_columns(cols, *args), groups))
    rows, cols, values, unconverged = (np.concatenate(p) for p in zip(*parts, strict=True))
    log.info(
        "SLIM: %d columns in %.1f s with %d worker(s); %d stopped at max_iter=%d above tol",
        n_items,
        time.perf_counter() - t0,
        workers,
        int(unconverged.sum()),
        max_iter,
    )
    w = sp.csr_matrix((values, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
    w.sort_indices()
    return w


def _solve_columns(
    columns: np.ndarray,
    gram: np.ndarray,
    csc: sp.csc_matrix,
    l1: float,
    l2: float,
    top_k: int,
    max_iter: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve Eq. 3 for ``columns`` on a private copy of ``gram`` (row and column j are zeroed
    while column j is solved, then restored). Returns COO parts (rows, cols, values) of the
    kept weights and, per column, whether it stopped at ``max_iter`` above the tolerance."""
    # scikit-learn's Gram coordinate descent: what ElasticNet runs for a dense X with a
    # precomputed Gram matrix. Called directly (ElasticNet would want X dense, 6040 × 3706 on
    # ml-1m, and redo its checks per column). Private, but its first 11 positional arguments
    # have kept their order through scikit-learn 1.x (later releases append optional ones),
    # and tests/test_slim.py checks the weights against ElasticNet itself.
    from sklearn.linear_model._cd_fast import enet_coordinate_descent_gram

    g = gram.copy()
    n_users, n_items = csc.shape
    rng = np.random.RandomState(0)  # unused in cyclic order; the routine's signature wants one
    out_rows, out_cols, out_vals = [], [], []
    unconverged = np.zeros(len(columns), bool)
    y = np.zeros(n_users, np.float32)
    for index, j in enumerate(columns):
        q = g[j].copy()  # Xᵀx_j (G is symmetric); saved to restore row and column j
        g[j, :] = 0.0
        g[:, j] = 0.0  # w_j = 0: feature j removed, as Dacrema et al. zero column j of X
        target = q.copy()
        target[j] = 0.0
        start, end = csc.indptr[j], csc.indptr[j + 1]
        y[csc.indices[start:end]] = csc.data[start:end]  # read only for ‖x_j‖² (the tolerance)
        w = np.zeros(n_items, np.float32)
        w, gap, tol_abs, _ = enet_coordinate_descent_gram(
            w, np.float32(l1), np.float32(l2), g, target, y, max_iter, np.float32(tol), rng,
            False, True
        )  # fmt: skip
        y[csc.indices[start:end]] = 0.0
        g[j, :] = q
        g[:, j] = q
        unconverged[index] = gap > tol_abs
        nonzero = np.flatnonzero(w > 0)
        if len(nonzero) > top_k:
            # Stable order: equal weights keep the lower item index, so ties are repeatable.
            nonzero = nonzero[np.argsort(-w[nonzero], kind="stable")[:top_k]]
        out_rows.append(nonzero)
        out_cols.append(np.full(len(nonzero), j))
        out_vals.append(w[nonzero].astype(np.float32))
    if not out_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), unconverged
    return np.concatenate(out_rows), np.concatenate(out_cols), np.concatenate(out_vals), unconverged
