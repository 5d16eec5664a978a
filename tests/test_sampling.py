"""Training negative samplers: never a positive, uniform over the rest, seeded, epoch coverage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ncflab.data.sampling import (
    NegativeSampler,
    bpr_triplets,
    pointwise_samples,
    uniform_negatives,
)


@pytest.fixture(scope="module")
def positives() -> sp.csr_matrix:
    """(40, 25) random positives at density 0.5, plus one user with all items but one."""
    m = sp.random(40, 25, density=0.5, format="lil", random_state=np.random.default_rng(0))
    m[3, :] = 1.0
    m[3, 17] = 0.0
    csr = sp.csr_matrix(m)
    csr.eliminate_zeros()
    csr.data[:] = 1.0
    return csr


def test_negatives_are_never_positives(positives) -> None:
    rng = np.random.default_rng(1)
    users = rng.integers(0, 40, size=5000)
    neg = uniform_negatives(positives, users, 3, rng)
    assert neg.shape == (5000, 3) and neg.dtype == np.int64
    assert (neg >= 0).all() and (neg < 25).all()
    assert not positives.toarray()[users[:, None], neg].any()


def test_nearly_full_user_gets_its_only_negative(positives) -> None:
    neg = uniform_negatives(positives, np.full(50, 3), 2, np.random.default_rng(0))
    assert (neg == 17).all()


def test_negatives_are_uniform_over_the_complement(positives) -> None:
    n = 40_000
    neg = uniform_negatives(positives, np.zeros(n, np.int64), 1, np.random.default_rng(2)).ravel()
    free = np.flatnonzero(positives.toarray()[0] == 0)
    counts = np.bincount(neg, minlength=25)[free]
    assert counts.sum() == n
    expected = n / len(free)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 3 * len(free)  # far above the ≈ len(free) of a uniform draw's chi²


def test_full_user_and_bad_user_are_errors() -> None:
    full = sp.csr_matrix(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"users \[0\] have a positive for every one of the 4"):
        uniform_negatives(full, np.array([0]), 1, np.random.default_rng(0))
    with pytest.raises(IndexError, match=r"\[7\]"):
        uniform_negatives(full, np.array([7]), 1, np.random.default_rng(0))


def test_same_seed_same_samples(positives) -> None:
    a = bpr_triplets(positives, np.random.default_rng(5))
    b = bpr_triplets(NegativeSampler.from_csr(positives), np.random.default_rng(5))
    c = bpr_triplets(positives, np.random.default_rng(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[2], c[2])


def test_bpr_triplets_cover_every_positive_once(positives) -> None:
    users, pos, neg = bpr_triplets(positives, np.random.default_rng(0), n_neg=2)
    assert neg.shape == (positives.nnz, 2)
    keys = np.sort(users * 25 + pos)
    coo = positives.tocoo()
    assert np.array_equal(keys, np.sort(coo.row * 25 + coo.col))
    assert not np.array_equal(users, np.sort(users))  # shuffled
    assert not positives.toarray()[users[:, None], neg].any()


def test_pointwise_samples_labels(positives) -> None:
    users, items, labels = pointwise_samples(positives, np.random.default_rng(0), n_neg=4)
    assert len(users) == len(items) == len(labels) == 5 * positives.nnz
    assert labels.dtype == np.float32 and labels.sum() == positives.nnz
    assert np.array_equal(positives.toarray()[users, items], labels)
