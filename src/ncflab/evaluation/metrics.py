"""Ranking metrics at cut-offs K, computed from the rank positions of each user's relevant items.

Every metric is a function of the 0-based **positions** ``p`` of a user's relevant items in the
ranked candidate list (``p = 0`` is the top). Ties count *against* the relevant item (pessimistic
ranking): a relevant item's position is

    p = #{non-relevant candidates with score ≥ its score} + #{relevant items ranked before it},

so a constant scorer ranks every relevant item below all 99 negatives of a 100-candidate list and
gets HR@10 = 0, never a lucky 1 from the sort order. Relevant items tied with each other are put
in an arbitrary order (the positions they occupy, hence every metric, are the same either way).

Per user u, with ``rel_u`` its relevant items, ``hits@K = #{p < K}`` and ``n_u`` its non-relevant
candidates:

- ``HR@K``        = 1 if hits@K ≥ 1 else 0 (hit ratio, He et al. 2017 §4.1).
- ``Precision@K`` = hits@K / K — always over K, even when fewer than K candidates exist.
- ``Recall@K``    = hits@K / |rel_u| (not over min(K, |rel_u|)).
- ``F1@K``        = 2·P·R / (P + R), and 0 when P = R = 0.
- ``NDCG@K``      = DCG@K / IDCG@K with binary gains and a log2(p + 2) discount:
  DCG = Σ_{p<K} 1 / log2(p + 2), IDCG = Σ_{i < min(K, |rel_u|)} 1 / log2(i + 2).
- ``MRR``         = 1 / (p_first + 1), p_first the position of the best-ranked relevant item, over
  the **full** candidate list (not cut at K, so it has no "@K" in its key).
- ``AUC``         = fraction of (relevant, non-relevant candidate) pairs in which the relevant item
  scores strictly higher (ties are losses); NaN when u has no non-relevant candidate (such users
  are left out of the mean). Not cut at K either.

Keys: "HR@10", "NDCG@10", "Precision@10", "Recall@10", "F1@10", "MRR", "AUC".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch

__all__ = [
    "METRICS",
    "Ranked",
    "check_finite",
    "check_ks",
    "check_metrics",
    "compute_metrics",
    "metric_keys",
    "rank_relevant",
    "score_metrics",
]

METRICS: tuple[str, ...] = ("HR", "NDCG", "Precision", "Recall", "F1", "MRR", "AUC")
# Metrics that depend on K; the rest are computed over the full candidate list.
_AT_K = ("HR", "NDCG", "Precision", "Recall", "F1")
_ALIASES = {"HIT": "HR", "HITRATE": "HR", "P": "Precision", "R": "Recall", "RR": "MRR"}
_NEG_INF = float("-inf")
# ``rank_relevant`` counts instead of sorting a row of C candidates when its R relevant items
# are at most min(COUNT_UP_TO, C // 200), and always when R = 1 (leave-one-out, sampled): R
# comparison passes over a row against one sort of it. The crossover was measured (one thread,
# docs/speed.md): about R = 2 at C = 100, 20 at C = 3,706 (ML-1M), above 32 at C = 40,000.
COUNT_UP_TO = 16


# ------------------------------------------------------------------------------ validation
def check_ks(ks: int | Iterable[int]) -> tuple[int, ...]:
    """Sorted distinct cut-offs; a K that is not a positive integer raises ValueError."""
    values = [ks] if isinstance(ks, Integral | float | str) else list(ks)
    if not values:
        raise ValueError("ks is empty; expected at least one positive integer cut-off, e.g. (10,)")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise ValueError(f"cut-off K={k!r} is not an integer; expected positive integers")
        if k <= 0:
            raise ValueError(f"cut-off K={k!r} must be a positive integer")
    return tuple(sorted({int(k) for k in values}))


def check_metrics(metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    """Canonical metric names (case-insensitive; "P"/"R"/"Hit" accepted); None means all."""
    if metrics is None:
        return METRICS
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    canon = {m.upper(): m for m in METRICS} | _ALIASES
    out: list[str] = []
    for name in names:
        key = str(name).upper()
        if key not in canon:
            raise ValueError(f"unknown metric {name!r}; expected one of {list(METRICS)}")
        if canon[key] not in out:
            out.append(canon[key])
    if not out:
        raise ValueError(f"metrics is empty; expected some of {list(METRICS)}")
    return tuple(out)


def metric_keys(ks: Iterable[int], metrics: Iterable[str]) -> list[str]:
    """Result keys in output order: "HR@5", "HR@10", …, then "MRR", "AUC"."""
    keys = [f"{m}@{k}" for m in metrics if m in _AT_K for k in ks]
    return keys + [m for m in metrics if m not in _AT_K]


def check_finite(scores: torch.Tensor, what: str) -> None:
    """Raise ValueError naming ``what`` when ``scores`` holds NaN or ±inf."""
    if scores.device.type == "cpu":
        # numpy's single-threaded SIMD check is several times faster than torch's here.
        if np.isfinite(scores.numpy()).all():
            return
    bad = ~torch.isfinite(scores)
    if bool(bad.any()):
        n_bad = int(bad.sum())
        rows = int(bad.any(dim=-1).sum()) if scores.ndim > 1 else 1
        raise ValueError(
            f"{what} returned {n_bad} non-finite scores (NaN or inf) in {rows} of "
            f"{len(scores)} users' rows; expected finite scores"
        )


# --------------------------------------------------------------------------- positions
@dataclass(frozen=True)
class Ranked:
    """Pessimistic positions of each user's relevant items.

    Attributes:
        positions: (B, R) int64 0-based positions in ascending order per row; R is the largest
            number of relevant items in the batch, padded entries are meaningless. Ranked with
            a ``cutoff`` (``rank_relevant``), a position ≥ cutoff is only a lower bound.
        valid: (B, R) bool, False on padding.
        n_other: (B,) int64 number of non-relevant candidates of each user.
    """

    positions: torch.Tensor
    valid: torch.Tensor
    n_other: torch.Tensor

    @property
    def n_relevant(self) -> torch.Tensor:
        """(B,) int64 number of relevant items per user."""
        return self.valid.sum(dim=1)


def rank_relevant(
    rel_scores: torch.Tensor,
    rel_valid: torch.Tensor,
    other_scores: torch.Tensor,
    *,
    cutoff: int | None = None,
) -> Ranked:
    """Positions of relevant items among the other (non-relevant) candidates, ties pessimistic.

    Args:
        rel_scores: (B, R) scores of each user's relevant items (finite where valid).
        rel_valid: (B, R) bool, False on padding.
        other_scores: (B, C) scores of the non-relevant candidates; ``-inf`` marks a slot that
            is not a candidate (a masked training item, padding) and never outranks anything.
        cutoff: only positions below ``cutoff`` are wanted (every metric asked for is an @K
            with K ≤ cutoff): a relevant item further down gets a position ≥ ``cutoff``, not
            necessarily its own, which those metrics read the same. With several relevant items
            a row, the row's top ``cutoff`` other scores (``topk``) are then all that is
            compared, instead of the whole row.

    With few relevant items a row (``COUNT_UP_TO``), the candidates at or above each relevant
    score are counted (one comparison pass over the row per relevant item, O(C·R)); with more,
    each row of ``other_scores`` is sorted once and the relevant scores are located with one
    batched ``searchsorted`` (O(C log C) whatever R). Both give the same integer positions.
    """
    n_cols = other_scores.shape[1]
    rel = rel_scores.masked_fill(~rel_valid, _NEG_INF)
    # Descending order of relevant scores with padding last: the j-th has j relevant before it.
    rel, order = torch.sort(rel, dim=1, descending=True, stable=True)
    valid = torch.gather(rel_valid, 1, order)
    rel = rel.to(other_scores.dtype)
    offsets = torch.arange(rel.shape[1], device=rel.device)
    if cutoff is not None and rel.shape[1] > 1 and cutoff < n_cols:
        # s > the cutoff-th best other score: every other candidate at or above s is among the
        # top cutoff, so counting there is exact; otherwise the count is cutoff, and the
        # position (≥ cutoff + j) is a lower bound that is still past every K ≤ cutoff.
        top = torch.topk(other_scores, cutoff, dim=1).values  # (B, cutoff)
        at_or_above = (top[:, None, :] >= rel[:, :, None]).sum(-1)
        return Ranked(at_or_above + offsets, valid, n_cols - _count_neg_inf(other_scores))
    if _counting_is_cheaper(rel.shape[1], n_cols):
        # ≥ counts ties against the relevant item, and a -inf slot is never ≥ a finite score
        # (a -inf relevant score, padding, is at or below all n_cols slots, as searchsorted says).
        at_or_above, n_neg_inf = _count_at_or_above(other_scores, rel.detach())
        return Ranked(at_or_above + offsets, valid, n_cols - n_neg_inf)
    if other_scores.device.type == "cpu":
        # numpy's SIMD sort is ~20x faster than torch.sort on CPU and we need no indices.
        ordered = torch.from_numpy(np.sort(other_scores.numpy(), axis=1))
    else:
        ordered = torch.sort(other_scores, dim=1).values
    below = torch.searchsorted(ordered, rel.contiguous(), side="left")
    at_or_above = n_cols - below  # -inf slots are never ≥ a finite relevant score
    positions = at_or_above + offsets
    # The -inf slots (non-candidates) lead each sorted row.
    n_skip = torch.searchsorted(
        ordered, ordered.new_full((len(ordered), 1), _NEG_INF), side="right"
    )
    n_other = n_cols - n_skip[:, 0]
    return Ranked(positions, valid, n_other)


def _counting_is_cheaper(n_rel: int, n_cols: int) -> bool:
    """Whether ``rank_relevant`` counts (rather than sorts) for rows of ``n_rel`` relevant
    items among ``n_cols`` candidates (``COUNT_UP_TO``)."""
    return 0 < n_rel <= max(1, min(COUNT_UP_TO, n_cols // 200))


def _count_at_or_above(other: torch.Tensor, rel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, R) int64 count of each row's ``other`` scores ≥ each of its ``rel`` scores, and the
    (B,) int64 count of its -inf slots."""
    if other.device.type == "cpu":
        # numpy's comparison and count_nonzero are ~2x faster than torch's on CPU.
        o, r = other.numpy(), rel.numpy()
        counts = [np.count_nonzero(o >= r[:, j, None], axis=1) for j in range(r.shape[1])]
        return torch.from_numpy(np.stack(counts, 1).astype(np.int64)), _count_neg_inf(other)
    counts = [(other >= rel[:, j, None]).sum(1) for j in range(rel.shape[1])]
    return torch.stack(counts, 1), _count_neg_inf(other)


