"""U-AutoRec, I-AutoRec and UI-AutoRec, as JCA's paper trains them as baselines.

Sedhain, Menon, Sanner, Xie, "AutoRec: Autoencoders Meet Collaborative Filtering", WWW 2015;
in JCA's form (Zhu et al., WWW 2019, §3.2): R̂ = σ(σ(R V + b₁) W + b₂) over user rows (U-AutoRec,
learning item-item correlations) or over item columns (I-AutoRec, user-user correlations),
sigmoid hidden and output layers, the MSE objective (§5.2 "It uses the MSE loss function") on
the positives and one sampled negative per positive, re-drawn every epoch (§5.2, "negative
sampling rate 1 for all models"), minibatches of 256 rows (§5.2), Adam with lr 0.003.
UI-AutoRec averages the outputs of a separately trained U-AutoRec and I-AutoRec (§3.3, Table 1).

Each model is one ``autoencoder_net.Autoencoder`` without f (UI-AutoRec: a user-side and an
item-side one, ``UserItemAutoencoders``); scoring, storage, new-user scoring, the sampled
negatives and the loss come from ``autoencoder``, shared with JCA.
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
from ncflab.models.autoencoder_net import Autoencoder, UserItemAutoencoders
from ncflab.training.layers import seeded_generator
from ncflab.training.loop import train_loop
from ncflab.training.options import FitOptions

__all__ = ["IAutoRec", "UAutoRec", "UIAutoRec"]


@dataclass(kw_only=True)
class UAutoRec(AutoencoderRecommender):
    """U-AutoRec (registry ``uautorec``): an autoencoder over user rating rows.

    Attributes:
        hidden: hidden units (JCA §5.2 uses JCA's 160 for every autoencoder).
        reg: λ on the sum of squares of all weights and biases (added to a summed data term,
            as JCA Eq. 3). JCA grid-searched it per model over [0.5, 0.1, 0.05, 0.01, 0.005,
            0.001] without reporting the choice. Ours, the best on ML-1M validation F1@10
            (preset jca, seed 0): U-AutoRec 0.1, I-AutoRec 0.5 (figures in docs/defaults.md).
        loss: "mse" (the paper's), or "hinge"/"bpr" as for JCA.
        margin: d, used by ``loss="hinge"`` only.
        batch_size: rows per minibatch (§5.2: 256 for the single-side autoencoders).
        lr: Adam learning rate (§5.2: 0.003).
        epochs: maximum epochs; early stopping on validation picks the epoch.
    """

    name: ClassVar[str] = "uautorec"
    side: ClassVar[str] = "user"
    hidden: int = 160
    reg: float = 0.1
    loss: str = "mse"
    margin: float = 0.15
    batch_size: int = 256
    lr: float = 0.003
    epochs: int = 200

    def build(self, n_users: int, n_items: int) -> None:
        n_rows, n_in = (n_users, n_items) if self.side == "user" else (n_items, n_users)
        gen = seeded_generator(self.seed)
        self.module_ = Autoencoder(n_in, self.hidden, n_rows, False, gen)
        self._clear_caches()

    def _components(self) -> tuple[Autoencoder | None, Autoencoder | None]:
        return (self.module_, None) if self.side == "user" else (None, self.module_)

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        check_common(self, ("hidden", "batch_size", "epochs"))
        if not (is_finite_number(self.reg) and self.reg >= 0):
            raise ValueError(f"reg must be a finite number >= 0, got {self.reg!r}")
        device = options.torch_device()
        csr = self._store(train)
        if self.side == "item":
            csr = csr.T.tocsr()  # I-AutoRec's rows are the item columns of R
            csr.sort_indices()
        self.build_to_train(train.n_users, train.n_items, device)
        module = self.module_.to(device)
        graph = self._graph(device)
        bag = graph.user_bag if self.side == "user" else graph.item_bag
        opt = self._optimizer(module, self.lr)
        all_cols = np.arange(csr.shape[1])

        def batches(rng: np.random.Generator):
            order = rng.permutation(csr.shape[0])
            for s in range(0, len(order), self.batch_size):
                rows = np.sort(order[s : s + self.batch_size])  # the sparse layer's backward
                r, c, neg = block_pairs(csr, rows, all_cols, rng)
                if len(r):
                    pos_at, neg_at = r * len(all_cols) + c, r * len(all_cols) + neg
                    yield tuple(torch.from_numpy(a).to(device) for a in (rows, pos_at, neg_at))

        def loss_fn(rows, pos_at, neg_at) -> torch.Tensor:
            out = module.decode(module.hidden(bag(rows), rows)).reshape(-1)  # (B · n_in,)
            data = pair_loss(self.loss, out[pos_at], out[neg_at], self.margin)
            return data + 0.5 * self.reg * module.squared_norm()

        train_loop(self, module, opt, batches, loss_fn, epochs=self.epochs, options=options)
        self._clear_caches(keep_graph=True)
        return self


@dataclass(kw_only=True)
class IAutoRec(UAutoRec):
    """I-AutoRec (registry ``iautorec``): an autoencoder over item rating columns; the
    hyperparameters of U-AutoRec, with λ = 0.5 (chosen on validation, see ``UAutoRec.reg``).
    It cannot score new users (its weights are per training user)."""

    name: ClassVar[str] = "iautorec"
    side: ClassVar[str] = "item"
    reg: float = 0.5


@dataclass(kw_only=True)
class UIAutoRec(UAutoRec):
    """UI-AutoRec (registry ``uiautorec``): the mean of the outputs of a U-AutoRec and an
    I-AutoRec trained separately with these hyperparameters and seed (JCA §3.3), each
    early-stopped on its own validation score; ``reg`` is U-AutoRec's λ and ``item_reg``
    I-AutoRec's (each model's own choice, as the paper tuned every model separately). New users
    get the U-AutoRec part alone. ``history_`` holds both fits' epochs, each record marked
    with its ``component``."""

    name: ClassVar[str] = "uiautorec"
    side: ClassVar[str] = "both"
    item_reg: float = 0.5

    def build(self, n_users: int, n_items: int) -> None:
        # JCA's two components without f: scoring is then JCA's mean of the two.
        self.module_ = UserItemAutoencoders(n_users, n_items, self.hidden, False, self.seed)
        self._clear_caches()

    def _components(self) -> tuple[Autoencoder | None, Autoencoder | None]:
        return self.module_.user, self.module_.item

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        params = self.get_params()
        item_reg = params.pop("item_reg")
        if not (is_finite_number(item_reg) and item_reg >= 0):
            raise ValueError(f"item_reg must be a finite number >= 0, got {item_reg!r}")
        history = []
        parts = {}
        for cls in (UAutoRec, IAutoRec):
            if cls is IAutoRec:
                params["reg"] = item_reg
            # The two fits' checkpoints apart; both report their epochs.
            part = cls(**params).fit(train, options.part(cls.name, report=True))
            history += [{"component": cls.name, **rec} for rec in part.history_]
            parts[cls.side] = part.module_
        self._store(train)
        self.build(train.n_users, train.n_items)
        self.module_.user.load_state_dict(parts["user"].state_dict())
        self.module_.item.load_state_dict(parts["item"].state_dict())
        self.module_.to(options.torch_device())
        self.history_ = history
        return self
