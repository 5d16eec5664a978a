"""J-NCF maths against hand computations, the sparse first layer, target masking, feedback
variants, new-user scoring, and learning the synthetic block problem."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_contract import FAST, beats_outside, block_problem

from ncflab.data.interactions import Interactions
from ncflab.models import FitOptions, Recommender
from ncflab.models.jncf import JNCF, table6_layers
from ncflab.models.sparse_input import RatingGraph, SparseLinear

# 2 users x 3 items: user 0 rated items 0 (4) and 2 (2); user 1 rated item 1 (5).
R = np.array([[4.0, 0.0, 2.0], [0.0, 5.0, 0.0]], np.float32)


def hand_model(fusion: str) -> JNCF:
    """J-NCF on R with df=[2], di=[2] and hand-set weights (one DF layer, one DI layer)."""
    model = JNCF(df_layers=[2], di_layers=[2], fusion=fusion)
    csr = sp.csr_matrix(R)
    model.n_users_, model.n_items_, model._explicit_ = 2, 3, True
    model.indptr_, model.indices_ = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
    model.data_ = csr.data
    model.build(2, 3)
    m = model.module_
    with torch.no_grad():
        m.user_in.weight.copy_(torch.tensor([[0.1, -0.2], [0.3, 0.1], [-0.1, 0.2]]))
        m.user_in.bias.copy_(torch.tensor([0.05, 0.0]))
        m.item_in.weight.copy_(torch.tensor([[0.2, 0.1], [-0.1, 0.3]]))
        m.item_in.bias.copy_(torch.tensor([0.0, -0.1]))
        w = [[0.5, -0.4, 0.3, 0.2], [0.1, 0.2, -0.3, 0.4]]
        m.di_in.weight.copy_(torch.tensor(w)[:, : m.di_in.in_features])
        m.di_in.bias.copy_(torch.tensor([0.1, -0.05]))
        m.h.weight.copy_(torch.tensor([[1.5, -2.0]]))
    return model


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


@pytest.mark.parametrize("fusion", ["concat", "multiply"])
def test_forward_matches_hand_computation(fusion: str) -> None:
    model = hand_model(fusion)
    m = model.module_
    wu, bu = m.user_in.weight.detach().numpy(), m.user_in.bias.detach().numpy()
    wi, bi = m.item_in.weight.detach().numpy(), m.item_in.bias.detach().numpy()
    w1, b1 = m.di_in.weight.detach().numpy(), m.di_in.bias.detach().numpy()
    h = m.h.weight.detach().numpy()[0]
    expected = np.zeros((2, 3), np.float32)
    for u in range(2):
        for i in range(3):
            zu = relu(R[u] @ wu + bu)  # Eq. 4 with v_u = R[u] (Eq. 3)
            zi = relu(R[:, i] @ wi + bi)  # v_i = R[:, i]
            a = np.concatenate([zu, zi]) if fusion == "concat" else zu * zi  # Eq. 5
            expected[u, i] = h @ relu(w1 @ a + b1)  # Eq. 6, then Eq. 7 before σ
    scores = model.score(np.array([0, 1]))
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Training logits go through the same network (with unique users/items and inverses).
    graph = model._graph(torch.device("cpu"))
    logits = m.train_logits(graph, torch.tensor([1, 0, 1]), torch.tensor([[1, 0], [2, 1], [1, 2]]))
    np.testing.assert_allclose(
        logits.detach().numpy(), expected[[[1, 1], [0, 0], [1, 1]], [[1, 0], [2, 1], [1, 2]]],
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_sparse_first_layer_equals_dense_product() -> None:
    rng = np.random.default_rng(0)
    dense = rng.integers(1, 6, (7, 11)) * (rng.random((7, 11)) < 0.3)
    csr = sp.csr_matrix(dense.astype(np.float32))
    model = JNCF(df_layers=[5], di_layers=[3])
    model.build(7, 11)
    graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, 11, torch.device("cpu"))
    layer, rows = model.module_.user_in, torch.tensor([3, 0, 6, 3, 5])
    expected = torch.from_numpy(dense[rows.numpy()]).float() @ layer.weight + layer.bias
    torch.testing.assert_close(layer(*graph.user_bag(rows)), expected)
    cols = torch.tensor([10, 0, 4])
    item_layer = model.module_.item_in
    expected = torch.from_numpy(dense.T[cols.numpy()]).float() @ item_layer.weight
    torch.testing.assert_close(item_layer(*graph.item_bag(cols)), expected + item_layer.bias)


@pytest.mark.parametrize("side", ["user", "item"])
def test_sparse_first_layer_gradient_equals_dense_gradient(side: str) -> None:
    # The custom backward (Vᵀ G as a transposed embedding bag) must give autograd's dense answer.
    rng = np.random.default_rng(1)
    dense = rng.integers(1, 6, (9, 13)) * (rng.random((9, 13)) < 0.3)
    dense[4] = 0  # an empty row and column are legal: their bags are empty
    dense[:, 7] = 0
    csr = sp.csr_matrix(dense.astype(np.float32))
    graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, 13, torch.device("cpu"))
    matrix = dense if side == "user" else dense.T
    layer = SparseLinear(matrix.shape[1], 4)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    rows = torch.tensor([0, 2, 4, 7, 8])
    bag = graph.user_bag(rows) if side == "user" else graph.item_bag(rows)
    g = torch.randn(len(rows), 4)
    (layer(*bag) * g).sum().backward()
    weight = layer.weight.detach().clone().requires_grad_()
    v = torch.from_numpy(matrix[rows.numpy()]).float()
    ((v @ weight + layer.bias.detach()) * g).sum().backward()
    torch.testing.assert_close(layer.weight.grad, weight.grad)
    torch.testing.assert_close(layer.bias.grad, g.sum(0))
    with pytest.raises(ValueError, match="unique and sorted"):
        repeated = torch.tensor([2, 2])
        bag = graph.user_bag(repeated) if side == "user" else graph.item_bag(repeated)
        layer(*bag).sum().backward()


def test_mask_removes_exactly_the_target_entry() -> None:
    model = hand_model("concat")
    m = model.module_
    full = model._graph(torch.device("cpu"))
    users, items = torch.tensor([0, 0, 1]), torch.tensor([[0, 1], [2, 1], [1, 0]])
    values = torch.from_numpy(R[users.numpy(), items[:, 0].numpy()])
    masked = m.train_logits(full, users, items, mask=values)
    plain = m.train_logits(full, users, items)
    torch.testing.assert_close(masked[:, 1:], plain[:, 1:])  # negatives are untouched
    for b in range(3):
        u, i = int(users[b]), int(items[b, 0])
        dropped = R.copy()
        dropped[u, i] = 0.0  # the same pair scored on R without its own entry
        csr = sp.csr_matrix(dropped)
        graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, 3, torch.device("cpu"))
        ref = m.train_logits(graph, users[b : b + 1], items[b : b + 1])[0, 0]
        torch.testing.assert_close(masked[b, 0], ref)
        assert not torch.isclose(plain[b, 0], ref)


def rated_problem(seed: int = 0) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """The contract's block problem with ratings 1…5 attached."""
    train, held, in_block = block_problem(seed=seed)
    ratings = np.random.default_rng(seed).integers(1, 6, len(train)).astype(np.float32)
    rated = Interactions(
        train.users, train.items, ratings, None, train.user_ids, train.item_ids
    )  # fmt: skip
    return rated, held, in_block


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_inputs_follow_feedback(feedback: str) -> None:
    train = rated_problem()[0]
    model = JNCF(**{**FAST["jncf"], "epochs": 1, "feedback": feedback}).fit(train)
    expected = train.csr("rating").data if feedback == "explicit" else 1.0
    np.testing.assert_array_equal(model.data_, np.broadcast_to(expected, model.data_.shape))
    # Data without ratings is implicit whatever ``feedback`` says.
    plain = JNCF(**{**FAST["jncf"], "epochs": 1}).fit(block_problem()[0])
    assert (plain.data_ == 1.0).all() and not plain._explicit_


