"""eALS: matrix factorisation with popularity-weighted missing data, by element-wise ALS.

He, Zhang, Kan & Chua, "Fast Matrix Factorization for Online Recommendation with Implicit
Feedback", SIGIR 2016. Scores are ŷ_ui = ⟨p_u, q_i⟩; observed pairs R get weight w and target
r_ui = 1, every missing pair of item i gets weight c_i, popularity-aware (§4.1):

    L = Σ_{(u,i)∈R} w (r_ui − ŷ_ui)² + Σ_u Σ_{i∉R_u} c_i ŷ_ui² + λ (Σ_u ‖p_u‖² + Σ_i ‖q_i‖²),
    c_i = c₀ f_i^α / Σ_j f_j^α,   f_i = the item's share of the training interactions.

eALS minimises L one coordinate at a time, exactly. With the cache S^q = Σ_i c_i q_i q_iᵀ the
missing-data part of a user's coordinate update costs O(d) (Eq. 12), and the item update uses
S^p = PᵀP likewise (Eq. 13); r̂^f_ui = ŷ_ui − p_uf q_if is the prediction without factor f:

    p_uf = [Σ_{i∈R_u} (w r_ui − (w − c_i) r̂^f_ui) q_if − Σ_{k≠f} p_uk s^q_kf]
           / [Σ_{i∈R_u} (w − c_i) q_if² + s^q_ff + λ]
    q_if = [Σ_{u∈R_i} (w r_ui − (w − c_i) r̂^f_ui) p_uf − c_i Σ_{k≠f} q_ik s^p_kf]
           / [Σ_{u∈R_i} (w − c_i) p_uf² + c_i s^p_ff + λ]

Given Q, users are independent, so coordinate f of *every* user is updated at once (one pass of
vectorised sparse operations per f, keeping the prediction cache ŷ of the observed pairs), and
likewise for items: the same result as the paper's per-user loop (Algorithm 1), without one.

New users are folded in exactly: with Q fixed a user's loss is the quadratic
p_uᵀ (S^q + Σ_{i∈R_u} (w − c_i) q_i q_iᵀ + λI) p_u − 2 w Σ_{i∈R_u} q_iᵀ p_u + const, whose minimiser
(the limit of the coordinate updates above) is solved directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.als import (
    RowBatches,
    SparseRows,
    candidate_scores,
    check_als_params,
    init_factors,
    pair_scores,
    solve_rows,
    start_fit,
)
from ncflab.models.base import Recommender
from ncflab.models.products import mm
from ncflab.training.driver import run_epochs
from ncflab.training.options import FitOptions

__all__ = ["EALS", "popularity_weights"]


def popularity_weights(counts: np.ndarray, c0: float, alpha: float) -> np.ndarray:
    """(n_items,) c_i = c₀ f_i^α / Σ_j f_j^α from item interaction ``counts`` (He et al. 2016,
    §4.1); items never seen get 0 (when α > 0), the weights sum to c₀."""
    powered = np.asarray(counts, np.float64) ** alpha
    powered[np.asarray(counts) == 0] = 0.0  # 0^0 = 1 would weigh unseen items when α = 0
    total = powered.sum()
    return (c0 * powered / total if total > 0 else powered).astype(np.float32)


def _transposed_order(x: sp.csr_matrix) -> np.ndarray:
    """(nnz,) for each entry of xᵀ in CSR order, the position of the same entry in ``x``."""
    numbered = sp.csr_matrix((np.arange(1, x.nnz + 1), x.indices, x.indptr), shape=x.shape)
    t = numbered.T.tocsr()
    t.sort_indices()
    return t.data.astype(np.int64) - 1


@dataclass(kw_only=True)
class EALS(Recommender):
    """eALS with popularity-aware missing-data weights.

    Defaults: chosen on ML-1M validation NDCG@10 (``ncf`` protocol, seed 0): c₀ = 1024,
    α = 0.2, λ = 10, missing data weighted nearly uniformly and a much stronger ridge than the
    authors' code default of 0.01. The search and its figures are in docs/defaults.md.

    Attributes:
        factors: latent dimension d.
        reg: λ, L2 weight on all factors.
        c0: c₀, the total weight of missing data (the c_i sum to it).
        alpha: α, the popularity exponent (0 = the same weight for every item seen in
            training, 1 = proportional to its count).
        weight: w, the weight of an observed pair.
        epochs: sweeps (all user coordinates, then all item coordinates); with
            ``FitOptions.validate`` the best validated epoch is kept and training may stop
            early. 30: the defaults' validation NDCG@10 gains little after epoch 20
            (docs/defaults.md).
        init_std: factors start ~ N(0, init_std²) (the authors' code uses 0.01).

    Learned state: ``P_`` (n_users, d), ``Q_`` (n_items, d) float32 and ``c_`` (n_items,) the
    missing-data weights (fold-in needs them).
    """

    name: ClassVar[str] = "eals"
    # ``ncflab tune``'s default space around the validated defaults.
    search_space: ClassVar[dict] = {
        "reg": {"low": 0.01, "high": 100.0, "log": True},
        "c0": {"low": 16.0, "high": 8192.0, "log": True},
        "alpha": {"low": 0.0, "high": 1.0},
    }
    factors: int = 64
    reg: float = 10.0
    c0: float = 1024.0
    alpha: float = 0.2
    weight: float = 1.0
    epochs: int = 30
    init_std: float = 0.01

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        x, device, by_user, by_item, factors = start_fit(self, train, options)
        self.c_ = popularity_weights(np.diff(x.tocsc().indptr), self.c0, self.alpha)
        c = torch.from_numpy(self.c_).to(device)
        to_items = torch.from_numpy(_transposed_order(x)).to(device)
        gap_u, gap_i = self.weight - c[by_user.indices], self.weight - c[by_item.rows]
        ones = torch.ones(self.n_users_, device=device)
        # The factor buffers themselves: the sweep updates them in place, and the driver's
        # resume and best-epoch restore load into them in place too.
        p, q = factors.users, factors.items

        def sweep(epoch: int) -> float:
            # ŷ of the observed pairs, recomputed once an epoch so float error cannot build up.
            pred = pair_scores(p, q, by_user.rows, by_user.indices)
            # User step (Eq. 12): S^q = Σ_i c_i q_i q_iᵀ; observed entries weigh w − c_i.
            pred = self._coordinates(by_user, p, q, gap_u, (q * c[:, None]).T @ q, ones, pred)
            # Item step (Eq. 13): S^p = PᵀP, and the missing part of item i is scaled by c_i.
            pred = self._coordinates(by_item, q, p, gap_i, p.T @ p, c, pred[to_items])
            self.P_, self.Q_ = factors.numpy()  # validation scores the epoch's factors
            return self._loss(p, q, c, pred, c[by_item.rows])

        run_epochs(self, factors, sweep, epochs=self.epochs, options=options)
        self.P_, self.Q_ = factors.numpy()  # the best validated epoch's, which the driver kept
        return self

    def initial_factors(self, n_users: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_users, d) and (n_items, d) CPU float32 starting factors ~ N(0, init_std²)."""
        gen = torch.Generator().manual_seed(int(self.seed))
        return (
            init_factors(n_users, self.factors, self.init_std, gen),
            init_factors(n_items, self.factors, self.init_std, gen),
        )

    def _coordinates(
        self,
        x: SparseRows,
        rows_f: torch.Tensor,
        cols_f: torch.Tensor,
        gap: torch.Tensor,
        cache: torch.Tensor,
        scale: torch.Tensor,
        pred: torch.Tensor,
    ) -> torch.Tensor:
        """Update every coordinate of ``rows_f`` (n_rows, d) in place, factor by factor, with
        ``cols_f`` (n_cols, d) fixed: Eq. 12 for users (``scale`` = 1), Eq. 13 for items
        (``scale`` = c). ``gap`` (nnz,) is w − c_i of each observed entry of ``x``, ``cache``
        S (d, d), ``pred`` (nnz,) the current ŷ of those entries; returns the updated ŷ.

        With r̂^f = ŷ − p_uf q_if, the observed part of the numerator is
        w Σ q_if − Σ (w − c_i) ŷ q_if + p_uf Σ (w − c_i) q_if²: the first and last sums do not
        change while the row factors move (one sparse product each for all f), which leaves one
        segment sum over the entries per factor."""
        sum_q = x.matmul(torch.ones_like(gap), cols_f)  # (n_rows, d) Σ_{i∈R_u} q_if
        sum_gq2 = x.matmul(gap, cols_f.square())  # (n_rows, d) Σ (w − c_i) q_if²
        # Factor-major copies: each step reads and writes one contiguous factor column.
        rows_t, cols_t = rows_f.T.contiguous(), cols_f.T.contiguous()
        lengths = x.lengths
        for f in range(rows_t.shape[0]):
            other = cols_t[f].index_select(0, x.indices)  # q_if (or p_uf) of each entry
            # The entries are sorted by row: a deterministic segment sum.
            gyq = torch.segment_reduce(gap * other * pred, "sum", lengths=lengths)
            old = rows_t[f].clone()
            num = self.weight * sum_q[:, f] - gyq + old * sum_gq2[:, f]  # w r_ui = w
            # Σ_{k≠f} p_uk s_kf = (S P)_fu − p_uf s_ff: the missing data at O(d) per row.
            missing = cache[f] @ rows_t - old * cache[f, f]
            rows_t[f] = (num - scale * missing) / (sum_gq2[:, f] + scale * cache[f, f] + self.reg)
            pred.addcmul_((rows_t[f] - old).index_select(0, x.rows), other)
        rows_f.copy_(rows_t.T)
        return pred

    def _loss(
        self, p: torch.Tensor, q: torch.Tensor, c: torch.Tensor, y: torch.Tensor, cy: torch.Tensor
    ) -> float:
        """L above from ŷ (``y``) of the observed pairs and their items' c_i (``cy``): the
        missing part is Σ_u p_uᵀ S^q p_u − Σ_{(u,i)∈R} c_i ŷ_ui² (all pairs minus the observed
        ones), so nothing of size users × items is formed."""
        y, cy = y.double(), cy.double()
        observed = (self.weight * (1 - y) ** 2 - cy * y**2).sum()
        missing = ((p @ ((q * c[:, None]).T @ q)) * p).sum().double()
        penalty = self.reg * (p.square().sum() + q.square().sum()).double()
        return float(observed + missing + penalty)

    def objective(self, train: Interactions) -> float:
        """L of the fitted factors on ``train``, computed directly in float64 (a check of
        the value each epoch records)."""
        self.check_fitted()
        x = SparseRows.from_scipy(train.csr("binary"))
        p, q = torch.from_numpy(self.P_).double(), torch.from_numpy(self.Q_).double()
        c = torch.from_numpy(self.c_).double()
        y = pair_scores(p, q, x.rows, x.indices)
        return self._loss(p, q, c, y, c[x.indices])

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 ⟨p_u, q_i⟩."""
        users = self.check_users(users)
        return mm(torch.from_numpy(self.P_[users]), torch.from_numpy(self.Q_).T)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 ⟨w_u, h_i⟩ of the candidate ``items`` (B, C) only."""
        users, items = self.check_candidates(users, items)
        return candidate_scores(self.P_, self.Q_, users, items)

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), any value > 0 =
        interacted: each p_u minimises L with Q fixed (see the module docstring)."""
        x = SparseRows.from_scipy(self.check_rows(rows))
        q, c = torch.from_numpy(self.Q_), torch.from_numpy(self.c_)
        gap = self.weight - c[x.indices]
        batches = RowBatches(x, self.factors, gram=gap, rhs=self.weight)
        reg = torch.full((x.shape[0],), float(self.reg))
        p, _ = solve_rows(batches, q, (q * c[:, None]).T @ q, reg)
        return mm(p, q.T)

    def _check_params(self) -> None:
        check_als_params(self, ("c0", "alpha", "weight", "init_std"))
