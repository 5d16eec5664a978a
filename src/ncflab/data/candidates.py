"""Sampled evaluation candidates: per user, distinct items that are not a positive.

Vectorised over users (blocks of users, never a Python loop per user) and drawn from an explicit
``seed``; :mod:`ncflab.data.splits` re-exports :func:`sample_candidates` and
:func:`with_negatives`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from ncflab.data._split import Split

__all__ = ["sample_candidates", "with_negatives"]

# Users per block in sample_candidates: bounds memory (ML-20M: 138k users) and, being a constant,
# keeps the candidates a function of (positives, n_neg, seed, users) only.
_BLOCK = 4096


def sample_candidates(
    known_csr: sp.csr_matrix, n_neg: int, seed: int, users: np.ndarray | None = None
) -> np.ndarray:
    """Sampled negatives for evaluation: per user, ``n_neg`` distinct non-positive items.

    Each row is a uniform sample without replacement from the items that are *not* stored in
    that user's row of ``known_csr`` (pass every positive: train, valid and test). Ranks in the
    user's complement are drawn (rejection of repeats in draw order, or a full random permutation
    when the complement is small) and mapped to item indices with one ``searchsorted`` over the
    positives, block by block (4,096 users), so memory stays bounded on ML-20M.

    Args:
        known_csr: (n_users, n_items) CSR; every stored entry is a positive.
        n_neg: negatives per user (≥ 1).
        seed: the draw is a function of (known_csr, n_neg, seed, users) only.
        users: (U,) user indices to draw for; None means every user.

    Returns:
        (n_users, n_neg) int64 item indices in draw order; rows of users not drawn for are -1.
    """
    if n_neg < 1:
        raise ValueError(f"n_neg={n_neg!r} must be at least 1")
    known = sp.csr_matrix(known_csr)
    if not known.has_canonical_format:
        known = known.copy()
        known.sum_duplicates()
    n_users, n_items = known.shape
    users = np.arange(n_users) if users is None else np.unique(np.asarray(users, np.int64))
    if len(users) and (users[0] < 0 or users[-1] >= n_users):
        raise ValueError(f"users must lie in [0, {n_users}); got {users[0]}..{users[-1]}")
    free = n_items - np.diff(known.indptr)
    _check_room(free, users, n_neg, None)
    out = np.full((n_users, n_neg), -1, np.int64)
    blocks = np.random.SeedSequence(seed).spawn(-(-len(users) // _BLOCK))
    for b, seq in enumerate(blocks):
        block = users[b * _BLOCK : (b + 1) * _BLOCK]
        ranks = _distinct_ranks(free[block], n_neg, np.random.default_rng(seq))
        out[block] = _ranks_to_items(known, block, ranks)
    return out


def _check_room(free: np.ndarray, users: np.ndarray, n_neg: int, ids: np.ndarray | None) -> None:
    short = users[free[users] < n_neg]
    if len(short):
        names = (short[:5] if ids is None else ids[short[:5]]).tolist()
        raise ValueError(
            f"{len(short)} users have fewer than n_neg={n_neg} non-positive items, e.g. user "
            f"{'index' if ids is None else 'id'} {names[0]!r} has {int(free[short[0]])} "
            f"(others: {names[1:]}); lower n_neg or drop those users"
        )


def _distinct_ranks(sizes: np.ndarray, n_neg: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n_neg) distinct uniform ranks in [0, sizes[b]) per row, in draw order."""
    out = np.empty((len(sizes), n_neg), np.int64)
    # Small complements: rejection would need many redraws, so permute the whole range instead.
    small = np.flatnonzero(sizes < 4 * n_neg)
    if len(small):
        keys = rng.random((len(small), int(sizes[small].max())))
        keys[np.arange(keys.shape[1]) >= sizes[small, None]] = 2.0  # past the end: never chosen
        out[small] = np.argsort(keys, axis=1)[:, :n_neg]
    rest, width = np.flatnonzero(sizes >= 4 * n_neg), n_neg + n_neg // 2 + 8
    while len(rest):
        draws = rng.integers(0, sizes[rest, None], size=(len(rest), width))
        first = _first_occurrences(draws)
        cum = np.cumsum(first, axis=1)
        ok = cum[:, -1] >= n_neg
        take = first[ok] & (cum[ok] <= n_neg)
        out[rest[ok]] = draws[ok][take].reshape(-1, n_neg)
        rest, width = rest[~ok], width * 2
    return out


def _first_occurrences(draws: np.ndarray) -> np.ndarray:
    """(B, W) bool: True where the value has not appeared earlier in its row."""
    order = np.argsort(draws, axis=1, kind="stable")  # equal values keep draw order
    ordered = np.take_along_axis(draws, order, axis=1)
    first_sorted = np.ones(draws.shape, bool)
    first_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty(draws.shape, bool)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def _ranks_to_items(known: sp.csr_matrix, block: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """(B, n_neg) item of each complement rank: the r-th non-positive item of the user.

    With the user's positives p_0 < p_1 < … and q_j = p_j − j (non-positives below p_j), the
    r-th non-positive is r + #{j : q_j ≤ r}; one searchsorted over row-offset keys does all rows.
    """
    starts, lens = known.indptr[block], np.diff(known.indptr)[block]
    offsets = np.cumsum(lens) - lens
    local = np.arange(lens.sum()) - np.repeat(offsets, lens)
    positives = known.indices[np.repeat(starts, lens) + local]
    width = known.shape[1] + 1  # q_j and r both lie in [0, n_items]
    pos_keys = np.repeat(np.arange(len(block)), lens) * width + (positives - local)
    keys = np.arange(len(block))[:, None] * width + ranks
    return ranks + np.searchsorted(pos_keys, keys, side="right") - offsets[:, None]


def with_negatives(split: Split, n_neg: int, seed: int) -> Split:
    """The split with ``n_neg`` sampled negatives per user that has a test or valid record.

    Negatives exclude every positive of the user (train, valid and test) and are drawn once with
    :func:`sample_candidates`, so valid and test share them; other users get rows of -1.
    """
    held = split.test.user_counts() > 0
    if split.valid is not None:
        held |= split.valid.user_counts() > 0
    users = np.flatnonzero(held)
    known = split.known_positives()
    _check_room(split.n_items - np.diff(known.indptr), users, n_neg, split.train.user_ids)
    negatives = sample_candidates(known, n_neg, seed, users)
    info = {**split.info, "negatives": {"n_neg": n_neg, "seed": seed, "n_users": len(users)}}
    return replace(split, negatives=negatives, info=info)
