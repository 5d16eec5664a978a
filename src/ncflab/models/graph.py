"""Random-walk item graphs: P3alpha (Cooper et al., WWW 2014) and RP3beta (Paudel et al., ACM
TiiS 2017), in the form Dacrema, Cremonesi & Jannach (RecSys 2019; TOIS 2021) tuned.

On the bipartite user–item graph of the binary training matrix X (n_users, n_items), a walk of
three steps u → i → v → j ranks item j for user u by its probability. With the transition
matrices raised element-wise to α (Cooper et al. 2014's P3α)

    P_ui = (X row-normalised)^α          (n_users, n_items), user → item,
    P_iu = (Xᵀ row-normalised)^α         (n_items, n_users), item → user,

the item-to-item part of the walk is the (n_items, n_items) matrix

    W = P_iu P_ui                         (P3alpha),
    W_ij = (P_iu P_ui)_ij / pop_j^β       (RP3beta, Paudel et al. 2017: re-ranked by item
                                           popularity pop_j = |U_j|; pop_j = 0 gives 0),

with self-loops W_ii set to 0. W is then sparsified as Dacrema et al.'s code does, in two passes
with the same ``top_k``: each row keeps its ``top_k`` largest entries (an item's strongest
successors), each row is optionally L1-normalised (``normalize``), and each column keeps its
``top_k`` largest (an item's strongest predecessors, i.e. its neighbours as in ItemKNN). The
column pass matters (ml-1m validation, docs/defaults.md): unpruned rows are dominated by popular
destinations. Scores are S = X W: summing the walks from each of the user's
items ranks items exactly as P_ui W does, whose rows differ from X's by a constant per user. A
new user's row is scored the same way (fold-in, no refitting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.models.similarity import (
    blocked_topk,
    scale_csr,
    store_csr,
    stored_csr,
    topk_columns,
)
from ncflab.training.options import FitOptions

__all__ = ["P3alpha", "RP3beta", "transition"]


def transition(x: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """(X row-normalised)^α element-wise, float32 CSR; empty rows stay empty."""
    lengths = np.diff(x.indptr).astype(np.float64)
    inverse = np.divide(1.0, lengths, out=np.zeros_like(lengths), where=lengths > 0)
    p = scale_csr(x, inverse, np.ones(x.shape[1]))
    p.data = np.power(p.data, alpha, dtype=np.float32)
    return p


@dataclass(kw_only=True)
class P3alpha(Recommender):
    """P3alpha: S = X W with W = P_iu P_ui pruned to top-k per row and column (see the module).

    Attributes:
        top_k: entries kept per row of W, then per column (see the module).
        alpha: exponent of the transition probabilities (α = 1 is the plain walk P3).
        normalize: L1-normalise each row of W between the row and the column pruning.

    Defaults: the best validation NDCG@10 on ML-1M (``ncf`` protocol, seed 0) in a grid over
    top_k, α and normalize; the grid and its figures are in docs/defaults.md.

    Learned state: W (n_items, n_items) sparse as ``w_indptr_``/``w_indices_``/``w_data_`` and
    the binary training matrix as ``indptr_``/``indices_``.
    """

    name: ClassVar[str] = "p3alpha"
    search_space: ClassVar[dict] = {  # Dacrema et al.'s ranges
        "top_k": {"low": 5, "high": 1000, "log": True, "int": True},
        "alpha": {"low": 0.01, "high": 2.0},
        "normalize": {"choices": [True, False]},
    }
    top_k: int = 300
    alpha: float = 1.5
    normalize: bool = True

    def _check_params(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {self.top_k!r}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")

    def _column_factor(self, popularity: np.ndarray) -> np.ndarray | None:
        """A factor per column j of W (RP3beta's popularity penalty), or None."""
        return None

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        self._check_params()
        x = train.csr("binary")
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        p_ui = transition(x, self.alpha)
        p_iu = transition(x.T.tocsr(), self.alpha)
        factor = self._column_factor(np.diff(x.tocsc().indptr))

        def adjust(block: np.ndarray, start: int) -> None:
            if factor is not None:
                block *= factor[None, :]
            index = np.arange(block.shape[0])
            block[index, index + start] = 0.0  # no self-loops

        w = blocked_topk(p_iu, p_ui, self.top_k, adjust)
        if self.normalize:
            sums = np.asarray(w.sum(axis=1)).ravel()
            inverse = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
            w = scale_csr(w, inverse, np.ones(self.n_items_))
        w = topk_columns(w, self.top_k)
        store_csr(self, "", x, values=False)
        store_csr(self, "w_", w)
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: the users' binary training rows times W."""
        users = self.check_users(users)
        return self._score(stored_csr(self, "", (self.n_users_, self.n_items_))[users])

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), scipy sparse, any
        value > 0 = interacted: X_new W, no refitting (fold-in)."""
        return self._score(self.check_rows(rows))

    def _score(self, rows: sp.csr_matrix) -> torch.Tensor:
        w = stored_csr(self, "w_", (self.n_items_, self.n_items_))
        return torch.from_numpy((rows @ w).toarray().astype(np.float32, copy=False))


@dataclass(kw_only=True)
class RP3beta(P3alpha):
    """RP3beta: P3alpha with column j of W divided by pop_j^β before the top-k (see the module).

    Attributes:
        top_k, alpha, normalize: as P3alpha.
        beta: popularity penalty exponent (β = 0 is P3alpha).

    Defaults: the best validation NDCG@10 on ML-1M (``ncf`` protocol, seed 0) in a grid over
    top_k, α, β and normalize; the grid and its figures are in docs/defaults.md.
    """

    name: ClassVar[str] = "rp3beta"
    search_space: ClassVar[dict] = {
        **P3alpha.search_space,
        "beta": {"low": 0.0, "high": 2.0},
    }
    top_k: int = 100
    alpha: float = 0.5
    beta: float = 0.6
    normalize: bool = True

    def _check_params(self) -> None:
        super()._check_params()
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")

    def _column_factor(self, popularity: np.ndarray) -> np.ndarray | None:
        pop = popularity.astype(np.float64)
        penalty = np.power(pop, -self.beta, out=np.zeros_like(pop), where=pop > 0)
        return penalty.astype(np.float32)
