"""What the autoencoder recommenders share: the estimator base, and the sampled-pair objective.

- :class:`AutoencoderRecommender`: the base of JCA, U-/I-/UI-AutoRec, CDAE and Mult-VAE/DAE. It
  stores the 0/1 training matrix R (a fitted model needs its input rows), holds it on the device
  as a ``RatingGraph``, starts a fit (checks, R, module, Adam), and scores by the mean of the
  model's user and item components (Zhu, Wang, Caverlee, "Improving Top-K Recommendation via
  Joint Collaborative Autoencoders", WWW 2019, Eq. 1–2), new users likewise (``fold_in_outputs``
  fits a new user's output weights in the item component).
- ``block_pairs`` and ``pair_loss``: the positives of a block of R, one sampled negative each,
  and the summed hinge / BPR / squared-error data term over them (JCA §4.3, Eq. 3, §5.2), which
  JCA and the AutoRec baselines (Sedhain et al., WWW 2015, as JCA §5.2 trains them) train on.

The network they score with is ``autoencoder_net``. Section and equation numbers are JCA's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler
from ncflab.models.autoencoder_net import Autoencoder, decode_candidates, decode_rows
from ncflab.models.base import Recommender
from ncflab.models.sparse_input import RatingGraph
from ncflab.training import losses
from ncflab.training.options import FitOptions

__all__ = [
    "LOSSES",
    "AutoencoderRecommender",
    "binary_csr",
    "block_pairs",
    "check_common",
    "decodes_candidates",
    "fold_in_outputs",
    "graph_of",
    "is_finite_number",
    "pair_loss",
]

LOSSES = ("hinge", "mse", "bpr")
# Candidates under 1/this of the catalogue are decoded alone (``score_items``), else every item
# is decoded (one matrix product, fast per output) and the candidates gathered: each candidate
# costs gathers of H weights and hidden values, ~100x an output of the product. Sampled test
# evaluation of all users, 100 candidates, decoded vs gathered (benchmarks/bench_jca.py
# --sampled, one thread), JCA / U-AutoRec / I-AutoRec: ML-1M (3,706 items) 0.97 vs 0.57 s /
# 0.34 vs 0.22 / 0.64 vs 0.21; synthetic, 10,000 items: 2.7 vs 2.6 / 0.58 vs 1.06 / 2.2 vs 1.2;
# 50,000 items: 2.3 vs 11.1 / 0.66 vs 5.3 / 1.8 vs 5.3.
DECODE_CANDIDATES_UNDER = 150


def decodes_candidates(items: np.ndarray, n_items: int) -> bool:
    """Whether candidate sets ``items`` (B, C) are decoded alone rather than gathered from
    every item's score: C under 1/DECODE_CANDIDATES_UNDER of the ``n_items`` (see above)."""
    return items.shape[1] * DECODE_CANDIDATES_UNDER <= n_items


