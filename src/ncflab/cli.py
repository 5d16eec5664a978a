"""The ``ncflab`` command line: data, train, tune, evaluate, compare, rules, recommend.

Each verb is a thin layer over library functions; errors a user can cause (unknown names, bad
files, bad values) are printed as one clear line and exit with status 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ncflab.config import RunConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
data_app = typer.Typer(no_args_is_help=True, help="List, describe and split datasets.")
app.add_typer(data_app, name="data")
console = Console()

DataDir = Annotated[
    str | None,
    typer.Option("--data-dir", "-D", help="Directory with dataset files (else $NCFLAB_DATA_DIR)."),
]
Seed = Annotated[int, typer.Option("--seed", "-s", help="Seed of split, negatives and model.")]


def _fail(err: Exception) -> None:
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    console.print(f"[red]error:[/red] {msg}", highlight=False)
    raise typer.Exit(2)


def _table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """A metrics table: one row per metric, one column per part (valid, test), so that
    protocols with many metrics still fit a terminal."""
    table = Table(title=title)
    names = sorted({k for r in rows.values() for k in r}, key=_metric_order)
    table.add_column("metric")
    for part in rows:
        table.add_column(part, justify="right")
    for n in names:
        table.add_row(n, *(f"{r[n]:.4f}" if n in r else "" for r in rows.values()))
    return table


def _metric_order(name: str) -> tuple[str, int]:
    metric, _, k = name.partition("@")
    return (metric, int(k) if k.isdigit() else 0)


# ---------------------------------------------------------------------------------------- data
@data_app.command("list")
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
def data_info(name: str, data_dir: DataDir = None) -> None:
    """Users, items, ratings, density and rating histogram of a dataset."""
    from ncflab.data.datasets import describe, load_dataset

    try:
        stats = describe(load_dataset(name, data_dir=data_dir))
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    console.print_json(json.dumps(stats, default=_jsonable))


@data_app.command("split")
def data_split(
    name: str,
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="Protocol preset.")] = "ncf",
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write.")] = Path("split"),
    seed: Seed = 0,
    data_dir: DataDir = None,
) -> None:
    """Split a dataset by a protocol and write train/valid/test CSV (original ids), the sampled
    negatives and split.json with the fingerprint."""
    from ncflab.config import RunConfig
    from ncflab.experiments.presets import get_protocol
    from ncflab.experiments.run import load_split

    try:
        config = RunConfig(dataset=name, protocol=protocol, seed=seed, data_dir=data_dir)
        split = load_split(config, get_protocol(protocol))
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    out.mkdir(parents=True, exist_ok=True)
    for part in ("train", "valid", "test"):
        inter = getattr(split, part)
        if inter is not None:
            inter.to_frame().to_csv(out / f"{part}.csv", index=False)
    if split.negatives is not None:
        rows = np.flatnonzero(split.negatives[:, 0] >= 0)
        ids = split.train.item_ids[split.negatives[rows]]
        with open(out / "negatives.tsv", "w") as fh:
            for u, negs in zip(split.train.user_ids[rows], ids, strict=True):
                fh.write(f"{u}\t" + "\t".join(map(str, negs)) + "\n")
    info = {**split.info, "fingerprint": split.fingerprint()}
    (out / "split.json").write_text(json.dumps(info, indent=2, default=_jsonable))
    console.print(f"wrote {out} (fingerprint {split.fingerprint()})")


# --------------------------------------------------------------------------------------- train
@app.command()
def train(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Registry name.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Preset.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. params.lr=0.01 (repeat).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s", help="Seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    repeat: Annotated[
        int, typer.Option("--repeat", "-r", help="Runs with seeds seed, seed+1, …; mean ± std.")
    ] = 1,
    data_dir: DataDir = None,
) -> None:
    """Train a model with early stopping on validation, evaluate it once on test, print the
    metrics table and write the run directory. With ``--repeat N`` the run is made for N seeds
    (each in OUT/seed-S) and the table shows mean ± std, also written to OUT/summary.json."""
    from ncflab.experiments.run import refuse_unfinished, run_experiment, summarize

    flags = {"model": model, "dataset": dataset, "protocol": protocol, "seed": seed}
    try:
        if repeat < 1:
            raise ValueError(f"--repeat must be at least 1, got {repeat}")
        cfg = _run_config(config, flags, device, data_dir, set_)
        records = []
        for i in range(repeat):
            run_cfg = dataclasses.replace(cfg, seed=cfg.seed + i)
            run_out = out if out is None or repeat == 1 else out / f"seed-{run_cfg.seed}"
            refuse_unfinished(run_out)  # before its log.txt is started anew
            with _log_to(run_out):
                result = run_experiment(run_cfg, run_out, progress=sys.stderr.isatty())
            records.append(result.metrics)
    except (KeyError, ValueError, FileNotFoundError, OSError, RuntimeError) as err:
        _fail(err)
    title = f"{cfg.model} on {cfg.dataset} ({cfg.protocol})"
    if repeat == 1:
        console.print(_table(title, {"valid": records[0]["valid"], "test": records[0]["test"]}))
    else:
        summary = summarize(records)
        console.print(_summary_table(f"{title}, {repeat} seeds from {cfg.seed}", summary))
        if out is not None:
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if out is not None:
        console.print(f"run written to {out}")


@app.command()
def resume(
    run: Annotated[Path, typer.Argument(help="Run directory of a killed `train`.")],
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Finish a `train` run that was killed: rebuild its split from RUN/config.toml, continue
    the training loop from its last snapshot (RUN/checkpoint/resume.pt, written after an epoch
    about once a minute) and evaluate and write the run as `train` would. The epochs after the
    snapshot are those the uninterrupted run would have trained, so the result is the same."""
    from ncflab.experiments.run import run_experiment

    try:
        if (run / "metrics.json").is_file():
            raise ValueError(f"{run} is a finished run ({run / 'metrics.json'} exists)")
        if not (run / "config.toml").is_file():
            raise FileNotFoundError(f"{run} has no config.toml: not a run directory of `train`")
        cfg = _run_config(run / "config.toml", {}, device, data_dir, None)
        with _log_to(run, append=True):
            result = run_experiment(cfg, run, progress=sys.stderr.isatty(), resume=True)
    except (KeyError, ValueError, FileNotFoundError, OSError, RuntimeError) as err:
        _fail(err)
    title = f"{cfg.model} on {cfg.dataset} ({cfg.protocol}), resumed"
    console.print(_table(title, {"valid": result.metrics["valid"], "test": result.metrics["test"]}))
    console.print(f"run written to {run}")


