"""Mult-VAE and Mult-DAE: autoencoders with a multinomial likelihood over the items.

Liang, Krishnan, Hoffman, Jebara, "Variational Autoencoders for Collaborative Filtering",
WWW 2018, §2. A user's clicks x_u (a 0/1 row over the I items) are one multinomial draw,
x_u ~ Mult(N_u, π(z_u)) with π(z_u) = softmax(f_θ(z_u)) (Eq. 1), whose log-likelihood is
Σ_i x_ui log π_i(z_u) (Eq. 2, ``losses.multinomial``).

- **Mult-VAE** (``multvae``): z_u ~ N(0, I_K); the encoder g_φ gives μ_φ(x_u) and σ_φ(x_u) of
  q_φ(z_u | x_u) = N(μ, diag σ²), and training maximises the β-weighted ELBO (Eq. 6; the ELBO
  itself, β = 1, is Eq. 5)

      L_β(x_u; θ, φ) = E_{q_φ(z_u|x_u)}[log p_θ(x_u | z_u)] − β · KL(q_φ(z_u | x_u) ‖ p(z_u))

  with one reparameterised sample z_u = μ + ε ⊙ σ, ε ~ N(0, I) per user and step, and β
  annealed linearly from 0 to ``anneal_cap`` = 0.2 over ``anneal_steps`` minibatch updates
  (§2.2.2, "Selecting β": KL annealing; the cap 0.2 is the authors' notebook's). Prediction
  uses z_u = μ_φ(x_u).
- **Mult-DAE** (``multdae``): a denoising autoencoder with the same likelihood and no latent
  noise, maximising Σ_u log p_θ(x_u | g_φ(x̃_u)) (§2.3, Eq. 7) minus an L2 penalty on the
  weights (§4.3: weight decay).

Both: drop-out with probability 0.5 on the input row (x̃_u, in training only),
[I → 600 → 200 → 600 → I] with tanh between layers (the VAE's encoder outputs 2 × 200: μ and
log σ²), Adam, minibatches of 500 users (§4.3); and, from the authors' notebook
(github.com/dawenl/vae_cf) only, the input row L2-normalised before the drop-out, lr 1e-3,
weights ~ Xavier-uniform and biases ~ truncated N(0, 0.001²).

Weak generalisation: our presets hold out items of users seen in training, so a training
user's input at scoring time is their training row (valid and test items are never an input).
``score_new_users`` is the paper's strong generalisation: a user unseen in training is encoded
from their rows (fold-in), with no retraining.

Speed: the input is sparse, so the first layer is an embedding bag (``sparse_input.SparseLinear``)
over the row's nonzeros; drop-out and normalisation only change the bag's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ncflab.data.interactions import Interactions
from ncflab.models.autoencoder import AutoencoderRecommender, is_finite_number
from ncflab.models.autoencoder_net import decode_candidates
from ncflab.models.products import mm
from ncflab.models.sparse_input import Bag, RatingGraph, SparseLinear
from ncflab.training import losses
from ncflab.training.layers import seeded_generator
from ncflab.training.loop import train_loop
from ncflab.training.options import FitOptions

__all__ = ["MultAEModule", "MultDAE", "MultVAE", "kept_bag", "normalise_bag"]

BIAS_STD = 0.001  # the authors' notebook: biases ~ truncated N(0, 0.001²)


class MultAEModule(nn.Module):
    """Encoder [I → dims[0] → … → dims[-1]] (the last layer doubled to μ and log σ² when
    ``variational``) and the mirrored decoder [dims[-1] → … → dims[0] → I], tanh between
    layers. The first layer is a ``SparseLinear`` over the input row's nonzeros."""

    def __init__(
        self, n_items: int, dims: tuple[int, ...], variational: bool, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.variational = variational
        enc_out = [*dims[:-1], 2 * dims[-1] if variational else dims[-1]]
        self.first = SparseLinear(n_items, enc_out[0])
        self.encoder = _linears(dims[:-1], enc_out[1:])
        back = [*dims[::-1], n_items]
        self.decoder = _linears(back[:-1], back[1:])
        with torch.no_grad():
            for weight, bias in self._layers():
                nn.init.xavier_uniform_(weight, generator=generator)
                nn.init.trunc_normal_(bias, 0.0, BIAS_STD, -2 * BIAS_STD, 2 * BIAS_STD, generator)

    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        layers = [*self.encoder, *self.decoder]
        return [(self.first.weight, self.first.bias)] + [(m.weight, m.bias) for m in layers]

    def encode(self, bag: tuple) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(μ (B, K), log σ² (B, K)) for the VAE, (tanh output (B, K), None) for the DAE, from
        embedding-bag inputs of the B (normalised, possibly dropped-out) rows."""
        h = self.first(*bag)
        for layer in self.encoder:
            h = layer(torch.tanh(h))
        if not self.variational:
            return torch.tanh(h), None
        k = h.shape[1] // 2
        return h[:, :k], h[:, k:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, n_items) logits f_θ(z) (π = their softmax, Eq. 1)."""
        last = self.decoder[-1]  # n_items wide: ``products.mm``
        return mm(self.last_input(z), last.weight.T, last.bias)

    def decode_at(self, z: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """(B, C) logits f_θ(z) at each row's candidate items ``cand`` (B, C) only."""
        last = self.decoder[-1]
        return decode_candidates(self.last_input(z), last.weight.T, last.bias, cand)

    def last_input(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's layers but the last, tanh between and after them, on z."""
        for i, layer in enumerate(self.decoder[:-1]):
            z = layer(z if i == 0 else torch.tanh(z))
        return z if len(self.decoder) == 1 else torch.tanh(z)

    def squared_weights(self) -> torch.Tensor:
        """Σ ‖W‖² over every weight matrix (biases excluded, as in the authors' notebook)."""
        return sum(w.square().sum() for w, _ in self._layers())


def normalise_bag(bag: tuple, keep: torch.Tensor | None = None, p: float = 0.0) -> tuple:
    """Bag inputs of the rows x_u / ‖x_u‖₂ (the authors' notebook's input normalisation), then,
    when ``keep`` (a 0/1 mask over the nonzeros) is given, drop-out with probability ``p``:
    dropped entries weighted 0, kept ones scaled by 1/(1 − p). Returns (index, offsets,
    values); an empty row stays empty (its norm is taken as 1)."""
    index, offsets, values = bag[0], bag[1], bag[2]
    lens = torch.diff(offsets, append=offsets.new_tensor([len(values)]))
    row = torch.repeat_interleave(torch.arange(len(offsets), device=values.device), lens)
    sq = torch.zeros(len(offsets), dtype=values.dtype, device=values.device)
    norms = sq.index_add_(0, row, values.square()).sqrt().clamp_min(1e-12)
    values = values / norms.index_select(0, row)
    if keep is not None:
        values = values * keep / (1.0 - p)
    return index, offsets, values


@dataclass(kw_only=True)
class MultVAE(AutoencoderRecommender):
    """Mult-VAE (registry ``multvae``); defaults are the paper's (§4.3) and notebook's except
    ``anneal_steps``.

    Attributes:
        dims: encoder widths [600, 200] (K = 200 latent dimensions); the decoder mirrors them.
        dropout: drop-out probability of the normalised input (0.5).
        anneal_cap: the final β (0.2, the notebook's; §2.2.2 anneals and keeps the best).
        anneal_steps: minibatch updates over which β grows linearly from 0 to 1 (it stops at
            ``anneal_cap``, reached after ``anneal_cap · anneal_steps`` updates). The notebook
            uses 200,000, sized for ML-20M (~230 updates an epoch); on ML-1M's 13 updates an
            epoch (``-p jca``) β would stay below 0.013 for 200 epochs. Ours, 2,000 (β = 0.2
            from update 400, about epoch 31), validated a little better than 200,000 on ML-1M
            F1@10 (one seed; docs/defaults.md).
        l2: λ on Σ‖W‖² of all weights, added to the batch-mean loss (notebook: 0 for the VAE).
        batch_size: users per minibatch (500).
        lr: Adam learning rate (1e-3).
        epochs: maximum epochs (the notebook runs 200); early stopping picks the epoch.
    """

    name: ClassVar[str] = "multvae"
    variational: ClassVar[bool] = True
    dims: tuple[int, ...] = (600, 200)
    dropout: float = 0.5
    anneal_cap: float = 0.2
    anneal_steps: int = 2000
    l2: float = 0.0
    batch_size: int = 500
    lr: float = 1e-3
    epochs: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        self.dims = tuple(self.dims)  # a list from TOML/JSON compares equal after save/load

    def build(self, n_users: int, n_items: int) -> None:
        gen = seeded_generator(self.seed)
        self.module_ = MultAEModule(n_items, self.dims, self.variational, gen)
        self._clear_caches()

    def beta(self, step: int) -> float:
        """β at minibatch update ``step`` (0-based): min(anneal_cap, step / anneal_steps)."""
        if self.anneal_steps == 0:
            return float(self.anneal_cap)
        return min(float(self.anneal_cap), step / self.anneal_steps)

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        options = options or FitOptions()
        csr, module, graph, opt = self._setup(train, options)
        device = graph.device
        users = np.flatnonzero(np.diff(csr.indptr) > 0)  # an empty row has no likelihood
        clock = {"step": 0}  # β's clock: minibatch updates so far, across epochs (resumable)

        def batches(rng: np.random.Generator):
            order = rng.permutation(users)
            for s in range(0, len(order), self.batch_size):
                yield (torch.from_numpy(np.sort(order[s : s + self.batch_size])).to(device),)

        def loss_fn(rows: torch.Tensor) -> torch.Tensor:
            bag = graph.user_bag(rows)
            keep = torch.rand(bag.values.shape, device=device) >= self.dropout
            r = torch.repeat_interleave(torch.arange(len(rows), device=device), _lens(bag))
            noisy = normalise_bag(bag, keep, self.dropout)
            mu, logvar = module.encode(kept_bag(noisy, keep, r, len(rows), self.n_items_))
            x = torch.zeros(len(rows), self.n_items_, device=device)
            x.index_put_((r, bag.index), bag.values)  # the uncorrupted x_u is the target
            loss = self._objective(module, mu, logvar, x, self.beta(clock["step"]))
            clock["step"] += 1
            return loss + self.l2 * module.squared_weights() if self.l2 else loss

        train_loop(
            self, module, opt, batches, loss_fn, epochs=self.epochs, options=options, state=clock
        )
        self._clear_caches(keep_graph=True)
        return self

    def _objective(self, module, mu, logvar, x, beta: float) -> torch.Tensor:  # noqa: ANN001
        """−L_β averaged over the batch's users, one sample z = μ + ε ⊙ σ each."""
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return losses.multinomial(module.decode(z), x) + beta * losses.gaussian_kl(mu, logvar)

    # ------------------------------------------------------------------- scoring
    def _candidate_scores(self, graph: RatingGraph, u: torch.Tensor, cand: torch.Tensor):
        """Logits of the candidates ``cand`` (B, C) only (``AutoencoderRecommender.score_items``);
        logits rank a row's candidates as π does (one normaliser a row)."""
        module = self.module_.eval()
        mu, _ = module.encode(normalise_bag(graph.user_bag(u)))
        return module.decode_at(mu, cand).float().cpu()

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU logits f_θ(μ_φ(x_u)) from the users' training rows x_u (no
        drop-out, no sampling); softmax is monotone, so they rank as π(z_u)."""
        users = self.check_users(users)
        graph = self._graph(self._device())
        return self._logits(graph.user_bag(torch.from_numpy(users).to(graph.device)))

    @torch.no_grad()
    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU logits for users unseen in training, encoded from their rows
        ``rows`` (B, n_items), scipy sparse, any value > 0 = a click: the paper's strong
        generalisation (fold-in), no retraining."""
        self.check_fitted()
        csr = self.check_rows(rows)
        return self._logits(RatingGraph.bag_from_csr(csr, self._device()))

    def _logits(self, bag: tuple) -> torch.Tensor:
        module = self.module_.eval()
        mu, _ = module.encode(normalise_bag(bag))
        return module.decode(mu).float().cpu()

    def _check_params(self) -> None:
        for key in ("batch_size", "epochs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if not self.dims or not all(isinstance(d, int) and d >= 1 for d in self.dims):
            raise ValueError(f"dims must be a non-empty list of positive integers, got {self.dims}")
        if not (is_finite_number(self.dropout) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not (is_finite_number(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (is_finite_number(self.l2) and self.l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0, got {self.l2!r}")
        if not (is_finite_number(self.anneal_cap) and self.anneal_cap >= 0):
            raise ValueError(f"anneal_cap must be a finite number >= 0, got {self.anneal_cap!r}")
        steps = self.anneal_steps
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
            raise ValueError(f"anneal_steps must be an integer >= 0, got {steps!r}")


@dataclass(kw_only=True)
class MultDAE(MultVAE):
    """Mult-DAE (registry ``multdae``): Mult-VAE's network without the latent noise (the
    encoder's 200-unit layer is a tanh layer) and without the KL term; the loss is the
    negated multinomial log-likelihood of the uncorrupted row given the dropped-out one, plus
    ``l2`` · Σ‖W‖² (§2.3, Eq. 7; the weight decay of §4.3). ``l2`` = 2e-5 is the notebook's
    0.01 / batch size on a batch-mean loss (lam = 0.01 / 500). The notebook's Mult-DAE is
    [I → 200 → I] (``dims=[200]``); the paper's [I → 600 → 200 → 600 → I] is our default.
    ``anneal_cap`` and ``anneal_steps`` are unused. The figures of a run with these defaults
    on ML-1M are in docs/defaults.md."""

    name: ClassVar[str] = "multdae"
    variational: ClassVar[bool] = False
    l2: float = 2e-5

    def _objective(self, module, mu, logvar, x, beta: float) -> torch.Tensor:  # noqa: ANN001
        return losses.multinomial(module.decode(mu), x)


def kept_bag(bag: tuple, keep: torch.Tensor, row: torch.Tensor, n_rows: int, n_items: int) -> Bag:
    """The drop-out input ``bag`` (``normalise_bag`` with ``keep``) without its dropped entries,
    and the transposed selection for ``SparseLinear``'s weight gradient.

    A dropped entry weighs 0, so it adds nothing to the first layer's sum Σ_j x̃_uj W_j (an
    exact 0 · W_j) nor to its weight gradient; leaving the ~``dropout`` share of them out
    halves the bag's gather and scatter. ``row`` (nnz,) is each entry's row in the bag. The
    gradient x̃ᵀ G is an embedding bag over G's rows per item (``sparse_input._BagProduct``),
    not PyTorch's embedding-bag backward, which sorts every entry and scatters it one row at
    a time (about 4x slower)."""
    kept = torch.nonzero(keep).squeeze(1) if keep.device.type != "cpu" else None
    if kept is None:  # numpy's flatnonzero: several times faster than torch.nonzero on CPU
        kept = torch.from_numpy(np.flatnonzero(keep.numpy()))
    # index_select, not []: several times faster for long 1-D gathers on CPU.
    index, values, row = (t.index_select(0, kept) for t in (bag[0], bag[2], row))
    counts = torch.bincount(row, minlength=n_rows)
    offsets = torch.cumsum(counts, 0) - counts

    def transpose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Stable: within an item the entries stay in row order.
        order = torch.argsort(index, stable=True)
        per_item = torch.bincount(index, minlength=n_items)
        t_offsets = torch.cumsum(per_item, 0) - per_item
        return row.index_select(0, order), t_offsets, values.index_select(0, order)

    return Bag(index, offsets, values, transpose)


def _linears(ins: list[int] | tuple[int, ...], outs: list[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(ins, outs, strict=True))


def _lens(bag: tuple) -> torch.Tensor:
    """(B,) number of nonzeros of each row of a bag."""
    offsets = bag[1]
    return torch.diff(offsets, append=offsets.new_tensor([len(bag[0])]))
