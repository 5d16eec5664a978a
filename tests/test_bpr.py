"""BPR-MF maths against hand-computed values, and learning the synthetic block problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_contract import FAST, beats_outside, block_problem

from ncflab.models import FitOptions
from ncflab.models.bpr import BPR, BPRModule


def tiny_module(item_bias: bool) -> BPRModule:
    """1 user, 3 items, d=2: w_0 = (1, 2), h_1 = (0.5, 0), h_2 = (0, 1), b = (0, 0.3, -0.2)."""
    m = BPRModule(1, 3, 2, 0.01, item_bias, seed=0)
    with torch.no_grad():
        m.user.weight.copy_(torch.tensor([[1.0, 2.0]]))
        m.item.weight.copy_(torch.tensor([[3.0, 3.0], [0.5, 0.0], [0.0, 1.0]]))
        if item_bias:
            m.bias.weight.copy_(torch.tensor([[0.0], [0.3], [-0.2]]))
    return m


def one_triplet() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.tensor([0]), torch.tensor([1]), torch.tensor([[2]])


def test_loss_matches_hand_computation() -> None:
    # x_ui = 0.5, x_uj = 2 → −ln σ(−1.5) = ln(1 + e^1.5); reg/2 · (5 + 0.25 + 1).
    loss = tiny_module(False).loss(*one_triplet(), reg=0.1)
    assert loss.item() == pytest.approx(math.log1p(math.exp(1.5)) + 0.05 * 6.25, rel=1e-6)


def test_loss_with_item_bias_matches_hand_computation() -> None:
    # x_ui = 0.5 + 0.3, x_uj = 2 − 0.2 → ln(1 + e^1); biases add reg/2 · (0.09 + 0.04).
    loss = tiny_module(True).loss(*one_triplet(), reg=0.1)
    expected = math.log1p(math.e) + 0.05 * (6.25 + 0.13)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_loss_averages_over_negatives() -> None:
    # Negatives 2 and 0: x_u0 = 9 → the two terms ln(1+e^1.5) and ln(1+e^8.5), norms 1 and 18.
    users, pos = torch.tensor([0]), torch.tensor([1])
    loss = tiny_module(False).loss(users, pos, torch.tensor([[2, 0]]), reg=0.1)
    rank = (math.log1p(math.exp(1.5)) + math.log1p(math.exp(8.5))) / 2
    assert loss.item() == pytest.approx(rank + 0.05 * (5 + 0.25 + (1 + 18) / 2), rel=1e-6)


def test_gradient_is_the_learnbpr_update() -> None:
    # LearnBPR (Rendle et al. 2009, Fig. 4): ∂/∂w_u = −σ(−x_uij)(h_i − h_j) + λ w_u.
    m = tiny_module(False)
    m.loss(*one_triplet(), reg=0.1).backward()
    sig = 1 / (1 + math.exp(-1.5))  # σ(−x_uij) with x_uij = −1.5
    expected = -sig * torch.tensor([0.5, -1.0]) + 0.1 * torch.tensor([1.0, 2.0])
    torch.testing.assert_close(m.user.weight.grad[0], expected)


def test_score_is_dot_product_plus_bias() -> None:
    model = BPR(item_bias=True)
    model.n_users_, model.n_items_ = 1, 3
    model.module_ = tiny_module(True)
    torch.testing.assert_close(model.score(np.array([0])), torch.tensor([[9.0, 0.8, 1.8]]))


@pytest.mark.parametrize(
    "overrides",
    [{}, {"item_bias": True}, {"optimizer": "sgd", "lr": 10.0, "init_std": 0.1}, {"n_neg": 3}],
)
def test_learns_block_problem(overrides: dict) -> None:
    torch.set_num_threads(1)
    train, held, in_block = block_problem(seed=1)
    model = BPR(**{**FAST["bpr"], **overrides}).fit(train, FitOptions(device="cpu"))
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


@pytest.mark.parametrize(
    ("field", "value"), [("factors", 0), ("lr", -1.0), ("optimizer", "adagrad"), ("n_neg", 0)]
)
def test_bad_hyperparameter_is_named(field: str, value: object) -> None:
    train = block_problem()[0]
    with pytest.raises(ValueError, match=field):
        BPR(**{field: value}).fit(train)


@pytest.mark.parametrize("item_bias", [False, True])
def test_no_penalty_at_reg_0_gives_the_penalised_loss_and_gradients(item_bias: bool) -> None:
    """At reg = 0 the penalty is not built; the loss and every gradient are those of the full
    objective with its zero penalty added, bitwise."""
    gen = torch.Generator().manual_seed(0)
    users, pos = (
        torch.randint(0, 30, (64,), generator=gen),
        torch.randint(0, 40, (64,), generator=gen),
    )
    neg = torch.randint(0, 40, (64, 3), generator=gen)

    def grads(module: BPRModule, loss: torch.Tensor) -> list[torch.Tensor]:
        module.zero_grad(set_to_none=True)
        loss.backward()
        return [loss.detach()] + [p.grad.to_dense().clone() for p in module.parameters()]

    m = BPRModule(30, 40, 8, 0.1, item_bias, seed=1)
    got = grads(m, m.loss(users, pos, neg, 0.0))
    full = m.loss(users, pos, neg, 1.0) - m.loss(users, pos, neg, 0.0)  # the penalty / 2
    want = grads(m, m.loss(users, pos, neg, 0.0) + 0.0 * full)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
