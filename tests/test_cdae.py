"""CDAE against hand computations: the forward pass (Wu et al. §4.1) on a tiny matrix, the two
losses, the drop-out corruption, new users (V_u = 0), the logistic variant learning the
synthetic block problem, save/load and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_contract import FAST, beats_outside, block_problem, interactions, sigmoid
from test_contract import TINY as R

from ncflab.models import FitOptions, Recommender
from ncflab.models.cdae import CDAE, cdae_loss, row_entries


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    torch.set_num_threads(1)


def tiny_cdae(**params) -> CDAE:
    """CDAE fitted one epoch on R, its weights then replaced by random ones."""
    model = CDAE(hidden=2, epochs=1, **params).fit(interactions(R), FitOptions(device="cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.module_.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def forward(model: CDAE, rows: np.ndarray, with_user: bool = True) -> np.ndarray:
    """ŷ = σ(W'ᵀ σ(Wᵀ y_u + V_u + b) + b') in numpy from the model's weights."""
    w = {k: v.detach().numpy() for k, v in model.module_.state_dict().items()}
    pre = rows @ w["encoder.weight"] + w["encoder.bias"]
    if with_user:
        pre = pre + w["user"]
    return sigmoid(sigmoid(pre) @ w["weight"] + w["bias"])


def test_score_is_the_cdae_forward_pass() -> None:
    model = tiny_cdae()
    np.testing.assert_allclose(model.score(np.arange(3)).numpy(), forward(model, R), rtol=1e-5)
    np.testing.assert_allclose(
        model.score(np.array([2, 0])).numpy(), forward(model, R)[[2, 0]], rtol=1e-5
    )


def test_new_users_get_a_zero_user_node() -> None:
    model = tiny_cdae()
    rows = np.array([[0, 1, 1, 0], [1, 0, 0, 0]], np.float32)
    got = model.score_new_users(sp.csr_matrix(rows * 3.0)).numpy()  # values > 0 count as 1
    np.testing.assert_allclose(got, forward(model, rows, with_user=False), rtol=1e-5)
    # A training user's own row differs from score() by V_u alone.
    alone = model.score_new_users(sp.csr_matrix(R[:1])).numpy()
    np.testing.assert_allclose(alone, forward(model, R[:1], with_user=False), rtol=1e-5)
    assert not np.allclose(alone, model.score(np.array([0])).numpy())


def test_losses_by_hand() -> None:
    pos, neg = torch.tensor([0.0, 2.0]), torch.tensor([[-1.0], [1.0]])
    # σ(0) = .5, σ(2) = .880797, σ(−1) = .268941, σ(1) = .731059.
    mse = 0.5**2 + (1 - 0.880797) ** 2 + 0.268941**2 + 0.731059**2
    assert cdae_loss("mse", pos, neg).item() == pytest.approx(mse, rel=1e-5)
    # −log σ(0) − log σ(2) − log(1 − σ(−1)) − log(1 − σ(1)).
    log = math.log(2) + math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + math.log1p(math.e)
    assert cdae_loss("log", pos, neg).item() == pytest.approx(log, rel=1e-6)
    with pytest.raises(ValueError, match="'hinge'"):
        cdae_loss("hinge", pos, neg)


def test_corruption_drops_and_rescales() -> None:
    model = CDAE(corruption=0.25)
    n = 200_000
    index, offsets = torch.arange(n), torch.tensor([0])
    torch.manual_seed(0)
    _, _, values = model._corrupt((index, offsets, torch.ones(n), None))
    kept = values[values > 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))  # δ = 1/(1 − q)
    assert (values == 0).float().mean().item() == pytest.approx(0.25, abs=0.005)
    assert values.mean().item() == pytest.approx(1.0, abs=0.01)  # E[ỹ] = y
    bag = (index, offsets, torch.ones(n), None)
    assert CDAE(corruption=0.0)._corrupt(bag) is bag


def test_row_entries() -> None:
    csr = sp.csr_matrix(R)
    flat, r = row_entries(csr.indptr, np.array([0, 2]))
    assert flat.tolist() == [0, 1, 3, 4, 5] and r.tolist() == [0, 0, 1, 1, 1]
    assert csr.indices[flat].tolist() == [0, 2, 1, 2, 3]


def test_logistic_loss_learns_the_block_problem() -> None:
    train, held, in_block = block_problem()
    model = CDAE(**{**FAST["cdae"], "loss": "log"}).fit(train, FitOptions(device="cpu"))
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]


def test_save_load_keeps_new_user_scores(tmp_path) -> None:
    model = tiny_cdae()
    loaded = Recommender.load(model.save(tmp_path / "cdae"))
    rows = sp.csr_matrix(np.array([[0, 1, 1, 0]], np.float32))
    assert torch.equal(loaded.score_new_users(rows), model.score_new_users(rows))
    assert torch.equal(loaded.score(np.arange(3)), model.score(np.arange(3)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"corruption": 1.0}, "corruption"),
        ({"corruption": -0.1}, "corruption"),
        ({"loss": "hinge"}, "'hinge'"),
        ({"hidden": 0}, "hidden"),
        ({"n_neg": 0}, "n_neg"),
        ({"reg": -1.0}, "reg"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 2.5}, "batch_size"),
    ],
)
def test_bad_params_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CDAE(**params).fit(interactions(R))
