"""CDAE: Collaborative Denoising Auto-Encoder, as JCA ran it as a baseline.

Wu, DuBois, Zheng, Ester, "Collaborative Denoising Auto-Encoders for Top-N Recommender Systems",
WSDM 2016, §4. A user's 0/1 item row y_u is corrupted by drop-out (§4.1: each entry is set to 0
with probability q and the others scaled by δ = 1/(1 − q), so E[ỹ_u] = y_u), encoded with an
extra per-user input node V_u and decoded to every item:

    z_u  = h(Wᵀ ỹ_u + V_u + b),         ŷ_ui = f(W'_iᵀ z_u + b'_i),

trained on the observed items and sampled negatives only (§4.2, negative sampling) with
(1/|U|) Σ_u E_{p(ỹ_u|y_u)} ℓ(y_u, ŷ_u) + λ/2 (‖W‖² + ‖W'‖² + ‖V‖² + ‖b‖² + ‖b'‖²), the clean
row y_u being the target; at prediction time the uncorrupted y_u is the input (§4.3). CDAE's
paper compares square and logistic losses with identity or sigmoid h and f. JCA (Zhu et al.,
WWW 2019, §5.2) runs it with sigmoid h and f, "MSE as the objective function", one negative per
positive re-drawn every epoch, minibatches of 256 users, Adam with lr 0.003 and λ grid-searched
on validation — our defaults, since JCA's Table 3 (F1@10 .1999 on ML-1M) is the figure to
compare with; ``loss="log"`` gives the logistic loss of the CDAE paper.

Speed: ỹ_u is sparse, so Wᵀ ỹ_u is an embedding bag (``sparse_input.SparseLinear``) over the
row's nonzeros (the dropped ones weighted 0); the decoder is dense over all items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler
from ncflab.models.autoencoder import AutoencoderRecommender, is_finite_number
from ncflab.models.autoencoder_net import INIT_STD, decode_candidates
from ncflab.models.products import mm
from ncflab.models.sparse_input import RatingGraph, SparseLinear
from ncflab.training import losses
from ncflab.training.layers import seeded_generator
from ncflab.training.loop import train_loop
from ncflab.training.options import FitOptions

__all__ = ["CDAE", "CDAEModule", "cdae_loss", "row_entries"]

LOSSES = ("mse", "log")


class CDAEModule(nn.Module):
    """W and b (``encoder``: (n_items, H) and (H,)), the user nodes V (``user``: (n_users, H)),
    W' (``weight``: (H, n_items)) and b' (``bias``: (n_items,)). Every parameter starts ~
    truncated N(0, 0.03²), as JCA's code initialises its autoencoders (neither paper gives an
    initialisation for CDAE)."""

    def __init__(self, n_users: int, n_items: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.encoder = SparseLinear(n_items, hidden)
        self.user = nn.Parameter(torch.empty(n_users, hidden))
        self.weight = nn.Parameter(torch.empty(hidden, n_items))
        self.bias = nn.Parameter(torch.empty(n_items))
        with torch.no_grad():
            for p in self.parameters():
                nn.init.trunc_normal_(p, 0.0, INIT_STD, -2 * INIT_STD, 2 * INIT_STD, generator)

    def hidden(self, bag: tuple, users: torch.Tensor | None) -> torch.Tensor:
        """(B, H) z_u = σ(Wᵀ ỹ_u + V_u + b) from embedding-bag inputs of the B rows ỹ_u;
        ``users`` (B,) picks V_u, None means V_u = 0 (a user unseen in training)."""
        pre = self.encoder(*bag)
        if users is not None:
            pre = pre + self.user.index_select(0, users)
        return torch.sigmoid(pre)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n_items) W'ᵀ z_u + b' (ŷ before the output sigmoid f)."""
        return mm(z, self.weight, self.bias)

    def outputs(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n_items) ŷ_u = f(W'ᵀ z_u + b'), f = σ, in place on the product."""
        return mm(z, self.weight, self.bias, sigmoid=True)

    def squared_norm(self, users: torch.Tensor) -> torch.Tensor:
        """‖W‖² + ‖b‖² + ‖W'‖² + ‖b'‖² + ‖V_u‖² over the minibatch's ``users`` only: a user
        node gets no data gradient outside its batch, so it is not shrunk there either (as BPR
        regularises only the factors a triplet touches)."""
        params = (self.encoder.weight, self.encoder.bias, self.weight, self.bias)
        shared = sum(p.square().sum() for p in params)
        return shared + self.user.index_select(0, users).square().sum()


def cdae_loss(kind: str, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Summed data term over the logits of the observed items ``pos`` (P,) and of the sampled
    negatives ``neg`` (any shape): "mse" Σ (1 − σ(pos))² + Σ σ(neg)² (JCA's CDAE: sigmoid f,
    squared error), "log" Σ −log σ(pos) + Σ −log(1 − σ(neg)) (CDAE §4.2's logistic loss).
    A sum over the minibatch, as JCA's λ grid is relative to one (see ``autoencoder.pair_loss``)."""
    both = torch.cat([pos.reshape(-1), neg.reshape(-1)])
    target = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).to(both)
    if kind == "mse":
        return losses.mse(torch.sigmoid(both), target) * both.numel()
    if kind == "log":
        return losses.log_loss(both, target, logits=True) * both.numel()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def row_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in a CSR's ``indices``) of the nonzeros of ``rows`` (R,), in row order, and
    the position in ``rows`` of each: (nnz of the rows,) int64 both, no Python loop."""
    starts = indptr[rows].astype(np.int64)
    lens = indptr[rows + 1] - starts
    offsets = np.cumsum(lens) - lens
    flat = np.repeat(starts - offsets, lens) + np.arange(int(lens.sum()))
    return flat, np.repeat(np.arange(len(rows), dtype=np.int64), lens)


@dataclass(kw_only=True)
class CDAE(AutoencoderRecommender):
    """CDAE (registry ``cdae``) with JCA's baseline settings (§5.2) where JCA gives them.

    Attributes:
        hidden: hidden units K. JCA chose 160 for JCA itself (§5.2) and tuned the baselines'
            other settings on validation without reporting them; we use JCA's 160 for CDAE too
            (not yet validated). CDAE's paper mostly uses K = 50.
        corruption: drop-out probability q of the input entries (§4.1). JCA leaves it to
            validation without reporting it. Ours: 0.2, chosen over 0.5 on ML-1M validation
            F1@10 (``-p jca``, seed 0; docs/defaults.md).
        loss: "mse" (JCA's choice for CDAE) or "log" (the CDAE paper's logistic loss).
        reg: λ on all weights and biases (the batch's user nodes only, see
            ``CDAEModule.squared_norm``), added to a summed data term. JCA grid-searched λ over
            [0.5, 0.1, 0.05, 0.01, 0.005, 0.001] on validation without reporting the choice.
            Ours: 0.1, chosen on ML-1M validation F1@10 (``-p jca``, seed 0); the figures,
            and the test figures beside JCA's Table 3, are in docs/defaults.md.
        n_neg: negatives per observed item, drawn uniformly from the user's other items and
            re-drawn every epoch (JCA §5.2: "negative sampling rate 1 for all models").
        batch_size: users per minibatch (JCA §5.2: 256 for AutoRec and CDAE).
        lr: Adam learning rate (JCA §5.2: 0.003 for all methods).
        epochs: maximum epochs; early stopping on validation picks the epoch.

    Learned state: ``module_`` and the 0/1 training matrix (``indptr_``, ``indices_``), the
    input rows at scoring time.
    """

    name: ClassVar[str] = "cdae"
    hidden: int = 160
    corruption: float = 0.2
    loss: str = "mse"
    reg: float = 0.1
    n_neg: int = 1
    batch_size: int = 256
    lr: float = 0.003
    epochs: int = 200

    def build(self, n_users: int, n_items: int) -> None:
        gen = seeded_generator(self.seed)
        self.module_ = CDAEModule(n_users, n_items, self.hidden, gen)
        self._clear_caches()

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        csr, module, graph, opt = self._setup(train, options)
        device = graph.device
        sampler = NegativeSampler.from_csr(csr)
        n_users, n_items = train.n_users, train.n_items

        def batches(rng: np.random.Generator):
            # The whole epoch's negatives in one vectorised draw, in CSR order (see ``draw``).
            neg = sampler.draw(sampler.rows, self.n_neg, rng)  # (nnz, n_neg)
            order = rng.permutation(n_users)
            for s in range(0, n_users, self.batch_size):
                rows = np.sort(order[s : s + self.batch_size])  # the bag's backward needs it
                flat, r = row_entries(csr.indptr, rows)
                if len(flat):
                    pos_at = r * n_items + csr.indices[flat]  # flat positions in (B, n_items)
                    neg_at = r[:, None] * n_items + neg[flat]
                    yield tuple(torch.from_numpy(a).to(device) for a in (rows, pos_at, neg_at))

        def loss_fn(rows, pos_at, neg_at) -> torch.Tensor:
            z = module.hidden(self._corrupt(graph.user_bag(rows)), rows)
            out = module.logits(z).reshape(-1)
            pos, neg = out.index_select(0, pos_at), out.index_select(0, neg_at.reshape(-1))
            data = cdae_loss(self.loss, pos, neg)
            return data + 0.5 * self.reg * module.squared_norm(rows)

        train_loop(self, module, opt, batches, loss_fn, epochs=self.epochs, options=options)
        self._clear_caches(keep_graph=True)
        return self

    def _corrupt(self, bag: tuple) -> tuple:
        """ỹ_u of §4.1 as bag inputs: each nonzero kept with probability 1 − q and scaled by
        1/(1 − q). The mask comes from torch's generator, which the training loop seeds. The
        bag's fast transposed backward assumes the stored values, so it is dropped here."""
        if self.corruption == 0:
            return bag
        index, offsets, values, _ = bag
        keep = torch.rand(values.shape, device=values.device) >= self.corruption
        return index, offsets, values * keep / (1.0 - self.corruption)

    # ------------------------------------------------------------------- scoring
    def _candidate_scores(self, graph: RatingGraph, u: torch.Tensor, cand: torch.Tensor):
        """ŷ of the candidates ``cand`` (B, C) only (``AutoencoderRecommender.score_items``):
        σ of the output layer at their columns."""
        module = self.module_.eval()
        z = module.hidden(graph.user_bag(u), u)
        return torch.sigmoid(decode_candidates(z, module.weight, module.bias, cand)).float().cpu()

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU ŷ_u = σ(W'ᵀ σ(Wᵀ y_u + V_u + b) + b'), the uncorrupted
        training row y_u as input (§4.3)."""
        users = self.check_users(users)
        module = self.module_.eval()
        graph = self._graph(self._device())
        u = torch.from_numpy(users).to(graph.device)
        return module.outputs(module.hidden(graph.user_bag(u), u)).float().cpu()

    @torch.no_grad()
    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU scores for users unseen in training from their rows
        ``rows`` (B, n_items), scipy sparse, any value > 0 = positive; no retraining.

        A new user has no learned node V_u; we use V_u = 0, the centre of its L2 penalty
        (the MAP value of a node without data, and what V_u tends to for a user with few
        records), so the new user is scored by the shared part σ(Wᵀ y_u + b) alone. CDAE's
        paper does not score new users.
        """
        self.check_fitted()
        csr = self.check_rows(rows)
        graph = self._graph(self._device())
        bag = RatingGraph.bag_from_csr(csr, graph.device)
        module = self.module_.eval()
        return module.outputs(module.hidden(bag, None)).float().cpu()

    def _check_params(self) -> None:
        for key in ("hidden", "n_neg", "batch_size", "epochs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not (is_finite_number(self.corruption) and 0 <= self.corruption < 1):
            raise ValueError(f"corruption must be a number in [0, 1), got {self.corruption!r}")
        if not (is_finite_number(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (is_finite_number(self.reg) and self.reg >= 0):
            raise ValueError(f"reg must be a finite number >= 0, got {self.reg!r}")
