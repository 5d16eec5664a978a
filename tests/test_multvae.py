"""Mult-VAE and Mult-DAE against hand computations: the multinomial log-likelihood (Liang et al.
Eq. 2) and the Gaussian KL term, the input normalisation and drop-out, the forward pass on a
tiny matrix, β's annealing, fold-in of new users, save/load and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_contract import FAST, beats_outside, block_problem, interactions
from test_contract import TINY as R

from ncflab.models import FitOptions, Recommender
from ncflab.models.multvae import MultDAE, MultVAE, kept_bag, normalise_bag
from ncflab.models.sparse_input import RatingGraph, SparseLinear
from ncflab.training import losses

# 3 users x 4 items: user 0 clicked items 0 and 2, user 1 item 1, user 2 items 1-3.


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    torch.set_num_threads(1)


def test_multinomial_log_likelihood_by_hand() -> None:
    # Row 0: softmax(0, ln 2, 0) = (1/4, 1/2, 1/4), clicks on items 0 and 1: −log(1/4 · 1/2).
    # Row 1: uniform logits, one click: −log(1/3).
    logits = torch.tensor([[0.0, math.log(2), 0.0], [5.0, 5.0, 5.0]])
    target = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = (math.log(8) + math.log(3)) / 2
    assert losses.multinomial(logits, target).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="target"):
        losses.multinomial(logits, target[:, :2])


def test_gaussian_kl_by_hand() -> None:
    # ½ Σ_k (σ² + μ² − 1 − log σ²): row 0 ½[(1 + 1 − 1 − 0) + (2 + 0 − 1 − ln 2)], row 1 0.
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2)], [0.0, 0.0]])
    expected = 0.5 * (1 + 1 - math.log(2)) / 2
    assert losses.gaussian_kl(mu, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_normalise_bag_and_dropout() -> None:
    index, offsets = torch.tensor([0, 2, 1, 1, 2, 3]), torch.tensor([0, 2, 3])
    bag = (index, offsets, torch.ones(6))
    _, _, values = normalise_bag(bag)
    r2, r3 = 1 / math.sqrt(2), 1 / math.sqrt(3)
    np.testing.assert_allclose(values.numpy(), [r2, r2, 1.0, r3, r3, r3], rtol=1e-6)
    keep = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    _, _, dropped = normalise_bag(bag, keep, 0.5)  # x̃ = dropout(x / ‖x‖), kept × 1/(1 − p)
    np.testing.assert_allclose(dropped.numpy(), [2 * r2, 0, 2.0, 0, 2 * r3, 2 * r3], rtol=1e-6)


def test_kept_bag_is_the_dropout_bag_without_its_zeros() -> None:
    # A block of users with dropped entries, an emptied row (user 1 drops its only item) and
    # items no kept entry touches: the first layer and its weight gradient are unchanged.
    gen = torch.Generator().manual_seed(0)
    clicks = (np.random.default_rng(0).random((12, 9)) < 0.4).astype(np.float32)
    clicks[1] = 0.0
    clicks[1, 4] = 1.0
    csr = sp.csr_matrix(clicks)
    graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, 9, torch.device("cpu"))
    rows = torch.tensor([0, 1, 3, 4, 7, 11])
    bag = graph.user_bag(rows)
    keep = torch.rand(bag.values.shape, generator=gen) >= 0.5
    keep[bag.offsets[1]] = False
    lens = torch.diff(bag.offsets, append=bag.offsets.new_tensor([len(bag.index)]))
    row = torch.repeat_interleave(torch.arange(len(rows)), lens)
    noisy = normalise_bag(bag, keep, 0.5)
    layer = SparseLinear(9, 5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(9, 5, generator=gen))
        layer.bias.copy_(torch.randn(5, generator=gen))
    grad_out = torch.randn(len(rows), 5, generator=gen)
    grads = []
    for inputs in (noisy, kept_bag(noisy, keep, row, len(rows), 9)):
        layer.zero_grad(set_to_none=True)
        out = layer(*inputs)
        (out * grad_out).sum().backward()
        grads.append((out.detach(), layer.weight.grad.clone()))
    assert len(kept_bag(noisy, keep, row, len(rows), 9).index) == int(keep.sum())
    assert torch.equal(grads[0][0], grads[1][0])  # 0 · W_j adds nothing, bit for bit
    torch.testing.assert_close(grads[0][1], grads[1][1])  # summed in another order


def tiny(cls: type, **params) -> MultVAE:
    """A model fitted one epoch on R, its weights then replaced by random ones."""
    model = cls(dims=(3, 2), epochs=1, **params).fit(interactions(R), FitOptions(device="cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.module_.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def forward(model: MultVAE, rows: np.ndarray) -> np.ndarray:
    """The logits of [I → 3 → 2 (μ) → 3 → I] with tanh between layers, written out in numpy."""
    w = {k: v.detach().numpy() for k, v in model.module_.state_dict().items()}
    x = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    h = np.tanh(x @ w["first.weight"] + w["first.bias"])
    out = h @ w["encoder.0.weight"].T + w["encoder.0.bias"]
    z = out[:, :2] if model.variational else np.tanh(out)  # the VAE's μ is its first half
    h = np.tanh(z @ w["decoder.0.weight"].T + w["decoder.0.bias"])
    return h @ w["decoder.1.weight"].T + w["decoder.1.bias"]


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_score_is_the_forward_pass(cls: type) -> None:
    model = tiny(cls)
    assert model.module_.encoder[0].out_features == (4 if cls is MultVAE else 2)
    expected = forward(model, R)
    np.testing.assert_allclose(model.score(np.arange(3)).numpy(), expected, rtol=1e-5)
    # Fold-in of the same rows gives the same scores (the input is the row, nothing per user);
    # any positive value counts as one click.
    folded = model.score_new_users(sp.csr_matrix(R[[2, 0]] * 4.0)).numpy()
    np.testing.assert_allclose(folded, expected[[2, 0]], rtol=1e-5)


def test_beta_is_annealed_to_the_cap() -> None:
    model = MultVAE(anneal_steps=1000, anneal_cap=0.2)
    assert [model.beta(s) for s in (0, 100, 150, 200, 10**6)] == pytest.approx(
        [0.0, 0.1, 0.15, 0.2, 0.2]
    )
    assert MultVAE(anneal_steps=0).beta(0) == pytest.approx(0.2)


def test_training_is_the_beta_elbo() -> None:
    """With β's cap at 0 the VAE's loss is the multinomial term alone, so it ends lower than
    the same fit with a large β, whose KL term pulls μ towards 0."""
    train, _, _ = block_problem()
    params = {**FAST["multvae"], "epochs": 5}
    free = MultVAE(**{**params, "anneal_cap": 0.0}).fit(train, FitOptions(device="cpu"))
    tied = MultVAE(**{**params, "anneal_cap": 5.0, "anneal_steps": 0})
    tied.fit(train, FitOptions(device="cpu"))
    assert free.history_[-1]["loss"] < tied.history_[-1]["loss"]


def test_dae_with_the_notebooks_shape_learns() -> None:
    train, held, in_block = block_problem()
    params = {**FAST["multdae"], "dims": [16]}  # [I → 16 → I], the notebook's Mult-DAE shape
    model = MultDAE(**params).fit(train, FitOptions(device="cpu"))
    assert len(model.module_.encoder) == 0 and len(model.module_.decoder) == 1
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_save_load_round_trip(cls: type, tmp_path) -> None:
    model = tiny(cls)
    loaded = Recommender.load(model.save(tmp_path / cls.name))
    assert loaded.dims == (3, 2) and loaded.get_params() == model.get_params()
    rows = sp.csr_matrix(np.array([[0, 1, 1, 0]], np.float32))
    assert torch.equal(loaded.score_new_users(rows), model.score_new_users(rows))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"dropout": 1.0}, "dropout"),
        ({"dims": []}, "dims"),
        ({"dims": [600, 0]}, "dims"),
        ({"anneal_steps": -1}, "anneal_steps"),
        ({"anneal_cap": -0.5}, "anneal_cap"),
        ({"l2": -1.0}, "l2"),
        ({"lr": 0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_params_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultVAE(**params).fit(interactions(R))
