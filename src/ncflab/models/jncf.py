"""J-NCF: Joint Neural Collaborative Filtering.

Chen, Ren, Lin, Ren, de Rijke, Xin, "Joint Neural Collaborative Filtering for Recommender
Systems", ACM TOIS 2019, §3. A DF network maps the user's rating vector v_u (length n_items) and
the item's rating vector v_i (length n_users) through two ReLU MLPs to z_u and z_i (Eq. 3–4); a
DI network fuses them, a_ui = [z_u; z_i] (J-NCFc) or z_u ⊙ z_i (J-NCFm) (Eq. 5), applies a ReLU
MLP (Eq. 6) and predicts ŷ_ui = σ(hᵀ z_ui) (Eq. 7). Training follows Algorithm 1: every training
positive once per epoch with sampled negatives, the hybrid loss α·pair + (1 − α)·log (Eq. 15–16).

Network (embedding-bag DF layers, split first DI layer for fast ranking): ``jncf_net``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.models.base import Recommender
from ncflab.models.jncf_net import JNCFModule, table6_layers
from ncflab.models.rating_input import RatingInput, rating_matrix
from ncflab.models.sparse_input import RatingGraph
from ncflab.training.loop import minibatches, train_loop
from ncflab.training.losses import PAIRWISE, hybrid
from ncflab.training.options import FitOptions

__all__ = ["JNCF", "JNCFModule", "table6_layers"]

log = logging.getLogger(__name__)

FUSIONS = ("concat", "multiply")
LOSSES = ("hybrid", "point", "pair")
FEEDBACK = ("explicit", "implicit")
INITS = ("kaiming", "default", "normal")
# Scores materialised at once while ranking: rows x items x DI width (floats).
SCORE_BUDGET = 1 << 24


@dataclass(kw_only=True)
class JNCF(RatingInput, Recommender):
    """J-NCF (registry name ``jncf``); defaults give J-NCFc with the hybrid TOP1 loss on
    explicit feedback (paper §4.2.2), except where a validation probe on ML-100K chose
    otherwise (``lr``, ``n_neg``) or our validation did (``init``); see below.

    Attributes:
        df_layers: DF widths of Net_user and Net_item (Eq. 4); the last is dim z_u = dim z_i.
        di_layers: DI widths (Eq. 6); then h maps the last to the score (Eq. 7).
        fusion: "concat" (J-NCFc) or "multiply" (J-NCFm), Eq. 5.
        loss: "hybrid" (Eq. 16), "point" (log loss only, Eq. 10) or "pair" (``pair`` only).
        pair: pair-wise part: "top1" (Eq. 11), "top1-max" (12), "bpr-max" (13), "xe" (14), "bpr".
        alpha: α of Eq. 15; the paper's Fig. 3 peaks at 0.7–0.9, the probe found 0.9 unstable.
        feedback: "explicit": ratings in v_u/v_i (Eq. 3) and Y_ui = r_ui / max(R_u) in the log
            loss (Eq. 16); "implicit": 1/0 in both (J-NCF_im). Data without ratings is implicit.
        n_neg: negatives per positive (Algorithm 1 line 7; the paper does not say how many; the
            probe found 4 better than 1).
        lr: Adam learning rate (paper 1e-4, which the probe found far too slow; 1e-3 converges).
        batch_size: positives per minibatch (paper: 256), each with its ``n_neg`` negatives.
        epochs: maximum epochs; early stopping on validation picks the epoch.
        init: "kaiming" (He et al. 2015: weights U(±√(6/fan_in)), biases 0, variance-preserving
            through ReLU), "default" (PyTorch's Linear init U(±1/√fan_in), which shrinks the
            signal 3x per layer, so the 8-unit last DI layer sees only its biases and often
            dies: logits stuck at 0) or "normal" (the paper's N(0, 0.01) for every parameter,
            which starts at near-constant scores and stalls). "kaiming" by ML-100K validation
            NDCG@10 (preset jncf, seed 0; docs/defaults.md).
        mask_target: remove r_ui from v_u and from v_i when scoring a training positive (u, i),
            so the network cannot read the answer from its input. The paper does not (False).
        weight_decay: Adam's L2 weight decay (the paper's Ω(θ) has no stated weight; 0).
    """

    name: ClassVar[str] = "jncf"
    df_layers: list[int] = field(default_factory=lambda: [256, 128, 64])
    di_layers: list[int] = field(default_factory=lambda: [128, 8])
    fusion: str = "concat"
    loss: str = "hybrid"
    pair: str = "top1"
    alpha: float = 0.7
    feedback: str = "explicit"
    n_neg: int = 4
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 30
    init: str = "kaiming"
    mask_target: bool = False
    weight_decay: float = 0.0

    # ------------------------------------------------------------------ learning
    def build(self, n_users: int, n_items: int) -> None:
        self.module_ = JNCFModule(
            n_users, n_items, list(self.df_layers), list(self.di_layers), self.fusion,
            self.init, self.seed,
        )  # fmt: skip
        self._clear_caches()

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        self._check_params()
        device = options.torch_device()
        ratings = self._input_matrix(train)  # also stored: a loaded model needs its inputs
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.indptr_, self.indices_ = ratings.indptr.astype(np.int64), ratings.indices
        self.data_ = ratings.data
        self.build_to_train(train.n_users, train.n_items, device)
        self.module_.to(device)
        graph = self._graph(device)
        sampler = NegativeSampler.from_csr(ratings)
        # The fused kernel: the unfused Adam step cost 2/3 of a CPU step on ML-100K.
        opt = torch.optim.Adam(
            self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True
        )
        # Cached item representations go stale with every step (validation scores between epochs).
        opt.register_step_post_hook(lambda *_: self._clear_caches(keep_graph=True))
        alpha = {"hybrid": self.alpha, "point": 0.0, "pair": 1.0}[self.loss]

        keys = sampler.rows * self.n_items_ + sampler.indices  # sorted: CSR order
        user_max = _row_max(ratings)

        def batches(rng: np.random.Generator):
            users, pos, neg = bpr_triplets(sampler, rng, self.n_neg)
            # y_ui of each positive (Eq. 3), and Y_ui = y_ui / max(R_u) (Eq. 16).
            value = self.data_[np.searchsorted(keys, users * self.n_items_ + pos)]
            target = value / user_max[users]
            yield from minibatches((users, pos, neg, value, target), self.batch_size, device)

        def loss_fn(users, pos, neg, value, target) -> torch.Tensor:
            items = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + n_neg)
            mask = value if self.mask_target else None
            logits = self.module_.train_logits(graph, users, items, mask)
            # Logits in, so the log loss is computed stably; the pair-wise part sees σ (Eq. 16).
            return hybrid(
                logits[:, 0], logits[:, 1:], target, pair=self.pair, alpha=alpha, logits=True
            )

        train_loop(self, self.module_, opt, batches, loss_fn, epochs=self.epochs, options=options,
                   prefetch=True)  # fmt: skip
        self._clear_caches(keep_graph=True)  # the loop may have restored the best epoch
        return self

    # ------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU logits hᵀz_ui (Eq. 7 before σ, same order, no ties from
        σ saturating) of every item for user indices ``users`` (B,); inputs v_u are the
        training rows."""
        users = self.check_users(users)
        graph = self._graph(self._device())
        zu = self.module_.embed_users(*graph.user_bag(torch.from_numpy(users).to(graph.device)))
        return self._rank(zu, None)

    @torch.no_grad()
    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU logits of candidate ``items`` (B, C) for ``users`` (B,)."""
        users, items = self.check_candidates(users, items)
        graph = self._graph(self._device())
        zu = self.module_.embed_users(*graph.user_bag(torch.from_numpy(users).to(graph.device)))
        return self._rank(zu, torch.from_numpy(items).to(graph.device))

    @torch.no_grad()
    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU logits for users not seen in training, from their rating
        rows ``rows`` (B, n_items), scipy sparse: rating, or any positive value for implicit
        feedback; 0 = unknown (Eq. 3). No retraining: z_i is built from the training matrix,
        which a new user does not change."""
        csr = self.check_rows(rows, binary=self.feedback == "implicit" or not self._explicit_)
        graph = self._graph(self._device())
        bag = RatingGraph.bag_from_csr(csr, graph.device)
        return self._rank(self.module_.embed_users(*bag), None)

    def _rank(self, zu: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Logits for user representations ``zu`` (B, d) against all items (items=None) or the
        candidates ``items`` (B, C), in row chunks of about SCORE_BUDGET floats."""
        m = self.module_.eval()
        q = self._item_side()  # (n_items, w): the item half of the first DI layer
        p = m.project_user(zu)  # (B, w)
        n_cols = self.n_items_ if items is None else items.shape[1]
        step = max(1, SCORE_BUDGET // max(1, n_cols * m.di_width))
        out = []
        for s in range(0, len(p), step):
            qs = q[None] if items is None else q[items[s : s + step]]
            out.append(m.head(m.combine(p[s : s + step, None], qs)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, n_cols)

    def _finish_items(self, q: torch.Tensor) -> torch.Tensor:
        """Ranking's item side is z_i through the item half of the first DI layer."""
        return self.module_.project_item(q)

    # ------------------------------------------------------------------- helpers
    def _input_matrix(self, train: Interactions) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR of Eq. 3's y_ui: ratings (explicit) or 1."""
        m, self._explicit_ = rating_matrix(train, self.feedback, "J-NCF")
        return m

    def _check_params(self) -> None:
        for key, allowed in (
            ("fusion", FUSIONS), ("loss", LOSSES), ("feedback", FEEDBACK), ("init", INITS),
            ("pair", tuple(PAIRWISE)),
        ):  # fmt: skip
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for key in ("n_neg", "batch_size", "epochs"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("df_layers", "di_layers"):
            widths = getattr(self, key)
            if not widths or any(int(w) < 1 for w in widths):
                raise ValueError(f"{key} must be a non-empty list of positive widths, got {widths}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not (self.lr > 0 and self.weight_decay >= 0 and math.isfinite(self.lr)):
            raise ValueError(
                f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )


def _row_max(csr: sp.csr_matrix) -> np.ndarray:
    """(n_rows,) largest stored value of each row (0 for empty rows): max(R_u) of Eq. 16."""
    out = np.zeros(csr.shape[0], np.float32)
    full = np.diff(csr.indptr) > 0
    if full.any():
        out[full] = np.maximum.reduceat(csr.data, csr.indptr[:-1][full])
    return out
