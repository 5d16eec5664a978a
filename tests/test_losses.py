"""Loss functions against values computed by hand with ``math``, stability and shape errors."""

from __future__ import annotations

import math

import pytest
import torch

from ncflab.training import losses
from ncflab.training.losses import (
    PAIRWISE,
    bpr,
    bpr_max,
    hinge,
    hybrid,
    log_loss,
    mse,
    top1,
    top1_max,
    xe,
)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax(xs: list[float]) -> list[float]:
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


# Two rows, two negatives each: (pos, [neg_1, neg_2]).
ROWS = [(0.8, [0.3, 0.6]), (0.2, [0.5, 0.1])]
POS = torch.tensor([r[0] for r in ROWS], dtype=torch.float64)
NEG = torch.tensor([r[1] for r in ROWS], dtype=torch.float64)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_log_loss_probabilities_and_logits() -> None:
    p, y = [0.9, 0.2, 0.5], [1.0, 0.0, 0.25]
    want = mean([-(t * math.log(q) + (1 - t) * math.log(1 - q)) for q, t in zip(p, y, strict=True)])
    pt, yt = torch.tensor(p, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    assert log_loss(pt, yt).item() == pytest.approx(want, rel=1e-9)
    logit = torch.log(pt / (1 - pt))
    assert log_loss(logit, yt, logits=True).item() == pytest.approx(want, rel=1e-9)


def test_mse_weighted() -> None:
    pred, target, w = [1.0, 2.0, 0.5], [0.0, 2.5, 0.5], [2.0, 1.0, 3.0]
    want_plain = mean([(t - p) ** 2 for p, t in zip(pred, target, strict=True)])
    want_w = mean([c * (t - p) ** 2 for p, t, c in zip(pred, target, w, strict=True)])
    args = (torch.tensor(pred), torch.tensor(target))
    assert mse(*args).item() == pytest.approx(want_plain, rel=1e-6)
    assert mse(*args, torch.tensor(w)).item() == pytest.approx(want_w, rel=1e-6)


def test_bpr() -> None:
    want = mean([-math.log(sig(p - n)) for p, ns in ROWS for n in ns])
    assert bpr(POS, NEG).item() == pytest.approx(want, rel=1e-9)


def test_top1() -> None:
    want = mean([mean([sig(n - p) + sig(n * n) for n in ns]) for p, ns in ROWS])
    assert top1(POS, NEG).item() == pytest.approx(want, rel=1e-9)


def test_top1_max() -> None:
    per_row = [
        sum(s * (sig(n - p) + sig(n * n)) for s, n in zip(softmax(ns), ns, strict=True))
        for p, ns in ROWS
    ]
    assert top1_max(POS, NEG).item() == pytest.approx(mean(per_row), rel=1e-9)


@pytest.mark.parametrize("reg", [0.0, 0.5])
def test_bpr_max(reg: float) -> None:
    per_row = [
        -math.log(sum(s * sig(p - n) for s, n in zip(softmax(ns), ns, strict=True)))
        + reg * sum(s * n * n for s, n in zip(softmax(ns), ns, strict=True))
        for p, ns in ROWS
    ]
    assert bpr_max(POS, NEG, reg=reg).item() == pytest.approx(mean(per_row), rel=1e-9)


def test_xe_includes_target_in_normaliser() -> None:
    per_row = [-math.log(math.exp(p) / (math.exp(p) + sum(map(math.exp, ns)))) for p, ns in ROWS]
    assert xe(POS, NEG).item() == pytest.approx(mean(per_row), rel=1e-9)


def test_hinge() -> None:
    want = mean([max(0.0, n - p + 0.15) for p, ns in ROWS for n in ns])
    assert hinge(POS, NEG).item() == pytest.approx(want, rel=1e-9)
    assert hinge(POS, NEG, margin=0.0).item() == pytest.approx(
        mean([max(0.0, n - p) for p, ns in ROWS for n in ns]), rel=1e-9
    )


def test_n_neg_one_reduces_to_single_pair() -> None:
    pos, neg = torch.tensor([0.7]), torch.tensor([[0.4]])
    # One negative: its softmax weight is 1, so the -max losses equal their plain forms.
    assert bpr_max(pos, neg).item() == pytest.approx(-math.log(sig(0.3)), rel=1e-6)
    assert bpr_max(pos, neg).item() == pytest.approx(bpr(pos, neg).item(), rel=1e-6)
    assert top1_max(pos, neg).item() == pytest.approx(sig(-0.3) + sig(0.16), rel=1e-6)
    assert top1_max(pos, neg).item() == pytest.approx(top1(pos, neg).item(), rel=1e-6)
    assert xe(pos, neg).item() == pytest.approx(-math.log(sig(0.3)), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("pair", ["top1", "bpr-max"])
def test_hybrid(alpha: float, pair: str) -> None:
    target = [1.0, 0.5]  # Y_ui = y_ui / max(R_u), e.g. 2 / 4 for the second row.
    point = []
    for (p, ns), y in zip(ROWS, target, strict=True):
        point.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
        point.extend(-math.log(1 - n) for n in ns)
    pair_value = PAIRWISE[pair](POS, NEG).item()
    want = alpha * pair_value + (1 - alpha) * mean(point)
    tt = torch.tensor(target, dtype=torch.float64)
    got = hybrid(POS, NEG, tt, pair=pair, alpha=alpha)
    assert got.item() == pytest.approx(want, rel=1e-9)
    # Passing logits gives the same value: the pair part still sees the probabilities.
    lp, ln = torch.logit(POS), torch.logit(NEG)
    got_l = hybrid(lp, ln, tt, pair=pair, alpha=alpha, logits=True)
    assert got_l.item() == pytest.approx(want, rel=1e-9)


def test_gradients_finite_at_extreme_logits() -> None:
    logits = torch.tensor([50.0, -50.0, 50.0])
    negs = torch.tensor([[-50.0, 50.0], [50.0, -50.0], [50.0, 50.0]])
    for name, fn in PAIRWISE.items():
        pos, neg = logits.clone().requires_grad_(), negs.clone().requires_grad_()
        loss = fn(pos, neg)
        loss.backward()
        assert torch.isfinite(loss), name
        assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all(), name
    for use_logits in (False, True):
        pos, neg = logits.clone().requires_grad_(), negs.clone().requires_grad_()
        p, n = (pos, neg) if use_logits else (torch.sigmoid(pos), torch.sigmoid(neg))
        loss = hybrid(p, n, torch.ones(3), pair="bpr-max", logits=use_logits)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(pos.grad).all()
        assert torch.isfinite(neg.grad).all()
    # Probabilities saturated to exactly 0 and 1 by float32 still give a finite log loss.
    p = torch.sigmoid(torch.tensor([50.0, -50.0])).requires_grad_()
    loss = log_loss(p, torch.tensor([0.0, 1.0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()


def test_bpr_max_stable_where_naive_underflows() -> None:
    # σ(pos − neg) underflows to 0 in float32 at a gap of −200; the log-space form does not.
    pos, neg = torch.tensor([-100.0]), torch.tensor([[100.0, 90.0]])
    # s ≈ (1, e^-10), σ(x) ≈ e^x for x ≪ 0: Σ_j s_j σ(pos − neg_j) ≈ e^-200 + e^-10 e^-190.
    assert bpr_max(pos, neg).item() == pytest.approx(200.0 - math.log(2.0), rel=1e-5)


def test_softmax_weights_carry_gradient() -> None:
    # With s_j detached, ∂/∂neg of top1_max would differ; check against a finite difference.
    pos = torch.tensor([0.3], dtype=torch.float64)
    neg = torch.tensor([[0.1, 0.9]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda n: top1_max(pos, n), (neg,))
    assert torch.autograd.gradcheck(lambda n: bpr_max(pos, n, reg=0.3), (neg,))


@pytest.mark.parametrize("fn", list(PAIRWISE.values()), ids=list(PAIRWISE))
def test_shape_errors(fn) -> None:
    with pytest.raises(ValueError, match="neg must be 2-D"):
        fn(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="pos must be 1-D"):
        fn(torch.zeros(3, 1), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"same B.*\(3,\).*\(4, 2\)"):
        fn(torch.zeros(3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="n_neg >= 1"):
        fn(torch.zeros(3), torch.zeros(3, 0))


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="target must match"):
        log_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="target must match"):
        mse(torch.zeros(3), torch.zeros(3, 1))
    pos, neg, y = torch.full((2,), 0.5), torch.full((2, 3), 0.5), torch.ones(2)
    with pytest.raises(ValueError, match="'nope'"):
        hybrid(pos, neg, y, pair="nope")
    with pytest.raises(ValueError, match="alpha must be in"):
        hybrid(pos, neg, y, alpha=1.5)
    with pytest.raises(ValueError, match="pos_target"):
        hybrid(pos, neg, torch.ones(3))


def test_public_names() -> None:
    assert set(PAIRWISE) == {"top1", "top1-max", "bpr-max", "bpr", "xe", "hinge"}
    assert all(hasattr(losses, n) for n in losses.__all__)
