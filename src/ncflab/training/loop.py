"""The minibatch loop: ``run_epochs`` (:mod:`ncflab.training.driver`) for gradient training.

A model builds its ``nn.Module`` and optimizer, then hands over ``batches(rng)``, which yields
one epoch of minibatches (tuples of tensors already on the device), and ``loss_fn(*batch)``,
the scalar loss of one minibatch; ``train_loop`` owns the optimizer steps, the sampler's random
generator and the prefetching of the next epoch's sampling, and the driver everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ncflab.training import distributed
from ncflab.training.driver import NonFiniteLossError, last_loss, run_epochs
from ncflab.training.options import FitOptions

if TYPE_CHECKING:  # training/ is below models/: a type, never an import at run time
    from ncflab.models.base import Recommender

__all__ = ["BatchFn", "LossFn", "minibatches", "train_loop"]

log = logging.getLogger(__name__)

# Steps between progress events within an epoch (a front end shows a long epoch advancing).
STEP_EVERY = 100

BatchFn = Callable[[np.random.Generator], Iterable[tuple[torch.Tensor, ...]]]
LossFn = Callable[..., torch.Tensor]


def minibatches(
    arrays: tuple[np.ndarray, ...], batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Slices of ``batch_size`` rows of an epoch's sampled ``arrays`` (equal lengths), each as
    tensors on ``device``: the epoch is sampled at once (vectorised) and moved once, then sliced,
    rather than moved minibatch by minibatch."""
    tensors = [torch.from_numpy(a).to(device) for a in arrays]
    for s in range(0, len(tensors[0]), batch_size):
        yield tuple(t[s : s + batch_size] for t in tensors)


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

    Under ``torchrun`` (:mod:`ncflab.training.distributed`) each rank trains on its share of
    every epoch's minibatches and the gradients are averaged over the ranks at every step.
    """
    distributed.broadcast_parameters(module)
    rng = np.random.default_rng(model.seed)
    with _Epochs(batches, rng, prefetch) as source:

        def epoch_fn(epoch: int) -> float:
            epoch_batches = source.next_epoch(more=epoch < epochs)
            return _run_epoch(
                module, optimizer, epoch_batches, loss_fn, epoch, last_loss(model), options
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
    params = [p for p in module.parameters() if p.requires_grad]
    for step, batch in enumerate(distributed.shard(batches), 1):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(*batch)
        loss.backward()
        distributed.average_gradients(params)
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
    # The epoch's loss over every rank's minibatches (one process: its own mean).
    total, count = distributed.reduce_mean(float(values.double().sum()), len(values))
    return total / count
