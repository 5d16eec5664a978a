"""Neighbourhood models: ItemKNN (Sarwar et al., WWW 2001) and UserKNN (Herlocker et al. 1999),
cosine with shrinkage as tuned by Dacrema, Cremonesi & Jannach (RecSys 2019; TOIS 2021).

Both compare rows of the binary training matrix X (n_users, n_items), optionally re-weighted
(TF-IDF or BM25, the feature weightings of Dacrema et al.'s tuning), by

    sim(a, b) = x_a · x_b / (‖x_a‖ ‖x_b‖ + shrink),        sim(a, a) = 0,

keep each row's ``top_k`` largest similarities (its neighbours) in a sparse matrix, and score

    ItemKNN:  S = X W,  W_ij = sim(i, j) if i is one of j's top_k neighbours, else 0;
    UserKNN:  S = W X,  W_uv = sim(u, v) if v is one of u's top_k neighbours, else 0
                        (``reverse``: if u is one of v's).

Feature weighting on binary data. Every term frequency is 1, so TF-IDF (tf^½ · idf) and BM25
((k1 + 1) tf / (k1 (1 − b + b·len/avg_len) + tf) · idf, k1 = 1.2, b = 0.75) reduce to a factor per
user times a factor per item. The "documents" are the rows being compared and the "terms" their
coordinates, idf_t = max(0, log(n_documents / (1 + df_t))) — clipped at 0 so a term present in
every document weighs nothing instead of counting against the match:

    ItemKNN (documents = items, terms = users, as Dacrema's code weighs Xᵀ):
        user factor idf_u = max(0, log(n_items / (1 + |I_u|))); item factor 1 (TF-IDF) or the
        BM25 length factor of the item's popularity.
    UserKNN (documents = users, terms = items):
        item factor idf_i = max(0, log(n_users / (1 + |U_i|))); user factor 1 (TF-IDF) or the
        BM25 length factor of the user's profile length.

As in Dacrema et al.'s code the weighted X is both compared and scored. Because the user factor
of a row depends only on that row, a new user is weighted like a training user: fold-in is exact.

UserKNN departs from Dacrema et al.'s code in two ways. It weighs users as documents (their code
weighs Xᵀ for UserKNN too, which makes TF-IDF a factor per user that cosine ignores). And their
code scores u from the users that count u among their top_k (it keeps top_k per column of W and
multiplies W's rows): that is ``reverse=True`` here, and the default because validation chose
it over the textbook kNN from u's own top_k (see ``UserKNN``).
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
    cosine_adjust,
    scale_csr,
    store_csr,
    stored_csr,
)
from ncflab.training.options import FitOptions

__all__ = ["WEIGHTINGS", "ItemKNN", "UserKNN", "bm25_length_factor", "idf"]

WEIGHTINGS = ("none", "tfidf", "bm25")
BM25_K1, BM25_B = 1.2, 0.75  # Robertson & Zaragoza's usual values, Dacrema et al.'s too


def idf(doc_freq: np.ndarray, n_documents: int) -> np.ndarray:
    """max(0, log(n_documents / (1 + df))) per term, float64."""
    return np.maximum(np.log(n_documents / (1.0 + doc_freq)), 0.0)


def bm25_length_factor(lengths: np.ndarray, mean_length: float) -> np.ndarray:
    """BM25's term-frequency part for tf = 1: (k1 + 1) / (k1 (1 − b + b·len/avg_len) + 1)."""
    norm = 1.0 - BM25_B + BM25_B * lengths / max(mean_length, 1e-12)
    return (BM25_K1 + 1.0) / (BM25_K1 * norm + 1.0)


def _row_norms(x: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()).astype(np.float32)


