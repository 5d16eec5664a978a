"""The figures of a results page: a ``kind = "figure"`` experiment's plotted points from its
cell summaries, drawn as a PNG and written out as numbers (``report.py`` puts them together).

``[figure] x`` decides what the x axis is:

- a hyperparameter the rows' grids vary: one line per series (rows sharing the label before
  the grid tag), a point per value, mean ± std over seeds; a row without that hyperparameter
  (a baseline beside a sweep) is a dashed horizontal line;
- ``"cutoff"``: ``y@N`` for every N the test metrics hold (HR@1 … HR@10), one line per row;
- ``"epoch"``: the validation metric ``y`` after each epoch of seed 0, one line per row.

The paper's figures, where a row has them for a plotted x (``paper`` keyed by dataset, then
``y`` for a grid point, ``y@N`` for a cut-off), are hollow markers beside ours.
"""

from __future__ import annotations

import re
import textwrap
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncflab.reproduce.spec import Cell, Experiment

__all__ = [
    "draw_cdf",
    "draw_figure",
    "figure_points",
    "format_number",
    "format_ours",
    "points_markdown",
]

POINTS = ["dataset", "series", "row", "x", "position", "metric", "mean", "std", "n", "paper"]
_VALUES = ["dataset", "series", "row", "x", "position", "metric", "seed", "value", "paper"]
EVERY_X = "all"  # the x of a row that does not vary the hyperparameter
MISSING = "—"


def figure_points(exp: Experiment, present: list[tuple[Cell, dict[str, Any]]]) -> pd.DataFrame:
    """One line per plotted point (columns ``POINTS`` and ``diff`` = mean − paper), in dataset,
    series and x order; ``position`` is where it sits on the x axis (NaN: every x)."""
    assert exp.figure is not None  # Experiment checks this for kind = "figure"
    kind = exp.figure.x
    values = {"cutoff": _cutoff_values, "epoch": _epoch_values}.get(kind, _grid_values)(
        exp, present
    )
    values = pd.DataFrame(values, columns=_VALUES).astype({"value": float, "paper": float})
    keys = ["dataset", "series", "row", "x", "position", "metric"]
    points = (
        values.groupby(keys, sort=False, dropna=False)
        .agg(
            mean=("value", "mean"),
            std=("value", "std"),
            n=("value", "count"),
            paper=("paper", "first"),
        )
        .reset_index()
    )
    # File order of datasets and series; NaN positions (every x) last.
    order = [_first_seen(points[k]) for k in ("dataset", "series")]
    points = points.assign(_d=order[0], _s=order[1]).sort_values(
        ["_d", "_s", "position"], kind="stable", na_position="last"
    )
    points = points.drop(columns=["_d", "_s"]).reset_index(drop=True)
    return points.assign(diff=points["mean"] - points["paper"])


def _grid_values(exp: Experiment, present: list) -> list[tuple]:
    x, y = exp.figure.x, exp.figure.y
    series_of = {r.id: base.label for base in exp.rows for r in base.expand()}
    raw = [cell.setting(x) for cell, _ in present]
    labels = [EVERY_X if v is None else _label(v) for v in raw]
    given = [v for v in raw if v is not None]
    if all(isinstance(v, Real) and not isinstance(v, bool) for v in given):
        ordered = [_label(v) for v in sorted(set(given))]
    else:  # lists (layer sizes) or names: the grid's own order
        ordered = list(dict.fromkeys(_label(v) for v in given))
    position = {label: float(i) for i, label in enumerate(ordered)}
    return [
        _value(c, series_of[c.row.id], label, position.get(label, np.nan), y, s["test"].get(y))
        for (c, s), label in zip(present, labels, strict=True)
    ]


def _cutoff_values(exp: Experiment, present: list) -> list[tuple]:
    name = exp.figure.y.split("@")[0]
    at = re.compile(rf"{re.escape(name)}@(\d+)")
    return [
        _value(c, c.row.label, m.group(1), float(m.group(1)), key, value)
        for c, s in present
        for key, value in s["test"].items()
        if (m := at.fullmatch(key))
    ]


