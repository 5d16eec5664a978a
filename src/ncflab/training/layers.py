"""Small building blocks shared by the neural models: seeded initialisation helpers.

Modules are built on the CPU from an explicit ``torch.Generator`` so a model's initial weights
depend only on its seed (not on the global RNG state or the device), then moved to the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["embedding", "lookup", "seeded_generator"]


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (for weight initialisation)."""
    return torch.Generator().manual_seed(int(seed))


def embedding(n: int, dim: int, std: float, generator: torch.Generator) -> nn.Embedding:
    """An (n, dim) ``nn.Embedding`` with weights ~ N(0, std²) drawn from ``generator``;
    ``std=0`` gives zeros (used for biases)."""
    emb = nn.Embedding(n, dim)
    with torch.no_grad():
        if std > 0:
            nn.init.normal_(emb.weight, 0.0, std, generator=generator)
        else:
            emb.weight.zero_()
    return emb


def lookup(emb: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """Rows of ``emb`` for an int64 ``index`` of any shape S → (*S, dim).

    Same values as ``emb(index)``. With ``emb.sparse`` (``lazy_adam.sparse_rows``) the weight's
    gradient is the looked-up rows as a sparse tensor, for ``lazy_adam.RowAdam``; otherwise
    ``index_select`` is used because its dense backward (``index_add_``) is about 25% faster on
    CPU than the embedding backward, the costliest step of BPR-style training.
    """
    if emb.sparse and emb.weight.requires_grad and torch.is_grad_enabled():
        return F.embedding(index, emb.weight, sparse=True)
    return emb.weight.index_select(0, index.reshape(-1)).view(*index.shape, -1)
