"""Run an experiment's cells that are not finished yet, and keep each one's summary.

A cell is a normal run folder under ``runs/reproduce/<paper>/<experiment>/<profile>/<cell>``
(resumable, fingerprinted, checked) and, once finished, a small summary under
``results/<paper>/<experiment>/<profile>/<cell>.json`` (committed; ``summary.py``). A cell
whose summary exists with the same resolved config is done and never run again, so a table is
built over several sittings and a killed reproduction continues where it stopped: an unfinished
run folder is resumed from its snapshot, a finished one only summarised.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncflab import runs
from ncflab.config import RunConfig
from ncflab.experiments.data import resolve_config
from ncflab.reproduce.spec import Cell, Experiment
from ncflab.reproduce.summary import summary_path, write_summary
from ncflab.training.options import FitOptions

__all__ = ["CellOutcome", "cell_config", "expected_config", "run_experiment_cells"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell: "done" (its summary was there), "ran", "resumed",
    "summarised" (a finished run folder without a summary) or "failed" (with the error)."""

    cell: Cell
    status: str
    seconds: float = 0.0
    error: str = ""


def cell_config(cell: Cell, data_dir: str | None = None, threads: int = 0) -> RunConfig:
    """The resolved run config of a cell (split seed 0: every row of a dataset on one split,
    so rows pair user by user)."""
    train = {**cell.train}
    if threads:
        train["threads"] = threads
    config = RunConfig(
        dataset=cell.dataset,
        protocol=cell.experiment.protocol,
        model=cell.row.model,
        seed=cell.seed,
        split_seed=0,
        data_dir=data_dir,
        params=dict(cell.params),
        train=FitOptions(**train),
    )
    return resolve_config(config)


def run_experiment_cells(
    experiment: Experiment,
    *,
    profile: str,
    results: Path,
    runs_root: Path,
    seeds: int | None = None,
    data_dir: str | None = None,
    threads: int = 0,
    on_cell: Callable[[CellOutcome, int, int], None] | None = None,
) -> list[CellOutcome]:
    """Run every cell of ``experiment`` under ``profile`` that has no up-to-date summary.

    A failing cell (a dataset whose files are not here, a model that diverges) is recorded
    as "failed" with its message and the others go on; ``on_cell(outcome, i, n)`` reports
    each cell as it ends."""
    cells = experiment.cells(profile, seeds=seeds)
    out = []
    for i, cell in enumerate(cells, 1):
        outcome = _one(cell, results, runs_root, data_dir, threads)
        out.append(outcome)
        if on_cell is not None:
            on_cell(outcome, i, len(cells))
    return out


def _one(cell: Cell, results: Path, runs_root: Path, data_dir: str | None, threads: int):
    from ncflab.experiments.run import run_experiment
    from ncflab.experiments.tune import run_tuning

    exp = cell.experiment
    t0 = time.perf_counter()
    try:
        config = cell_config(cell, data_dir, threads)
        target = summary_path(results, exp.paper, exp.name, cell.profile, cell.key)
        if _up_to_date(target, config):
            return CellOutcome(cell, "done")
        folder = runs_root / exp.paper / exp.name / cell.profile / cell.key
        state = runs.run_state(folder) if folder.exists() else "absent"
        if state == "finished" and _folder_config(folder) == config.to_dict():
            status = "summarised"
        elif cell.row.tune:
            run_tuning(config, folder, trials=cell.row.tune, force=True)
            status = "ran"
        elif state == "unfinished" and _folder_config(folder) == config.to_dict():
            run_experiment(config, folder, resume=True)
            status = "resumed"
        else:
            run_experiment(config, folder, force=True)
            status = "ran"
        _summarise(cell, folder, config, target)
        return CellOutcome(cell, status, time.perf_counter() - t0)
    except (KeyError, ValueError, OSError, FloatingPointError, ImportError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        log.warning("cell %s/%s %s failed: %s", exp.paper, exp.name, cell.key, message)
        return CellOutcome(cell, "failed", time.perf_counter() - t0, message)


def expected_config(cell: Cell) -> dict[str, Any]:
    """The config a summary of ``cell`` must hold to be the cell's figure now."""
    return _comparable(cell_config(cell))


def _up_to_date(target: Path, config: RunConfig) -> bool:
    if not target.is_file():
        return False
    try:
        saved = json.loads(target.read_text()).get("config")
    except json.JSONDecodeError:
        return False
    return saved == _comparable(config)


def _folder_config(folder: Path) -> dict[str, Any] | None:
    from ncflab.config import load_config

    try:
        return load_config(folder / runs.CONFIG).to_dict()
    except (OSError, ValueError):
        return None


def _comparable(config: RunConfig) -> dict[str, Any]:
    """The config as a summary stores it: without the machine's own paths and threads, so a
    summary made on one machine is up to date on another."""
    out = config.to_dict()
    out.pop("data_dir", None)
    out["train"] = {k: v for k, v in out["train"].items() if k not in ("threads", "device")}
    return json.loads(json.dumps(out))


def _summarise(cell: Cell, folder: Path, config: RunConfig, target: Path) -> None:
    import pandas as pd

    metrics = runs.read_metrics(folder)
    history = metrics.get("history") or []
    record = {
        "experiment": f"{cell.experiment.paper}/{cell.experiment.name}",
        "profile": cell.profile,
        "row": cell.row.id,
        "label": cell.row.label,
        "role": cell.row.role,
        "dataset": cell.dataset,
        "seed": cell.seed,
        "config": _comparable(config),
        "fingerprint": metrics.get("fingerprint"),
        "valid": metrics.get("valid", {}),
        "test": metrics.get("test", {}),
        "history": [
            {k: r.get(k) for k in ("epoch", "loss", "metrics", "seconds", "eval_seconds")}
            for r in history
        ],  # fmt: skip
        "best_epoch": _best_epoch(history, config),
        "fit_seconds": metrics.get("fit_seconds"),
        "refit": metrics.get("refit"),
        "selected_on": metrics.get("selected_on", "valid"),
        "tuning": metrics.get("tuning"),
        "provenance": metrics.get("provenance"),
    }
    if cell.row.tune:
        chosen = _folder_config(folder) or {}
        record["tuning"] = {**(record["tuning"] or {}), "chosen": chosen.get("params")}
    per_user = pd.read_csv(folder / runs.PER_USER)
    write_summary(target, record, per_user)


def _best_epoch(history: list[dict], config: RunConfig) -> int | None:
    monitor = config.train.monitor
    scored = [r for r in history if r.get("metrics") and monitor in r["metrics"]]
    if not scored:
        return None
    return int(max(scored, key=lambda r: r["metrics"][monitor])["epoch"])
