"""``ncflab export``: every user's top-K of a saved run to one Parquet file. The work is
``ncflab.serving.export.export_recommendations``; this verb reads the flags, loads the run as
``recommend`` does (model files and split fingerprint checked) and draws the progress."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ncflab.cli._app import DataDir, app, console, err_console, verb
from ncflab.cli.inspect import RunArg


@app.command()
@verb
def export(
    run: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Items per user.")] = 100,
    users: Annotated[
        Path | None,
        typer.Option(
            "--users", help="Only these users: one original id per line, or a CSV 'user' column."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Users scored at a time (memory grows with it).")
    ] = 1024,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Top-K items of every user of a saved run (or of the --users list) to a Parquet file, one
    row per (user, rank, item, score) in original ids; never an item the user already has
    (train, valid and test), so a user who has almost every item gets fewer than K rows."""
    from ncflab.experiments.run import load_run
    from ncflab.serving.export import check_export, export_recommendations, read_users_file

    # Everything that can be refused without the data is refused before loading the run.
    check_export(out, k, batch_size, overwrite=force)
    wanted = None if users is None else read_users_file(users)
    _, split, model = load_run(run, data_dir=data_dir)
    with _progress_bar() as on_batch:
        done = export_recommendations(
            model, split, out, k, wanted, batch_size, overwrite=force, on_batch=on_batch
        )
    short = f", {done.short} of them with fewer than {k} items" if done.short else ""
    console.print(
        f"exported {done.users} users{short}, {done.rows} rows in {done.seconds:.1f} s to {out}",
        highlight=False,
        soft_wrap=True,
    )


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A bar over users on stderr when it is a terminal, as training's ``render.progress_bar``
    (that one counts epochs, so it is not reused); None otherwise: the summary line says what
    was done."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import MofNCompleteColumn, Progress

    bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=err_console)
    task: list[int] = []

    def on_batch(done: int, total: int) -> None:
        if not task:
            task.append(bar.add_task("exporting users", total=total))
        bar.update(task[0], completed=done)

    with bar:
        yield on_batch
