"""Catalogue-wide products into padded rows (``ncflab.models.products.mm``): the values and
gradients of torch's own product, rows really padded where they should be and only there,
and models that train and rank through it unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.synthetic import power_law_ratings
from ncflab.models import MODELS, FitOptions, products
from ncflab.models.products import mm


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    torch.set_num_threads(1)


def reference(a, b, bias, sigmoid: bool) -> torch.Tensor:
    out = torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
    return out.sigmoid_() if sigmoid else out


def inputs(m: int, k: int, n: int, layout: str, bias: str | None, seed: int = 0):
    """a (M, K); the weight w, (K, N) or (N, K) as ``linear.weight``, and b = the (K, N) view
    of it; a bias per column, per row, or none; all requiring gradients."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=gen)
    w = torch.randn(k, n, generator=gen) if layout == "kn" else torch.randn(n, k, generator=gen)
    c = {"col": (n,), "row": (m, 1), None: None}[bias]
    c = None if c is None else torch.randn(c, generator=gen)
    leaves = [t.requires_grad_() for t in (a, w, c) if t is not None]
    return a, w if layout == "kn" else w.T, c, leaves


@pytest.mark.parametrize(("m", "k", "n"), [(37, 600, 3706), (256, 64, 1001), (9, 16, 70)])
@pytest.mark.parametrize("layout", ["kn", "nk"])
@pytest.mark.parametrize("bias", ["col", "row", None])
def test_the_product_and_its_gradients_are_torchs(m, k, n, layout, bias) -> None:
    a, b, c, leaves = inputs(m, k, n, layout, bias)
    grad = torch.randn(m, n, generator=torch.Generator().manual_seed(1))
    want = reference(a, b, c, False)
    want.backward(grad)
    want_grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    got = mm(a, b, c)
    assert got.stride(0) == -(-n // 8) * 8  # the rows are padded: n is not a multiple of 8
    got.backward(grad)
    # Bitwise: each element is the same dot product, only written elsewhere.
    assert torch.equal(got, want)
    for t, g in zip(leaves, want_grads, strict=True):
        assert torch.equal(t.grad, g)
    with torch.no_grad():
        assert torch.equal(mm(a, b, c), want)


@pytest.mark.parametrize("bias", ["col", "row", None])
def test_sigmoid_and_its_gradients(bias) -> None:
    a, b, c, leaves = inputs(53, 160, 3706, "kn", bias)
    grad = torch.randn(53, 3706, generator=torch.Generator().manual_seed(1))
    want = reference(a, b, c, True)
    want.backward(grad)
    want_grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    got = mm(a, b, c, sigmoid=True)
    got.backward(grad)
    # σ takes the vector path everywhere here; the reference the scalar one for the array's
    # last few entries, which may differ in the last bit.
    assert int((got != want).sum()) < 32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    for t, g in zip(leaves, want_grads, strict=True):
        torch.testing.assert_close(t.grad, g, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(mm(a, b, c, sigmoid=True), want, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("n", "dtype"), [(3712, torch.float32), (40, torch.float32), (3706, torch.float64)]
)
def test_no_padding_where_it_does_not_apply(n, dtype) -> None:
    a = torch.randn(5, 8, dtype=dtype)
    b = torch.randn(8, n, dtype=dtype)
    out = mm(a, b)
    assert out.is_contiguous()
    assert torch.equal(out, a @ b)


def test_the_output_takes_in_place_writes() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 101)
    out = mm(a, b)
    out[:, 3] = -torch.inf  # what masking training items does
    assert torch.isinf(out[:, 3]).all() and torch.equal(out[:, 4:], (a @ b)[:, 4:])
    assert torch.equal(torch.topk(out, 5).values, torch.topk(out.contiguous(), 5).values)


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match=r"\(4, 8\) @ \(7, 101\)"):
        mm(torch.randn(4, 8), torch.randn(7, 101))


@pytest.mark.parametrize("name", ["multvae", "uautorec", "cdae", "bpr"])
def test_models_train_and_rank_the_same_without_the_padding(name, monkeypatch) -> None:
    """A fit with the padded rows ends with the same parameters, bitwise, as the same fit with
    plain products (the padding switched off by a minimum width past every width), and its
    scores are the same (σ outputs: but for the last bit of the array's last few)."""
    data = Interactions.from_frame(power_law_ratings(150, 203, 3000, seed=3))
    users = np.arange(data.n_users)

    padded = []
    into = products._into_padded
    monkeypatch.setattr(products, "_into_padded", lambda *a: padded.append(1) or into(*a))

    def run():
        model = MODELS[name](epochs=2, seed=0).fit(data, FitOptions())
        return model.module_.state_dict(), model.score(users)

    params, scores = run()
    assert padded  # the padded rows were used
    monkeypatch.setattr(products, "MIN_WIDTH", 1 << 62)
    padded.clear()
    plain_params, plain_scores = run()
    assert not padded
    for key, value in params.items():
        assert torch.equal(value, plain_params[key]), key
    if name in ("bpr", "multvae"):
        assert torch.equal(scores, plain_scores)
    else:  # σ outputs: the last few entries of the array may differ in the last bit
        assert int((scores != plain_scores).sum()) < 32
        torch.testing.assert_close(scores, plain_scores, rtol=1e-6, atol=0)
