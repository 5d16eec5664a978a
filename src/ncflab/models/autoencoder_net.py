"""The autoencoder over sparse 0/1 rows that AutoRec and JCA are built from.

Sedhain, Menon, Sanner, Xie, "AutoRec: Autoencoders Meet Collaborative Filtering", WWW 2015, in
the form of Zhu, Wang, Caverlee, "Improving Top-K Recommendation via Joint Collaborative
Autoencoders", WWW 2019 (§3.2, Eq. 2). One :class:`Autoencoder` is σ(σ((X V + b₁) ∘ f) W + b₂)
over rating rows X: U-AutoRec (X = rating rows R_u, no f), I-AutoRec (X = rating columns
(Rᵀ)_i, no f), or one of JCA's two components (the item one with the learnable item
normalisation factor f). :class:`UserItemAutoencoders` holds a user-side and an item-side one:
JCA's network (``jca_net.JCAModule`` adds its block training) and UI-AutoRec's.

Speed: X is a sparse 0/1 matrix, so the first layer X V + b₁ is an embedding bag
(``sparse_input.SparseLinear``: cost O(nnz of the rows), weight gradient by a transposed bag);
a dense (1,500 × 6,027) item block costs 10x more on ML-1M. Decoders are dense, and during
training only the columns a batch needs are decoded (the others get no gradient from the loss).
Equation numbers are JCA's.
"""

from __future__ import annotations

import torch
from torch import nn

from ncflab.models.products import mm
from ncflab.models.sparse_input import SparseLinear
from ncflab.training.layers import seeded_generator

__all__ = ["INIT_STD", "Autoencoder", "UserItemAutoencoders", "decode_pairs", "decode_rows"]

# Weights start ~ truncated N(0, 0.03²) (cut at 2σ, TensorFlow's truncated_normal), f ~ U(0, 1):
# JCA's authors' code (Zziwei/Joint-Collaborative-Autoencoder, JCA.py), for JCA and its
# autoencoder baselines alike; the papers give no initialisation.
INIT_STD = 0.03


