"""The NCR networks (Song et al. 2018, §4): NBPR, DNCR and NeuPR as ``nn.Module``s.

Each network maps a triplet (u, i, j) to a logit x̂_uij with ŷ_uij = σ(x̂_uij) (Eq. 6). Every NCR
network is linear in the item embeddings up to its first non-linearity, so the logit splits as

    x̂_uij = head(first(u, i) − second(u, j)),

with ``first``/``second`` (…, h) the user-and-item side of the first layer and ``head`` the rest.
``sides(users, items)`` returns both sides of every item of a candidate set once (O(C)), after
which the C × C pair logits of a whole candidate set are one broadcast and one ``head`` call: the
first layer is never recomputed per pair. ``logits(users, a, b)`` scores given triplets.

- NBPR (Eq. 16–17): first = w₁ᵀ(U_u ⊙ V_i), second = w₂ᵀ(U_u ⊙ V_j), head = identity (h = 1).
- DNCR (Eq. 23): x₁ = [U_u; V_i; −V_j] enters W₂ as W₂ᵤU_u + W₂ᵢV_i − W₂ⱼV_j + b₂, so first =
  W₂ᵤU_u + W₂ᵢV_i + b₂, second = W₂ⱼV_j, head = tanh, W₃, tanh, …, W_N, tanh, then w.
- NeuPR (Eq. 25): σ(wᵀ[f^N; f^D]) = σ(w_Nᵀf^N + w_Dᵀf^D), the sum of an NBPR and a DNCR logit
  with separate embeddings; its sides are the parts' sides side by side.
"""

from __future__ import annotations

import torch
from torch import nn

from ncflab.training.layers import embedding, lookup, seeded_generator

__all__ = ["DNCRNet", "NBPRNet", "NeuPRNet", "PairNet", "tower_widths"]


def tower_widths(factors: int, layers: int) -> list[int]:
    """Widths of DNCR's hidden layers 2..N (layer 1 is the concatenation x₁): a tower that
    halves layer by layer down to ``factors`` (§4.5, §5.1: factors 8, N = 4 → [32, 16, 8])."""
    return [factors * 2 ** (layers - level) for level in range(2, layers + 1)]


def _linear(fan_in: int, fan_out: int, bias: bool, std: float, gen: torch.Generator) -> nn.Linear:
    """A Linear layer with bias 0 and weights ~ N(0, std²) (§5.1: every weight Gaussian, std
    0.01), or, for ``std=0``, Glorot-uniform U(±√(6/(fan_in + fan_out))), Keras' default."""
    layer = nn.Linear(fan_in, fan_out, bias=bias)
    with torch.no_grad():
        if std > 0:
            nn.init.normal_(layer.weight, 0.0, std, generator=gen)
        else:
            nn.init.xavier_uniform_(layer.weight, generator=gen)
        if bias:
            layer.bias.zero_()
    return layer


class PairNet(nn.Module):
    """What the NCR estimators need from a network: ``sides``, ``head`` and ``width``."""

    width: int  # h, the width of the sides

    def sides(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Users (B,) and items (B or 1, C) → (first, second), each (B or 1, C, h)."""
        raise NotImplementedError

    def head(self, z: torch.Tensor) -> torch.Tensor:
        """(…, h) = first(u, i) − second(u, j) → (…) logits x̂_uij."""
        raise NotImplementedError

    def logits(self, users: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(B,) logits x̂_{u a b} of the triplets (users, a, b), all (B,) int64 indices."""
        first, second = self.sides(users, torch.stack([a, b], dim=1))  # (B, 2, h)
        return self.head(first[:, 0] - second[:, 1])

    def pair_logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, C, C) logits L[b, c, c'] = x̂(u_b, items[b, c], items[b, c']) of every ordered
        pair of a candidate set (B, C); the diagonal is x̂_uii."""
        return self.pair_head(*self.sides(users, items))

    def pair_head(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(B, C, C) ``head`` of first[:, c] − second[:, c'] for sides (B, C, h)."""
        return self.head(first[:, :, None, :] - second[:, None, :, :])


