"""``ncflab data``: list, describe and split datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from ncflab.cli._app import DataDir, console, data_app, verb
from ncflab.cli.options import DataFlags, Set, SplitSeed, config_from_flags, data_flags
from ncflab.runs import jsonable


@data_app.command("list")
@verb
def data_list(data_dir: DataDir = None) -> None:
    """List the named datasets and whether their files are found locally."""
    from ncflab.data.datasets import DATASETS, is_available

    table = Table(title="datasets")
    for col in ("name", "local", "description"):
        table.add_column(col)
    for name, spec in DATASETS.items():
        local = "yes" if is_available(name, data_dir) else "-"
        table.add_row(name, local, getattr(spec, "description", ""))
    console.print(table)


@data_app.command("info")
@verb
def data_info(
    name: Annotated[str, typer.Argument(help="A dataset name, or the path of a ratings file.")],
    data_dir: DataDir = None,
    user_col: DataFlags.user = None,
    item_col: DataFlags.item = None,
    rating_col: DataFlags.rating = None,
    time_col: DataFlags.time = None,
    sep: DataFlags.sep = None,
) -> None:
    """Users, items, ratings, density and rating histogram of a dataset or a ratings file."""
    from ncflab.data.datasets import DATASETS, describe, load_dataset
    from ncflab.data.interactions import Interactions
    from ncflab.data.user_files import read_user_file

    if name in DATASETS:
        inter = load_dataset(name, data_dir=data_dir)
    else:
        if not Path(name).is_file():
            raise KeyError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}")
        columns = data_flags(user_col, item_col, rating_col, time_col, sep)
        frame = read_user_file(Path(name), columns=columns.get("columns"), sep=columns.get("sep"))
        inter = Interactions.from_frame(frame)
    console.print_json(json.dumps(describe(inter), default=jsonable))


@data_app.command("split")
@verb
def data_split(
    name: Annotated[str, typer.Argument(help="A dataset name, or the path of a ratings file.")],
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="Protocol preset.")] = "ncf",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write.")] = Path("split"),
    split_seed: SplitSeed = 0,
    set_: Set = None,
    data_dir: DataDir = None,
) -> None:
    """Split a dataset by a protocol and write train/valid/test CSV (original ids), the sampled
    negatives (negatives.csv: user, item) and split.json with the fingerprint; ``--set
    data.…`` sets the rules for a published split's quirks."""
    from ncflab.experiments.data import load_split, resolve_config
    from ncflab.experiments.run import split_record

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder to write the split into")
    flags = {"dataset": name, "protocol": protocol, "split_seed": split_seed}
    config = resolve_config(config_from_flags(None, flags, data_dir=data_dir, set_=set_))
    split = load_split(config)
    out.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        inter = getattr(split, part)
        if inter is not None:
            inter.to_frame().to_csv(out / f"{part}.csv", index=False)
    if split.negatives is not None:
        # Long form, one row per negative: rows of any length (a published split's dropped
        # entries) read back as they are (``ncflab train --negatives``).
        rows, cols = np.nonzero(split.negatives >= 0)
        users = split.train.user_ids[rows]
        items = split.train.item_ids[split.negatives[rows, cols]]
        pd.DataFrame({"user": users, "item": items}).to_csv(out / "negatives.csv", index=False)
    info = json.dumps(split_record(split), indent=2, default=jsonable)
    (out / "split.json").write_text(info)
    console.print(f"wrote {out} (fingerprint {split.fingerprint()})")


@data_app.command("synth")
@verb
def data_synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.parquet or .csv).")],
    like: Annotated[
        str | None, typer.Option(help="A named shape (users, items, records): amazon-electronics.")
    ] = None,
    users: Annotated[int | None, typer.Option(help="Users (else the shape's).", min=1)] = None,
    items: Annotated[int | None, typer.Option(help="Items (else the shape's).", min=1)] = None,
    records: Annotated[int | None, typer.Option(help="Records (else the shape's).", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
) -> None:
    """Write a synthetic ratings file (user, item, rating, timestamp) with power-law user
    activity and item popularity, every user with three records or more: a stand-in of a
    real data set's size for scale tests (``ncflab train -d FILE``)."""
    from ncflab.data.synthetic import SHAPES, power_law_ratings

    if like is not None and like not in SHAPES:
        raise KeyError(f"unknown shape {like!r}; known: {sorted(SHAPES)}")
    shape = SHAPES[like] if like else (None, None, None)
    n_users, n_items, n_records = (
        given if given is not None else default
        for given, default in zip((users, items, records), shape, strict=True)
    )
    if None in (n_users, n_items, n_records):
        raise ValueError("give --like SHAPE, or all of --users, --items and --records")
    frame = power_law_ratings(n_users, n_items, n_records, seed=seed)
    if out.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    console.print(f"wrote {out}: {n_users:,} users, {n_items:,} items, {len(frame):,} records")
