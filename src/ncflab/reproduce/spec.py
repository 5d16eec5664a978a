"""Experiment files: one TOML file declares one table or figure of a paper.

An experiment file lives at ``experiments/<paper>/<name>.toml``::

    title = "J-NCF Table 5: HR@10 and NDCG@10 on ML100K and ML1M"
    kind = "table"                      # "table", or "figure" (see ``figure``)
    protocol = "jncf"
    datasets = ["ml-100k", "ml-1m"]
    metrics = ["HR@10", "NDCG@10"]      # the columns, per dataset; the first decides "best"
    seeds = 3                           # model seeds per cell (one split per dataset)
    params = { epochs = 50 }            # hyperparameters every row gets (rows override)
    train = { patience = 5 }            # training options every row gets

    [profiles.quick]                    # what --profile quick changes (full = the file as is)
    datasets = ["ml-100k"]
    seeds = 1
    params = { epochs = 10 }            # merged over every row's params

    [[rows]]
    id = "itempop"                      # a stable name: the cell's folder and summary file
    label = "ItemPop"
    model = "itempop"
    role = "baseline"                   # "baseline" (the paper's), "strong" (simple strong
                                        # baselines: EASE, iALS, …), or "model" (the paper's own)
    paper = { "ml-100k" = { "HR@10" = 0.4252, "NDCG@10" = 0.2418 } }   # the paper's figures

    [[rows]]
    id = "jncf-depth"
    model = "jncf"
    grid = { df_layers = [[256], [256, 128]], di_layers = [[64], [64, 32]] }   # one row each

A figure file adds ``[figure]`` with ``x`` (a hyperparameter the rows' grid varies, or
"cutoff" for metric@N over N, or "epoch" for the validation history) and ``y`` (a metric).

``data`` (file or row) holds ``[data]`` options (``ncflab.config.DataOptions``); a grid key
``"data.<option>"`` varies one, e.g. ``grid = { "data.records" = [69999, 39999, 9999] }`` for
J-NCF's sparser versions of a dataset.

A view reads another file's cells instead of declaring its own: ``source = "table5-ml-100k"``
and ``view = "activity"`` (the source's per-user test metrics over the least active users:
``groups = [0.1, 0.5, 0.9]`` are the bottom fractions of users by training records, as J-NCF's
Table 7) or ``view = "timing"`` (training and ranking times from the source's histories, as
J-NCF's Table 8; ``metrics`` from ``TIMINGS``). Its rows, when given, pick the source's rows
to show (by id) and carry the paper's figures, keyed ``"<group>|<dataset>"`` for activity.
``view = "hits"`` compares the hits of ``pair = [row, row]`` (JCA's Fig. 1, the hits
difference rate, from the rows' ``analyses = ["hits@10"]``) and ``view = "rules"`` shows the
``analyses = ["rules"]`` of NCR's pairwise rows (Algorithm 1 against win counts).
A figure may also read another file's cells: ``source`` and ``[figure]`` without ``view``
(JCA's precision and recall curves over k from its Table 3 cells).
Running a view runs its source's cells.

Role "reference" marks a row shown for comparison only (never tested, never the baseline),
such as a model whose epochs were chosen on test.

Profiles: ``full`` is the file as written; ``quick`` fits a 2-core CPU in minutes (the report
says which profile each figure comes from); ``smoke`` runs every file's machinery on the
smallest data (``ml-100k``, one seed, one epoch in batches of 4096 for models that have them,
at most 2 tuning trials) so CI can check the whole path.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ncflab.typed import ConfigError, bounds, check_dataclass

__all__ = [
    "PROFILES",
    "Cell",
    "Experiment",
    "Figure",
    "HITS_STATS",
    "Profile",
    "Row",
    "TIMINGS",
    "experiment_files",
    "load_experiment",
]

PROFILES = ("smoke", "quick", "full")
VIEWS = ("activity", "timing", "hits", "rules")
# What a row's ``analyses`` may name (``analyses.ANALYSES``, which needs torch, has these keys).
ANALYSIS_NAMES = ("hits@10", "rules")
# The figures a timing view can show (``metrics``), from a cell's summary: fit_seconds (the
# whole fit), best_seconds (training epochs up to the chosen one: J-NCF Table 8's "total
# time"), epoch_seconds (mean training epoch), rank_seconds (mean validation pass: every user's
# candidates scored and ranked once, the size of the test pass), rank_seconds_per_user.
TIMINGS = ("fit_seconds", "best_seconds", "epoch_seconds", "rank_seconds", "rank_seconds_per_user")
# What a hits view can show (``metrics``), per dataset over the users with a test item, from
# each seed's pair of rows: users (evaluated), no_hit (hit by neither: the rate is 0/0),
# above_0.2 and above_0.5 (share of the users hit by either whose rate exceeds it: JCA Fig. 1
# reads off both) and mean_rate.
HITS_STATS = ("users", "no_hit", "above_0.2", "above_0.5", "mean_rate")
DATA_PREFIX = "data."
# What every row gets under the smoke profile (unless the file's [profiles.smoke] says more):
# the machinery end to end in seconds per cell, not a measurement.
SMOKE_PARAMS = {"epochs": 1, "batch_size": 4096}
SMOKE_TUNE = 2


@dataclass(kw_only=True)
class Profile:
    """Overrides of one profile: any of datasets, seeds, params (merged over every row's),
    train options, ``rows`` (ids: only these rows run) and ``tune`` (at most this many trials
    for a tuned row)."""

    datasets: list[str] | None = None
    seeds: int | None = field(default=None, metadata=bounds(ge=1))
    tune: int | None = field(default=None, metadata=bounds(ge=1))
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    rows: list[str] | None = None

    def __post_init__(self) -> None:
        check_dataclass(self, prefix="profile.")


@dataclass(kw_only=True)
class Row:
    """One row of a table (one model and its settings), possibly a grid of rows."""

    id: str
    model: str = ""  # required, except in a view (where it is the source row's)
    label: str = ""
    role: Literal["baseline", "strong", "model", "reference"] = "model"
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    tune: int = field(default=0, metadata=bounds(ge=0))  # trials on validation, 0 = none
    analyses: list[str] = field(default_factory=list)  # run on the trained model (analyses.py)
    paper: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_dataclass(self, prefix=f"rows[{self.id}].")
        if not self.id or "/" in self.id or self.id.startswith("."):
            raise ConfigError(f"row id {self.id!r} must be a plain name (it names a folder)")
        self.label = self.label or self.id
        bad = sorted(set(self.analyses) - set(ANALYSIS_NAMES))
        if bad:
            raise ConfigError(
                f"rows[{self.id}].analyses: unknown {bad}; known: {list(ANALYSIS_NAMES)}"
            )

    def expand(self) -> list[Row]:
        """This row, or one row per point of its grid (ids and labels say the point)."""
        if not self.grid:
            return [self]
        keys = sorted(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            tag = ",".join(f"{k}={_short(v)}" for k, v in point.items())
            data = {k.removeprefix(DATA_PREFIX): v for k, v in point.items()
                    if k.startswith(DATA_PREFIX)}  # fmt: skip
            out.append(
                dataclasses.replace(
                    self,
                    id=f"{self.id}[{tag}]",
                    label=f"{self.label} {tag}",
                    params={
                        **self.params,
                        **{
                            k: v
                            for k, v in point.items()
                            if k not in {DATA_PREFIX + d for d in data}
                        },
                    },  # fmt: skip
                    data={**self.data, **data},
                    grid={},
                    paper=_paper_at(self.paper, tag),
                )
            )
        return out


@dataclass(kw_only=True)
class Figure:
    x: str
    y: str
    series: str = "label"  # rows with the same label (before the grid tag) form one line


@dataclass(kw_only=True)
class Experiment:
    """One table or figure of a paper (see the module docstring)."""

    paper: str
    name: str
    title: str
    protocol: str
    datasets: list[str]
    metrics: list[str]
    rows: list[Row]
    kind: Literal["table", "figure"] = "table"
    seeds: int = field(default=3, metadata=bounds(ge=1))
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    figure: Figure | None = None
    notes: str = ""
    source: str = ""  # a view: the experiment file whose cells it reads
    view: Literal["", "activity", "timing", "hits", "rules"] = ""
    groups: list[float] = field(default_factory=list)  # activity: bottom fractions of users
    pair: list[str] = field(default_factory=list)  # hits: the two rows compared
    origin: Experiment | None = None  # a view's source, loaded (load_experiment sets it)

    def __post_init__(self) -> None:
        check_dataclass(self, prefix=f"{self.paper}/{self.name}: ")
        bad = sorted(set(self.profiles) - set(PROFILES))
        if bad:
            raise ConfigError(f"{self.paper}/{self.name}: unknown profile(s) {bad}")
        ids = [r.id for r in self.rows]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"{self.paper}/{self.name}: row ids repeat: {ids}")
        if self.kind == "figure" and self.figure is None:
            raise ConfigError(f"{self.paper}/{self.name}: a figure needs a [figure] table")
        unnamed = [r.id for r in self.rows if not r.model]
        if unnamed and not self.source:
            raise ConfigError(f"{self.paper}/{self.name}: row(s) {unnamed} name no model")
        if self.view and not self.source or self.source and not (self.view or self.figure):
            raise ConfigError(
                f"{self.paper}/{self.name}: a view needs a source and a view (or a [figure])"
            )
        if self.view == "activity" and not (self.groups and all(0 < g <= 1 for g in self.groups)):
            raise ConfigError(
                f"{self.paper}/{self.name}: an activity view needs groups, fractions in (0, 1], "
                f"got {self.groups!r}"
            )
        if self.view == "timing" and set(self.metrics) - set(TIMINGS):
            raise ConfigError(
                f"{self.paper}/{self.name}: a timing view's metrics are among {list(TIMINGS)}, "
                f"got {self.metrics}"
            )
        if self.view == "hits" and len(self.pair) != 2:
            raise ConfigError(f"{self.paper}/{self.name}: a hits view needs pair = [row, row]")
        if self.view == "hits" and set(self.metrics) - set(HITS_STATS):
            raise ConfigError(
                f"{self.paper}/{self.name}: a hits view's metrics are among {list(HITS_STATS)}, "
                f"got {self.metrics}"
            )
        if self.origin is not None:
            need = {"hits": "hits@10", "rules": "rules"}.get(self.view)
            ids = self.pair if self.view == "hits" else [r.id for r in self.rows]
            lacking = [r.id for r in self.origin.rows if r.id in ids and need not in r.analyses]
            if need and (lacking or not ids):
                raise ConfigError(
                    f"{self.paper}/{self.name}: a {self.view} view needs rows of {self.source} "
                    f'with analyses = ["{need}"]; {lacking or "no rows given"} lack it'
                )
            known = {r.id for r in self.origin.rows}
            bad = sorted({r.id for r in self.rows} - known | set(self.pair) - known)
            if bad:
                raise ConfigError(
                    f"{self.paper}/{self.name}: row(s) {bad} are not rows of {self.source}; "
                    f"its rows are {sorted(known)}"
                )

    def cells(self, profile: str = "full", seeds: int | None = None) -> list[Cell]:
        """Every (row, dataset, seed) this profile runs, with its merged settings; for a view,
        the cells of its source that it shows."""
        if profile not in PROFILES:
            raise ConfigError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
        if self.source:
            if self.origin is None:
                raise ConfigError(f"{self.paper}/{self.name}: its source was not loaded")
            shown = {r.id for r in self.rows} | set(self.pair)
            return [
                c
                for c in self.origin.cells(profile, seeds)
                if not shown or c.row.id.split("[")[0] in shown
            ]
        over = self.profiles.get(profile, Profile())
        if profile == "smoke":
            over = dataclasses.replace(
                over,
                datasets=over.datasets or ["ml-100k"],
                seeds=over.seeds or 1,
                tune=over.tune or SMOKE_TUNE,
            )
        datasets = over.datasets or self.datasets
        n_seeds = seeds or over.seeds or self.seeds
        out = []
        for row in (r for base in self.rows for r in base.expand()):
            if over.rows is not None and row.id.split("[")[0] not in over.rows:
                continue
            # A profile's settings reach the rows whose model has them (a closed-form model
            # has no epochs to cut); the file's and the row's own are always checked.
            smoke = SMOKE_PARAMS if profile == "smoke" else {}
            extra = _model_params(row.model, {**smoke, **over.params})
            params = {**self.params, **row.params, **extra}
            train = {**self.train, **row.train, **over.train}
            data = {**self.data, **row.data}
            if row.tune and over.tune:
                row = dataclasses.replace(row, tune=min(row.tune, over.tune))
            for dataset in datasets:
                for seed in range(n_seeds):
                    out.append(Cell(self, row, dataset, seed, params, train, profile, data))
        return out


@dataclass(frozen=True)
class Cell:
    """One run of an experiment: a row on a dataset with a model seed."""

    experiment: Experiment
    row: Row
    dataset: str
    seed: int
    params: dict[str, Any]
    train: dict[str, Any]
    profile: str
    data: dict[str, Any] = field(default_factory=dict)

    def setting(self, name: str) -> Any:
        """A hyperparameter of the cell, or a ``data.<option>`` (None when it has none)."""
        if name.startswith(DATA_PREFIX):
            return self.data.get(name.removeprefix(DATA_PREFIX))
        return self.params.get(name)

    @property
    def key(self) -> str:
        """The cell's path below ``results/<paper>/<experiment>/<profile>/``."""
        return f"{self.row.id}/{self.dataset}/seed-{self.seed}"


def load_experiment(path: str | Path) -> Experiment:
    """An experiment file, checked (unknown keys and wrong types are errors naming them)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"experiment file {path} is not valid TOML: {err}") from err
    paper, name = path.parent.name, path.stem
    known = {f.name for f in dataclasses.fields(Experiment)} - {"paper", "name", "origin"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; expected {sorted(known)}")
    rows = [_make(Row, r, f"{path}: rows") for r in raw.pop("rows", [])]
    profiles = {k: _make(Profile, v, f"{path}: profiles.{k}") for k, v in
                raw.pop("profiles", {}).items()}  # fmt: skip
    figure = raw.pop("figure", None)
    figure = None if figure is None else _make(Figure, figure, f"{path}: figure")
    origin = None
    if raw.get("source"):
        source = path.parent / f"{raw['source']}.toml"
        if not source.is_file() or source == path:
            raise ConfigError(f"{path}: source {raw['source']!r} is not another file beside it")
        origin = load_experiment(source)
        if origin.source:
            raise ConfigError(f"{path}: source {raw['source']!r} is itself a view")
        rows = [dataclasses.replace(r, model=_model_of(origin, r, path)) for r in rows]
        for key in ("protocol", "datasets"):  # a view's are its source's
            if raw.setdefault(key, getattr(origin, key)) != getattr(origin, key):
                raise ConfigError(f"{path}: {key} differs from its source {origin.name}'s")
    return Experiment(
        paper=paper, name=name, rows=rows, profiles=profiles, figure=figure, origin=origin, **raw
    )


def _model_of(origin: Experiment, row: Row, path: Path) -> str:
    """A view's row shows the source's row of the same id, so it has that row's model."""
    for base in origin.rows:
        if base.id == row.id:
            if row.model not in ("", base.model):
                raise ConfigError(
                    f"{path}: row {row.id!r} is {base.model!r} in {origin.name}, not {row.model!r}"
                )
            return base.model
    return row.model  # unknown ids are named by Experiment's check


def experiment_files(root: str | Path, paper: str) -> list[Path]:
    """The experiment files of ``paper`` under ``root`` (``experiments/``), sorted."""
    folder = Path(root) / paper
    if not folder.is_dir():
        papers = (
            sorted(p.name for p in Path(root).iterdir() if p.is_dir())
            if Path(root).is_dir()
            else []
        )
        raise ConfigError(f"no experiments for paper {paper!r} in {root}; papers: {papers}")
    return sorted(folder.glob("*.toml"))


def _model_params(model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that are hyperparameters of ``model``."""
    from ncflab.models import MODELS

    if model not in MODELS:
        return dict(params)  # an unknown model fails by name when its cell runs
    fields = {f.name for f in dataclasses.fields(MODELS[model])}
    return {k: v for k, v in params.items() if k in fields}


def _make(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table, got {raw!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected {sorted(known)}")
    return cls(**raw)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    return str(value)


def _paper_at(paper: dict, tag: str) -> dict:
    """The paper's figures of one grid point: ``paper`` keyed by ``"<tag>|<dataset>"``."""
    return {k.split("|", 1)[1]: v for k, v in paper.items() if k.split("|", 1)[0] == tag}
