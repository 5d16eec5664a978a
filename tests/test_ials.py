from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models import FitOptions
from ncflab.models.als import RowBatches, SparseRows, solve_rows
from ncflab.models.ials import IALS


def _data(seed: int = 0, n_users: int = 12, n_items: int = 9) -> Interactions:
    rng = np.random.default_rng(seed)
    x = rng.random((n_users, n_items)) < 0.35
    x[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # nobody is empty
    x[:, -1] = False  # an item nobody has: its factor must come out 0
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(n_users), np.arange(n_items))


def _numpy_step(x: np.ndarray, h: np.ndarray, model: IALS) -> np.ndarray:
    """The user step written out per user: Rendle et al.'s normal equations, or Hu et al.'s
    Eq. 4 literally, x_u = (Hᵀ Cᵘ H + λ_u I)⁻¹ Hᵀ Cᵘ p(u) with Cᵘ = diag(c on observed, α₀
    elsewhere), in float64."""
    d, n_other = h.shape[1], x.shape[1]
    out = np.zeros((x.shape[0], d))
    for u, row in enumerate(x):
        reg = model.reg * (row.sum() + model.alpha0 * n_other) ** model.nu
        if model.loss == "hu":
            conf = np.where(row > 0, 1 + model.confidence, model.alpha0)
            a = h.T @ (conf[:, None] * h) + reg * np.eye(d)
            b = h.T @ (conf * row)
        else:
            hu = h[row > 0]
            a = model.alpha0 * h.T @ h + hu.T @ hu + reg * np.eye(d)
            b = hu.sum(0)
        out[u] = np.linalg.solve(a, b)
    return out


@pytest.mark.parametrize("loss", ["rendle", "hu"])
def test_one_epoch_is_the_closed_form_user_then_item_step(loss: str) -> None:
    inter = _data()
    model = IALS(factors=3, reg=0.05, alpha0=0.5, nu=1.0, epochs=1, loss=loss, confidence=3.0)
    model.fit(inter, FitOptions(device="cpu"))
    x = inter.csr("binary").toarray()
    _, h0 = model.initial_factors(*x.shape)
    w = _numpy_step(x, h0.double().numpy(), model)
    h = _numpy_step(x.T, w, model)
    assert np.allclose(model.W_, w, atol=1e-5)
    assert np.allclose(model.H_, h, atol=1e-5)
    assert np.allclose(model.H_[-1], 0.0)


def test_solve_rows_with_entry_weights_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    x = sp.random(7, 11, density=0.4, format="csr", random_state=2)
    gram, rhs = rng.random(x.nnz) - 0.2, rng.random(x.nnz) + 0.5
    h, base = rng.standard_normal((11, 4)), np.eye(4) * 0.3
    reg = rng.random(7) + 1.0
    rows = SparseRows.from_scipy(x)
    batches = RowBatches(rows, 4, torch.tensor(gram), torch.tensor(rhs))
    got, b = solve_rows(batches, torch.tensor(h), torch.tensor(base), torch.tensor(reg))
    for u in range(7):
        sl = slice(x.indptr[u], x.indptr[u + 1])
        hu = h[x.indices[sl]]
        a = base + hu.T @ (gram[sl, None] * hu) + reg[u] * np.eye(4)
        assert np.allclose(b[u].numpy(), hu.T @ rhs[sl])
        assert np.allclose(got[u].numpy(), np.linalg.solve(a, hu.T @ rhs[sl]))


def _dense_loss(model: IALS, x: np.ndarray) -> float:
    w, h = model.W_.astype(np.float64), model.H_.astype(np.float64)
    y = w @ h.T
    reg_u = model.reg * (x.sum(1) + model.alpha0 * x.shape[1]) ** model.nu
    reg_i = model.reg * (x.sum(0) + model.alpha0 * x.shape[0]) ** model.nu
    fit = ((y - 1) ** 2 * x).sum() + model.alpha0 * (y**2).sum()
    return fit + (reg_u * (w**2).sum(1)).sum() + (reg_i * (h**2).sum(1)).sum()


def test_loss_history_is_the_objective_and_never_increases() -> None:
    inter = _data(seed=3, n_users=30, n_items=14)
    model = IALS(factors=4, reg=0.01, alpha0=0.2, nu=1.0, epochs=8).fit(inter)
    losses = [r["loss"] for r in model.history_]
    assert len(losses) == 8
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    dense = _dense_loss(model, inter.csr("binary").toarray())
    assert losses[-1] == pytest.approx(dense, rel=1e-5)
    assert model.objective(inter) == pytest.approx(dense, rel=1e-9)


def test_fold_in_is_the_user_step_with_h_fixed() -> None:
    inter = _data()
    model = IALS(factors=3, reg=0.05, alpha0=0.5, epochs=3).fit(inter)
    rows = np.array([[1, 0, 1, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    w = _numpy_step(rows, model.H_.astype(np.float64), model)
    got = model.score_new_users(sp.csr_matrix(rows * 3.0))  # any value > 0 = interacted
    assert np.allclose(got.numpy(), w @ model.H_.T, atol=1e-5)
    assert np.allclose(got[1].numpy(), 0.0)  # no items: w = 0
    with pytest.raises(ValueError, match=r"scipy sparse \(B, 9\)"):
        model.score_new_users(sp.csr_matrix((1, 4)))


def test_validation_keeps_the_best_epoch_and_stops_early() -> None:
    inter = _data()
    calls = []

    def validate(model) -> dict[str, float]:  # best at epoch 2, then worse
        calls.append(model.W_.copy())
        return {"NDCG@10": [0.1, 0.3, 0.2, 0.2, 0.1][len(calls) - 1]}

    opts = FitOptions(validate=validate, patience=2)
    model = IALS(factors=3, reg=0.05, epochs=10).fit(inter, opts)
    assert len(model.history_) == 4 and model.best_epoch_ == 2
    assert np.array_equal(model.W_, calls[1])
    assert np.array_equal(model.W_, IALS(factors=3, reg=0.05, epochs=2).fit(inter).W_)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"reg": 0.0}, "reg must be > 0"),
        ({"factors": 0}, "params.factors must be >= 1, got 0"),
        ({"alpha0": -1.0}, "alpha0 must be >= 0"),
        ({"loss": "bpr"}, "loss must be one of"),
    ],
)
def test_bad_hyperparameters_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IALS(**params).fit(_data())


@pytest.mark.slow
def test_defaults_on_ml1m_reach_the_published_level(data_dir) -> None:
    from ncflab.data.datasets import load_dataset
    from ncflab.evaluation.protocols import evaluate
    from ncflab.experiments.presets import get_protocol, make_split

    torch.set_num_threads(1)
    split = make_split(get_protocol("ncf"), load_dataset("ml-1m", data_dir=data_dir), seed=0)
    model = IALS().fit(split.train, FitOptions(device="cpu"))
    res = evaluate(model, split, part="valid", protocol="sampled", ks=(10,))
    assert res.means["HR@10"] > 0.70  # Dacrema et al.'s iALS on test: .7109
