"""EASE^R: Embarrassingly Shallow Autoencoder (Steck, WWW 2019).

The item-item weight matrix B solves (Steck 2019, Eq. 1–4)

    min_B ||X − X B||²_F + λ ||B||²_F   subject to diag(B) = 0,

whose closed form (Eq. 8) is, with P = (XᵀX + λI)⁻¹,

    B_ij = 0 if i = j, else −P_ij / P_jj.

Scores are S = X B: a user's row of the binary interaction matrix times B. Because the model is a
function of the user's row, a new user is scored from their item list without refitting (fold-in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.memory import check_fits, format_bytes
from ncflab.models.base import Recommender
from ncflab.training.options import FitOptions

__all__ = ["EASE", "ease_weights"]

# Rows per block when the inverse's triangle is mirrored in place: bounds the temporary copy.
_MIRROR_BLOCK = 1024
# Columns of XᵀX computed at a time (``gram_matrix``).
GRAM_BLOCK = 1024


def ease_weights(x: sp.csr_matrix, l2: float) -> np.ndarray:
    """B of Eq. 8 for the binary matrix ``x`` (n_users, n_items): (n_items, n_items) float32.

    P = (XᵀX + λI)⁻¹ from a Cholesky factorisation (LAPACK ``spotrf`` then ``spotri``), in
    float32 and in place, so one dense n_items² array is all the memory the fit takes. An
    explicit float64 inverse (LU) did 2n³ flops on doubles and held three n² float64 arrays
    (3.8 GB at 9,200 items); this does n³ on floats. The Gram matrix's entries are counts,
    exact in float32, and λ > 0 bounds its condition; the figures agree with the float64
    inverse's (docs/defaults.md).
    """
    from scipy.linalg import lapack

    x = sp.csr_matrix(x, dtype=np.float32)
    gram = gram_matrix(x)
    gram[np.diag_indices_from(gram)] += np.float32(l2)
    # A symmetric C-ordered array is its own Fortran-ordered transpose: LAPACK works on
    # ``gram.T`` in place, with no copy. Its "upper" triangle is gram's lower one.
    factor, info = lapack.spotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"EASE: XᵀX + λI is not positive definite in float32 (LAPACK info {info}); "
            f"raise l2 (got {l2})"
        )
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inverting XᵀX + λI failed (LAPACK info {info})")
    p = inverse.T  # C-ordered view of gram's memory: P's lower triangle is set
    _mirror_lower(p)
    diag = np.diag(p).copy()
    p /= -diag[None, :]  # Eq. 8: B_ij = −P_ij / P_jj
    np.fill_diagonal(p, 0.0)
    return p


def gram_matrix(x: sp.csr_matrix) -> np.ndarray:
    """XᵀX, dense float32 (n_items, n_items), C-ordered: filled a block of columns at a time,
    so the sparse product never holds more than one block (the whole sparse XᵀX would take
    up to three times the dense array)."""
    n = x.shape[1]
    gram = np.empty((n, n), dtype=np.float32)
    xt, xc = x.T.tocsr(), x.tocsc()
    for start in range(0, n, GRAM_BLOCK):
        stop = min(n, start + GRAM_BLOCK)
        gram[:, start:stop] = (xt @ xc[:, start:stop]).toarray()
    return gram


def _mirror_lower(a: np.ndarray) -> None:
    """Copy the lower triangle of the square array ``a`` onto its upper one, in place, a block
    of rows at a time (the whole upper triangle at once would copy n²/2 floats)."""
    n = len(a)
    for start in range(0, n, _MIRROR_BLOCK):
        stop = min(n, start + _MIRROR_BLOCK)
        block = a[start:stop, :stop]  # rows of the block, columns up to its last row
        upper = np.triu_indices(stop - start, k=1, m=stop - start)
        # Inside the diagonal block: the strictly upper part from the lower.
        diagonal = block[:, start:stop]
        diagonal[upper] = diagonal.T[upper]
        # Right of the block: a[rows, later columns] = a[later rows, these columns]ᵀ.
        if stop < n:
            a[start:stop, stop:] = a[stop:, start:stop].T


@dataclass(kw_only=True)
class EASE(Recommender):
    """EASE^R with L2 weight ``l2`` (λ in Steck 2019, Eq. 1).

    Attributes:
        l2: λ. Default 1000: chosen on ML-1M validation NDCG@10 (``ncf`` protocol, seed 0);
            smaller data wants less (ml-100k, ``jncf`` protocol: 200). The grid and its figures
            are in docs/defaults.md.

    Learned state: ``B_`` (n_items, n_items) float32 with zero diagonal; ``X_`` the binary
    training matrix as CSR arrays (``indptr_``, ``indices_``) so a loaded model scores alike.
    """

    name: ClassVar[str] = "ease"
    # ``ncflab tune``'s default space: λ spans three decades around the usual optimum.
    search_space: ClassVar[dict] = {"l2": {"low": 10.0, "high": 20000.0, "log": True}}
    l2: float = 1000.0

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        if self.l2 <= 0:
            raise ValueError(f"EASE needs l2 > 0 (the Gram matrix may be singular), got {self.l2}")
        x = train.csr("binary")
        n = train.n_items
        # Peak: the dense float32 Gram matrix, which the solve then works in, and one block of
        # its columns as a sparse product (up to 12 bytes an entry).
        dense, block = 4.0 * n * n, 12.0 * n * min(n, GRAM_BLOCK)
        check_fits(
            f"EASE on {n:,} items",
            dense + block,
            f"the dense item × item matrix, {format_bytes(dense)}, and {format_bytes(block)} "
            "for the product filling it",
            "use a machine with more memory, or a model whose memory does not grow with the "
            "square of the catalogue (iALS, SLIM, item kNN)",
        )
        self.n_users_, self.n_items_ = train.n_users, n
        self.B_ = ease_weights(x, self.l2)
        self.indptr_ = x.indptr.astype(np.int64)
        self.indices_ = x.indices.astype(np.int64)
        return self

    def _rows(self) -> sp.csr_matrix:
        """The training matrix, built once per fitted (or loaded) state: evaluation calls
        ``score`` batch after batch."""
        cached = getattr(self, "_x_cache", None)
        if cached is None or cached[0] is not self.indices_:
            data = np.ones(len(self.indices_), np.float32)
            shape = (self.n_users_, self.n_items_)
            cached = (self.indices_, sp.csr_matrix((data, self.indices_, self.indptr_), shape))
            self._x_cache = cached
        return cached[1]

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: the users' training rows times B."""
        users = self.check_users(users)
        return self._score(self._rows()[users])

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' interaction rows (B, n_items), scipy
        sparse, any value > 0 = interacted: X_new B, no refitting needed (fold-in)."""
        return self._score(self.check_rows(rows))

    def _score(self, rows: sp.csr_matrix) -> torch.Tensor:
        return torch.from_numpy(np.asarray(rows @ self.B_, dtype=np.float32))
