from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from ncflab.data.interactions import Interactions
from ncflab.data.splits import (
    Split,
    leave_one_out,
    ratio_split,
    sample_candidates,
    split_from_frames,
    with_negatives,
)


def _records(frame: dict) -> Interactions:
    return Interactions.from_frame(pd.DataFrame(frame))


def _random_data(n_users: int = 60, n_items: int = 40, seed: int = 0) -> Interactions:
    """Distinct (user, item) pairs, 4..20 per user, random distinct timestamps."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(4, 21, n_users)
    keys = np.argsort(rng.random((n_users, n_items)), axis=1)
    mask = np.arange(n_items) < counts[:, None]
    users = np.repeat(np.arange(n_users), n_items).reshape(n_users, n_items)[mask]
    frame = {"user": users, "item": keys[mask], "timestamp": rng.permutation(mask.sum())}
    return _records(frame)


def _pairs(part: Interactions) -> set[tuple[int, int]]:
    return set(zip(part.users.tolist(), part.items.tolist(), strict=True))


# ------------------------------------------------------------------------ leave-one-out
def test_latest_is_test_second_latest_is_valid() -> None:
    inter = _records(
        {
            "user": ["b", "a", "a", "b", "a", "b", "a"],
            "item": [1, 2, 3, 4, 5, 6, 7],
            "timestamp": [30, 40, 10, 20, 30, 10, 20],
        }
    )
    split = leave_one_out(inter)
    # each part keeps the input record order
    assert split.test.to_frame()[["user", "item"]].values.tolist() == [["b", 1], ["a", 2]]
    assert split.valid.to_frame()[["user", "item"]].values.tolist() == [["b", 4], ["a", 5]]
    assert sorted(split.train.to_frame()["item"]) == [3, 6, 7]
    assert split.info["sizes"] == {"train": 3, "valid": 2, "test": 2}
    none = leave_one_out(inter, validation=None)
    assert none.valid is None and len(none.train) == 5


def test_ties_are_broken_by_input_order_later_record_wins() -> None:
    frame = {"user": [1, 1, 1, 1], "item": [10, 11, 12, 13], "timestamp": [5, 9, 9, 9]}
    split = leave_one_out(_records(frame))
    assert split.test.item_ids[split.test.items].tolist() == [13]
    assert split.valid.item_ids[split.valid.items].tolist() == [12]
    assert split.info["users_with_tie"] == 1
    reordered = {k: v[::-1] for k, v in frame.items()}  # now item 11 comes last in the input
    split = leave_one_out(_records(reordered))
    assert split.test.item_ids[split.test.items].tolist() == [11]


def test_leave_one_out_needs_timestamps() -> None:
    with pytest.raises(ValueError, match="needs timestamps.*have none; use ratio_split"):
        leave_one_out(_records({"user": [1, 1], "item": [1, 2]}))


def test_short_user_rules() -> None:
    frame = {
        "user": [7, 7, 7, 8, 8, 9],
        "item": [1, 2, 3, 1, 2, 3],
        "timestamp": [1, 2, 3, 1, 2, 1],
    }
    inter = _records(frame)
    with pytest.raises(ValueError, match=r"2 users have fewer than 3 records.*\[8, 9\].*'drop'"):
        leave_one_out(inter)
    dropped = leave_one_out(inter, short_users="drop")
    for part in (dropped.train, dropped.valid, dropped.test):
        assert set(part.user_ids[part.users]) == {7}
    kept = leave_one_out(inter, short_users="train")
    assert set(kept.test.user_ids[kept.test.users]) == {7}
    assert (kept.train.user_counts() == [1, 2, 1]).all()  # users 8 and 9 keep every record
    assert kept.info["n_short_users"] == 2
    assert len(leave_one_out(inter, validation=None, short_users="drop").test) == 2
    with pytest.raises(ValueError, match="short_users='skip' is not one of"):
        leave_one_out(inter, short_users="skip")


def test_random_validation_is_seeded_and_never_the_test_record() -> None:
    inter = _random_data()
    a = leave_one_out(inter, validation="random", seed=1)
    b = leave_one_out(inter, validation="random", seed=1)
    c = leave_one_out(inter, validation="random", seed=2)
    latest = leave_one_out(inter)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert _pairs(a.test) == _pairs(latest.test)
    assert not _pairs(a.valid) & _pairs(a.test) and len(a.valid) == inter.n_users
    assert _pairs(a.valid) != _pairs(latest.valid)


def test_duplicate_pairs_would_leak_and_are_refused() -> None:
    frame = {"user": [1, 1, 1, 1], "item": [5, 6, 7, 5], "timestamp": [1, 2, 3, 4]}
    with pytest.raises(ValueError, match="1 held-out records share.*item 5.*deduplicate"):
        leave_one_out(_records(frame))


# ---------------------------------------------------------------------------- ratio split
def test_ratio_sizes_follow_the_jca_rule_and_parts_partition_the_data() -> None:
    sizes = np.array([2, 3, 5, 6, 10, 15, 45, 46])
    frame = {
        "user": np.repeat(np.arange(8), sizes),
        "item": np.concatenate([np.arange(n) for n in sizes]),
    }
    inter = _records(frame)
    split = ratio_split(inter, seed=3)
    # n_test = max(1, ceil(0.2 n) - 1); n_valid = same rule at 0.1 on the rest, ≥ 1 left to train
    assert split.test.user_counts().tolist() == [1, 1, 1, 1, 1, 2, 8, 9]
    assert split.valid.user_counts().tolist() == [0, 1, 1, 1, 1, 1, 3, 3]
    assert (split.train.user_counts() >= 1).all()
    parts = [_pairs(split.train), _pairs(split.valid), _pairs(split.test)]
    assert sum(map(len, parts)) == len(inter) and len(set.union(*parts)) == len(inter)
    again, other = ratio_split(inter, seed=3), ratio_split(inter, seed=4)
    assert split.fingerprint() == again.fingerprint() != other.fingerprint()
    assert ratio_split(inter, valid_ratio=0.0).valid is None


def test_ratio_split_bad_arguments_and_short_users() -> None:
    inter = _records({"user": [1, 1, 2], "item": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"1 users have fewer than 2 records.*\[2\]"):
        ratio_split(inter)
    assert len(ratio_split(inter, short_users="train").train) == 2
    with pytest.raises(ValueError, match=r"test_ratio=1.5 must lie in \(0, 1\)"):
        ratio_split(inter, test_ratio=1.5)


# -------------------------------------------------------------------- sampled candidates
def _check_candidates(known: sp.csr_matrix, neg: np.ndarray, rows: np.ndarray) -> None:
    sub = np.sort(neg[rows], axis=1)
    assert (sub[:, 1:] > sub[:, :-1]).all() and sub.min() >= 0  # distinct, valid items
    assert known[np.repeat(rows, neg.shape[1]), neg[rows].ravel()].sum() == 0  # never positive


@pytest.mark.parametrize("n_neg", [5, 20, 40])  # rejection path, permutation path, all free
def test_candidates_are_distinct_non_positive_and_uniform(n_neg: int) -> None:
    n_users, n_items = 9000, 50  # > one block of 4,096 users
    positives = np.tile(np.array([0, 3, 4, 17, 18, 19, 30, 41, 48, 49]), n_users)
    users = np.repeat(np.arange(n_users), 10)
    known = sp.csr_matrix((np.ones(len(users)), (users, positives)), shape=(n_users, n_items))
    neg = sample_candidates(known, n_neg, seed=7)
    assert neg.shape == (n_users, n_neg) and neg.dtype == np.int64
    _check_candidates(known, neg, np.arange(n_users))
    freq = np.bincount(neg.ravel(), minlength=n_items) / (n_users * n_neg)
    free = np.setdiff1d(np.arange(n_items), positives[:10])
    assert np.abs(freq[free] - 1 / 40).max() < 0.003  # uniform over the 40 free items
    assert (sample_candidates(known, n_neg, seed=7) == neg).all()
    assert (sample_candidates(known, n_neg, seed=8) != neg).any()


def test_candidates_rows_for_other_users_are_minus_one_and_errors_name_the_user() -> None:
    known = sp.csr_matrix(np.eye(6, 8))
    neg = sample_candidates(known, 3, seed=0, users=np.array([4, 1]))
    assert (neg[[0, 2, 3, 5]] == -1).all()
    _check_candidates(known, neg, np.array([1, 4]))
    known = sp.csr_matrix(np.eye(6, 8) + (np.arange(8) < 6) * (np.arange(6) == 2)[:, None])
    with pytest.raises(ValueError, match="fewer than n_neg=3 non-positive items.*index 2 has 2"):
        sample_candidates(known, 3, seed=0)


def test_with_negatives_excludes_every_positive_and_skips_unevaluated_users() -> None:
    inter = _random_data(n_items=25)
    split = leave_one_out(inter)
    split = Split(split.train, split.test.subset(split.test.users != 3), split.valid)
    with_neg = with_negatives(split, 5, seed=0)
    assert with_neg.negatives.shape == (inter.n_users, 5)
    evaluated = np.unique(np.concatenate([split.test.users, split.valid.users]))
    assert (with_neg.negatives[evaluated] >= 0).all()
    _check_candidates(split.known_positives(), with_neg.negatives, evaluated)
    assert with_neg.info["negatives"] == {"n_neg": 5, "seed": 0, "n_users": inter.n_users}
    assert with_neg.fingerprint() == with_negatives(split, 5, seed=0).fingerprint()
    assert with_neg.fingerprint() != with_negatives(split, 5, seed=1).fingerprint()
    with pytest.raises(ValueError, match="user id"):
        with_negatives(split, 21, seed=0)  # users with 20 records have only 5 free items


# ---------------------------------------------------------------------- fixed split files
def _ncf_frames() -> dict[str, pd.DataFrame]:
    train = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": [10, 11, 10, 12, 13]})
    test = pd.DataFrame({"user": [0, 1], "item": [12, 11]})
    negatives = pd.DataFrame({"user": [0, 1], "items": [[13, 14], [13, 15]]})
    return {"train": train, "test": test, "negatives": negatives}


def test_split_from_frames_ncf_style_negatives() -> None:
    frames = _ncf_frames()
    split = split_from_frames(frames["train"], frames["test"], negatives=frames["negatives"])
    assert split.train.user_ids.tolist() == [0, 1, 2]
    assert split.train.item_ids.tolist() == [10, 11, 12, 13, 14, 15]  # 14, 15 only negatives
    ids = split.train.item_ids
    assert ids[split.negatives[:2]].tolist() == [[13, 14], [13, 15]]
    assert split.negatives[2].tolist() == [-1, -1]  # user 2 has no test record
    wide = pd.DataFrame({"user": [1, 0], "item": [11, 12], "n0": [13, 13], "n1": [15, 14]})
    long = frames["negatives"].explode("items").rename(columns={"items": "item"})
    for given in (wide, long):
        other = split_from_frames(frames["train"], frames["test"], negatives=given)
        assert other.fingerprint() == split.fingerprint()
    assert split.info["bad_negatives"]["positive_entries"] == 0


def test_split_from_frames_bad_negatives_error_or_keep(caplog: pytest.LogCaptureFixture) -> None:
    frames = _ncf_frames()
    bad = pd.DataFrame({"user": [0, 1], "items": [[11, 14], [15, 15]]})  # 11: positive of 0
    with pytest.raises(ValueError, match="1 repeated entries.*1 positives.*'drop'.*'keep'"):
        split_from_frames(frames["train"], frames["test"], negatives=bad)
    with caplog.at_level(logging.WARNING):
        split = split_from_frames(
            frames["train"], frames["test"], negatives=bad, bad_negatives="keep"
        )
    assert "kept as published" in caplog.text
    assert split.info["bad_negatives"]["positive_rows"] == 1
    with pytest.raises(ValueError, match="bad_negatives='warn' is not one of"):
        split_from_frames(frames["train"], frames["test"], negatives=bad, bad_negatives="warn")
    # Rows of different lengths (a split written after 'drop') are padded with -1 at the end.
    uneven = pd.DataFrame({"user": [0, 1], "items": [[13], [13, 14]]})
    split = split_from_frames(frames["train"], frames["test"], negatives=uneven)
    rows = split.negatives[split.train.user_index([0, 1])]
    assert (rows[0, 1], (rows[1] >= 0).sum()) == (-1, 2)


def test_split_from_frames_jca_style_valid_inside_train() -> None:
    train = pd.DataFrame({"user": [1, 1, 1, 2, 2], "item": [1, 2, 3, 1, 4]})
    valid = pd.DataFrame({"user": [1, 2], "item": [2, 4]})
    test = pd.DataFrame({"user": [1, 2], "item": [4, 3]})
    split = split_from_frames(train, test, valid=valid, valid_in_train=True)
    assert len(split.train) == 3 and not _pairs(split.train) & _pairs(split.valid)
    with pytest.raises(ValueError, match=r"2 held-out .* in train \(valid 2, test 0;"):
        split_from_frames(train, test, valid=valid)
    with pytest.raises(ValueError, match=r"1 held-out .* in train \(test 1;.*overlap='clean'"):
        split_from_frames(train, pd.DataFrame({"user": [1], "item": [3]}))
    with pytest.raises(ValueError, match="1 validation records are not in train"):
        split_from_frames(train, test, valid=test.iloc[:1], valid_in_train=True)


# ------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_ml1m_leave_one_out_with_99_negatives(data_dir) -> None:
    from ncflab.data.datasets import load_dataset

    inter = load_dataset("ml-1m", data_dir=data_dir, download=False)
    split = with_negatives(leave_one_out(inter), 99, seed=0)
    assert len(split.test) == 6040 and len(split.valid) == 6040
    assert split.info["users_with_tie"] == 2544
    latest = np.zeros(inter.n_users, np.int64)
    np.maximum.at(latest, inter.users, inter.timestamps)
    assert (split.test.timestamps == latest[split.test.users]).all()
    assert len(np.unique(split.test.users)) == 6040
    assert split.negatives.shape == (6040, 99)
    _check_candidates(split.known_positives(), split.negatives, np.arange(6040))
    again = with_negatives(leave_one_out(inter), 99, seed=0)
    assert again.fingerprint() == split.fingerprint()
    assert with_negatives(leave_one_out(inter), 99, seed=1).fingerprint() != split.fingerprint()


@pytest.mark.slow
def test_jca_files_as_fixed_split_and_ratio_sizes_match_them(data_dir) -> None:
    def read(name: str) -> pd.DataFrame:
        frame = pd.read_csv(data_dir / "jca-ml-1m" / name)
        return frame.rename(columns={"userId": "user", "movieId": "item"})

    train, valid, test = read("train.csv"), read("vali.csv"), read("test.csv")
    split = split_from_frames(train, test, valid=valid, valid_in_train=True)
    assert split.info["sizes"] == {"train": 462_847 - 43_264, "test": 111_179, "valid": 43_264}
    assert (split.n_users, split.n_items) == (6027, 3062)
    # ratio_split's size rule gives every user exactly as many test / valid records as JCA's files
    ratio = ratio_split(Interactions.from_frame(pd.concat([train, test])), seed=0)
    assert (ratio.test.user_counts() == split.test.user_counts()).all()
    assert (ratio.valid.user_counts() == split.valid.user_counts()).all()