def test_targets_are_ratings_over_user_max() -> None:
    from ncflab.models.jncf import _row_max

    csr = sp.csr_matrix(np.array([[4, 0, 2], [0, 0, 0], [0, 5, 1]], np.float32))
    np.testing.assert_array_equal(_row_max(csr), [4.0, 0.0, 5.0])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"fusion": "multiply"},
        {"mask_target": True},
        {"loss": "point"},
        {"loss": "pair", "pair": "bpr-max"},
        {"pair": "top1-max"},
        {"pair": "xe"},
        {"feedback": "implicit"},
    ],
)
def test_learns_rated_block_problem(overrides: dict) -> None:
    torch.set_num_threads(1)
    train, held, in_block = rated_problem(seed=1)
    model = JNCF(**{**FAST["jncf"], **overrides}).fit(train, FitOptions(device="cpu"))
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


@pytest.fixture(scope="module")
def fitted() -> tuple[JNCF, Interactions]:
    torch.set_num_threads(1)
    train = rated_problem()[0]
    return JNCF(**{**FAST["jncf"], "epochs": 3}).fit(train, FitOptions(device="cpu")), train


def test_new_user_scores_equal_a_trained_users(fitted, tmp_path) -> None:
    model, train = fitted
    rows = train.csr("rating")[[4, 77]]
    expected = model.score(np.array([4, 77]))
    torch.testing.assert_close(model.score_new_users(rows), expected)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert torch.equal(loaded.score_new_users(rows), model.score_new_users(rows))
    assert torch.equal(loaded.score(np.arange(train.n_users)), model.score(np.arange(120)))


def test_recommend_for_items_by_original_ids(fitted) -> None:
    model, train = fitted
    row = train.csr("rating")[9]
    ids, scores = model.recommend_for_items(train, train.item_ids[row.indices], row.data, k=5)
    full = model.score(np.array([9]))[0]
    full[row.indices] = -torch.inf
    top = torch.topk(full, 5)
    np.testing.assert_array_equal(ids, train.item_ids[top.indices.numpy()])
    np.testing.assert_allclose(scores, top.values.numpy(), rtol=1e-5)
    assert not set(ids) & set(train.item_ids[row.indices])


def test_unknown_item_ids_are_rejected(fitted) -> None:
    model, train = fitted
    with pytest.raises(KeyError, match="9999"):
        model.recommend_for_items(train, [1, 9999])
    with pytest.raises(ValueError, match="rows must be"):
        model.score_new_users(sp.csr_matrix((1, 5)))
    with pytest.raises(ValueError, match=">= 0"):
        model.score_new_users(sp.csr_matrix(np.full((1, train.n_items), -1.0)))


def test_table6_layer_widths() -> None:
    assert table6_layers(3, 2) == ([256, 128, 64], [128, 8])
    assert table6_layers(1, 1) == ([64], [8])
    assert table6_layers(5, 5) == ([1024, 512, 256, 128, 64], [128, 64, 32, 16, 8])
    with pytest.raises(ValueError, match="df_depth"):
        table6_layers(6, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [("fusion", "sum"), ("loss", "list"), ("pair", "top2"), ("alpha", 1.5), ("n_neg", 0),
     ("df_layers", []), ("init", "xavier"), ("feedback", "both")],
)  # fmt: skip
def test_bad_hyperparameter_is_named(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        JNCF(**{field: value}).fit(block_problem()[0])
