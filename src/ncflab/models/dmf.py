"""DMF: Deep Matrix Factorization.

Xue, Dai, Zhang, Huang, Chen, "Deep Matrix Factorization Models for Recommender Systems",
IJCAI 2017, §3. The input matrix Y holds the explicit rating R_ij of every observed pair and 0
elsewhere (§2, Eq. 2). User i is its row Y_i* and item j its column Y_*j; each goes through its
own MLP (§3.2): the first layer is linear, l_1 = W_1 Y_i* (no bias, no activation: the general
layer rule of Eq. 5; the expanded formula for p_i and q_j, Eq. 7, can be read with f on it too,
so this is a reading), every later one is l_k = f(W_k l_(k−1) + b_k) with f = ReLU (Eq. 6),
giving p_i and q_j (Eq. 7). The prediction is their cosine, Ŷ_ij = p_iᵀ q_j / (‖p_i‖ ‖q_j‖)
(Eq. 8). Training minimises the normalised cross-entropy (§3.3, Eq. 12) over the observed pairs
Y⁺ and sampled unobserved ones Y⁻ (§2),

    L = −Σ (Y_ij / max(R)) log Ŷ°_ij + (1 − Y_ij / max(R)) log(1 − Ŷ°_ij),
    Ŷ°_ij = max(μ, Ŷ_ij), μ = 1e−6                                      (§3.4, Eq. 13)

where max(R) is the largest rating of the data (5 on MovieLens). DMF-BCE (Eq. 11) is the same
with the 0/1 label in place of Y_ij / max(R). This is ``log_loss`` on Ŷ° with those targets, so
no new loss function is needed (``log_loss`` also clamps Ŷ° ≤ 1 − 1e−7: a cosine of exactly 1
would make log(1 − Ŷ°) infinite).

The target entry: for a training pair (u, i), Y_u* and Y_*i both contain the rating Y_ui being
predicted. The paper feeds the rows as they are, and so do we by default; ``mask_target=True``
removes Y_ui from both for that pair (the first layer is linear, so that subtracts Y_ui W_1[:, i])
as J-NCF's option does. A validation or test pair is never in Y, so it is scored like any unseen
pair.

Speed: the first layer is an embedding bag (``sparse_input``: ``SparseLinear`` over
``RatingGraph`` bags, as J-NCF's DF networks use it), so a minibatch costs O(nnz of its rows
and columns), never a dense (B, n_items) input; users and items repeated in a minibatch are
computed once. Ranking normalises p_u once per user and q_i once per item (cached), so scoring
all items is one (B, d) x (d, n_items) product.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.models.base import Recommender
from ncflab.models.products import mm
from ncflab.models.rating_input import RatingInput, rating_matrix
from ncflab.models.sparse_input import Bag, RatingGraph, SparseLinear
from ncflab.training.loop import minibatches, train_loop
from ncflab.training.losses import log_loss
from ncflab.training.options import FitOptions

__all__ = ["DMF", "DMFModule", "MU", "dmf_loss"]

log = logging.getLogger(__name__)

MU = 1e-6  # μ of Eq. 13: Ŷ° = max(μ, Ŷ) keeps log Ŷ° finite for orthogonal p, q
LOSSES = ("nce", "bce")
FEEDBACK = ("explicit", "implicit")
# Above this share of all nonzeros in a minibatch's rows, compute the first layer for every row
# (see ``_first_layer``). ML-1M, one thread, per training step: at batch 256 the full path was
# 2.4x slower than gathering the rows (so 0.5 never takes it there); at batch 4096 it was level
# with or up to ~10% faster than gathering, within the noise of a loaded machine.
FULL_FRACTION = 0.5


def dmf_loss(cosine: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DMF-NCE (Eq. 12–13): mean of −[Y⁺ log Ŷ° + (1 − Y⁺) log(1 − Ŷ°)], Ŷ° = max(μ, Ŷ).

    cosine: any shape, Ŷ (Eq. 8); target: same shape, Y⁺ = Y_ij / max(R) for NCE (0 for
    sampled negatives) or the 0/1 label for DMF-BCE (Eq. 11). The paper sums over the pairs; we
    average (the same minimiser, and Adam's steps hardly depend on the scale)."""
    return log_loss(cosine.clamp_min(MU), target)


