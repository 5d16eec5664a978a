"""Interactions: index-encoded (user, item[, rating, timestamp]) records plus the maps back to ids.

Every later stage (filters, splits, samplers, models, evaluation) works in the dense index space
0..n_users-1 × 0..n_items-1 held here; the original ids survive in ``user_ids`` / ``item_ids`` so
that nothing a user gave us is lost and results can be reported in their ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Interactions"]


@dataclass(frozen=True, eq=False)
class Interactions:
    """Index-encoded interactions.

    Attributes:
        users: (n,) int64 user indices in ``[0, n_users)``.
        items: (n,) int64 item indices in ``[0, n_items)``.
        ratings: (n,) float32 explicit values, or None for implicit data.
        timestamps: (n,) int64 unix seconds, or None.
        user_ids: (n_users,) original user id of each index.
        item_ids: (n_items,) original item id of each index.

    Splits share ``user_ids`` / ``item_ids`` (the same index space) between train, valid and test.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    timestamps: np.ndarray | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.items) != n:
            raise ValueError(f"users has {n} entries but items has {len(self.items)}")
        for name in ("ratings", "timestamps"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries, expected {n}")
        if n and (self.users.min() < 0 or self.users.max() >= len(self.user_ids)):
            raise ValueError("user indices fall outside [0, n_users)")
        if n and (self.items.min() < 0 or self.items.max() >= len(self.item_ids)):
            raise ValueError("item indices fall outside [0, n_items)")

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def density(self) -> float:
        return len(self) / max(1, self.n_users * self.n_items)

    # ------------------------------------------------------------- building
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> Interactions:
        """Encode a tidy frame with columns ``user, item[, rating, timestamp]``.

        Without ``user_ids``/``item_ids`` the index order is the sorted order of the distinct ids
        (so indices are reproducible whatever the file's line order). With them, the frame is
        encoded into that existing index space and an id outside it raises ``KeyError``.
        """
        for col in ("user", "item"):
            if col not in frame.columns:
                raise KeyError(f"frame has no column {col!r}; columns are {list(frame.columns)}")
        users, user_ids = _encode(frame["user"].to_numpy(), user_ids, "user")
        items, item_ids = _encode(frame["item"].to_numpy(), item_ids, "item")
        ratings = frame["rating"].to_numpy(np.float32) if "rating" in frame else None
        stamps = frame["timestamp"].to_numpy(np.int64) if "timestamp" in frame else None
        return cls(users, items, ratings, stamps, user_ids, item_ids)

    def to_frame(self, original_ids: bool = True) -> pd.DataFrame:
        """The records as a frame (original ids by default, indices otherwise)."""
        out = {
            "user": self.user_ids[self.users] if original_ids else self.users,
            "item": self.item_ids[self.items] if original_ids else self.items,
        }
        if self.ratings is not None:
            out["rating"] = self.ratings
        if self.timestamps is not None:
            out["timestamp"] = self.timestamps
        return pd.DataFrame(out)

    def subset(self, mask_or_index: np.ndarray) -> Interactions:
        """The records selected by a boolean mask or index array, in the same index space."""
        sel = mask_or_index
        return replace(
            self,
            users=self.users[sel],
            items=self.items[sel],
            ratings=None if self.ratings is None else self.ratings[sel],
            timestamps=None if self.timestamps is None else self.timestamps[sel],
            _cache={},
        )

    def with_records(
        self,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
    ) -> Interactions:
        """New records in this object's index space (same id maps)."""
        return Interactions(
            np.asarray(users, np.int64),
            np.asarray(items, np.int64),
            ratings,
            timestamps,
            self.user_ids,
            self.item_ids,
        )

    def concat(self, other: Interactions) -> Interactions:
        """Records of both objects (same index space required)."""
        if other.n_users != self.n_users or other.n_items != self.n_items:
            raise ValueError("cannot concatenate interactions from different index spaces")

        def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else np.concatenate([a, b])

        return self.with_records(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.items, other.items]),
            cat(self.ratings, other.ratings),
            cat(self.timestamps, other.timestamps),
        )

    # --------------------------------------------------------------- lookups
    def user_index(self, ids: np.ndarray | list) -> np.ndarray:
        """Indices of original user ids; unknown ids raise ``KeyError`` naming them."""
        return _lookup(self.user_ids, ids, "user")

    def item_index(self, ids: np.ndarray | list) -> np.ndarray:
        """Indices of original item ids; unknown ids raise ``KeyError`` naming them."""
        return _lookup(self.item_ids, ids, "item")

    # ------------------------------------------------------------- matrices
    def csr(self, values: str = "binary") -> sp.csr_matrix:
        """(n_users, n_items) CSR matrix, cached.

        ``values``: "binary" (1 per distinct pair), "rating" (the rating; requires ratings), or
        "count" (number of records of the pair). Duplicate pairs are summed for "count", and for
        "binary"/"rating" the last record wins, so a pair never holds 2.0 or a summed rating.
        """
        if values not in self._cache:
            self._cache[values] = self._build_csr(values)
        return self._cache[values]

    def _build_csr(self, values: str) -> sp.csr_matrix:
        shape = (self.n_users, self.n_items)
        if values == "count":
            data = np.ones(len(self), np.float32)
            m = sp.csr_matrix((data, (self.users, self.items)), shape=shape)
            m.sum_duplicates()
            return m
        if values == "binary":
            data = np.ones(len(self), np.float32)
        elif values == "rating":
            if self.ratings is None:
                raise ValueError("these interactions have no ratings; use values='binary'")
            data = self.ratings.astype(np.float32)
        else:
            raise ValueError(f"unknown values {values!r}; expected 'binary', 'rating' or 'count'")
        # Keep the last record of each pair: a stable sort by pair key, then take each run's end.
        key = self.users * self.n_items + self.items
        order = np.argsort(key, kind="stable")
        k = key[order]
        last = np.ones(len(k), bool)
        last[:-1] = k[1:] != k[:-1]
        sel = order[last]
        m = sp.csr_matrix((data[sel], (self.users[sel], self.items[sel])), shape=shape)
        m.sort_indices()
        return m

    def user_counts(self) -> np.ndarray:
        """(n_users,) number of records per user."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """(n_items,) number of records per item."""
        return np.bincount(self.items, minlength=self.n_items)

    def fingerprint(self) -> str:
        """A short hash of the records and id maps: equal data ⇒ equal fingerprint."""
        h = hashlib.sha256()
        for arr in (self.users, self.items, self.ratings, self.timestamps):
            h.update(b"-" if arr is None else np.ascontiguousarray(arr).tobytes())
        for ids in (self.user_ids, self.item_ids):
            h.update("\x1f".join(map(str, ids.tolist())).encode())
        return h.hexdigest()[:16]


def _encode(values: np.ndarray, ids: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    if ids is None:
        ids, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), ids
    return _lookup(ids, values, what), ids


def _lookup(ids: np.ndarray, values: np.ndarray | list, what: str) -> np.ndarray:
    values = np.asarray(values)
    if (
        values.dtype.kind != ids.dtype.kind
        and ids.dtype.kind in "iu"
        and values.dtype.kind in "OUS"
    ):
        try:
            values = values.astype(ids.dtype)
        except ValueError as err:
            raise KeyError(f"unknown {what} id(s): {values[:5].tolist()}") from err
    index = pd.Index(ids)
    pos = index.get_indexer(values)
    if (pos < 0).any():
        bad = np.unique(values[pos < 0])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise KeyError(f"unknown {what} id(s): {bad[:5].tolist()}{more}")
    return pos.astype(np.int64)
