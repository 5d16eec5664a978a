"""Dense products a catalogue wide, written into rows padded to a multiple of 8 floats.

Decoders and rankers end in a product whose output rows are a catalogue wide: Mult-VAE's and
the autoencoders' last layers (n_items or n_users outputs), and every factor model's full
ranking (user factors × item factorsᵀ). On the CPU, MKL's single-precision GEMM (PyTorch's
BLAS there) writes an (M, N) product 1.3–1.5× slower when N is not a multiple of 8 — ML-1M's
3,706 items, the Yelp split's 9,242, its 12,991 users — than the same product written into
the first N columns of rows N rounded up to a multiple of 8 long (the output's leading
dimension, 32-byte rows). The values are the same: each output element is the same dot
product; only where the BLAS stores it changes. (2,048 × 600 @ 600 × 3,706: 62 → 86 GFLOP/s;
6,040 × 64 @ 64 × 3,706, BPR's full ranking: 28 → 42; bitwise equal;
benchmarks/bench_products.py, which also measures the models' epochs and rankings.)

``mm`` returns that view: the shape and values of ``bias + a @ b``, a row stride rounded up.
Under autograd the product's backward is the usual one, its weight gradient padded the same way.
"""

from __future__ import annotations

import torch

__all__ = ["mm"]

# Rows a multiple of this many elements long (32 bytes of float32) take MKL's fast path.
ALIGN = 8
# Narrower outputs are left to the BLAS as they are: the padding is not worth a buffer there.
MIN_WIDTH = 64


def mm(
    a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None, *, sigmoid: bool = False
) -> torch.Tensor:
    """``bias + a @ b`` (``a`` (M, K), ``b`` (K, N), ``bias`` broadcastable to (M, N), or
    None), σ of it when ``sigmoid``, as an (M, N) tensor whose rows may be padded (see the
    module's docstring).

    ``b`` may be any strided (K, N) view, e.g. ``linear.weight.T``. The padding is used for
    float32 CPU tensors whose N is at least MIN_WIDTH and not a multiple of ALIGN; otherwise
    this is ``torch.addmm``/``torch.mm`` (and ``sigmoid``) as they are.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"mm needs (M, K) @ (K, N), got {tuple(a.shape)} @ {tuple(b.shape)}")
    if not _pads(a, b):
        out = torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
        # σ in place even under autograd: addmm's backward does not read its output.
        return out.sigmoid_() if sigmoid else out
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (a, b, bias)):
        return _Product.apply(a, b, bias, sigmoid)
    out = _into_padded(a, b, bias)
    return _sigmoid_(out) if sigmoid else out


def _pads(a: torch.Tensor, b: torch.Tensor) -> bool:
    n = b.shape[1]
    return (
        a.device.type == "cpu" and b.device.type == "cpu"
        and a.dtype == torch.float32 and b.dtype == torch.float32
        and n >= MIN_WIDTH and n % ALIGN != 0 and a.shape[0] > 0
    )  # fmt: skip


def _into_padded(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The product written into the first N columns of rows padded to a multiple of ALIGN."""
    m, n = a.shape[0], b.shape[1]
    width = -(-n // ALIGN) * ALIGN
    out = torch.empty(m, width, dtype=a.dtype, device=a.device)[:, :n]
    if bias is None:
        torch.mm(a, b, out=out)
    else:
        torch.addmm(bias, a, b, out=out)
    return out


def _sigmoid_(out: torch.Tensor) -> torch.Tensor:
    """σ in place on a padded product, applied to its whole buffer as one flat array (the
    padding zeroed first): σ of a row-by-row view takes the scalar path for each row's last
    N mod 16 entries, where a contiguous product takes the vector path for all but the
    array's last few; σ over the flat buffer gives the vector path's values everywhere."""
    m, n = out.shape
    base = torch.as_strided(out, (m, out.stride(0)), (out.stride(0), 1))
    base[:, n:] = 0.0
    base.sigmoid_()
    return out


class _Product(torch.autograd.Function):
    """``mm`` under autograd: the forward into padded rows, the backward as addmm's (and σ's)
    own: ∂a = g bᵀ, ∂b = aᵀ g (padded too when b's rows are the wide ones), ∂bias = g summed
    to bias's shape."""

    @staticmethod
    def forward(ctx, a, b, bias, sigmoid):  # noqa: ANN001, ANN205
        out = _into_padded(a, b, bias)
        if sigmoid:
            _sigmoid_(out)
        ctx.sigmoid, ctx.bias_shape = sigmoid, None if bias is None else bias.shape
        ctx.save_for_backward(a, b, out if sigmoid else None)
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        a, b, out = ctx.saved_tensors
        if ctx.sigmoid:
            grad = torch.ops.aten.sigmoid_backward(grad, out)
        grad_a = grad_b = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_a = grad @ b.T
        if ctx.needs_input_grad[1]:
            if b.stride(0) == 1 and b.stride(1) != 1:
                # b is a transposed (N, K) weight (``linear.weight.T``): its gradient in that
                # layout is gᵀ a, K wide, and the transposed view of it matches b.
                grad_b = (grad.T @ a).T
            else:
                grad_b = _into_padded(a.T, grad, None)
        if ctx.bias_shape is not None and ctx.needs_input_grad[2]:
            grad_bias = grad.sum_to_size(ctx.bias_shape)  # what addmm's backward sums
        return grad_a, grad_b, grad_bias, None
