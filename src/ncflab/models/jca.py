"""JCA: Joint Collaborative Autoencoder, and the scoring it shares with the AutoRec baselines.

Zhu, Wang, Caverlee, "Improving Top-K Recommendation via Joint Collaborative Autoencoders",
WWW 2019, §4. A user component (an autoencoder over rating rows R_u) and an item component (over
rating columns (Rᵀ)_i, with a learnable item normalisation factor f in its hidden layer) each
complete the 0/1 matrix R; the prediction is their mean (Eq. 1–2). Training minimises the
pairwise hinge loss with margin d and L2 weight λ (Eq. 3) over mini-batch blocks of n users ×
m items (§4.3): per step the user component sees the n full rows, the item component the m full
columns, and the loss covers the positives of the n × m common block Ĉ, each with one negative
drawn from the same block, re-drawn every epoch.

Network, blocks and negatives: ``jca_net``. U-/I-/UI-AutoRec: ``autorec``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.models.jca_net import (
    LOSSES,
    Autoencoder,
    JCAModule,
    RatingGraph,
    binary_csr,
    block_pairs,
    decode_rows,
    epoch_blocks,
    graph_of,
    pair_loss,
)
from ncflab.training.loop import train_loop
from ncflab.training.options import FitOptions

__all__ = ["JCA", "PAPER_REG", "AutoencoderRecommender", "check_common", "is_finite_number"]

# λ the paper chose on ML-1M validation for each objective (§5.2): JCA, JCA-MSE, JCA-BPR.
PAPER_REG = {"hinge": 0.001, "mse": 0.05, "bpr": 0.01}


@dataclass(kw_only=True)
class AutoencoderRecommender(Recommender):
    """What JCA and the AutoRec models share: the stored 0/1 training matrix R (``indptr_``,
    ``indices_``), the bag inputs built from it, and scoring as the mean of whichever components
    the model has (``_components``): the user component's rows, the item component's columns."""

    def _components(self) -> tuple[Autoencoder | None, Autoencoder | None]:
        """(user component or None, item component or None) of the fitted model."""
        raise NotImplementedError

    def _store(self, train: Interactions) -> sp.csr_matrix:
        """Keep R (n_users, n_items), 0/1, of ``train`` (scoring needs it); returns its CSR."""
        csr = binary_csr(*_csr_arrays(train.csr("binary")), train.n_items)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.indptr_, self.indices_ = csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
        self._clear_caches()
        return csr

    def _setup(
        self, train: Interactions, options: FitOptions
    ) -> tuple[sp.csr_matrix, torch.nn.Module, RatingGraph, torch.optim.Optimizer]:
        """The start of a fit that JCA, CDAE and Mult-VAE/DAE share: check the hyperparameters,
        store R, build the module on ``options``' device; returns R's CSR, the module, its
        bag graph and the Adam optimizer (``_optimizer``) at ``self.lr``."""
        self._check_params()  # type: ignore[attr-defined]
        device = options.torch_device()
        csr = self._store(train)
        self.build(train.n_users, train.n_items)
        module = self.module_.to(device)
        return csr, module, self._graph(device), self._optimizer(module, self.lr)  # type: ignore[attr-defined]

    def _optimizer(self, module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        """Adam (§5.2), whose every step makes the cached item hidden layer stale."""
        opt = torch.optim.Adam(module.parameters(), lr=lr, fused=True)
        opt.register_step_post_hook(lambda *_: self._clear_caches(keep_graph=True))
        return opt

    # ------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU predictions r̂_u (Eq. 1–2: the mean of the components)."""
        users = self.check_users(users)
        user_ae, item_ae = self._components()
        graph = self._graph(self._device())
        u = torch.from_numpy(users).to(graph.device)
        parts = []
        if user_ae is not None:
            parts.append(user_ae.eval().decode(user_ae.hidden(graph.user_bag(u), u)))
        if item_ae is not None:
            parts.append(decode_rows(item_ae.eval(), self._item_hidden(), u))
        return (parts[0] if len(parts) == 1 else 0.5 * (parts[0] + parts[1])).float().cpu()

    @torch.no_grad()
    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU scores for users not seen in training, from their rows
        ``rows`` (B, n_items), scipy sparse, any value > 0 = positive; no retraining.

        Only the user component can score them: its input is a rating row and its weights are
        per item. The item component's weights are per *training user* (V^I has a row and W^I
        a column for each of the N users, Eq. 2), so a new user has no input weight in it and
        no output; recomputing item columns with the row appended would still have no weight
        for the new entry. Scores are therefore the user component's output h_user(R_new)
        (for JCA, not ½ of the two components as ``score`` gives for training users).
        """
        self.check_fitted()
        user_ae, _ = self._components()
        if user_ae is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no user component: its weights are per training "
                "user, so it cannot score a new user without retraining"
            )
        csr = self.check_rows(rows)  # implicit feedback (§3.1): every positive is a 1
        graph = self._graph(self._device())
        bag = RatingGraph.bag_from_csr(csr, graph.device)
        empty = torch.empty(0, dtype=torch.long, device=graph.device)  # no f on the user side
        return user_ae.eval().decode(user_ae.hidden(bag, empty)).float().cpu()

    # ------------------------------------------------------------------- helpers
    def _item_hidden(self) -> torch.Tensor:
        """(n_items, H) hidden layer of the item component for all items, cached until the
        next optimizer step (validation between epochs scores many user batches)."""
        if self._hidden_cache is None:
            _, item_ae = self._components()
            graph = self._graph(self._device())
            items = torch.arange(self.n_items_, device=graph.device)
            self._hidden_cache = item_ae.eval().hidden(graph.item_bag(items), items)
        return self._hidden_cache

    def _graph(self, device: torch.device) -> RatingGraph:
        if self._graph_cache is None or self._graph_cache.device != device:
            csr = binary_csr(self.indptr_, self.indices_, self.n_items_)
            self._graph_cache = graph_of(csr, device)
        return self._graph_cache

    def _clear_caches(self, keep_graph: bool = False) -> None:
        self._hidden_cache = None
        if not keep_graph:
            self._graph_cache = None

    def load_arrays(self, arrays: dict[str, torch.Tensor]) -> None:
        super().load_arrays(arrays)
        self._clear_caches()


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


def check_common(model: Recommender, positive_ints: tuple[str, ...]) -> None:
    """Validate the hyperparameters JCA and AutoRec share (names the bad value)."""
    for key in positive_ints:
        value = getattr(model, key)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if model.loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {model.loss!r}")
    if not (is_finite_number(model.lr) and model.lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {model.lr!r}")
    if not (is_finite_number(model.margin) and model.margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0, got {model.margin!r}")


def is_finite_number(value: object) -> bool:
    """A real int or float (not bool, NaN or ±inf): hyperparameters from TOML or JSON."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _csr_arrays(csr: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    csr = sp.csr_matrix(csr)
    csr.sum_duplicates()
    return csr.indptr.astype(np.int64), csr.indices.astype(np.int64)