class Autoencoder(nn.Module):
    """An autoencoder over rows of a 0/1 matrix X (n_rows, n_in), one component of JCA Eq. 2:
    ``σ(σ((X V + b₁) ∘ f) W + b₂)``, output (n_rows, n_in); without f it is AutoRec's network.

    ``encoder`` holds V (n_in, H) and b₁ (H,); ``weight`` W (H, n_in) and ``bias`` b₂ (n_in,);
    ``factor`` is f (n_rows,) when ``normalise`` (JCA's item component), else None. f multiplies
    the hidden pre-activation, bias included, row by row (Eq. 2: "◦ multiplies each entry of f to
    each corresponding row of (Rᵀ V^I + b₁^I)"), inside the sigmoid, as the authors' code does.
    """

    def __init__(
        self, n_in: int, hidden: int, n_rows: int, normalise: bool, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.encoder = SparseLinear(n_in, hidden)
        self.weight = nn.Parameter(torch.empty(hidden, n_in))
        self.bias = nn.Parameter(torch.empty(n_in))
        self.factor = nn.Parameter(torch.empty(n_rows)) if normalise else None
        with torch.no_grad():
            for p in (self.encoder.weight, self.encoder.bias, self.weight, self.bias):
                nn.init.trunc_normal_(p, 0.0, INIT_STD, -2 * INIT_STD, 2 * INIT_STD, generator)
            if self.factor is not None:
                self.factor.uniform_(0.0, 1.0, generator=generator)

    def hidden(self, bag: tuple, rows: torch.Tensor) -> torch.Tensor:
        """(R, H) hidden layer σ((X V + b₁) ∘ f) of the rows ``rows`` (R,), whose inputs are
        the embedding-bag ``bag`` (``RatingGraph.user_bag``/``item_bag`` of the same rows)."""
        pre = self.encoder(*bag)
        if self.factor is not None:
            pre = pre * self.factor[rows, None]
        return torch.sigmoid(pre)

    def decode(self, hidden: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
        """(R, C) outputs σ(h W + b₂) for the columns ``cols`` (C,), or all n_in columns."""
        # σ in place on the product (``products.mm``): one (R, C) array fewer to allocate and
        # fill when scoring every item.
        if cols is None:
            return mm(hidden, self.weight, self.bias, sigmoid=True)
        w, b = self.weight.index_select(1, cols), self.bias.index_select(0, cols)
        return mm(hidden, w, b, sigmoid=True)

    def squared_norm(self) -> torch.Tensor:
        """‖V‖² + ‖b₁‖² + ‖W‖² + ‖b₂‖²: this component's part of ‖Θ‖²_F in Eq. 3. f is left
        out, as in the authors' code (a penalty would pull f, a scale, towards 0)."""
        params = (self.encoder.weight, self.encoder.bias, self.weight, self.bias)
        return sum(p.square().sum() for p in params)


class UserItemAutoencoders(nn.Module):
    """A user-side and an item-side :class:`Autoencoder` (JCA Eq. 2): ``user`` over rating rows
    (n_items → n_items, no f) and ``item`` over rating columns (n_users → n_users, with f when
    ``normalise``). Both are drawn from one generator seeded with ``seed``, so the two start
    independent. JCA's network is this with ``normalise`` (``jca_net.JCAModule``); UI-AutoRec's
    is this without, its two parts trained separately."""

    def __init__(self, n_users: int, n_items: int, hidden: int, normalise: bool, seed: int):
        super().__init__()
        gen = seeded_generator(seed)  # one stream: the two components start independent
        self.user = Autoencoder(n_items, hidden, n_users, False, gen)
        self.item = Autoencoder(n_users, hidden, n_items, normalise, gen)


def decode_rows(ae: Autoencoder, hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(B, R) outputs of ``ae`` for its output columns ``rows`` (B,) from ``hidden`` (R, H),
    transposed: the item component's (or I-AutoRec's) completed item columns read as user
    rows, σ(W[:, rows]ᵀ hᵀ + b₂[rows])."""
    bias = ae.bias.index_select(0, rows)[:, None]
    return mm(ae.weight.index_select(1, rows).T, hidden.T, bias, sigmoid=True)  # see decode


def decode_candidates(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, cand: torch.Tensor
) -> torch.Tensor:
    """(B, C) pre-activations h_b · W[:, cand[b, c]] + bias[cand[b, c]] of an output layer at
    each row's candidate columns only: ``hidden`` (B, H), ``weight`` (H, N) (any strided view,
    e.g. ``linear.weight.T``), ``bias`` (N,), ``cand`` (B, C). The values of the full layer at
    the candidates to float rounding, for B × C × H work instead of B × N × H."""
    b, c = cand.shape
    w = weight.index_select(1, cand.reshape(-1)).reshape(-1, b, c)  # (H, B, C)
    dots = torch.bmm(hidden[:, None, :], w.permute(1, 0, 2))[:, 0]
    return dots + bias[cand]


def decode_pairs(
    ae: Autoencoder, hidden: torch.Tensor, at: torch.Tensor, cols: torch.Tensor, pick: torch.Tensor
) -> torch.Tensor:
    """(P,) outputs of ``ae`` at P (row, column) pairs only: σ(h_a · W[:, cols[k]] + b₂[cols[k]])
    for a = ``at``[p] (rows of ``hidden`` (R, H)) and k = ``pick``[p] (positions in ``cols``
    (C,)). The same values as ``ae.decode(hidden, cols)[at, pick]`` to float rounding, for
    P × H work instead of R × C × H: the block's columns of W are gathered once, then each
    pair is one dot product."""
    w = ae.weight.index_select(1, cols).T.contiguous()  # (C, H)
    b = ae.bias.index_select(0, cols)
    dots = (hidden.index_select(0, at) * w.index_select(0, pick)).sum(1)
    return torch.sigmoid(dots + b.index_select(0, pick))
