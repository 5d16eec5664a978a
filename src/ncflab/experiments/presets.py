"""Protocol presets: filtering + split + candidates + metrics under one word.

Every preset has a validation part (for early stopping and tuning); test is evaluated once, at the
end of a run. The presets follow the papers' evaluation sections:

- ``ncf``: He et al., WWW 2017, §4.1 — leave-one-out by time, 99 sampled negatives, HR/NDCG@10.
  Their code had no validation set and picked epochs on test; we hold out each user's second
  latest record as validation instead and never look at test before the end.
- ``jncf``: J-NCF §4.2.2 — leave-one-out (latest = test), validation "partitioned from the training
  set with the same procedure" (the second latest), 100 sampled negatives (also DMF's protocol).
- ``ncr``: NCR §5.1 — users and items with < 10 interactions dropped in one pass (counts taken on
  the raw data), latest = test, second latest = validation, 100 sampled negatives, HR/NDCG@10.
- ``jca``: JCA §5.1–5.2 — ratings ≥ 4 are positives with the authors' three-pass "more than 5
  positives" filter (reproduces Table 2), per-user random 80/20, 10 % of train as validation,
  full ranking, P/R/F1/NDCG@{1,5,10}.
- ``loo-full``: leave-one-out by time with full ranking (no sampled negatives).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ncflab.data import filters
from ncflab.data.interactions import Interactions
from ncflab.data.splits import Split, leave_one_out, ratio_split, with_negatives

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "make_split"]


def _no_filter(inter: Interactions) -> Interactions:
    return inter


def _ncr_filter(inter: Interactions) -> Interactions:
    # NCR §5.1: "discard users and items with less than 10 interactions" — a single pass.
    return filters.min_counts(inter, min_user=10, min_item=10)


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        name: the preset's word.
        description: one line, with the paper section it follows.
        prepare: filtering applied to the loaded dataset before splitting.
        split: "loo" (leave-one-out by time) or "ratio" (per-user random hold-out).
        n_negatives: sampled negatives per user (sampled evaluation), or 0 for full ranking.
        ks: cut-offs of the metrics.
        metrics: metric names (see ``ncflab.evaluation.metrics``).
        monitor: validation metric for early stopping and tuning.
        patience: early-stopping patience (epochs) when the run's config leaves it at 0.
    """

    name: str
    description: str
    prepare: Callable[[Interactions], Interactions]
    split: str
    n_negatives: int
    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    monitor: str
    patience: int = 5

    @property
    def evaluation(self) -> str:
        """ "sampled" (rank among the held-out item and the negatives) or "full"."""
        return "sampled" if self.n_negatives else "full"


PROTOCOLS: dict[str, Protocol] = {
    "ncf": Protocol(
        "ncf",
        "He et al. 2017 §4.1: latest = test, second latest = valid, 99 negatives",
        _no_filter,
        "loo",
        99,
        (10,),
        ("HR", "NDCG"),
        "NDCG@10",
    ),
    "jncf": Protocol(
        "jncf",
        "J-NCF §4.2.2: latest = test, second latest = valid, 100 negatives",
        _no_filter,
        "loo",
        100,
        tuple(range(1, 11)),  # J-NCF Fig. 5 reports HR@N / NDCG@N for N = 1..10
        ("HR", "NDCG"),
        "NDCG@10",
    ),
    "ncr": Protocol(
        "ncr",
        "NCR §5.1: <10-interaction users/items dropped (one pass), leave-one-out, 100 negatives",
        _ncr_filter,
        "loo",
        100,
        (10,),
        ("HR", "NDCG"),
        "NDCG@10",
    ),
    "jca": Protocol(
        "jca",
        "JCA §5.1-5.2: ratings >= 4, >5-positive filter, per-user 80/20, full ranking",
        filters.jca_filter,
        "ratio",
        0,
        (1, 5, 10),
        ("Precision", "Recall", "F1", "NDCG"),
        "F1@10",
        # JCA-family validation curves plateau for 5-10 epochs early on: with patience 5, 1 of
        # 3 seeds of JCA-MSE stopped at epoch 9 (test F1avg@10 .119 vs .192-.194 for the seeds
        # that ran 61-67 epochs) and 1 of 3 of JCA-BPR at epoch 16 (.094 vs .164-.170, 100-129
        # epochs). An epoch costs ~2 s on ML-1M, so waiting 20 is cheap.
        patience=20,
    ),
    "loo-full": Protocol(
        "loo-full",
        "leave-one-out by time (second latest = valid), full ranking",
        _no_filter,
        "loo",
        0,
        (10, 20),
        ("HR", "NDCG", "Recall", "MRR"),
        "NDCG@10",
    ),
}


def get_protocol(name: str) -> Protocol:
    """The preset called ``name``; an unknown name raises ``KeyError`` listing the known ones."""
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; known protocols: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def make_split(protocol: Protocol, inter: Interactions, seed: int = 0) -> Split:
    """Filter, split and (for sampled protocols) draw the negatives, all from ``seed``."""
    data = protocol.prepare(inter)
    if protocol.split == "loo":
        split = leave_one_out(data, validation="latest", seed=seed)
    elif protocol.split == "ratio":
        split = ratio_split(data, test_ratio=0.2, valid_ratio=0.1, seed=seed)
    else:
        raise ValueError(f"protocol {protocol.name!r} has unknown split {protocol.split!r}")
    if protocol.n_negatives:
        split = with_negatives(split, protocol.n_negatives, seed)
    split.info["protocol"] = protocol.name
    return split
