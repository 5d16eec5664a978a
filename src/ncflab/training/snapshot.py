"""The epoch driver's resumable snapshot: everything that carries from one epoch to the next.

Written in ``FitOptions.checkpoint_dir`` as ``SNAPSHOT_FILE``: one ``torch.save`` of tensors plus
a JSON string, read back with ``weights_only=True`` (no arbitrary pickle), replaced atomically
so a kill mid-write leaves the previous snapshot whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ncflab.training import distributed
from ncflab.training.options import FitOptions

__all__ = ["SNAPSHOT_FILE", "Snapshot"]

SNAPSHOT_FILE = "resume.pt"
SNAPSHOT_FORMAT = 1


class Snapshot:
    """Writes and reads the driver's ``SNAPSHOT_FILE`` (see ``run_epochs``) for ``module``, the
    ``optimizer`` (None: a model without one, such as ALS), the ``best`` epoch tracker, the
    model's own ``state`` dict and the sampler's generator ``rng`` (None: a model that draws
    nothing per epoch), whose state after an epoch is ``rng_state()`` when given (a sampler
    that draws ahead), else its live state."""

    def __init__(
        self,
        options: FitOptions,
        model: Any,
        module: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        best: Any,
        state: dict[str, Any] | None,
        rng: np.random.Generator | None = None,
        rng_state: Callable[[], dict] | None = None,
    ) -> None:
        folder = options.checkpoint_dir
        self.path = None if folder is None else Path(folder) / SNAPSHOT_FILE
        self.every = options.snapshot_seconds
        self.model, self.module, self.optimizer, self.best = model, module, optimizer, best
        self.state = state if state is not None else {}
        self.rng, self.rng_state = rng, rng_state
        self.last_write = time.perf_counter()

    def _params(self) -> dict[str, Any]:
        # As JSON sees them, so a snapshot's and a live model's compare equal.
        return json.loads(json.dumps(self.model.get_params(), default=str))

    def _defaults(self) -> dict[str, Any]:
        """The model's hyperparameters at their defaults, as ``_params`` shows them."""
        fields = dataclasses.fields(self.model)  # type: ignore[arg-type]
        out = {
            f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            for f in fields
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
        return json.loads(json.dumps(out, default=str))

    def _write(self, meta: dict[str, Any], optimizer: bool) -> None:
        # Data-parallel ranks hold the same state: rank 0 writes it for them all.
        if self.path is None or not distributed.is_main():
            return
        cuda = torch.cuda.is_available()
        moments = optimizer and self.optimizer is not None
        blob = {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict() if moments else {},
            "best": self.best.state or {},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else [],
            "meta": json.dumps(
                {
                    "format": SNAPSHOT_FORMAT,
                    "model": self.model.name,
                    "params": self._params(),
                    "history": self.model.history_,
                    # None before any validation: epoch 0 can be a best (``validate_start``).
                    "best_epoch": None if self.best.state is None else self.best.epoch,
                    "best_value": self.best.value,
                    "state": self.state,
                    **meta,
                }
            ),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, self.path)
        self.last_write = time.perf_counter()

    def after_epoch(self, epoch: int, last_loss: float) -> None:
        if time.perf_counter() - self.last_write >= self.every:
            meta = {"epoch": epoch, "done": False, "last_loss": last_loss, "rng": self._rng()}
            self._write(meta, optimizer=True)

    def _rng(self) -> dict | None:
        """The sampler's state as of the start of the next epoch's draws (None: no sampler)."""
        if self.rng is None:
            return None
        return self.rng_state() if self.rng_state is not None else self.rng.bit_generator.state

    def finish(self) -> None:
        """The final snapshot: the fit's end weights (the best epoch's, when validated) and
        history, without optimizer moments; resuming it trains nothing."""
        epoch = self.model.history_[-1]["epoch"] if self.model.history_ else 0
        self._write({"epoch": epoch, "done": True, "last_loss": math.nan}, optimizer=False)

    def restore(self) -> dict[str, Any] | None:
        """Load the snapshot into the live objects; returns its meta, or None without one."""
        if self.path is None:
            raise ValueError("resume needs a checkpoint_dir, where the snapshot is written")
        if not self.path.is_file():
            return None
        blob = torch.load(self.path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        if meta.get("format") != SNAPSHOT_FORMAT or meta.get("model") != self.model.name:
            raise ValueError(
                f"{self.path} is a snapshot of {meta.get('model')!r} (format "
                f"{meta.get('format')}), not of {self.model.name!r} (format {SNAPSHOT_FORMAT})"
            )
        params, saved = self._params(), meta["params"]
        # A hyperparameter added to the model since the snapshot was written is no change
        # when it is at its default: the snapshot's fit ran with that behaviour.
        added = {k: self._defaults().get(k) for k in params.keys() - saved.keys()}
        saved = {**added, **saved}
        changed = sorted(k for k in params.keys() | saved.keys() if params.get(k) != saved.get(k))
        if changed:
            were = {k: meta["params"].get(k) for k in changed}
            now = {k: params.get(k) for k in changed}
            raise ValueError(
                f"cannot resume {self.path}: hyperparameters differ, snapshot {were}, now {now}"
            )
        self.module.load_state_dict(blob["module"])
        self.model.history_ = meta["history"]
        if meta["best_epoch"] is not None:
            self.model.best_epoch_ = meta["best_epoch"]
        if meta["done"]:
            return meta
        if self.optimizer is not None:
            self.optimizer.load_state_dict(blob["optimizer"])
        self.best.epoch, self.best.value = meta["best_epoch"] or 0, meta["best_value"]
        self.best.state = blob["best"] or None
        torch.set_rng_state(blob["torch_rng"])
        if blob["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(blob["cuda_rng"])
        if self.rng is not None:
            self.rng.bit_generator.state = meta["rng"]
        self.state.update(meta["state"])
        return meta
