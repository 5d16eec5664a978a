"""Negative samplers for training, vectorised over all samples of an epoch.

Every sampler takes the (n_users, n_items) binary CSR of training positives and an explicit
``np.random.Generator``, so an epoch's samples are a function of (positives, seed) only.

Negatives are drawn uniformly from the items a user has *not* interacted with. Rather than
rejection (draw, test membership, re-draw the bad entries until none remain) we draw a rank
``r`` uniform in ``[0, n_items - deg_u)`` and map it to the ``r``-th non-positive item of the user
with one ``searchsorted`` over the sorted positives. That costs the same as a single rejection
round (one draw and one binary search per sample), is exactly uniform over the complement, needs
no retry loop, and stays cheap for very active users for whom rejection would loop many times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["NegativeSampler", "bpr_triplets", "pointwise_samples", "uniform_negatives"]


@dataclass(frozen=True, eq=False)
class NegativeSampler:
    """Uniform negative sampling from the complement of each user's training positives.

    Build once per ``fit`` (``NegativeSampler.from_csr``) and call every epoch: construction is
    O(nnz), each draw O(log nnz).

    Attributes:
        n_items: number of items.
        indptr: (n_users + 1,) CSR row pointers of the positives.
        indices: (nnz,) positive item of every record, sorted within each row.
        rows: (nnz,) user of every record (non-decreasing).
        shifted: (nnz,) ``user * n_items + item - (rank of the item within its row)``;
            non-decreasing, so one global ``searchsorted`` counts, for a query
            ``user * n_items + r``, how many of the user's positives precede the ``r``-th
            non-positive item.
    """

    n_items: int
    indptr: np.ndarray
    indices: np.ndarray
    rows: np.ndarray
    shifted: np.ndarray

    @classmethod
    def from_csr(cls, positives: sp.csr_matrix) -> NegativeSampler:
        """Index the (n_users, n_items) CSR ``positives`` (any nonzero counts as positive)."""
        csr = sp.csr_matrix(positives, copy=True)
        csr.eliminate_zeros()
        csr.sum_duplicates()  # also sorts the indices of every row
        n_users, n_items = csr.shape
        indptr = csr.indptr.astype(np.int64)
        indices = csr.indices.astype(np.int64)
        rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
        rank_in_row = np.arange(len(indices), dtype=np.int64) - indptr[rows]
        shifted = rows * n_items + indices - rank_in_row
        return cls(int(n_items), indptr, indices, rows, shifted)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def degrees(self) -> np.ndarray:
        """(n_users,) number of distinct positive items per user."""
        return np.diff(self.indptr)

    def draw(self, users: np.ndarray, n_neg: int, rng: np.random.Generator) -> np.ndarray:
        """(len(users), n_neg) int64 items drawn uniformly (with replacement) from the items
        that each user of ``users`` (int array of user indices) has no positive for.

        Sorted ``users`` draw about 3x faster on large data: the binary searches of neighbouring
        queries then share cache lines."""
        users = np.asarray(users, dtype=np.int64)
        if n_neg < 1:
            raise ValueError(f"n_neg must be a positive integer, got {n_neg}")
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            bad = users[(users < 0) | (users >= self.n_users)][:5].tolist()
            raise IndexError(f"user indices {bad} are outside [0, {self.n_users})")
        free = self.n_items - self.degrees()[users]
        if (free <= 0).any():
            full = np.unique(users[free <= 0])[:5].tolist()
            raise ValueError(
                f"users {full} have a positive for every one of the {self.n_items} items, "
                "so no negative can be drawn; remove them from training"
            )
        ranks = rng.integers(0, free[:, None], size=(len(users), n_neg), dtype=np.int64)
        query = users[:, None] * self.n_items + ranks
        # Positives of the user whose shifted value is <= r lie before the r-th free item.
        before = np.searchsorted(self.shifted, query, side="right") - self.indptr[users, None]
        return ranks + before


def uniform_negatives(
    positives: sp.csr_matrix, users: np.ndarray, n_neg: int, rng: np.random.Generator
) -> np.ndarray:
    """(len(users), n_neg) int64 uniform negatives for each user index in ``users``, excluding
    that user's positives in the (n_users, n_items) CSR ``positives``. For repeated calls build
    a ``NegativeSampler`` once instead."""
    return NegativeSampler.from_csr(positives).draw(users, n_neg, rng)


def bpr_triplets(
    positives: sp.csr_matrix | NegativeSampler, rng: np.random.Generator, n_neg: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of BPR triplets: every (user, positive item) pair once, in shuffled order,
    each with ``n_neg`` fresh uniform negatives.

    Returns:
        users (N,), pos (N,), neg (N, n_neg), all int64, with N = number of positive pairs.
    """
    sampler = _as_sampler(positives)
    neg = sampler.draw(sampler.rows, n_neg, rng)  # in CSR (user-sorted) order: see ``draw``
    order = rng.permutation(len(neg))
    return sampler.rows[order], sampler.indices[order], neg[order]


def pointwise_samples(
    positives: sp.csr_matrix | NegativeSampler, rng: np.random.Generator, n_neg: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of point-wise samples (NCF, He et al. 2017, Sec. 3.1.1): every positive pair
    with label 1 plus ``n_neg`` uniform negatives of the same user with label 0, shuffled.

    Returns:
        users (N,), items (N,) int64 and labels (N,) float32, N = nnz * (1 + n_neg).
    """
    sampler = _as_sampler(positives)
    users = sampler.rows
    neg = sampler.draw(users, n_neg, rng)  # in CSR (user-sorted) order: see ``draw``
    all_users = np.concatenate([users, np.repeat(users, n_neg)])
    items = np.concatenate([sampler.indices, neg.reshape(-1)])
    labels = np.concatenate([np.ones(len(users), np.float32), np.zeros(neg.size, np.float32)])
    order = rng.permutation(len(items))
    return all_users[order], items[order], labels[order]


def _as_sampler(positives: sp.csr_matrix | NegativeSampler) -> NegativeSampler:
    if isinstance(positives, NegativeSampler):
        return positives
    if not sp.issparse(positives):
        raise TypeError(f"expected a scipy sparse matrix of positives, got {type(positives)}")
    return NegativeSampler.from_csr(positives)