class NBPRNet(PairNet):
    """NBPR (Eq. 16–17): ŷ_uij = σ(wᵀ[U_u ⊙ V_i; −U_u ⊙ V_j]) with w = [w₁; w₂] learned; with
    w = 1 and a_out = log σ (Eq. 18) it is BPR-MF. Embeddings (n, factors), w (2, factors)."""

    def __init__(
        self, n_users: int, n_items: int, factors: int, std: float, dense_std: float, seed: int
    ) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        self.user = embedding(n_users, factors, std, gen)
        self.item = embedding(n_items, factors, std, gen)
        # w is the output layer's weight (2d → 1), initialised like DNCR's dense layers.
        w = _linear(2 * factors, 1, False, dense_std, gen).weight.detach()
        self.w = nn.Parameter(w.view(2, factors).clone())
        self.width = 1

    def sides(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = lookup(self.user, users)  # (B, d)
        v = lookup(self.item, items)  # (B or 1, C, d)
        # w₁ᵀ(U_u ⊙ V_i) = V_i · (w₁ ⊙ U_u): a (B, C, 1) matrix product per side.
        return v @ (u * self.w[0])[:, :, None], v @ (u * self.w[1])[:, :, None]

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return z[..., 0]

    def logits(self, users: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # Eq. 17 literally, in fewer operations than via the sides (training is op-bound).
        u = lookup(self.user, users)[:, None, :]  # (B, 1, d)
        f = u * lookup(self.item, torch.stack([a, b], dim=1))  # (B, 2, d): U⊙V_a, U⊙V_b
        return (f * torch.stack([self.w[0], -self.w[1]])).sum((1, 2))

    def output_weight(self) -> torch.Tensor:
        """w, the weight Eq. 26 scales by α when NeuPR is pre-trained."""
        return self.w


class DNCRNet(PairNet):
    """DNCR (Eq. 23): x₁ = [U_u; V_i; −V_j], x_l = tanh(W_l x_{l−1} + b_l) for l = 2..N with the
    halving ``tower_widths``, ŷ = σ(wᵀx_N). With N = 1 the output reads x₁ directly."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int,
        factors: int,
        layers: int,
        std: float,
        dense_std: float,
        seed: int,
    ) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        self.user = embedding(n_users, embedding_dim, std, gen)
        self.item = embedding(n_items, embedding_dim, std, gen)
        widths = tower_widths(factors, layers)
        d = embedding_dim
        # W₂ (or, for N = 1, the output w, which has no bias in Eq. 23) applied to x₁.
        self.first = _linear(3 * d, widths[0] if widths else 1, bool(widths), dense_std, gen)
        rest: list[nn.Module] = [nn.Tanh()] if widths else []
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            rest += [_linear(fan_in, fan_out, True, dense_std, gen), nn.Tanh()]
        self.tower = nn.Sequential(*rest)
        self.out = _linear(widths[-1], 1, False, dense_std, gen) if widths else None
        self.width = widths[0] if widths else 1
        self.dim = d

    def sides(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, weight = self.dim, self.first.weight  # (h, 3d): blocks for U_u, V_i and −V_j
        u = lookup(self.user, users) @ weight[:, :d].T  # (B, h)
        if self.first.bias is not None:
            u = u + self.first.bias
        v = lookup(self.item, items)  # (B or 1, C, d)
        first = u[:, None, :] + v @ weight[:, d : 2 * d].T
        return first, v @ weight[:, 2 * d :].T

    def head(self, z: torch.Tensor) -> torch.Tensor:
        if self.out is None:
            return z[..., 0]
        return self.out(self.tower(z))[..., 0]

    def logits(self, users: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # Eq. 23 literally, x₁ = [U_u; V_a; −V_b]: fewer operations than via the sides.
        v = lookup(self.item, torch.stack([a, b], dim=1))  # (B, 2, d)
        x1 = torch.cat([lookup(self.user, users), v[:, 0], -v[:, 1]], dim=1)
        return self.head(self.first(x1))

    def pair_head(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """``head`` over all C × C pairs, rewritten for speed when no gradient is needed:
        tanh(x) = 2σ(2x) − 1, and σ costs about a third of tanh on CPU. With g = σ(2z), the
        next layer's σ argument 2(W(2g − 1) + b) = 4W g + 2(b − W1) folds into its weights, and
        wᵀ(2g − 1) = 2wᵀg − Σw, so the tower runs on σ alone, in place: the same function
        (equal to the tanh tower up to float rounding)."""
        if self.out is None or torch.is_grad_enabled():
            return super().pair_head(first, second)
        b, c, h = first.shape
        g = ((2 * first)[:, :, None, :] - (2 * second)[:, None, :, :]).view(-1, h).sigmoid_()
        for layer in self.tower:
            if isinstance(layer, nn.Linear):
                weight, bias = layer.weight, layer.bias
                g = torch.addmm(2 * (bias - weight.sum(1)), g, 4 * weight.T).sigmoid_()
        w = self.out.weight  # (1, factors)
        return (g @ (2 * w.T) - w.sum()).view(b, c, second.shape[1])

    def output_weight(self) -> torch.Tensor:
        """w of Eq. 23 (x₁'s weight when N = 1), which Eq. 26 scales by 1 − α."""
        return self.first.weight if self.out is None else self.out.weight


class NeuPRNet(PairNet):
    """NeuPR (Eq. 25): an NBPR part and a DNCR part with separate embeddings; the output weight
    over their concatenated last layers is [w_N; w_D], so x̂ = x̂^NBPR + x̂^DNCR."""

    def __init__(self, nbpr: NBPRNet, dncr: DNCRNet) -> None:
        super().__init__()
        self.nbpr, self.dncr = nbpr, dncr
        self.width = nbpr.width + dncr.width

    def sides(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (f_n, s_n), (f_d, s_d) = self.nbpr.sides(users, items), self.dncr.sides(users, items)
        return _cat(f_n, f_d), _cat(s_n, s_d)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        k = self.nbpr.width
        return self.nbpr.head(z[..., :k]) + self.dncr.head(z[..., k:])

    def logits(self, users: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.nbpr.logits(users, a, b) + self.dncr.logits(users, a, b)

    def pair_head(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        k = self.nbpr.width
        nbpr = self.nbpr.pair_head(first[..., :k], second[..., :k])
        return nbpr + self.dncr.pair_head(first[..., k:], second[..., k:])

    @torch.no_grad()
    def fuse(self, nbpr: NBPRNet, dncr: DNCRNet, alpha: float) -> None:
        """Eq. 26: load pre-trained NBPR and DNCR weights, then w ← [α w_N; (1 − α) w_D]."""
        self.nbpr.load_state_dict(nbpr.state_dict())
        self.dncr.load_state_dict(dncr.state_dict())
        self.nbpr.output_weight().mul_(alpha)
        self.dncr.output_weight().mul_(1.0 - alpha)


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[a; b] along the last axis after broadcasting the leading ones (a side of all items may
    have batch 1 in one part and B in the other)."""
    lead = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*lead, -1), b.expand(*lead, -1)], -1)
