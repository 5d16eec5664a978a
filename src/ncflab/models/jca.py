"""JCA: Joint Collaborative Autoencoder.

Zhu, Wang, Caverlee, "Improving Top-K Recommendation via Joint Collaborative Autoencoders",
WWW 2019, §4. A user component (an autoencoder over rating rows R_u) and an item component (over
rating columns (Rᵀ)_i, with a learnable item normalisation factor f in its hidden layer) each
complete the 0/1 matrix R; the prediction is their mean (Eq. 1–2). Training minimises the
pairwise hinge loss with margin d and L2 weight λ (Eq. 3) over mini-batch blocks of n users ×
m items (§4.3): per step the user component sees the n full rows, the item component the m full
columns, and the loss covers the positives of the n × m common block Ĉ, each with one negative
drawn from the same block, re-drawn every epoch.

Network and blocks: ``jca_net``; storage, scoring (Eq. 1–2), the block's negatives and the
loss: ``autoencoder`` (shared with U-/I-/UI-AutoRec, ``autorec``, and the other autoencoders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.autoencoder import (
    AutoencoderRecommender,
    block_pairs,
    check_common,
    is_finite_number,
    pair_loss,
)
from ncflab.models.autoencoder_net import Autoencoder
from ncflab.models.jca_net import JCAModule, epoch_blocks
from ncflab.models.sparse_input import RatingGraph
from ncflab.training.loop import train_loop
from ncflab.training.options import FitOptions

__all__ = ["JCA", "PAIRS_BELOW", "PAPER_REG", "block_scores"]

# A block whose pairs (a positive and its negative each) are under this share of its n × m
# entries is decoded at the pairs only (``JCAModule.pairs``), else whole (``JCAModule.block``):
# the same loss and gradients to float rounding. A pair costs a few µs forward and backward
# (gathers and a dot product), a block entry tens of ns (one matrix product). Forward and
# backward of a 1,500 × 1,500 block, one thread (benchmarks/bench_jca_block.py, ms, block vs
# pairs): ML-1M, pairs 4.7 % of the block: 82 vs 372; Amazon Digital Music 2.9 %: 29 vs 54;
# synthetic power-law catalogues at 0.34 %: 108 vs 51, at 0.12 %: 129 vs 66 and 71 vs 8.5.
PAIRS_BELOW = 0.01
# λ the paper chose on ML-1M validation for each objective (§5.2): JCA, JCA-MSE, JCA-BPR.
PAPER_REG = {"hinge": 0.001, "mse": 0.05, "bpr": 0.01}


@dataclass(kw_only=True)
class JCA(AutoencoderRecommender):
    """JCA (registry name ``jca``); defaults are the paper's ML-1M settings (§5.2) and the
    authors' code where the paper is silent. Variants by hyperparameter: ``loss="mse"``
    (JCA-MSE), ``loss="bpr"`` (JCA-BPR), ``normalise=False`` (JCA-NF).

    Attributes:
        hidden: hidden units H of each component (§5.2: 160 for both).
        margin: d of the hinge loss, Eq. 3 (§5.2: 0.15).
        reg: λ of Eq. 3, on the sum of squares of all weights and biases (not f, as in the
            authors' code). None = the paper's ML-1M choice for ``loss`` (§5.2): 0.001 (hinge),
            0.05 (mse), 0.01 (bpr). The data term is a sum over the block's pairs, so λ keeps
            the paper's meaning.
        loss: "hinge" (Eq. 3), "mse" (squared error on positives and sampled negatives) or
            "bpr" (−ln σ(r̂_ui − r̂_uj)), §5.4.
        normalise: learn the item normalisation factor f (Eq. 2); False gives JCA-NF (§5.4).
        block_users, block_items: n and m of §4.3 (§5.2: 1,500 each).
        lr: Adam learning rate (§5.2: 0.003).
        epochs: maximum epochs (the authors' code runs 200); early stopping on validation
            picks the epoch. An epoch is every (user chunk × item chunk) block once.
    """

    name: ClassVar[str] = "jca"
    hidden: int = 160
    margin: float = 0.15
    reg: float | None = None
    loss: str = "hinge"
    normalise: bool = True
    block_users: int = 1500
    block_items: int = 1500
    lr: float = 0.003
    epochs: int = 200

    def build(self, n_users: int, n_items: int) -> None:
        self.module_ = JCAModule(n_users, n_items, self.hidden, self.normalise, self.seed)
        self._clear_caches()

    def _components(self) -> tuple[Autoencoder | None, Autoencoder | None]:
        return self.module_.user, self.module_.item

    def regularisation(self) -> float:
        """λ in use: ``reg``, or the paper's ML-1M value for ``loss`` when it is None."""
        return PAPER_REG[self.loss] if self.reg is None else float(self.reg)

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        csr, module, graph, opt = self._setup(train, options)
        device = graph.device
        reg = self.regularisation()

        def batches(rng: np.random.Generator):
            n, m = self.block_users, self.block_items
            for p, q in epoch_blocks(train.n_users, train.n_items, n, m, rng):
                r, c, neg = block_pairs(csr, p, q, rng)
                if len(r):  # a block without positives has no data term
                    yield tuple(torch.from_numpy(a).to(device) for a in (p, q, r, c, neg))

        def loss_fn(p, q, r, c, neg) -> torch.Tensor:
            scores = block_scores(module, graph, p, q, torch.cat([r, r]), torch.cat([c, neg]))
            data = pair_loss(self.loss, scores[: len(r)], scores[len(r) :], self.margin)
            return data + 0.5 * reg * module.squared_norm()

        train_loop(self, module, opt, batches, loss_fn, epochs=self.epochs, options=options)
        self._clear_caches(keep_graph=True)  # the loop may have restored the best epoch
        return self

    def _check_params(self) -> None:
        check_common(self, ("hidden", "block_users", "block_items", "epochs"))
        if self.reg is not None and not (is_finite_number(self.reg) and self.reg >= 0):
            raise ValueError(f"reg must be None (the paper's value) or >= 0, got {self.reg}")
        if not isinstance(self.normalise, bool):
            raise ValueError(f"normalise must be true or false, got {self.normalise!r}")


def block_scores(
    module: JCAModule, graph: RatingGraph, p: torch.Tensor, q: torch.Tensor, rows: torch.Tensor,
    cols: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """(P,) Ĉ at positions (``rows``, ``cols``) of the block of users p and items q: decoded at
    those pairs only when they are under PAIRS_BELOW of the block, else from the whole block."""
    if len(rows) < PAIRS_BELOW * len(p) * len(q):
        return module.pairs(graph, p, q, rows, cols)
    return module.block(graph, p, q).reshape(-1)[rows * len(q) + cols]  # flat positions in Ĉ
