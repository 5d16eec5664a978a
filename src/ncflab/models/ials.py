"""iALS / WRMF: matrix factorisation of implicit feedback by alternating least squares.

Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008, with
the loss and tuning recipe of Rendle, Krichene, Zhang & Koren, "Revisiting the Performance of
iALS on Item Recommendation Benchmarks", RecSys 2022 (§2). Scores are ŷ_ui = ⟨w_u, h_i⟩
and the loss over observed pairs S is

    L(W, H) = Σ_{(u,i)∈S} (ŷ_ui − 1)² + α₀ Σ_u Σ_i ŷ_ui²
              + λ (Σ_u (|I_u| + α₀|I|)^ν ‖w_u‖² + Σ_i (|U_i| + α₀|U|)^ν ‖h_i‖²),

whose second term runs over *all* pairs: its contribution to every user's system is the one
matrix α₀ HᵀH, so the exact user step is, for all users at once (``als.solve_rows``),

    w_u = (α₀ HᵀH + Σ_{i∈I_u} h_i h_iᵀ + λ_u I)⁻¹ Σ_{i∈I_u} h_i,   λ_u = λ (|I_u| + α₀|I|)^ν,

and the item step is the same with the roles swapped. ν = 0 gives plain L2; ν = 1 scales each
row's ridge with its amount of (observed + weighted unobserved) data, Rendle et al.'s
frequency-scaled regularisation.

``loss="hu"`` gives Hu et al.'s confidence form instead (their Eq. 3): Σ_S c (1 − ŷ)² +
α₀ Σ_{∉S} ŷ² with c = 1 + ``confidence`` (binary data, r_ui = 1), i.e. the user system
α₀ HᵀH + Σ_{i∈I_u} (c − α₀) h_i h_iᵀ + λ_u I with right-hand side c Σ_{i∈I_u} h_i; Hu et al. use
α₀ = 1, ν = 0 and α = 40. Only the entry weights change, so both forms share one solver.

A new user is scored by folding in: their w is the user step above for their row with H fixed
(Hu et al.'s Eq. 4, x_u = (YᵀCᵘY + λI)⁻¹ YᵀCᵘ p(u), which needs only Y and the user's own
row; their §5 builds its explanations on it), so no refit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.als import (
    RowBatches,
    SparseRows,
    candidate_scores,
    check_als_params,
    init_factors,
    pair_scores,
    solve_rows,
    start_fit,
)
from ncflab.models.base import Recommender
from ncflab.models.products import mm
from ncflab.training.driver import run_epochs
from ncflab.training.options import FitOptions

__all__ = ["IALS"]

LOSSES = ("rendle", "hu")


@dataclass(kw_only=True)
class IALS(Recommender):
    """iALS with Rendle et al.'s (2022) loss and frequency-scaled regularisation.

    Defaults: chosen on ML-1M validation NDCG@10 (``ncf`` protocol, seed 0); d = 64 because
    d = 128 (``factors=128, reg=0.008``) is only slightly better for several times the epoch
    time. The grid and its figures are in docs/defaults.md.

    Attributes:
        factors: embedding dimension d.
        reg: λ.
        alpha0: α₀, the weight of the all-pairs term (of unobserved pairs for ``loss="hu"``).
        nu: ν, the exponent of the frequency scaling of λ (0 = plain L2).
        epochs: alternating epochs (user step + item step); with ``FitOptions.validate`` the
            best validated epoch is kept and training may stop early (``patience``). 16: the
            defaults' validation curve has levelled off by then (docs/defaults.md).
        init_std: σ; factors start ~ N(0, σ²/d) (Rendle et al.'s initialisation).
        loss: "rendle" (the loss above) or "hu" (Hu et al.'s confidence form).
        confidence: Hu et al.'s α, observed pairs weighted 1 + α (``loss="hu"`` only).

    Learned state: ``W_`` (n_users, d) and ``H_`` (n_items, d) float32.
    """

    name: ClassVar[str] = "ials"
    # ``ncflab tune``'s default space (epochs: the maximum, early-stopped on validation).
    search_space: ClassVar[dict] = {
        "factors": {"choices": [32, 64, 128, 256]},
        "reg": {"low": 1e-4, "high": 0.1, "log": True},
        "alpha0": {"low": 0.01, "high": 2.0, "log": True},
    }
    factors: int = 64
    reg: float = 0.005
    alpha0: float = 0.2
    nu: float = 1.0
    epochs: int = 16
    init_std: float = 0.1
    loss: str = "rendle"
    confidence: float = 40.0

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        _, _, by_user, by_item, factors = start_fit(self, train, options)
        reg_u = self._row_reg(by_user.lengths, self.n_items_)
        reg_i = self._row_reg(by_item.lengths, self.n_users_)
        gram, rhs = self._entry_weights()
        constant = rhs * by_user.indices.numel()  # Σ_S r_ui
        users = RowBatches(by_user, self.factors, gram, rhs)
        items = RowBatches(by_item, self.factors, gram, rhs)

        def sweep(epoch: int) -> float:
            h = factors.items
            w, _ = solve_rows(users, h, self.alpha0 * (h.T @ h), reg_u)
            factors.users.copy_(w)
            h, b = solve_rows(items, w, self.alpha0 * (w.T @ w), reg_i)
            factors.items.copy_(h)
            self.W_, self.H_ = factors.numpy()  # validation scores the epoch's factors
            # L = Σ_i (h_iᵀA_ih_i − 2h_iᵀb_i) + Σ_S r_ui + Σ_u λ_u‖w_u‖², and h_iᵀA_ih_i = h_iᵀb_i
            # at the item step's solution: the loss without touching the pairs again.
            fit = constant - (h * b).sum().double()
            return float(fit + (reg_u * w.square().sum(1)).sum().double())

        run_epochs(self, factors, sweep, epochs=self.epochs, options=options)
        self.W_, self.H_ = factors.numpy()  # the best validated epoch's, which the driver kept
        return self

    def initial_factors(self, n_users: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_users, d) and (n_items, d) CPU float32 starting factors ~ N(0, σ²/d), from
        ``seed``. (The first user step does not read W; it is drawn for the loss history.)"""
        gen = torch.Generator().manual_seed(int(self.seed))
        std = self.init_std / math.sqrt(self.factors)
        return init_factors(n_users, self.factors, std, gen), init_factors(
            n_items, self.factors, std, gen
        )

    def _row_reg(self, counts: torch.Tensor, n_other: int) -> torch.Tensor:
        """(n_rows,) λ (count + α₀ n_other)^ν, the frequency-scaled ridge of each row."""
        return self.reg * (counts.float() + self.alpha0 * n_other) ** self.nu

    def _entry_weights(self) -> tuple[float, float]:
        """The weight of h_i h_iᵀ in a row's system and of h_i in its right-hand side, for
        each observed entry (the all-pairs term α₀ HᵀH is added separately)."""
        if self.loss == "hu":
            c = 1.0 + self.confidence
            return c - self.alpha0, c
        return 1.0, 1.0

    def objective(self, train: Interactions) -> float:
        """L(W, H) of the fitted factors on ``train``, computed directly (a check of the
        value each epoch records): observed pairs add gŷ² − 2rŷ + r ("rendle": (ŷ − 1)² with
        the pair's α₀ŷ² in the all-pairs term; "hu": c(ŷ − 1)² − α₀ŷ²), the all-pairs term is
        α₀ Σ_u w_uᵀ (HᵀH) w_u, so nothing of size users × items is formed."""
        self.check_fitted()
        x = SparseRows.from_scipy(train.csr("binary"))
        w, h = torch.from_numpy(self.W_).double(), torch.from_numpy(self.H_).double()
        gram, rhs = self._entry_weights()
        y = pair_scores(w, h, x.rows, x.indices)
        observed = (gram * y * y - 2 * rhs * y + rhs).sum()
        every = self.alpha0 * ((w @ (h.T @ h)) * w).sum()
        reg_u = self._row_reg(x.lengths, self.n_items_).double()
        reg_i = self._row_reg(SparseRows.from_scipy(train.csr("binary").T).lengths, self.n_users_)
        penalty = (reg_u * w.square().sum(1)).sum() + (reg_i.double() * h.square().sum(1)).sum()
        return float(observed + every + penalty)

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 ⟨w_u, h_i⟩."""
        users = self.check_users(users)
        return mm(torch.from_numpy(self.W_[users]), torch.from_numpy(self.H_).T)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 ⟨w_u, h_i⟩ of the candidate ``items`` (B, C) only."""
        users, items = self.check_candidates(users, items)
        return candidate_scores(self.W_, self.H_, users, items)

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 scores of new users' rows (B, n_items), any value > 0 =
        interacted: each user's w is the exact user step with H fixed (fold-in)."""
        x = SparseRows.from_scipy(self.check_rows(rows))
        h = torch.from_numpy(self.H_)
        batches = RowBatches(x, self.factors, *self._entry_weights())
        w, _ = solve_rows(
            batches, h, self.alpha0 * (h.T @ h), self._row_reg(x.lengths, self.n_items_)
        )
        return mm(w, h.T)

    def _check_params(self) -> None:
        check_als_params(self, ("alpha0", "nu", "init_std", "confidence"))
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
