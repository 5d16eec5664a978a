"""Analyses of a finished cell's model, kept in its summary beside the metrics.

Some of the papers' figures need more than per-user metrics: JCA's Fig. 1 needs each user's
hits (which held-out items a model put in its top 10), NCR's rule comparison needs the pairwise
model itself. A row of an experiment file names the analyses its cells get (``analyses =
["hits@10"]``); once a cell's run has finished, the runner loads the run (checked as every
reader checks it), runs each analysis and keeps its result in the summary: scalars under
``analyses.<name>``, per-user columns in the summary's per-user file. A view then builds the
table or figure from the summaries alone, as every other page does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ncflab.data.splits import Split
from ncflab.models.base import Recommender

__all__ = ["ANALYSES", "Analysis", "HITS_K", "hits_column", "run_analysis"]

HITS_K = 10  # JCA Fig. 1 compares the top 10


@dataclass(frozen=True)
class Analysis:
    """An analysis's result: scalars for the summary and per-user columns (a ``user`` column of
    original ids and one column per value) for its per-user file."""

    scalars: dict[str, float] = field(default_factory=dict)
    per_user: pd.DataFrame | None = None


def hits_column(k: int = HITS_K) -> str:
    """The per-user column holding a user's hits at ``k``: original item ids, space-separated."""
    return f"hits@{k}"


def _hits(model: Recommender, split: Split) -> Analysis:
    """Each test user's hits in the top ``HITS_K`` by full ranking (``compare.top_k_hits``:
    the evaluator's own masking and ties), as original item ids."""
    from ncflab.experiments.compare import top_k_hits

    hits = top_k_hits(model, split, HITS_K, part="test")
    items = split.train.item_ids
    lists = [
        " ".join(str(i) for i in items[np.sort(hits.items.indices[a:b])])
        for a, b in zip(hits.items.indptr[:-1], hits.items.indptr[1:], strict=True)
    ]
    frame = pd.DataFrame({"user": split.train.user_ids[hits.users], hits_column(): lists})
    return Analysis({"users": float(len(hits.users))}, frame)


def _rules(model: Recommender, split: Split) -> Analysis:
    """NCR's two ranking rules on the test candidates (``ncflab rules``: Algorithm 1 against
    win counts, their agreement and the share of intransitive triangles), the held-out item at
    a random place seeded 0."""
    from ncflab.experiments.ncr import compare_rules
    from ncflab.models.ncr import NCRBase

    if not isinstance(model, NCRBase):
        raise ValueError(
            f"the rules analysis needs a pairwise NCR model (nbpr, dncr, neupr), not "
            f"{type(model).__name__}"
        )
    found = compare_rules(model, split, part="test", k=10, position="random", seed=0)
    return Analysis({k: float(v) for k, v in found.items()})


ANALYSES: dict[str, Callable[[Recommender, Split], Analysis]] = {
    hits_column(): _hits,
    "rules": _rules,
}


def run_analysis(name: str, model: Recommender, split: Split) -> Analysis:
    """Run the analysis ``name`` (a key of ``ANALYSES``) on a trained model and its split."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; known: {sorted(ANALYSES)}")
    return ANALYSES[name](model, split)
