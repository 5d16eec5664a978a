"""Locating relevant items among the other candidates (``metrics.rank_relevant``): counting
the candidates at or above each relevant score against sorting each row once, per number of
relevant items a row (R) and candidates a row (C).

    python benchmarks/bench_rank.py --repeat 15 --out results/speed/rank.jsonl

Rows of standard normal scores, 5 % of the slots -inf (masked), float32, one thread; shapes as
(users in a batch, C): ``256x3706`` a full-ranking batch of ML-1M, ``8192x100`` a sampled batch
(99 negatives and the held-out item), ``64x40000`` a large catalogue. A line per shape, R and
way with the median milliseconds of ``--repeat`` calls, the two ways interleaved.
``metrics.COUNT_UP_TO`` and ``_counting_is_cheaper`` are set from these crossovers.

``--neg-inf``: instead, counting each row's -inf slots, torch's ``(x == -inf).sum(1)`` against
``metrics._count_neg_inf`` (numpy's ``count_nonzero`` on CPU), per shape (``1024x9242``: a
full-ranking batch of 1,024 users at the Yelp split's 9,242 items); ``equal`` says whether
the two counts agree.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from harness import emit, parser, setup

from ncflab.evaluation import metrics

SHAPES = {
    "256x3706": (256, 3706), "8192x100": (8192, 100), "64x40000": (64, 40000),
    "1024x9242": (1024, 9242),
}  # fmt: skip


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES)[:3], choices=list(SHAPES))
    p.add_argument("--relevant", type=int, nargs="+", default=[1, 2, 4, 8, 16, 24, 32])
    p.add_argument("--neg-inf", action="store_true", help="time counting -inf slots instead")
    args = p.parse_args()
    setup(args)
    rng = np.random.default_rng(0)
    if args.neg_inf:
        return neg_inf(args, rng)
    chosen = metrics._counting_is_cheaper
    for shape in args.shapes:
        b, c = SHAPES[shape]
        other = torch.from_numpy(rng.standard_normal((b, c)).astype(np.float32))
        other[torch.from_numpy(rng.random((b, c)) < 0.05)] = float("-inf")
        for r in args.relevant:
            rel = torch.from_numpy(rng.standard_normal((b, r)).astype(np.float32))
            valid = torch.ones(b, r, dtype=torch.bool)
            times: dict[str, list[float]] = {"count": [], "sort": []}
            for _ in range(args.repeat):
                for way in times:
                    metrics._counting_is_cheaper = lambda n, m, way=way: way == "count"
                    t0 = time.perf_counter()
                    metrics.rank_relevant(rel, valid, other)
                    times[way].append(time.perf_counter() - t0)
            metrics._counting_is_cheaper = chosen
            for way, ts in times.items():
                emit(args, model="rank_relevant", dataset=shape, seconds=statistics.median(ts),
                     batch=b, runs=args.repeat, way=way, relevant=r, candidates=c,
                     chosen="count" if chosen(r, c) else "sort")  # fmt: skip


def neg_inf(args, rng: np.random.Generator) -> None:
    for shape in args.shapes:
        b, c = SHAPES[shape]
        other = torch.from_numpy(rng.standard_normal((b, c)).astype(np.float32))
        other[torch.from_numpy(rng.random((b, c)) < 0.05)] = float("-inf")
        ways = {"torch sum": lambda x=other: (x == float("-inf")).sum(1),
                "numpy count_nonzero": lambda x=other: metrics._count_neg_inf(x)}  # fmt: skip
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.repeat):
            for way, fn in ways.items():
                t0 = time.perf_counter()
                fn()
                times[way].append(time.perf_counter() - t0)
        equal = bool(torch.equal(*(fn() for fn in ways.values())))
        for way, ts in times.items():
            emit(args, model="count -inf", dataset=shape, seconds=statistics.median(ts), batch=b,
                 runs=args.repeat, way=way, candidates=c, equal=equal)  # fmt: skip


if __name__ == "__main__":
    main()
