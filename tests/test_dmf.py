"""DMF maths against hand computations (NCE loss, towers, cosine), the full-row first layer,
target masking, the NCE targets, new-user scoring, and learning the rated block problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_contract import FAST, beats_outside, block_problem

import ncflab.models.dmf as dmf_module
from ncflab.data.interactions import Interactions
from ncflab.models import FitOptions, Recommender
from ncflab.models.dmf import DMF, MU, dmf_loss
from ncflab.models.sparse_input import RatingGraph

# 2 users x 3 items: user 0 rated items 0 (4) and 2 (2); user 1 rated item 1 (5).
R = np.array([[4.0, 0.0, 2.0], [0.0, 5.0, 0.0]], np.float32)


def test_nce_loss_matches_hand_values() -> None:
    # Eq. 12-13: a positive rated 4 of max 5 at cosine 0.5, a negative at cosine -0.3 (clamped
    # to μ = 1e-6) and a negative at 0.9.
    cos = torch.tensor([0.5, -0.3, 0.9])
    target = torch.tensor([4 / 5, 0.0, 0.0])
    terms = [
        -(0.8 * math.log(0.5) + 0.2 * math.log(0.5)),  # = log 2
        -math.log(1 - MU),
        -math.log(1 - 0.9),
    ]
    assert dmf_loss(cos, target).item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    # A positive at cosine <= μ is charged log(1/μ), not infinity: Ŷ° = max(μ, Ŷ).
    assert dmf_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(
        -math.log(MU), rel=1e-5
    )
    # Cosine exactly 1 on a negative stays finite (log_loss clamps at 1 - 1e-7).
    assert math.isfinite(dmf_loss(torch.tensor([1.0]), torch.tensor([0.0])).item())


def test_nce_gradient_is_zero_below_mu() -> None:
    cos = torch.tensor([-0.2, 0.4], requires_grad=True)
    dmf_loss(cos, torch.tensor([1.0, 1.0])).backward()
    assert cos.grad[0] == 0.0 and cos.grad[1] == pytest.approx(-1 / (2 * 0.4), rel=1e-5)


def hand_model() -> DMF:
    """DMF on R with layers [2, 2] and hand-set weights."""
    model = DMF(layers=[2, 2])
    csr = sp.csr_matrix(R)
    model.n_users_, model.n_items_, model._explicit_ = 2, 3, True
    model.indptr_, model.indices_ = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
    model.data_, model.max_rating_ = csr.data, 5.0
    model.build(2, 3)
    m = model.module_
    with torch.no_grad():
        m.user_in.weight.copy_(torch.tensor([[0.1, -0.2], [0.3, 0.1], [-0.1, 0.2]]))
        m.item_in.weight.copy_(torch.tensor([[0.2, 0.1], [-0.1, 0.3]]))
        m.user_mlp[0].weight.copy_(torch.tensor([[0.5, -0.4], [0.3, 0.2]]))
        m.user_mlp[0].bias.copy_(torch.tensor([0.1, -0.05]))
        m.item_mlp[0].weight.copy_(torch.tensor([[-0.3, 0.6], [0.2, 0.4]]))
        m.item_mlp[0].bias.copy_(torch.tensor([0.02, 0.01]))
    return model


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def hand_cosines(model: DMF) -> np.ndarray:
    """(2, 3) Ŷ of Eq. 7-10 computed in numpy from the model's weights."""
    m = model.module_
    w = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    out = np.zeros((2, 3), np.float32)
    for u in range(2):
        for i in range(3):
            lu = R[u] @ w["user_in.weight"]  # l_1 = W_1 Y_u* (Eq. 7: no bias, no f)
            li = R[:, i] @ w["item_in.weight"]
            p = relu(w["user_mlp.0.weight"] @ lu + w["user_mlp.0.bias"])  # Eq. 8
            q = relu(w["item_mlp.0.weight"] @ li + w["item_mlp.0.bias"])  # Eq. 9
            out[u, i] = p @ q / (np.linalg.norm(p) * np.linalg.norm(q))  # Eq. 10
    return out


