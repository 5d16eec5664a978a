"""Experiment configuration: TOML files ⇄ a plain dataclass, with ``--set key=value`` overrides.

A config file looks like::

    dataset = "ml-1m"
    protocol = "ncf"
    model = "bpr"
    seed = 0

    [params]          # the model's hyperparameters (dataclass fields); anything omitted keeps
    factors = 64      # the default written next to the paper equation it comes from
    lr = 0.001

    [train]           # runtime options of the training loop (not hyperparameters)
    patience = 5
    device = "auto"

Command-line flags override the file and ``--set key=value`` overrides both; ``key`` is a dotted
path (``params.lr=0.01``, ``train.patience=3``, ``seed=1``) and ``value`` is read as a TOML value
(``0.01``, ``true``, ``[10, 20]``), falling back to a plain string.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

__all__ = ["RunConfig", "TrainConfig", "apply_overrides", "load_config", "parse_value"]


@dataclass(kw_only=True)
class TrainConfig:
    """Runtime options of the training loop.

    Attributes:
        patience: epochs without validation improvement before stopping (best epoch restored);
            0 = the protocol's own choice (``Protocol.patience``).
        eval_every: validate every this many epochs.
        monitor: validation metric to early-stop on; empty = the protocol's own choice.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        threads: torch CPU threads; 0 leaves torch's default.
        refit: after validation, fit the model again on train ∪ valid (with the epoch count
            validation chose, for models with a training loop) and test that model, as Dacrema
            et al. (TOIS 2021) did for every baseline; off by default, since the seed papers
            (J-NCF, JCA, NCR) test the model trained on train alone.
        snapshot_seconds: how often (at most, between epochs) the loop writes the snapshot that
            ``ncflab resume`` continues from; 0 = after every epoch.
    """

    patience: int = 0
    eval_every: int = 1
    monitor: str = ""
    device: str = "auto"
    threads: int = 0
    refit: bool = False
    snapshot_seconds: float = 60.0


@dataclass(kw_only=True)
class RunConfig:
    """Everything that defines a run: data, protocol, model, hyperparameters, seed.

    Attributes:
        dataset: a name from ``ncflab data list``.
        protocol: a preset name (``ncf``, ``jncf``, ``ncr``, ``jca``, ``loo-full``).
        model: a registry name (``ncflab.models.MODELS``).
        seed: seeds the split's random parts, the negatives and the model.
        data_dir: where to look for dataset files before the cache and the download.
        params: model hyperparameter overrides.
        train: training-loop options.
    """

    dataset: str = "ml-1m"
    protocol: str = "ncf"
    model: str = "bpr"
    seed: int = 0
    data_dir: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["data_dir"] is None:
            del out["data_dir"]  # TOML has no null
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; expected {sorted(known)}")
        train = raw.pop("train", {}) or {}
        if not isinstance(train, dict):
            raise ValueError(f"config 'train' must be a table, got {train!r}")
        tknown = {f.name for f in dataclasses.fields(TrainConfig)}
        if set(train) - tknown:
            bad = sorted(set(train) - tknown)
            raise ValueError(f"unknown train option(s) {bad}; expected {sorted(tknown)}")
        return cls(**raw, train=TrainConfig(**train))


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
            raise ValueError(f"--set expects key=value, got {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a table")
        node[parts[-1]] = parse_value(value.strip())
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML config (or start from defaults), apply overrides, validate keys."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {path} is not valid TOML: {err}") from err
    return RunConfig.from_dict(apply_overrides(raw, overrides or []))


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}
