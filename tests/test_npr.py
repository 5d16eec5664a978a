"""NPR: the BPR loss of the shared GMF branch and its scores against hand-computed values, and
learning the synthetic block problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_contract import FAST, beats_outside, block_problem

from ncflab.models import FitOptions
from ncflab.models.npr import NPR, NPRNet


def tiny() -> NPRNet:
    """1 user, 3 items, f = 2: p = (1, 2), h = (1, 0.5), q_1 = (0.5, 0), q_2 = (0, 1)."""
    m = NPRNet(1, 3, 2, 0.01, seed=0)
    with torch.no_grad():
        m.user.weight.copy_(torch.tensor([[1.0, 2.0]]))
        m.item.weight.copy_(torch.tensor([[3.0, 3.0], [0.5, 0.0], [0.0, 1.0]]))
        m.h.copy_(torch.tensor([1.0, 0.5]))
    return m


def test_loss_matches_hand_computation() -> None:
    # x_u1 = 1·1·0.5 = 0.5, x_u2 = 2·0.5·1 = 1 → −ln σ(−0.5) = ln(1 + e^0.5);
    # reg/2 · (‖p‖² + ‖q_1‖² + ‖q_2‖² + ‖h‖²) = 0.05 · (5 + 0.25 + 1 + 1.25).
    loss = tiny().loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([[2]]), reg=0.1)
    assert loss.item() == pytest.approx(math.log1p(math.exp(0.5)) + 0.05 * 7.5, rel=1e-6)


def test_both_branches_share_the_weights() -> None:
    # Swapping i and j flips the sign of x̂_ui − x̂_uj: one preference function, two items.
    m, u = tiny(), torch.tensor([0])
    forward = m.loss(u, torch.tensor([1]), torch.tensor([[2]]), reg=0.0)
    backward = m.loss(u, torch.tensor([2]), torch.tensor([[1]]), reg=0.0)
    assert forward.item() == pytest.approx(math.log1p(math.exp(0.5)))
    assert backward.item() == pytest.approx(math.log1p(math.exp(-0.5)))


def test_scores_are_the_gmf_preferences() -> None:
    model = NPR()
    model.n_users_, model.n_items_ = 1, 3
    model.module_ = tiny()
    torch.testing.assert_close(model.score(np.array([0])), torch.tensor([[6.0, 0.5, 1.0]]))
    picked = model.score_items(np.array([0]), np.array([[2, 0]]))
    torch.testing.assert_close(picked, torch.tensor([[1.0, 6.0]]))


@pytest.mark.parametrize("overrides", [{}, {"n_neg": 3}, {"reg": 0.0}])
def test_learns_block_problem(overrides: dict) -> None:
    torch.set_num_threads(1)
    train, held, in_block = block_problem(seed=1)
    model = NPR(**{**FAST["npr"], **overrides}).fit(train, FitOptions(device="cpu"))
    assert beats_outside(model.score(np.arange(train.n_users)).numpy(), held, in_block) >= 0.9


@pytest.mark.parametrize(
    "params, match", [({"factors": 0}, "factors"), ({"reg": -1.0}, "reg"), ({"lr": 0.0}, "lr")]
)
def test_bad_params_are_errors(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NPR(**params).fit(block_problem()[0])