@dataclass(kw_only=True)
class _KNN(Recommender):
    """Shared hyperparameters, checks and weighted-matrix plumbing of ItemKNN and UserKNN."""

    top_k: int
    shrink: float
    weighting: str

    def _check_params(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {self.top_k!r}")
        if not self.shrink >= 0:
            raise ValueError(f"shrink must be >= 0, got {self.shrink!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")

    def _user_factor(self, lengths: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _weigh(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """diag(user factor of each row's length) · x · diag(item_scale_)."""
        return scale_csr(x, self._user_factor(np.diff(x.indptr)), self.item_scale_)

    def _train_weighted(self) -> sp.csr_matrix:
        """The weighted training matrix, cached per fitted state (scored batch after batch)."""
        x = stored_csr(self, "", (self.n_users_, self.n_items_))
        hit = getattr(self, "_xw_cache", None)
        if hit is None or hit[0] is not x:
            hit = self._xw_cache = (x, self._weigh(x))
        return hit[1]


@dataclass(kw_only=True)
class ItemKNN(_KNN):
    """Item-based kNN: S = X W with W the items' top-k cosine neighbours (see the module).

    Attributes:
        top_k: neighbours kept per item.
        shrink: added to the cosine's denominator; damps similarities built on few co-users.
        weighting: "none", "tfidf" or "bm25" (see the module docstring).
        reverse: score u from the users that count u among their top_k (W = Nᵀ, N the users'
            top-k lists; what Dacrema et al.'s code does) instead of from u's own top_k (W = N,
            Herlocker et al.'s user kNN).

    Defaults: the best validation NDCG@10 on ML-1M (``ncf`` protocol, seed 0) in a grid over
    weighting, top_k and shrink; the grid and its figures are in docs/defaults.md.

    Learned state: ``W`` (n_items, n_items) sparse as ``w_indptr_``/``w_indices_``/``w_data_``
    (column j = j's neighbours), the binary training matrix as ``indptr_``/``indices_``, and
    ``item_scale_`` (n_items,) the item factor of the weighting.
    """

    name: ClassVar[str] = "itemknn"
    search_space: ClassVar[dict] = {  # Dacrema et al.'s ranges
        "top_k": {"low": 5, "high": 1000, "log": True, "int": True},
        "shrink": {"low": 0.0, "high": 1000.0},
        "weighting": {"choices": list(WEIGHTINGS)},
    }
    top_k: int = 30
    shrink: float = 10.0
    weighting: str = "tfidf"

    def _user_factor(self, lengths: np.ndarray) -> np.ndarray:
        if self.weighting == "none":
            return np.ones(len(lengths))
        return idf(lengths, self.n_items_)

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        self._check_params()
        x = train.csr("binary")
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        popularity = np.diff(x.tocsc().indptr)
        self.item_scale_ = np.ones(self.n_items_, np.float32)
        if self.weighting == "bm25":
            factor = bm25_length_factor(popularity, popularity.mean())
            self.item_scale_ = factor.astype(np.float32)
        store_csr(self, "", x, values=False)
        xw = self._weigh(x)
        items = xw.T.tocsr()  # (n_items, n_users): the vectors being compared
        norms = _row_norms(items)
        adjust = cosine_adjust(norms, norms, self.shrink, zero_self=True)
        neighbours = blocked_topk(items, xw, self.top_k, adjust)  # row j: j's neighbours
        store_csr(self, "w_", neighbours.T.tocsr())
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: the users' weighted training rows times W."""
        users = self.check_users(users)
        return self._score(self._train_weighted()[users])

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), scipy sparse, any
        value > 0 = interacted: the rows weighted as training rows are, times W (fold-in)."""
        return self._score(self._weigh(self.check_rows(rows)))

    def _score(self, rows: sp.csr_matrix) -> torch.Tensor:
        w = stored_csr(self, "w_", (self.n_items_, self.n_items_))
        return torch.from_numpy((rows @ w).toarray().astype(np.float32, copy=False))


@dataclass(kw_only=True)
class UserKNN(_KNN):
    """User-based kNN: S = W X with W the users' top-k cosine neighbours (see the module).

    Attributes:
        top_k: neighbours kept per user.
        shrink: added to the cosine's denominator; damps similarities built on few co-items.
        weighting: "none", "tfidf" or "bm25" (see the module docstring).
        reverse: score u from the users that count u among their top_k (W = Nᵀ, N the users'
            top-k lists; what Dacrema et al.'s code does) instead of from u's own top_k (W = N,
            Herlocker et al.'s user kNN).

    Defaults: the best validation NDCG@10 on ML-1M (``ncf`` protocol, seed 0) in grids over
    weighting, top_k and shrink, with own and with reversed lists; reversed lists did better.
    The grids and their figures are in docs/defaults.md.

    Learned state: ``W`` (n_users, n_users) sparse as ``w_indptr_``/``w_indices_``/``w_data_``
    (row u = u's neighbours, or with ``reverse`` the users whose lists hold u), the binary
    training matrix as ``indptr_``/``indices_``, ``item_scale_`` (n_items,), ``mean_length_``
    (the BM25 average profile length) and, with ``reverse``, ``kth_`` (n_users,) the smallest
    similarity in each full list (0 when shorter than top_k) for fold-in.
    """

    name: ClassVar[str] = "userknn"
    search_space: ClassVar[dict] = {
        **ItemKNN.search_space,
        "reverse": {"choices": [True, False]},
    }
    top_k: int = 300
    shrink: float = 0.0
    weighting: str = "none"
    reverse: bool = True

    def _user_factor(self, lengths: np.ndarray) -> np.ndarray:
        if self.weighting == "bm25":
            return bm25_length_factor(lengths, self.mean_length_)
        return np.ones(len(lengths))

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        self._check_params()
        x = train.csr("binary")
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.mean_length_ = float(np.diff(x.indptr).mean()) if self.n_users_ else 0.0
        self.item_scale_ = np.ones(self.n_items_, np.float32)
        if self.weighting != "none":
            self.item_scale_ = idf(np.diff(x.tocsc().indptr), self.n_users_).astype(np.float32)
        store_csr(self, "", x, values=False)
        own = self._similar(self._train_weighted(), self.top_k, zero_self=True)
        if self.reverse:
            # A new user enters v's list when at least as similar to v as v's k-th neighbour.
            lengths = np.diff(own.indptr)
            smallest = np.zeros(self.n_users_, np.float32)
            smallest[lengths > 0] = np.minimum.reduceat(own.data, own.indptr[:-1][lengths > 0])
            self.kth_ = np.where(lengths >= self.top_k, smallest, np.float32(0.0))
            own = own.T.tocsr()
        store_csr(self, "w_", own)
        return self

    def _similar(
        self, rows: sp.csr_matrix, k: int, zero_self: bool, floor: np.ndarray | None = None
    ) -> sp.csr_matrix:
        """(B, n_users): the ``k`` largest cosine similarities of weighted ``rows`` to the
        training users (only those at or above ``floor`` (n_users,) when given)."""
        xw = self._train_weighted()
        cached = getattr(self, "_xwt_cache", None)
        if cached is None or cached[0] is not xw:
            cached = self._xwt_cache = (xw, xw.T.tocsr(), _row_norms(xw))
        cosine = cosine_adjust(_row_norms(rows), cached[2], self.shrink, zero_self=zero_self)

        def adjust(block: np.ndarray, start: int) -> None:
            cosine(block, start)
            if floor is not None:
                block[block < floor[None, :]] = 0.0  # a tie for the k-th place enters

        return blocked_topk(rows, cached[1], k, adjust)

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: the users' neighbour rows of W times the weighted X."""
        users = self.check_users(users)
        w = stored_csr(self, "w_", (self.n_users_, self.n_users_))
        return self._score(w[users])

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), scipy sparse, any
        value > 0 = interacted, weighted as training rows are — fold-in, no refitting: their
        top-k cosine neighbours among the training users times the weighted X, or with
        ``reverse`` the training users v they are at least as similar to as v's k-th
        neighbour (``kth_``), i.e. whose lists they would enter (ties included). A row equal
        to a training user's finds that user as a neighbour, so it is not scored exactly as
        that user (self-similarity 0); it is scored as that user would be had they been left
        out of training."""
        weighted = self._weigh(self.check_rows(rows))
        if self.reverse:
            return self._score(self._similar(weighted, self.n_users_, False, floor=self.kth_))
        return self._score(self._similar(weighted, self.top_k, zero_self=False))

    def _score(self, weights: sp.csr_matrix) -> torch.Tensor:
        scores = weights @ self._train_weighted()
        return torch.from_numpy(scores.toarray().astype(np.float32, copy=False))
