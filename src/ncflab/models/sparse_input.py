"""Sparse rating rows as network input: the training matrix as embedding bags, and the linear
layer over them.

Several models feed whole rows or columns of the training matrix R to a network: J-NCF's DF
networks (Chen et al., TOIS 2019, Eq. 3–4), DMF's towers (Xue et al., IJCAI 2017, Eq. 5–7), and
the autoencoders (AutoRec, JCA, CDAE, Mult-VAE/DAE), whose encoders read a user's row or an
item's column. R is sparse, so the first layer x W + b is an embedding bag over x's nonzeros,
weighted by their values: a minibatch costs O(nnz of its rows), never a dense (B, n_items) input.

- ``RatingGraph``: R and Rᵀ on a device as CSR, with any rows' (or columns') bag inputs gathered
  without a Python loop.
- ``SparseLinear``: the first layer over those bags, with a weight gradient computed as a
  transposed embedding bag (``_BagProduct``), 4x faster than PyTorch's own backward on ML-1M.
- ``RatingGraph.user_layer``/``item_layer``: that layer for a minibatch's rows, from the rows'
  bags or, when they hold most of R's nonzeros, from every row with no gather at all.

Timings of these paths against the alternatives (PyTorch's backward, CSR ``torch.sparse.mm``,
dense rows, SciPy): benchmarks/bench_jncf_layer.py; figures cited below are its medians on
ML-1M with J-NCF's batches, one thread (Xeon, 2 MiB L2 per core).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bag", "RatingGraph", "SparseLinear"]

# An embedding bag reads one table row per nonzero, in no useful order. A CPU table larger than
# the per-core L2 cache is read CHUNK columns at a time instead (a strided view each), if such a
# slice fits: each output element is the same sum in the same order, so the result is bitwise
# equal. J-NCF's item side (weight 6040 x 256 floats, 6 MiB), forward + backward: 138 -> 108 ms
# at batch 4096, 52 -> 45 ms at 256 (the forward alone: 2x). A table whose slices do not fit
# either (138k rows, random nonzeros) was 3x slower chunked, so it is read whole.
CACHE_BYTES = 2 << 20
CHUNK = 64
# Selected rows holding at least this share of all nonzeros are computed from every row instead
# (``RatingGraph.user_layer``): no gather, and the transposed gradient is the stored transpose.
# Every row cost the same at any share (72 ms item side, 67 ms user side); the selected rows
# cost ~10 ms + 95 ms x share, so the two meet at a share of about 0.6 on both sides.
ALL_ROWS = 0.6
# A bag holding under this share of all nonzeros is transposed by sorting its own nonzeros, not
# by a mask over all of them (``_bag``). J-NCF's user side at batch 256 (9 % of the nonzeros):
# 23 -> 13 ms; at 35 % (item side, batch 256) the two cost the same.
SORT_BELOW = 0.25


class SparseLinear(nn.Module):
    """A linear layer W v + b on a sparse rating vector v (J-NCF's first DF layer W¹v + b¹,
    Eq. 4; DMF's first layer; an autoencoder's encoder): an embedding bag that sums the columns
    of W at v's nonzeros, weighted by their values. ``weight`` (n_in, d) holds W transposed, so
    ``weight[j]`` is the column that entry j multiplies."""

    def __init__(self, n_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, d_out))
        self.bias = nn.Parameter(torch.empty(d_out))

    def forward(
        self, index: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor,
        transpose: Callable[[], tuple[torch.Tensor, ...]] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(R, d) pre-activations of R bags: ``index``/``values`` (nnz,), ``offsets`` (R,).
        ``transpose`` gives the same nonzeros as bags per weight row (see ``_BagProduct``)."""
        return self.product(index, offsets, values, transpose) + self.bias

    def product(
        self, index: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor,
        transpose: Callable[[], tuple[torch.Tensor, ...]] | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """``forward`` without the bias: W v of each bag."""
        weight_grad = torch.is_grad_enabled() and self.weight.requires_grad
        if weight_grad and transpose is not None:
            return _BagProduct.apply(self.weight, index, offsets, values, transpose)
        if weight_grad:  # PyTorch's own backward: no transposed bags to use
            w = values
            return F.embedding_bag(index, self.weight, offsets, mode="sum", per_sample_weights=w)
        return _bag_sum(index, self.weight, offsets, values)


class _BagProduct(torch.autograd.Function):
    """V W for a sparse V (R, n_in) given as bags, with the weight gradient Vᵀ G computed as an
    embedding bag too: ``transpose()`` returns Vᵀ's rows as bags over the R output rows. PyTorch's
    own embedding_bag backward scatters one row per nonzero and was 4x slower than this on
    ML-1M (benchmarks/bench_jncf.py); the gradient is the same sum."""

    @staticmethod
    def forward(ctx, weight, index, offsets, values, transpose):  # noqa: ANN001, ANN205
        ctx.transpose = transpose
        return _bag_sum(index, weight, offsets, values)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        t_index, t_offsets, t_values = ctx.transpose()
        return _bag_sum(t_index, grad.contiguous(), t_offsets, t_values), None, None, None, None


def _bag_sum(
    index: torch.Tensor, table: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Σ values · table[index] over each bag (``F.embedding_bag``, mode "sum"), read CHUNK
    columns at a time where that fits the cache and the whole table does not (see CACHE_BYTES)."""
    n, d = table.shape
    row = table.element_size()
    if table.device.type != "cpu" or n * d * row <= CACHE_BYTES or n * CHUNK * row > CACHE_BYTES:
        return F.embedding_bag(index, table, offsets, mode="sum", per_sample_weights=values)
    return torch.cat(
        [
            F.embedding_bag(index, table[:, k : k + CHUNK], offsets, mode="sum",
                            per_sample_weights=values)
            for k in range(0, d, CHUNK)
        ],
        dim=1,
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class RatingGraph:
    """The training rating matrix R on a device, as CSR of R (rows: a user's ratings v_u) and
    of Rᵀ (rows: an item's ratings v_i), with per-row lookups in embedding-bag form."""

    device: torch.device
    user: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # indptr, indices, data of R
    item: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # same for Rᵀ

    @classmethod
    def from_csr(cls, indptr, indices, data, n_items: int, device: torch.device) -> RatingGraph:
        csr = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_items))
        return cls(device, cls._tensors(csr, device), cls._tensors(csr.T.tocsr(), device))

    @staticmethod
    def _tensors(csr: sp.csr_matrix, device: torch.device):
        csr.sort_indices()
        arrays = (csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data)
        return tuple(torch.from_numpy(np.asarray(a)).to(device) for a in arrays)

    @classmethod
    def bag_from_csr(cls, csr: sp.csr_matrix, device: torch.device):
        """Embedding-bag inputs (index, offsets, values) of every row of ``csr``."""
        indptr, indices, data = cls._tensors(csr, device)
        return indices, indptr[:-1], data  # every row in order: no gather needed

    def user_bag(self, users: torch.Tensor) -> Bag:
        """Bag inputs of v_u for ``users`` (U,): their rows of R."""
        return _bag(self.user, self.item, users)

    def item_bag(self, items: torch.Tensor) -> Bag:
        """Bag inputs of v_i for ``items`` (I,): their columns of R."""
        return _bag(self.item, self.user, items)

    def user_layer(self, layer: SparseLinear, users: torch.Tensor) -> torch.Tensor:
        """``layer`` on v_u for ``users`` (U,), unique and sorted: (U, d)."""
        return _layer_rows(layer, self.user, self.item, users)

    def item_layer(self, layer: SparseLinear, items: torch.Tensor) -> torch.Tensor:
        """``layer`` on v_i for ``items`` (I,), unique and sorted: (I, d)."""
        return _layer_rows(layer, self.item, self.user, items)


class Bag(NamedTuple):
    """Rows of a CSR matrix as embedding-bag inputs, and how to get the transposed selection
    (the same nonzeros grouped by column) for the weight gradient, built only in backward."""

    index: torch.Tensor
    offsets: torch.Tensor
    values: torch.Tensor
    transpose: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _layer_rows(layer: SparseLinear, csr, csc, rows: torch.Tensor) -> torch.Tensor:
    """``layer`` on ``rows`` of the matrix held as ``csr`` and ``csc`` (see ``_bag``): from their
    bag, or from every row when they hold ALL_ROWS of its nonzeros. Every row costs the rest of
    the nonzeros but no gather, and its transpose is ``csc`` as stored (no mask); an unselected
    row's gradient is zero, which adds exact zeros to the weight gradient, and the bias is added
    after the selection, so both ways give the same floats. J-NCF's item side at batch 4096
    (99.8 % of the nonzeros): 110 -> 70 ms."""
    indptr, indices, data = csr
    if int((indptr[rows + 1] - indptr[rows]).sum()) < ALL_ROWS * len(indices):
        return layer(*_bag(csr, csc, rows))
    every = Bag(indices, indptr[:-1], data, lambda: (csc[1], csc[0][:-1], csc[2]))
    return layer.product(*every).index_select(0, rows) + layer.bias


def _bag(csr, csc, rows: torch.Tensor) -> Bag:
    """Bag of ``rows`` of a matrix held as ``csr`` (indptr, indices, data) and as ``csc`` (the
    CSR of its transpose), gathered without a Python loop. The gradient path (``transpose``)
    needs ``rows`` strictly increasing, as ``torch.unique`` returns them."""
    indptr, indices, data = csr
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    offsets = torch.cumsum(lens, 0) - lens
    flat = torch.repeat_interleave(starts - offsets, lens)
    flat = flat + torch.arange(len(flat), device=flat.device)
    # index_select, not [], for these long 1-D gathers: 5x faster on CPU (aten::index is not
    # vectorised for this case), and this was the largest cost of an ML-1M step.
    index, values = indices.index_select(0, flat), data.index_select(0, flat)

    def transpose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # For every column j, the positions (in ``rows``) of the selected rows it meets, in
        # increasing order (so the gradient's sums run in one fixed order either way).
        t_indptr, t_indices, t_data = csc
        if len(rows) > 1 and not bool((rows[1:] > rows[:-1]).all()):
            raise ValueError("bag rows must be unique and sorted to back-propagate")
        n_cols = len(t_indptr) - 1
        if len(index) < SORT_BELOW * len(t_indices):
            # Few nonzeros: sort them by column, stably (the bag holds them by position).
            order = _stable_order(index, n_cols)
            counts = torch.bincount(index, minlength=n_cols)
            pos = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lens)
            t_offsets = torch.cumsum(counts, 0) - counts
            return pos.index_select(0, order), t_offsets, values.index_select(0, order)
        # Else a mask over the transpose's nonzeros keeps those of selected rows, in column order.
        where = torch.full((len(indptr) - 1,), -1, dtype=torch.int64, device=rows.device)
        where[rows] = torch.arange(len(rows), device=rows.device)  # rows are unique here
        pos = where.index_select(0, t_indices)
        keep = _flatnonzero(pos >= 0)
        t_offsets = torch.searchsorted(keep, t_indptr[:-1])
        return pos.index_select(0, keep), t_offsets, t_data.index_select(0, keep)

    return Bag(index, offsets, values, transpose)


def _stable_order(keys: torch.Tensor, n: int) -> torch.Tensor:
    """The stable sorting permutation of ``keys`` (values in [0, n)). On CPU with n <= 2^15,
    numpy's: its stable sort of int16 is a radix sort, 0.6 ms against torch.sort's 3 ms for
    J-NCF's user bags at batch 256 (93k nonzeros)."""
    if keys.device.type == "cpu" and n <= 1 << 15:
        return torch.from_numpy(np.argsort(keys.numpy().astype(np.int16), kind="stable"))
    return torch.sort(keys, stable=True).indices


def _flatnonzero(mask: torch.Tensor) -> torch.Tensor:
    """Positions of the True entries of a 1-D mask; numpy's on CPU (7x faster than
    torch.nonzero there on ML-1M's 1M nonzeros), torch's elsewhere."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)
