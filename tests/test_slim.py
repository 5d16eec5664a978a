from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.slim import SLIM, slim_weights


def _random(n_users: int = 40, n_items: int = 9, density: float = 0.35) -> Interactions:
    x = np.random.default_rng(1).random((n_users, n_items)) < density
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(n_users), np.arange(n_items))


def _dense_w(model: SLIM) -> np.ndarray:
    n = model.n_items_
    return sp.csr_matrix((model.w_data_, model.w_indices_, model.w_indptr_), (n, n)).toarray()


def test_two_items_have_the_hand_computed_closed_form() -> None:
    # x_0 = (1, 1, 1, 0), x_1 = (1, 0, 1, 1): x_0·x_1 = 2, ‖x_0‖² = ‖x_1‖² = 3. With one
    # predictor, Eq. 3 is w = max(0, x_0·x_1 − l1) / (‖x_0‖² + l2); n_users·alpha = 1 and
    # l1_ratio 0.5 give l1 = l2 = 0.5, so w = 1.5 / 3.5 = 3/7 both ways.
    users, items = np.array([0, 1, 2, 0, 2, 3]), np.array([0, 0, 0, 1, 1, 1])
    inter = Interactions(users, items, None, None, np.arange(4), np.arange(2))
    model = SLIM(alpha=0.25, l1_ratio=0.5, tol=1e-8).fit(inter)
    assert np.allclose(_dense_w(model), [[0.0, 3 / 7], [3 / 7, 0.0]], atol=1e-6)
    # l1 above the co-occurrence (alpha 2: l1 = 4 > 2) switches the weight off.
    assert _dense_w(SLIM(alpha=2.0, l1_ratio=0.5).fit(inter)).sum() == 0.0


def test_columns_equal_sklearn_elasticnet_on_x_with_column_j_zeroed() -> None:
    # Dacrema et al.'s call, with a tight tolerance so both solvers reach the optimum.
    from sklearn.linear_model import ElasticNet

    inter, alpha, l1_ratio = _random(), 0.01, 0.2
    model = SLIM(alpha=alpha, l1_ratio=l1_ratio, top_k=100, max_iter=5000, tol=1e-10)
    w = _dense_w(model.fit(inter))
    x = inter.csr("binary").toarray().astype(np.float64)
    for j in range(inter.n_items):
        xj = x.copy()
        xj[:, j] = 0.0
        enet = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enet.set_params(max_iter=5000, tol=1e-12).fit(xj, x[:, j])
        assert np.allclose(w[:, j], enet.coef_, atol=1e-5), j


def test_weights_satisfy_the_kkt_conditions_of_eq_3() -> None:
    inter, alpha, l1_ratio = _random(), 0.005, 0.5
    model = SLIM(alpha=alpha, l1_ratio=l1_ratio, top_k=100, max_iter=5000, tol=1e-10)
    w = _dense_w(model.fit(inter)).astype(np.float64)
    x = inter.csr("binary").toarray().astype(np.float64)
    n = inter.n_users
    l1, l2 = n * alpha * l1_ratio, n * alpha * (1 - l1_ratio)
    assert (w >= 0).all() and np.allclose(np.diag(w), 0.0)
    assert (w > 0).sum() > inter.n_items  # a non-trivial solution
    for j in range(inter.n_items):
        others = np.arange(inter.n_items) != j
        a, wj = x[:, others], w[others, j]
        # ∂/∂w of ½‖x_j − A w‖² + (l2/2)‖w‖², plus l1: zero where w > 0, ≥ 0 where w = 0.
        grad = a.T @ (a @ wj - x[:, j]) + l2 * wj + l1
        assert np.allclose(grad[wj > 0], 0.0, atol=1e-4), j
        assert (grad[wj == 0] >= -1e-4).all(), j


def test_top_k_keeps_each_columns_largest_weights() -> None:
    inter = _random()
    full = _dense_w(SLIM(alpha=0.005, l1_ratio=0.1, top_k=100).fit(inter))
    kept = _dense_w(SLIM(alpha=0.005, l1_ratio=0.1, top_k=2).fit(inter))
    assert ((kept > 0).sum(axis=0) <= 2).all() and (full > 0).sum(axis=0).max() > 2
    for j in range(inter.n_items):
        top = np.sort(full[:, j])[::-1][:2]
        assert np.allclose(np.sort(kept[:, j])[::-1][:2], top), j


def test_the_number_of_workers_does_not_change_the_weights() -> None:
    x = _random(60, 25).csr("binary")
    one = slim_weights(x, l1=0.3, l2=1.0, top_k=10, workers=1)
    three = slim_weights(x, l1=0.3, l2=1.0, top_k=10, workers=3)
    assert (one != three).nnz == 0 and one.nnz > 0
    many = slim_weights(x, l1=0.3, l2=1.0, top_k=10, workers=40)  # more workers than items
    assert (one != many).nnz == 0


def test_scores_are_rows_times_w_and_fold_in_matches_training_users() -> None:
    inter = _random()
    model = SLIM(alpha=0.005, l1_ratio=0.1).fit(inter)
    x = inter.csr("binary")
    users = np.arange(inter.n_users)
    expected = x.toarray().astype(np.float32) @ _dense_w(model)
    assert np.allclose(model.score(users).numpy(), expected, atol=1e-6)
    # A new user with a training user's row is scored exactly as that user.
    torch.testing.assert_close(model.score_new_users(x[[3, 7]]), model.score(np.array([3, 7])))
    with pytest.raises(ValueError, match=r"scipy sparse \(B, 9\)"):
        model.score_new_users(sp.csr_matrix((1, 4)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"l1_ratio": 1.5}, r"l1_ratio must be in \[0, 1\]"),
        ({"top_k": 0}, "params.top_k must be >= 1, got 0"),
        ({"max_iter": 2.5}, "params.max_iter must be an integer, got 2.5"),
        ({"tol": -1.0}, "tol must be > 0"),
    ],
)
def test_bad_hyperparameters_are_named(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SLIM(**params).fit(_random())


def test_bad_workers_are_named() -> None:
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        SLIM().fit(_random(), workers=0)


@pytest.mark.slow
def test_ml100k_ncf_defaults_recommend_well(data_dir) -> None:
    from ncflab.data.datasets import load_dataset
    from ncflab.evaluation.protocols import evaluate
    from ncflab.experiments.presets import get_protocol, make_split

    split = make_split(get_protocol("ncf"), load_dataset("ml-100k", data_dir=data_dir), seed=0)
    model = SLIM().fit(split.train, workers=2)
    w = sp.csc_matrix(_dense_w(model))
    assert (w.data > 0).all() and w.diagonal().sum() == 0.0
    assert np.diff(w.indptr).max() <= model.top_k
    # Measured: test HR@10 .6458 (ItemPop .4008) with these defaults, seed 0.
    hr = evaluate(model, split, part="test", protocol="sampled", ks=(10,)).means["HR@10"]
    assert hr > 0.6
