"""Fit time of the closed-form and neighbourhood baselines on ML-1M (``ncf`` split, seed 0),
with their defaults: ``ease``, ``itemknn``, ``userknn``, ``p3alpha``, ``rp3beta``, ``puresvd``
(and ``slim`` with ``--slim``: about two minutes per fit).

    python benchmarks/bench_classic.py --data-dir /work/shared/data [--repeat 3]
        [--threads-list 1 2] [--models ease itemknn] [--slim] [--threads 1] [--out FILE]

For each thread count and model, one JSON line: the median wall seconds of ``fit`` over
``--repeat`` fits (``min``, ``max``; SLIM: one fit), the median process CPU seconds
(``cpu_s``: on a shared machine, wall time overstates the work), the stored model's size
(``model_mb``) and the process's peak resident memory so far (``peak_mb``). Targets on this
2-core machine: EASE under 10 s, ItemKNN under 5 s, SLIM under 2 minutes.
``benchmarks/bench_mf.py`` times the ALS epochs, ``benchmarks/bench_slim.py`` SLIM's solver.
"""

from __future__ import annotations

import statistics
import time

from harness import add_threads_list, emit, load_split, parser, setup, thread_counts

from ncflab.models import MODELS

FAST = ("ease", "itemknn", "userknn", "p3alpha", "rp3beta", "puresvd")


def state_mb(model: object) -> float:
    """Size of the learned arrays that ``save`` would write."""
    return sum(t.numel() * t.element_size() for t in model.state_arrays().values()) / 2**20


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--models", nargs="+", default=list(FAST))
    p.add_argument("--slim", action="store_true", help="also time slim (one fit)")
    args = p.parse_args()
    if args.device != "cpu":
        p.error("these fits run on the CPU only")
    setup(args)
    train = load_split("ml-1m", "ncf", args.data_dir).train
    names = list(args.models) + (["slim"] if args.slim else [])
    for at in thread_counts(args):
        for name in names:
            repeats = 1 if name == "slim" else args.repeat
            wall, cpu = [], []
            for _ in range(repeats):
                model = MODELS[name]()
                w0, c0 = time.perf_counter(), time.process_time()
                model.fit(train)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
            emit(
                at, model=name, dataset="ml-1m/ncf", seconds=statistics.median(wall),
                runs=repeats, what="fit", min=round(min(wall), 3), max=round(max(wall), 3),
                cpu_s=round(statistics.median(cpu), 3), model_mb=round(state_mb(model), 1),
            )  # fmt: skip


if __name__ == "__main__":
    main()
