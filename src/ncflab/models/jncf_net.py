"""J-NCF network: DF networks (Eq. 3–4), fusion (Eq. 5), DI MLP (Eq. 6) and h (Eq. 7).

Chen et al., "Joint Neural Collaborative Filtering for Recommender Systems", ACM TOIS 2019, §3.
The estimator that trains and ranks with it is ``ncflab.models.jncf.JNCF``.

Speed: the first DF layer is an embedding bag over the nonzeros of v_u / v_i, weighted by the
ratings (``sparse_input.SparseLinear`` over ``RatingGraph`` bags), so a minibatch costs O(nnz of
its rows), never a dense (B, n_items) input; users and items repeated in a minibatch are
computed once, and a minibatch whose items hold most of R (ML-1M at batch 4096) computes every
item's column instead (``RatingGraph.item_layer``). For J-NCFc the first DI layer splits as
W [z_u; z_i] = W_u z_u + W_i z_i, so it is applied once per user and once per item, and ranking
all items for a user costs one add, ReLU and the small DI tail per item.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ncflab.models.sparse_input import RatingGraph, SparseLinear

__all__ = ["JNCFModule", "table6_layers"]


def table6_layers(df_depth: int, di_depth: int) -> tuple[list[int], list[int]]:
    """Layer widths for J-NCF Table 6's (DF-i, DI-j) depths, i, j in 1…5.

    The paper gives only the defaults, DF-3 = [256, 128, 64] and DI-2 = [128, 8], and states
    that the user/item embedding size (64) matches the baselines and that the last DI layer (8)
    matches NCF (§4.2.2). We keep both ends fixed and double the widths towards the input:
    DF-i = [64·2^(i−1), …, 128, 64] (DF-5 = [1024, 512, 256, 128, 64]); DI-1 = [8] and
    DI-j = [128, 64, …, 8] (halving from 128, last layer 8: DI-5 = [128, 64, 32, 16, 8]).
    """
    for name, depth in (("df_depth", df_depth), ("di_depth", di_depth)):
        if not 1 <= depth <= 5:
            raise ValueError(f"{name} must be in 1…5 (Table 6), got {depth}")
    df = [64 * 2**k for k in range(df_depth - 1, -1, -1)]
    di = [128 // 2**k for k in range(di_depth - 1)] + [8]
    return df, di


def _mlp(widths: list[int]) -> nn.Sequential:
    """Linear + ReLU from widths[k] to widths[k + 1] (Eq. 4 and 6 use ReLU on every layer)."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class JNCFModule(nn.Module):
    """Net_user, Net_item (Eq. 4), the fusion (Eq. 5), the DI MLP (Eq. 6) and h (Eq. 7)."""

    def __init__(
        self, n_users: int, n_items: int, df: list[int], di: list[int], fusion: str,
        init: str, seed: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.user_in, self.user_mlp = SparseLinear(n_items, df[0]), _mlp(df)
        self.item_in, self.item_mlp = SparseLinear(n_users, df[0]), _mlp(df)
        self.fusion, self.d = fusion, df[-1]
        self.di_in = nn.Linear(2 * df[-1] if fusion == "concat" else df[-1], di[0])
        self.di_mlp = _mlp(di)
        self.h = nn.Linear(di[-1], 1, bias=False)  # Eq. 7 has no bias
        # Widest per-pair tensor while ranking (multiply materialises z_u ⊙ z_i).
        self.di_width = di[0] if fusion == "concat" else max(di[0], df[-1])
        _initialise(self, init, seed)

    def embed_users(self, *bag: torch.Tensor) -> torch.Tensor:
        """z_u (U, d) from bag inputs of v_u (Eq. 4)."""
        return self.user_mlp(F.relu(self.user_in(*bag)))

    def embed_items(self, *bag: torch.Tensor) -> torch.Tensor:
        """z_i (I, d) from bag inputs of v_i (Eq. 4)."""
        return self.item_mlp(F.relu(self.item_in(*bag)))

    def project_user(self, zu: torch.Tensor) -> torch.Tensor:
        """User side of Eq. 5 + the first DI layer: W_u z_u + b for concat (W = [W_u, W_i]),
        z_u itself for multiply. (..., d) → (..., w)."""
        if self.fusion == "concat":
            return F.linear(zu, self.di_in.weight[:, : self.d], self.di_in.bias)
        return zu

    def project_item(self, zi: torch.Tensor) -> torch.Tensor:
        """Item side: W_i z_i for concat, z_i for multiply. (..., d) → (..., w)."""
        if self.fusion == "concat":
            return F.linear(zi, self.di_in.weight[:, self.d :])
        return zi

    def combine(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """First DI pre-activation W¹ a_ui + b¹ from broadcastable projections p and q."""
        if self.fusion == "concat":
            return p + q
        return self.di_in(p * q)

    def head(self, pre: torch.Tensor) -> torch.Tensor:
        """Logits hᵀ z_ui (Eq. 6–7 before σ) from first-layer pre-activations (..., di[0])."""
        return self.h(self.di_mlp(F.relu(pre))).squeeze(-1)

    def train_logits(
        self, graph: RatingGraph, users: torch.Tensor, items: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(B, 1 + n_neg) logits for ``users`` (B,) and ``items`` (B, 1 + n_neg), column 0 the
        positive. With ``mask`` (B,) = y_ui, the positive's v_u and v_i omit y_ui."""
        uu, inv_u = torch.unique(users, return_inverse=True)  # each user/item computed once
        ii, inv_i = torch.unique(items, return_inverse=True)
        pre_u = graph.user_layer(self.user_in, uu)
        pre_i = graph.item_layer(self.item_in, ii)
        p = self.project_user(self.user_mlp(F.relu(pre_u)))[inv_u][:, None]  # (B, 1, w)
        q = self.project_item(self.item_mlp(F.relu(pre_i)))[inv_i]  # (B, 1 + n_neg, w)
        logits = self.head(self.combine(p, q))
        if mask is None:
            return logits
        # The first layer is linear in v: dropping y_ui from v_u subtracts y_ui · W¹_user[:, i].
        m = mask[:, None]
        pu = pre_u[inv_u] - m * self.user_in.weight[items[:, 0]]
        pi = pre_i[inv_i[:, 0]] - m * self.item_in.weight[users]
        zu, zi = self.user_mlp(F.relu(pu)), self.item_mlp(F.relu(pi))
        pos = self.head(self.combine(self.project_user(zu), self.project_item(zi)))
        return torch.cat([pos[:, None], logits[:, 1:]], dim=1)


def _initialise(module: nn.Module, init: str, seed: int) -> None:
    """Seeded init: "normal" = N(0, 0.01²) for every parameter (paper §4.2.2); "default" =
    PyTorch's nn.Linear init U(±1/√fan_in) for weights and biases (also for the bags)."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, SparseLinear):
                fan_in, params = m.weight.shape[0], [m.weight, m.bias]
            elif isinstance(m, nn.Linear):
                fan_in, params = m.in_features, [p for p in (m.weight, m.bias) if p is not None]
            else:
                continue
            for p in params:
                if init == "normal":
                    nn.init.normal_(p, 0.0, 0.01, generator=gen)
                elif init == "kaiming":
                    bound = math.sqrt(6.0 / fan_in) if p.dim() == 2 else 0.0
                    nn.init.uniform_(p, -bound, bound, generator=gen)
                else:
                    bound = 1.0 / math.sqrt(fan_in)
                    nn.init.uniform_(p, -bound, bound, generator=gen)
