"""Property-based tests of the data layer: readers round-trip, splits keep their invariants."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncflab.data.candidates import _first_occurrences
from ncflab.data.fixed import _drop_entries
from ncflab.data.interactions import Interactions
from ncflab.data.splits import carve_validation, leave_one_out, ratio_split, with_negatives
from ncflab.data.user_files import read_user_file

FEW = settings(max_examples=40, deadline=None)

# ----------------------------------------------------------------------------------- readers
INT_IDS = st.integers(-(2**63) + 1, 2**63 - 1)
# Text ids always hold a letter, so they can never read back as plain integers; "NA", "nan",
# "null" and blanks inside are allowed: a user's file keeps them as ids.
TEXT_IDS = st.text("abNAnul019_- ", min_size=1, max_size=6).filter(
    lambda s: any(c.isalpha() for c in s) and s == s.strip()
)


@st.composite
def rating_frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 12))
    ids = draw(st.sampled_from([INT_IDS, TEXT_IDS]))
    frame = pd.DataFrame(
        {
            "user": draw(st.lists(ids, min_size=n, max_size=n)),
            "item": draw(st.lists(ids, min_size=n, max_size=n)),
        }
    )
    if draw(st.booleans()):
        finite = st.floats(width=32, allow_nan=False, allow_infinity=False)
        frame["rating"] = np.array(draw(st.lists(finite, min_size=n, max_size=n)), np.float32)
    if draw(st.booleans()):
        stamps = st.integers(0, 2**40)
        frame["timestamp"] = np.array(draw(st.lists(stamps, min_size=n, max_size=n)), np.int64)
    return frame


@FEW
@given(frame=rating_frames(), fmt=st.sampled_from(["csv", "tsv", "tsv.gz", "parquet"]))
def test_user_file_round_trip(frame: pd.DataFrame, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"ratings.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, sep="," if fmt == "csv" else "\t", index=False)
        got = read_user_file(path)
    assert list(got.columns) == list(frame.columns)
    for col in frame.columns:
        assert got[col].tolist() == frame[col].tolist(), col
    assert (got["user"].dtype == np.int64) == (frame["user"].dtype == np.int64)


# ------------------------------------------------------------------------------------ splits
@st.composite
def interactions(draw: st.DrawFn) -> Interactions:
    """Distinct (user, item) pairs of 1..8 users × 2..10 items, with tied timestamps likely."""
    n_users, n_items = draw(st.integers(1, 8)), draw(st.integers(2, 10))
    cells = draw(st.lists(st.booleans(), min_size=n_users * n_items, max_size=n_users * n_items))
    has = np.array(cells).reshape(n_users, n_items)
    users, items = np.nonzero(has)
    if len(users) == 0:
        users, items = np.array([0]), np.array([0])
    order = np.array(draw(st.permutations(range(len(users)))))  # records in any input order
    stamps = draw(st.lists(st.integers(0, 5), min_size=len(users), max_size=len(users)))
    frame = {"user": users[order], "item": items[order], "timestamp": stamps}
    return Interactions.from_frame(pd.DataFrame(frame))


def _records(*parts: Interactions | None) -> list[tuple[int, int, int]]:
    out = []
    for p in parts:
        if p is not None:
            out += zip(p.users.tolist(), p.items.tolist(), p.timestamps.tolist(), strict=True)
    return sorted(out)


def _check_partition(inter: Interactions, split: object) -> None:
    assert _records(split.train, split.valid, split.test) == _records(inter)
    keys = [
        set((p.users * p.n_items + p.items).tolist())
        for p in (split.train, split.valid, split.test)
        if p is not None
    ]
    assert sum(map(len, keys)) == len(set().union(*keys))  # disjoint pairs


@FEW
@given(inter=interactions(), validation=st.sampled_from(["latest", "random", None]))
def test_leave_one_out_partitions_and_tests_the_latest(
    inter: Interactions, validation: str | None
) -> None:
    split = leave_one_out(inter, validation=validation, short_users="train")
    _check_partition(inter, split)
    latest = np.zeros(inter.n_users, np.int64)
    np.maximum.at(latest, inter.users, inter.timestamps)
    assert (split.test.timestamps == latest[split.test.users]).all()
    assert (split.test.user_counts() <= 1).all()


@FEW
@given(inter=interactions(), seed=st.integers(0, 3))
def test_ratio_split_partitions_and_keeps_a_train_record(inter: Interactions, seed: int) -> None:
    split = ratio_split(inter, seed=seed, short_users="train")
    _check_partition(inter, split)
    assert ((split.train.user_counts() >= 1) | (inter.user_counts() == 0)).all()
    again = ratio_split(inter, seed=seed, short_users="train")
    assert again.fingerprint() == split.fingerprint()


@FEW
@given(inter=interactions(), seed=st.integers(0, 3), rule=st.sampled_from(["loo", "ratio"]))
def test_carved_validation_partitions_train(inter: Interactions, seed: int, rule: str) -> None:
    split = leave_one_out(inter, validation=None, short_users="train")
    carved = carve_validation(split, rule, seed)
    assert _records(carved.train, carved.valid) == _records(split.train)
    _check_partition(inter, carved)
    assert carve_validation(split, rule, seed).fingerprint() == carved.fingerprint()


@FEW
@given(inter=interactions(), seed=st.integers(0, 3))
def test_negatives_are_distinct_and_never_positive(inter: Interactions, seed: int) -> None:
    split = leave_one_out(inter, validation=None, short_users="train")
    evaluated = np.flatnonzero(split.test.user_counts() > 0)
    free = inter.n_items - np.diff(split.known_positives().indptr)[evaluated]
    if len(evaluated) == 0 or free.min() < 1:
        return  # nothing to draw
    n_neg = int(free.min())
    sampled = with_negatives(split, n_neg, seed)
    negs = sampled.negatives
    others = np.setdiff1d(np.arange(inter.n_users), evaluated)
    assert (negs[others] == -1).all() and (negs[evaluated] >= 0).all()
    rows = negs[evaluated]
    assert _first_occurrences(rows).all()  # distinct within a row
    assert sampled.known_positives()[evaluated[:, None], rows].sum() == 0
    assert with_negatives(split, n_neg, seed).fingerprint() == sampled.fingerprint()


@FEW
@given(
    rows=st.lists(st.lists(st.integers(0, 6), min_size=4, max_size=4), min_size=1, max_size=5),
    bad_cells=st.lists(st.booleans(), min_size=20, max_size=20),
)
def test_dropped_negatives_keep_order_and_pad_at_the_end(
    rows: list[list[int]], bad_cells: list[bool]
) -> None:
    matrix = np.array(rows, np.int64)
    bad = np.array(bad_cells[: matrix.size]).reshape(matrix.shape)
    out = _drop_entries(matrix, bad)
    for before, flags, after in zip(matrix, bad, out, strict=True):
        kept = before[~flags].tolist()
        assert after.tolist() == kept + [-1] * int(flags.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_fingerprint_depends_on_the_seed(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"user": np.repeat(np.arange(6), 8), "item": np.arange(48) % 20})
    frame["timestamp"] = rng.permutation(len(frame))
    inter = Interactions.from_frame(frame)
    a = with_negatives(leave_one_out(inter), 3, seed)
    b = with_negatives(leave_one_out(inter), 3, seed + 10)
    assert a.fingerprint() != b.fingerprint()
