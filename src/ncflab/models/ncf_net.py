"""The NCF networks (He et al., "Neural Collaborative Filtering", WWW 2017, §3) as ``nn.Module``s.

Every NCF model is a *body* that maps (user, item) to a feature vector φ, followed by one output
layer ŷ_ui = σ(hᵀφ + b) (Eq. 9, 10, 12; the bias b is the Keras ``Dense`` default of the authors'
code and does not change a user's ranking):

- ``GMFBody`` (Eq. 8): φ = p_u ⊙ q_i.
- ``MLPBody`` (Eq. 10): φ = a_L(W_L … a_2(W_2 [p_u; q_i] + b_2) … + b_L), ReLU a_x, a tower.
- NeuMF (Eq. 12) is ``NCFNet([GMFBody, MLPBody])``: separate embeddings, φ = [φ^GMF; φ^MLP].

``NCFNet`` scores (B,) items (training) or (B | 1, C) candidate sets (ranking). For candidate
sets the first MLP layer is split, W_2 [p_u; q_i] = W_2ᵘ p_u + W_2ⁱ q_i, so it runs once per user
and once per item instead of once per pair; ``fuse`` is the pre-training initialisation (Eq. 13).
"""

from __future__ import annotations

import torch
from torch import nn

from ncflab.models.products import mm
from ncflab.training.layers import embedding, lookup, seeded_generator

__all__ = ["GMFBody", "MLPBody", "NCFNet", "fuse", "mlp_layers"]

INITS = ("glorot", "normal")


def mlp_layers(factors: int, hidden: int = 3) -> list[int]:
    """The MLP's ``layers`` for ``factors`` predictive factors, in the authors' code convention
    ``[width of [p_u; q_i], hidden 1, …, hidden L]`` (so the embedding size is layers[0] / 2).

    §4.1: a tower that halves layer by layer and ends in the predictive factors; with three
    hidden layers (MLP-3) and 8 factors "the architecture of the neural CF layers is 32 → 16 → 8,
    and the embedding size is 16": [32, 32, 16, 8]. (The authors' README runs [64, 32, 16, 8],
    embedding 32, for 8 factors; pass ``layers`` to get it.)
    """
    widths = [factors * 2 ** (hidden - 1 - k) for k in range(hidden)]
    return [widths[0]] + widths


def _dense(fan_in: int, fan_out: int, init: str, std: float, gen: torch.Generator) -> nn.Linear:
    """A Linear layer with bias 0 and weights by ``init``: "normal" ~ N(0, std²) (§4.1: every
    parameter), or "glorot", Glorot-uniform as the Keras ``Dense`` default of the authors' code."""
    layer = nn.Linear(fan_in, fan_out)
    with torch.no_grad():
        if init == "normal":
            nn.init.normal_(layer.weight, 0.0, std, generator=gen)
        else:
            nn.init.xavier_uniform_(layer.weight, generator=gen)
        layer.bias.zero_()
    return layer


