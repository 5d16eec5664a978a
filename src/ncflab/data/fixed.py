"""Fixed splits read from files (NCF's, JCA's, ML-100K's u1..u5), with their given negatives.

Published splits have quirks the rule-based splits never make; each has a keyword of
:func:`split_from_frames` whose default refuses it with the counts and the choices:

- ``bad_negatives``: NCF's ml-1m ``.test.negative`` lists 156 users' own test item among their
  99 negatives.
- ``overlap``: JCA's Yelp files repeat rows and hold 4,109 of 55,443 distinct test pairs that
  are also in ``train.csv``.

Vectorised like the rest of :mod:`ncflab.data.splits`, which re-exports :func:`split_from_frames`.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from ncflab.data._split import Split, _check_choice
from ncflab.data.candidates import _first_occurrences
from ncflab.data.interactions import Interactions

__all__ = ["BAD_NEGATIVE_RULES", "OVERLAP_RULES", "split_from_frames"]

log = logging.getLogger(__name__)

BAD_NEGATIVE_RULES = ("error", "drop", "keep")
OVERLAP_RULES = ("error", "clean", "keep")


def split_from_frames(
    train: pd.DataFrame,
    test: pd.DataFrame,
    valid: pd.DataFrame | None = None,
    negatives: pd.DataFrame | None = None,
    valid_in_train: bool = False,
    *,
    bad_negatives: str = "error",
    overlap: str = "error",
) -> Split:
    """A published split (NCF's, JCA's, ML-100K's u1..u5) read from files, in one index space.

    Args:
        train, test, valid: frames with columns ``user, item[, rating, timestamp]`` (original
            ids). All parts and the negatives are encoded into the sorted union of their ids.
        negatives: per-user sampled negatives (original ids), one of: columns ``user, items``
            with a list / array of items per row (NCF's ``*.test.negative``); long form
            ``user, item`` (one row per negative); or wide form ``user`` plus one column per
            negative (a column named ``item``, NCF's held-out item, is ignored). Every listed
            user must have the same number of negatives.
        valid_in_train: the files' validation records are a subset of train (JCA's
            ``vali.csv`` ⊂ ``train.csv``): they are removed from train so validation does not
            leak. A validation pair missing from train is then an error.
        bad_negatives: given negatives that repeat within a user's row (every copy after the
            first) or are a positive of that user (train, valid or test):
            "error" (the default: ValueError with the counts, as such a row breaks the Split
            invariant); "drop" (removed; the rest of the row keeps its order and is padded with
            -1 at the end, which the sampled evaluation skips); "keep" (kept as published; the
            sampled evaluation then drops a negative equal to a held-out item). The counts are
            in ``info["bad_negatives"]``; "drop" and "keep" log them in one line.
        overlap: rows repeated within a part (counted beyond the first of their pair), and
            held-out pairs the user also has earlier (a test pair in train or valid, a valid
            pair in train, after ``valid_in_train`` removed valid from train):
            "error" (the default: ValueError with both counts); "clean" (repeats and those
            held-out records removed, the first record of a pair kept; the counts in
            ``info["cleaned"]``, one log line); "keep" (as published, evaluated as the JCA
            authors did: the split's ``relevant_in_train`` is "miss", so in full ranking such
            a held-out item is masked like any train item — ranked after every unmasked item,
            so not a hit — yet counted in the user's relevant items; see :class:`Split`).
            The counts are always in ``info["overlap"]``.

    Returns:
        Split with ``negatives`` (n_users, n_neg), -1 rows for users the file does not list.
    """
    _check_choice("bad_negatives", bad_negatives, BAD_NEGATIVE_RULES)
    _check_choice("overlap", overlap, OVERLAP_RULES)
    frames = {"train": train, "test": test} | ({} if valid is None else {"valid": valid})
    for name, frame in frames.items():
        missing = {"user", "item"} - set(frame.columns)
        if missing:
            raise KeyError(f"{name} frame lacks column(s) {sorted(missing)}: {list(frame.columns)}")
    user_ids = np.concatenate([f["user"].to_numpy() for f in frames.values()])
    item_ids = np.concatenate([f["item"].to_numpy() for f in frames.values()])
    if negatives is not None:
        # Exploded lists come back as objects: give them the dtype of the parts' ids.
        neg_users, neg_items = _negative_pairs(negatives)
        neg_users, neg_items = neg_users.astype(user_ids.dtype), neg_items.astype(item_ids.dtype)
        user_ids = np.concatenate([user_ids, neg_users])
        item_ids = np.concatenate([item_ids, neg_items])
    user_ids, item_ids = np.unique(user_ids), np.unique(item_ids)
    parts = {k: Interactions.from_frame(f, user_ids, item_ids) for k, f in frames.items()}
    if valid_in_train and "valid" in parts:
        parts["train"] = _remove_pairs(parts["train"], parts["valid"])
    counts = _overlap_counts(parts)
    info = {"rule": "fixed", "valid_in_train": valid_in_train, "overlap": {"rule": overlap}}
    info["overlap"] |= counts
    if _any(counts):
        parts = _resolve_overlap(parts, counts, overlap)
        if overlap == "clean":
            info["cleaned"] = counts
    rule = "miss" if overlap == "keep" else "rank"
    split = Split(parts["train"], parts["test"], parts.get("valid"), None, {}, rule)
    info["sizes"] = {k: len(v) for k, v in parts.items()}
    if negatives is not None:
        matrix = _negative_matrix(split, neg_users, neg_items)
        matrix, info["bad_negatives"] = _check_negatives(split, matrix, bad_negatives)
        info["n_neg"] = matrix.shape[1]
        split = replace(split, negatives=matrix)
    return replace(split, info=info)


# --------------------------------------------------------------------------------- negatives
def _negative_pairs(negatives: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(m,), (m,) original user and item id of every given negative, in file order."""
    if "user" not in negatives.columns:
        raise KeyError(f"negatives frame has no column 'user': {list(negatives.columns)}")
    if "items" in negatives.columns:
        exploded = negatives[["user", "items"]].explode("items")
        return exploded["user"].to_numpy(), exploded["items"].to_numpy()
    if set(negatives.columns) == {"user", "item"}:
        return negatives["user"].to_numpy(), negatives["item"].to_numpy()
    wide = negatives.drop(columns=[c for c in ("user", "item") if c in negatives.columns])
    width = wide.shape[1]
    return np.repeat(negatives["user"].to_numpy(), width), wide.to_numpy().reshape(-1)


def _negative_matrix(split: Split, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(n_users, n_neg) int64 index matrix of the given negatives, -1 for unlisted users.

    Users may list different numbers (a split written after ``bad_negatives='drop'``): rows
    are padded with -1 at the end, which the evaluator reads as "no candidate", and the
    spread is logged."""
    u, i = split.train.user_index(users), split.train.item_index(items)
    counts = np.bincount(u, minlength=split.n_users)
    listed = counts[counts > 0]
    width = int(listed.max()) if len(listed) else 0
    if len(listed) and listed.min() != width:
        log.info("given negatives: %d to %d per user; shorter rows padded with -1",
                 int(listed.min()), width)  # fmt: skip
    order = np.argsort(u, kind="stable")  # keeps each user's negatives in file order
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(u)) - starts[u[order]]
    matrix = np.full((split.n_users, width), -1, np.int64)
    matrix[u[order], slot] = i[order]
    return matrix


def _check_negatives(split: Split, matrix: np.ndarray, how: str) -> tuple[np.ndarray, dict]:
    """The matrix after ``how`` ("error", "drop", "keep") and the counts of bad entries."""
    rows = np.flatnonzero(matrix[:, 0] >= 0)
    sub = matrix[rows]
    pad = sub < 0  # the end of a shorter row: no candidate, never "bad"
    repeated = ~_first_occurrences(sub) & ~pad  # every copy after the first, in file order
    known = split.known_positives()
    width = split.n_items
    known_keys = np.repeat(np.arange(split.n_users), np.diff(known.indptr)) * width + known.indices
    positive = np.isin(rows[:, None] * width + sub, known_keys) & ~pad
    bad = repeated | positive
    counts = {
        "rule": how,
        "repeated_entries": int(repeated.sum()),
        "repeated_rows": int(repeated.any(axis=1).sum()),
        "positive_entries": int(positive.sum()),
        "positive_rows": int(positive.any(axis=1).sum()),
    }
    if not bad.any():
        return matrix, counts
    what = (
        f"{counts['repeated_entries']} repeated entries in {counts['repeated_rows']} users' rows "
        f"and {counts['positive_entries']} positives of the user in {counts['positive_rows']} rows"
    )
    if how == "error":
        raise ValueError(
            f"given negatives break the rule 'distinct, never a positive of the user': {what}; "
            "pass bad_negatives='drop' to remove them (rows padded with -1) or "
            "bad_negatives='keep' to keep them as published"
        )
    if how == "keep":
        log.warning("given negatives kept as published (bad_negatives='keep'): %s", what)
        return matrix, counts
    counts["dropped_entries"] = int(bad.sum())
    matrix = matrix.copy()
    matrix[rows] = _drop_entries(sub, bad)
    log.info("bad_negatives='drop': removed %d negatives (%s)", int(bad.sum()), what)
    return matrix, counts


def _drop_entries(matrix: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """(B, W) the rows without their ``bad`` entries, order kept, padded with -1 at the end."""
    order = np.argsort(bad, axis=1, kind="stable")  # kept entries first, in row order
    out = np.take_along_axis(matrix, order, axis=1)
    out[np.take_along_axis(bad, order, axis=1)] = -1
    return out


# ----------------------------------------------------------------------------------- overlap
def _keys(part: Interactions) -> np.ndarray:
    """(len(part),) one int64 key per record's (user, item) pair."""
    return part.users * part.n_items + part.items


def _held_earlier(parts: dict[str, Interactions]) -> dict[str, np.ndarray]:
    """part → (len,) bool: a held-out record whose pair the user has in a part masked before it
    (test: train ∪ valid, as full ranking masks them; valid: train)."""
    train = _keys(parts["train"])
    out = {}
    if "valid" in parts:
        out["valid"] = np.isin(_keys(parts["valid"]), train)
        train = np.concatenate([train, _keys(parts["valid"])])
    out["test"] = np.isin(_keys(parts["test"]), train)
    return out


def _first_of_pair(part: Interactions) -> np.ndarray:
    """(len(part),) bool: the first record of each (user, item) pair, in record order."""
    _, first = np.unique(_keys(part), return_index=True)
    mask = np.zeros(len(part), bool)
    mask[first] = True
    return mask


def _overlap_counts(parts: dict[str, Interactions]) -> dict:
    """Repeated rows per part; distinct held-out pairs the user also has earlier."""
    earlier = _held_earlier(parts)
    dup = {k: len(p) - len(np.unique(_keys(p))) for k, p in parts.items()}
    counts: dict = {"duplicate_rows": dup}
    for name, mask in earlier.items():
        counts[f"{name}_pairs_in_train"] = len(np.unique(_keys(parts[name])[mask]))
    return counts


def _any(counts: dict) -> bool:
    held = [v for k, v in counts.items() if k.endswith("_pairs_in_train")]
    return sum(counts["duplicate_rows"].values()) + sum(held) > 0


def _resolve_overlap(parts: dict[str, Interactions], counts: dict, how: str) -> dict:
    """The parts after ``how`` ("error" raises, "clean" removes, "keep" logs)."""
    dup = counts["duplicate_rows"]
    held = {k[: -len("_pairs_in_train")]: v for k, v in counts.items() if k.endswith("_in_train")}

    def each(d: dict) -> str:
        return ", ".join(f"{k} {d[k]}" for k in ("train", "valid", "test") if k in d)

    what = (
        f"{sum(dup.values())} repeated rows ({each(dup)}) and {sum(held.values())} held-out "
        f"(user, item) pairs the user also has in train ({each(held)}; for test: train or valid)"
    )
    if how == "error":
        raise ValueError(
            f"the published split has {what}: held-out items would leak into training; pass "
            "overlap='clean' to remove the repeats and those held-out records, or "
            "overlap='keep' to keep them and evaluate as the JCA authors did (a held-out item "
            "also in train is masked, so not a hit, but counted in Recall's denominator)"
        )
    if how == "keep":
        log.warning("published split kept as is (overlap='keep'): %s", what)
        return parts
    parts = {k: p.subset(_first_of_pair(p)) for k, p in parts.items()}
    # One pass suffices: a test pair in a valid record that goes is also in train, so goes too.
    for name, mask in _held_earlier(parts).items():
        parts[name] = parts[name].subset(~mask)
    log.info("overlap='clean': removed %s", what)
    return parts


def _remove_pairs(train: Interactions, valid: Interactions) -> Interactions:
    """Train without the validation pairs (JCA's vali.csv ⊂ train.csv)."""
    missing = ~np.isin(_keys(valid), _keys(train))
    if missing.any():
        raise ValueError(
            f"valid_in_train=True but {int(missing.sum())} validation records are not in train"
        )
    return train.subset(~np.isin(_keys(train), _keys(valid)))
