"""Verbs that read finished runs: evaluate, compare, significance, rules, recommend. Each goes
through ``load_run``, which checks the model files' SHA-256 and the split fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from ncflab.cli._app import DataDir, K, app, console, err_console, verb
from ncflab.cli.render import metric_order, metrics_table

RunArg = Annotated[Path, typer.Argument(help="A run folder written by `ncflab train`.")]
OtherRun = Annotated[Path, typer.Argument(help="Another run on the same split.")]
Part = Annotated[str, typer.Option(help="test or valid.")]


@app.command()
@verb
def evaluate(
    run: RunArg,
    part: Part = "test",
    ranking: Annotated[
        str | None, typer.Option(help="full or sampled (default: the run's protocol's).")
    ] = None,
    k: K = None,
    data_dir: DataDir = None,
) -> None:
    """Re-evaluate a saved run: rebuild its split from config.toml (checking the fingerprint),
    load the model (checking its files) and print the metrics."""
    from ncflab.evaluation.protocols import evaluate as run_eval
    from ncflab.experiments.presets import get_protocol
    from ncflab.experiments.run import load_run

    cfg, split, model = load_run(run, data_dir=data_dir)
    preset = get_protocol(cfg.protocol)
    kind = ranking or preset.evaluation
    ks = tuple(k) if k else preset.ks
    _check_ks(ks, kind, split)
    res = run_eval(model, split, part=part, protocol=kind, ks=ks, metrics=preset.metrics)
    console.print(
        metrics_table(f"{cfg.model} on {cfg.dataset} ({cfg.protocol})", {part: res.means})
    )


def _check_ks(ks: tuple[int, ...], kind: str, split: object) -> None:
    """Refuse a cut-off at or beyond the number of candidates a user is ranked among: HR@K
    would be 1 by construction, not a measurement."""
    if kind == "sampled":
        negatives = getattr(split, "negatives", None)
        if negatives is None:
            raise ValueError("sampled ranking needs the split's sampled negatives; it has none")
        limit, what = negatives.shape[1] + 1, "candidates (held-out item + negatives)"
    else:
        limit, what = split.n_items, "items"  # type: ignore[attr-defined]
    bad = [x for x in ks if x >= limit]
    if bad:
        raise ValueError(
            f"-k {bad} reaches the {limit} {what} each user is ranked among: every held-out "
            f"item would be a hit; use k < {limit}"
        )


@app.command()
@verb
def compare(
    run_a: RunArg,
    run_b: OtherRun,
    k: K = None,
    part: Part = "test",
    png: Annotated[
        Path | None, typer.Option(help="Write the CDF plot here (needs matplotlib; one -k).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Hits difference rate of two runs (JCA §3.3, Fig. 1): per user, the share of the top-K
    hits that only one of the two models gets; prints the shares of users above 20 % and 50 %."""
    import importlib.util

    from ncflab.experiments import compare as cmp

    ks = list(k or [10])
    # Fail before minutes of scoring, not after, when the plot cannot be made.
    if png is not None and len(ks) > 1:
        raise ValueError(f"--png draws one cut-off; got -k {ks}")
    if png is not None and importlib.util.find_spec("matplotlib") is None:
        raise ImportError(
            "--png needs matplotlib: pip install matplotlib (or pip install 'ncflab[plot]')"
        )
    split, model_a, model_b = cmp.load_pair(run_a, run_b, data_dir=data_dir)
    for cut in ks:
        hits_a = cmp.top_k_hits(model_a, split, cut, part=part)
        hits_b = cmp.top_k_hits(model_b, split, cut, part=part)
        summary = cmp.summarize_rates(cmp.hits_difference_rate(hits_a, hits_b))
        if png is not None:
            title = f"{model_a.name} vs {model_b.name}, top-{cut} hits on {part}"
            cmp.plot_cdf(summary, png, title=title)
        _print_rates(summary, hits_a, hits_b, cut, part, run_a, run_b)
    if png is not None:
        console.print(f"CDF written to {png}")


def _print_rates(summary, hits_a, hits_b, k: int, part: str, run_a: Path, run_b: Path) -> None:
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


