"""Paired significance of the difference between two models evaluated on the same users.

Two runs on one split are scored on the same held-out items (and, in sampled evaluation, the
same candidates), so their per-user metric values are paired observations: the question "is A
better than B on this data" is answered from the per-user differences d_u = m_A(u) − m_B(u),
not from two means and their separate spreads (which ignore the pairing and the shared hardness
of each user's item). Reported, all two-sided:

- the mean difference with a paired bootstrap confidence interval (users resampled with
  replacement, percentile interval; seeded, vectorised in chunks);
- the paired t-test on d_u (large n: the mean of d is close to normal even for 0/1 HR);
- the Wilcoxon signed-rank test (zero differences dropped, as Wilcoxon did);
- the sign test: an exact binomial test of A's wins among the users where A and B differ. On a
  0/1 metric such as HR@K with one held-out item this is McNemar's exact test.

Across seeds of one model the spread is a different question (how much a result moves with
initialisation); ``ncflab train --repeat`` reports that.

Many comparisons in one table (every row against a baseline, on each metric and dataset) are
corrected together with ``holm`` (Holm–Bonferroni), which controls the chance of any false
"significant" in the table without assuming the tests are independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["PairedTest", "holm", "paired_test"]


@dataclass(frozen=True)
class PairedTest:
    """The outcome of ``paired_test``: means, the mean difference A − B and its interval,
    the three p-values, and how many users each model wins (``ties``: equal values)."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    t_p: float
    wilcoxon_p: float
    sign_p: float
    wins_a: int
    wins_b: int
    ties: int


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Compare per-user metric values ``a`` and ``b`` (same users, same order).

    Raises ValueError for arrays of different shapes, fewer than 2 users, non-finite values
    (drop the users a metric is undefined for first, e.g. AUC's NaN), ``resamples`` < 1 or a
    ``confidence`` outside (0, 1).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"need two 1-d arrays of one length, got shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"need at least 2 paired users, got {len(a)}")
    bad = ~(np.isfinite(a) & np.isfinite(b))
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} users have a non-finite value (first at position "
            f"{int(np.argmax(bad))}); drop them before testing"
        )
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = a - b
    wins_a, wins_b = int((d > 0).sum()), int((d < 0).sum())
    differ = wins_a + wins_b  # the rank and sign tests see only these users; none: p 1
    low, high = _bootstrap_interval(d, resamples, confidence, seed)
    return PairedTest(
        n=len(d),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        diff=float(d.mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        t_p=_t_p(d),
        wilcoxon_p=float(stats.wilcoxon(d, zero_method="wilcox").pvalue) if differ else 1.0,
        sign_p=float(stats.binomtest(wins_a, differ).pvalue) if differ else 1.0,
        wins_a=wins_a,
        wins_b=wins_b,
        ties=len(d) - wins_a - wins_b,
    )


def _t_p(d: np.ndarray) -> float:
    """Two-sided p of the paired t-test; a constant difference is no evidence (p 1) when it
    is 0 and certain (p 0) otherwise, where the t statistic itself is undefined."""
    if np.ptp(d) == 0:
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def _bootstrap_interval(
    d: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the mean of ``d`` over ``resamples`` paired bootstrap samples
    (n users drawn with replacement each), a chunk of samples at a time as one (chunk, n)
    index array of at most ~64 MB."""
    rng = np.random.default_rng(seed)
    n = len(d)
    chunk = max(1, min(resamples, 8_000_000 // n))
    means = np.empty(resamples)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        means[start : start + size] = d[rng.integers(0, n, size=(size, n))].mean(1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values, in the order given.

    With the m finite p-values sorted ascending, p_(1) ≤ … ≤ p_(m), the adjusted value of
    p_(i) is min(1, max_{j ≤ i} (m − j + 1) p_(j)): rejecting where it is below α controls the
    family-wise error rate at α (Holm 1979). The running maximum keeps the adjusted values in
    the order of the raw ones, so a smaller p is never reported as less significant.

    A NaN (a comparison that could not be made: too few users, different splits) stays NaN and
    is not counted in m: it is no test, so it spends none of the family's error rate.
    Raises ValueError for a p-value outside [0, 1] or an input that is not 1-d.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"need a 1-d sequence of p-values, got shape {p.shape}")
    tested = ~np.isnan(p)
    bad = tested & ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise ValueError(f"p-values must be in [0, 1], got {p[at]} at position {at}")
    index = np.flatnonzero(tested)
    order = index[np.argsort(p[index], kind="stable")]
    m = len(order)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.full(p.shape, np.nan)
    out[order] = np.minimum(stepped, 1.0)
    return out
