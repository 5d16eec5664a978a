"""Synthetic rating data shaped like a real data set, for scale tests where the real files are
too large to carry or cannot be downloaded: the same numbers of users, items and records, a
power-law activity per user and popularity per item, every user with enough records for a
leave-one-out split.

``SHAPES`` holds the shapes of the J-NCF paper's data sets after its filtering (Table 4);
``power_law_ratings`` builds a frame of any shape, deterministically from its seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SHAPES", "power_law_ratings"]

# (users, items, records) after the paper's filtering (J-NCF Table 4).
SHAPES: dict[str, tuple[int, int, int]] = {
    "amazon-electronics": (1_221_341, 157_003, 4_486_501),
}

# Redraw rounds for (user, item) pairs drawn twice; each round redraws only the repeats.
_ROUNDS = 50


def power_law_ratings(
    n_users: int,
    n_items: int,
    n_records: int,
    *,
    min_per_user: int = 3,
    user_shape: float = 2.0,
    item_exponent: float = 0.6,
    seed: int = 0,
) -> pd.DataFrame:
    """A frame of ``n_records`` distinct (user, item) ratings with columns user, item, rating
    (1–5), timestamp; user ids 0..n_users−1 all present, item ids in 0..n_items−1.

    Each user has ``min_per_user`` records (three: train, validation and test of a
    leave-one-out split) plus a share of the rest in proportion to a Pareto(``user_shape``)
    weight: a few users with hundreds of records, most with the minimum, as in review data.
    Items are drawn by a Zipf popularity ∝ rank^−``item_exponent``, distinct within a user.
    Ratings lean high (1–5 with probabilities .05/.07/.13/.25/.50, as in Amazon reviews);
    timestamps are a random order per user.

    The defaults are a choice: no per-user or per-item distribution of the filtered data is
    published. At the Amazon Electronics shape they give a most active user of 449 records
    (99th percentile 7), a most rated item of 14,930 and every item used; shape 1.2 and
    exponent 0.9 gave a user of 17,790 records and one item with 4 % of all records.
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_records", n_records)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if n_records < min_per_user * n_users:
        raise ValueError(
            f"n_records ({n_records:,}) must be at least min_per_user × n_users "
            f"({min_per_user} × {n_users:,}): every user needs {min_per_user} records"
        )
    if min_per_user > n_items:
        raise ValueError(f"min_per_user ({min_per_user}) is more than the items ({n_items})")
    rng = np.random.default_rng(seed)
    degree = _user_degrees(rng, n_users, n_items, n_records, min_per_user, user_shape)
    users = np.repeat(np.arange(n_users, dtype=np.int64), degree)
    popularity = np.arange(1, n_items + 1, dtype=np.float64) ** -item_exponent
    cdf = np.cumsum(popularity / popularity.sum())
    items = _distinct_items(rng, users, cdf, n_items)
    # Item ids in a random order, so that id order does not follow popularity.
    items = rng.permutation(n_items)[items]
    rating = rng.choice(np.arange(1, 6), size=len(users), p=[0.05, 0.07, 0.13, 0.25, 0.50])
    stamp = rng.permutation(len(users)).astype(np.int64)
    return pd.DataFrame({"user": users, "item": items, "rating": rating, "timestamp": stamp})


def _user_degrees(
    rng: np.random.Generator, n_users: int, n_items: int, n_records: int, low: int, shape: float
) -> np.ndarray:
    """Records per user: ``low`` each, the rest shared in proportion to Pareto weights, none
    over ``n_items``; sums to ``n_records`` exactly."""
    weight = rng.pareto(shape, n_users) + 1.0
    degree = low + rng.multinomial(n_records - low * n_users, weight / weight.sum())
    over = degree - n_items
    while (over > 0).any():  # a user cannot rate more items than there are: move the excess
        excess = int(over[over > 0].sum())
        degree = np.minimum(degree, n_items)
        room = (n_items - degree).astype(np.float64)
        degree += rng.multinomial(excess, room / room.sum())
        over = degree - n_items
    return degree


def _distinct_items(
    rng: np.random.Generator, users: np.ndarray, cdf: np.ndarray, n_items: int
) -> np.ndarray:
    """One item per entry of ``users`` (sorted), by the popularity ``cdf``, distinct within a
    user: all drawn at once, then only the repeats redrawn until none is left."""
    items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), n_items - 1)
    for _ in range(_ROUNDS):
        key = users * n_items + items
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(len(key), dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        if not repeat.any():
            return items
        # Redraw uniformly: a popularity draw would often repeat the same popular items.
        items[repeat] = rng.integers(0, n_items, int(repeat.sum()))
    raise RuntimeError(f"items still repeat within a user after {_ROUNDS} redraws")
