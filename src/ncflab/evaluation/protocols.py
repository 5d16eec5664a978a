"""Evaluation protocols: full ranking over all items, or ranking among sampled candidates.

The evaluator owns masking, ranking and metrics; models only score. Users are evaluated in
batches (``batch_size`` users at a time) so that at most (batch_size, n_items) scores exist at
once — ML-20M's 138k × 27k score matrix is never materialised. By default a batch is 1,024
users, fewer where their full-ranking scores would pass SCORE_BUDGET (``default_batch``).

- **full**: ``model.score(users)`` gives (B, n_items) scores; each user's relevant items are its
  records in the evaluated part, and the items it already interacted with are masked (removed
  from the ranking). For ``part="test"`` the masked items are train ∪ valid; for ``part="valid"``
  they are train only — the test items stay unseen and compete as ordinary items, because test
  must not be touched (not even to hide it) before the final evaluation, and a validation score
  that depended on test would leak it into early stopping and tuning. A relevant item is never
  masked, even if the user also has it in train (repeat consumption) — unless the split says
  ``relevant_in_train="miss"`` (a published split kept with ``overlap="keep"``): then, as in the
  JCA authors' evaluation, it ranks after every unmasked item (so it is no hit unless K exceeds
  their number) and still counts among the user's relevant items.
- **sampled**: the candidates of a user are its held-out items of that part plus its row of
  ``split.negatives`` (He et al. 2017 §4.1: the test item among 99 sampled negatives), scored with
  ``model.score_items(users, items)`` as (B, C). Nothing is masked: negatives already exclude every
  positive; a negative that equals a relevant item (possible with published negative files) is
  dropped so the item does not compete with itself (one warning per evaluation gives the count),
  and -1 entries in a row (padding left by ``split_from_frames(bad_negatives="drop")``) are not
  candidates; a row of only -1 is a user without negatives, an error if the user is evaluated.

Metrics and the pessimistic tie rule are defined in :mod:`ncflab.evaluation.metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.splits import Split
from ncflab.evaluation.metrics import (
    Ranked,
    check_finite,
    check_ks,
    check_metrics,
    compute_metrics,
    rank_relevant,
)

__all__ = ["EvalResult", "evaluate", "f1_of_means", "make_validator"]

log = logging.getLogger(__name__)

PARTS = ("test", "valid")
PROTOCOLS = ("full", "sampled")
DEFAULT_BATCH = 1024
# Float32 scores of one full-ranking batch, at most (``default_batch``): 16 MiB, under glibc's
# largest threshold for serving an allocation from the heap (32 MiB). A larger array is mapped
# afresh and zero-filled page by page every batch, and a batch makes several (the scores, the
# mask, the copy ranked): JCA's validation at the Yelp split's shape (9,242 items) took 1.93
# and 1.80 s at 1,024 users a batch, 1.48 and 1.53 s at 453, the same per-user metrics
# (benchmarks/bench_eval_batch.py, two runs). ML-1M's 3,706 items stay at 1,024.
SCORE_BUDGET = 1 << 22
_NEG_INF = float("-inf")


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one evaluation.

    Attributes:
        means: {"HR@10": mean over evaluated users, …}; AUC's mean skips NaN.
        per_user: one row per evaluated user: a ``user`` column (user index) and one column
            per metric key, in the order of ``means``.
        n_users: number of evaluated users (those with ≥ 1 record in ``part``).
        protocol: "full" or "sampled".
        part: "test" or "valid".
        ks: the cut-offs used.
        seconds: wall time of the evaluation.
    """

    means: dict[str, float]
    per_user: pd.DataFrame
    n_users: int
    protocol: str
    part: str
    ks: tuple[int, ...]
    seconds: float = 0.0


