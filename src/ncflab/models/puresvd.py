"""PureSVD: truncated SVD of the interaction matrix (Cremonesi, Koren & Turrin, RecSys 2010).

The binary user-item matrix, missing entries as 0, is factorised as X ≈ U_k Σ_k V_kᵀ (the
paper's "PureSVD", among its latent-factor models); since X V_k = U_k Σ_k, a user's scores are
their row projected on the top-k item subspace and back:

    r̂_u = x_u V_k V_kᵀ.

Scores depend on the user only through their row, so a new user is folded in by the same formula
without refitting. The top-k singular vectors are computed with ARPACK (``scipy.sparse.linalg.
svds``) from a start vector drawn from ``seed``: the same seed gives the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.models.products import mm
from ncflab.training.options import FitOptions

__all__ = ["PureSVD"]


@dataclass(kw_only=True)
class PureSVD(Recommender):
    """PureSVD with rank ``factors`` (k).

    Attributes:
        factors: k, the number of singular vectors kept. Default 60: the best ML-1M
            validation NDCG@10 (``ncf`` protocol, seed 0) on a plateau of nearby ranks; the
            grid and its figures are in docs/defaults.md.

    Learned state: ``V_`` (n_items, k) float32, the top right singular vectors, and ``U_`` =
    X V_k (n_users, k), the training users' projections (= U_k Σ_k).
    """

    name: ClassVar[str] = "puresvd"
    # ``ncflab tune``'s default space: the rank.
    search_space: ClassVar[dict] = {"factors": {"low": 5, "high": 500, "log": True, "int": True}}
    factors: int = 60

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        x = train.csr("binary").astype(np.float64)
        k = int(self.factors)
        if not 1 <= k < min(x.shape):
            raise ValueError(
                f"factors must be in [1, {min(x.shape) - 1}] for a {x.shape} matrix, got "
                f"{self.factors}"
            )
        self.n_users_, self.n_items_ = x.shape
        v0 = np.random.default_rng(self.seed).standard_normal(min(x.shape))
        _, s, vt = svds(x, k=k, v0=v0)
        v = vt[np.argsort(-s)].T  # (n_items, k), largest singular value first
        self.V_ = np.ascontiguousarray(v, dtype=np.float32)
        self.U_ = np.asarray(x @ v, dtype=np.float32)
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 x_u V_k V_kᵀ."""
        users = self.check_users(users)
        return mm(torch.from_numpy(self.U_[users]), torch.from_numpy(self.V_).T)

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), any value > 0 =
        interacted: x V_k V_kᵀ, the training users' formula (fold-in)."""
        u = np.asarray(self.check_rows(rows) @ self.V_, dtype=np.float32)
        return mm(torch.from_numpy(u), torch.from_numpy(self.V_).T)
