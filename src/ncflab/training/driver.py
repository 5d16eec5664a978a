"""The one epoch driver every iterative model uses.

``run_epochs`` runs a model's epochs: ``epoch_fn(epoch)`` trains one epoch and returns its loss,
the driver owns everything else: seeding, non-finite loss detection, validation, early
stopping, restoring the best epoch, checkpoints, resumable snapshots, progress and the history
of epoch records. Everything an epoch changes lives in one ``nn.Module`` (weights, or the factor
buffers of an ALS model) and, for gradient training, an optimizer, so the driver can copy,
snapshot and restore it without knowing the model. Minibatch gradient training builds on it in
:mod:`ncflab.training.loop`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ncflab.training import distributed
from ncflab.training.options import FitOptions
from ncflab.training.snapshot import Snapshot

if TYPE_CHECKING:  # training/ is below models/: a type, never an import at run time
    from ncflab.models.base import Recommender

__all__ = ["EpochFn", "NonFiniteLossError", "last_loss", "run_epochs"]

log = logging.getLogger(__name__)

# One epoch of training: given its number (from 1), returns its training loss.
EpochFn = Callable[[int], float]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def run_epochs(
    model: Recommender,
    module: nn.Module,
    epoch_fn: EpochFn,
    *,
    epochs: int,
    options: FitOptions,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
    validate_start: bool = False,
    rng: np.random.Generator | None = None,
    rng_state: Callable[[], dict] | None = None,
) -> list[dict]:
    """Run ``epoch_fn(epoch)`` for epochs 1 to ``epochs``, which trains ``module`` (and
    ``optimizer``) one epoch and returns its loss; returns (and stores as ``model.history_``)
    one record per epoch: ``{"epoch", "loss", "metrics", "seconds", "eval_seconds"}`` (the
    epoch's loss, the validation metrics or ``{}``, training and validation wall time).

    Seeds torch's global generator from ``model.seed`` (dropout and other in-module noise).
    With ``options.validate``, metrics are computed every ``options.eval_every`` epochs and at
    the last epoch; training stops once ``options.monitor`` has not improved for
    ``options.patience`` epochs, and the state of ``module`` at the best validated epoch is
    restored (and written with ``model.save`` to ``options.checkpoint_dir`` each time a new best
    is found: the model must reflect ``module`` when it is validated). A non-finite epoch loss
    raises ``NonFiniteLossError``.

    Resuming: with ``options.checkpoint_dir`` the driver also writes a snapshot of everything
    that carries from one epoch to the next (``SNAPSHOT_FILE``: the state of ``module``, the
    optimizer's moments, the best epoch so far and its state, the history, torch's generator
    state, the state of ``rng`` and ``state``) after an epoch when ``options.snapshot_seconds``
    have passed since the last one, and when the fit ends. ``options.resume`` continues from it:
    the epochs after the snapshot's are the very epochs an uninterrupted fit would have run, so
    the result is the same (tested bit for bit on CPU). ``state`` is a model's own mutable loop
    state (a dict of JSON values, e.g. Mult-VAE's annealing step count), saved and restored in
    place. ``rng`` is the generator ``epoch_fn`` draws from (None: it draws none), and
    ``rng_state()`` its state as of the start of the next epoch's draws when that is not its
    live state (a sampler that draws ahead). Why: ML-1M runs of the pairwise models take an
    hour; a killed one should not start again from epoch 1.

    ``validate_start=True`` (a module warm-started from other fits, such as pre-trained NeuMF)
    validates the starting state too, as epoch 0 (loss None, no training): early stopping then
    chooses among the start and every trained epoch, so training that only spoils a good start
    is undone, and ``best_epoch_`` 0 says so.
    """
    # 0 epochs only for a warm start, which is a model before any step (a refit of a
    # pre-trained model whose validation kept its start).
    low = 0 if validate_start else 1
    if epochs < low or options.eval_every < 1:
        raise ValueError(
            f"epochs must be an integer >= {low} and eval_every >= 1, got {epochs} and "
            f"{options.eval_every}"
        )
    if not options.snapshot_seconds >= 0:
        raise ValueError(f"snapshot_seconds must be >= 0, got {options.snapshot_seconds}")
    torch.manual_seed(model.seed)
    model.history_ = []
    vars(model).pop("best_epoch_", None)  # a refit must not report the previous fit's best
    best = _Best()
    snapshot = Snapshot(options, model, module, optimizer, best, state, rng, rng_state)
    done_epochs = _resume(snapshot, epochs) if options.resume else 0
    if done_epochs is None:
        return model.history_
    if validate_start and options.validate and not model.history_:
        _validate_start(model, module, options, best)
    if options.validate is None:
        # Said, not silent: without a validation part nothing stops early or picks an epoch.
        log.info("no validation: %s trains all its %d epochs (no early stopping)", model.name,
                 epochs)  # fmt: skip
    options.emit("start", epochs=epochs, done=done_epochs)
    for epoch in range(done_epochs + 1, epochs + 1):
        due = epoch % options.eval_every == 0 or epoch == epochs
        record = _epoch(model, module, epoch_fn, epoch, options, validate=due)
        _keep(record, model, module, options, best)
        if record["metrics"] and epoch - best.epoch >= options.patience_or_default:
            log.info("early stop at epoch %d; best epoch %d", epoch, best.epoch)
            break
        snapshot.after_epoch(epoch, record["loss"])
    if best.state is not None:
        module.load_state_dict(best.state)
    snapshot.finish()
    options.emit("end")
    return model.history_


def _epoch(
    model: Recommender,
    module: nn.Module,
    epoch_fn: EpochFn,
    epoch: int,
    options: FitOptions,
    validate: bool,
) -> dict:
    """Train epoch ``epoch`` and, when ``validate`` (and there is a validator), validate it;
    returns its history record."""
    start = time.perf_counter()
    loss = float(epoch_fn(epoch))
    if not math.isfinite(loss):
        raise NonFiniteLossError(
            f"training loss is {loss} at epoch {epoch} (last finite loss "
            f"{last_loss(model):.6g}); try stronger regularisation (reg)"
        )
    trained = time.perf_counter()
    metrics = _validate(model, module, options) if options.validate and validate else {}
    return {
        "epoch": epoch,
        "loss": loss,
        "metrics": metrics,
        "seconds": trained - start,
        "eval_seconds": time.perf_counter() - trained,
    }


def _resume(snapshot: Snapshot, epochs: int) -> int | None:
    """Restore ``snapshot`` into the live objects; returns the epochs it had done (0 without
    one), or None when its fit had finished (nothing is left to train)."""
    resumed = snapshot.restore()
    if resumed is None:
        log.info("no snapshot to resume from in %s; training from epoch 1", snapshot.path)
        return 0
    if resumed["done"]:
        log.info("resumed a finished fit (%d epochs); nothing left to train", resumed["epoch"])
        return None
    log.info("resumed after epoch %d of %d", resumed["epoch"], epochs)
    return resumed["epoch"]


def last_loss(model: Recommender) -> float:
    """The loss of the last trained epoch in ``model.history_`` (NaN before any)."""
    losses = (r["loss"] for r in reversed(model.history_) if r["loss"] is not None)
    return next(losses, math.nan)


def _validate_start(
    model: Recommender, module: nn.Module, options: FitOptions, best: _Best
) -> None:
    """Epoch 0 of ``validate_start``: the starting weights' validation, as a history record."""
    start = time.perf_counter()
    metrics = _validate(model, module, options)
    record = {"epoch": 0, "loss": None, "metrics": metrics, "seconds": 0.0,
              "eval_seconds": time.perf_counter() - start}  # fmt: skip
    _keep(record, model, module, options, best)


def _keep(
    record: dict,
    model: Recommender,
    module: nn.Module,
    options: FitOptions,
    best: _Best,
) -> None:
    """Add an epoch's ``record`` to the history, keep its weights (and checkpoint them) when
    its validation is the best so far, and report it."""
    model.history_.append(record)
    metrics = record["metrics"]
    if metrics and best.update(record["epoch"], metrics[options.monitor_or_default], module):
        model.best_epoch_ = record["epoch"]
        if options.checkpoint_dir is not None and distributed.is_main():
            model.save(options.checkpoint_dir)
    _report(record, options)


def _validate(model: Recommender, module: nn.Module, options: FitOptions) -> dict[str, float]:
    """The validation metrics of the current weights. Data-parallel: rank 0 computes them and
    every rank receives them, so all make one early-stopping decision."""
    module.eval()
    metrics = None
    if distributed.is_main():
        with torch.no_grad():
            metrics = {k: float(v) for k, v in options.validate(model).items()}
    metrics = distributed.agree(metrics)
    if options.monitor_or_default not in metrics:
        raise KeyError(
            f"monitor {options.monitor_or_default!r} is not among the validation metrics "
            f"{sorted(metrics)}"
        )
    return metrics


class _Best:
    """The best validated epoch so far and a CPU copy of its weights (higher is better)."""

    def __init__(self) -> None:
        self.epoch = 0
        self.value = -math.inf
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, value: float, module: nn.Module) -> bool:
        if not value > self.value:  # NaN never counts as an improvement
            return False
        self.epoch, self.value = epoch, value
        # A copy, not references: the optimizer updates the live tensors in place.
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return True


def _report(record: dict, options: FitOptions) -> None:
    text = " ".join(f"{k}={v:.4f}" for k, v in record["metrics"].items())
    loss = "—" if record["loss"] is None else f"{record['loss']:.4f}"  # epoch 0: no training
    log.info("epoch %s loss=%s %s (%.1fs)", record["epoch"], loss, text, record["seconds"])
    options.emit("epoch", **record)
    if options.on_epoch is not None:
        options.on_epoch(record)
