"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Rendle, Freudenthaler, Gantner, Schmidt-Thieme, "BPR: Bayesian Personalized Ranking from Implicit
Feedback", UAI 2009. The model scores ``x̂_ui = <w_u, h_i> (+ b_i)`` (Sec. 4.3.1, matrix
factorisation) and maximises the BPR-Opt criterion derived in Sec. 4.1

    BPR-Opt = Σ_{(u,i,j) ∈ D_S} ln σ(x̂_ui − x̂_uj) − λ_Θ ||Θ||²,

over triplets of a user, an item it interacted with and one it did not. As in LearnBPR (Fig. 4),
each step regularises only the parameters the triplet touches, with gradient λ·θ; we minibatch
it and, by default, use Adam instead of plain SGD, and draw one fresh uniform negative per
positive each epoch instead of bootstrap sampling (every positive is seen once per epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.models.products import mm
from ncflab.training.layers import embedding, lookup, seeded_generator
from ncflab.training.lazy_adam import row_adam
from ncflab.training.options import FitOptions
from ncflab.training.triplets import fit_triplets

__all__ = ["BPR", "BPRModule"]

OPTIMIZERS = ("adam", "lazy_adam", "sgd")


class BPRModule(nn.Module):
    """User factors W (n_users, d), item factors H (n_items, d), optional item biases (n_items,)."""

    def __init__(
        self, n_users: int, n_items: int, factors: int, init_std: float, item_bias: bool, seed: int
    ) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        self.user = embedding(n_users, factors, init_std, gen)
        self.item = embedding(n_items, factors, init_std, gen)
        self.bias = embedding(n_items, 1, 0.0, gen) if item_bias else None

    def item_scores(self, w_u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """x̂_ui for user factors ``w_u`` (B, d) and items (B,) or (B, C) → same shape as items."""
        h = self.item(items)
        x = (w_u.view(w_u.shape[0], *([1] * (items.dim() - 1)), -1) * h).sum(-1)
        return x if self.bias is None else x + self.bias(items).squeeze(-1)

    def loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float
    ) -> torch.Tensor:
        """Mean over the batch of the negated per-triplet BPR-Opt term.

        users, pos: (B,) indices; neg: (B, n_neg). Per triplet:
        ``−ln σ(x̂_ui − x̂_uj) + (reg/2)(||w_u||² + ||h_i||² + ||h_j||² + b_i² + b_j²)``,
        averaged over the n_neg negatives; its gradient in θ carries the ``λ·θ`` of Fig. 4.
        """
        # One lookup of positive and negatives together: the lookups' backward is the costly step.
        items = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + n_neg)
        w_u, h = lookup(self.user, users), lookup(self.item, items)  # (B, d), (B, 1 + n_neg, d)
        x = (w_u[:, None, :] * h).sum(-1)  # (B, 1 + n_neg): x̂_ui, x̂_uj...
        b = None if self.bias is None else lookup(self.bias, items).squeeze(-1)
        if b is not None:
            x = x + b
        # −ln σ(x̂_ui − x̂_uj) = softplus(x̂_uj − x̂_ui), stable for large |x|.
        rank_loss = F.softplus(x[:, 1:] - x[:, :1]).mean()
        if reg == 0:
            # No penalty to build: adding its 0 changes no loss or gradient value, and its
            # branch (squares, sums and their backward) was a quarter of an ML-1M epoch at 256
            # triplets a step (4.17 -> 3.09 s, benchmarks/bench_step.py --models bpr-reg0).
            return rank_loss
        sq = h.square().sum(-1)  # (B, 1 + n_neg)
        if b is not None:
            sq = sq + b.square()
        norms = w_u.square().sum(-1) + sq[:, 0] + sq[:, 1:].mean(-1)
        return rank_loss + 0.5 * reg * norms.mean()


@dataclass(kw_only=True)
class BPR(Recommender):
    """BPR-MF. The paper tunes d and λ per data set; our defaults were chosen by a short
    search on ML-1M leave-one-out (latest record per user held out, 99 sampled negatives);
    the result is in docs/defaults.md.

    Attributes:
        factors: latent dimension d.
        lr: learning rate of the optimizer.
        reg: λ_Θ, L2 weight on the factors (and biases) a triplet touches.
        epochs: maximum number of epochs (early stopping may end sooner).
        batch_size: triplets per minibatch.
        n_neg: negatives per positive, re-drawn uniformly every epoch.
        init_std: factors start ~ N(0, init_std²); biases at 0.
        item_bias: add a learned item bias b_i to x̂_ui.
        optimizer: "adam", "lazy_adam" or "sgd". "lazy_adam" moves only the factor rows a
            minibatch touches and keeps the other rows' moments as they are
            (``training.lazy_adam``): another algorithm, cheaper per step at small batches.
            The loss is the minibatch *mean*, so an SGD ``lr`` is about ``batch_size`` times
            Rendle's per-triplet α; SGD also needs a larger ``init_std`` (≈ 0.1) to leave the
            near-zero saddle quickly.
    """

    name: ClassVar[str] = "bpr"
    # ``ncflab tune``'s default space (epochs come from early stopping on validation).
    search_space: ClassVar[dict] = {
        "factors": {"choices": [16, 32, 64, 128]},
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "reg": {"low": 1e-6, "high": 1e-2, "log": True},
    }
    factors: int = 64
    lr: float = 2e-3
    reg: float = 1e-4
    epochs: int = 40
    batch_size: int = 4096
    n_neg: int = 1
    init_std: float = 0.01
    item_bias: bool = False
    optimizer: str = "adam"

    def build(self, n_users: int, n_items: int) -> None:
        self.module_ = BPRModule(
            n_users, n_items, self.factors, self.init_std, self.item_bias, self.seed
        )

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        def optimizer(params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
            if self.optimizer != "sgd":
                # Fused: the same Adam in one kernel per step instead of a dozen per parameter;
                # at 256 triplets a step that overhead was 40% of a BPR epoch on ML-1M
                # (docs/speed.md). The factors' gradients come as sparse rows: "adam" (the
                # numbers of a dense Adam) then skips zero-filling full gradients every step.
                return row_adam(self.module_, self.lr, lazy=self.optimizer == "lazy_adam")
            return torch.optim.SGD(params, lr=self.lr)

        return fit_triplets(self, train, options, optimizer)

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU scores ``W[users] Hᵀ (+ b)``."""
        users = self.check_users(users)
        m = self.module_.eval()
        dev = m.item.weight.device
        scores = mm(m.user(torch.from_numpy(users).to(dev)), m.item.weight.T)
        if m.bias is not None:
            scores = scores + m.bias.weight.T
        return scores.float().cpu()

    @torch.no_grad()
    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU scores of candidate ``items`` (B, C), without scoring all items."""
        users = self.check_users(users)
        m = self.module_.eval()
        dev = m.item.weight.device
        items_t = torch.as_tensor(np.asarray(items, dtype=np.int64), device=dev)
        return m.item_scores(m.user(torch.from_numpy(users).to(dev)), items_t).float().cpu()

    def _check_params(self) -> None:
        for key in ("factors", "epochs", "batch_size", "n_neg"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("lr", "reg", "init_std"):
            if not float(getattr(self, key)) >= 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
