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
        if transpose is None or not (torch.is_grad_enabled() and self.weight.requires_grad):
            w = values
            bag = F.embedding_bag(index, self.weight, offsets, mode="sum", per_sample_weights=w)
        else:
            bag = _BagProduct.apply(self.weight, index, offsets, values, transpose)
        return bag + self.bias


class _BagProduct(torch.autograd.Function):
    """V W for a sparse V (R, n_in) given as bags, with the weight gradient Vᵀ G computed as an
    embedding bag too: ``transpose()`` returns Vᵀ's rows as bags over the R output rows. PyTorch's
    own embedding_bag backward scatters one row per nonzero and was 4x slower than this on
    ML-1M (benchmarks/bench_jncf.py); the gradient is the same sum."""

    @staticmethod
    def forward(ctx, weight, index, offsets, values, transpose):  # noqa: ANN001, ANN205
        ctx.transpose = transpose
        return F.embedding_bag(index, weight, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        t_index, t_offsets, t_values = ctx.transpose()
        g = F.embedding_bag(
            t_index, grad.contiguous(), t_offsets, mode="sum", per_sample_weights=t_values
        )
        return g, None, None, None, None


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


class Bag(NamedTuple):
    """Rows of a CSR matrix as embedding-bag inputs, and how to get the transposed selection
    (the same nonzeros grouped by column) for the weight gradient, built only in backward."""

    index: torch.Tensor
    offsets: torch.Tensor
    values: torch.Tensor
    transpose: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


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

    def transpose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # For every column j, the positions (in ``rows``) of the selected rows it meets: a
        # mask over the transpose's nonzeros keeps those of selected rows, in column order.
        t_indptr, t_indices, t_data = csc
        if len(rows) > 1 and not bool((rows[1:] > rows[:-1]).all()):
            raise ValueError("bag rows must be unique and sorted to back-propagate")
        where = torch.full((len(indptr) - 1,), -1, dtype=torch.int64, device=rows.device)
        where[rows] = torch.arange(len(rows), device=rows.device)  # rows are unique here
        pos = where.index_select(0, t_indices)
        keep = _flatnonzero(pos >= 0)
        t_offsets = torch.searchsorted(keep, t_indptr[:-1])
        return pos.index_select(0, keep), t_offsets, t_data.index_select(0, keep)

    # index_select, not [], for these long 1-D gathers: 5x faster on CPU (aten::index is not
    # vectorised for this case), and this was the largest cost of an ML-1M step.
    return Bag(indices.index_select(0, flat), offsets, data.index_select(0, flat), transpose)


def _flatnonzero(mask: torch.Tensor) -> torch.Tensor:
    """Positions of the True entries of a 1-D mask; numpy's on CPU (7x faster than
    torch.nonzero there on ML-1M's 1M nonzeros), torch's elsewhere."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)
