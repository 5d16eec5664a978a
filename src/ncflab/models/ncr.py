"""NCR: Neural Collaborative Ranking — NBPR, DNCR and NeuPR.

Song, Yang, Xu, "Neural Collaborative Ranking", 2018 (arXiv:1808.04957), §4. A network maps a
triplet (u, i, j) to ŷ_uij ∈ [0, 1], how likely u prefers i to j (Eq. 5–6). Training follows the
classification strategy of §4.2: triplets (u, i, j) ∈ D_S (i observed, j not) are labelled 1,
their mirrors (u, j, i) ∈ D̄_S are labelled 0 (Eq. 12–13), and the binary cross-entropy of Eq. 15
is minimised with Adam over shuffled minibatches of both sets (§5.1: batch 256, embeddings
N(0, 0.01²); dense weights: see ``init``). A candidate set is ranked by win counts under the
predictive rule of §4.4 (see ``ncr_rank``).

Networks: ``ncr_net``; ranking rules, Algorithm 1 and the intransitivity measure: ``ncr_rank``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch
import torch.nn.functional as F

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.models.base import Recommender
from ncflab.models.ncr_net import DNCRNet, NBPRNet, NeuPRNet, PairNet
from ncflab.models.ncr_rank import algorithm1_topk, win_counts
from ncflab.models.pretrain import (
    check_pretrain_params,
    fit_part,
    load_part,
    part_epochs,
    part_refit_epochs,
)
from ncflab.training.loop import minibatches, train_loop
from ncflab.training.options import FitOptions

__all__ = ["DNCR", "NBPR", "NCRBase", "NeuPR", "ncr_instances"]

log = logging.getLogger(__name__)

# Floats of pair pre-activations (users × C × C × h) materialised at once while ranking.
PAIR_BUDGET = 1 << 22
INITS = ("normal", "glorot")
FULL_SCORES = ("wins", "proxy")


def ncr_instances(
    users: np.ndarray, pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of §4.2 training instances: each (u, i, j) of D_S with label 1 and its mirror
    (u, j, i) ∈ D̄_S with label 0 (Eq. 12–13), shuffled together, so |D_S| = |D̄_S|.

    users, pos: (N,) observed pairs; neg: (N, n_neg) unobserved items j for each. Returns
    users, first item, second item (int64) and labels y_uij (float32), each (2 · N · n_neg,).
    """
    n_neg = neg.shape[1]
    u, i, j = np.repeat(users, n_neg), np.repeat(pos, n_neg), neg.reshape(-1)
    labels = np.concatenate([np.ones(len(u), np.float32), np.zeros(len(u), np.float32)])
    order = rng.permutation(len(labels))
    both = (np.concatenate([u, u]), np.concatenate([i, j]), np.concatenate([j, i]), labels)
    return tuple(a[order] for a in both)  # type: ignore[return-value]


