"""Splits of interactions into train / valid / test, and sampled evaluation candidates.

Every function here is vectorised over users (sorts, ``bincount`` and ``searchsorted``, never a
Python loop per user or per record) and draws its randomness from an explicit ``seed``, so a split
and its candidates are repeatable bit for bit and can be fingerprinted with the results.

This module holds the rule-based splits (:func:`leave_one_out`, :func:`ratio_split`, and
:func:`carve_validation`, which gives a published split without one a validation part by the same
rules) and is the public home of the split API: :class:`Split` (defined in
:mod:`ncflab.data._split`), fixed splits read from files (:mod:`ncflab.data.fixed`) and sampled
candidates (:mod:`ncflab.data.candidates`) are re-exported here.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ncflab.data._split import Split, _check_choice
from ncflab.data.candidates import sample_candidates, with_negatives
from ncflab.data.fixed import split_from_frames
from ncflab.data.interactions import Interactions

__all__ = [
    "CARVE_RULES",
    "Split",
    "carve_validation",
    "leave_one_out",
    "ratio_split",
    "sample_candidates",
    "split_from_frames",
    "with_negatives",
]

log = logging.getLogger(__name__)

SHORT_USER_RULES = ("error", "drop", "train")
CARVE_RULES = ("loo", "ratio")


# ------------------------------------------------------------------------ leave-one-out
def leave_one_out(
    inter: Interactions,
    *,
    validation: str | None = "latest",
    seed: int = 0,
    short_users: str = "error",
) -> Split:
    """Leave-one-out by time: each user's latest record is test (He et al. 2017, §4.1).

    Ties: records are ordered per user by a *stable* sort on timestamp, so records with the same
    timestamp keep their input order and **the later record in the input counts as more
    recent** (it becomes test, the one before it validation). ML-1M has 2,544 users with ≥ 2
    ratings in their latest second and 44 % of ML-100K users tie on their last two, so the rule
    matters; ``info["users_with_tie"]`` counts the evaluated users whose latest second is shared.

    Args:
        inter: (n,) records with timestamps. Without timestamps use :func:`ratio_split`, or
            :func:`split_from_frames` for a published split.
        validation: "latest": the second-latest record is validation (J-NCF §4.2.2, NCF's
            tuning set); "random": a uniformly random one of the user's other records (from
            ``seed``); None: no validation.
        seed: used only by ``validation="random"`` (the split is otherwise deterministic).
        short_users: users with fewer than 2 records (3 with validation): "error" (ValueError
            naming them), "drop" (their records leave every part; their indices stay, unused),
            or "train" (all their records stay in train and they are never evaluated).

    Returns:
        Split with one test record (and one valid record) per evaluated user, no negatives.
        Held-out records are removed from train; each part keeps the input record order.
    """
    _check_choice("validation", validation, ("latest", "random", None))
    _check_choice("short_users", short_users, SHORT_USER_RULES)
    if inter.timestamps is None:
        raise ValueError(
            "leave_one_out needs timestamps and these interactions have none; use "
            "ratio_split(...) for a random per-user hold-out, or split_from_frames(...) for a "
            "published split"
        )
    need = 2 if validation is None else 3
    short = _short_users(inter, need, f"leave_one_out(validation={validation!r})", short_users)
    evaluated = ~short[inter.users]
    from_end = _rank_from_end(inter, inter.timestamps)
    test = (from_end == 0) & evaluated
    valid = None
    if validation == "latest":
        valid = (from_end == 1) & evaluated
    elif validation == "random":
        # The test record gets key -1, so each user's largest random key is a non-test record.
        key = np.random.default_rng(seed).random(len(inter))
        key[from_end == 0] = -1.0
        valid = (_rank_from_end(inter, key) == 0) & evaluated
    info = {
        "rule": "leave_one_out",
        "validation": validation,
        "seed": seed,
        "tie_break": "stable sort by timestamp: the later record in the input is more recent",
        "short_users": short_users,
        "n_short_users": int(short.sum()),
        "users_with_tie": _users_with_tie(inter, from_end, evaluated),
    }
    return _make_split(inter, test, valid, short, info)


def _rank_from_end(inter: Interactions, key: np.ndarray) -> np.ndarray:
    """(n,) 0 for each user's record with the largest ``key``, 1 for the next, … (stable)."""
    order = np.lexsort((key, inter.users))  # lexsort is stable: ties keep input order
    counts = inter.user_counts()
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(inter), np.int64)
    rank[order] = np.arange(len(inter)) - starts[inter.users[order]]
    return counts[inter.users] - 1 - rank