def _epoch_values(exp: Experiment, present: list) -> list[tuple]:
    y = exp.figure.y
    return [
        _value(c, c.row.label, str(r["epoch"]), float(r["epoch"]), y, r["metrics"][y], paper=False)
        for c, s in present
        if c.seed == 0
        for r in s.get("history") or []
        if y in (r.get("metrics") or {})
    ]


def _value(
    cell: Cell, series: str, x: str, position: float, metric: str, value: Any, paper: bool = True
) -> tuple:
    """One measured value as a line of ``_VALUES``, with the paper's figure for ``metric``
    on the cell's dataset (the paper gives none per epoch)."""
    figure = cell.row.paper.get(cell.dataset, {}).get(metric, np.nan) if paper else np.nan
    return (cell.dataset, series, cell.row.id, x, position, metric, cell.seed, value, figure)


def draw_figure(exp: Experiment, points: pd.DataFrame, path: Path) -> Path:
    """Draw ``points`` (``figure_points``), one panel per dataset, as a PNG at ``path``; the
    same points give the same bytes (no time or version in the file). Needs matplotlib."""
    try:
        import matplotlib.style
        from matplotlib.figure import Figure  # the OO API: no pyplot state, no backend switch
        from matplotlib.lines import Line2D
    except ImportError as err:
        raise ImportError(
            "figures need matplotlib: pip install matplotlib (or pip install 'ncflab[plot]')"
        ) from err
    datasets = list(dict.fromkeys(points.dataset)) or [MISSING]
    colour = {s: f"C{i % 10}" for i, s in enumerate(dict.fromkeys(points.series))}
    handles: dict[str, Any] = {}
    with matplotlib.style.context("default"):  # the user's matplotlibrc must not change it
        fig = Figure(figsize=(4.2 * len(datasets) + 2.2, 3.4), layout="constrained")
        axes = fig.subplots(1, len(datasets), squeeze=False)[0]
        for ax, dataset in zip(axes, datasets, strict=True):
            _panel(ax, exp, points[points.dataset == dataset], colour, handles)
            ax.set_title(dataset, fontsize=9)
        if any(points.paper.notna()):
            handles["paper (hollow)"] = Line2D(
                [], [], color="grey", marker="o", markerfacecolor="none", linestyle="none"
            )
        if handles:
            fig.legend(handles.values(), handles.keys(), loc="outside right center", fontsize=8)
        # About 12 characters of 10-point text per inch: a long title wraps, never clips.
        fig.suptitle(textwrap.fill(exp.title, int(fig.get_figwidth() * 12)), fontsize=10)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, metadata={"Software": None})
    return path


def draw_cdf(exp: Experiment, curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """A hits view's figure: per dataset, the empirical CDF of the hits difference rate over
    the users either model hits (JCA Fig. 1), as a PNG at ``path``; byte-stable as
    ``draw_figure``. Needs matplotlib."""
    try:
        import matplotlib.style
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "figures need matplotlib: pip install matplotlib (or pip install 'ncflab[plot]')"
        ) from err
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(5.2, 3.6), layout="constrained")
        ax = fig.add_subplot()
        for i, (dataset, (x, y)) in enumerate(curves.items()):
            # Rates of exactly 0 and 1 are common: pad the steps so both jumps are drawn.
            ax.step(np.r_[-0.05, x, 1.05], np.r_[0.0, y, 1.0], where="post", color=f"C{i}",
                    label=dataset)  # fmt: skip
        for t in (0.2, 0.5):  # where the paper reads its CDF off
            ax.axvline(t, color="grey", linestyle=":", linewidth=0.8)
        ax.set(xlim=(-0.02, 1.02), ylim=(0, 1.02), xlabel="hits difference rate")
        ax.set_ylabel("share of users hit by either (CDF)")
        if curves:
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no finished cells", ha="center", transform=ax.transAxes)
        ax.grid(alpha=0.3)
        fig.suptitle(textwrap.fill(exp.title, int(fig.get_figwidth() * 13)), fontsize=9)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, metadata={"Software": None})
    return path


