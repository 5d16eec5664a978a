"""Training speed, peak memory and ranking latency of DMF (default configuration).

    python benchmarks/bench_dmf.py --data-dir /work/shared/data [--datasets ml-1m]
        [--threads-list 1 2] [--repeat 3] [--steps 40] [--batch-sizes 4096 256] [--n-neg 4]
        [--threads 1] [--out FILE]

For each dataset, thread count and batch size, one JSON line (``what`` "epoch"): the time of
``--steps`` training steps taken exactly as ``DMF.fit`` takes them (a fraction of an epoch,
after one untimed warm-up step; ``seconds`` is the epoch time extrapolated from it, ``step_ms``
the time per step), samples per second (positives and their ``n_neg`` negatives), the median
of ``--repeat`` runs. Then per dataset and thread count (``what`` "top10"): the latency of a
top-10 list for one user over all items (median over 200 users, item vectors cached as in
evaluation). ``peak_mb`` is the process's max RSS so far (it includes every earlier dataset).
Data is the whole data set as training input (a leave-one-out split's epoch is ~1% shorter).
Target: an ML-1M epoch under 60 s on a 2-core CPU.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from harness import add_threads_list, emit, parser, setup, thread_counts

from ncflab.data.datasets import load_dataset
from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.models.dmf import DMF, dmf_loss


def untrained(train: Interactions, model: DMF) -> DMF:
    """``model`` set up on ``train`` as ``fit`` does it, with its initial weights."""
    y = model._input_matrix(train)
    model.n_users_, model.n_items_ = train.n_users, train.n_items
    model.indptr_, model.indices_, model.data_ = y.indptr, y.indices, y.data
    model.max_rating_ = float(y.data.max())
    model.build(train.n_users, train.n_items)
    return model


def time_steps(train: Interactions, model: DMF, steps: int) -> tuple[float, int]:
    """Seconds for ``steps`` training steps of ``model`` as ``DMF.fit`` takes them (after one
    untimed warm-up step), and the number of steps in a full epoch."""
    model = untrained(train, model)
    graph, m = model._graph(torch.device("cpu")), model.module_
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=model.lr, fused=True)
    sampler = NegativeSampler.from_csr(model._input_matrix(train))
    users, pos, neg = bpr_triplets(sampler, np.random.default_rng(model.seed), model.n_neg)
    users, pos, neg = (torch.from_numpy(a) for a in (users, pos, neg))
    target = torch.full((len(users),), 0.8)  # the value does not change the cost
    bs = model.batch_size
    n_steps = -(-len(users) // bs)
    steps = min(steps, n_steps - 1)

    def step(s: int) -> None:
        b = slice(s * bs, (s + 1) * bs)
        opt.zero_grad(set_to_none=True)
        cos = m.train_cosines(graph, users[b], torch.cat([pos[b, None], neg[b]], 1))
        targets = torch.zeros_like(cos)
        targets[:, 0] = target[b]
        dmf_loss(cos, targets).backward()
        opt.step()

    step(0)
    start = time.perf_counter()
    for s in range(1, steps + 1):
        step(s)
    return (time.perf_counter() - start) / steps, n_steps


def top10_latency(model: DMF, n_users: int, rng: np.random.Generator) -> float:
    """Median seconds to score all items for one user and take its top 10."""
    model.score(np.array([0]))  # warm the item cache, as every evaluation after training does
    times = []
    for u in rng.integers(0, n_users, 200):
        t0 = time.perf_counter()
        torch.topk(model.score(np.array([u]))[0], 10)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--datasets", nargs="+", default=["ml-1m"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[DMF().batch_size])
    p.add_argument("--n-neg", type=int, default=DMF().n_neg)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("the steps are timed on the CPU only")
    setup(args)
    for name in args.datasets:
        train = load_dataset(name, data_dir=args.data_dir, download=False)
        for at in thread_counts(args):
            for bs in args.batch_sizes:
                model = DMF(batch_size=bs, n_neg=args.n_neg)
                runs = [
                    time_steps(train, model.clone(seed=s), args.steps) for s in range(args.repeat)
                ]
                per_step, n_steps = float(np.median([t for t, _ in runs])), runs[0][1]
                epoch = per_step * n_steps
                emit(
                    at, model="dmf", dataset=name, seconds=epoch, batch=bs, runs=len(runs),
                    samples=len(train) * (1 + args.n_neg), what="epoch", extrapolated=True,
                    step_ms=round(per_step * 1e3, 2), steps_timed=min(args.steps, n_steps - 1),
                    steps_per_epoch=n_steps, n_neg=args.n_neg,
                    positives_per_s=round(len(train) / epoch),
                )  # fmt: skip
            latency = top10_latency(
                untrained(train, DMF()), train.n_users, np.random.default_rng(0)
            )
            emit(at, model="dmf", dataset=name, seconds=latency, runs=200, what="top10",
                 ms=round(latency * 1e3, 3), items=train.n_items)  # fmt: skip


if __name__ == "__main__":
    main()
