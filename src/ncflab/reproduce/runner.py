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
from ncflab.config import DataOptions, RunConfig
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
        data=DataOptions(**cell.data),
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
    only: set[str] | None = None,
) -> list[CellOutcome]:
    """Run every cell of ``experiment`` under ``profile`` that has no up-to-date summary
    (``only``: just the cells with these keys).

    A failing cell (a dataset whose files are not here, a model that diverges) is recorded
    as "failed" with its message and the others go on; ``on_cell(outcome, i, n)`` reports
    each cell as it ends. Cells are independent (their own run folder and summary file), so
    several processes may run different cells of one experiment at once."""
    cells = experiment.cells(profile, seeds=seeds)
    if only is not None:
        cells = [c for c in cells if c.key in only]
    out = []
    for i, cell in enumerate(cells, 1):
        outcome = _one(cell, results, runs_root, data_dir, threads)
        out.append(outcome)
        if on_cell is not None:
            on_cell(outcome, i, len(cells))
    return out


def is_done(cell: Cell, results: Path, data_dir: str | None = None, threads: int = 0) -> bool:
    """Whether ``cell`` has an up-to-date summary under ``results`` (nothing to run)."""
    exp = cell.experiment
    target = summary_path(results, exp.paper, exp.name, cell.profile, cell.key)
    return _up_to_date(target, cell_config(cell, data_dir, threads), cell.row.analyses)


def _one(cell: Cell, results: Path, runs_root: Path, data_dir: str | None, threads: int):
    from ncflab.experiments.run import run_experiment
    from ncflab.experiments.tune import run_tuning

    exp = cell.experiment
    t0 = time.perf_counter()
    try:
        config = cell_config(cell, data_dir, threads)
        target = summary_path(results, exp.paper, exp.name, cell.profile, cell.key)
        if is_done(cell, results, data_dir, threads):
            return CellOutcome(cell, "done")
        folder = runs_root / exp.paper / exp.name / cell.profile / cell.key
        state = runs.run_state(folder) if folder.exists() else "absent"
        # Same settings up to the machine's own (threads, device, data_dir): a run continues
        # or is summarised on another machine or thread count.
        same = _folder_comparable(folder) == _comparable(config)
        if state == "finished" and same:
            status = "summarised"
        elif cell.row.tune:
            run_tuning(config, folder, trials=cell.row.tune, force=True)
            status = "ran"
        elif state == "unfinished" and same:
            run_experiment(config, folder, resume=True)
            status = "resumed"
        else:
            run_experiment(config, folder, force=True)
            status = "ran"
        _summarise(cell, folder, config, target, data_dir)
        return CellOutcome(cell, status, time.perf_counter() - t0)
    except (KeyError, ValueError, OSError, FloatingPointError, ImportError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        log.warning("cell %s/%s %s failed: %s", exp.paper, exp.name, cell.key, message)
        return CellOutcome(cell, "failed", time.perf_counter() - t0, message)


def expected_config(cell: Cell) -> dict[str, Any]:
    """The config a summary of ``cell`` must hold to be the cell's figure now."""
    return _comparable(cell_config(cell))


def _up_to_date(target: Path, config: RunConfig, analyses: list[str] = ()) -> bool:
    """A summary of these settings holding every analysis the row asks for."""
    if not target.is_file():
        return False
    try:
        saved = json.loads(target.read_text())
    except json.JSONDecodeError:
        return False
    done = set(saved.get("analyses") or {})
    return saved.get("config") == _comparable(config) and set(analyses) <= done


def _folder_config(folder: Path) -> dict[str, Any] | None:
    from ncflab.config import load_config

    try:
        return load_config(folder / runs.CONFIG).to_dict()
    except (OSError, ValueError):
        return None


def _folder_comparable(folder: Path) -> dict[str, Any] | None:
    from ncflab.config import load_config

    try:
        return _comparable(load_config(folder / runs.CONFIG))
    except (OSError, ValueError):
        return None


def _comparable(config: RunConfig) -> dict[str, Any]:
    """The config as a summary stores it: without the machine's own paths and threads, so a
    summary made on one machine is up to date on another."""
    out = config.to_dict()
    out.pop("data_dir", None)
    out["train"] = {k: v for k, v in out["train"].items() if k not in ("threads", "device")}
    return json.loads(json.dumps(out))


def _summarise(
    cell: Cell, folder: Path, config: RunConfig, target: Path, data_dir: str | None = None
) -> None:
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
        "data": _data_sizes(folder),
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
    if cell.row.analyses:
        record["analyses"], per_user = _analyse(cell.row.analyses, folder, per_user, data_dir)
    write_summary(target, record, per_user)


def _analyse(names: list[str], folder: Path, per_user, data_dir: str | None):
    """Run the row's analyses on the cell's trained model (loaded and checked as every reader
    does): their scalars, and the per-user frame with their columns joined by user."""
    from ncflab.experiments.run import load_run
    from ncflab.reproduce.analyses import run_analysis

    _, split, model = load_run(folder, data_dir=data_dir)
    scalars = {}
    for name in names:
        t0 = time.perf_counter()
        found = run_analysis(name, model, split)
        scalars[name] = {**found.scalars, "seconds": round(time.perf_counter() - t0, 3)}
        if found.per_user is not None:  # ids read back from CSV may be ints: join as text
            extra = found.per_user.assign(_user=found.per_user["user"].astype(str))
            per_user = (
                per_user.assign(_user=per_user["user"].astype(str))
                .merge(extra.drop(columns="user"), on="_user", how="left")
                .drop(columns="_user")
            )
    return scalars, per_user


def _data_sizes(folder: Path) -> dict[str, int] | None:
    """Records in each part of the cell's split, from its split.json (with a thinned dataset,
    the sizes of J-NCF's Table 4); None when the run has none."""
    try:
        info = json.loads((folder / runs.SPLIT).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info.get("sizes")


def _best_epoch(history: list[dict], config: RunConfig) -> int | None:
    monitor = config.train.monitor
    scored = [r for r in history if r.get("metrics") and monitor in r["metrics"]]
    if not scored:
        return None
    return int(max(scored, key=lambda r: r["metrics"][monitor])["epoch"])
