"""Time the factorisation baselines on ML-1M (``ncf`` split, seed 0): an epoch of ``ials`` and
``eals`` and the fit of ``puresvd``, with their defaults unless overridden.

    python benchmarks/bench_mf.py --data-dir /work/shared/data [--epochs 3] [--threads-list 1 2]
        [--factors 64 128] [--repeat 1] [--device cpu] [--threads 1] [--out FILE]

For each thread count (and each ``--factors`` value for the ALS models), one JSON line per
ALS model (``what`` "epoch"): the median wall seconds per epoch over the ``--epochs`` epochs of
one fit (``min``, ``max``, ``times``) and the median process CPU seconds (``cpu_s``, closer to
the quiet-machine time when the CPU is shared); then one for PureSVD (``what`` "fit"): the
median wall seconds of ``--repeat`` fits (one by default). ``peak_mb`` is the process's peak
resident memory so far. Target on a 2-core machine: an iALS epoch under 2 s.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from harness import add_threads_list, emit, load_split, median_of, parser, setup, thread_counts

from ncflab.models import FitOptions
from ncflab.models.eals import EALS
from ncflab.models.ials import IALS
from ncflab.models.puresvd import PureSVD


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--factors", type=int, nargs="+", default=None)
    p.set_defaults(repeat=1)
    args = p.parse_args()
    setup(args)
    train = load_split("ml-1m", "ncf", args.data_dir).train
    for at in thread_counts(args):
        for cls in (IALS, EALS):
            for d in args.factors or [cls().factors]:
                cpu = [time.process_time()]
                # CPU seconds per epoch as well: on a shared machine wall time overstates work.
                options = FitOptions(
                    device=args.device, on_epoch=lambda _, c=cpu: c.append(time.process_time())
                )
                model = cls(factors=d, epochs=args.epochs).fit(train, options)
                secs = [r["seconds"] for r in model.history_]
                emit(
                    at, model=cls.name, dataset="ml-1m/ncf", seconds=statistics.median(secs),
                    runs=len(secs), what="epoch", factors=d, min=round(min(secs), 3),
                    max=round(max(secs), 3), times=[round(t, 3) for t in secs],
                    cpu_s=round(float(np.median(np.diff(cpu))), 3),
                )  # fmt: skip
        seconds, times = median_of(lambda: PureSVD().fit(train), args.repeat)
        emit(at, model="puresvd", dataset="ml-1m/ncf", seconds=seconds, runs=len(times),
             what="fit", factors=PureSVD().factors)  # fmt: skip


if __name__ == "__main__":
    main()
