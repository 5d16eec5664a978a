"""Non-personalised baselines: most popular items (ItemPop) and random scores.

ItemPop is the floor every paper reports (e.g. NCF, He et al. 2017, Sec. 4.1; J-NCF Sec. 5.1.3);
Random is the chance level that checks an evaluation protocol (HR@K ≈ K / number of candidates).
Both learn in closed form, so they implement ``fit`` directly with no training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.training.options import FitOptions

__all__ = ["ItemPop", "RandomRecommender"]


@dataclass(kw_only=True)
class ItemPop(Recommender):
    """Scores every item by its number of training interactions, the same for every user.

    Learned state: ``popularity_`` (n_items,) float32 interaction counts.
    """

    name: ClassVar[str] = "itempop"

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.popularity_ = train.item_counts().astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32: each row is ``popularity_`` (a real copy, not a broadcast view,
        because the evaluator masks training items in place)."""
        users = self.check_users(users)
        return torch.from_numpy(self.popularity_).repeat(len(users), 1)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 popularity of the candidate ``items`` (B, C)."""
        self.check_users(users)
        return torch.from_numpy(self.popularity_[np.asarray(items, dtype=np.int64)])


# SplitMix64 constants (Steele et al., OOPSLA 2014): a cheap bijective mixer of 64-bit keys.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Element-wise SplitMix64 finaliser of a uint64 array (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@dataclass(kw_only=True)
class RandomRecommender(Recommender):
    """Random scores in [0, 1), a fixed function of (seed, user, item).

    Scores are hashed rather than drawn from a stream so that ``score`` and ``score_items``
    agree and repeated or differently batched calls return the same numbers.
    """

    name: ClassVar[str] = "random"

    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 random scores."""
        users = self.check_users(users)
        items = np.broadcast_to(
            np.arange(self.n_items_, dtype=np.int64), (len(users), self.n_items_)
        )
        return self._hash_scores(users, items)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 random scores of candidate ``items`` (B, C)."""
        users = self.check_users(users)
        return self._hash_scores(users, np.asarray(items, dtype=np.int64))

    def _hash_scores(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        key = _splitmix64(np.array([self.seed % 2**64], dtype=np.uint64))
        key = _splitmix64(key ^ users.astype(np.uint64)[:, None])
        key = _splitmix64(key ^ items.astype(np.uint64))
        # The top 24 bits: exactly representable in float32, so scores are uniform in [0, 1).
        return torch.from_numpy((key >> np.uint64(40)).astype(np.float32) / np.float32(2**24))
