"""Recommendations from a fitted model: top-K item lists with excluded items never returned.

The one implementation of masking and top-K behind ``Recommender.recommend``, ``ncflab
recommend`` and anything that serves a model.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.evaluation.protocols import default_batch

__all__ = ["top_k"]


def top_k(
    model: object,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items for each user index, best first.

    Args:
        model: anything with ``score(users) -> (B, n_items)``.
        users: (B,) user indices.
        k: how many items per user (a positive integer).
        exclude: (n_users, n_items) matrix whose non-zeros are never recommended (the items
            a user already has).
        batch_size: users scored at a time; None: as full-ranking evaluation batches them
            (``protocols.default_batch``, by the model's ``n_items_``).

    Returns:
        items (B, k') int64 and scores (B, k') float32 with k' = min(k, n_items). An excluded
        item is never returned: a user with fewer than k allowed items gets them all, and the
        rest of the row is item -1 with score -inf.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if batch_size is None:
        batch_size = default_batch("full", int(getattr(model, "n_items_", 0) or 0))
    # Filled in place, not joined from per-batch pieces: small arrays that outlive a batch
    # fragment the heap between the batches' large score matrices (see protocols.evaluate).
    items_out, scores_out = np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = torch.as_tensor(model.score(batch), dtype=torch.float32).clone()
        allowed = torch.ones_like(scores, dtype=torch.bool)
        if exclude is not None:
            sub = exclude[batch].tocoo()
            allowed[torch.as_tensor(sub.row), torch.as_tensor(sub.col)] = False
        # An allowed item may itself score -inf (a model's way of saying "never"), so the
        # excluded ones are told apart by the mask, not by their score.
        scores[~allowed] = -torch.inf
        top = torch.topk(scores, min(int(k), scores.shape[1]), dim=1)
        kept = torch.gather(allowed, 1, top.indices)
        items = torch.where(kept, top.indices, -1)
        values = torch.where(kept, top.values, -torch.inf)
        if start == 0:
            items_out = np.empty((len(users), items.shape[1]), np.int64)
            scores_out = np.empty((len(users), items.shape[1]), np.float32)
        items_out[start : start + len(batch)] = items.numpy()
        scores_out[start : start + len(batch)] = values.numpy()
    return items_out, scores_out