def _panel(ax: Any, exp: Experiment, points: pd.DataFrame, colour: dict, handles: dict) -> None:
    x, y = exp.figure.x, exp.figure.y
    # Categorical axes (grid values, cut-offs) have room to set the paper's markers beside
    # ours; epochs are dense, so there they sit on ours.
    beside = 0.0 if x == "epoch" else 0.15
    for series, group in points.groupby("series", sort=False):
        line, every = group[group.position.notna()], group[group.position.isna()]
        if not line.empty:
            handles[series] = ax.errorbar(
                line.position,
                line["mean"],
                yerr=line["std"].fillna(0.0),
                color=colour[series],
                marker="o",
                markersize=4,
                capsize=2,
                linewidth=1.2,
            )
            paper = line[line.paper.notna()]
            ax.plot(
                paper.position + beside,
                paper.paper,
                linestyle="none",
                marker="o",
                markersize=6,
                markerfacecolor="none",
                color=colour[series],
            )
        for mean in every["mean"]:
            handles[series] = ax.axhline(mean, color=colour[series], linestyle="--", linewidth=1)
    if points.empty:
        ax.text(0.5, 0.5, "no finished cells yet", ha="center", va="center", transform=ax.transAxes)
    if x not in ("cutoff", "epoch"):
        ticks = points[points.position.notna()].drop_duplicates("position")
        ax.set_xticks(ticks.position, ticks.x)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    elif x == "cutoff":
        ax.set_xticks(sorted(set(points.position.dropna())))
        ax.set_xlabel("N (cut-off)")
        ax.set_ylabel(f"{y.split('@')[0]}@N")
    else:
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {y}")
    ax.grid(alpha=0.3)


def points_markdown(exp: Experiment, points: pd.DataFrame) -> list[str]:
    """The plotted numbers: per dataset, one line per x and a column per series (and one for
    the paper's figures where that series has any)."""
    x, y = exp.figure.x, exp.figure.y
    name = {"cutoff": "N", "epoch": "epoch"}.get(x, x)
    if x == "epoch":
        what = f"validation {y} after each epoch of seed 0"
    else:
        shown = f"{y.split('@')[0]}@N" if x == "cutoff" else y
        what = f"test {shown}, mean ± sample standard deviation over seeds (seeds finished)"
    out = [f"Plotted: {what}; paper: the paper's figure where it gives one."]
    if points.empty:
        return [*out, "", f"{MISSING} no finished cells yet."]
    for dataset, here in points.groupby("dataset", sort=False):
        series = list(dict.fromkeys(here.series))
        with_paper = set(here.series[here.paper.notna()])
        head = [name] + [h for s in series for h in ([s, f"{s} paper"] if s in with_paper else [s])]
        out += ["", f"**{dataset}**", "", "| " + " | ".join(head) + " |", "|" + "--:|" * len(head)]
        xs = here.sort_values("position", kind="stable", na_position="last").x
        for at in dict.fromkeys(xs):
            cells = [at]
            for s in series:
                point = here[(here.x == at) & (here.series == s)]
                p = point.iloc[0] if len(point) else None
                cells.append(MISSING if p is None else format_ours(p["mean"], p["std"], p["n"]))
                if s in with_paper:
                    cells.append("" if p is None else format_number(p.paper))
            out.append("| " + " | ".join(cells) + " |")
    return out


def format_ours(mean: float, std: float, n: int, marker: str = "") -> str:
    """``0.6320 ± 0.0074 (3)``: mean ± sample std (n seeds); one seed has no spread."""
    if n == 0 or np.isnan(mean):
        return MISSING
    text = f"{mean:.4f} ({n})" if n == 1 else f"{mean:.4f} ± {std:.4f} ({n})"
    return f"{text} {marker}" if marker else text


def format_number(x: float, signed: bool = False) -> str:
    """Four decimals; empty for a figure that is not there."""
    if np.isnan(x):
        return ""
    # Adding 0.0 turns a rounded -0.0 into 0.0, so a tiny negative reads +0.0000.
    return f"{round(x, 4) + 0.0:+.4f}" if signed else f"{x:.4f}"


def _label(value: Any) -> str:
    """A grid value as the row id shows it (layer lists as 256-128)."""
    return "-".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _first_seen(column: pd.Series) -> np.ndarray:
    """Each value's rank by first appearance: sorts a column into its file order."""
    return column.map({v: i for i, v in enumerate(dict.fromkeys(column))}).to_numpy()
