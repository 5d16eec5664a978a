"""NPR: Neural Personalized Ranking (registry ``npr``), without image features.

Niu, Caverlee, Lu, "Neural Personalized Ranking for Image Recommendation", WSDM 2018. JCA (Zhu
et al., WWW 2019, §5.2) uses it as a baseline and describes it as "a neural version of BPR with
two GMFs to implement the pairwise structure and the BPR objective function"; that is what is
built here, with no contextual (tag, geographic, visual) features, which ncflab's data lacks:

    x̂_ui = hᵀ(p_u ⊙ q_i)                      (a GMF branch, NCF Eq. 8–9, before a_out)
    L = −Σ_(u,i,j) ln σ(x̂_ui − x̂_uj) + (λ/2)(‖p_u‖² + ‖q_i‖² + ‖q_j‖² + ‖h‖²)   (BPR, Rendle 2009)

The two GMF branches, one for the observed item i and one for the sampled item j, share every
weight (a siamese pair): the BPR structure compares one preference function at two items, and
with shared weights ``score`` is that function. (Two unshared GMFs would leave test-time
scoring undefined; Elliot's NPR averages two branches with separate item tables, a different
model.) h is learned; it rescales the latent dimensions, so the function class is BPR-MF's and
what differs is the parametrisation and hence the optimisation. h is penalised with the
embeddings: x̂ is unchanged by p → p/c, q → q/c, h → c²h, so with h free the optimiser could
shrink the penalised embeddings at no cost and λ would lose its hold on the model's scale.

JCA's settings for all baselines (§5.2): Adam, learning rate 0.003, minibatch 1,500 for the
non-autoencoder methods, one re-sampled negative per positive per epoch, and λ grid-searched
over {0.5, 0.1, 0.05, 0.01, 0.005, 0.001} on validation; the NPR's latent size is not given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import torch
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.models.products import mm
from ncflab.training.layers import embedding, lookup, seeded_generator
from ncflab.training.losses import bpr
from ncflab.training.options import FitOptions
from ncflab.training.triplets import fit_triplets

__all__ = ["NPR", "NPRNet"]


class NPRNet(nn.Module):
    """One GMF branch, shared by both sides of the pair: user and item embeddings (n, factors)
    ~ N(0, std²) and the output weight h (factors,) ~ LeCun-uniform (the NCF code's output
    initialiser). No bias: it would cancel in x̂_ui − x̂_uj."""

    def __init__(self, n_users: int, n_items: int, factors: int, std: float, seed: int) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        self.user = embedding(n_users, factors, std, gen)
        self.item = embedding(n_items, factors, std, gen)
        bound = math.sqrt(3.0 / factors)
        self.h = nn.Parameter(torch.empty(factors).uniform_(-bound, bound, generator=gen))

    def preference(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """x̂_ui for users (B,) and items (B, C) → (B, C)."""
        return lookup(self.item, items) @ (lookup(self.user, users) * self.h)[:, :, None]

    def loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float
    ) -> torch.Tensor:
        """BPR loss of (users (B,), pos (B,), neg (B, n_neg)): mean over the n_neg pairs of
        −ln σ(x̂_ui − x̂_uj), plus (reg/2)(‖p_u‖² + ‖q_i‖² + mean_j ‖q_j‖²) averaged over B,
        plus (reg/2)‖h‖² (h, shared by every triplet, once per minibatch)."""
        items = torch.cat([pos[:, None], neg], dim=1)  # one lookup for both branches
        p, q = lookup(self.user, users), lookup(self.item, items)  # (B, f), (B, 1 + n_neg, f)
        x = (q @ (p * self.h)[:, :, None])[..., 0]  # (B, 1 + n_neg)
        sq = q.square().sum(-1)
        norms = p.square().sum(-1) + sq[:, 0] + sq[:, 1:].mean(-1)
        return bpr(x[:, 0], x[:, 1:]) + 0.5 * reg * (norms.mean() + self.h.square().sum())


@dataclass(kw_only=True)
class NPR(Recommender):
    """NPR as JCA's baseline. Defaults: JCA §5.2 where it gives them; the rest on validation.

    Attributes:
        factors: latent size of p_u, q_i (JCA does not give NPR's; 64, BPR's default here).
        reg: λ, L2 weight on the embeddings (and h) a triplet touches: 0.003, the ML-1M
            validation argmax (``-p jca``, seed 0, F1@10; a tie with 0.001). JCA's grid
            {0.5 … 0.001} is for its own loss scaling; ours is a per-triplet mean, where only
            its low end learns. The figures are in docs/defaults.md.
        lr: Adam learning rate (JCA §5.2: 0.003 for all methods).
        batch_size: triplets per minibatch (JCA §5.2: 1,500 for non-autoencoder methods).
        n_neg: sampled negatives per positive, re-drawn every epoch (JCA §5.2: 1).
        epochs: maximum epochs; early stopping on validation picks the epoch.
        init_std: embeddings start ~ N(0, init_std²).
    """

    name: ClassVar[str] = "npr"
    factors: int = 64
    reg: float = 0.003
    lr: float = 3e-3
    batch_size: int = 1500
    n_neg: int = 1
    epochs: int = 100
    init_std: float = 0.01

    def build(self, n_users: int, n_items: int) -> None:
        self.module_ = NPRNet(n_users, n_items, self.factors, self.init_std, self.seed)

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        return fit_triplets(
            self, train, options, lambda params: torch.optim.Adam(params, lr=self.lr, fused=True)
        )

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU preferences x̂_ui = (p_u ⊙ h)ᵀ q_i of every item."""
        users = self.check_users(users)
        m = self.module_.eval()
        dev = m.item.weight.device
        scores = mm(m.user(torch.from_numpy(users).to(dev)) * m.h, m.item.weight.T)
        return scores.float().cpu()

    @torch.no_grad()
    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU preferences of the candidate ``items`` (B, C)."""
        users, items = self.check_candidates(users, items)
        m = self.module_.eval()
        dev = m.item.weight.device
        u, i = torch.from_numpy(users).to(dev), torch.from_numpy(items).to(dev)
        return m.preference(u, i)[..., 0].float().cpu()

    def _check_params(self) -> None:
        for key in ("factors", "epochs", "batch_size", "n_neg"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if not (math.isfinite(self.lr) and self.lr > 0 and self.init_std > 0):
            raise ValueError(f"need lr > 0 and init_std > 0, got {self.lr}, {self.init_std}")
        if not (math.isfinite(self.reg) and self.reg >= 0):
            raise ValueError(f"reg must be >= 0, got {self.reg}")
