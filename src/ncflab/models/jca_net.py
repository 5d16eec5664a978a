"""JCA's network and block sampling, shared with the AutoRec baselines.

Zhu, Wang, Caverlee, "Improving Top-K Recommendation via Joint Collaborative Autoencoders",
WWW 2019. One :class:`Autoencoder` is one component of Eq. 2, σ(σ((X V + b₁) ∘ f) W + b₂): the
user component (X = rating rows R_u, no f), the item component (X = rating columns (Rᵀ)_i, with
the learnable item normalisation factor f), or, alone, U-AutoRec / I-AutoRec (Sedhain et al.
2015, as JCA §3.2 writes them). The estimators are ``ncflab.models.jca.JCA`` and
``ncflab.models.autorec``.

Speed: X is a sparse 0/1 matrix, so the first layer X V + b₁ is J-NCF's embedding-bag
``SparseLinear`` (cost O(nnz of the rows), weight gradient by a transposed bag); a dense
(1,500 × 6,027) item block costs 10x more on ML-1M. Decoders are dense, and during training only
the columns a block needs are decoded (the others get no gradient from the loss anyway).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ncflab.data.sampling import NegativeSampler
from ncflab.models.jncf_net import RatingGraph, SparseLinear
from ncflab.training import losses
from ncflab.training.layers import seeded_generator

__all__ = [
    "LOSSES",
    "Autoencoder",
    "JCAModule",
    "RatingGraph",
    "binary_csr",
    "block_pairs",
    "decode_rows",
    "epoch_blocks",
    "graph_of",
    "pair_loss",
]

LOSSES = ("hinge", "mse", "bpr")
# JCA's weights start ~ truncated N(0, 0.03²) (cut at 2σ, TensorFlow's truncated_normal), f
# ~ U(0, 1): the authors' code (Zziwei/Joint-Collaborative-Autoencoder, JCA.py); the paper
# gives no initialisation.
INIT_STD = 0.03


class Autoencoder(nn.Module):
    """One component of JCA Eq. 2 over rows of a 0/1 matrix X (n_rows, n_in):
    ``σ(σ((X V + b₁) ∘ f) W + b₂)``, output (n_rows, n_in).

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
        if cols is None:
            return torch.sigmoid(torch.addmm(self.bias, hidden, self.weight))
        w, b = self.weight.index_select(1, cols), self.bias.index_select(0, cols)
        return torch.sigmoid(torch.addmm(b, hidden, w))

    def squared_norm(self) -> torch.Tensor:
        """‖V‖² + ‖b₁‖² + ‖W‖² + ‖b₂‖²: this component's part of ‖Θ‖²_F in Eq. 3. f is left
        out, as in the authors' code (a penalty would pull f, a scale, towards 0)."""
        params = (self.encoder.weight, self.encoder.bias, self.weight, self.bias)
        return sum(p.square().sum() for p in params)