def test_forward_matches_hand_computation() -> None:
    model = hand_model()
    expected = hand_cosines(model)
    assert (np.abs(expected) > 0.01).all()  # no tower is dead in this example
    np.testing.assert_allclose(model.score(np.array([0, 1])).numpy(), expected, rtol=1e-5)
    items = np.array([[2, 0], [1, 1]])
    np.testing.assert_allclose(
        model.score_items(np.array([0, 1]), items).numpy(), expected[[[0], [1]], items], rtol=1e-5
    )
    graph = model._graph(torch.device("cpu"))
    users, batch = torch.tensor([1, 0, 1]), torch.tensor([[1, 0], [2, 1], [1, 2]])
    cos = model.module_.train_cosines(graph, users, batch)
    np.testing.assert_allclose(
        cos.detach().numpy(), expected[users.numpy()[:, None], batch.numpy()], rtol=1e-5
    )


def test_first_layer_has_no_bias() -> None:
    m = DMF(layers=[4, 3], seed=1)
    m.build(5, 6)
    for layer in (m.module_.user_in, m.module_.item_in):
        assert not layer.bias.requires_grad and (layer.bias == 0).all()  # Eq. 7: l_1 = W_1 x


def test_full_rows_equal_selected_rows_with_gradients(monkeypatch) -> None:
    # The first layer over every row (large minibatches) must equal the gathered rows, in
    # value and in the gradient of every parameter.
    rng = np.random.default_rng(0)
    dense = (rng.integers(1, 6, (9, 13)) * (rng.random((9, 13)) < 0.4)).astype(np.float32)
    csr = sp.csr_matrix(dense)
    graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, 13, torch.device("cpu"))
    model = DMF(layers=[6, 4], init_std=0.3)
    model.build(9, 13)
    users, items = torch.tensor([3, 0, 3, 8]), torch.tensor([[1, 5], [0, 12], [7, 7], [2, 4]])
    results = []
    for fraction in (2.0, 0.0):  # never / always the full-row path
        monkeypatch.setattr(dmf_module, "FULL_FRACTION", fraction)
        model.module_.zero_grad()
        cos = model.module_.train_cosines(graph, users, items, mask=torch.tensor([1.0, 2, 0, 3]))
        (cos * torch.arange(8.0).view(4, 2)).sum().backward()
        grads = [p.grad.clone() for p in model.module_.parameters() if p.grad is not None]
        results.append((cos.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # summation order differs


def test_mask_removes_exactly_the_target_entry() -> None:
    model = hand_model()
    m = model.module_
    full = model._graph(torch.device("cpu"))
    users, items = torch.tensor([0, 0, 1]), torch.tensor([[0, 1], [2, 1], [1, 0]])
    values = torch.from_numpy(R[users.numpy(), items[:, 0].numpy()])
    masked = m.train_cosines(full, users, items, mask=values)
    torch.testing.assert_close(masked[:, 1:], m.train_cosines(full, users, items)[:, 1:])
    for b in range(3):
        u, i = int(users[b]), int(items[b, 0])
        dropped = R.copy()
        dropped[u, i] = 0.0  # the same pair scored on R without its own entry
        csr = sp.csr_matrix(dropped)
        graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, 3, torch.device("cpu"))
        torch.testing.assert_close(
            masked[b, 0], m.train_cosines(graph, users[b : b + 1], items[b : b + 1])[0, 0]
        )


def rated_problem(seed: int = 0) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """The contract's block problem with ratings 1…5 attached."""
    train, held, in_block = block_problem(seed=seed)
    ratings = np.random.default_rng(seed).integers(1, 6, len(train)).astype(np.float32)
    rated = Interactions(
        train.users, train.items, ratings, None, train.user_ids, train.item_ids
    )  # fmt: skip
    return rated, held, in_block


@pytest.mark.parametrize("loss", ["nce", "bce"])
def test_targets_are_rating_over_max_rating(loss: str, monkeypatch) -> None:
    seen = []

    def spy(cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(target.detach().clone())
        return dmf_loss(cos, target)

    monkeypatch.setattr(dmf_module, "dmf_loss", spy)
    train = rated_problem()[0]
    model = DMF(**{**FAST["dmf"], "epochs": 1, "loss": loss, "n_neg": 2}).fit(train)
    assert model.max_rating_ == 5.0
    targets = torch.cat(seen)
    assert (targets[:, 1:] == 0).all()  # sampled unobserved pairs
    expected = np.sort(train.ratings / 5.0) if loss == "nce" else np.ones(len(train))
    np.testing.assert_allclose(np.sort(targets[:, 0].numpy()), expected, rtol=1e-6)


@pytest.mark.parametrize("resample", [True, False])
def test_resample_false_reuses_the_first_epochs_negatives(resample: bool, monkeypatch) -> None:
    """Algorithm 1 of the DMF paper draws Y⁻ once: every epoch then sees the same (user,
    positive, negatives) triplets, in a new order; with resampling they differ."""
    epochs: list[list[tuple]] = []

    def spy(arrays, batch_size, device):
        users, pos, neg = arrays[:3]
        rows = zip(users.tolist(), pos.tolist(), map(tuple, neg.tolist()), strict=True)
        epochs.append(sorted(rows))
        orders.append(users.copy())
        return minibatches(arrays, batch_size, device)

    orders: list[np.ndarray] = []
    minibatches = dmf_module.minibatches
    monkeypatch.setattr(dmf_module, "minibatches", spy)
    train = rated_problem()[0]
    DMF(**{**FAST["dmf"], "epochs": 3, "n_neg": 2, "resample": resample}).fit(train)
    assert len(epochs) == 3
    assert (epochs[0] == epochs[1] == epochs[2]) is (not resample)
    assert not np.array_equal(orders[0], orders[1])  # shuffled every epoch either way


@pytest.mark.parametrize(
    "overrides",
    [{}, {"loss": "bce"}, {"mask_target": True}, {"feedback": "implicit"}, {"resample": False}],
)
def test_learns_rated_block_problem(overrides: dict) -> None:
    torch.set_num_threads(1)
    train, held, in_block = rated_problem(seed=1)
    model = DMF(**{**FAST["dmf"], **overrides}).fit(train, FitOptions(device="cpu"))
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


@pytest.fixture(scope="module")
def fitted() -> tuple[DMF, Interactions]:
    torch.set_num_threads(1)
    train = rated_problem()[0]
    return DMF(**{**FAST["dmf"], "epochs": 3}).fit(train, FitOptions(device="cpu")), train


def test_new_user_scores_equal_a_trained_users(fitted, tmp_path) -> None:
    model, train = fitted
    rows = train.csr("rating")[[4, 77]]
    torch.testing.assert_close(model.score_new_users(rows), model.score(np.array([4, 77])))
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert loaded.max_rating_ == 5.0 and loaded._explicit_
    assert torch.equal(loaded.score_new_users(rows), model.score_new_users(rows))
    with pytest.raises(ValueError, match="rows must be"):
        model.score_new_users(sp.csr_matrix((1, 5)))


def test_explicit_input_needs_positive_ratings() -> None:
    train = rated_problem()[0]
    bad = Interactions(
        train.users, train.items, -train.ratings, None, train.user_ids, train.item_ids
    )  # fmt: skip
    with pytest.raises(ValueError, match="ratings > 0"):
        DMF(epochs=1).fit(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [("loss", "mse"), ("feedback", "both"), ("n_neg", 0),
     ("layers", []), ("lr", 0.0), ("init_std", 0.0), ("batch_size", 0)],
)  # fmt: skip
def test_bad_hyperparameter_is_named(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        DMF(**{field: value}).fit(block_problem()[0])


@pytest.mark.slow
def test_learns_ml100k(data_dir) -> None:
    from ncflab.data.datasets import load_dataset
    from ncflab.evaluation.protocols import evaluate
    from ncflab.experiments.presets import get_protocol, make_split

    torch.set_num_threads(1)
    split = make_split(get_protocol("jncf"), load_dataset("ml-100k", data_dir=data_dir), seed=0)
    model = DMF(epochs=5).fit(split.train, FitOptions(device="cpu"))
    hr = evaluate(model, split, part="valid", protocol="sampled", ks=(10,)).means["HR@10"]
    assert hr > 0.5  # ItemPop reaches about 0.4 on this split
