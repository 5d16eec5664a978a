"""Fixed splits read from files (NCF's, JCA's, ML-100K's u1..u5), with their given negatives.

Vectorised like the rest of :mod:`ncflab.data.splits`, which re-exports :func:`split_from_frames`.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from ncflab.data._split import Split, _check_choice
from ncflab.data.interactions import Interactions

__all__ = ["split_from_frames"]

log = logging.getLogger(__name__)


def split_from_frames(
    train: pd.DataFrame,
    test: pd.DataFrame,
    valid: pd.DataFrame | None = None,
    negatives: pd.DataFrame | None = None,
    valid_in_train: bool = False,
    *,
    bad_negatives: str = "error",
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
        bad_negatives: given negatives that repeat within a user's row or are a positive of
            that user (train, valid or test): "error" (ValueError with counts, the default, as
            such a row breaks the Split invariant) or "warn" (kept as published, counts logged
            and stored in ``info["bad_negatives"]``).

    Returns:
        Split with ``negatives`` (n_users, n_neg), -1 rows for users the file does not list.
    """
    _check_choice("bad_negatives", bad_negatives, ("error", "warn"))
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
    for name in ("test", "valid"):
        if name in parts and _pair_in(parts[name], parts["train"]).any():
            n = int(_pair_in(parts[name], parts["train"]).sum())
            raise ValueError(f"{n} {name} records are also in train: the {name} set would leak")
    split = Split(parts["train"], parts["test"], parts.get("valid"), None, {})
    info = {"rule": "fixed", "valid_in_train": valid_in_train}
    info["sizes"] = {k: len(v) for k, v in parts.items()}
    if negatives is not None:
        matrix = _negative_matrix(split, neg_users, neg_items)
        info["bad_negatives"] = _check_negatives(split, matrix, bad_negatives)
        info["n_neg"] = matrix.shape[1]
        split = replace(split, negatives=matrix)
    return replace(split, info=info)


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
    """(n_users, n_neg) int64 index matrix of the given negatives, -1 for unlisted users."""
    u, i = split.train.user_index(users), split.train.item_index(items)
    counts = np.bincount(u, minlength=split.n_users)
    sizes = np.unique(counts[counts > 0])
    if len(sizes) != 1:
        raise ValueError(
            f"users have different numbers of negatives {sizes.tolist()}; expected one"
        )
    matrix = np.full((split.n_users, int(sizes[0])), -1, np.int64)
    order = np.argsort(u, kind="stable")  # keeps each user's negatives in file order
    matrix[counts > 0] = i[order].reshape(-1, int(sizes[0]))
    return matrix


def _check_negatives(split: Split, matrix: np.ndarray, how: str) -> dict:
    """Count repeated and positive entries of the listed rows; raise or warn per ``how``."""
    rows = np.flatnonzero(matrix[:, 0] >= 0)
    sub = np.sort(matrix[rows], axis=1)
    repeated = sub[:, 1:] == sub[:, :-1]
    known = split.known_positives()
    width = split.n_items
    known_keys = np.repeat(np.arange(split.n_users), np.diff(known.indptr)) * width + known.indices
    positive = np.isin(rows[:, None] * width + matrix[rows], known_keys)
    bad = {
        "repeated_entries": int(repeated.sum()),
        "repeated_rows": int(repeated.any(axis=1).sum()),
        "positive_entries": int(positive.sum()),
        "positive_rows": int(positive.any(axis=1).sum()),
    }
    if bad["repeated_entries"] or bad["positive_entries"]:
        msg = f"given negatives break the rule 'distinct, never a positive of the user': {bad}"
        if how == "error":
            raise ValueError(msg + "; pass bad_negatives='warn' to keep them as published")
        log.warning(msg)
    return bad


def _pair_in(part: Interactions, other: Interactions) -> np.ndarray:
    """(len(part),) bool: record's (user, item) pair occurs in ``other`` (same index space)."""
    width = part.n_items
    return np.isin(part.users * width + part.items, other.users * width + other.items)


def _remove_pairs(train: Interactions, valid: Interactions) -> Interactions:
    """Train without the validation pairs (JCA's vali.csv ⊂ train.csv)."""
    missing = ~_pair_in(valid, train)
    if missing.any():
        raise ValueError(
            f"valid_in_train=True but {int(missing.sum())} validation records are not in train"
        )
    return train.subset(~_pair_in(train, valid))
