"""Published-split quirks: bad given negatives, overlapping parts, carving a validation part."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.splits import Split, carve_validation, split_from_frames
from ncflab.evaluation.protocols import evaluate


class Table:
    """A fake model whose scores are a fixed (n_users, n_items) table."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, np.float64)

    def score(self, users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.table[users])

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.take_along_axis(self.table[users], items, axis=1))


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


# ------------------------------------------------------------------------------ bad negatives
def _ncf_like(repeat: bool = True) -> dict[str, pd.DataFrame]:
    """NCF's ml-1m quirk: user 0's own test item (12) is among its negatives; with ``repeat``
    user 1 also lists a negative twice."""
    train = pd.DataFrame({"user": [0, 0, 1, 1, 2, 2], "item": [10, 11, 10, 12, 10, 11]})
    test = pd.DataFrame({"user": [0, 1, 2], "item": [12, 11, 12]})
    second = [13, 15, 13] if repeat else [13, 15, 14]
    negatives = pd.DataFrame({"user": [0, 1, 2], "items": [[13, 12, 14], second, [13, 14, 15]]})
    return {"train": train, "test": test, "negatives": negatives}


def test_bad_negatives_error_names_the_counts_and_the_choices() -> None:
    f = _ncf_like()
    with pytest.raises(ValueError) as info:
        split_from_frames(f["train"], f["test"], negatives=f["negatives"])
    msg = str(info.value)
    for part in ("1 repeated entries in 1", "1 positives of the user in 1", "'drop'", "'keep'"):
        assert part in msg


def test_bad_negatives_drop_pads_rows_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    f = _ncf_like()
    with caplog.at_level(logging.INFO, logger="ncflab.data.fixed"):
        split = split_from_frames(
            f["train"], f["test"], negatives=f["negatives"], bad_negatives="drop"
        )
    ids = split.train.item_ids
    rows = [[ids[i] if i >= 0 else -1 for i in row] for row in split.negatives]
    assert rows == [[13, 14, -1], [13, 15, -1], [13, 14, 15]]  # file order kept, -1 at the end
    assert split.info["bad_negatives"] == {
        "rule": "drop",
        "repeated_entries": 1,
        "repeated_rows": 1,
        "positive_entries": 1,
        "positive_rows": 1,
        "dropped_entries": 2,
    }
    assert len(caplog.records) == 1 and "removed 2 negatives" in caplog.text


def test_bad_negatives_keep_and_drop_evaluate_alike(caplog: pytest.LogCaptureFixture) -> None:
    f = _ncf_like(repeat=False)  # a repeated negative kept would compete twice
    with caplog.at_level(logging.WARNING):
        kept = split_from_frames(
            f["train"], f["test"], negatives=f["negatives"], bad_negatives="keep"
        )
    assert len(_records(caplog, "kept as published")) == 1
    assert kept.info["bad_negatives"]["positive_entries"] == 1
    assert (kept.train.item_ids[kept.negatives[0]] == [13, 12, 14]).all()  # as published
    dropped = split_from_frames(
        f["train"], f["test"], negatives=f["negatives"], bad_negatives="drop"
    )
    table = np.random.default_rng(0).random((kept.n_users, kept.n_items))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ncflab.evaluation.protocols"):
        a = evaluate(Table(table), kept, protocol="sampled", ks=(1, 2), batch_size=1)
    # One line per evaluation, however many batches (3 here).
    assert [r.getMessage() for r in caplog.records] == [
        "dropping 1 sampled negatives that are relevant items"
    ]
    b = evaluate(Table(table), dropped, protocol="sampled", ks=(1, 2), batch_size=2)
    pd.testing.assert_frame_equal(a.per_user, b.per_user)


def test_absent_negatives_are_neither_scored_nor_counted() -> None:
    train = Interactions(np.array([0, 1]), np.array([0, 0]), None, None, np.arange(2), np.arange(5))
    test = train.with_records(np.array([0, 1]), np.array([1, 2]))
    table = np.array([[0, 5, 0, 9, 9], [0, 0, 5, 1, 9]], np.float64)
    padded = Split(train, test, None, np.array([[2, -1, -1], [3, 4, -1]]))
    res = evaluate(Table(table), padded, protocol="sampled", ks=(1,), metrics=["HR", "AUC"])
    # User 0: one candidate (item 2, score 0) below its test item; user 1: 1 of 2 beaten.
    assert res.per_user["AUC"].tolist() == [1.0, 0.5]
    assert res.per_user["HR@1"].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"item index -2; expected \[0, 5\) or -1"):
        bad = Split(train, test, None, np.array([[2, -2], [3, 4]]))
        evaluate(Table(table), bad, protocol="sampled")


