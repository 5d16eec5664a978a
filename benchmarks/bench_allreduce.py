"""A data-parallel step's gradient averaging (``distributed.average_gradients``) on NeuMF's
parameters, embedding tables' sparse row gradients gathered against densified into the one
all-reduce, at ML-1M's and Amazon Electronics' shapes.

    python benchmarks/bench_allreduce.py --processes 2 --steps 50 \
        --out results/speed/allreduce.jsonl

N gloo processes on this machine (torch.multiprocessing), each with NeuMF's default parameters
(factors 8: GMF tables users × 8 and items × 8, MLP tables users × 16 and items × 16, tower
32 → 32 → 16 → 8 and the output layer) and, per step, sparse row gradients of ``--batch``
looked-up rows a table (the instances of one rank's minibatch, duplicates kept, as
``nn.Embedding(sparse=True)`` gives them) plus dense tower gradients. Both ways are timed in
one run, alternating step by step, ``--steps`` steps each after 3 warm-up steps; a line per
shape and way with the median seconds a step on rank 0. Why this and not whole fits: the
threshold ``GATHER_ABOVE_BYTES`` chooses between the ways by table size, and that choice is
the collective's cost alone.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from harness import emit, parser, setup
from torch import nn

from ncflab.training import distributed

SHAPES = {
    "ml-1m": (6_040, 3_706),
    "ml-10m": (69_878, 10_677),
    "ml-20m": (138_493, 26_744),
    "amazon-electronics": (1_221_341, 157_003),
}
WAYS = {"gather rows": 0, "dense all-reduce": 1 << 62}  # GATHER_ABOVE_BYTES for each way


def parameters(users: int, items: int) -> list[nn.Parameter]:
    tables = [(users, 8), (items, 8), (users, 16), (items, 16)]
    dense = [(32, 32), (32,), (16, 32), (16,), (8, 16), (8,), (1, 16), (1,)]
    return [nn.Parameter(torch.zeros(s)) for s in tables + dense]


def fill(params: list[nn.Parameter], batch: int, gen: torch.Generator) -> None:
    """A minibatch's gradients: sparse rows for the four tables, dense for the tower."""
    for p in params[:4]:
        rows = torch.randint(len(p), (batch,), generator=gen)
        values = torch.randn(batch, p.shape[1], generator=gen)
        p.grad = torch.sparse_coo_tensor(rows[None], values, p.shape, check_invariants=False)
    for p in params[4:]:
        p.grad = torch.randn(p.shape, generator=gen)


def worker(rank: int, world: int, store: str, args: dict, out: list) -> None:
    torch.set_num_threads(args["threads"])
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    gen = torch.Generator().manual_seed(rank)
    for shape, (users, items) in SHAPES.items():
        if shape not in args["shapes"]:
            continue
        params = parameters(users, items)
        times: dict[str, list[float]] = {w: [] for w in WAYS}
        for step in range(3 + args["steps"]):
            for way, threshold in WAYS.items():
                fill(params, args["batch"], gen)
                distributed.GATHER_ABOVE_BYTES = threshold
                dist.barrier()
                t0 = time.perf_counter()
                distributed.average_gradients(params)
                if step >= 3:
                    times[way].append(time.perf_counter() - t0)
        if rank == 0:
            table_mb = sum(p.numel() * 4 for p in params[:4]) / 2**20
            out.append({w: statistics.median(t) for w, t in times.items()} | {
                "shape": shape, "table_mb": round(table_mb, 1)})  # fmt: skip
    dist.destroy_process_group()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=512, help="looked-up rows a table a step")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = p.parse_args()
    setup(args)
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        out = manager.list()
        settings = {"threads": args.threads, "steps": args.steps, "batch": args.batch,
                    "shapes": args.shapes}  # fmt: skip
        mp.spawn(worker, args=(args.processes, f"{tmp}/store", settings, out),
                 nprocs=args.processes)  # fmt: skip
        for row in out:
            for way in WAYS:
                emit(args, model="neumf", dataset=row["shape"], seconds=row[way],
                     batch=args.batch, runs=args.steps, way=way, processes=args.processes,
                     table_mb=row["table_mb"])  # fmt: skip


if __name__ == "__main__":
    main()