class JCAModule(nn.Module):
    """JCA's two components (Eq. 2): ``user`` over rating rows (n_items → n_items, no f) and
    ``item`` over rating columns (n_users → n_users, with f unless ``normalise`` is False:
    JCA-NF). UI-AutoRec reuses it with two separately trained, unnormalised components."""

    def __init__(self, n_users: int, n_items: int, hidden: int, normalise: bool, seed: int):
        super().__init__()
        gen = seeded_generator(seed)  # one stream: the two components start independent
        self.user = Autoencoder(n_items, hidden, n_users, False, gen)
        self.item = Autoencoder(n_users, hidden, n_items, normalise, gen)

    def block(self, graph: RatingGraph, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Ĉ (n, m) of §4.3 for users p (n,) and items q (m,), both sorted:
        ½ (B̂^U[:, q] + B̂^I[p, :]), the user component fed the n rows R[p, :], the item
        component the m columns R[:, q]; only the n × m common entries are decoded."""
        out_u = self.user.decode(self.user.hidden(graph.user_bag(p), p), q)  # (n, m)
        out_i = self.item.decode(self.item.hidden(graph.item_bag(q), q), p)  # (m, n)
        return 0.5 * (out_u + out_i.T)

    def squared_norm(self) -> torch.Tensor:
        """‖Θ‖²_F of Eq. 3 over both components (f excluded, see ``Autoencoder``)."""
        return self.user.squared_norm() + self.item.squared_norm()


def pair_loss(kind: str, pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """Summed data term over pairs of a positive r̂_ui (P,) and its sampled negative r̂_uj (P,).

    "hinge": Σ max(0, r̂_uj − r̂_ui + d), Eq. 3 (JCA); "bpr": Σ −ln σ(r̂_ui − r̂_uj) (JCA-BPR,
    §5.4); "mse": Σ (1 − r̂_ui)² + Σ r̂_uj² (JCA-MSE and AutoRec: squared error on the positives
    and the sampled negatives, §5.2 "negative sampling rate 1 for all models"). Sums, not means,
    as Eq. 3 writes it: the paper's λ values are relative to a sum over the minibatch.
    """
    n = pos.numel()
    if kind == "hinge":
        return losses.hinge(pos, neg[:, None], margin) * n
    if kind == "bpr":
        return losses.bpr(pos, neg[:, None]) * n
    if kind == "mse":
        both = torch.cat([pos, neg])
        target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        return losses.mse(both, target) * both.numel()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def epoch_blocks(
    n_users: int, n_items: int, block_users: int, block_items: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of §4.3's mini-batches: users and items are permuted, cut into consecutive
    chunks of ``block_users`` and ``block_items`` (the last ones shorter), and every (user chunk,
    item chunk) pair is one block, user chunks outer (as in the authors' code). Each block's
    users p and items q are returned sorted (the order inside a block does not change the loss,
    and the sparse layer's gradient needs sorted rows). Together the blocks tile R exactly once.
    """
    users, items = rng.permutation(n_users), rng.permutation(n_items)
    u_chunks = [np.sort(users[s : s + block_users]) for s in range(0, n_users, block_users)]
    i_chunks = [np.sort(items[s : s + block_items]) for s in range(0, n_items, block_items)]
    return [(p, q) for p in u_chunks for q in i_chunks]


def block_pairs(
    csr: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positives of the block C = R[rows][:, cols] and one uniform negative for each.

    csr: (n_rows, n_cols) 0/1 training matrix with sorted indices; rows (n,), cols (m,): sorted
    distinct indices. Each positive (u, i) of C gets an item j drawn uniformly from the columns
    of C where user u has no positive (§4.3: "C O_u^−, the negative samples of user u in C"),
    independently per positive, as the authors' ``pairwise_neg_sampling`` does. A user whose row
    of C is all positives has no negative, so their positives are left out of this block.

    Returns:
        r, c, neg: (P,) int64 positions inside C — row, positive column, negative column.
    """
    n, m = len(rows), len(cols)
    col_pos = np.full(csr.shape[1], -1, np.int64)
    col_pos[cols] = np.arange(m)
    starts = csr.indptr[rows].astype(np.int64)
    lens = csr.indptr[rows + 1] - starts
    offsets = np.cumsum(lens) - lens
    flat = np.repeat(starts - offsets, lens) + np.arange(int(lens.sum()))
    r = np.repeat(np.arange(n, dtype=np.int64), lens)
    c = col_pos[csr.indices[flat]]
    keep = c >= 0
    r, c = r[keep], c[keep]  # sorted by (r, c): rows in order, cols sorted with the indices
    full = np.bincount(r, minlength=n) >= m
    if full.any():
        r, c = r[~full[r]], c[~full[r]]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))])
    sub = sp.csr_matrix((np.ones(len(c), np.float32), c, indptr), shape=(n, m))
    neg = NegativeSampler.from_csr(sub).draw(r, 1, rng)[:, 0]
    return r, c, neg


def binary_csr(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """The (n_rows, n_cols) 0/1 float32 CSR with sorted indices (JCA's implicit R, §3.1)."""
    data = np.ones(len(indices), np.float32)
    csr = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_cols))
    csr.sort_indices()
    return csr


def graph_of(csr: sp.csr_matrix, device: torch.device) -> RatingGraph:
    """R and Rᵀ on ``device`` as embedding-bag inputs (rows for the user side, columns for the
    item side)."""
    return RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, csr.shape[1], device)


def decode_rows(ae: Autoencoder, hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(B, R) outputs of ``ae`` for its output columns ``rows`` (B,) from ``hidden`` (R, H),
    transposed: the item component's (or I-AutoRec's) completed item columns read as user
    rows, σ(W[:, rows]ᵀ hᵀ + b₂[rows])."""
    bias = ae.bias.index_select(0, rows)[:, None]
    return torch.sigmoid(torch.addmm(bias, ae.weight.index_select(1, rows).T, hidden.T))
