from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ncflab.data.interactions import Interactions
from ncflab.models.graph import P3alpha, RP3beta

# 4 users × 3 items (a, b, c): u0 {a, b}, u1 {a, b, c}, u2 {b, c}, u3 {a}.
X = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 0, 0]])


def _inter(x: np.ndarray) -> Interactions:
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(x.shape[0]), np.arange(x.shape[1]))


def _dense_w(model: P3alpha) -> np.ndarray:
    n = model.n_items_
    return sp.csr_matrix((model.w_data_, model.w_indices_, model.w_indptr_), (n, n)).toarray()


def test_p3alpha_by_hand() -> None:
    # P_iu: a → u0,u1,u3 (1/3 each), b → u0,u1,u2 (1/3), c → u1,u2 (1/2); P_ui: u0 → a,b (1/2),
    # u1 → a,b,c (1/3), u2 → b,c (1/2), u3 → a (1). E.g. W_ab = 1/3 (1/2 + 1/3 + 0) = 5/18.
    expected = np.array([[0, 5 / 18, 1 / 9], [5 / 18, 0, 5 / 18], [1 / 6, 5 / 12, 0]])
    model = P3alpha(top_k=5, alpha=1.0, normalize=False).fit(_inter(X))
    assert np.allclose(_dense_w(model), expected, atol=1e-6)
    assert np.allclose(model.score(np.arange(4)).numpy(), X @ expected, atol=1e-6)
    # α = 2 squares every transition probability: W_ab = 1/9 (1/4 + 1/9) = 13/324.
    squared = _dense_w(P3alpha(top_k=5, alpha=2.0, normalize=False).fit(_inter(X)))
    assert np.isclose(squared[0, 1], 13 / 324, atol=1e-7)


def test_rp3beta_divides_columns_by_popularity_and_keeps_top_k() -> None:
    # Popularity a = 3, b = 3, c = 2; β = 1 divides column j of P3alpha's W by pop_j.
    p3 = np.array([[0, 5 / 18, 1 / 9], [5 / 18, 0, 5 / 18], [1 / 6, 5 / 12, 0]])
    expected = p3 / np.array([3.0, 3.0, 2.0])[None, :]
    model = RP3beta(top_k=5, alpha=1.0, beta=1.0, normalize=False).fit(_inter(X))
    assert np.allclose(_dense_w(model), expected, atol=1e-6)
    # k = 1: each row keeps its largest (a → b 5/54, b → c 5/36, c → b 5/36), then each column
    # its largest: column b has a (5/54) and c (5/36) and keeps c.
    top1 = _dense_w(RP3beta(top_k=1, alpha=1.0, beta=1.0, normalize=False).fit(_inter(X)))
    keep = np.zeros((3, 3), bool)
    keep[[1, 2], [2, 1]] = True
    assert np.allclose(top1, np.where(keep, expected, 0), atol=1e-6)
    # normalize: each kept row sums to 1; β = 0 is P3alpha.
    normed = _dense_w(RP3beta(top_k=5, alpha=1.0, beta=1.0, normalize=True).fit(_inter(X)))
    assert np.allclose(normed, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    beta0 = RP3beta(top_k=5, alpha=1.0, beta=0.0, normalize=False).fit(_inter(X))
    assert np.allclose(_dense_w(beta0), p3, atol=1e-6)


@pytest.mark.parametrize("cls", [P3alpha, RP3beta])
def test_fold_in_equals_training_score(cls: type[P3alpha]) -> None:
    rng = np.random.default_rng(2)
    inter = _inter((rng.random((15, 10)) < 0.35).astype(int))
    model = cls(top_k=4, alpha=0.8).fit(inter)
    users = np.array([0, 7, 14])
    rows = inter.csr("binary")[users]
    assert np.allclose(model.score_new_users(rows).numpy(), model.score(users).numpy())


def test_bad_hyperparameters_are_named() -> None:
    with pytest.raises(ValueError, match="alpha"):
        P3alpha(alpha=0.0).fit(_inter(X))
    with pytest.raises(ValueError, match="beta"):
        RP3beta(beta=-0.5).fit(_inter(X))
    with pytest.raises(ValueError, match="top_k"):
        RP3beta(top_k=0).fit(_inter(X))
