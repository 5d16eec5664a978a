"""EASE^R: Embarrassingly Shallow Autoencoder (Steck, WWW 2019).

The item-item weight matrix B solves (Steck 2019, Eq. 1–4)

    min_B ||X − X B||²_F + λ ||B||²_F   subject to diag(B) = 0,

whose closed form (Eq. 8) is, with P = (XᵀX + λI)⁻¹,

    B_ij = 0 if i = j, else −P_ij / P_jj.

Scores are S = X B: a user's row of the binary interaction matrix times B. Because the model is a
function of the user's row, a new user is scored from their item list without refitting (fold-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.training.options import FitOptions

__all__ = ["EASE"]


@dataclass(kw_only=True)
class EASE(Recommender):
    """EASE^R with L2 weight ``l2`` (λ in Steck 2019, Eq. 1).

    Attributes:
        l2: λ. Default 1000: chosen on ML-1M validation NDCG@10 (``ncf`` protocol, seed 0);
            smaller data wants less (ml-100k, ``jncf`` protocol: 200). The grid and its figures
            are in docs/defaults.md.

    Learned state: ``B_`` (n_items, n_items) float32 with zero diagonal; ``X_`` the binary
    training matrix as CSR arrays (``indptr_``, ``indices_``) so a loaded model scores alike.
    """

    name: ClassVar[str] = "ease"
    # ``ncflab tune``'s default space: λ spans three decades around the usual optimum.
    search_space: ClassVar[dict] = {"l2": {"low": 10.0, "high": 20000.0, "log": True}}
    l2: float = 1000.0

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        if self.l2 <= 0:
            raise ValueError(f"EASE needs l2 > 0 (the Gram matrix may be singular), got {self.l2}")
        x = train.csr("binary")
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]  # Eq. 8: B_ij = −P_ij / P_jj
        np.fill_diagonal(b, 0.0)
        self.B_ = b.astype(np.float32)
        self.indptr_ = x.indptr.astype(np.int64)
        self.indices_ = x.indices.astype(np.int64)
        return self

    def _rows(self) -> sp.csr_matrix:
        """The training matrix, built once per fitted (or loaded) state: evaluation calls
        ``score`` batch after batch."""
        cached = getattr(self, "_x_cache", None)
        if cached is None or cached[0] is not self.indices_:
            data = np.ones(len(self.indices_), np.float32)
            shape = (self.n_users_, self.n_items_)
            cached = (self.indices_, sp.csr_matrix((data, self.indices_, self.indptr_), shape))
            self._x_cache = cached
        return cached[1]

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: the users' training rows times B."""
        users = self.check_users(users)
        return self._score(self._rows()[users])

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' interaction rows (B, n_items), scipy
        sparse, any value > 0 = interacted: X_new B, no refitting needed (fold-in)."""
        return self._score(self.check_rows(rows))

    def _score(self, rows: sp.csr_matrix) -> torch.Tensor:
        return torch.from_numpy(np.asarray(rows @ self.B_, dtype=np.float32))