@dataclass(kw_only=True)
class AutoencoderRecommender(Recommender):
    """What the autoencoder recommenders share: the stored 0/1 training matrix R (``indptr_``,
    ``indices_``), the bag inputs built from it, the Adam optimizer, and scoring as the mean of
    whichever components the model has (``_components``): the user component's rows, the item
    component's columns (JCA Eq. 1–2; CDAE and Mult-VAE/DAE override the scoring)."""

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
        self.build_to_train(train.n_users, train.n_items, device)
        module = self.module_.to(device)
        return csr, module, self._graph(device), self._optimizer(module, self.lr)  # type: ignore[attr-defined]

    def _optimizer(self, module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        """Adam (JCA §5.2), whose every step makes the cached item hidden layer stale."""
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
        mean = parts[0] if len(parts) == 1 else parts[0].add_(parts[1]).mul_(0.5)  # in place
        return mean.float().cpu()

    @torch.no_grad()
    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU predictions of candidate ``items`` (B, C) for ``users`` (B,): the
        mean of the components (Eq. 1–2) at the candidates, the values of ``score(users)`` at
        them to float rounding. Under 1/DECODE_CANDIDATES_UNDER of the catalogue they are
        decoded alone (sampled evaluation scores 100 candidates a user: at Amazon Electronics'
        157,003 items decoding every item is 1,570× the outputs), else gathered from
        ``score``."""
        users, items = self.check_candidates(users, items)
        if not decodes_candidates(items, self.n_items_):
            return super().score_items(users, items)
        graph = self._graph(self._device())
        u = torch.from_numpy(users).to(graph.device)
        return self._candidate_scores(graph, u, torch.from_numpy(items).to(graph.device))

    def _candidate_scores(self, graph: RatingGraph, u: torch.Tensor, cand: torch.Tensor):
        """(B, C) float32 CPU scores of the candidates ``cand`` (B, C) of users ``u`` (B,),
        decoded at them alone (``score_items``); CDAE and Mult-VAE/DAE override it."""
        user_ae, item_ae = self._components()
        parts = []
        if user_ae is not None:  # σ(h_u · W^U[:, i] + b_i): the user's hidden layer, C columns
            h = user_ae.eval().hidden(graph.user_bag(u), u)  # (B, H)
            parts.append(torch.sigmoid(decode_candidates(h, user_ae.weight, user_ae.bias, cand)))
        if item_ae is not None:  # σ(W^I[:, u] · h_i + b_u): candidates' hidden layers, u's column
            h = self._item_hidden()[cand]  # (B, C, H)
            w = item_ae.eval().weight.index_select(1, u).T  # (B, H)
            dots = torch.bmm(h, w[:, :, None])[..., 0]
            parts.append(torch.sigmoid(dots + item_ae.bias[u][:, None]))
        return (parts[0] if len(parts) == 1 else 0.5 * (parts[0] + parts[1])).float().cpu()

    @torch.no_grad()
    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU scores for users not seen in training, from their rows
        ``rows`` (B, n_items), scipy sparse, any value > 0 = positive; no retraining: the mean
        of the components, as ``score`` gives for training users (Eq. 1).

        The user component reads the row: its weights are per item, so it scores a new user
        as it scores a trained one. The item component cannot read a new user: its weights
        are per *training user* (V^I has a row and W^I a column for each of the N users,
        Eq. 2). Its output for user u is σ(W^I_u · h_i + b_u) over the item hidden layers h_i,
        which do not depend on u; so a new user's output weights (W^I_u, b_u) are fitted to
        their row with every h_i fixed (``fold_in_outputs``), as iALS folds a user in by
        solving the user's factor with the item factors fixed.
        """
        self.check_fitted()
        user_ae, item_ae = self._components()
        csr = self.check_rows(rows)  # implicit feedback (§3.1): every positive is a 1
        graph = self._graph(self._device())
        parts = []
        if user_ae is not None:
            bag = RatingGraph.bag_from_csr(csr, graph.device)
            empty = torch.empty(0, dtype=torch.long, device=graph.device)  # no f on this side
            parts.append(user_ae.eval().decode(user_ae.hidden(bag, empty)).float().cpu())
        if item_ae is not None:
            hidden = self._item_hidden().float().cpu()
            parts.append(torch.sigmoid(fold_in_outputs(hidden, csr)).float())
        return parts[0] if len(parts) == 1 else 0.5 * (parts[0] + parts[1])

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


# The ridge penalty of a new user's fitted output weights (``fold_in_outputs``). Chosen on the
# validation part of ML-1M (JCA protocol and defaults) among 1, 3, 10 and 30: at 3 the fold-in
# of training users kept the most of their trained top-10 (.53) with the best P@10 (.0798; the
# user component alone, .0432); docs/defaults.md has the figures.
FOLD_IN_REG = 3.0
# Newton steps at most; a ridge-penalised logistic regression converges in a handful.
FOLD_IN_STEPS = 25
FOLD_IN_CHUNK = 32


def fold_in_outputs(
    hidden: torch.Tensor, rows: sp.csr_matrix, reg: float = FOLD_IN_REG
) -> torch.Tensor:
    """(B, n_items) logits z_ui = w_u · h_i + b_u of new users' fitted output weights.

    ``hidden`` (n_items, H) is the item component's hidden layer (JCA Eq. 2, or I-AutoRec's),
    ``rows`` (B, n_items) the users' 0/1 rows. For each user, (w_u, b_u) minimises
    Σ_i BCE(σ(z_ui), r_ui) + reg · (‖w_u‖² + b_u²): the logistic regression of the row on the
    item hidden layers, the form of the component's own output layer. Cross-entropy rather
    than the training loss (a hinge over sampled pairs of the mean of both components) makes
    the problem convex: one answer, no sampling, the same for a user alone or in a batch.
    Solved by Newton's method per user (float64), vectorised over the batch."""
    z = torch.cat([hidden.double(), torch.ones(len(hidden), 1, dtype=torch.float64)], dim=1)
    ridge = 2 * reg * torch.eye(z.shape[1], dtype=torch.float64)
    out = []
    for s in range(0, rows.shape[0], FOLD_IN_CHUNK):  # bounds the (chunk, n_items, H) product
        target = torch.from_numpy(rows[s : s + FOLD_IN_CHUNK].toarray()).double()
        theta = torch.zeros(len(target), z.shape[1], dtype=torch.float64)
        for _ in range(FOLD_IN_STEPS):
            p = torch.sigmoid(theta @ z.T)
            grad = (p - target) @ z + 2 * reg * theta
            curvature = (z[None] * (p * (1 - p))[:, :, None]).transpose(1, 2) @ z + ridge
            step = torch.linalg.solve(curvature, grad)
            theta -= step
            if step.abs().max() < 1e-7:  # quadratic convergence: the next step is ~1e-14
                break
        out.append(theta @ z.T)
    return torch.cat(out) if out else torch.zeros(0, len(hidden), dtype=torch.float64)


def pair_loss(kind: str, pos: torch.Tensor, neg: torch.Tensor, margin: float) -> torch.Tensor:
    """Summed data term over pairs of a positive r̂_ui (P,) and its sampled negative r̂_uj (P,).

    "hinge": Σ max(0, r̂_uj − r̂_ui + d), JCA Eq. 3; "bpr": Σ −ln σ(r̂_ui − r̂_uj) (JCA-BPR,
    JCA §5.4); "mse": Σ (1 − r̂_ui)² + Σ r̂_uj² (JCA-MSE and AutoRec: squared error on the
    positives and the sampled negatives, JCA §5.2 "negative sampling rate 1 for all models").
    Sums, not means, as Eq. 3 writes it: JCA's λ values are relative to a sum over the minibatch.
    """
    n = pos.numel()
    if kind == "hinge":
        return losses.hinge(pos, neg[:, None], margin) * n
    if kind == "bpr":
        return losses.bpr(pos, neg[:, None]) * n
    if kind == "mse":
        both = torch.cat([pos, neg])
        target = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        return losses.mse(both, target) * both.numel()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def block_pairs(
    csr: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positives of the block C = R[rows][:, cols] and one uniform negative for each.

    csr: (n_rows, n_cols) 0/1 training matrix with sorted indices; rows (n,), cols (m,): sorted
    distinct indices. Each positive (u, i) of C gets an item j drawn uniformly from the columns
    of C where user u has no positive (JCA §4.3: "C O_u^−, the negative samples of user u in C"),
    independently per positive, as JCA's authors' ``pairwise_neg_sampling`` does; with all
    columns, the one negative per positive of AutoRec's training (JCA §5.2). A user whose row
    of C is all positives has no negative, so their positives are left out of this block.

    Returns:
        r, c, neg: (P,) int64 positions inside C — row, positive column, negative column.
    """
    n, m = len(rows), len(cols)
    col_pos = np.full(csr.shape[1], -1, np.int64)
    col_pos[cols] = np.arange(m)
    starts = csr.indptr[rows].astype(np.int64)
    lens = csr.indptr[rows + 1] - starts
    offsets = np.cumsum(lens) - lens
    flat = np.repeat(starts - offsets, lens) + np.arange(int(lens.sum()))
    r = np.repeat(np.arange(n, dtype=np.int64), lens)
    c = col_pos[csr.indices[flat]]
    keep = c >= 0
    r, c = r[keep], c[keep]  # sorted by (r, c): rows in order, cols sorted with the indices
    full = np.bincount(r, minlength=n) >= m
    if full.any():
        r, c = r[~full[r]], c[~full[r]]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))])
    sub = sp.csr_matrix((np.ones(len(c), np.float32), c, indptr), shape=(n, m))
    neg = NegativeSampler.from_csr(sub).draw(r, 1, rng)[:, 0]
    return r, c, neg


def binary_csr(indptr: np.ndarray, indices: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """The (n_rows, n_cols) 0/1 float32 CSR with sorted indices (JCA's implicit R, §3.1)."""
    data = np.ones(len(indices), np.float32)
    csr = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_cols))
    csr.sort_indices()
    return csr


def graph_of(csr: sp.csr_matrix, device: torch.device) -> RatingGraph:
    """R and Rᵀ on ``device`` as embedding-bag inputs (rows for the user side, columns for the
    item side)."""
    return RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, csr.shape[1], device)


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
