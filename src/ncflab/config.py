"""Experiment configuration: TOML files ⇄ typed dataclasses, with ``--set key=value`` overrides.

A config file looks like::

    dataset = "ml-1m"   # a name from `ncflab data list`, or the path of your own ratings file
    protocol = "ncf"
    model = "bpr"
    seed = 0            # the model's initialisation and its training sampling
    split_seed = 0      # the split's random parts and the sampled candidates

    [params]            # the model's hyperparameters (dataclass fields); anything omitted keeps
    factors = 64        # the default written next to the paper equation it comes from
    lr = 0.001

    [train]             # runtime options of training (ncflab.training.options.FitOptions)
    patience = 5
    device = "auto"

    [data]              # your own files, and the rules for a published split's quirks
    bad_negatives = "drop"

Command-line flags override the file and ``--set key=value`` overrides both; ``key`` is a dotted
path (``params.lr=0.01``, ``train.patience=3``, ``seed=1``) and ``value`` is read as a TOML value
(``0.01``, ``true``, ``[10, 20]``), falling back to a plain string. Every value is then checked
against its field's declared type and range (``ncflab.typed``) before any data is read: a
mistyped value is an error naming the key, what was expected and what was given.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from ncflab.training.options import FitOptions
from ncflab.typed import ConfigError, bounds, check_dataclass

__all__ = [
    "ConfigError",
    "DataOptions",
    "RunConfig",
    "apply_overrides",
    "load_config",
    "parse_value",
]


@dataclass(kw_only=True)
class DataOptions:
    """The ``[data]`` table: a user's own files, and how a published split's quirks are treated.

    Attributes:
        columns: for your own files, our role → the file's column name, e.g.
            ``{user = "userId", item = "movieId", rating = "rating", timestamp = "ts"}``;
            empty = columns named user, item[, rating, timestamp].
        sep: the field separator of your own text files (empty = by extension: "," for .csv,
            tab for .tsv).
        train / valid / test / negatives: the files of your own published split (``dataset``
            is then a label for it); ``negatives`` in NCF's ``.test.negative`` layout or as a
            CSV of user and negative items.
        bad_negatives: given negatives that repeat within a user's row or are one of that
            user's positives: "error" (refuse), "drop" (remove them, one summary line; NCF's
            own evaluation does this in effect: its candidates are the keys of a dict), "keep"
            (as published). Unset = the dataset's own rule, else "error".
        overlap: duplicate records within a part, and valid/test pairs already in train:
            "error", "clean" (removed, counted in split.json), "keep" (evaluated as the JCA
            authors did: such a test item is masked as a train item, never hit, yet counted in
            recall). Unset = the dataset's own rule, else "error".
        without_valid: a published split with no validation part: "carve" (one is carved
            from train by the protocol's own rule: each user's latest record for
            leave-one-out, 10 % for ratio splits), "epochs" (no validation: every model trains
            its ``epochs`` and early stopping is off, said in the log), or "error". Unset =
            "carve".
        records: keep this many records of the dataset, thinned by J-NCF §4.2.1's procedure
            (random records removed while every user keeps three, for train, validation
            and test, and every item one; seeded by
            ``split_seed``, and for one seed a smaller subset lies inside a larger one), before
            the split. J-NCF's Table 4 versions of ML100K are 69,999, 39,999 and 9,999.
            Unset = all records. Not for a published split (its parts are fixed).
    """

    columns: dict[str, str] = field(default_factory=dict)
    sep: str = ""
    train: str = ""
    valid: str = ""
    test: str = ""
    negatives: str = ""
    bad_negatives: Literal["error", "drop", "keep"] | None = None
    overlap: Literal["error", "clean", "keep"] | None = None
    without_valid: Literal["carve", "epochs", "error"] | None = None
    records: int | None = field(default=None, metadata=bounds(ge=1))

    def __post_init__(self) -> None:
        check_dataclass(self, prefix="data.")
        roles = {"user", "item", "rating", "timestamp"}
        bad = sorted(set(self.columns) - roles)
        if bad:
            raise ConfigError(f"data.columns has unknown role(s) {bad}; roles: {sorted(roles)}")
        for role, name in self.columns.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"data.columns.{role} must be a column name, got {name!r}")
        if (self.train or self.valid or self.test or self.negatives) and not (
            self.train and self.test
        ):
            raise ConfigError(
                "a split from your own files needs at least data.train and data.test, got "
                f"train={self.train!r}, test={self.test!r}"
            )

    @property
    def files(self) -> dict[str, str]:
        """role → path of your own split's files (empty without them)."""
        roles = ("train", "valid", "test", "negatives")
        return {r: getattr(self, r) for r in roles if getattr(self, r)}

    def to_config(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in out.items() if v not in (None, "", {})}


