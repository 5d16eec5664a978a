from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncflab.data import filters
from ncflab.data.interactions import Interactions


def _inter(pairs: list[tuple], ratings: list[float] | None = None, stamps=None) -> Interactions:
    frame = pd.DataFrame(pairs, columns=["user", "item"])
    if ratings is not None:
        frame["rating"] = ratings
    if stamps is not None:
        frame["timestamp"] = stamps
    return Interactions.from_frame(frame)


def _pairs(inter: Interactions) -> set[tuple]:
    frame = inter.to_frame()
    return set(zip(frame["user"], frame["item"], strict=True))


def _random(n_users: int, n_items: int, n: int, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, size=n, replace=False)
    frame = pd.DataFrame({"user": keys // n_items, "item": keys % n_items})
    frame["rating"] = rng.integers(1, 6, size=n).astype(float)
    frame["timestamp"] = rng.integers(0, 10**6, size=n)
    return Interactions.from_frame(frame)


def test_compact_drops_unused_ids_and_keeps_original_ids() -> None:
    inter = _inter([(10, "a"), (20, "b"), (30, "c")])
    sub = filters.compact(inter.subset(np.array([0, 2])))
    assert sub.user_ids.tolist() == [10, 30] and sub.item_ids.tolist() == ["a", "c"]
    assert sub.users.tolist() == [0, 1] and sub.items.tolist() == [0, 1]


def test_k_core_iterates_until_stable_but_min_counts_is_one_pass() -> None:
    # user 3 has 2 records, one on item "z" whose only other user is user 4 (1 record):
    # a single pass at (2, 2) drops user 4; then item "z" has 1 record, so k-core drops it,
    # then user 3 has 1 record and goes too.
    core = [(u, i) for u in (0, 1, 2) for i in ("a", "b", "c")]
    inter = _inter([*core, (3, "a"), (3, "z"), (4, "z")])
    once = filters.min_counts(inter, min_user=2, min_item=2)
    assert _pairs(once) == set(core) | {(3, "a"), (3, "z")}
    k = filters.k_core(inter, min_user=2, min_item=2)
    assert _pairs(k) == set(core)
    assert k.n_users == 3 and k.n_items == 3
    big = _random(200, 100, 3000)
    k = filters.k_core(big, 10, 20)
    assert len(k) and k.user_counts().min() >= 10 and k.item_counts().min() >= 20
    assert filters.min_counts(big, 10, 20).user_counts().min() < 10  # one pass only
    with pytest.raises(ValueError, match="min_user=-1"):
        filters.k_core(big, -1, 2)


def test_rating_threshold() -> None:
    inter = _inter([(0, 0), (0, 1), (1, 1)], ratings=[5.0, 3.0, 4.0])
    kept = filters.rating_threshold(inter, 4)
    assert kept.ratings.tolist() == [5.0, 4.0] and kept.n_items == 2
    with pytest.raises(ValueError, match="needs ratings"):
        filters.rating_threshold(_inter([(0, 0)]), 4)


def test_deduplicate_policies() -> None:
    # pair (0, 0) three times: ratings 2, 5, 3 at times 30, 10, 20 (input order ≠ time order)
    inter = _inter([(0, 0), (0, 0), (1, 0), (0, 0)], [2.0, 5.0, 1.0, 3.0], [30, 10, 5, 20])
    with pytest.raises(ValueError, match=r"2 duplicate record\(s\).*user 0 item 0"):
        filters.deduplicate(inter)
    first = filters.deduplicate(inter, "first")
    assert first.ratings.tolist() == [5.0, 1.0]  # earliest by time; input order kept
    last = filters.deduplicate(inter, "last")
    assert last.ratings.tolist() == [2.0, 1.0] and last.timestamps.tolist() == [30, 5]
    best = filters.deduplicate(inter, "max")
    assert best.ratings.tolist() == [5.0, 1.0]
    mean = filters.deduplicate(inter, "mean")
    assert mean.ratings.tolist() == pytest.approx([10 / 3, 1.0])
    assert mean.timestamps.tolist() == [30, 5]
    untimed = _inter([(0, 0), (0, 0)], [1.0, 2.0])
    assert filters.deduplicate(untimed, "first").ratings.tolist() == [1.0]
    assert filters.deduplicate(untimed, "last").ratings.tolist() == [2.0]
    with pytest.raises(ValueError, match="unknown policy 'newest'"):
        filters.deduplicate(inter, "newest")
    with pytest.raises(ValueError, match="needs ratings"):
        filters.deduplicate(_inter([(0, 0), (0, 0)]), "mean")


def test_sparsity_subset_keeps_every_user_and_item() -> None:
    inter = _random(300, 150, 6000)
    sub = filters.sparsity_subset(inter, 1000, seed=3)
    assert len(sub) == 1000
    assert sub.n_users == inter.n_users and sub.n_items == inter.n_items
    assert sub.user_counts().min() >= 1 and sub.item_counts().min() >= 1
    assert _pairs(sub) <= _pairs(inter)
    again = filters.sparsity_subset(inter, 1000, seed=3)
    assert again.fingerprint() == sub.fingerprint()
    assert filters.sparsity_subset(inter, 1000, seed=4).fingerprint() != sub.fingerprint()
    three = filters.sparsity_subset(inter, 1500, seed=3, min_user_records=3)
    assert three.user_counts().min() >= min(3, inter.user_counts().min())
    with pytest.raises(ValueError, match="too few to keep all 300 users"):
        filters.sparsity_subset(inter, 200, seed=0)
    with pytest.raises(ValueError, match="n_records=7000"):
        filters.sparsity_subset(inter, 7000, seed=0)


def test_sparsity_subsets_of_one_seed_are_nested_as_the_paper_builds_them() -> None:
    inter = _random(300, 150, 6000)
    sizes = [4000, 2500, 1000]
    subsets = [_pairs(filters.sparsity_subset(inter, n, seed=7)) for n in sizes]
    assert [len(s) for s in subsets] == sizes
    assert subsets[2] <= subsets[1] <= subsets[0] <= _pairs(inter)
    # The removed records are spread over the data, not taken from one end of it.
    dropped = _pairs(inter) - subsets[2]
    assert len({u for u, _ in dropped}) > 250


def test_jca_filter_three_passes() -> None:
    # 7 users rate items 0..6 with 5 (positives); user 7 has 6 positives but they are on
    # item 7, rated only by users 7-8 → item 7 has 2 positives, is dropped in pass 2, and
    # user 7 then has too few; user 8 has only ratings ≤ 3.
    pairs = [(u, i) for u in range(7) for i in range(7)]
    ratings = [5.0] * len(pairs)
    pairs += [(7, 7)] + [(7, i) for i in range(5)] + [(8, 7)] + [(8, i) for i in range(6)]
    ratings += [5.0] * 6 + [4.0] + [3.0] * 6
    out = filters.jca_filter(_inter(pairs, ratings))
    assert out.n_users == 7 and out.n_items == 7 and len(out) == 49
    with pytest.raises(ValueError, match="needs ratings"):
        filters.jca_filter(_inter([(0, 0)]))
