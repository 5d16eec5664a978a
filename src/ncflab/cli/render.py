"""Everything the command line draws: metric tables and the training progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.table import Table

from ncflab.cli._app import err_console

__all__ = ["cell", "metric_order", "metrics_table", "progress_bar", "summary_table"]


def metric_order(name: str) -> tuple[str, int]:
    metric, _, k = name.partition("@")
    return (metric, int(k) if k.isdigit() else 0)


def metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """One row per metric, one column per part (valid, test), so that protocols with many
    metrics still fit a terminal."""
    table = Table(title=title)
    names = sorted({k for r in rows.values() for k in r}, key=metric_order)
    table.add_column("metric")
    for part in rows:
        table.add_column(part, justify="right")
    for n in names:
        table.add_row(n, *(f"{r[n]:.4f}" if n in r else "" for r in rows.values()))
    return table


def summary_table(title: str, summary: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for part in summary:
        table.add_column(f"{part} mean ± std", justify="right")
    names = sorted({k for r in summary.values() for k in r}, key=metric_order)
    for n in names:
        cells = [
            f"{r[n]['mean']:.4f} ± {r[n]['std']:.4f}" if n in r else "" for r in summary.values()
        ]
        table.add_row(n, *cells)
    return table


def cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@contextmanager
def progress_bar() -> Iterator[Callable[[dict], None] | None]:
    """A callback for ``FitOptions.on_progress`` drawing a bar over epochs (with the step
    count inside a long epoch) on stderr when it is a terminal; None otherwise (the log
    says what happened)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    bar = Progress(console=err_console, transient=False)
    task: list[int] = []

    def on_progress(event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            if task:
                bar.remove_task(task.pop())
            task.append(bar.add_task("training", total=event["epochs"], completed=event["done"]))
        elif kind == "step" and task:
            bar.update(task[0], description=f"epoch {event['epoch']}, step {event['step']}")
        elif kind == "epoch" and task:
            text = " ".join(f"{k}={v:.4f}" for k, v in event["metrics"].items())
            loss = "—" if event["loss"] is None else f"{event['loss']:.4f}"
            advance = 0 if event["epoch"] == 0 else 1
            desc = f"epoch {event['epoch']} loss={loss} {text}"
            bar.update(task[0], advance=advance, description=desc)

    with bar:
        yield on_progress