@dataclass(kw_only=True)
class NCRBase(Recommender):
    """What NBPR, DNCR and NeuPR share: sampling, the loss, the training loop and ranking.

    Attributes:
        factors: predictive factors, the width of the last hidden layer (§4.1; Table 1: 8).
        lr: Adam learning rate, from the paper's grid {1e-3, 5e-4, 1e-4} (§5.1): 1e-3, the best
            on ML-100K validation NDCG@10 (preset ``ncr``, seed 0) for all three models and the
            setting of the README's Table 1 runs; on ML-1M 5e-4 validates a little better, and
            the README gives the 3-seed test figures at 5e-4 beside them (docs/defaults.md).
        batch_size: training instances per minibatch, D_S and D̄_S together (§5.1: 256).
        n_neg: unobserved items j drawn per observed (u, i) each epoch; each gives one D_S
            instance and its D̄_S mirror (§5.1: 1; Fig. 4 varies it).
        epochs: maximum epochs; early stopping on validation picks the epoch.
        init_std: embeddings start ~ N(0, init_std²) (§5.1: 0.01).
        init: dense (tower and output) weights: "glorot", Glorot-uniform, the Keras default of
            the NCF code the paper builds on (which draws only embeddings from N(0, 0.01²)),
            or "normal", ~ N(0, init_std²) as §5.1 says of all weights; biases start at 0.
            With "normal" the 0.01-scale tanh tower passes almost no signal and DNCR stalls
            at a non-personalised ranking (docs/defaults.md).
        full_scores: how ``score`` ranks all items: "wins" (exact win counts) or "proxy".
    """

    name: ClassVar[str] = "ncr"
    factors: int = 8
    lr: float = 1e-3
    batch_size: int = 256
    n_neg: int = 1
    epochs: int = 30
    init_std: float = 0.01
    init: str = "glorot"
    full_scores: str = "wins"

    def _net(self, n_users: int, n_items: int) -> PairNet:
        raise NotImplementedError

    def build(self, n_users: int, n_items: int) -> None:
        self.module_ = self._net(n_users, n_items)

    # ------------------------------------------------------------------ learning
    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        self._check_params()
        device = options.torch_device()
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.build_to_train(train.n_users, train.n_items, device)
        warm = self._warm_start(train, options)
        self.module_.to(device)
        sampler = NegativeSampler.from_csr(train.csr("binary"))
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr, fused=True)

        def batches(rng: np.random.Generator):
            arrays = ncr_instances(*bpr_triplets(sampler, rng, self.n_neg), rng)
            yield from minibatches(arrays, self.batch_size, device)

        def loss_fn(users, first, second, labels) -> torch.Tensor:
            # Eq. 15 as a mean; from the logit, so log ŷ and log(1 − ŷ) stay finite.
            logits = self.module_.logits(users, first, second)
            return F.binary_cross_entropy_with_logits(logits, labels)

        # A warm start is itself a candidate for early stopping's choice (epoch 0).
        train_loop(self, self.module_, opt, batches, loss_fn, epochs=self.epochs, options=options,
                   prefetch=True, validate_start=warm)  # fmt: skip
        return self

    def _warm_start(self, train: Interactions, options: FitOptions) -> bool:
        """Initialise the fresh network from other fits (NeuPR's pre-training); returns whether
        it did. Default: no."""
        return False

    # ------------------------------------------------------------------- ranking
    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU win counts: for each candidate, the number of other candidates it
        beats under the rule ŷ_ucc' > ŷ_uc'c (§4.4), from all C × C pairs at once per user.

        The scores are relative to the candidate set (a count out of C − 1), not a gather of
        ``score``. A pairwise tie is a win for neither item, and equal win counts count against
        the held-out item in evaluation, so nothing is won by ties."""
        return self._over_pairs(users, items, win_counts)

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU scores of every item, by ``full_scores``: "wins", the win
        counts with all items as the candidate set (``score_items`` over all items, exactly;
        O(n_items²) pairs per user, about 2 s per ML-1M user on one CPU thread), or "proxy",
        each item's preference over the *average item* (O(n_items)). Full ranking is not the
        paper's protocol (§5.1 ranks 101 candidates); "proxy" is there for large catalogues."""
        users = self.check_users(users)
        if self.full_scores == "proxy":
            return self._proxy(users)
        everything = np.tile(np.arange(self.n_items_, dtype=np.int64), (len(users), 1))
        return self._over_pairs(users, everything, win_counts)

    def pair_logits(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C, C) float32 CPU logits x̂(u, c, c') of every ordered pair of the candidates
        ``items`` (B, C) of users (B,); the diagonal holds x̂(u, c, c)."""
        return self._over_pairs(users, items, lambda pairs: pairs)

    @torch.no_grad()
    def _over_pairs(
        self, users: np.ndarray, items: np.ndarray, reduce: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``reduce`` of the (b, C, C) pair logits of chunks of b users, concatenated on the CPU.
        The pre-activations of rows × C pairs (× width h) are kept near PAIR_BUDGET floats:
        several users at a time for small C, blocks of rows of one user for large C."""
        users, items = self.check_candidates(users, items)
        m, dev = self.module_.eval(), self._device()
        c = items.shape[1]
        user_step = max(1, PAIR_BUDGET // max(1, c * c * m.width))
        row_step = max(1, min(c, PAIR_BUDGET // max(1, c * m.width)))
        out = [reduce(torch.zeros(0, c, c))]
        for s in range(0, len(users), user_step):
            u = torch.from_numpy(users[s : s + user_step]).to(dev)
            first, second = m.sides(u, torch.from_numpy(items[s : s + user_step]).to(dev))
            rows = [m.pair_head(first[:, r : r + row_step], second) for r in range(0, c, row_step)]
            out.append(reduce(torch.cat(rows, 1).float()).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def _proxy(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) x̂(u, i, v̄) − x̂(u, v̄, i), v̄ the average item: the mean of the item
        sides, which are linear in V, so it is the side of the mean embedding. For NBPR this is
        (w₁ + w₂)ᵀ(U_u ⊙ (V_i − v̄)), whose order is exactly the rule's (Eq. 19–22); for DNCR
        and NeuPR a heuristic that ranks worse than win counts."""
        m, dev = self.module_.eval(), self._device()
        all_items = torch.arange(self.n_items_, device=dev)[None, :]
        step = max(1, PAIR_BUDGET // max(1, self.n_items_ * m.width))
        out = [torch.zeros(0, self.n_items_)]
        for s in range(0, len(users), step):
            first, second = m.sides(torch.from_numpy(users[s : s + step]).to(dev), all_items)
            f_bar, s_bar = first.mean(1, keepdim=True), second.mean(1, keepdim=True)
            out.append((m.head(first - s_bar) - m.head(f_bar - second)).float().cpu())
        return torch.cat(out)

    def topk_algorithm1(self, users: np.ndarray, items: np.ndarray, k: int = 10) -> np.ndarray:
        """(B, min(k, C)) item indices that NCR's Algorithm 1 recommends from each user's
        candidates ``items`` (B, C), scanned in the given column order."""
        positions = algorithm1_topk(self.pair_logits(users, items), k).numpy()
        return np.take_along_axis(np.asarray(items, np.int64), positions, axis=1)

    # ------------------------------------------------------------------- helpers
    def _check_params(self) -> None:
        for key in ("factors", "n_neg"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        # 0 epochs: a pre-trained model is its fused start (what a refit keeps when
        # validation chose epoch 0).
        low = 0 if getattr(self, "pretrain", False) else 1
        if int(self.epochs) < low:
            raise ValueError(f"epochs must be an integer >= {low}, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 instances, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0 and self.init_std > 0):
            raise ValueError(f"need lr > 0 and init_std > 0, got {self.lr}, {self.init_std}")
        for key, allowed in (("init", INITS), ("full_scores", FULL_SCORES)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")

    def _dense_std(self) -> float:
        """Std of dense weights for the networks; 0 asks them for Glorot-uniform."""
        return self.init_std if self.init == "normal" else 0.0


@dataclass(kw_only=True)
class NBPR(NCRBase):
    """NBPR (§4.3.1, Eq. 16–17; registry ``nbpr``): embeddings of size ``factors`` and
    ŷ_uij = σ(wᵀ[U_u ⊙ V_i; −U_u ⊙ V_j]) with w learned. Its predictive rule is transitive."""

    name: ClassVar[str] = "nbpr"

    def _net(self, n_users: int, n_items: int) -> PairNet:
        return NBPRNet(n_users, n_items, self.factors, self.init_std, self._dense_std(), self.seed)


@dataclass(kw_only=True)
class _Tower(NCRBase):
    """The DNCR network's hyperparameters (shared by DNCR and NeuPR's DNCR part).

    Attributes:
        layers: hidden layers N of Eq. 23, counting the concatenation x₁ (§5.1: 4; Fig. 6: 1–6).
            Layers 2..N halve down to ``factors``: N = 4, factors 8 → 96 → 32 → 16 → 8.
        embedding_dim: size of U_u and V_i; 0 means 4 · factors (§5.1: 32 for factors 8). It
            does not change with ``layers``, so a depth sweep changes depth only.
    """

    layers: int = 4
    embedding_dim: int = 0

    def _dncr(self, n_users: int, n_items: int, seed: int) -> DNCRNet:
        dim = self.embedding_dim or 4 * self.factors
        return DNCRNet(
            n_users, n_items, dim, self.factors, self.layers, self.init_std, self._dense_std(), seed
        )

    def _check_params(self) -> None:
        super()._check_params()
        if self.layers < 1 or self.embedding_dim < 0:
            raise ValueError(
                f"need layers >= 1 and embedding_dim >= 0, got {self.layers}, {self.embedding_dim}"
            )


@dataclass(kw_only=True)
class DNCR(_Tower):
    """DNCR (§4.5, Eq. 23; registry ``dncr``): x₁ = [U_u; V_i; −V_j] through a tanh tower,
    sigmoid output."""

    name: ClassVar[str] = "dncr"

    def _net(self, n_users: int, n_items: int) -> PairNet:
        return self._dncr(n_users, n_items, self.seed)


@dataclass(kw_only=True)
class NeuPR(_Tower):
    """NeuPR (§4.6–4.7, Eq. 25–26; registry ``neupr``): an NBPR part (embeddings of size
    ``factors``) and a DNCR part (``embedding_dim``, ``layers``) with separate embeddings and
    concatenated last layers.

    Attributes:
        pretrain: first fit an NBPR and a DNCR (same hyperparameters, train split and
            validation/early stopping as this fit), load their weights into the two parts and
            fuse the output weights (§4.7; Table 3 compares with and without). The fused
            start is validated as epoch 0, so early stopping may keep it (``validate_start``).
        pretrain_alpha: α of Eq. 26, w ← [α w_N; (1 − α) w_D] (Table 3: 0.5).
        pretrained_nbpr, pretrained_dncr: with ``pretrain``, start from an NBPR / DNCR saved
            earlier (a model directory written by ``save`` or an ``ncflab train`` run directory)
            instead of fitting it. It must have this model's users, items, ``factors`` (both)
            and tower (DNCR: ``layers``, embedding size), and should come from the same
            training split. Fitting here gives the NBPR a ``-m nbpr`` run with this seed gives
            and the DNCR of seed + 1 with this seed's validation candidates (the split seed),
            so a saved ``-m dncr --seed S+1`` run is that DNCR up to its validation candidates.
        pretrain_epochs: empty (default), or [NBPR, DNCR] epoch counts: 0 fits that part as
            above, with validation and early stopping; n > 0 fits it for exactly n epochs
            without validation. ``train.refit`` sets it to the parts' best epochs, so a refit on
            train ∪ valid pre-trains each part as long as this fit did.
    """

    name: ClassVar[str] = "neupr"
    pretrain: bool = False
    pretrain_alpha: float = 0.5
    pretrained_nbpr: str = ""
    pretrained_dncr: str = ""
    pretrain_epochs: list[int] = field(default_factory=list)

    def _net(self, n_users: int, n_items: int) -> PairNet:
        # Different seeds: the parts must not start from the same stream of normals.
        nbpr = NBPRNet(n_users, n_items, self.factors, self.init_std, self._dense_std(), self.seed)
        return NeuPRNet(nbpr, self._dncr(n_users, n_items, self.seed + 1))

    def _warm_start(self, train: Interactions, options: FitOptions) -> bool:
        if not self.pretrain:
            return False
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(NCRBase)}
        # A part is never built with 0 epochs (valid only for the fused composite, a warm
        # start); a refit gives each fitted part its own count through ``fit_part``.
        shared["epochs"] = max(1, shared["epochs"])
        epochs = self.pretrain_epochs or [0, 0]
        nbpr = self._saved(self.pretrained_nbpr, NBPR, train)
        if nbpr is None:
            nbpr = fit_part(NBPR(**shared), train, options, "pretrain-nbpr", epochs[0])
        dncr = self._saved(self.pretrained_dncr, DNCR, train)
        if dncr is None:
            tower = {"layers": self.layers, "embedding_dim": self.embedding_dim}
            dncr = DNCR(**{**shared, **tower, "seed": self.seed + 1})
            dncr = fit_part(dncr, train, options, "pretrain-dncr", epochs[1])
        self.pretrain_epochs_ = [len(nbpr.history_), len(dncr.history_)]
        self.pretrain_best_ = [part_epochs(m) for m in (nbpr, dncr)]
        log.info("NeuPR pre-trained: NBPR and DNCR weights of epochs %s", self.pretrain_best_)
        self.module_.fuse(nbpr.module_.cpu(), dncr.module_.cpu(), self.pretrain_alpha)
        return True

    def _saved(self, path: str, cls: type[NCRBase], train: Interactions) -> NCRBase | None:
        """The saved ``cls`` model at ``path`` (None for ""), checked against this NeuPR."""
        if not path:
            return None

        def shape(m: NCRBase, users: int, items: int) -> dict:
            out = {"users": users, "items": items, "factors": m.factors}
            if cls is DNCR:  # this NeuPR and a saved DNCR both carry the tower's settings
                tower: _Tower = m  # type: ignore[assignment]
                dim = tower.embedding_dim or 4 * tower.factors
                out |= {"layers": tower.layers, "embedding_dim": dim}
            return out

        want = shape(self, train.n_users, train.n_items)
        have = lambda m: shape(m, m.n_users_, m.n_items_)  # noqa: E731
        model = load_part(path, cls, f"pretrained_{cls.name}", want, have)
        log.info("NeuPR: %s loaded from %s", cls.name.upper(), path)
        return model

    def _check_params(self) -> None:
        super()._check_params()
        if not 0.0 <= self.pretrain_alpha <= 1.0:
            raise ValueError(f"pretrain_alpha must be in [0, 1], got {self.pretrain_alpha}")
        check_pretrain_params(self.pretrain, self._part_paths(), self.pretrain_epochs)

    def _part_paths(self) -> dict[str, str]:
        return {"pretrained_nbpr": self.pretrained_nbpr, "pretrained_dncr": self.pretrained_dncr}

    def refit_params(self) -> dict[str, Any]:
        return part_refit_epochs(self, self._part_paths())
