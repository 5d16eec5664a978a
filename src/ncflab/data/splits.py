"""Splits of interactions into train / valid / test, and sampled evaluation candidates.

Every function here is vectorised over users (sorts, ``bincount`` and ``searchsorted``, never a
Python loop per user or per record) and draws its randomness from an explicit ``seed``, so a split
and its candidates are repeatable bit for bit and can be fingerprinted with the results.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ncflab.data.interactions import Interactions

__all__ = [
    "Split",
    "leave_one_out",
    "ratio_split",
    "sample_candidates",
    "split_from_frames",
    "with_negatives",
]

log = logging.getLogger(__name__)

SHORT_USER_RULES = ("error", "drop", "train")
# Users per block in sample_candidates: bounds memory (ML-20M: 138k users) and, being a constant,
# keeps the candidates a function of (positives, n_neg, seed, users) only.
_BLOCK = 4096


@dataclass(frozen=True, eq=False)
class Split:
    """Train / valid / test interactions in one index space, plus sampled negatives.

    Attributes:
        train: what models are fitted on.
        test: held-out records, touched once at the end.
        valid: held-out records for early stopping and tuning (disjoint from train), or None.
        negatives: (n_users, n_neg) int64 sampled negative items per user for sampled evaluation
            (the same negatives serve valid and test), or None for full ranking. Every row holds
            distinct items, none a positive of that user in train, valid or test. A row of -1
            marks a user with no held-out record (never evaluated).
        info: how the split was made (rule, seed, sizes): stored with results.
    """

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    negatives: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def known_positives(self) -> sp.csr_matrix:
        """(n_users, n_items) binary CSR of every record in train, valid and test."""
        parts = [self.train, self.test] + ([self.valid] if self.valid is not None else [])
        m = sum(p.csr("binary") for p in parts)
        m.data[:] = 1.0
        return m.tocsr()

    def fingerprint(self) -> str:
        """Hash of train, valid, test and negatives: equal split ⇒ equal fingerprint."""
        h = hashlib.sha256()
        for part in (self.train, self.valid, self.test):
            h.update(b"-" if part is None else part.fingerprint().encode())
        h.update(b"-" if self.negatives is None else np.ascontiguousarray(self.negatives).tobytes())
        return h.hexdigest()[:16]


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


# ------------------------------------------------------------------------- shared helpers
def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")


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


# ---------------------------------------------------------------------- fixed split files
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


# ------------------------------------------------------------------- sampled candidates
def sample_candidates(
    known_csr: sp.csr_matrix, n_neg: int, seed: int, users: np.ndarray | None = None
) -> np.ndarray:
    """Sampled negatives for evaluation: per user, ``n_neg`` distinct non-positive items.

    Each row is a uniform sample without replacement from the items that are *not* stored in
    that user's row of ``known_csr`` (pass every positive: train, valid and test). Ranks in the
    user's complement are drawn (rejection of repeats in draw order, or a full random permutation
    when the complement is small) and mapped to item indices with one ``searchsorted`` over the
    positives, block by block (4,096 users), so memory stays bounded on ML-20M.

    Args:
        known_csr: (n_users, n_items) CSR; every stored entry is a positive.
        n_neg: negatives per user (≥ 1).
        seed: the draw is a function of (known_csr, n_neg, seed, users) only.
        users: (U,) user indices to draw for; None means every user.

    Returns:
        (n_users, n_neg) int64 item indices in draw order; rows of users not drawn for are -1.
    """
    if n_neg < 1:
        raise ValueError(f"n_neg={n_neg!r} must be at least 1")
    known = sp.csr_matrix(known_csr)
    if not known.has_canonical_format:
        known = known.copy()
        known.sum_duplicates()
    n_users, n_items = known.shape
    users = np.arange(n_users) if users is None else np.unique(np.asarray(users, np.int64))
    if len(users) and (users[0] < 0 or users[-1] >= n_users):
        raise ValueError(f"users must lie in [0, {n_users}); got {users[0]}..{users[-1]}")
    free = n_items - np.diff(known.indptr)
    _check_room(free, users, n_neg, None)
    out = np.full((n_users, n_neg), -1, np.int64)
    blocks = np.random.SeedSequence(seed).spawn(-(-len(users) // _BLOCK))
    for b, seq in enumerate(blocks):
        block = users[b * _BLOCK : (b + 1) * _BLOCK]
        ranks = _distinct_ranks(free[block], n_neg, np.random.default_rng(seq))
        out[block] = _ranks_to_items(known, block, ranks)
    return out


def _check_room(free: np.ndarray, users: np.ndarray, n_neg: int, ids: np.ndarray | None) -> None:
    short = users[free[users] < n_neg]
    if len(short):
        names = (short[:5] if ids is None else ids[short[:5]]).tolist()
        raise ValueError(
            f"{len(short)} users have fewer than n_neg={n_neg} non-positive items, e.g. user "
            f"{'index' if ids is None else 'id'} {names[0]!r} has {int(free[short[0]])} "
            f"(others: {names[1:]}); lower n_neg or drop those users"
        )


def _distinct_ranks(sizes: np.ndarray, n_neg: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n_neg) distinct uniform ranks in [0, sizes[b]) per row, in draw order."""
    out = np.empty((len(sizes), n_neg), np.int64)
    # Small complements: rejection would need many redraws, so permute the whole range instead.
    small = np.flatnonzero(sizes < 4 * n_neg)
    if len(small):
        keys = rng.random((len(small), int(sizes[small].max())))
        keys[np.arange(keys.shape[1]) >= sizes[small, None]] = 2.0  # past the end: never chosen
        out[small] = np.argsort(keys, axis=1)[:, :n_neg]
    rest, width = np.flatnonzero(sizes >= 4 * n_neg), n_neg + n_neg // 2 + 8
    while len(rest):
        draws = rng.integers(0, sizes[rest, None], size=(len(rest), width))
        first = _first_occurrences(draws)
        cum = np.cumsum(first, axis=1)
        ok = cum[:, -1] >= n_neg
        take = first[ok] & (cum[ok] <= n_neg)
        out[rest[ok]] = draws[ok][take].reshape(-1, n_neg)
        rest, width = rest[~ok], width * 2
    return out