def _users_with_tie(inter: Interactions, from_end: np.ndarray, evaluated: np.ndarray) -> int:
    latest = np.zeros(inter.n_users, np.int64)
    latest[inter.users[from_end == 0]] = inter.timestamps[from_end == 0]
    at_latest = (inter.timestamps == latest[inter.users]) & evaluated
    return int((np.bincount(inter.users[at_latest], minlength=inter.n_users) > 1).sum())


# ---------------------------------------------------------------------------- ratio split
def ratio_split(
    inter: Interactions,
    *,
    test_ratio: float = 0.2,
    valid_ratio: float = 0.1,
    seed: int = 0,
    short_users: str = "error",
) -> Split:
    """Per-user random hold-out (JCA, Zhu et al. 2019, §5.1: 20 % test, 10 % of train valid).

    Sizes, for a user with n records: ``n_test = max(1, ⌈test_ratio·n⌉ − 1)``, i.e. the largest
    whole number *strictly below* test_ratio·n but at least 1 (20 % of 45 → 8, of 46 → 9). This is
    the rule behind JCA's published ml-1m files: it reproduces the per-user sizes of ``test.csv``
    (and, with ratio 0.1 on the rest, ``vali.csv``) for all 6,027 users, where floor or round do
    not. ``n_valid`` applies the same rule to the m = n − n_test remaining records, capped at
    m − 1 so at least one record is trained on: it is 0 for users left with one record.

    Args:
        inter: (n,) records; timestamps are not needed.
        test_ratio: in (0, 1).
        valid_ratio: in [0, 1); 0 gives ``valid=None``. Validation records are held out (not
            in train), unlike JCA's ``vali.csv`` which is a subset of its ``train.csv``.
        seed: seeds the one permutation that picks the held-out records.
        short_users: users with one record: "error", "drop" or "train" (as in leave_one_out).

    Returns:
        Split whose parts partition the kept records, no negatives.
    """
    if not 0.0 < test_ratio < 1.0:
        raise ValueError(f"test_ratio={test_ratio!r} must lie in (0, 1)")
    if not 0.0 <= valid_ratio < 1.0:
        raise ValueError(f"valid_ratio={valid_ratio!r} must lie in [0, 1)")
    _check_choice("short_users", short_users, SHORT_USER_RULES)
    short = _short_users(inter, 2, "ratio_split (1 test + 1 train)", short_users)
    counts = inter.user_counts()
    n_test = np.minimum(_below(test_ratio, counts), counts - 1)
    n_valid = np.minimum(_below(valid_ratio, counts - n_test), counts - n_test - 1)
    n_valid = np.maximum(n_valid, 0) if valid_ratio > 0 else np.zeros_like(counts)
    # A uniformly random rank per record within its user: the first n_test are test, then valid.
    rank = _rank_from_end(inter, np.random.default_rng(seed).random(len(inter)))
    evaluated = ~short[inter.users]
    test = (rank < n_test[inter.users]) & evaluated
    valid = None
    if valid_ratio > 0:
        valid = ~test & (rank < (n_test + n_valid)[inter.users]) & evaluated
    info = {
        "rule": "ratio",
        "test_ratio": test_ratio,
        "valid_ratio": valid_ratio,
        "size_rule": "max(1, ceil(ratio*n) - 1) per user; valid capped to leave 1 train record",
        "seed": seed,
        "short_users": short_users,
        "n_short_users": int(short.sum()),
    }
    return _make_split(inter, test, valid, short, info)


def _below(ratio: float, n: np.ndarray) -> np.ndarray:
    """(len(n),) max(1, ⌈ratio·n⌉ − 1); the tolerance absorbs float error (0.2·15 ≈ 3)."""
    return np.maximum(1, np.ceil(ratio * n - 1e-9).astype(np.int64) - 1)