def _count_neg_inf(other: torch.Tensor) -> torch.Tensor:
    """(B,) int64 count of each row's -inf slots. On CPU numpy's: torch's sum of a bool array
    first copies it to int64 (1,024 x 9,242 scores: 42 vs 5.1 ms, where it was the largest cost
    of JCA's validation after its scoring; 256 x 3,706: 1.1 vs 0.4 ms; bench_rank.py --neg-inf)."""
    if other.device.type == "cpu":
        return torch.from_numpy(np.count_nonzero(other.numpy() == -np.inf, axis=1).astype(np.int64))
    return (other == _NEG_INF).sum(1)


# ----------------------------------------------------------------------------- metrics
def compute_metrics(
    ranked: Ranked, ks: Iterable[int] = (10,), metrics: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Per-user metric values from positions (definitions in the module docstring).

    Returns:
        {key: (B,) float64 tensor}, keys as in :func:`metric_keys`.
    """
    ks, metrics = check_ks(ks), check_metrics(metrics)
    pos, valid = ranked.positions, ranked.valid
    n_rel = ranked.n_relevant.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    # Discount 1/log2(p + 2) of positions 0..max(K); ideal[n] = IDCG of n relevant items.
    k_max = max(ks)
    disc = 1.0 / torch.log2(torch.arange(k_max + 1, dtype=torch.float64, device=pos.device) + 2)
    ideal = torch.cat([disc.new_zeros(1), disc.cumsum(0)])
    safe_pos = pos.clamp(0, k_max)  # positions ≥ K only index the table; `top` zeroes them
    for k in ks:
        top = valid & (pos < k)
        hits = top.sum(dim=1).to(torch.float64)
        prec, rec = hits / k, hits / n_rel
        values = {"HR": (hits > 0).to(torch.float64), "Precision": prec, "Recall": rec}
        denom = prec + rec
        values["F1"] = torch.where(denom > 0, 2 * prec * rec / denom.clamp_min(1e-300), 0.0)
        dcg = (disc[safe_pos] * top).sum(dim=1)
        values["NDCG"] = dcg / ideal[n_rel.long().clamp_max(k)]
        out.update({f"{m}@{k}": values[m] for m in metrics if m in _AT_K})
    if "MRR" in metrics:
        out["MRR"] = 1.0 / (pos[:, 0].to(torch.float64) + 1)
    if "AUC" in metrics:
        # Pairs the relevant item loses or ties = non-relevant candidates at or above it.
        above = (pos - torch.arange(pos.shape[1], device=pos.device)).masked_fill(~valid, 0)
        n_other = ranked.n_other.to(torch.float64)
        wins = (n_other * n_rel - above.sum(dim=1)).to(torch.float64)
        out["AUC"] = torch.where(n_other > 0, wins / (n_rel * n_other).clamp_min(1), math.nan)
    return {key: out[key] for key in metric_keys(ks, metrics)}


def score_metrics(
    scores: torch.Tensor | np.ndarray,
    relevant: torch.Tensor | np.ndarray,
    *,
    ks: Iterable[int] = (10,),
    metrics: Iterable[str] | None = None,
    exclude: torch.Tensor | np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Per-user metrics from dense scores over a candidate list.

    Args:
        scores: (B, C) scores, higher is better; must be finite.
        relevant: (B, C) bool, the relevant candidates (every user needs at least one).
        exclude: (B, C) bool candidates removed from the ranking (e.g. training items), or
            None. A relevant candidate is never excluded.

    Returns:
        {key: (B,) float64 tensor} as :func:`compute_metrics`.
    """
    scores = _as_float(torch.as_tensor(scores)).detach()
    relevant = torch.as_tensor(relevant, dtype=torch.bool, device=scores.device)
    if scores.ndim != 2 or relevant.shape != scores.shape:
        raise ValueError(
            f"scores and relevant must both be (B, C); got {tuple(scores.shape)} and "
            f"{tuple(relevant.shape)}"
        )
    check_finite(scores, "scores")
    n_rel = relevant.sum(dim=1)
    if bool((n_rel == 0).any()):
        raise ValueError(f"{int((n_rel == 0).sum())} rows have no relevant candidate")
    other = scores.masked_fill(relevant, _NEG_INF)
    if exclude is not None:
        exclude = torch.as_tensor(exclude, dtype=torch.bool, device=scores.device)
        other = other.masked_fill(exclude, _NEG_INF)
    # The R best relevant scores of each row, padding (-inf) last.
    width = int(n_rel.max())
    rel_scores = scores.masked_fill(~relevant, _NEG_INF).topk(width, dim=1).values
    rel_valid = torch.arange(width, device=scores.device) < n_rel[:, None]
    return compute_metrics(rank_relevant(rel_scores, rel_valid, other), ks, metrics)


def _as_float(scores: torch.Tensor) -> torch.Tensor:
    """Integer scores become float64 (exact), so ``-inf`` can mark excluded slots."""
    return scores if scores.is_floating_point() else scores.to(torch.float64)
