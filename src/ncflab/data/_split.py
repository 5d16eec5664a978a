"""The :class:`Split` container shared by the split builders.

Its public home is :mod:`ncflab.data.splits`; it lives here so that :mod:`ncflab.data.fixed` and
:mod:`ncflab.data.candidates` can build splits without importing :mod:`ncflab.data.splits`,
which re-exports their functions (a cycle otherwise).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ncflab.data.interactions import Interactions

__all__ = ["RELEVANT_IN_TRAIN", "Split"]

# How full ranking treats a held-out item the user also has among the masked (earlier) items.
RELEVANT_IN_TRAIN = ("rank", "miss")


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
            marks a user with no held-out record (never evaluated); -1 entries at the end of a
            row are padding (a published row whose bad entries were dropped) and are skipped.
        info: how the split was made (rule, seed, sizes): stored with results.
        relevant_in_train: full ranking's rule for a held-out item that the user also has in
            the masked part (train, and valid when testing), which a published split may hold
            (``split_from_frames(overlap="keep")``): "rank" (default: it is ranked like any
            held-out item — repeat consumption) or "miss" (the JCA authors' evaluation: masked
            like every train item, i.e. ranked after every item the user's row does not mask,
            so never a hit while K is at most that many (always at the paper's K ≤ 15 on real
            data), yet counted among the user's relevant items: in Recall's denominator and
            NDCG's ideal). Sampled ranking ignores it.
    """

    train: Interactions
    test: Interactions
    valid: Interactions | None = None
    negatives: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    relevant_in_train: str = "rank"

    def __post_init__(self) -> None:
        _check_choice("relevant_in_train", self.relevant_in_train, RELEVANT_IN_TRAIN)

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
        """Hash of train, valid, test, negatives and a non-default ``relevant_in_train`` (it
        changes the metrics): equal split ⇒ equal fingerprint."""
        h = hashlib.sha256()
        for part in (self.train, self.valid, self.test):
            h.update(b"-" if part is None else part.fingerprint().encode())
        h.update(b"-" if self.negatives is None else np.ascontiguousarray(self.negatives).tobytes())
        if self.relevant_in_train != "rank":  # so the fingerprints of existing splits stay
            h.update(self.relevant_in_train.encode())
        return h.hexdigest()[:16]


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
