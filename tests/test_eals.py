from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ncflab.data.interactions import Interactions
from ncflab.models import FitOptions
from ncflab.models.eals import EALS, popularity_weights


def _data(seed: int = 0, n_users: int = 10, n_items: int = 7) -> Interactions:
    rng = np.random.default_rng(seed)
    x = rng.random((n_users, n_items)) < 0.4
    x[np.arange(n_users), rng.integers(0, n_items - 1, n_users)] = True
    x[:, -1] = False  # an unseen item: c = 0, its factor must come out 0
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(n_users), np.arange(n_items))


def _weights(model: EALS, x: np.ndarray) -> np.ndarray:
    """The dense weight matrix of He et al.'s loss: w on observed pairs, c_i on missing."""
    return np.where(x > 0, model.weight, model.c_[None, :].astype(np.float64))


def _naive_sweep(p: np.ndarray, q: np.ndarray, x: np.ndarray, wts: np.ndarray, lam: float):
    """One eALS epoch written out with dense matrices: the generic element-wise update
    p_uf = Σ_i W_ui (r_ui − r̂^f_ui) q_if / (Σ_i W_ui q_if² + λ), user by user, coordinate by
    coordinate, then the same for items (He et al. 2016, §3.2, before any caching)."""
    p, q = p.copy(), q.copy()
    for u in range(p.shape[0]):
        for f in range(p.shape[1]):
            rest = p[u] @ q.T - p[u, f] * q[:, f]
            p[u, f] = (wts[u] * (x[u] - rest) * q[:, f]).sum() / (
                (wts[u] * q[:, f] ** 2).sum() + lam
            )
    for i in range(q.shape[0]):
        for f in range(q.shape[1]):
            rest = p @ q[i] - p[:, f] * q[i, f]
            q[i, f] = (wts[:, i] * (x[:, i] - rest) * p[:, f]).sum() / (
                (wts[:, i] * p[:, f] ** 2).sum() + lam
            )
    return p, q


def _dense_loss(model: EALS, x: np.ndarray) -> float:
    p, q = model.P_.astype(np.float64), model.Q_.astype(np.float64)
    err = (_weights(model, x) * (x - p @ q.T) ** 2).sum()
    return err + model.reg * ((p**2).sum() + (q**2).sum())


def test_popularity_weights_by_hand() -> None:
    assert np.allclose(
        popularity_weights(np.array([1, 4, 0, 9]), 10.0, 0.5), [10 / 6, 20 / 6, 0, 5]
    )
    assert np.allclose(popularity_weights(np.array([1, 4, 0, 9]), 3.0, 0.0), [1, 1, 0, 1])
    assert np.allclose(popularity_weights(np.array([1, 4, 0, 9]), 14.0, 1.0), [1, 4, 0, 9])


def test_one_sweep_matches_a_naive_dense_implementation() -> None:
    inter = _data()
    model = EALS(factors=3, reg=0.1, c0=4.0, alpha=0.5, weight=2.0, epochs=1, init_std=0.3)
    model.fit(inter, FitOptions(device="cpu"))
    x = inter.csr("binary").toarray().astype(np.float64)
    p0, q0 = (f.double().numpy() for f in model.initial_factors(*x.shape))
    p, q = _naive_sweep(p0, q0, x, _weights(model, x), model.reg)
    assert np.allclose(model.P_, p, atol=1e-5)
    assert np.allclose(model.Q_, q, atol=1e-5)
    assert np.allclose(model.Q_[-1], 0.0)


def test_loss_decreases_monotonically_and_is_the_objective() -> None:
    inter = _data(seed=2, n_users=25, n_items=12)
    model = EALS(factors=4, reg=0.05, c0=6.0, alpha=0.4, epochs=10, init_std=0.1).fit(inter)
    losses = [r["loss"] for r in model.history_]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < losses[0]
    dense = _dense_loss(model, inter.csr("binary").toarray().astype(np.float64))
    assert losses[-1] == pytest.approx(dense, rel=1e-5)
    assert model.objective(inter) == pytest.approx(dense, rel=1e-9)


def test_fold_in_minimises_the_loss_with_q_fixed() -> None:
    inter = _data()
    model = EALS(factors=3, reg=0.1, c0=4.0, weight=2.0, epochs=5, init_std=0.3).fit(inter)
    rows = np.array([[1, 0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0, 0]], np.float64)
    q, wts = model.Q_.astype(np.float64), _weights(model, rows)
    expected = []
    for u in range(2):  # weighted least squares: (Qᵀ Wᵘ Q + λI) p = Qᵀ Wᵘ r_u
        a = q.T @ (wts[u, :, None] * q) + model.reg * np.eye(3)
        expected.append(np.linalg.solve(a, q.T @ (wts[u] * rows[u])) @ q.T)
    got = model.score_new_users(sp.csr_matrix(rows))
    assert np.allclose(got.numpy(), np.array(expected), atol=1e-5)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"reg": 0.0}, "reg must be > 0"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"c0": -1.0}, "c0 must be >= 0"),
    ],
)
def test_bad_hyperparameters_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EALS(**params).fit(_data())
