"""The one options object of training: how to train, never what the model is.

``FitOptions`` is both the ``[train]`` table of a run's config (its plain fields, written to
``config.toml``) and what ``Recommender.fit`` receives (plus runtime fields a run fills in: the
validation callback, where snapshots go, progress callbacks). Every plain field is typed and
ranged (``ncflab.typed``), so ``--set train.patience=-3`` fails before any data is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ncflab.typed import ConfigError, bounds, check_dataclass

__all__ = ["DEFAULT_MONITOR", "DEFAULT_PATIENCE", "FitOptions", "Validator", "resolve_device"]

# A validation callback: given the model being trained, returns {"HR@10": ..., ...}.
Validator = Callable[[Any], dict[str, float]]
# Used when neither the options nor a protocol chose (a plain ``model.fit`` from Python).
DEFAULT_PATIENCE = 5
DEFAULT_MONITOR = "NDCG@10"


def _runtime(default: Any = None) -> Any:
    """A field set by the code that runs a fit, never by a config file."""
    return field(default=default, metadata={"runtime": True}, repr=False, compare=False)


@dataclass(kw_only=True)
class FitOptions:
    """Runtime options of a fit.

    Config fields (the ``[train]`` table):
        patience: epochs without validation improvement before stopping (the best epoch is
            restored); unset = the protocol's own choice (``Protocol.patience``), else 5.
        eval_every: validate every this many epochs.
        monitor: validation metric to early-stop on (higher is better); unset = the
            protocol's own choice, else NDCG@10.
        device: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N".
        threads: torch CPU threads; 0 leaves torch's default.
        refit: after validation, fit the model again on train ∪ valid (with the epoch count
            validation chose, for models with a training loop) and test that model, as Dacrema
            et al. (TOIS 2021) did for every baseline; off by default, since the seed papers
            (J-NCF, JCA, NCR) test the model trained on train alone.
        snapshot_seconds: write the resumable snapshot after an epoch once this many seconds
            have passed since the last one (0: every epoch); it holds weights and optimizer
            state, so writing it every epoch of a fast model would cost more than it saves.
        select_on: the part early stopping chooses the epoch on: "valid" (always, for a
            result) or "test", what several papers' code did, for an upper reference that
            shows how much of a gap test-set selection could explain (recorded as such in
            ``metrics.json``; never a result).

    Runtime fields (set by the code running the fit):
        validate: callback computing validation metrics of the current model, or None.
        checkpoint_dir: where the epoch driver writes the best state and its resumable
            snapshot, or None.
        resume: continue from the snapshot in ``checkpoint_dir`` (from epoch 1 when there is
            none); the fit is the one an uninterrupted run makes.
        on_epoch: called with each epoch's record (epoch, loss, metrics, seconds).
        on_progress: called with progress events, for a front end to draw:
            ``{"event": "start", "epochs", "done"}``, ``{"event": "step", "epoch", "step",
            "steps"}`` (within a long epoch), ``{"event": "epoch", **record}``,
            ``{"event": "end"}``. The library itself only logs.
    """

    patience: int | None = field(default=None, metadata=bounds(ge=0))
    eval_every: int = field(default=1, metadata=bounds(ge=1))
    monitor: str | None = None
    device: str = "auto"
    threads: int = field(default=0, metadata=bounds(ge=0))
    refit: bool = False
    snapshot_seconds: float = field(default=60.0, metadata=bounds(ge=0))
    select_on: Literal["valid", "test"] = "valid"

    validate: Validator | None = _runtime()
    checkpoint_dir: Path | None = _runtime()
    resume: bool = _runtime(False)
    on_epoch: Callable[[dict], None] | None = _runtime()
    on_progress: Callable[[dict], None] | None = _runtime()

    def __post_init__(self) -> None:
        check_dataclass(self, prefix="train.")
        resolve_device(self.device, check_available=False)

    @classmethod
    def config_fields(cls) -> list[str]:
        """The names of the fields a config file may set."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("runtime")]

    def to_config(self) -> dict[str, Any]:
        """The config fields as a TOML-ready dict (unset optional fields omitted)."""
        out = {name: getattr(self, name) for name in self.config_fields()}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def patience_or_default(self) -> int:
        return DEFAULT_PATIENCE if self.patience is None else self.patience

    @property
    def monitor_or_default(self) -> str:
        return self.monitor or DEFAULT_MONITOR

    def part(self, name: str, report: bool = False) -> FitOptions:
        """These options for a fit inside this one (pre-training, one side of a two-part
        model): its checkpoints and snapshot go to ``checkpoint_dir/name``, so that resuming
        the outer fit finds each part where it stopped (a finished part is not retrained);
        the epoch and progress callbacks are passed on only with ``report``."""
        folder = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / name
        on_epoch = self.on_epoch if report else None
        on_progress = self.on_progress if report else None
        return dataclasses.replace(
            self, checkpoint_dir=folder, on_epoch=on_epoch, on_progress=on_progress
        )

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def emit(self, event: str, **data: Any) -> None:
        """Report a progress event to ``on_progress`` (see the class docstring)."""
        if self.on_progress is not None:
            self.on_progress({"event": event, **data})


def resolve_device(device: str, check_available: bool = True) -> torch.device:
    """``device`` ("auto", "cpu", "cuda", "cuda:N") as a torch device; "cuda" on a machine
    without CUDA is a ``ConfigError`` saying so (not a traceback from deep inside torch)."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"train.device must be one of auto, cpu, cuda, cuda:N; got {device!r}")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and check_available:
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device={device!r} but this machine has no CUDA device (torch "
                f"{torch.__version__}); use device 'cpu' or 'auto'"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return torch.device(device)
