"""NCF: GMF, MLP and NeuMF (registry ``gmf``, ``mlp``, ``neumf``).

He, Liao, Zhang, Nie, Hu, Chua, "Neural Collaborative Filtering", WWW 2017. A network scores
ŷ_ui = σ(hᵀφ(u, i) + b) (GMF Eq. 8–9, MLP Eq. 10, NeuMF Eq. 12; networks in ``ncf_net``) and is
trained point-wise with the log loss of Eq. 7 on every observed (u, i) with label 1 and
``n_neg`` items the user has not interacted with, drawn uniformly afresh every epoch, label 0
(§3.1.1; §4.1: 4 negatives per positive, mini-batch Adam, parameters ~ N(0, 0.01²)). NeuMF with
pre-training (§3.4.1) first trains a GMF and an MLP with Adam, initialises NeuMF from them with
the output weight h ← [α h^GMF; (1 − α) h^MLP] (Eq. 13, α = 0.5) and then trains it; the paper
uses vanilla SGD there (Adam's moment estimates are not carried over), the authors' published
runs Adam, which is our default by validation (see ``NeuMF.finetune_optimizer``).

Predictive factors (§4.1) are the width of the last hidden layer: the GMF embedding size, the
MLP's last layer, and for NeuMF both; see ``ncf_net.mlp_layers`` for the tower rule.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, pointwise_samples
from ncflab.models.base import Recommender
from ncflab.models.ncf_net import INITS, GMFBody, MLPBody, NCFNet, fuse, mlp_layers
from ncflab.models.pretrain import (
    check_pretrain_params,
    fit_part,
    load_part,
    part_epochs,
    part_refit_epochs,
)
from ncflab.training.lazy_adam import row_adam, sparse_rows
from ncflab.training.loop import minibatches, train_loop
from ncflab.training.losses import log_loss
from ncflab.training.options import FitOptions

__all__ = ["GMF", "MLP", "NCFBase", "NeuMF"]

log = logging.getLogger(__name__)

# Floats of (users × items × width) features materialised at once while ranking.
SCORE_BUDGET = 1 << 22
OPTIMIZERS = ("adam", "sgd")
ADAMS = ("adam", "lazy_adam")


@dataclass(kw_only=True)
class NCFBase(Recommender):
    """What GMF, MLP and NeuMF share: sampling, the log loss, the training loop and scoring.

    Attributes:
        factors: predictive factors, the width of the last hidden layer (§4.1: 8, 16, 32, 64).
        n_neg: negatives per observed pair, re-drawn uniformly every epoch (§4.1: 4; Fig. 7).
        lr: Adam learning rate (the authors' runs: 0.001, from §4.1's grid).
        batch_size: point-wise instances per minibatch: 1024, from §4.1's grid [128, 256, 512,
            1024] (the authors' runs: 256). It tied with 256 on ML-1M validation NDCG@10 (NeuMF,
            8 factors, seed 0) with ~4x fewer optimizer steps an epoch, so much less time on a
            CPU, where a step's cost is mostly per-step overhead (docs/defaults.md).
        epochs: maximum epochs; early stopping on validation picks the epoch (Fig. 6: the best
            epochs are within the first 10–20; the authors' runs: 20 at batch 256). 30: at
            batch 1024 validation had not yet declined by epoch 20 (docs/defaults.md).
        init_std: embeddings start ~ N(0, init_std²) (§4.1: 0.01).
        init: dense layers: "glorot" (Glorot-uniform tower, LeCun-uniform output, the Keras
            initialisers of the authors' code, which draws only embeddings from N(0, 0.01²)),
            or "normal", N(0, init_std²) as §4.1 says of every parameter. Biases start at 0.
        optimizer: "adam" (§4.1's mini-batch Adam) or "lazy_adam", which moves only the
            embedding rows a minibatch looks up and keeps the other rows' moments as they are
            (the tower and h get Adam; ``training.lazy_adam``): another algorithm, faster at
            small batches, where Adam's dense update of every row is much of a CPU step
            (benchmarks/bench_step.py). "adam" takes the embeddings' gradients as sparse rows
            too, with the numbers of a dense Adam.
    """

    name: ClassVar[str] = "ncf"
    factors: int = 8
    n_neg: int = 4
    lr: float = 1e-3
    batch_size: int = 1024
    epochs: int = 30
    init_std: float = 0.01
    init: str = "glorot"
    optimizer: str = "adam"

    def _bodies(self, n_users: int, n_items: int) -> list[torch.nn.Module]:
        raise NotImplementedError

    def build(self, n_users: int, n_items: int) -> None:
        # The output layer has its own seed: a NeuMF starts from the same draws as the GMF and
        # MLP it could be pre-trained from.
        bodies = self._bodies(n_users, n_items)
        self.module_ = NCFNet(bodies, self.init, self.init_std, self.seed + 2)

    # ------------------------------------------------------------------ learning
    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        self._check_params()
        device = options.torch_device()
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.build_to_train(train.n_users, train.n_items, device)
        warm = self._warm_start(train, options)
        self.module_.to(device)
        opt = self._optimizer(warm)
        sampler = NegativeSampler.from_csr(train.csr("binary"))

        def batches(rng: np.random.Generator):
            arrays = pointwise_samples(sampler, rng, self.n_neg)
            yield from minibatches(arrays, self.batch_size, device)

        def loss_fn(users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor):
            # Eq. 7 as a mean, from the logits so that log ŷ and log(1 − ŷ) stay finite.
            return log_loss(self.module_.logits(users, items), labels, logits=True)

        # A warm start is itself a candidate for early stopping's choice (epoch 0).
        train_loop(self, self.module_, opt, batches, loss_fn, epochs=self.epochs, options=options,
                   prefetch=True, validate_start=warm)  # fmt: skip
        return self

    def _warm_start(self, train: Interactions, options: FitOptions) -> bool:
        """Initialise the fresh network from other fits (NeuMF's pre-training); returns whether
        it did. Default: no."""
        return False

    def _optimizer(self, warm: bool) -> torch.optim.Optimizer:
        return self._adam(self.lr)

    def _adam(self, lr: float) -> torch.optim.Optimizer:
        # Fused Adam with the embeddings' gradients as sparse rows: "adam" scatters them into a
        # dense gradient that stays zero (no zero-filled full gradient per step), "lazy_adam"
        # updates the touched rows only.
        return row_adam(self.module_, lr, lazy=self.optimizer == "lazy_adam")

    # ------------------------------------------------------------------- ranking
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU logits hᵀφ(u, i) + b of every item (σ is monotone)."""
        users = self.check_users(users)
        return self._chunked(users, None)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU logits of the candidate ``items`` (B, C), without scoring all."""
        users, items = self.check_candidates(users, items)
        return self._chunked(users, items)

    @torch.no_grad()
    def _chunked(self, users: np.ndarray, items: np.ndarray | None) -> torch.Tensor:
        """Logits of chunks of users against ``items`` (B, C), or all items when None, keeping
        the (chunk, C, width) features near SCORE_BUDGET floats."""
        m, dev = self.module_.eval(), self._device()
        c = self.n_items_ if items is None else items.shape[1]
        step = max(1, SCORE_BUDGET // max(1, c * self._width()))
        every = torch.arange(self.n_items_, device=dev)[None, :]
        out = [torch.zeros(0, c)]
        for s in range(0, len(users), step):
            u = torch.from_numpy(users[s : s + step]).to(dev)
            cand = every if items is None else torch.from_numpy(items[s : s + step]).to(dev)
            out.append(m.logits(u, cand).float().cpu())
        return torch.cat(out)

    def _width(self) -> int:
        """Features per (user, item) pair while ranking (for chunking)."""
        return self.factors

    # ------------------------------------------------------------------- helpers
    def _check_params(self) -> None:
        for key in ("factors", "n_neg", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        # 0 epochs: a pre-trained model is its fused start (what a refit keeps when
        # validation chose epoch 0).
        low = 0 if getattr(self, "pretrain", False) else 1
        if int(self.epochs) < low:
            raise ValueError(f"epochs must be an integer >= {low}, got {self.epochs}")
        if not (math.isfinite(self.lr) and self.lr > 0 and self.init_std > 0):
            raise ValueError(f"need lr > 0 and init_std > 0, got {self.lr}, {self.init_std}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.optimizer not in ADAMS:
            raise ValueError(f"optimizer must be one of {ADAMS}, got {self.optimizer!r}")


@dataclass(kw_only=True)
class GMF(NCFBase):
    """GMF (§3.2, Eq. 8–9; registry ``gmf``): ŷ = σ(hᵀ(p_u ⊙ q_i) + b), embeddings of size
    ``factors``. With h = 1 and no σ it is MF (Eq. 2); h and the log loss are what differ."""

    name: ClassVar[str] = "gmf"

    def _bodies(self, n_users: int, n_items: int) -> list[torch.nn.Module]:
        return [GMFBody(n_users, n_items, self.factors, self.init_std, self.seed)]


@dataclass(kw_only=True)
class _Tower(NCFBase):
    """The MLP part's hyperparameters (shared by MLP and NeuMF).

    Attributes:
        layers: the tower in the authors' code convention, [width of [p_u; q_i], hidden 1, …,
            hidden L] (embedding size layers[0] / 2, predictive factors layers[-1]); empty (the
            default) derives MLP-3 from ``factors`` as §4.1 does: factors 8 → [32, 32, 16, 8],
            embeddings 16 (``ncf_net.mlp_layers``). Given explicitly, it overrides ``factors``
            for the MLP part ([64] alone is MLP-0, the concatenation straight into h).
    """

    layers: list[int] = field(default_factory=list)

    def _layers(self) -> list[int]:
        return [int(w) for w in self.layers] or mlp_layers(self.factors)

    def _mlp_body(self, n_users: int, n_items: int) -> MLPBody:
        layers = self._layers()
        return MLPBody(n_users, n_items, layers, self.init, self.init_std, self.seed + 1)

    def _width(self) -> int:
        return self.factors + max(self._layers())

    def _check_params(self) -> None:
        super()._check_params()
        layers = list(self.layers)
        if layers and (min(layers) < 1 or layers[0] % 2):
            raise ValueError(
                f"layers must be positive widths with an even first entry (twice the embedding "
                f"size), got {layers}"
            )


@dataclass(kw_only=True)
class MLP(_Tower):
    """MLP (§3.3, Eq. 10; registry ``mlp``): [p_u; q_i] through a ReLU tower, then
    ŷ = σ(hᵀφ_L + b). MLP-3 by default (§4.1)."""

    name: ClassVar[str] = "mlp"

    def _bodies(self, n_users: int, n_items: int) -> list[torch.nn.Module]:
        return [self._mlp_body(n_users, n_items)]


@dataclass(kw_only=True)
class NeuMF(_Tower):
    """NeuMF (§3.4, Eq. 12; registry ``neumf``): a GMF part (embeddings of size ``factors``)
    and an MLP part (``layers``) with separate embeddings, φ = [φ^GMF; φ^MLP].

    Attributes:
        pretrain: first fit a GMF and an MLP (this model's hyperparameters, train split and
            validation/early stopping), load their weights and fuse the output layer (Eq. 13),
            then train with ``finetune_optimizer`` (§3.4.1). The fused model is validated
            before the first step (epoch 0, ``train_loop``'s ``validate_start``), so early
            stopping can keep it when fine-tuning only makes it worse. Off by default: on
            ML-1M validation it hurts at the default 8 factors and helps from 16 up
            (docs/defaults.md); the paper's Table 2 has the same pattern (8 factors: HR@10
            .688 without, .684 with).
        alpha: α of Eq. 13, h ← [α h^GMF; (1 − α) h^MLP] (§4.1: 0.5).
        finetune_optimizer: "adam" (what the authors' published runs use, lr 0.001; the
            ``optimizer`` kind) or "sgd" (§3.4.1: vanilla SGD after pre-training). Adam by
            validation: SGD at lr 1e-3 on a minibatch-mean loss hardly moves the fused model,
            so it stays near the α-mixture of the two pre-trained models (docs/defaults.md).
        finetune_lr: learning rate after pre-training (the paper gives none; the authors' runs
            0.001). 1e-4 was no better on ML-1M validation (docs/defaults.md).
        pretrained_gmf, pretrained_mlp: with ``pretrain``, start from a GMF / MLP saved
            earlier (a model directory written by ``save``, or an ``ncflab train`` run directory
            holding ``model/``) instead of fitting it, as the authors' code loads its
            ``--mf_pretrain`` / ``--mlp_pretrain`` files. Empty (default): fit it. The saved
            model must have this model's users, items, ``factors`` (GMF) and tower (MLP), and
            should come from the same training split; ``pretrained`` fits them with this
            model's settings, so a ``gmf``/``mlp`` run with the same settings and seed is the
            same model (tests/test_ncf.py).
        pretrain_epochs: empty (default), or [GMF, MLP] epoch counts: 0 fits that part as
            above, with validation and early stopping; n > 0 fits it for exactly n epochs
            without validation. ``train.refit`` sets it to the best epochs validation chose
            for the parts, so a refit on train ∪ valid pre-trains each part as long as this
            fit did, not for NeuMF's own epoch count.
    """

    name: ClassVar[str] = "neumf"
    pretrain: bool = False
    alpha: float = 0.5
    finetune_optimizer: str = "adam"
    finetune_lr: float = 1e-3
    pretrained_gmf: str = ""
    pretrained_mlp: str = ""
    pretrain_epochs: list[int] = field(default_factory=list)

    def _bodies(self, n_users: int, n_items: int) -> list[torch.nn.Module]:
        gmf = GMFBody(n_users, n_items, self.factors, self.init_std, self.seed)
        return [gmf, self._mlp_body(n_users, n_items)]

    def _warm_start(self, train: Interactions, options: FitOptions) -> bool:
        if not self.pretrain:
            return False
        gmf, mlp = self.pretrained(train, options)
        self.pretrain_best_ = [part_epochs(m) for m in (gmf, mlp)]
        log.info("NeuMF pre-trained: GMF and MLP weights of epochs %s", self.pretrain_best_)
        fuse(self.module_, gmf.module_.cpu(), mlp.module_.cpu(), self.alpha)
        return True

    def pretrained(self, train: Interactions, options: FitOptions) -> tuple[GMF, MLP]:
        """The GMF and MLP that ``pretrain`` starts from: loaded from ``pretrained_gmf`` /
        ``pretrained_mlp`` when given, else fitted on ``train`` with ``options`` (validation
        and early stopping included, checkpoints under ``pretrain-gmf``/``pretrain-mlp`` of
        the checkpoint folder, no epoch callbacks)."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(NCFBase)}
        # A part is never built with 0 epochs (valid only for the fused composite, a warm
        # start); a refit gives each fitted part its own count through ``fit_part``.
        shared["epochs"] = max(1, shared["epochs"])
        gmf = self._saved(self.pretrained_gmf, GMF, train)
        mlp = self._saved(self.pretrained_mlp, MLP, train)
        epochs = self.pretrain_epochs or [0, 0]
        if gmf is None:
            gmf = fit_part(GMF(**shared), train, options, "pretrain-gmf", epochs[0])
        if mlp is None:
            mlp = MLP(**shared, layers=list(self.layers))
            mlp = fit_part(mlp, train, options, "pretrain-mlp", epochs[1])
        return gmf, mlp

    def _part_paths(self) -> dict[str, str]:
        return {"pretrained_gmf": self.pretrained_gmf, "pretrained_mlp": self.pretrained_mlp}

    def refit_params(self) -> dict[str, Any]:
        return part_refit_epochs(self, self._part_paths())

    def _saved(self, path: str, cls: type[NCFBase], train: Interactions) -> NCFBase | None:
        """The saved ``cls`` model at ``path`` (None for ""), checked against this NeuMF."""
        if not path:
            return None

        def shape(m: NCFBase, users: int, items: int) -> dict:
            width = m.factors if cls is GMF else m._layers()  # type: ignore[attr-defined]
            return {"users": users, "items": items, "width": width}

        want = shape(self, train.n_users, train.n_items)
        have = lambda m: shape(m, m.n_users_, m.n_items_)  # noqa: E731
        model = load_part(path, cls, f"pretrained_{cls.name}", want, have)
        log.info("NeuMF: %s loaded from %s", cls.name.upper(), path)
        return model

    def _optimizer(self, warm: bool) -> torch.optim.Optimizer:
        if not warm or self.finetune_optimizer == "adam":
            return self._adam(self.finetune_lr if warm else self.lr)
        sparse_rows(self.module_, False)  # SGD's dense update, as ever
        return torch.optim.SGD(self.module_.parameters(), lr=self.finetune_lr)

    def _check_params(self) -> None:
        super()._check_params()
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.finetune_optimizer not in OPTIMIZERS:
            raise ValueError(
                f"finetune_optimizer must be one of {OPTIMIZERS}, got {self.finetune_optimizer!r}"
            )
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr}")
        check_pretrain_params(self.pretrain, self._part_paths(), self.pretrain_epochs)