def _tower(widths: list[int]) -> nn.Sequential:
    """Layers 2…N of Eq. 5: Linear + ReLU from widths[k] to widths[k + 1] (f on every one)."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class DMFModule(nn.Module):
    """The user and item MLPs of Eq. 7 over rows and columns of Y, and their cosine (Eq. 8).

    The first layer is Eq. 5's l_1 = W_1 x: the sparse layer's bias is zeroed and frozen, and no
    activation follows it. (A ReLU and bias there, as in J-NCF's DF net, put the held-out item
    above every out-of-block item for only 52% of users of tests/test_dmf.py's rated block
    problem with the contract's FAST settings, against >= 90% without.)
    """

    def __init__(
        self, n_users: int, n_items: int, layers: list[int], init_std: float, seed: int
    ) -> None:  # fmt: skip
        super().__init__()
        self.user_in, self.user_mlp = SparseLinear(n_items, layers[0]), _tower(layers)
        self.item_in, self.item_mlp = SparseLinear(n_users, layers[0]), _tower(layers)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for p in self.parameters():  # §4.1: every parameter ~ N(0, 0.01²)
                nn.init.normal_(p, 0.0, init_std, generator=gen)
            for layer in (self.user_in, self.item_in):
                layer.bias.zero_()
                layer.bias.requires_grad_(False)

    def _up(self, pre: torch.Tensor, mlp: nn.Sequential) -> torch.Tensor:
        """p (or q), unit-normalised, from first-layer outputs ``pre`` (R, layers[0])."""
        out = mlp(pre)
        # p/‖p‖ with ‖p‖ floored at 1e-12: a dead (all-zero) tower gives cosine 0, not NaN.
        return F.normalize(out, dim=-1)

    def embed_users(self, *bag: torch.Tensor) -> torch.Tensor:
        """p_u / ‖p_u‖ (U, d) from bag inputs of rows Y_u* (Eq. 7)."""
        return self._up(self.user_in(*bag), self.user_mlp)

    def embed_items(self, *bag: torch.Tensor) -> torch.Tensor:
        """q_i / ‖q_i‖ (I, d) from bag inputs of columns Y_*i (Eq. 7)."""
        return self._up(self.item_in(*bag), self.item_mlp)

    def train_cosines(
        self, graph: RatingGraph, users: torch.Tensor, items: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(B, 1 + n_neg) cosines Ŷ (Eq. 8) for ``users`` (B,) and ``items`` (B, 1 + n_neg),
        column 0 the positive. With ``mask`` (B,) = Y_ui, the positive's Y_u* and Y_*i omit Y_ui
        (the first layer is linear in Y, so that subtracts Y_ui · W_1[:, i])."""
        pre_u, inv_u = _first_layer(self.user_in, graph, "user", users)
        pre_i, inv_i = _first_layer(self.item_in, graph, "item", items)
        p = self._up(pre_u, self.user_mlp)[inv_u]  # (B, d)
        q = self._up(pre_i, self.item_mlp)[inv_i]  # (B, 1 + n_neg, d)
        cos = (p[:, None, :] * q).sum(-1)
        if mask is None:
            return cos
        m = mask[:, None]
        pu = pre_u[inv_u] - m * self.user_in.weight[items[:, 0]]
        pi = pre_i[inv_i[:, 0]] - m * self.item_in.weight[users]
        pos = (self._up(pu, self.user_mlp) * self._up(pi, self.item_mlp)).sum(-1)
        return torch.cat([pos[:, None], cos[:, 1:]], dim=1)


def _first_layer(
    layer: SparseLinear, graph: RatingGraph, side: str, ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-layer outputs of the rows (side "user") or columns ("item") of Y that ``ids``
    (any shape) name, each computed once: returns (R, layers[0]) outputs and, with ids' shape,
    the position of each id among them.

    When the named rows hold more than FULL_FRACTION of all nonzeros, every row is computed
    from the stored CSR in order instead: no gather of the selected nonzeros and no mask for
    the transposed gradient (``Bag.transpose``), which cost more than the extra nonzeros."""
    uniq, inv = torch.unique(ids, return_inverse=True)
    csr, csc = (graph.user, graph.item) if side == "user" else (graph.item, graph.user)
    selected = int((csr[0][uniq + 1] - csr[0][uniq]).sum())
    if selected <= FULL_FRACTION * len(csr[1]):
        return layer(*(graph.user_bag(uniq) if side == "user" else graph.item_bag(uniq))), inv
    bag = Bag(csr[1], csr[0][:-1], csr[2], lambda: (csc[1], csc[0][:-1], csc[2]))
    return layer(*bag), ids


@dataclass(kw_only=True)
class DMF(RatingInput, Recommender):
    """DMF (registry name ``dmf``) with the settings J-NCF used for it as a baseline (J-NCF
    §4.2.2: two layers [128, 64], batch 256, Adam, lr 1e-4, N(0, 0.01²) init, following the DMF
    paper §4.1), except where our validation chose otherwise (see each field).

    Defaults: checked on ML-100K validation NDCG@10 (``jncf`` protocol, seed 0). On ML-1M an
    epoch at batch 256 is slow on a CPU, so ``--set params.batch_size=4096 --set params.lr=0.003``
    is the fast setting there. The runs and their figures are in docs/defaults.md.

    Attributes:
        layers: widths of both MLPs (Eq. 5, 7); the last is the dimension of p_u and q_i.
        loss: "nce" (DMF-NCE, Eq. 12: positive target Y_ij / max(R)) or "bce" (DMF-BCE,
            Eq. 11: target 1). Without ratings in the data both are BCE.
        feedback: "explicit": ratings in Y (Eq. 2); "implicit": 1 for every observed pair
            (the 0/1 matrix of Eq. 1, §2).
        n_neg: sampled unobserved pairs per observed pair (Y⁻, §2). The DMF paper uses 7
            (§4.1) and studies the ratio (§4.4); J-NCF does not state the one it used. 4: 7
            was within noise of it on ML-100K validation and costs more per step at batch 256.
        resample: draw Y⁻ afresh every epoch (True, as NCF and J-NCF do) or once before
            training and reuse it every epoch in a new order (False: the DMF paper's
            Algorithm 1, §3.4, samples Y⁻ at initialisation). On ML-100K validation resampling
            is slightly ahead, so it is the default.
        lr: Adam learning rate: the paper's 1e-4. 1e-3 tied with it on ML-100K validation but
            needed more epochs to its best.
        batch_size: observed pairs per minibatch, each with its ``n_neg`` negatives. The paper
            counts instances (positives and negatives) in its 256; grouping a positive with its
            user's negatives computes that user once. The loss is the same mean, but an epoch
            takes (1 + n_neg)x fewer Adam steps than the paper's, which changes the epoch
            counts (J-NCF reports DMF's best at ~16-17 iterations).
        epochs: maximum epochs; early stopping on validation picks the epoch.
        init_std: every weight and bias starts ~ N(0, init_std²) (§4.1: 0.01).
        mask_target: drop Y_ui from Y_u* and Y_*i when scoring the training pair (u, i), so the
            towers cannot read the label from their input; the paper does not (False).
        weight_decay: Adam's L2 weight decay (the paper has no regulariser: 0).
    """

    name: ClassVar[str] = "dmf"
    search_space: ClassVar[dict] = {
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "n_neg": {"choices": [1, 2, 4, 7, 10]},
    }
    layers: list[int] = field(default_factory=lambda: [128, 64])
    loss: str = "nce"
    feedback: str = "explicit"
    n_neg: int = 4
    resample: bool = True
    lr: float = 1e-4
    batch_size: int = 256
    epochs: int = 50
    init_std: float = 0.01
    mask_target: bool = False
    weight_decay: float = 0.0

    # ------------------------------------------------------------------ learning
    def build(self, n_users: int, n_items: int) -> None:
        self.module_ = DMFModule(n_users, n_items, list(self.layers), self.init_std, self.seed)
        self._clear_caches()

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        self._check_params()
        device = options.torch_device()
        y = self._input_matrix(train)  # stored: a loaded model needs its inputs
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.indptr_, self.indices_, self.data_ = y.indptr.astype(np.int64), y.indices, y.data
        self.max_rating_ = float(y.data.max()) if y.nnz else 1.0  # max(R) of Eq. 12
        self.build_to_train(train.n_users, train.n_items, device)
        self.module_.to(device)
        graph = self._graph(device)
        sampler = NegativeSampler.from_csr(y)
        params = [p for p in self.module_.parameters() if p.requires_grad]
        # The fused kernel: the unfused Adam step dominates a CPU step (as for J-NCF).
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=True)
        # Cached item representations go stale with every step (validation between epochs).
        opt.register_step_post_hook(lambda *_: self._clear_caches(keep_graph=True))
        keys = sampler.rows * self.n_items_ + sampler.indices  # sorted: CSR order
        nce = self.loss == "nce"

        drawn: list[tuple[np.ndarray, ...]] = []  # Y⁻ of the first epoch, when reused

        def batches(rng: np.random.Generator):
            if self.resample or not drawn:
                drawn[:] = [bpr_triplets(sampler, rng, self.n_neg)]
                users, pos, neg = drawn[0]
            else:  # Algorithm 1: the same Y⁻, in a new order
                order = rng.permutation(len(drawn[0][0]))
                users, pos, neg = (a[order] for a in drawn[0])
            value = self.data_[np.searchsorted(keys, users * self.n_items_ + pos)]  # Y_ui
            target = value / self.max_rating_ if nce else np.ones_like(value)
            arrays = (users, pos, neg, value, target.astype(np.float32))
            yield from minibatches(arrays, self.batch_size, device)

        def loss_fn(users, pos, neg, value, target) -> torch.Tensor:
            items = torch.cat([pos[:, None], neg], dim=1)  # (B, 1 + n_neg)
            mask = value if self.mask_target else None
            cos = self.module_.train_cosines(graph, users, items, mask)
            targets = torch.zeros_like(cos)
            targets[:, 0] = target  # sampled unobserved pairs: Y_ij = 0
            return dmf_loss(cos, targets)

        train_loop(self, self.module_, opt, batches, loss_fn, epochs=self.epochs, options=options,
                   prefetch=True)  # fmt: skip
        self._clear_caches(keep_graph=True)  # the loop may have restored the best epoch
        return self

    # ------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU cosines Ŷ (Eq. 8, before the max with μ, which would only
        add ties) of every item for user indices ``users`` (B,); inputs are the training rows."""
        return self._cosines(self._embed_users(self.check_users(users)), None)

    @torch.no_grad()
    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU cosines of candidate ``items`` (B, C) for ``users`` (B,)."""
        users, items = self.check_candidates(users, items)
        return self._cosines(self._embed_users(users), torch.from_numpy(items))

    @torch.no_grad()
    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU cosines for users unseen in training, from their rating rows
        ``rows`` (B, n_items), scipy sparse: ratings (any positive value when the model uses
        implicit feedback), 0 = unknown (Eq. 2). No retraining: q_i comes from the training
        matrix, which a new user does not change."""
        csr = self.check_rows(rows, binary=not self._explicit_)
        graph = self._graph(self._device())
        p = self.module_.eval().embed_users(*RatingGraph.bag_from_csr(csr, graph.device))
        return self._cosines(p, None)

    def _embed_users(self, users: np.ndarray) -> torch.Tensor:
        graph = self._graph(self._device())
        bag = graph.user_bag(torch.from_numpy(users).to(graph.device))
        return self.module_.eval().embed_users(*bag)

    def _cosines(self, p: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Cosines of unit user vectors ``p`` (B, d) with all items or candidates (B, C)."""
        q = self._item_side()  # (n_items, d): q_i / ‖q_i‖, unit rows
        if items is None:
            return mm(p, q.T).float().cpu()
        return (q[items.to(q.device)] * p[:, None, :]).sum(-1).float().cpu()

    # ------------------------------------------------------------------- helpers
    def _input_matrix(self, train: Interactions) -> sp.csr_matrix:
        """(n_users, n_items) float32 CSR of Eq. 2's Y: ratings (explicit) or 1."""
        m, self._explicit_ = rating_matrix(train, self.feedback, "DMF")
        return m

    def _check_params(self) -> None:
        for key, allowed in (
            ("loss", LOSSES), ("feedback", FEEDBACK),
        ):  # fmt: skip
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        for key in ("n_neg", "batch_size", "epochs"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if not self.layers or any(int(w) < 1 for w in self.layers):
            raise ValueError(
                f"layers must be a non-empty list of positive widths, got {self.layers}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr) and self.weight_decay >= 0):
            raise ValueError(
                f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )
        if not self.init_std > 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")
