"""The one epoch driver every iterative model uses, and the minibatch loop built on it.

``run_epochs`` runs a model's epochs: ``epoch_fn(epoch)`` trains one epoch and returns its loss,
the driver owns everything else: seeding, non-finite loss detection, validation, early
stopping, restoring the best epoch, checkpoints, resumable snapshots, progress and the history
of epoch records. Everything an epoch changes lives in one ``nn.Module`` (weights, or the factor
buffers of an ALS model) and, for gradient training, an optimizer, so the driver can copy,
snapshot and restore it without knowing the model.

``train_loop`` is that driver for minibatch gradient training: a model builds its ``nn.Module``
and optimizer, then hands over ``batches(rng)``, which yields one epoch of minibatches (tuples
of tensors already on the device), and ``loss_fn(*batch)``, the scalar loss of one minibatch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ncflab.training.options import FitOptions
from ncflab.training.snapshot import SNAPSHOT_FILE, Snapshot

if TYPE_CHECKING:  # training/ is below models/: a type, never an import at run time
    from ncflab.models.base import Recommender

__all__ = [
    "SNAPSHOT_FILE",
    "BatchFn",
    "EpochFn",
    "LossFn",
    "NonFiniteLossError",
    "minibatches",
    "run_epochs",
    "train_loop",
]

log = logging.getLogger(__name__)

# Steps between progress events within an epoch (a front end shows a long epoch advancing).
STEP_EVERY = 100

BatchFn = Callable[[np.random.Generator], Iterable[tuple[torch.Tensor, ...]]]
LossFn = Callable[..., torch.Tensor]
# One epoch of training: given its number (from 1), returns its training loss.
EpochFn = Callable[[int], float]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def minibatches(
    arrays: tuple[np.ndarray, ...], batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Slices of ``batch_size`` rows of an epoch's sampled ``arrays`` (equal lengths), each as
    tensors on ``device``: the epoch is sampled at once (vectorised) and moved once, then sliced,
    rather than moved minibatch by minibatch."""
    tensors = [torch.from_numpy(a).to(device) for a in arrays]
    for s in range(0, len(tensors[0]), batch_size):
        yield tuple(t[s : s + batch_size] for t in tensors)


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
            f"{_last_loss(model):.6g}); try stronger regularisation (reg)"
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


def _last_loss(model: Recommender) -> float:
    """The loss of the last trained epoch in ``model.history_`` (NaN before any)."""
    losses = (r["loss"] for r in reversed(model.history_) if r["loss"] is not None)
    return next(losses, math.nan)


def train_loop(
    model: Recommender,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: BatchFn,
    loss_fn: LossFn,
    *,
    epochs: int,
    options: FitOptions,
    prefetch: bool = False,
    state: dict[str, Any] | None = None,
    validate_start: bool = False,
) -> list[dict]:
    """Train ``module`` by minibatch gradient steps for up to ``epochs`` epochs with
    ``run_epochs`` (validation, early stopping, checkpoints, snapshots, resuming, progress and
    ``validate_start`` as it describes); an epoch's loss is its mean minibatch loss.

    ``batches`` receives ``np.random.default_rng(model.seed)`` (sampling), so a fit is
    repeatable; its state is part of the snapshot. A non-finite minibatch loss raises
    ``NonFiniteLossError`` naming the epoch and step.

    ``prefetch=True`` promises that ``batches(rng)`` makes all its random draws before it
    yields its first minibatch (an epoch sampled at once, as ``minibatches`` expects). The loop
    then starts the next epoch's ``batches`` (up to its first minibatch) in a background thread
    while this epoch trains and validates: the draws are the same, in the same order, so a fit is
    identical with or without it, and the sampling (numpy, which releases the GIL) runs on a
    second core. Why: sampling an epoch of NCF's 4.9 M ML-1M samples takes ~1.5 s of a ~20 s
    epoch. The cost: two epochs' samples are held at once (on the device, if ``batches`` moves
    them there). A ``batches`` that draws between minibatches must not set it: the thread
    would interleave its draws with the next epoch's.
    """
    rng = np.random.default_rng(model.seed)
    with _Epochs(batches, rng, prefetch) as source:

        def epoch_fn(epoch: int) -> float:
            epoch_batches = source.next_epoch(more=epoch < epochs)
            return _run_epoch(
                module, optimizer, epoch_batches, loss_fn, epoch, _last_loss(model), options
            )

        return run_epochs(
            model,
            module,
            epoch_fn,
            epochs=epochs,
            options=options,
            optimizer=optimizer,
            state=state,
            validate_start=validate_start,
            rng=rng,
            rng_state=source.rng_state,
        )


class _Epochs:
    """``next_epoch(more)`` gives the next epoch's minibatches; with ``prefetch`` the epoch after
    it (when ``more``) is started in a background thread first (see ``train_loop``). Leaving
    the context waits for a started epoch, so no draw outlives the fit."""

    def __init__(self, batches: BatchFn, rng: np.random.Generator, prefetch: bool) -> None:
        self.batches, self.rng = batches, rng
        self.pool = ThreadPoolExecutor(1, "ncflab-sampler") if prefetch else None
        self.pending: Future | None = None
        self.next_state: dict = {}

    def _start(self) -> tuple[list[tuple[torch.Tensor, ...]], Iterator]:
        it = iter(self.batches(self.rng))
        return list(islice(it, 1)), it

    def __enter__(self) -> _Epochs:
        return self

    def next_epoch(self, more: bool) -> Iterable[tuple[torch.Tensor, ...]]:
        if self.pool is None:
            return self.batches(self.rng)
        first, it = self.pending.result() if self.pending else self._start()
        # This epoch has made all its draws (the prefetch promise): the state now is the one
        # the next epoch's draws start from, which a snapshot after this epoch must keep.
        self.next_state = self.rng.bit_generator.state
        self.pending = self.pool.submit(self._start) if more else None
        return chain(first, it)

    def rng_state(self) -> dict:
        """The sampler's state as of the start of the next epoch's draws (called after an
        epoch: without prefetch the epoch's draws are over, with it the next ones may be on)."""
        return self.next_state if self.pool is not None else self.rng.bit_generator.state

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _run_epoch(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, ...]],
    loss_fn: LossFn,
    epoch: int,
    last_finite: float,
    options: FitOptions,
) -> float:
    """One pass over ``batches``; returns the mean minibatch loss.

    Losses stay on the device until the epoch ends, because reading each one back (``.item()``)
    would synchronise a GPU every step; a non-finite loss is located afterwards.
    """
    module.train()
    losses = []
    report = options.on_progress is not None
    for step, batch in enumerate(batches, 1):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(*batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        if report and step % STEP_EVERY == 0:
            options.emit("step", epoch=epoch, step=step)
    if not losses:
        raise ValueError(f"epoch {epoch} produced no minibatches; is the training data empty?")
    values = torch.stack(losses).float().cpu()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0, 0])
        before = float(values[step - 1]) if step > 0 else last_finite
        raise NonFiniteLossError(
            f"training loss is {float(values[step])} at epoch {epoch}, step {step + 1} "
            f"(last finite loss {before:.6g}); try a lower learning rate (lr) or stronger reg"
        )
    return float(values.mean())


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
        if options.checkpoint_dir is not None:
            model.save(options.checkpoint_dir)
    _report(record, options)


def _validate(model: Recommender, module: nn.Module, options: FitOptions) -> dict[str, float]:
    module.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in options.validate(model).items()}
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