@app.command()
@verb
def significance(
    run_a: RunArg,
    run_b: OtherRun,
    part: Part = "test",
    k: K = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    rescore: Annotated[
        bool, typer.Option(help="Score both models again even where per_user.csv would do.")
    ] = False,
    bootstrap_seed: Annotated[int, typer.Option(help="Seed of the bootstrap resamples.")] = 0,
    data_dir: DataDir = None,
) -> None:
    """Paired significance of A − B on the same users: per metric, both means, the mean
    difference with a 95 % paired bootstrap interval, and paired t, Wilcoxon and sign p-values.
    On test at the runs' own cut-offs it pairs the per-user values the runs wrote."""
    from ncflab import runs
    from ncflab.config import load_config
    from ncflab.evaluation.protocols import evaluate as run_eval
    from ncflab.evaluation.stats import paired_test
    from ncflab.experiments import compare as cmp
    from ncflab.experiments.presets import get_protocol

    saved = None if rescore or part != "test" or k else cmp.saved_test_pair(run_a, run_b)
    if saved is not None:
        per_a, per_b = saved
        console.print("paired the per_user.csv both runs wrote (--rescore: score again)")
    else:
        split, model_a, model_b = cmp.load_pair(run_a, run_b, data_dir=data_dir)
        preset = get_protocol(load_config(run_a / runs.CONFIG).protocol)
        kw = {"part": part, "protocol": preset.evaluation, "metrics": preset.metrics}
        kw["ks"] = tuple(k) if k else preset.ks
        _check_ks(kw["ks"], preset.evaluation, split)
        per_a = run_eval(model_a, split, **kw).per_user
        per_b = run_eval(model_b, split, **kw).per_user
    tests = {}
    # Per-user metrics only: a metric of means (JCA's F1 of the mean P and R) has no per-user
    # values to pair.
    for name in (c for c in per_a.columns if c not in runs.PER_USER_INFO):
        a, b = per_a[name].to_numpy(), per_b[name].to_numpy()
        keep = np.isfinite(a) & np.isfinite(b)  # AUC is undefined for some users
        tests[name] = paired_test(a[keep], b[keep], resamples=resamples, seed=bootstrap_seed)
    table = Table(title=f"{run_a} (A) vs {run_b} (B) on {part}, {len(per_a)} users, paired")
    for col in ("metric", "A", "B", "A − B", "95 % CI", "t p", "Wilcoxon p", "sign p", "A/B/="):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name in sorted(tests, key=metric_order):
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
@verb
def rules(
    run: Annotated[Path, typer.Argument(help="A run of nbpr, dncr or neupr (`ncflab train`).")],
    k: K = None,
    part: Part = "test",
    position: Annotated[
        str, typer.Option(help="Held-out item's place in the list: random, first or last.")
    ] = "random",
    position_seed: Annotated[int, typer.Option(help="Seed of the random positions.")] = 0,
    data_dir: DataDir = None,
) -> None:
    """NCR's two ranking rules on a trained pairwise model (NCR §4.4): HR/NDCG@K by Algorithm 1
    and by win counts, how often they agree, and the share of intransitive triangles."""
    from ncflab.experiments.ncr import compare_rules
    from ncflab.experiments.run import load_run
    from ncflab.models.ncr import NCRBase

    cfg, split, model = load_run(run, data_dir=data_dir)
    if not isinstance(model, NCRBase):
        raise ValueError(f"{run} holds a {cfg.model!r} model; rules needs nbpr, dncr or neupr")
    ks = list(k or [10])
    _check_ks(tuple(ks), "sampled", split)
    for cut in ks:
        out = compare_rules(model, split, part=part, k=cut, position=position, seed=position_seed)
        table = Table(title=f"pairwise ranking rules @{cut} on {part} ({position}): {run}")
        table.add_column("")
        table.add_column("value", justify="right")
        for key, value in out.items():
            table.add_row(key, f"{int(value)}" if key == "users" else f"{value:.4f}")
        console.print(table)


@app.command()
@verb
def recommend(
    run: RunArg,
    user: Annotated[list[str], typer.Option("--user", "-u", help="Original user id (repeat).")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many items.")] = 10,
    data_dir: DataDir = None,
) -> None:
    """Top-K items (original ids) for users of a saved run, never an item the user is known to
    have (train, valid and test records of the run's data); fewer than K when the user has
    almost every item."""
    from ncflab.experiments.run import load_run

    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    cfg, split, model = load_run(run, data_dir=data_dir)
    users = split.train.user_index(_as_ids(user, split.train.user_ids))
    items, scores = model.recommend(users, k, exclude=split.known_positives())
    table = Table(title=f"top {k} for {cfg.model} ({run})")
    for col in ("user", "rank", "item", "score"):
        table.add_column(col)
    for row, uid in enumerate(user):
        kept = items[row] >= 0
        for r in np.flatnonzero(kept):
            item = split.train.item_ids[items[row, r]]
            table.add_row(uid, str(r + 1), str(item), f"{scores[row, r]:.4f}")
        if kept.sum() < k:
            err_console.print(
                f"user {uid}: {int(kept.sum())} items, fewer than k={k}: the user already has "
                f"{split.n_items - int(kept.sum())} of the {split.n_items} items"
            )
    console.print(table)


def _as_ids(values: list[str], ids: np.ndarray) -> np.ndarray:
    """CLI strings → the id dtype of the dataset (ints for MovieLens)."""
    if ids.dtype.kind in "iu":
        try:
            return np.asarray([int(v) for v in values], dtype=ids.dtype)
        except (ValueError, OverflowError) as err:
            raise KeyError(
                f"unknown user id(s) {values}: this dataset's ids are integers in "
                f"[{ids.min()}, {ids.max()}]"
            ) from err
    return np.asarray(values, dtype=ids.dtype)