# ------------------------------------------------------------------------------------ overlap
def _yelp_like(seed: int = 0) -> dict[str, pd.DataFrame]:
    """JCA layout (vali ⊂ train) with repeated rows and test pairs that are also in train."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 30
    keys = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :12]  # 12 distinct per user
    users = np.repeat(np.arange(n_users), 12).reshape(n_users, 12)
    train = pd.DataFrame({"user": users[:, :8].ravel(), "item": keys[:, :8].ravel()})
    test = pd.DataFrame({"user": users[:, 8:].ravel(), "item": keys[:, 8:].ravel()})
    valid = train.iloc[::5].reset_index(drop=True)
    overlap = train.iloc[1::7]  # pairs of train (not in vali) also published as test
    test = pd.concat([test, overlap, test.iloc[:3]], ignore_index=True)  # + 3 repeated rows
    train = pd.concat([train, train.iloc[2:4]], ignore_index=True)  # + 2 repeated rows
    return {"train": train, "valid": valid, "test": test, "n_overlap": len(overlap)}


def _split(f: dict, **kwargs: object) -> Split:
    return split_from_frames(f["train"], f["test"], f["valid"], valid_in_train=True, **kwargs)


def test_overlap_error_gives_both_counts_and_names_the_option() -> None:
    f = _yelp_like()
    with pytest.raises(ValueError) as info:
        _split(f)
    msg = str(info.value)
    assert "5 repeated rows (train 2, valid 0, test 3)" in msg
    assert f"{f['n_overlap']} held-out (user, item) pairs" in msg
    assert "overlap='clean'" in msg and "overlap='keep'" in msg


def test_overlap_clean_removes_repeats_and_held_out_pairs_in_train(
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = _yelp_like()
    with caplog.at_level(logging.INFO, logger="ncflab.data.fixed"):
        split = _split(f, overlap="clean")
    assert len(caplog.records) == 1 and "overlap='clean': removed" in caplog.text
    want = {
        "duplicate_rows": {"train": 2, "test": 3, "valid": 0},
        "valid_pairs_in_train": 0,
        "test_pairs_in_train": f["n_overlap"],
    }
    assert split.info["cleaned"] == want and split.info["overlap"] == {"rule": "clean", **want}
    assert split.relevant_in_train == "rank"
    keys = {k: p.users * p.n_items + p.items for k, p in (("tr", split.train), ("te", split.test))}
    assert len(np.unique(keys["te"])) == len(keys["te"]) == 25 * 4  # the published test pairs
    assert not np.isin(keys["te"], keys["tr"]).any()
    assert len(np.unique(keys["tr"])) == len(keys["tr"]) == 25 * 8 - len(f["valid"])


def _authors_metrics(
    scores: np.ndarray, train: np.ndarray, test: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """The JCA authors' utility.test_model_all, vectorised: train items get -100000, top k,
    Precision = hits / k, Recall = hits / |test items|, NDCG with IDCG over |test items|."""
    pred = scores + train * -100000.0
    top = np.argsort(-pred, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(test, top, axis=1)
    n_test = test.sum(axis=1)
    disc = 1.0 / np.log2(np.arange(k) + 2)
    idcg = np.cumsum(disc)[np.minimum(n_test, k) - 1]
    keep = n_test > 0
    return {
        f"Precision@{k}": (hits.sum(1) / k)[keep],
        f"Recall@{k}": (hits.sum(1) / n_test)[keep],
        f"NDCG@{k}": ((hits * disc).sum(1) / idcg)[keep],
    }


def test_overlap_keep_evaluates_as_the_jca_authors(caplog: pytest.LogCaptureFixture) -> None:
    f = _yelp_like()
    with caplog.at_level(logging.WARNING):
        split = _split(f, overlap="keep")
    assert len(_records(caplog, "overlap='keep'")) == 1
    assert split.relevant_in_train == "miss"
    assert split.info["overlap"]["test_pairs_in_train"] == f["n_overlap"]
    assert len(split.test) == len(f["test"])  # nothing dropped
    scores = np.random.default_rng(1).random((split.n_users, split.n_items))
    # The authors' train_R is train.csv (vali included); test_R the binary test matrix.
    train = (split.train.csr() + split.valid.csr()).toarray() > 0
    test = split.test.csr().toarray() > 0
    res = evaluate(Table(scores), split, ks=(3, 10), metrics=["Precision", "Recall", "NDCG"])
    for k in (3, 10):
        for key, value in _authors_metrics(scores, train, test, k).items():
            np.testing.assert_allclose(res.per_user[key].to_numpy(), value, err_msg=key)
    # Ranked like any held-out item ("rank"), the same test items could be hits: more recall.
    ranked = Split(split.train, split.test, split.valid, relevant_in_train="rank")
    other = evaluate(Table(scores), ranked, ks=(10,), metrics=["Recall"])
    assert other.means["Recall@10"] > res.means["Recall@10"]
    assert ranked.fingerprint() != split.fingerprint()


def test_missed_items_lose_every_pair_for_mrr_and_auc() -> None:
    train = Interactions(np.array([0, 0]), np.array([0, 1]), None, None, np.arange(1), np.arange(5))
    test = train.with_records(np.array([0, 0]), np.array([1, 2]))  # item 1 is also in train
    table = np.array([[0.0, 9.0, 1.0, 3.0, 2.0]])
    res = evaluate(Table(table), Split(train, test, relevant_in_train="miss"), ks=(1, 3, 4))
    per = res.per_user.iloc[0]
    # Unmasked: 3 (3.0), 4 (2.0), 2 (1.0, relevant) at positions 0..2; then item 1, masked
    # though relevant, at 3 — as the authors' -100000 offset orders them.
    assert per["HR@1"] == 0.0 and per["Recall@3"] == 0.5 and per["MRR"] == pytest.approx(1 / 3)
    assert per["Recall@4"] == 1.0  # past the unmasked items; item 1 is the authors' 4th too
    assert per["AUC"] == pytest.approx(0.0)  # both relevant items lose to both candidates
    with pytest.raises(ValueError, match="relevant_in_train='hit' is not one of"):
        Split(train, test, relevant_in_train="hit")


# ---------------------------------------------------------------------------- carved validation
def _ncf_split() -> Split:
    train = pd.DataFrame(
        {
            "user": [0, 0, 0, 1, 1, 2, 3, 3],
            "item": [1, 2, 3, 1, 4, 2, 5, 6],
            "timestamp": [5, 9, 7, 3, 3, 1, 8, 2],
        }
    )
    test = pd.DataFrame({"user": [0, 1, 2, 3], "item": [4, 2, 3, 1], "timestamp": [10] * 4})
    negatives = pd.DataFrame({"user": [0, 1, 2, 3], "items": [[5, 6]] * 3 + [[2, 3]]})
    return split_from_frames(train, test, negatives=negatives)


def _pairs(part: Interactions) -> list[tuple[int, int]]:
    ids_u, ids_i = part.user_ids[part.users], part.item_ids[part.items]
    return sorted(zip(ids_u.tolist(), ids_i.tolist(), strict=True))


def test_carve_validation_loo_takes_each_users_latest_train_record() -> None:
    split = _ncf_split()
    carved = carve_validation(split, "loo", seed=0)
    # User 0: ts 9 → item 2; user 1: tie at ts 3, the later input record (item 4); user 2 has
    # one train record and keeps it; user 3: item 5 (ts 8).
    assert _pairs(carved.valid) == [(0, 2), (1, 4), (3, 5)]
    assert len(carved.train) == len(split.train) - 3 and carved.test is split.test
    assert carved.negatives is split.negatives
    known = carved.known_positives()
    assert known[np.arange(4)[:, None], carved.negatives].sum() == 0
    info = carved.info["carved_validation"]
    assert info == {"rule": "loo", "seed": 0, "records": 3, "users": 3, "users_kept_in_train": 1}
    assert carved.info["sizes"] == {"train": 5, "test": 4, "valid": 3}
    assert carve_validation(split, "loo", seed=1).valid.fingerprint() == carved.valid.fingerprint()


def test_carve_validation_ratio_is_seeded_and_follows_the_ratio_rule() -> None:
    n = np.array([1, 2, 10, 11, 25])
    train = pd.DataFrame(
        {"user": np.repeat(np.arange(5), n), "item": np.concatenate([np.arange(m) for m in n])}
    )
    test = pd.DataFrame({"user": np.arange(5), "item": [40] * 5})
    split = split_from_frames(train, test)
    carved = carve_validation(split, "ratio", seed=3)
    assert carved.valid.user_counts().tolist() == [0, 1, 1, 1, 2]  # max(1, ⌈0.1 n⌉ − 1), n ≥ 2
    assert carved.train.user_counts().tolist() == (n - [0, 1, 1, 1, 2]).tolist()
    again, other = carve_validation(split, "ratio", seed=3), carve_validation(split, "ratio", 4)
    assert again.fingerprint() == carved.fingerprint() != other.fingerprint()
    with pytest.raises(ValueError, match="rule='ratio'"):
        carve_validation(split, "loo", seed=0)  # no timestamps
    with pytest.raises(ValueError, match="already has a validation part"):
        carve_validation(carved, "ratio", seed=0)
    with pytest.raises(ValueError, match="rule='latest' is not one of"):
        carve_validation(split, "latest", seed=0)
