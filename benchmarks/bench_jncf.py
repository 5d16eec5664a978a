"""Training speed, peak memory and ranking latency of J-NCF (default configuration).

    python benchmarks/bench_jncf.py --data-dir /work/shared/data [--datasets ml-100k ml-1m]
        [--threads-list 1 2] [--repeat 3] [--steps 200] [--batch-sizes 256]
        [--fit-epoch ml-100k] [--threads 1] [--out FILE]

For each dataset, thread count and batch size, one JSON line (``what`` "epoch"): the time of
``--steps`` training steps (a fraction of an epoch; ``seconds`` is the epoch time extrapolated
from it, ``step_ms`` the time per step), samples per second (positives, each with its 4
negatives), the median of ``--repeat`` runs. Per dataset and thread count, the datasets in
``--fit-epoch`` (ml-100k by default) also run one real ``fit`` epoch to check the extrapolation
(``what`` "fit-epoch", setup included), and the latency of a top-10 list for one user over all
items (``what`` "top10", median over 200 users, with the item side cached as in evaluation).
``peak_mb`` is the process's max RSS so far (it includes every earlier dataset). Data is the
whole data set as training input (the epoch of a leave-one-out split is ~1% shorter).
Targets: ML-1M epoch < 30 s on a 2-core CPU, peak memory < 4 GB, top-10 < 5 ms.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from harness import add_threads_list, emit, parser, setup, thread_counts

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
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[256])
    p.add_argument("--fit-epoch", nargs="*", default=["ml-100k"], help="also time a real epoch")
    args = p.parse_args()
    if args.device != "cpu":
        p.error("the steps are timed on the CPU only")
    setup(args)
    for name in args.datasets:
        train = load_dataset(name, data_dir=args.data_dir, download=False)
        for at in thread_counts(args):
            for bs in args.batch_sizes:
                runs = [time_steps(train, bs, args.steps, seed) for seed in range(args.repeat)]
                n_steps = runs[0][1]
                per_step = float(np.median([t / min(args.steps, n_steps) for t, _ in runs]))
                epoch = per_step * n_steps
                emit(
                    at, model="jncf", dataset=name, seconds=epoch, batch=bs, runs=len(runs),
                    samples=len(train) * 5, what="epoch", extrapolated=True,
                    step_ms=round(per_step * 1e3, 2), steps_timed=min(args.steps, n_steps),
                    steps_per_epoch=n_steps, n_neg=4, positives_per_s=round(len(train) / epoch),
                )  # fmt: skip
            # Latency does not depend on the weights: fit one epoch only where asked.
            model = untrained(train, JNCF(epochs=1))
            if name in args.fit_epoch:
                t0 = time.perf_counter()
                model.fit(train, FitOptions(device="cpu"))
                emit(at, model="jncf", dataset=name, seconds=time.perf_counter() - t0,
                     batch=model.batch_size, what="fit-epoch")  # fmt: skip
            latency = top10_latency(model, train.n_users, np.random.default_rng(0))
            emit(at, model="jncf", dataset=name, seconds=latency, runs=200, what="top10",
                 ms=round(latency * 1e3, 3), items=train.n_items)  # fmt: skip


if __name__ == "__main__":
    main()
