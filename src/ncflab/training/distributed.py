"""Data-parallel training over processes started by ``torchrun`` (``torch.distributed``).

``torchrun --nproc-per-node N -m ncflab train …`` starts N copies of one run; ``session``
joins them into a process group (gloo on CPU, NCCL on CUDA, each rank on the GPU of its local
rank). The one training loop (:mod:`ncflab.training.loop`) then makes every minibatch step a
data-parallel step:

- every rank draws the same epoch from the same seeded generator (the sampling is vectorised
  and cheap next to training) and trains on its own share of the minibatches (``shard``): rank
  r takes the r-th of every N consecutive ones, so each step of the fit is N minibatches, one
  per rank, and an epoch has 1/N of the steps. Why draw the same epoch everywhere: the
  sampler's state is then one state, which rank 0's snapshot holds for every rank, so resuming
  is exact as in one process;
- after each backward pass the gradients are averaged over the ranks (``average_gradients``:
  one all-reduce of one flat buffer for the dense ones; the rows an embedding table's sparse
  gradient touched are gathered instead of its whole dense gradient), so every rank takes the
  same optimizer step and the weights stay identical everywhere, bit for bit;
- rank 0 validates and sends the metrics to the others (``agree``), so early stopping decides
  once; rank 0 alone writes checkpoints, snapshots and the run folder.

An effective minibatch of N × ``batch_size`` is what a data-parallel step is: quality is
compared with one process in docs/speed.md. Models without minibatch steps (ALS, the
closed-form models) fit whole on every rank, which gains nothing; they are fitted all the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "agree",
    "average_gradients",
    "broadcast_parameters",
    "env_rank",
    "is_main",
    "launched",
    "rank",
    "reduce_mean",
    "session",
    "shard",
    "share",
    "steps_taken",
    "world_size",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# A rank waits this long for the others at a collective (rank 0 validating or writing while
# the others wait included) before failing instead of hanging for ever.
TIMEOUT = timedelta(hours=2)


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as ``torchrun`` set it (0 outside torchrun), readable before
    ``session`` (a front end quietens the other ranks' output with it)."""
    return int(os.environ.get("RANK", "0"))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes (rank 0, or the only process)."""
    return rank() == 0


@contextmanager
def session(device: torch.device) -> Iterator[int]:
    """Join the process group of a ``torchrun`` launch for the duration of a run (nothing to
    do outside one, or when the caller already joined one); yields this process's rank.
    ``device`` is where the run trains: CUDA uses NCCL with each rank on the GPU of its local
    rank (a bare "cuda" device then means that GPU), CPU uses gloo."""
    if not launched() or dist.is_initialized():
        yield rank()
        return
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    log.info("rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), dist.get_backend())
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()


def shard(batches: Iterable[T]) -> Iterator[T]:
    """This rank's minibatches of an epoch: the r-th of every N consecutive ones. Every rank
    gets the same number (each step is a collective): when the epoch's count is not a multiple
    of N, the ranks short of one in the last group take the epoch's first minibatches again
    (as torch's DistributedSampler pads), so no minibatch is left out."""
    return share(batches, rank(), world_size())


def share(batches: Iterable[T], r: int, n: int) -> Iterator[T]:
    """Rank ``r`` of ``n``'s minibatches of ``batches`` (``shard`` for a given rank)."""
    if n == 1:
        yield from batches
        return
    first: list[T] = []
    group: list[T] = []
    for batch in batches:
        if len(first) < n:
            first.append(batch)
        group.append(batch)
        if len(group) == n:
            yield group[r]
            group = []
    if group:  # the last, short group: fill it from the start of the epoch
        yield group[r] if r < len(group) else first[(r - len(group)) % len(first)]


def broadcast_parameters(module: nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers (they are equal when every rank
    built the module from one seed; this guards a start that was not, such as a warm start)."""
    if not active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


_steps = 0

# Sparse row gradients are gathered (rows only) when their tables' dense form is at least this
# large, and densified into the one all-reduce below it. Why a threshold: gathering costs three
# collectives a step instead of one, a latency that small tables do not repay. Measured with
# NeuMF's tables, 2 gloo processes, 512 rows a table a step (benchmarks/bench_allreduce.py,
# docs/speed.md): 0.9 MB (ML-1M) dense 3.0 ms vs gathered 4.2 ms; 7.4 MB (ML-10M's shape)
# 10.8 vs 4.9 ms; 126 MB (Amazon Electronics' shape) 204 vs 5.5 ms.
GATHER_ABOVE_BYTES = 2 << 20


def steps_taken() -> int:
    """Data-parallel steps this process has taken (a run tells from it whether a fit had any)."""
    return _steps


def average_gradients(params: list[nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the ranks.

    Dense gradients go in one all-reduce of one flat buffer (a parameter a rank's minibatch
    did not reach counts as a zero gradient there). Sparse row gradients (embedding tables
    under ``RowAdam`` or SGD) of large tables are gathered instead of densified: every rank
    sends the rows its minibatch touched, and each rank's gradient becomes all ranks' rows, in
    rank order, their values divided by N. Why: a table's dense gradient is the whole table
    (hundreds of MB at Amazon Electronics' 1.2 M users), while a step touches a few thousand
    rows; summing the gathered rows (``RowAdam``'s ``index_add_``, SGD's sparse update) is the
    same mean up to float rounding, and every rank gets the same rows in the same order, so the
    ranks stay identical. Small tables go into the all-reduce (``GATHER_ABOVE_BYTES``).
    """
    global _steps
    world = world_size()
    if world == 1:
        return
    _steps += 1
    device = params[0].device if params else torch.device("cpu")
    sparse = [False] * len(params)
    rows = torch.zeros((world, 0), dtype=torch.int64)
    if _gathers(params, device):
        # Per rank and parameter: touched rows of a sparse gradient, -1 dense, -2 none.
        # Gathered first: the sparse buffers' sizes differ between ranks, and a parameter is
        # gathered as sparse rows when its gradient is sparse on any rank.
        counts = torch.tensor(
            [-2 if p.grad is None else p.grad._nnz() if p.grad.is_sparse else -1
             for p in params],
            dtype=torch.int64,
            device=device,
        )  # fmt: skip
        every = _all_gather(counts, world)
        rows = every.clamp_min(0)
        sparse = (every >= 0).any(0).tolist()
        for p, is_sparse, kinds in zip(params, sparse, every.T.tolist(), strict=True):
            if is_sparse and -1 in kinds:
                raise RuntimeError(f"a parameter of shape {tuple(p.shape)} has a sparse "
                                   "gradient on some ranks and a dense one on others")  # fmt: skip
    dense = [p for p, s in zip(params, sparse, strict=True) if not s]
    if dense:
        grads = [
            torch.zeros_like(p) if p.grad is None else p.grad.to_dense() if p.grad.is_sparse
            else p.grad for p in dense
        ]  # fmt: skip
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for p in dense:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p)
            offset += n
    if any(sparse):
        _gather_rows([p for p, s in zip(params, sparse, strict=True) if s],
                     rows[:, torch.tensor(sparse, device=device)], world)  # fmt: skip


# (GATHER_ABOVE_BYTES, the parameters' ids) → whether their sparse gradients are gathered:
# one small entry per fit.
_gather_choice: dict[tuple, bool] = {}


def _gathers(params: list[nn.Parameter], device: torch.device) -> bool:
    """Whether this fit's sparse row gradients are gathered: their tables (the parameters
    whose gradient is sparse or absent) reach ``GATHER_ABOVE_BYTES`` on some rank. Agreed once
    per fit (one all-reduce at its first step, then remembered), because every rank must call
    the same collectives, and which gradients are absent can differ between ranks (a dense
    parameter a rank's minibatch did not reach)."""
    key = (GATHER_ABOVE_BYTES, tuple(id(p) for p in params))
    if key not in _gather_choice:
        mine = sum(p.numel() * p.element_size() for p in params
                   if p.grad is None or p.grad.is_sparse)  # fmt: skip
        most = torch.tensor([mine], dtype=torch.int64, device=device)
        dist.all_reduce(most, op=dist.ReduceOp.MAX)
        _gather_choice[key] = int(most) >= GATHER_ABOVE_BYTES
    return _gather_choice[key]


def _gather_rows(params: list[nn.Parameter], rows: torch.Tensor, world: int) -> None:
    """Every rank's sparse row gradients of ``params`` (``rows``: (world, P) rows per rank and
    parameter), concatenated in rank order with the values divided by ``world``: one gather of
    a buffer padded to the largest rank's, a row's index carried in its first columns (the
    int64's bytes, moved as they are)."""
    dtype, device = params[0].dtype, params[0].device
    width = [p[0].numel() if p.dim() > 0 and len(p) else 0 for p in params]
    most = int(rows.sum(1).max())
    if most == 0:
        for p in params:
            p.grad = None
        return
    k = 8 // torch.empty((), dtype=dtype).element_size()  # columns that hold an int64
    buf = torch.zeros((most, k + max(width)), dtype=dtype, device=device)
    offset = 0
    for p, w in zip(params, width, strict=True):
        g = p.grad
        if g is None:
            continue
        n = g._nnz()
        buf[offset : offset + n, :k] = g._indices()[0].contiguous().view(dtype).view(n, k)
        buf[offset : offset + n, k : k + w] = g._values().reshape(n, w)
        offset += n
    every = _all_gather(buf, world)  # (world, most, k + width)
    index = every[:, :, :k].contiguous().view(torch.int64)[..., 0]  # (world, most)
    starts = torch.cumsum(rows, 1) - rows  # (world, P): where each parameter's rows begin
    table, begin = rows.tolist(), starts.tolist()
    for j, (p, w) in enumerate(zip(params, width, strict=True)):
        pieces = [(begin[r][j], table[r][j]) for r in range(world)]
        idx = torch.cat([index[r, a : a + n] for r, (a, n) in enumerate(pieces)])
        val = torch.cat([every[r, a : a + n, k : k + w] for r, (a, n) in enumerate(pieces)])
        p.grad = torch.sparse_coo_tensor(idx[None], val.reshape(-1, *p.shape[1:]) / world,
                                         p.shape, check_invariants=False)  # fmt: skip


def _all_gather(tensor: torch.Tensor, world: int) -> torch.Tensor:
    """(world, *shape): every rank's equally shaped ``tensor``, stacked in rank order (gathered
    as one concatenation along the first dimension, the form gloo takes)."""
    out = torch.empty((world * len(tensor), *tensor.shape[1:]), dtype=tensor.dtype,
                      device=tensor.device)  # fmt: skip
    dist.all_gather_single(out, tensor.contiguous())
    return out.view(world, *tensor.shape)


def reduce_mean(total: float, count: int) -> tuple[float, int]:
    """The sum and count of a quantity over every rank (an epoch's losses)."""
    if not active():
        return total, count
    # NCCL reduces CUDA tensors only.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    both = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(both)
    return float(both[0]), int(both[1])


def agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (what rank 0 alone computed, such as validation
    metrics); other ranks pass None."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
