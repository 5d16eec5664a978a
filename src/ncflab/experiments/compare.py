"""Hits of two trained models and how much they differ (JCA, Zhu et al. WWW 2019, §3.3, Fig. 1).

A model's *hits* for a user are the held-out items among its top-K recommendations. JCA §3.3
defines, for the hits H_U of U-AutoRec and H_I of I-AutoRec on one user,

    HitsDifferenceRate = (|H_U ∪ H_I| − |H_U ∩ H_I|) / |H_U ∪ H_I|,

and plots its CDF over the ML-1M users (Fig. 1): "more than 60% of users have a hits difference
rate larger than 20%, with some users (around 30%) having a hits difference rate larger than
50%". The rate is 0/0 for a user whom neither model hits; such users get NaN here and are
counted, never silently dropped or set to 0 (the paper does not say how it treated them).

Hits are exactly what evaluation counts: full ranking with the items the evaluator masks (train,
and valid when ranking test) removed, and a held-out item is a hit when its pessimistic position
(ties count against it, :mod:`ncflab.evaluation.metrics`) is < K. So ``|hits| / K`` is the user's
Precision@K from ``evaluate(model, split, protocol="full")``, and a tie at the cut-off never
makes a hit that the metrics would not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ncflab.config import load_config
from ncflab.data.splits import Split
from ncflab.evaluation.metrics import rank_relevant
from ncflab.evaluation.protocols import _check_request, _full_inputs, _mask_csr
from ncflab.experiments.run import load_run
from ncflab.models.base import Recommender
from ncflab.runs import recorded_fingerprint

__all__ = [
    "Hits",
    "RateSummary",
    "ecdf",
    "hits_difference_rate",
    "load_pair",
    "plot_cdf",
    "saved_test_pair",
    "summarize_rates",
    "top_k_hits",
]

_NEG_INF = float("-inf")


@dataclass(frozen=True)
class Hits:
    """Per-user hit sets of one model.

    Attributes:
        users: (U,) int64 evaluated user indices (those with ≥ 1 record in ``part``), ascending.
        items: (U, n_items) int8 CSR; row r holds a 1 for each hit of user ``users[r]``.
        k: the top-K cut-off.
        part: "test" or "valid".
    """

    users: np.ndarray
    items: sp.csr_matrix
    k: int
    part: str

    def counts(self) -> np.ndarray:
        """(U,) number of hits per user (≤ k)."""
        return self.items.getnnz(axis=1)


@dataclass(frozen=True)
class RateSummary:
    """Hits difference rates summarised over users.

    Attributes:
        n_users: evaluated users.
        n_undefined: users hit by neither model (rate 0/0, NaN).
        above: {threshold: share of the *defined* users with rate > threshold}.
        above_all: the same counts over *all* evaluated users (undefined ones are not above).
        mean: mean rate of the defined users.
        cdf: (x, F): the distinct rates ascending and the share of defined users with rate ≤ x.
    """

    n_users: int
    n_undefined: int
    above: dict[float, float]
    above_all: dict[float, float]
    mean: float
    cdf: tuple[np.ndarray, np.ndarray]


def top_k_hits(
    model: object, split: Split, k: int = 10, *, part: str = "test", batch_size: int = 1024
) -> Hits:
    """Each evaluated user's hits: held-out items of ``part`` ranked in the top ``k`` by full
    ranking with train (and for test, valid) masked, as ``evaluate`` ranks them.

    Args:
        model: anything with ``score(users) -> (B, n_items)``.
        split: the split the model was trained on.
        k: positive cut-off (JCA Fig. 1 uses 10).
        part: "test" or "valid".
        batch_size: users scored at once (memory is about batch_size × n_items scores).
    """
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    k = int(k)
    held = _check_request(split, part, "full", batch_size)
    rel_csr = held.csr("binary")
    users = np.flatnonzero(np.diff(rel_csr.indptr) > 0)
    mask_csr = _mask_csr(split, part)
    miss = split.relevant_in_train == "miss"
    rows, cols = [], []
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            r, c = _batch_hits(model, batch, rel_csr, mask_csr, split.n_items, k, miss)
            rows.append(r + start)
            cols.append(c)
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    items = sp.csr_matrix(
        (np.ones(len(rows_a), np.int8), (rows_a, cols_a)), shape=(len(users), split.n_items)
    )
    return Hits(users, items, k, part)


def _batch_hits(
    model: object,
    users: np.ndarray,
    rel_csr: sp.csr_matrix,
    mask_csr: sp.csr_matrix,
    n_items: int,
    k: int,
    miss_masked: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(batch row, item) of every hit of ``users`` (B,), from the evaluator's own ranking
    (``miss_masked``: a split evaluated as its authors did, ``Split.relevant_in_train``)."""
    rel_items, rel_valid, rel_scores, other = _full_inputs(
        model, users, rel_csr, mask_csr, n_items, miss_masked=miss_masked
    )
    # rank_relevant returns positions for the relevant items ordered by descending score (stable
    # sort, padding last). Sorting them that way first makes its sort the identity, so position
    # j belongs to item rel_items[:, order[j]].
    rel_scores = rel_scores.masked_fill(~rel_valid, _NEG_INF)
    rel_scores, order = torch.sort(rel_scores, dim=1, descending=True, stable=True)
    rel_valid = torch.gather(rel_valid, 1, order)
    ranked = rank_relevant(rel_scores, rel_valid, other)
    hit = (ranked.valid & (ranked.positions < k)).cpu().numpy()
    items = np.take_along_axis(rel_items, order.cpu().numpy(), axis=1)
    rows, slots = np.nonzero(hit)
    return rows, items[rows, slots]


