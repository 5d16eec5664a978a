"""Training speed, peak memory and ranking latency of DMF (default configuration).

    python benchmarks/bench_dmf.py --data-dir /work/shared/data [--datasets ml-1m]
        [--threads 1 2] [--runs 3] [--steps 40] [--batch-sizes 4096 256] [--n-neg 4]

For each dataset, thread count and batch size: the time of ``--steps`` training steps taken
exactly as ``DMF.fit`` takes them (a fraction of an epoch; the epoch time is extrapolated from
it), samples per second (positives and their ``n_neg`` negatives) and the latency of a top-10
list for one user over all items (median over 200 users, item vectors cached as in evaluation).
Medians of ``--runs`` runs. Peak memory is the process's ``ru_maxrss`` at the end (it includes
every earlier dataset). Data is the whole data set as training input (a leave-one-out split's
epoch is ~1% shorter). Target (issue 7): an ML-1M epoch under 60 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--datasets", nargs="+", default=["ml-1m"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[DMF().batch_size])
    ap.add_argument("--n-neg", type=int, default=DMF().n_neg)
    args = ap.parse_args()
    for name in args.datasets:
        train = load_dataset(name, data_dir=args.data_dir, download=False)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for bs in args.batch_sizes:
                model = DMF(batch_size=bs, n_neg=args.n_neg)
                runs = [
                    time_steps(train, model.clone(seed=s), args.steps) for s in range(args.runs)
                ]
                per_step, n_steps = float(np.median([t for t, _ in runs])), runs[0][1]
                epoch = per_step * n_steps
                samples = len(train) * (1 + args.n_neg)
                print(
                    f"{name} threads={threads} batch={bs} n_neg={args.n_neg}: "
                    f"{per_step * 1e3:.1f} ms/step, epoch ≈ {epoch:.1f} s ({n_steps} steps), "
                    f"{samples / epoch:,.0f} samples/s ({len(train) / epoch:,.0f} positives/s)",
                    flush=True,
                )
            latency = top10_latency(
                untrained(train, DMF()), train.n_users, np.random.default_rng(0)
            )
            print(
                f"{name} threads={threads}: top-10 for one user over {train.n_items} items "
                f"{latency * 1e3:.2f} ms",
                flush=True,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (ru_maxrss) {peak:.2f} GB")


if __name__ == "__main__":
    main()