# ----------------------------------------------------------------------- carved validation
def carve_validation(split: Split, rule: str, seed: int) -> Split:
    """``split`` with a validation part carved from its train part by a protocol's own rule,
    for published splits that come without one (NCF's files).

    Args:
        split: a split whose ``valid`` is None.
        rule: "loo": each user's latest train record (by timestamp; ties as in
            :func:`leave_one_out`: the later record in the input counts as more recent);
            "ratio": per user, ``max(1, ⌈0.1·n⌉ − 1)`` of its n train records at random, the
            size rule of :func:`ratio_split` (JCA's 10 % of train). Either way a user with a
            single train record keeps it in train.
        seed: seeds the "ratio" draw (recorded for "loo", which is deterministic).

    Returns:
        The split with train minus the carved records, ``valid`` = the carved records (in
        train's record order), the same test and negatives — a carved record was a train
        record, so the negatives already exclude it — and ``info["carved_validation"]``
        recording the rule, seed and counts.
    """
    _check_choice("rule", rule, CARVE_RULES)
    if split.valid is not None:
        raise ValueError(
            f"the split already has a validation part ({len(split.valid)} records); "
            "carve_validation only adds one to a split without"
        )
    if rule == "loo":
        if split.train.timestamps is None:
            raise ValueError(
                "carve_validation(rule='loo') takes each user's latest train record and these "
                "train records have no timestamps; use rule='ratio'"
            )
        carved = leave_one_out(split.train, validation=None, short_users="train")
    else:
        carved = ratio_split(split.train, test_ratio=0.1, valid_ratio=0.0, seed=seed,
                             short_users="train")  # fmt: skip
    valid = carved.test
    info = dict(split.info)
    info["carved_validation"] = {
        "rule": rule,
        "seed": seed,
        "records": len(valid),
        "users": int((valid.user_counts() > 0).sum()),
        "users_kept_in_train": carved.info["n_short_users"],
    }
    if "sizes" in info:
        info["sizes"] = {**info["sizes"], "train": len(carved.train), "valid": len(valid)}
    return replace(split, train=carved.train, valid=valid, info=info)


# ------------------------------------------------------------------------- shared helpers
def _short_users(inter: Interactions, need: int, rule: str, how: str) -> np.ndarray:
    """(n_users,) bool: users with 1..need-1 records; raises for ``how="error"`` if any."""
    counts = inter.user_counts()
    short = (counts > 0) & (counts < need)
    if how == "error" and short.any():
        ids = inter.user_ids[np.flatnonzero(short)[:5]].tolist()
        raise ValueError(
            f"{int(short.sum())} users have fewer than {need} records, which {rule} needs "
            f"(e.g. user ids {ids}); pass short_users='drop' to remove them from every part, "
            "short_users='train' to keep all their records in train without evaluating them, "
            "or filter the data first (ncflab.data.filters.min_counts)"
        )
    return short


def _make_split(
    inter: Interactions,
    test: np.ndarray,
    valid: np.ndarray | None,
    short: np.ndarray,
    info: dict,
) -> Split:
    """Build the Split from (n,) record masks; "drop" removes short users' records everywhere."""
    held = test if valid is None else test | valid
    _check_no_leak(inter, held)
    keep = ~short[inter.users] if info["short_users"] == "drop" else np.ones(len(inter), bool)
    train = inter.subset(keep & ~held)
    valid_part = None if valid is None else inter.subset(valid)
    split = Split(train, inter.subset(test), valid_part, None, info)
    info["sizes"] = {
        "train": len(train),
        "valid": 0 if valid_part is None else len(valid_part),
        "test": len(split.test),
    }
    info["users_evaluated"] = int((split.test.user_counts() > 0).sum())
    log.info("%s split: %s", info["rule"], info["sizes"])
    return split


def _check_no_leak(inter: Interactions, held: np.ndarray) -> None:
    """Refuse data where a held-out (user, item) pair has another record: it would leak."""
    key = inter.users * inter.n_items + inter.items
    held_keys = key[held]
    # Fast check (no full sort): each held-out pair must occur exactly once in the whole data.
    if np.isin(key, held_keys).sum() == len(held_keys) == len(np.unique(held_keys)):
        return
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    bad = held & (counts[inverse.reshape(-1)] > 1)
    i = np.flatnonzero(bad)[0]
    user, item = inter.user_ids[inter.users[i]], inter.item_ids[inter.items[i]]
    raise ValueError(
        f"{int(bad.sum())} held-out records share their (user, item) pair with another "
        f"record (e.g. user {user}, item {item}), so the held-out item would leak into "
        "train; deduplicate first (ncflab.data.filters.deduplicate)"
    )