def _first_occurrences(draws: np.ndarray) -> np.ndarray:
    """(B, W) bool: True where the value has not appeared earlier in its row."""
    order = np.argsort(draws, axis=1, kind="stable")  # equal values keep draw order
    ordered = np.take_along_axis(draws, order, axis=1)
    first_sorted = np.ones(draws.shape, bool)
    first_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty(draws.shape, bool)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def _ranks_to_items(known: sp.csr_matrix, block: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """(B, n_neg) item of each complement rank: the r-th non-positive item of the user.

    With the user's positives p_0 < p_1 < … and q_j = p_j − j (non-positives below p_j), the
    r-th non-positive is r + #{j : q_j ≤ r}; one searchsorted over row-offset keys does all rows.
    """
    starts, lens = known.indptr[block], np.diff(known.indptr)[block]
    offsets = np.cumsum(lens) - lens
    local = np.arange(lens.sum()) - np.repeat(offsets, lens)
    positives = known.indices[np.repeat(starts, lens) + local]
    width = known.shape[1] + 1  # q_j and r both lie in [0, n_items]
    pos_keys = np.repeat(np.arange(len(block)), lens) * width + (positives - local)
    keys = np.arange(len(block))[:, None] * width + ranks
    return ranks + np.searchsorted(pos_keys, keys, side="right") - offsets[:, None]


def with_negatives(split: Split, n_neg: int, seed: int) -> Split:
    """The split with ``n_neg`` sampled negatives per user that has a test or valid record.

    Negatives exclude every positive of the user (train, valid and test) and are drawn once with
    :func:`sample_candidates`, so valid and test share them; other users get rows of -1.
    """
    held = split.test.user_counts() > 0
    if split.valid is not None:
        held |= split.valid.user_counts() > 0
    users = np.flatnonzero(held)
    known = split.known_positives()
    _check_room(split.n_items - np.diff(known.indptr), users, n_neg, split.train.user_ids)
    negatives = sample_candidates(known, n_neg, seed, users)
    info = {**split.info, "negatives": {"n_neg": n_neg, "seed": seed, "n_users": len(users)}}
    return replace(split, negatives=negatives, info=info)
