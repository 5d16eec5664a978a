"""Training speed, peak memory and ranking latency of J-NCF (default configuration).

    python benchmarks/bench_jncf.py --data-dir /work/shared/data [--datasets ml-100k ml-1m]
        [--threads 1 2] [--runs 3] [--steps 200] [--batch-sizes 256]

For each dataset and thread count: the time of ``--steps`` training steps (a fraction of an
epoch; the epoch time is extrapolated from it, and ml-100k also runs one real ``fit`` epoch to
check the extrapolation), samples per second (positives, each with its ``n_neg`` negatives),
and the latency of a top-10 list for one user over all items (median over 200 users, with the
item side cached as in evaluation). Medians of ``--runs`` runs. Peak memory is the process's
``ru_maxrss`` at the end (it includes every earlier dataset). Data is the whole data set as
training input (the epoch of a leave-one-out split is ~1% shorter).
Targets (issue 3): ML-1M epoch < 30 s on a 2-core CPU, peak memory < 4 GB, top-10 < 5 ms.
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
from ncflab.models import FitOptions
from ncflab.models.jncf import JNCF
from ncflab.training.losses import hybrid


def untrained(train: Interactions, model: JNCF) -> JNCF:
    """``model`` set up on ``train`` as ``fit`` does it, with its initial weights."""
    ratings = model._input_matrix(train)
    model.n_users_, model.n_items_ = train.n_users, train.n_items
    model.indptr_, model.indices_, model.data_ = ratings.indptr, ratings.indices, ratings.data
    model.build(train.n_users, train.n_items)
    return model


def time_steps(train: Interactions, batch_size: int, steps: int, seed: int) -> tuple[float, int]:
    """Seconds for ``steps`` training steps exactly as ``JNCF.fit`` takes them, and the number
    of steps in a full epoch."""
    model = untrained(train, JNCF(batch_size=batch_size, seed=seed))
    graph, m = model._graph(torch.device("cpu")), model.module_
    ratings = model._input_matrix(train)
    opt = torch.optim.Adam(m.parameters(), lr=model.lr, fused=True)
    users, pos, neg = bpr_triplets(
        NegativeSampler.from_csr(ratings), np.random.default_rng(seed), 4
    )
    users, pos, neg = (torch.from_numpy(a) for a in (users, pos, neg))
    target = torch.ones(len(users))  # the value does not change the cost
    n_steps = -(-len(users) // batch_size)
    start = time.perf_counter()
    for s in range(0, min(steps, n_steps) * batch_size, batch_size):
        b = slice(s, s + batch_size)
        opt.zero_grad(set_to_none=True)
        logits = m.train_logits(graph, users[b], torch.cat([pos[b, None], neg[b]], 1))
        hybrid(logits[:, 0], logits[:, 1:], target[b], logits=True).backward()
        opt.step()
    return time.perf_counter() - start, n_steps


def top10_latency(model: JNCF, n_users: int, rng: np.random.Generator) -> float:
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
    ap.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[256])
    ap.add_argument("--fit-epoch", nargs="*", default=["ml-100k"], help="also time a real epoch")
    args = ap.parse_args()
    for name in args.datasets:
        train = load_dataset(name, data_dir=args.data_dir, download=False)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for bs in args.batch_sizes:
                runs = [time_steps(train, bs, args.steps, seed) for seed in range(args.runs)]
                n_steps = runs[0][1]
                per_step = np.median([t / min(args.steps, n_steps) for t, _ in runs])
                epoch = per_step * n_steps
                print(
                    f"{name} threads={threads} batch={bs}: {per_step * 1e3:.1f} ms/step, "
                    f"epoch ≈ {epoch:.1f} s ({n_steps} steps, from {min(args.steps, n_steps)}), "
                    f"{len(train) / epoch:,.0f} positives/s ({len(train) * 5 / epoch:,.0f} "
                    f"samples/s with 4 negatives)", flush=True,
                )  # fmt: skip
            # Latency does not depend on the weights: fit one epoch only where asked.
            model, fit = untrained(train, JNCF(epochs=1)), ""
            if name in args.fit_epoch:
                t0 = time.perf_counter()
                model.fit(train, FitOptions(device="cpu"))
                fit = f"one real fit epoch {time.perf_counter() - t0:.1f} s; "
            latency = top10_latency(model, train.n_users, np.random.default_rng(0))
            print(
                f"{name} threads={threads}: {fit}top-10 for one user over {train.n_items} "
                f"items {latency * 1e3:.2f} ms",
                flush=True,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (ru_maxrss) {peak:.2f} GB")


if __name__ == "__main__":
    main()
