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
from ncflab.training.loop import train_loop
from ncflab.training.options import FitOptions

__all__ = ["JCA", "PAPER_REG"]

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
                    pos_at, neg_at = r * len(q) + c, r * len(q) + neg  # flat positions in Ĉ
                    yield tuple(torch.from_numpy(a).to(device) for a in (p, q, pos_at, neg_at))

        def loss_fn(p, q, pos_at, neg_at) -> torch.Tensor:
            block = module.block(graph, p, q).reshape(-1)
            data = pair_loss(self.loss, block[pos_at], block[neg_at], self.margin)
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