class GMFBody(nn.Module):
    """GMF (Eq. 8): φ = p_u ⊙ q_i with user and item embeddings (n, factors)."""

    def __init__(self, n_users: int, n_items: int, factors: int, std: float, seed: int) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        self.user = embedding(n_users, factors, std, gen)
        self.item = embedding(n_items, factors, std, gen)
        self.width = factors

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """φ for users (B,) and items (B,) → (B, f), or items (B | 1, C) → (B, C, f)."""
        p, q = lookup(self.user, users), lookup(self.item, items)
        return p * q if items.dim() == 1 else p[:, None, :] * q

    def rank(self, users: torch.Tensor, items: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """hᵀφ for users (B,) and candidate sets items (B | 1, C) → (B, C), without the
        (B, C, f) products: hᵀ(p ⊙ q) = (h ⊙ p)ᵀq, one matrix product."""
        p, q = lookup(self.user, users) * h, lookup(self.item, items)
        if items.shape[0] == 1:  # every user against the same items
            return mm(p, q[0].T)
        return torch.bmm(q, p[:, :, None])[..., 0]


class MLPBody(nn.Module):
    """MLP (Eq. 10): embeddings (n, layers[0] / 2), then ReLU layers of widths layers[1:]."""

    def __init__(
        self, n_users: int, n_items: int, layers: list[int], init: str, std: float, seed: int
    ) -> None:
        super().__init__()
        gen = seeded_generator(seed)
        dim = layers[0] // 2
        self.user = embedding(n_users, dim, std, gen)
        self.item = embedding(n_items, dim, std, gen)
        self.tower = nn.ModuleList(
            _dense(a, b, init, std, gen) for a, b in zip(layers[:-1], layers[1:], strict=True)
        )
        self.width, self.dim = layers[-1], dim

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """φ^MLP for users (B,) and items (B,) → (B, w), or items (B | 1, C) → (B, C, w)."""
        p, q = lookup(self.user, users), lookup(self.item, items)
        if not len(self.tower):  # MLP-0: φ = [p_u; q_i]
            if items.dim() == 1:
                return torch.cat([p, q], -1)
            p = p[:, None, :].expand(-1, q.shape[1], -1)
            return torch.cat([p, q.expand(len(p), -1, -1)], -1)
        first, *rest = self.tower
        if items.dim() == 1:
            z = torch.relu(first(torch.cat([p, q], -1)))
        else:  # W [p; q] + b = (W_u p + b) + W_i q: once per user, once per item.
            w, d = first.weight, self.dim
            z = _relu(torch.addmm(first.bias, p, w[:, :d].T)[:, None, :] + q @ w[:, d:].T)
        for layer in rest:
            z = _relu(layer(z))
        return z

    def rank(self, users: torch.Tensor, items: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """hᵀφ^MLP for users (B,) and candidate sets items (B | 1, C) → (B, C)."""
        return self(users, items) @ h


class NCFNet(nn.Module):
    """Bodies side by side and the output layer ŷ = σ(hᵀ[φ_1; …] + b) (Eq. 9, 10, 12); the
    output weight starts by ``init`` ("glorot" means LeCun-uniform here, as the authors' code's
    ``prediction`` layer; "normal" N(0, std²))."""

    def __init__(self, bodies: list[nn.Module], init: str, std: float, seed: int) -> None:
        super().__init__()
        self.bodies = nn.ModuleList(bodies)
        width = sum(b.width for b in bodies)
        gen = seeded_generator(seed)
        self.out = nn.Linear(width, 1)
        with torch.no_grad():
            if init == "normal":
                nn.init.normal_(self.out.weight, 0.0, std, generator=gen)
            else:  # LeCun-uniform: U(±√(3 / fan_in))
                bound = (3.0 / width) ** 0.5
                nn.init.uniform_(self.out.weight, -bound, bound, generator=gen)
            self.out.bias.zero_()

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits hᵀφ + b (ŷ = σ of them) of users (B,) and items (B,) → (B,), or of candidate
        sets items (B | 1, C) → (B, C)."""
        if items.dim() == 2:  # ranking: hᵀ[φ_1; φ_2] = h_1ᵀφ_1 + h_2ᵀφ_2, never concatenated
            hs = self.out.weight[0].split([body.width for body in self.bodies])
            parts = [body.rank(users, items, h) for body, h in zip(self.bodies, hs, strict=True)]
            return sum(parts[1:], parts[0]) + self.out.bias
        phis = [body(users, items) for body in self.bodies]
        if len(phis) > 1:
            phis = [torch.cat(phis, -1)]
        phi = phis[0]
        return self.out(phi)[..., 0]


def _relu(z: torch.Tensor) -> torch.Tensor:
    """ReLU, in place when no gradient is recorded (ranking): the (B, C, width) activations are
    the bulk of scoring, and a copy per layer was a fifth of NeuMF's full ranking."""
    return torch.relu(z) if torch.is_grad_enabled() else z.relu_()


@torch.no_grad()
def fuse(neumf: NCFNet, gmf: NCFNet, mlp: NCFNet, alpha: float) -> None:
    """NeuMF pre-training (§3.4.1, Eq. 13): copy the trained GMF and MLP bodies into NeuMF's
    and set the output weight h ← [α h^GMF; (1 − α) h^MLP]. The bias, absent from Eq. 13, is
    fused the same way, b ← α b^GMF + (1 − α) b^MLP (the authors' code, at α = 0.5)."""
    neumf.bodies[0].load_state_dict(gmf.bodies[0].state_dict())
    neumf.bodies[1].load_state_dict(mlp.bodies[0].state_dict())
    h = torch.cat([alpha * gmf.out.weight, (1.0 - alpha) * mlp.out.weight], dim=1)
    neumf.out.weight.copy_(h)
    neumf.out.bias.copy_(alpha * gmf.out.bias + (1.0 - alpha) * mlp.out.bias)
