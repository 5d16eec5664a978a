"""``ncflab train``, ``resume`` and ``tune``: make runs."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ncflab.cli._app import DataDir, app, console, verb
from ncflab.cli.options import (
    ConfigFile,
    DataFlags,
    Dataset,
    Device,
    Force,
    Model,
    Out,
    Protocol,
    Seed,
    Set,
    SplitSeed,
    config_from_flags,
    data_flags,
)
from ncflab.cli.render import cell, metrics_table, progress_bar, summary_table


@app.command()
@verb
def train(
    model: Model = None,
    dataset: Dataset = None,
    protocol: Protocol = None,
    out: Out = None,
    config: ConfigFile = None,
    set_: Set = None,
    seed: Seed = None,
    split_seed: SplitSeed = None,
    device: Device = None,
    repeat: Annotated[
        int, typer.Option("--repeat", "-r", help="Runs with model seeds seed, seed+1, …")
    ] = 1,
    vary_split: Annotated[
        bool, typer.Option("--vary-split", help="With --repeat: vary the split seed too.")
    ] = False,
    force: Force = False,
    data_dir: DataDir = None,
    train_file: DataFlags.train = None,
    valid_file: DataFlags.valid = None,
    test_file: DataFlags.test = None,
    negatives_file: DataFlags.negatives = None,
    user_col: DataFlags.user = None,
    item_col: DataFlags.item = None,
    rating_col: DataFlags.rating = None,
    time_col: DataFlags.time = None,
    sep: DataFlags.sep = None,
) -> None:
    """Train a model with early stopping on validation, evaluate it once on test, print the
    metrics table and write the run folder. ``-d`` takes a dataset name or your own ratings
    file; ``--train`` and ``--test`` (and ``--valid``, ``--negatives``) your own split. With
    ``--repeat N`` the run is made for N model seeds on one split (``--vary-split``: the split seed
    varies too), each in OUT/seed-S, and the table shows mean ± std (OUT/summary.json)."""
    from ncflab.experiments.run import run_experiment, summarize

    if repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {repeat}")
    files = {"train": train_file, "valid": valid_file, "test": test_file}
    data = data_flags(user_col, item_col, rating_col, time_col, sep, **files,
                      negatives=negatives_file)  # fmt: skip
    flags = {"model": model, "dataset": dataset, "protocol": protocol, "seed": seed,
             "split_seed": split_seed}  # fmt: skip
    if train_file is not None and dataset is None:
        flags["dataset"] = "own-split"
    cfg = config_from_flags(config, flags, device=device, data_dir=data_dir, data=data, set_=set_)
    records = []
    for i in range(repeat):
        shift = {"seed": cfg.seed + i}
        if vary_split:
            shift["split_seed"] = cfg.split_seed + i
        run_cfg = dataclasses.replace(cfg, **shift)
        run_out = out if out is None or repeat == 1 else out / f"seed-{run_cfg.seed}"
        with progress_bar() as on_progress:
            result = run_experiment(run_cfg, run_out, force=force, on_progress=on_progress)
        records.append(result.metrics)
    title = f"{cfg.model} on {cfg.dataset} ({cfg.protocol})"
    if repeat == 1:
        console.print(metrics_table(title, {"valid": records[0]["valid"],
                                            "test": records[0]["test"]}))  # fmt: skip
    else:
        summary = summarize(records)
        varied = "model and split seeds" if vary_split else "model seeds on one split"
        console.print(summary_table(f"{title}, {repeat} {varied} from {cfg.seed}", summary))
        if out is not None:
            text = json.dumps({"varied": varied, **summary}, indent=2)
            (out / "summary.json").write_text(text)
    if out is not None:
        console.print(f"run written to {out}")


@app.command()
@verb
def resume(
    run: Annotated[Path, typer.Argument(help="Run folder of a killed `train`.")],
    device: Device = None,
    data_dir: DataDir = None,
) -> None:
    """Finish a `train` run that was killed: rebuild its split from RUN/config.toml (it must be
    the split the run started on), continue the training loop from its last snapshot and
    evaluate and write the run as `train` would. The epochs after the snapshot are those the
    uninterrupted run would have trained, so the result is the same."""
    from ncflab import runs
    from ncflab.experiments.run import run_experiment

    state = runs.run_state(run)
    if state == "finished":
        raise runs.RunError(f"{run} is a finished run ({run / runs.METRICS} exists)")
    if state != "unfinished":
        raise runs.RunError(f"{run} has no {runs.CONFIG}: not a run folder of `ncflab train`")
    cfg = config_from_flags(run / runs.CONFIG, {}, device=device, data_dir=data_dir)
    with progress_bar() as on_progress:
        result = run_experiment(cfg, run, resume=True, on_progress=on_progress)
    title = f"{cfg.model} on {cfg.dataset} ({cfg.protocol}), resumed"
    console.print(metrics_table(title, {"valid": result.metrics["valid"],
                                        "test": result.metrics["test"]}))  # fmt: skip
    console.print(f"run written to {run}")


@app.command()
@verb
def tune(
    model: Model = None,
    dataset: Dataset = None,
    protocol: Protocol = None,
    out: Out = None,
    config: ConfigFile = None,
    set_: Set = None,
    trials: Annotated[int, typer.Option("--trials", "-n", help="Budget: trials.")] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Budget: stop after this many seconds.")
    ] = None,
    space: Annotated[
        Path | None, typer.Option("--space", help="TOML search space (else the model's own).")
    ] = None,
    sampler: Annotated[str, typer.Option(help="tpe or random.")] = "tpe",
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL",
            help="Share the search: an Optuna database (sqlite:///study.db, postgresql://…); "
            "every process given it runs trials of one study until it holds --trials.",
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            metavar="NAME",
            help="The shared study's name (else one made from model, dataset, protocol, seeds).",
        ),
    ] = None,
    seed: Seed = None,
    split_seed: SplitSeed = None,
    device: Device = None,
    force: Force = False,
    data_dir: DataDir = None,
) -> None:
    """Tune hyperparameters on the validation split (never test) within a budget of trials,
    then evaluate the best once on test; writes a run folder (config.toml = the chosen
    values) with tune.json (space, budget, every trial).

    With --storage URL, several processes (on one machine or several) started with the same
    settings share one study: the budget is the study's, --timeout each process's; each then
    tests the study's best trial and writes its own run folder. Settings that differ from the
    study's are refused. Which values are suggested then depends on how the processes'
    trials interleave, so a shared search does not repeat exactly."""
    from ncflab.experiments.tune import run_tuning

    flags = {"model": model, "dataset": dataset, "protocol": protocol, "seed": seed,
             "split_seed": split_seed}  # fmt: skip
    cfg = config_from_flags(config, flags, device=device, data_dir=data_dir, set_=set_)
    declared = None
    if space is not None:
        if not space.is_file():
            raise FileNotFoundError(f"search space file not found: {space}")
        try:
            declared = tomllib.loads(space.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"search space {space} is not valid TOML: {err}") from err
    result, record = run_tuning(
        cfg,
        out,
        trials=trials,
        timeout=timeout,
        space=declared,
        sampler=sampler,
        force=force,
        storage=storage,
        study=study,
    )
    monitor = result.budget["monitor"]
    table = Table(title=f"{len(result.trials)} trials of {cfg.model} (best 10 by valid {monitor})")
    names = list(result.trials[0]["params"])
    for col in ("trial", *names, f"valid {monitor}", "s"):
        table.add_column(col, justify="right")
    for t in sorted(result.trials, key=lambda t: -t["valid"][monitor])[:10]:
        cells = [cell(t["params"][n]) for n in names]
        table.add_row(str(t["number"]), *cells, f"{t['valid'][monitor]:.4f}", f"{t['seconds']:.1f}")
    console.print(table)
    console.print(f"chosen: {result.best_params}")
    if "study" in result.budget:
        budget = result.budget
        console.print(
            f"study {budget['study']} in {budget['storage']}: {budget['trials_in_study']} "
            f"trials, {budget['trials_run']} run by this process"
        )
    title = f"{cfg.model} on {cfg.dataset} ({cfg.protocol}), tuned"
    console.print(metrics_table(title, {"valid": record["valid"], "test": record["test"]}))
    if out is not None:
        console.print(f"run written to {out}")