def _run_config(
    config: Path | None,
    flags: dict[str, object],
    device: str | None,
    data_dir: str | None,
    set_: list[str] | None,
) -> RunConfig:
    """The run config of ``train``/``tune``: the file, then the flags, then ``--set``."""
    from ncflab.config import load_config

    overrides = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    if device is not None:
        overrides.append(f"train.device={json.dumps(device)}")
    if data_dir is not None:
        overrides.append(f"data_dir={json.dumps(data_dir)}")
    return load_config(config, overrides + list(set_ or []))


# ---------------------------------------------------------------------------------------- tune
@app.command()
def tune(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Registry name.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset name.")] = None,
    protocol: Annotated[str | None, typer.Option("--protocol", "-p", help="Preset.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Fixed value, e.g. params.epochs=10.")
    ] = None,
    trials: Annotated[int, typer.Option("--trials", "-n", help="Budget: trials.")] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Budget: stop after this many seconds.")
    ] = None,
    space: Annotated[
        Path | None, typer.Option("--space", help="TOML search space (else the model's own).")
    ] = None,
    sampler: Annotated[str, typer.Option(help="tpe or random.")] = "tpe",
    seed: Annotated[int | None, typer.Option("--seed", "-s", help="Seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Tune hyperparameters on the validation split (never test) within a budget of trials,
    then evaluate the best once on test; writes a run directory (config.toml = the chosen
    values) with tune.json (space, budget, every trial)."""
    import tomllib

    from ncflab.experiments.tune import run_tuning

    flags = {"model": model, "dataset": dataset, "protocol": protocol, "seed": seed}
    try:
        cfg = _run_config(config, flags, device, data_dir, set_)
        declared = None
        if space is not None:
            if not space.is_file():
                raise FileNotFoundError(f"search space file not found: {space}")
            try:
                declared = tomllib.loads(space.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"search space {space} is not valid TOML: {err}") from err
        with _log_to(out):
            result, record = run_tuning(
                cfg, out, trials=trials, timeout=timeout, space=declared, sampler=sampler
            )
    except (KeyError, ValueError, FileNotFoundError, OSError, RuntimeError) as err:
        _fail(err)
    monitor = result.budget["monitor"]
    table = Table(title=f"{len(result.trials)} trials of {cfg.model} (best 10 by valid {monitor})")
    names = list(result.trials[0]["params"])
    for col in ("trial", *names, f"valid {monitor}", "s"):
        table.add_column(col, justify="right")
    for t in sorted(result.trials, key=lambda t: -t["valid"][monitor])[:10]:
        cells = [_cell(t["params"][n]) for n in names]
        table.add_row(str(t["number"]), *cells, f"{t['valid'][monitor]:.4f}", f"{t['seconds']:.1f}")
    console.print(table)
    console.print(f"chosen: {result.best_params}")
    title = f"{cfg.model} on {cfg.dataset} ({cfg.protocol}), tuned"
    console.print(_table(title, {"valid": record["valid"], "test": record["test"]}))
    if out is not None:
        console.print(f"run written to {out}")


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _summary_table(title: str, summary: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for part in summary:
        table.add_column(f"{part} mean ± std", justify="right")
    names = sorted({k for r in summary.values() for k in r}, key=_metric_order)
    for n in names:
        cells = [
            f"{r[n]['mean']:.4f} ± {r[n]['std']:.4f}" if n in r else "" for r in summary.values()
        ]
        table.add_row(n, *cells)
    return table


@contextlib.contextmanager
def _log_to(out: Path | None, append: bool = False) -> Iterator[None]:
    """Copy the library's log into OUT/log.txt while the block runs (nothing when OUT is None);
    ``append`` keeps what an earlier process wrote there (a resumed run)."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "log.txt", mode="a" if append else "w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("ncflab")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


# ------------------------------------------------------------------------------------ evaluate
@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory written by `ncflab train`.")],
    part: Annotated[str, typer.Option(help="test or valid.")] = "test",
    protocol: Annotated[str | None, typer.Option(help="Override: full or sampled.")] = None,
    k: Annotated[list[int] | None, typer.Option("--k", "-k", help="Cut-offs (repeat).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Re-evaluate a saved run: rebuild its split from config.toml (checking the fingerprint),
    load the model and print the metrics."""
    from ncflab.evaluation.protocols import evaluate as run_eval
    from ncflab.experiments.presets import get_protocol
    from ncflab.experiments.run import load_run

    try:
        cfg, split, model = load_run(run, data_dir=data_dir)
        preset = get_protocol(cfg.protocol)
        res = run_eval(
            model,
            split,
            part=part,
            protocol=protocol or preset.evaluation,
            ks=tuple(k) if k else preset.ks,
            metrics=preset.metrics,
        )
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    console.print(_table(f"{cfg.model} on {cfg.dataset} ({cfg.protocol})", {part: res.means}))


# ------------------------------------------------------------------------------------- compare
@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="A run directory written by `ncflab train`.")],
    run_b: Annotated[Path, typer.Argument(help="Another run on the same split.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Top-K cut-off.")] = 10,
    part: Annotated[str, typer.Option(help="test or valid.")] = "test",
    png: Annotated[
        Path | None, typer.Option(help="Write the CDF plot here (needs matplotlib).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Hits difference rate of two runs (JCA §3.3, Fig. 1): per user, the share of the top-K
    hits that only one of the two models gets; prints the shares of users above 20 % and 50 %."""
    import importlib.util

    from ncflab.experiments import compare as cmp

    try:
        # Fail before minutes of scoring, not after, when the plot cannot be made.
        if png is not None and importlib.util.find_spec("matplotlib") is None:
            raise ValueError(
                "--png needs matplotlib: pip install matplotlib (or pip install 'ncflab[plot]')"
            )
        split, model_a, model_b = cmp.load_pair(run_a, run_b, data_dir=data_dir)
        hits_a = cmp.top_k_hits(model_a, split, k, part=part)
        hits_b = cmp.top_k_hits(model_b, split, k, part=part)
        summary = cmp.summarize_rates(cmp.hits_difference_rate(hits_a, hits_b))
        if png is not None:
            title = f"{model_a.name} vs {model_b.name}, top-{k} hits on {part}"
            cmp.plot_cdf(summary, png, title=title)
    except (KeyError, ValueError, FileNotFoundError, OSError, ImportError) as err:
        _fail(err)
    n, undef = summary.n_users, summary.n_undefined
    table = Table(title=f"hits difference rate @{k} on {part}: {run_a} vs {run_b}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("evaluated users", str(n))
    table.add_row(
        f"mean hits@{k}, A / B", f"{hits_a.counts().mean():.4f} / {hits_b.counts().mean():.4f}"
    )
    table.add_row("undefined (no hit by either)", f"{undef} ({undef / max(n, 1):.1%})")
    for t in summary.above:
        table.add_row(f"rate > {t:g}, of defined users", f"{summary.above[t]:.1%}")
        table.add_row(f"rate > {t:g}, of all users", f"{summary.above_all[t]:.1%}")
    table.add_row("mean rate (defined users)", f"{summary.mean:.4f}")
    console.print(table)
    if png is not None:
        console.print(f"CDF written to {png}")


@app.command()
def significance(
    run_a: Annotated[Path, typer.Argument(help="A run directory written by `ncflab train`.")],
    run_b: Annotated[Path, typer.Argument(help="Another run on the same split.")],
    part: Annotated[str, typer.Option(help="test or valid.")] = "test",
    k: Annotated[list[int] | None, typer.Option("--k", "-k", help="Cut-offs (repeat).")] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    rescore: Annotated[
        bool, typer.Option(help="Score both models again even where per_user.csv would do.")
    ] = False,
    seed: Seed = 0,
    data_dir: DataDir = None,
) -> None:
    """Paired significance of A − B on the same users: per metric, both means, the mean
    difference with a 95 % paired bootstrap interval, and paired t, Wilcoxon and sign p-values.
    On test at the runs' own cut-offs it pairs the per-user values the runs wrote."""
    from ncflab.config import load_config
    from ncflab.evaluation.protocols import evaluate as run_eval
    from ncflab.evaluation.stats import paired_test
    from ncflab.experiments import compare as cmp
    from ncflab.experiments.presets import get_protocol

    try:
        saved = None if rescore or part != "test" or k else cmp.saved_test_pair(run_a, run_b)
        if saved is not None:
            per_a, per_b = saved
            console.print("paired the per_user.csv both runs wrote (--rescore: score again)")
        else:
            split, model_a, model_b = cmp.load_pair(run_a, run_b, data_dir=data_dir)
            preset = get_protocol(load_config(run_a / "config.toml").protocol)
            kw = {"part": part, "protocol": preset.evaluation, "metrics": preset.metrics}
            kw["ks"] = tuple(k) if k else preset.ks
            per_a = run_eval(model_a, split, **kw).per_user
            per_b = run_eval(model_b, split, **kw).per_user
        tests = {}
        # Per-user metrics only: a metric of means (JCA's F1 of the mean P and R) has no
        # per-user values to pair.
        for name in (c for c in per_a.columns if c != "user"):
            a, b = per_a[name].to_numpy(), per_b[name].to_numpy()
            keep = np.isfinite(a) & np.isfinite(b)  # AUC is undefined for some users
            tests[name] = paired_test(a[keep], b[keep], resamples=resamples, seed=seed)
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    table = Table(title=f"{run_a} (A) vs {run_b} (B) on {part}, {len(per_a)} users, paired")
    for col in ("metric", "A", "B", "A − B", "95 % CI", "t p", "Wilcoxon p", "sign p", "A/B/="):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name in sorted(tests, key=_metric_order):
        t = tests[name]
        table.add_row(
            name,
            f"{t.mean_a:.4f}",
            f"{t.mean_b:.4f}",
            f"{t.diff:+.4f}",
            f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]",
            *(f"{p:.2g}" for p in (t.t_p, t.wilcoxon_p, t.sign_p)),
            f"{t.wins_a}/{t.wins_b}/{t.ties}",
        )
    console.print(table)


@app.command()
def rules(
    run: Annotated[Path, typer.Argument(help="A run of nbpr, dncr or neupr (`ncflab train`).")],
    k: Annotated[int, typer.Option("--k", "-k", help="Top-K cut-off.")] = 10,
    part: Annotated[str, typer.Option(help="test or valid.")] = "test",
    position: Annotated[
        str, typer.Option(help="Held-out item's place in the list: random, first or last.")
    ] = "random",
    seed: Seed = 0,
    data_dir: DataDir = None,
) -> None:
    """NCR's two ranking rules on a trained pairwise model (NCR §4.4): HR/NDCG@K by Algorithm 1
    and by win counts, how often they agree, and the share of intransitive triangles."""
    from ncflab.experiments.ncr import compare_rules
    from ncflab.experiments.run import load_run
    from ncflab.models.ncr import NCRBase

    try:
        cfg, split, model = load_run(run, data_dir=data_dir)
        if not isinstance(model, NCRBase):
            raise ValueError(f"{run} holds a {cfg.model!r} model; rules needs nbpr, dncr or neupr")
        out = compare_rules(model, split, part=part, k=k, position=position, seed=seed)
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    table = Table(title=f"pairwise ranking rules @{k} on {part} ({position}): {run}")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in out.items():
        table.add_row(key, f"{int(value)}" if key == "users" else f"{value:.4f}")
    console.print(table)


# ----------------------------------------------------------------------------------- recommend
@app.command()
def recommend(
    run: Annotated[Path, typer.Argument(help="A run directory written by `ncflab train`.")],
    user: Annotated[list[str], typer.Option("--user", "-u", help="Original user id (repeat).")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many items.")] = 10,
    data_dir: DataDir = None,
) -> None:
    """Top-K items (original ids) for users of a saved run, excluding every item the user is
    known to have (train, valid and test records of the run's data)."""
    from ncflab.config import load_config
    from ncflab.experiments.presets import get_protocol
    from ncflab.experiments.run import load_split
    from ncflab.models.base import Recommender
    from ncflab.serving import top_k

    try:
        if k <= 0:
            raise ValueError(f"k must be a positive integer, got {k}")
        cfg = load_config(run / "config.toml")
        if data_dir is not None:
            cfg.data_dir = data_dir
        split = load_split(cfg, get_protocol(cfg.protocol))
        model = Recommender.load(run / "model")
        users = split.train.user_index(_as_ids(user, split.train.user_ids))
        items, scores = top_k(model, users, k, exclude=split.known_positives())
    except (KeyError, ValueError, FileNotFoundError, OSError) as err:
        _fail(err)
    table = Table(title=f"top {k} for {cfg.model} ({run})")
    for col in ("user", "rank", "item", "score"):
        table.add_column(col)
    for row, uid in enumerate(user):
        for r in range(items.shape[1]):
            item = split.train.item_ids[items[row, r]]
            table.add_row(uid, str(r + 1), str(item), f"{scores[row, r]:.4f}")
    console.print(table)


def _as_ids(values: list[str], ids: np.ndarray) -> np.ndarray:
    """CLI strings → the id dtype of the dataset (ints for MovieLens)."""
    if ids.dtype.kind in "iu":
        try:
            return np.asarray([int(v) for v in values], dtype=ids.dtype)
        except ValueError as err:
            raise KeyError(f"unknown user id(s) {values}: this dataset's ids are integers") from err
    return np.asarray(values, dtype=ids.dtype)


def _jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
