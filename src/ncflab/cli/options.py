"""Options that several verbs share, and the run config they build: the config file, then
the flags, then ``--set`` (each value checked against its field's type and range)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ncflab.config import RunConfig

__all__ = [
    "ConfigFile",
    "DataFlags",
    "Dataset",
    "Device",
    "Force",
    "Model",
    "Out",
    "Protocol",
    "Seed",
    "Set",
    "SplitSeed",
    "config_from_flags",
    "data_flags",
]

Model = Annotated[str | None, typer.Option("--model", "-m", help="Registry name.")]
Dataset = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="Dataset name, or the path of your ratings file."),
]
Protocol = Annotated[str | None, typer.Option("--protocol", "-p", help="Protocol preset.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to write.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config.")]
Set = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override, e.g. params.lr=0.01 or data.bad_negatives=drop."),
]
Seed = Annotated[
    int | None, typer.Option("--seed", "-s", help="Model seed: initialisation and sampling.")
]
SplitSeed = Annotated[
    int | None, typer.Option("--split-seed", help="Split seed: split and sampled candidates.")
]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
Force = Annotated[
    bool, typer.Option("--force", help="Replace a finished run in the output folder.")
]


class DataFlags:
    """Flags for your own files (ratings file or published split)."""

    user = Annotated[str | None, typer.Option("--user-col", help="Your file's user column.")]
    item = Annotated[str | None, typer.Option("--item-col", help="Your file's item column.")]
    rating = Annotated[str | None, typer.Option("--rating-col", help="Your rating column.")]
    time = Annotated[str | None, typer.Option("--time-col", help="Your timestamp column.")]
    sep = Annotated[str | None, typer.Option("--sep", help="Field separator of your files.")]
    train = Annotated[Path | None, typer.Option("--train", help="Your split's train file.")]
    valid = Annotated[Path | None, typer.Option("--valid", help="Your split's valid file.")]
    test = Annotated[Path | None, typer.Option("--test", help="Your split's test file.")]
    negatives = Annotated[
        Path | None, typer.Option("--negatives", help="Your split's sampled negatives file.")
    ]


def data_flags(
    user: str | None = None,
    item: str | None = None,
    rating: str | None = None,
    time: str | None = None,
    sep: str | None = None,
    **files: Path | None,
) -> dict[str, Any]:
    """The ``[data]`` entries the own-file flags give (only those given)."""
    columns = {
        role: name
        for role, name in (("user", user), ("item", item), ("rating", rating), ("timestamp", time))
        if name is not None
    }
    out: dict[str, Any] = {k: str(v) for k, v in files.items() if v is not None}
    if columns:
        out["columns"] = columns
    if sep is not None:
        out["sep"] = sep
    return out


def config_from_flags(
    config: Path | None,
    flags: dict[str, object],
    *,
    device: str | None = None,
    data_dir: str | None = None,
    data: dict[str, Any] | None = None,
    set_: list[str] | None = None,
) -> RunConfig:
    """The run config of a verb: the file, then the flags, then ``--set``."""
    from ncflab.config import load_config

    overrides = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    if device is not None:
        overrides.append(f"train.device={json.dumps(device)}")
    if data_dir is not None:
        overrides.append(f"data_dir={json.dumps(data_dir)}")
    for key, value in (data or {}).items():
        if isinstance(value, dict):
            overrides += [f"data.{key}.{k}={json.dumps(v)}" for k, v in value.items()]
        else:
            overrides.append(f"data.{key}={json.dumps(value)}")
    return load_config(config, overrides + list(set_ or []))
