"""Pieces shared by the alternating least-squares models (``ials``, ``eals``).

- ``solve_rows``: the exact weighted least-squares solve of many rows at once,

      w_u = (B + Σ_{i∈I_u} g_ui h_i h_iᵀ + reg_u I)⁻¹ Σ_{i∈I_u} r_ui h_i,

  for every row u of a sparse matrix, with a shared base Gram ``B`` (the "all pairs" term that
  makes implicit ALS cheap: Hu et al. 2008, §4; Rendle et al. 2022, §2). Rows are sorted by
  length and solved in padded batches (one batched matrix product and one batched Cholesky per
  batch), so there is no Python loop per row and the same code runs on CUDA.
- ``pair_scores``: ⟨w_u, h_i⟩ for many (u, i) pairs without a (pairs × d) blow-up.
- ``Factors``: the user and item factors of a fit, as buffers of an ``nn.Module`` that the
  epochs update in place, so the one epoch driver (``training.run_epochs``) keeps, snapshots
  and restores them as it does a neural model's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.training.options import FitOptions

__all__ = [
    "Factors",
    "FitStart",
    "RowBatches",
    "SparseRows",
    "candidate_scores",
    "check_als_params",
    "init_factors",
    "pair_scores",
    "solve_rows",
    "start_fit",
]

# Floats per padded batch (gathered factors, and the batch of d × d systems): bounds memory
# (64 MiB in float32) whatever the longest row, while keeping batches large enough for BLAS.
BATCH_FLOATS = 1 << 24


@dataclass(frozen=True)
class SparseRows:
    """A CSR matrix as torch tensors on one device: ``indptr`` (n_rows + 1,), ``indices``
    (nnz,) column of each entry, ``rows`` (nnz,) row of each entry, and ``shape``."""

    indptr: torch.Tensor
    indices: torch.Tensor
    rows: torch.Tensor
    shape: tuple[int, int]

    @classmethod
    def from_scipy(cls, x: sp.spmatrix, device: torch.device | str = "cpu") -> SparseRows:
        x = sp.csr_matrix(x)
        x.sort_indices()
        indptr = torch.from_numpy(x.indptr.astype(np.int64))
        rows = torch.repeat_interleave(torch.arange(x.shape[0]), indptr.diff())
        indices = torch.from_numpy(x.indices.astype(np.int64))
        return cls(indptr.to(device), indices.to(device), rows.to(device), tuple(x.shape))

    @property
    def lengths(self) -> torch.Tensor:
        """(n_rows,) entries per row."""
        return self.indptr.diff()

    def matmul(self, values: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """(n_rows, d): this matrix, with entry values ``values`` (nnz,), times ``dense``
        (n_cols, d). The entries are in row-major order, i.e. already coalesced."""
        index = torch.stack([self.rows, self.indices])
        m = torch.sparse_coo_tensor(
            index, values, self.shape, is_coalesced=True, check_invariants=False
        )
        return torch.sparse.mm(m, dense)


class Factors(nn.Module):
    """The factors an ALS epoch reads and writes in place: ``users`` (n_users, d) and ``items``
    (n_items, d). Buffers, not parameters: no gradient ever flows, but they are the module's
    state, so the epoch driver's best-epoch copy, snapshot and restore carry them."""

    users: torch.Tensor
    items: torch.Tensor

    def __init__(self, users: torch.Tensor, items: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("users", users)
        self.register_buffer("items", items)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the user and item factors as CPU numpy arrays (what the models score with:
        copies, since the buffers change in place at the next epoch or restore)."""
        return self.users.cpu().numpy().copy(), self.items.cpu().numpy().copy()


def init_factors(n: int, d: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """(n, d) float32 factors ~ N(0, std²) drawn on the CPU from ``generator`` (so the initial
    values depend only on the seed, not on the device)."""
    return torch.randn(n, d, generator=generator, dtype=torch.float32) * std


def pair_scores(
    w: torch.Tensor, h: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, chunk: int = 1 << 18
) -> torch.Tensor:
    """(nnz,) ⟨w[rows], h[cols]⟩, computed ``chunk`` pairs at a time to bound memory."""
    out = torch.empty(len(rows), dtype=w.dtype, device=w.device)
    for start in range(0, len(rows), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        out[start : start + chunk] = (w.index_select(0, r) * h.index_select(0, c)).sum(1)
    return out


def candidate_scores(
    user_factors: np.ndarray, item_factors: np.ndarray, users: np.ndarray, items: np.ndarray
) -> torch.Tensor:
    """(B, C) float32 ⟨w_u, h_i⟩ of each user's candidate items (B, C) only: sampled
    evaluation scores 100 candidates a user, where scoring every item first would cost the
    whole catalogue per user (Amazon Electronics' 157,003 items: 1,570× the work)."""
    w = torch.from_numpy(user_factors[users])  # (B, d)
    h = torch.from_numpy(item_factors)[torch.from_numpy(np.asarray(items, dtype=np.int64))]
    return torch.bmm(h, w[:, :, None])[..., 0]


class RowBatches:
    """The rows of a ``SparseRows`` and their entry weights, grouped into padded batches of
    similar length: built once per fit, since the sparsity pattern does not change.

    Each batch holds ``rows`` (B,), ``cols`` (B, width) with ``n_cols`` as padding (it selects
    a zero row appended to the factors, so padding adds nothing), and the (B, width) weights
    g_ui of h_i h_iᵀ and r_ui of h_i, or None where every entry has the same weight.
    """

    def __init__(
        self,
        x: SparseRows,
        d: int,
        gram: float | torch.Tensor = 1.0,
        rhs: float | torch.Tensor = 1.0,
    ) -> None:
        self.n_rows, self.n_cols = x.shape
        self.gram_scale = 1.0 if torch.is_tensor(gram) else float(gram)
        self.rhs_scale = 1.0 if torch.is_tensor(rhs) else float(rhs)
        lengths = x.lengths
        order = torch.argsort(lengths, stable=True)
        sorted_len = lengths[order].cpu().numpy()
        self.batches: list[tuple[torch.Tensor, ...]] = []
        for start, stop in _batches(sorted_len, d):
            rows = order[start:stop]
            offsets = torch.arange(int(sorted_len[stop - 1]), device=lengths.device)
            valid = offsets < lengths[rows, None]
            pos = torch.where(valid, x.indptr[rows, None] + offsets, 0)
            cols = torch.where(valid, x.indices[pos], self.n_cols)
            g = torch.where(valid, gram[pos], 0.0) if torch.is_tensor(gram) else None
            r = torch.where(valid, rhs[pos], 0.0) if torch.is_tensor(rhs) else None
            self.batches.append((rows, cols, g, r))


def solve_rows(
    batches: RowBatches, h: torch.Tensor, base: torch.Tensor, reg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact solutions of every row's normal equations (see the module docstring).

    Args:
        batches: the rows I_u with the weights g_ui of h_i h_iᵀ and r_ui of h_i.
        h: (n_cols, d) the fixed factors.
        base: (d, d) the Gram term shared by every row.
        reg: (n_rows,) the ridge added to each row's diagonal.

    Returns:
        (n_rows, d) the solutions w_u and (n_rows, d) the right-hand sides b_u = Σ_i r_ui h_i
        (at the solution w_uᵀ A_u w_u = w_uᵀ b_u, which gives the loss for free).
    """
    d = h.shape[1]
    padded = torch.cat([h, h.new_zeros(1, d)])  # row n_cols: the padding's zero factor
    out, rhs = h.new_empty(batches.n_rows, d), h.new_empty(batches.n_rows, d)
    for rows, cols, g, r in batches.batches:
        hh = padded.index_select(0, cols.reshape(-1)).view(*cols.shape, d)  # (B, width, d)
        left = hh * g[..., None] if g is not None else hh * batches.gram_scale
        a = torch.baddbmm(base.expand(len(rows), d, d), left.transpose(1, 2), hh)
        a.diagonal(dim1=1, dim2=2).add_(reg[rows, None])
        b = (hh * r[..., None]).sum(1) if r is not None else hh.sum(1) * batches.rhs_scale
        chol, info = torch.linalg.cholesky_ex(a)
        if bool((info != 0).any()):
            bad = rows[info != 0][:5].tolist()
            raise FloatingPointError(
                f"ALS normal equations of rows {bad} are not positive definite; increase reg"
            )
        # Two triangular solves: about twice as fast as cholesky_solve on CPU for small d.
        y = torch.linalg.solve_triangular(chol, b[..., None], upper=False)
        out[rows] = torch.linalg.solve_triangular(chol.transpose(1, 2), y, upper=True)[..., 0]
        rhs[rows] = b
    return out, rhs


def _batches(sorted_len: np.ndarray, d: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) ranges of rows (sorted by length) whose padded gather
    (rows × longest × d) and systems (rows × d × d) each fit in ``BATCH_FLOATS``, and whose
    longest row is at most a quarter longer than the shortest (bounding padding work)."""
    n, out, start = len(sorted_len), [], 0
    max_rows = max(1, BATCH_FLOATS // (d * d))
    while start < n:
        count = np.arange(1, n - start + 1)
        widest = np.maximum(sorted_len[start:], 1)
        # Every condition fails from some count on, so the rows that fit are a prefix.
        fits = (count * widest * d <= BATCH_FLOATS) & (count <= max_rows)
        fits &= widest <= 1.25 * sorted_len[start] + 8
        stop = start + max(1, int(fits.sum()))
        out.append((start, stop))
        start = stop
    return out


def check_als_params(model: object, nonnegative: tuple[str, ...]) -> None:
    """The checks iALS and eALS share, each error naming the bad value: ``factors`` and
    ``epochs`` positive integers, ``reg`` > 0 (it keeps every row's system solvable), and the
    ``nonnegative`` fields >= 0."""
    for key in ("factors", "epochs"):
        if int(getattr(model, key)) < 1:
            raise ValueError(f"{key} must be a positive integer, got {getattr(model, key)}")
    if not model.reg > 0:
        raise ValueError(f"reg must be > 0 (it keeps every row's system solvable), got {model.reg}")
    for key in nonnegative:
        if not float(getattr(model, key)) >= 0:
            raise ValueError(f"{key} must be >= 0, got {getattr(model, key)}")


class FitStart(NamedTuple):
    """What iALS and eALS start a fit from: the binary training matrix, the device, its rows
    by user and by item, and the starting user and item factors on the device."""

    x: sp.csr_matrix
    device: torch.device
    by_user: SparseRows
    by_item: SparseRows
    factors: Factors


def start_fit(model: Any, train: Interactions, options: FitOptions) -> FitStart:
    """The start of an ALS ``fit``: check the hyperparameters, set ``n_users_``/``n_items_``,
    build both row views of the binary matrix and draw the starting factors."""
    model._check_params()
    device = options.torch_device()
    x = train.csr("binary")
    model.n_users_, model.n_items_ = x.shape
    by_user = SparseRows.from_scipy(x, device)
    by_item = SparseRows.from_scipy(x.T.tocsr(), device)
    users, items = (f.to(device) for f in model.initial_factors(*x.shape))
    return FitStart(x, device, by_user, by_item, Factors(users, items))