def hits_difference_rate(hits_a: Hits, hits_b: Hits) -> np.ndarray:
    """(U,) JCA §3.3's rate (|A ∪ B| − |A ∩ B|) / |A ∪ B| per evaluated user; NaN where
    A ∪ B is empty. Both must cover the same users, part and K."""
    if hits_a.k != hits_b.k or hits_a.part != hits_b.part:
        raise ValueError(
            f"hits are for K={hits_a.k} on {hits_a.part!r} and K={hits_b.k} on "
            f"{hits_b.part!r}; expected the same K and part"
        )
    if hits_a.items.shape != hits_b.items.shape or not np.array_equal(hits_a.users, hits_b.users):
        raise ValueError(
            f"hits cover {hits_a.items.shape} and {hits_b.items.shape} (users × items) with "
            "different users; expected hits computed on the same split"
        )
    n_a, n_b = hits_a.counts(), hits_b.counts()
    both = np.asarray(hits_a.items.multiply(hits_b.items).sum(axis=1)).ravel()
    union = n_a + n_b - both
    rate = np.full(len(union), np.nan)
    defined = union > 0
    rate[defined] = (union - both)[defined] / union[defined]
    return rate


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of the finite ``values``: distinct values x ascending and F(x) = share of
    values ≤ x (a step function, right-continuous)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    x, counts = np.unique(values, return_counts=True)
    return x, np.cumsum(counts) / max(len(values), 1)


def summarize_rates(rates: np.ndarray, thresholds: tuple[float, ...] = (0.2, 0.5)) -> RateSummary:
    """Shares of users above each threshold (JCA Fig. 1 reads off 20 % and 50 %), the count of
    undefined (NaN) rates, the mean and the empirical CDF."""
    rates = np.asarray(rates, np.float64)
    defined = rates[~np.isnan(rates)]
    n = len(rates)
    nan = float("nan")
    above = {t: float((defined > t).mean()) if len(defined) else nan for t in thresholds}
    above_all = {t: float((defined > t).sum() / n) if n else nan for t in thresholds}
    mean = float(defined.mean()) if len(defined) else nan
    return RateSummary(n, n - len(defined), above, above_all, mean, ecdf(defined))


