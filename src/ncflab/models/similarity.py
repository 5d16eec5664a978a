"""Sparse top-k similarity matrices for the neighbourhood and graph models (ItemKNN, UserKNN,
P3alpha, RP3beta).

Each of these models needs, for every row of a product ``left @ right`` (item × item or
user × user), the ``k`` largest entries after an element-wise adjustment (cosine normalisation,
popularity penalty, zeroed self-similarity). The full product is dense-ish and quadratic in the
catalogue, so it is computed in row blocks whose dense size is bounded (``BLOCK_ENTRIES``), each
block reduced to its top-k at once, and the kept entries gathered into one CSR matrix: memory is
O(block + rows × k), never O(rows × columns). ``topk_columns`` prunes a sparse result per column
(P3alpha/RP3beta's second pass); ``store_csr``/``stored_csr`` keep a CSR matrix as the plain
``*_`` arrays that ``Recommender.save``/``load`` round-trip.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "BLOCK_ENTRIES",
    "blocked_topk",
    "cosine_adjust",
    "scale_csr",
    "store_csr",
    "stored_csr",
    "topk_columns",
    "topk_rows",
]

# Dense entries per block (64 MiB of float32): bounds memory whatever the catalogue's size.
BLOCK_ENTRIES = 1 << 24

# Adjusts a dense block in place: (block (b, n_cols), index of its first row).
Adjust = Callable[[np.ndarray, int], None]


def topk_rows(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest non-zero entries of each row of a dense ``block`` (b, n).

    Returns COO parts (rows, cols, values) with rows relative to the block. Zeros are never
    kept (they carry no signal and would only fill the sparse matrix); ties are broken by
    ``torch.topk``, deterministically for the same input.
    """
    k = min(k, block.shape[1])
    values, cols = torch.topk(torch.from_numpy(block), k, dim=1, sorted=False)
    values, cols = values.numpy(), cols.numpy()
    rows = np.broadcast_to(np.arange(block.shape[0])[:, None], cols.shape)
    keep = values != 0
    return rows[keep], cols[keep], values[keep]


def blocked_topk(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    k: int,
    adjust: Adjust | None = None,
    block_entries: int = BLOCK_ENTRIES,
) -> sp.csr_matrix:
    """Row-wise top-``k`` of ``adjust(left @ right)``, computed in row blocks.

    Args:
        left: (n_rows, d) CSR.
        right: (d, n_cols) CSR.
        k: entries kept per row (the largest, zeros dropped); ``k >= n_cols`` keeps all.
        adjust: called on each dense block (b, n_cols) and its first row index, in place
            (normalisation, zeroing self-similarity) before the top-k.
        block_entries: bound on a dense block's entries (rows per block = this / n_cols).

    Returns:
        (n_rows, n_cols) float32 CSR with at most ``k`` entries per row, sorted indices.
    """
    if k < 1:
        raise ValueError(f"top_k must be a positive number of neighbours, got {k}")
    n_rows, n_cols = left.shape[0], right.shape[1]
    step = max(1, block_entries // max(1, n_cols))
    parts = []
    for start in range(0, n_rows, step):
        block = (left[start : start + step] @ right).toarray().astype(np.float32, copy=False)
        if adjust is not None:
            adjust(block, start)
        rows, cols, values = topk_rows(block, k)
        parts.append((rows + start, cols, values))
    rows, cols, values = (np.concatenate(p) for p in zip(*parts, strict=True))
    out = sp.csr_matrix((values, (rows, cols)), shape=(n_rows, n_cols), dtype=np.float32)
    out.sort_indices()
    return out


def cosine_adjust(
    row_norms: np.ndarray, col_norms: np.ndarray, shrink: float, zero_self: bool
) -> Adjust:
    """The cosine-with-shrinkage adjustment of a block of dot products (Sarwar et al. 2001,
    §3.1.1; shrinkage as in Dacrema et al. 2019's ItemKNN):

        sim(a, b) = x_a · x_b / (‖x_a‖ ‖x_b‖ + shrink),

    with the self-similarity of row r and column r set to 0 when ``zero_self`` (a row of the
    product is its own best neighbour, which says nothing). A tiny constant keeps empty rows at
    0 instead of 0/0 when ``shrink`` is 0.
    """

    def adjust(block: np.ndarray, start: int) -> None:
        rows = row_norms[start : start + block.shape[0]]
        block /= rows[:, None] * col_norms[None, :] + np.float32(shrink + 1e-6)
        if zero_self:
            index = np.arange(block.shape[0])
            block[index, index + start] = 0.0

    return adjust


def store_csr(model: object, prefix: str, matrix: sp.csr_matrix, values: bool = True) -> None:
    """Keep a CSR matrix on ``model`` as arrays ``{prefix}indptr_``, ``{prefix}indices_`` (and
    ``{prefix}data_`` when ``values``; a binary matrix needs none) so ``save``/``load`` round-trip
    it without pickle."""
    setattr(model, f"{prefix}indptr_", matrix.indptr.astype(np.int64))
    setattr(model, f"{prefix}indices_", matrix.indices.astype(np.int64))
    if values:
        setattr(model, f"{prefix}data_", matrix.data.astype(np.float32))


def stored_csr(model: object, prefix: str, shape: tuple[int, int]) -> sp.csr_matrix:
    """The CSR matrix ``store_csr`` kept, rebuilt once per fitted (or loaded) state: scoring
    calls this batch after batch. Without ``{prefix}data_`` the values are 1."""
    indices = getattr(model, f"{prefix}indices_")
    cache = model.__dict__.setdefault("_csr_cache", {})
    hit = cache.get(prefix)
    if hit is None or hit[0] is not indices:
        data = getattr(model, f"{prefix}data_", None)
        if data is None:
            data = np.ones(len(indices), np.float32)
        matrix = sp.csr_matrix((data, indices, getattr(model, f"{prefix}indptr_")), shape)
        hit = cache[prefix] = (indices, matrix)
    return hit[1]


def scale_csr(x: sp.csr_matrix, row_scale: np.ndarray, col_scale: np.ndarray) -> sp.csr_matrix:
    """diag(row_scale) · x · diag(col_scale) as float32 CSR, without building the diagonals."""
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    data = x.data * row_scale[rows] * col_scale[x.indices]
    return sp.csr_matrix((data.astype(np.float32), x.indices, x.indptr), x.shape)


def topk_columns(matrix: sp.spmatrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each column of a sparse ``matrix`` (ties: lower row first),
    as float32 CSR; vectorised (one sort), no loop over columns."""
    csc = sp.csc_matrix(matrix, dtype=np.float32)
    csc.sort_indices()
    cols = np.repeat(np.arange(csc.shape[1]), np.diff(csc.indptr))
    order = np.lexsort((-csc.data, cols))  # by column, then largest first (stable on rows)
    rank = np.arange(len(order)) - csc.indptr[cols[order]]
    keep = order[rank < k]
    out = sp.csr_matrix((csc.data[keep], (csc.indices[keep], cols[keep])), shape=csc.shape)
    out.sort_indices()
    return out
