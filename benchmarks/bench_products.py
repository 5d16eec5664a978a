"""Catalogue-wide products written into padded rows (``ncflab.models.products``) against the
same products as they were: the GEMMs alone, then the models' epochs and full rankings.

    python benchmarks/bench_products.py --data-dir /work/shared/data [--what gemm epoch eval]
        [--models multvae jca cdae uautorec bpr ials] [--dataset ml-1m] [--repeat 5] [--out F]

``gemm``: GFLOP/s of ``bias + a @ b`` at the models' shapes, written plainly (``torch.addmm``)
and into rows padded to a multiple of 8 floats, median of ``--repeat``, interleaved; and whether
the two are bitwise equal. ``epoch``: per model, two fresh fits of one epoch from the same seed,
padding off then on (order alternating over ``--repeat`` rounds), the epoch's wall seconds
(``history_``) and the largest parameter difference between the two fitted models. ``eval``:
one fitted model, full ranking of every test user (top-10 metrics, ``evaluate``), padding off
and on alternating; seconds and whether every metric agrees. ``profile``: one fit of
``--repeat`` epochs per model under ``torch.profiler`` (padding on); the share of the CPU time
in matrix products (``aten::mm``, ``addmm``, ``bmm``) and the five costliest operations.
Padding off is the library with ``products.MIN_WIDTH`` set past every width, i.e.
``torch.addmm``/``torch.mm`` as before.

Data: ``--dataset`` (ML-1M, or ``UxIxR`` synthetic) split by the ``loo-full`` preset
(leave-one-out by time: latest record = test, second latest = valid; ``--protocol`` for another).
Models at the side-by-side configurations where they have one (Mult-VAE 600 → 64, 2,048 users
a step; BPR 64 factors), their defaults otherwise.
"""

from __future__ import annotations

import contextlib
import statistics
import time

import torch
from harness import emit, load_split, parser, setup

from ncflab.evaluation.protocols import evaluate
from ncflab.models import MODELS, FitOptions, products

CONFIG = {
    "multvae": {"dims": [600, 64], "dropout": 0.5, "lr": 1e-3, "batch_size": 2048},
    "bpr": {"factors": 64, "batch_size": 4096, "lr": 1e-3},
}
# (M, K, N): Mult-VAE's decoder at 2,048 users, BPR's ranking of all ML-1M users, JCA's user
# component over a 1,500-user block, the item component over the Yelp split's users.
SHAPES = [(2048, 600, 3706), (6040, 64, 3706), (1500, 160, 3706), (1024, 160, 12991),
          (1024, 600, 9242)]  # fmt: skip


@contextlib.contextmanager
def padding(on: bool):
    """``products.mm`` with (on) or without (off) its padded rows."""
    saved = products.MIN_WIDTH
    products.MIN_WIDTH = saved if on else 1 << 62
    try:
        yield
    finally:
        products.MIN_WIDTH = saved


def gemm(args) -> None:
    gen = torch.Generator().manual_seed(0)
    for m, k, n in SHAPES:
        a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
        bias = torch.randn(n, generator=gen)
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.repeat + 1):
            for on in (False, True) if r % 2 == 0 else (True, False):
                with padding(on):
                    t0 = time.perf_counter()
                    products.mm(a, b, bias)
                    if r:  # the first round warms both up
                        times[on].append(time.perf_counter() - t0)
        with padding(False):
            plain = products.mm(a, b, bias)
        equal = torch.equal(plain, products.mm(a, b, bias))
        flop = 2.0 * m * k * n
        for on in (False, True):
            s = statistics.median(times[on])
            emit(args, model="gemm", dataset=f"{m}x{k}x{n}", seconds=s, runs=len(times[on]),
                 what="gemm", padded=on, gflops=round(flop / s / 1e9, 1),
                 bitwise_equal=equal)  # fmt: skip


def fit(name: str, split, device: str):
    params = CONFIG.get(name, {}) | {"epochs": 1, "seed": 0}
    return MODELS[name](**params).fit(split.train, FitOptions(device=device))


def epochs(args, split) -> None:
    for name in args.models:
        if name in ("ials", "bpr"):  # no catalogue-wide product while training
            continue
        times: dict[bool, list[float]] = {False: [], True: []}
        fitted = {}
        for r in range(args.repeat):
            for on in (False, True) if r % 2 == 0 else (True, False):
                with padding(on):
                    model = fit(name, split, args.device)
                times[on].append(model.history_[0]["seconds"])
                fitted[on] = model
        diff = max(
            float((a - b).abs().max())
            for a, b in zip(fitted[False].module_.state_dict().values(),
                            fitted[True].module_.state_dict().values(), strict=True)
        )  # fmt: skip
        for on in (False, True):
            emit(args, model=name, dataset=args.dataset, seconds=statistics.median(times[on]),
                 runs=len(times[on]), what="epoch", padded=on, max_param_diff=diff,
                 batch=CONFIG.get(name, {}).get("batch_size"))  # fmt: skip


def rankings(args, split) -> None:
    for name in args.models:
        model = fit(name, split, args.device)
        times: dict[bool, list[float]] = {False: [], True: []}
        means = {}
        for r in range(args.repeat + 1):
            for on in (False, True) if r % 2 == 0 else (True, False):
                if hasattr(model, "_clear_caches"):
                    model._clear_caches(keep_graph=True)  # cached item sides recomputed
                with padding(on):
                    t0 = time.perf_counter()
                    result = evaluate(model, split, part="test", ks=(10,), batch_size=1024)
                    if r:
                        times[on].append(time.perf_counter() - t0)
                means[on] = result.means
        same = means[False] == means[True]
        for on in (False, True):
            emit(args, model=name, dataset=args.dataset, seconds=statistics.median(times[on]),
                 runs=len(times[on]), what="eval", padded=on, metrics_equal=same,
                 users=result.n_users, ndcg10=round(means[on]["NDCG@10"], 6))  # fmt: skip


def profiled(args, split) -> None:
    from torch.profiler import profile

    for name in args.models:
        params = CONFIG.get(name, {}) | {"epochs": args.repeat, "seed": 0}
        with profile() as prof:
            MODELS[name](**params).fit(split.train, FitOptions(device=args.device))
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in ops)
        gemm = sum(e.self_cpu_time_total for e in ops if e.key in ("aten::mm", "aten::addmm",
                                                                    "aten::bmm"))  # fmt: skip
        emit(args, model=name, dataset=args.dataset, seconds=total / 1e6, what="profile",
             epochs=args.repeat, gemm_share=round(gemm / total, 3),
             top={e.key: round(e.self_cpu_time_total / total, 3) for e in ops[:5]})  # fmt: skip


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--what", nargs="+", default=["gemm", "epoch", "eval"],
                    choices=["gemm", "epoch", "eval", "profile"])  # fmt: skip
    ap.add_argument("--models", nargs="+", default=["multvae", "jca", "cdae", "uautorec",
                                                     "iautorec", "bpr", "ials"])  # fmt: skip
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--protocol", default="loo-full")
    args = ap.parse_args()
    setup(args)
    if "gemm" in args.what:
        gemm(args)
    if {"epoch", "eval", "profile"} & set(args.what):
        split = load_split(args.dataset, args.protocol, args.data_dir)
        if "epoch" in args.what:
            epochs(args, split)
        if "eval" in args.what:
            rankings(args, split)
        if "profile" in args.what:
            profiled(args, split)


if __name__ == "__main__":
    main()
