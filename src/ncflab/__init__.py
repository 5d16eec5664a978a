"""ncflab: neural collaborative filtering — J-NCF, JCA, NCR, their baselines and protocols.

The public API (what the README's Python section uses)::

    import ncflab

    inter = ncflab.load_dataset("ml-1m")                  # Interactions (ids ⇄ indices, CSR)
    split = ncflab.make_split("ncf", inter, seed=0)        # a protocol's split and candidates
    model = ncflab.MODELS["ease"]().fit(split.train)        # any registry model
    ncflab.evaluate(model, split, protocol="sampled").means
    items, scores = model.recommend([0, 1], k=10, exclude=split.known_positives())

    result = ncflab.train(ncflab.RunConfig(model="bpr", dataset="ml-100k"), out="runs/bpr")
    config, split, model = ncflab.load_run("runs/bpr")     # checked: model files and split

Names are imported on first use, so ``import ncflab`` stays light (no torch until needed).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ncflab.config import RunConfig
    from ncflab.data.interactions import Interactions
    from ncflab.data.splits import Split
    from ncflab.experiments.run import RunResult

__all__ = [
    "FitOptions",
    "Interactions",
    "MODELS",
    "Recommender",
    "RunConfig",
    "Split",
    "evaluate",
    "load_config",
    "load_dataset",
    "load_run",
    "make_split",
    "read_user_file",
    "train",
]

_LAZY = {
    "FitOptions": "ncflab.training.options",
    "Interactions": "ncflab.data.interactions",
    "MODELS": "ncflab.models",
    "Recommender": "ncflab.models.base",
    "RunConfig": "ncflab.config",
    "Split": "ncflab.data.splits",
    "evaluate": "ncflab.evaluation.protocols",
    "load_config": "ncflab.config",
    "load_dataset": "ncflab.data.datasets",
    "load_run": "ncflab.experiments.run",
    "read_user_file": "ncflab.data.user_files",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ncflab' has no attribute {name!r}")


def make_split(protocol: str, inter: Interactions, seed: int = 0) -> Split:
    """The split of ``inter`` by protocol preset ``protocol`` (``ncf``, ``jncf``, ``ncr``,
    ``jca``, ``loo-full``): its filter, split and sampled candidates, all from ``seed``."""
    from ncflab.experiments.presets import get_protocol
    from ncflab.experiments.presets import make_split as _make

    return _make(get_protocol(protocol), inter, seed=seed)


def train(config: RunConfig, out: str | Path | None = None, *, force: bool = False) -> RunResult:
    """Run ``config`` as ``ncflab train`` does: early stopping on validation, test once, and
    the run folder ``out`` written when given (``force``: replace a finished run there)."""
    from ncflab.experiments.run import run_experiment

    return run_experiment(config, out, force=force)