def evaluate(
    model: object,
    split: Split,
    *,
    part: str = "test",
    protocol: str = "full",
    ks: int | Iterable[int] = (10,),
    metrics: Iterable[str] | None = None,
    batch_size: int | None = None,
) -> EvalResult:
    """Evaluate ``model`` on one part of ``split`` (see the module docstring for the protocols).

    Args:
        model: anything with ``score(users) -> (B, n_items)`` (full) or
            ``score_items(users, items) -> (B, C)`` (sampled), returning torch tensors or numpy.
        split: the split; ``split.negatives`` is required for ``protocol="sampled"``.
        part: "test" or "valid".
        protocol: "full" or "sampled".
        ks: positive integer cut-offs.
        metrics: names from ``ncflab.evaluation.metrics.METRICS``; None means all of them.
        batch_size: users scored at once (memory is about batch_size × n_items scores); None
            means ``default_batch(protocol, split.n_items)``.
    """
    t0 = time.perf_counter()
    batch_size = default_batch(protocol, split.n_items) if batch_size is None else batch_size
    held = _check_request(split, part, protocol, batch_size)
    ks, names = check_ks(ks), check_metrics(metrics)
    rel_csr = held.csr("binary")
    users = np.flatnonzero(np.diff(rel_csr.indptr) > 0)
    mask_csr = _mask_csr(split, part) if protocol == "full" else None
    miss = split.relevant_in_train == "miss"
    # Positions past the largest K change no @K metric: full ranking then compares each row's
    # relevant items with its top max(K) other scores only (MRR and AUC need every position).
    cutoff = None if {"MRR", "AUC"} & set(names) else max(ks)
    # The per-user columns are allocated whole at the first batch and filled in place. Why not
    # a list of per-batch arrays joined at the end: those small arrays outlive each batch and
    # land inside the heap holes the batch's large temporaries leave, so glibc's allocator can
    # no longer reuse a hole for the next batch and the heap grows by about a batch's scores
    # every batch (BPR's sampled validation of 1.2 M users passed 16 GB that way).
    columns: dict[str, np.ndarray] = {}
    n_dropped = 0
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            if protocol == "full":
                ranked = _full_batch(
                    model, batch, rel_csr, mask_csr, split.n_items, miss, cutoff=cutoff
                )
            else:
                ranked, dropped = _sampled_batch(model, batch, rel_csr, split.negatives)
                n_dropped += dropped
            for key, value in compute_metrics(ranked, ks, names).items():
                value = value.cpu().numpy()
                if key not in columns:
                    columns[key] = np.empty(len(users), value.dtype)
                columns[key][start : start + len(batch)] = value
    if n_dropped:
        log.warning("dropping %d sampled negatives that are relevant items", n_dropped)
    per_user = pd.DataFrame({"user": users, **columns})
    means = {key: float(per_user[key].mean()) for key in columns}
    means.update(f1_of_means(means))
    seconds = time.perf_counter() - t0
    log.debug(  # the training loop and the runner report the metrics; this is timing detail
        "%s %s evaluation of %s: %d users in %.2fs: %s",
        protocol,
        part,
        type(model).__name__,
        len(users),
        seconds,
        means,
    )
    return EvalResult(means, per_user, len(users), protocol, part, ks, seconds)