def load_pair(
    run_a: str | Path, run_b: str | Path, *, data_dir: str | None = None
) -> tuple[Split, Recommender, Recommender]:
    """The shared split and both models of two run directories written by ``ncflab train``.

    The split is rebuilt once (fingerprint checked by ``load_run``); runs made on different
    splits raise ValueError, since their hits would be on different held-out items.
    """
    _saved_prints(run_a, run_b)
    _, split, model_a = load_run(run_a, data_dir=data_dir)
    _, split_b, model_b = load_run(run_b, data_dir=data_dir, split=split)
    if split_b.fingerprint() != split.fingerprint():
        raise ValueError(_mismatch(run_a, run_b, split.fingerprint(), split_b.fingerprint()))
    return split, model_a, model_b


def saved_test_pair(
    run_a: str | Path, run_b: str | Path
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Both runs' per-user test metrics as ``ncflab train`` wrote them (``per_user.csv``), rows
    aligned by user, when they pair without scoring either model again; None when they do not.

    Scoring again is what a pairing otherwise costs, and for a pairwise model it is the whole
    candidate-pair tower over every test user (about 25 minutes for NeuPR at 64 factors on
    ML-1M, one CPU thread), to recompute values the run already wrote. They pair when both runs
    recorded one split fingerprint (which covers train, valid, test and the sampled negatives)
    and one protocol, and both files hold the same users, once each, and the same columns.
    Anything else (a run from before ``per_user.csv``, another protocol, an edited file) gives
    None and the caller scores both models, so a mismatch is never paired silently. Runs that
    recorded different splits raise ValueError, as in ``load_pair``.
    """
    runs, prints = [Path(run_a), Path(run_b)], _saved_prints(run_a, run_b)
    files = [run / name for run in runs for name in ("per_user.csv", "config.toml")]
    if None in prints or not all(f.is_file() for f in files):
        return None
    if len({load_config(run / "config.toml").protocol for run in runs}) != 1:
        return None
    a, b = (pd.read_csv(run / "per_user.csv") for run in runs)
    if "user" not in a.columns or set(a.columns) != set(b.columns) or len(a) != len(b):
        return None
    a, b = (f.sort_values("user", kind="stable", ignore_index=True) for f in (a, b))
    if not np.array_equal(a["user"], b["user"]) or a["user"].duplicated().any():
        return None
    return a, b[a.columns]


def _saved_prints(run_a: str | Path, run_b: str | Path) -> list[str | None]:
    """Both runs' recorded split fingerprints; ValueError when both recorded one and they
    differ (hits or per-user values can only be paired on one split)."""
    prints = [recorded_fingerprint(run_a), recorded_fingerprint(run_b)]
    if prints[0] and prints[1] and prints[0] != prints[1]:
        raise ValueError(_mismatch(run_a, run_b, prints[0], prints[1]))
    return prints


def _mismatch(run_a: str | Path, run_b: str | Path, fp_a: str, fp_b: str) -> str:
    return (
        f"runs {run_a} (split {fp_a}) and {run_b} (split {fp_b}) were made on different "
        "splits; hits can only be compared on one split (same dataset, protocol and seed)"
    )


def plot_cdf(summary: RateSummary, path: str | Path, title: str = "") -> Path:
    """Write the CDF of the hits difference rate (JCA Fig. 1) as an image; needs matplotlib."""
    try:
        from matplotlib.figure import Figure  # the OO API: no pyplot state, no backend switch
    except ImportError as err:
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib (or pip install 'ncflab[plot]')"
        ) from err
    x, y = summary.cdf
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    # Rates of exactly 0 and 1 are common (equal hits; hits by one model only): pad the steps
    # and the x range beyond [0, 1] so the jumps at both ends are drawn inside the axes.
    ax.step(np.r_[-0.05, x, 1.05], np.r_[0.0, y, 1.0], where="post")
    for t in summary.above:
        ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlim=(-0.02, 1.02), ylim=(0, 1.02), xlabel="hits difference rate")
    ax.set_ylabel("CDF over users with a hit")
    ax.set_title(title or f"{summary.n_users - summary.n_undefined} users", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=150)
    return path
