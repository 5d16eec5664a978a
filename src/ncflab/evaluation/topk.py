"""Recommendations from a fitted model: top-K item lists with already-seen items excluded."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.models.base import Recommender

__all__ = ["top_k"]


def top_k(
    model: Recommender,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items for each user index.

    Args:
        users: (B,) user indices.
        exclude: (n_users, n_items) matrix whose non-zeros are never recommended (e.g. train).

    Returns:
        items (B, k') int64 and scores (B, k') float32, best first, with k' = min(k, n_items).
        Excluded items get -inf and so come last; they only appear when a user has fewer than
        k allowed items, with score -inf.
    """
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    users = np.asarray(users, dtype=np.int64)
    items_out, scores_out = [], []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = torch.as_tensor(model.score(batch), dtype=torch.float32).clone()
        if exclude is not None:
            sub = exclude[batch].tocoo()
            scores[torch.as_tensor(sub.row), torch.as_tensor(sub.col)] = -torch.inf
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        items_out.append(top.indices.numpy())
        scores_out.append(top.values.numpy())
    if not items_out:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(items_out), np.concatenate(scores_out)