def f1_of_means(means: dict[str, float]) -> dict[str, float]:
    """``F1avg@K`` = 2·P̄·R̄ / (P̄ + R̄) from the user-averaged Precision@K and Recall@K in
    ``means``, for every K that has both and an F1@K. JCA (Zhu et al. 2019) reports F1 this way:
    its Table 3 satisfies 2·.2384·.1845/(.2384 + .1845) = .2080. ``F1@K`` is the mean of per-user
    F1, a different (smaller) number; both are kept so neither reading is lost."""
    out = {}
    for key in means:
        if key.startswith("F1@"):
            k = key[3:]
            p, r = means.get(f"Precision@{k}"), means.get(f"Recall@{k}")
            if p is not None and r is not None:
                out[f"F1avg@{k}"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out


def make_validator(
    split: Split,
    *,
    protocol: str,
    ks: int | Iterable[int],
    metrics: Iterable[str] | None = None,
    batch_size: int | None = None,
    part: str = "valid",
) -> Callable[[object], dict[str, float]]:
    """A callback for ``FitOptions.validate``: ``model -> evaluate(part=part).means``.

    ``part="test"`` chooses epochs on the test part, as several papers' code did: only for an
    upper reference (``train.select_on``), never a result. The arguments are checked now, so a
    split without that part (or without negatives for the sampled protocol) fails before
    training starts rather than after the first epoch.
    """
    batch = default_batch(protocol, split.n_items) if batch_size is None else batch_size
    _check_request(split, part, protocol, batch)
    ks, names = check_ks(ks), check_metrics(metrics)

    def validate(model: object) -> dict[str, float]:
        result = evaluate(
            model,
            split,
            part=part,
            protocol=protocol,
            ks=ks,
            metrics=names,
            batch_size=batch_size,
        )
        return result.means

    return validate


def default_batch(protocol: str, n_items: int) -> int:
    """Users a batch of ``evaluate`` holds by default: 1,024, or for full ranking as many as
    keep a batch's (users, n_items) float32 scores within SCORE_BUDGET values."""
    if protocol != "full":
        return DEFAULT_BATCH
    return max(1, min(DEFAULT_BATCH, SCORE_BUDGET // max(1, n_items)))


# ------------------------------------------------------------------------------ checks
def _check_request(split: Split, part: str, protocol: str, batch_size: int) -> Interactions:
    """The evaluated part's records, after checking the request; ValueError otherwise."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; expected one of {list(PARTS)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    held = split.test if part == "test" else split.valid
    if held is None or len(held) == 0:
        raise ValueError(f"the split has no {part} records to evaluate on")
    if protocol == "sampled":
        negatives = split.negatives
        if negatives is None:
            raise ValueError(
                "protocol='sampled' needs split.negatives, and this split has none; use "
                "ncflab.data.splits.with_negatives(split, n_neg, seed) or protocol='full'"
            )
        if negatives.ndim != 2 or negatives.shape[0] != split.n_users:
            raise ValueError(
                f"split.negatives has shape {negatives.shape}; expected ({split.n_users}, n_neg)"
            )
    return held


def _mask_csr(split: Split, part: str) -> sp.csr_matrix:
    """(n_users, n_items) CSR of the items masked in full ranking of ``part``."""
    mask = split.train.csr("binary")
    if part == "test" and split.valid is not None and len(split.valid):
        mask = (mask + split.valid.csr("binary")).tocsr()
    return mask


def _scores(model: object, method: str, shape: tuple[int, int], *args: np.ndarray) -> torch.Tensor:
    """Call ``model.<method>(*args)``; check the shape and finiteness of the (B, C) result."""
    out = getattr(model, method)(*args)
    out = torch.as_tensor(out).detach()
    if not out.is_floating_point():
        out = out.to(torch.float64)
    what = f"{type(model).__name__}.{method}"
    if tuple(out.shape) != shape:
        raise ValueError(f"{what} returned scores of shape {tuple(out.shape)}; expected {shape}")
    check_finite(out, what)
    return out


# ------------------------------------------------------------------------------ batches
def _rows(csr: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored entries of ``users``' rows: (batch row, column) pairs and the row lengths."""
    starts, lens = csr.indptr[users], np.diff(csr.indptr)[users]
    offsets = np.cumsum(lens) - lens
    local = np.arange(int(lens.sum())) - np.repeat(offsets, lens)
    cols = csr.indices[np.repeat(starts, lens) + local].astype(np.int64)
    return np.repeat(np.arange(len(users)), lens), cols, lens


def _padded(csr: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, R) item indices of each user's row, padded with item 0, and the (B, R) valid mask."""
    rows, cols, lens = _rows(csr, users)
    width = int(lens.max())
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
    items = np.zeros((len(users), width), np.int64)
    items[rows, slot] = cols
    return items, np.arange(width) < lens[:, None]


def _full_batch(
    model: object,
    users: np.ndarray,
    rel_csr: sp.csr_matrix,
    mask_csr: sp.csr_matrix,
    n_items: int,
    miss_masked: bool = False,
    *,
    cutoff: int | None = None,
) -> Ranked:
    """Rank every unmasked item for ``users`` (B,): relevant = their items in the part
    (positions exact below ``cutoff``, see ``rank_relevant``)."""
    _, rel_valid, rel_scores, other = _full_inputs(
        model, users, rel_csr, mask_csr, n_items, miss_masked=miss_masked
    )
    return rank_relevant(rel_scores, rel_valid, other, cutoff=cutoff)


def _full_inputs(
    model: object,
    users: np.ndarray,
    rel_csr: sp.csr_matrix,
    mask_csr: sp.csr_matrix,
    n_items: int,
    *,
    miss_masked: bool = False,
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What full ranking of ``users`` (B,) ranks: their relevant items (B, R) int64 padded with
    item 0, the (B, R) bool valid mask, the (B, R) relevant scores, and the (B, n_items) scores
    of the other candidates with masked and relevant items at ``-inf`` (for ``rank_relevant``;
    also used by ``ncflab.experiments.compare`` to know *which* relevant items are hits).
    ``miss_masked``: a relevant item that is also masked scores as the user's lowest candidate
    (``Split.relevant_in_train == "miss"``)."""
    scores = _scores(model, "score", (len(users), n_items), users)
    rel_items, rel_valid = _padded(rel_csr, users)
    dev = scores.device
    rel_scores = torch.gather(scores, 1, torch.from_numpy(rel_items).to(dev))
    other = scores.clone()
    # Masked items first, then the relevant ones: both become non-candidates among the others.
    for csr in (mask_csr, rel_csr):
        rows, cols, _ = _rows(csr, users)
        other[torch.from_numpy(rows).to(dev), torch.from_numpy(cols).to(dev)] = _NEG_INF
    if miss_masked:
        rel_scores = _miss_masked(rel_scores, rel_items, rel_valid, users, mask_csr, other)
    return rel_items, torch.from_numpy(rel_valid).to(dev), rel_scores, other


def _miss_masked(
    rel_scores: torch.Tensor,
    rel_items: np.ndarray,
    rel_valid: np.ndarray,
    users: np.ndarray,
    mask_csr: sp.csr_matrix,
    other: torch.Tensor,
) -> torch.Tensor:
    """(B, R) relevant scores where a relevant item that is also masked gets the lowest score
    among the user's candidates, so with pessimistic ties it ranks below all of them.

    The JCA authors' evaluation (Zziwei/Joint-Collaborative-Autoencoder, utility.py,
    ``test_model_all``: ``prediction = prediction + train_mask * -100000.0``, and Recall@k =
    hits / ``len(u_test)`` over every test item) pushes train items below all others, so a test
    item that is also a train item is never in the top k but still counts in the denominator.
    Up to the user's number of unmasked items the positions are those of the authors' order
    (unmasked items by score, then the masked ones), so every @K metric with K at most that
    number equals theirs.
    """
    n_items = mask_csr.shape[1]
    rows, cols, _ = _rows(mask_csr, users)
    keys = np.arange(len(users))[:, None] * n_items + rel_items
    masked = np.isin(keys, rows * n_items + cols) & rel_valid
    if not masked.any():
        return rel_scores
    # A user without any candidate keeps -inf: ranked after all n_items slots, still no hit.
    lowest = other.masked_fill(other == _NEG_INF, float("inf")).amin(dim=1, keepdim=True)
    lowest = lowest.masked_fill(lowest == float("inf"), _NEG_INF)
    where = torch.from_numpy(masked).to(rel_scores.device)
    return torch.where(where, lowest.to(rel_scores.dtype), rel_scores)


def _sampled_batch(
    model: object, users: np.ndarray, rel_csr: sp.csr_matrix, negatives: np.ndarray
) -> tuple[Ranked, int]:
    """Rank each user's held-out items among its sampled negatives (no masking); also return
    how many negatives were dropped for equalling a relevant item (``evaluate`` logs the total).

    A -1 entry is an absent negative (padding), neither scored as an item nor counted; only a
    row of -1 alone means the user has no negatives, an error for an evaluated user.
    """
    negs = np.asarray(negatives[users], np.int64)
    absent = negs == -1
    if absent.all(axis=1).any():
        bad = users[absent.all(axis=1)]
        raise ValueError(
            f"{len(bad)} evaluated users have no sampled negatives (rows of -1), e.g. user "
            f"index {int(bad[0])}; draw negatives for every user with a held-out record"
        )
    n_items = rel_csr.shape[1]
    if negs.max() >= n_items or negs.min() < -1:
        worst = int(negs.max()) if negs.max() >= n_items else int(negs.min())
        raise ValueError(
            f"split.negatives holds item index {worst}; expected [0, {n_items}) or -1 (absent)"
        )
    rel_items, rel_valid = _padded(rel_csr, users)
    # Item 0 stands in for absent slots (the model needs an index); they are set to -inf below.
    candidates = np.concatenate([rel_items, np.where(absent, 0, negs)], axis=1)
    scores = _scores(model, "score_items", candidates.shape, users, candidates)
    width, dev = rel_items.shape[1], scores.device
    other = scores[:, width:].clone()
    keys = users[:, None] * n_items
    dup = np.isin(keys + negs, (keys + rel_items)[rel_valid]) & ~absent
    if absent.any() or dup.any():
        other[torch.from_numpy(absent | dup).to(dev)] = _NEG_INF
    rel_valid_t = torch.from_numpy(rel_valid).to(dev)
    return rank_relevant(scores[:, :width], rel_valid_t, other), int(dup.sum())