@dataclass(kw_only=True)
class RunConfig:
    """Everything that defines a run: data, protocol, model, hyperparameters, seeds.

    Attributes:
        dataset: a name from ``ncflab data list``, the path of your own ratings file (CSV,
            TSV or parquet; stored absolute), or a label for your own split (``data.train`` …).
        protocol: a preset name (``ncf``, ``jncf``, ``ncr``, ``jca``, ``loo-full``).
        model: a registry name (``ncflab.MODELS``).
        seed: seeds the model: its initialisation and its training sampling.
        split_seed: seeds the split's random parts and the sampled candidates, apart from
            ``seed``, so that runs with several model seeds share one split.
        data_dir: where to look for dataset files before the cache and the download (stored
            absolute, so a run folder means the same data from any directory).
        params: model hyperparameter overrides (checked against the model's fields).
        train: training options.
        data: your own files and the rules for a published split's quirks.
    """

    dataset: str = "ml-1m"
    protocol: str = "ncf"
    model: str = "bpr"
    seed: int = field(default=0, metadata=bounds(ge=0))
    split_seed: int = field(default=0, metadata=bounds(ge=0))
    data_dir: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: FitOptions = field(default_factory=FitOptions)
    data: DataOptions = field(default_factory=DataOptions)

    def __post_init__(self) -> None:
        check_dataclass(self)
        if not self.dataset:
            raise ConfigError("dataset must be a dataset name or a file path, got ''")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "model": self.model,
            "seed": self.seed,
            "split_seed": self.split_seed,
        }
        if self.data_dir is not None:  # TOML has no null
            out["data_dir"] = self.data_dir
        out["params"] = dict(self.params)
        out["train"] = self.train.to_config()
        data = self.data.to_config()
        if data:
            out["data"] = data
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """A config from nested plain values; unknown keys and wrong types are errors."""
        raw = dict(raw)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; expected {known}")
        tables = {}
        for name, kind, allowed in (
            ("train", FitOptions, FitOptions.config_fields()),
            ("data", DataOptions, [f.name for f in dataclasses.fields(DataOptions)]),
        ):
            table = raw.pop(name, {}) or {}
            if not isinstance(table, dict):
                raise ConfigError(f"config {name!r} must be a table, got {table!r}")
            bad = sorted(set(table) - set(allowed))
            if bad:
                raise ConfigError(f"unknown {name} option(s) {bad}; expected {allowed}")
            tables[name] = kind(**table)
        params = raw.pop("params", {}) or {}
        if not isinstance(params, dict):
            raise ConfigError(f"config 'params' must be a table, got {params!r}")
        return cls(**raw, params=params, **tables)


def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (number, bool, array, quoted string), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys) to a nested dict; returns a new dict."""
    out = _deep_copy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a table")
        # Spaces around the value only: str.strip() would also drop control characters
        # (\x1c-\x1f count as whitespace to Python), silently changing what was given.
        node[parts[-1]] = parse_value(value.strip(" \t\r\n"))
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML config (or start from defaults), apply overrides, check keys and types."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    return RunConfig.from_dict(apply_overrides(raw, overrides or []))


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}
