"""Time the factorisation baselines on ML-1M (``ncf`` split, seed 0): an epoch of ``ials`` and
``eals`` and the fit of ``puresvd``, with their defaults unless overridden.

    python benchmarks/bench_mf.py --data-dir /work/shared/data [--epochs 3] [--threads 1 2]
        [--factors 64 128] [--device cpu]

For each thread count (and each ``--factors`` value for the ALS models): the median (min, max)
wall seconds per epoch over ``--epochs`` epochs and the median process CPU seconds (closer to
the quiet-machine time when the CPU is shared), the fit time of PureSVD, and the process's peak
resident memory so far. Target on a 2-core machine: an iALS epoch under 2 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from ncflab.data.datasets import load_dataset
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models import FitOptions
from ncflab.models.eals import EALS
from ncflab.models.ials import IALS
from ncflab.models.puresvd import PureSVD


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--factors", type=int, nargs="+", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    train = make_split(get_protocol("ncf"), data, seed=0).train
    print(f"ml-1m train: {train.n_users} users, {train.n_items} items, {len(train)} records")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cls in (IALS, EALS):
            for d in args.factors or [cls().factors]:
                cpu = [time.process_time()]
                # CPU seconds per epoch as well: on a shared machine wall time overstates work.
                options = FitOptions(
                    device=args.device, on_epoch=lambda _, c=cpu: c.append(time.process_time())
                )
                model = cls(factors=d, epochs=args.epochs).fit(train, options)
                secs = np.array([r["seconds"] for r in model.history_])
                print(
                    f"{cls.name:5s} d={d:4d} threads={threads}: epoch "
                    f"{np.median(secs):.2f} s ({secs.min():.2f}–{secs.max():.2f}), CPU "
                    f"{np.median(np.diff(cpu)):.2f} s, peak RSS {peak_mb():.0f} MB"
                )
        t0 = time.perf_counter()
        PureSVD().fit(train)
        print(
            f"puresvd k={PureSVD().factors} threads={threads}: fit "
            f"{time.perf_counter() - t0:.2f} s, peak RSS {peak_mb():.0f} MB"
        )


if __name__ == "__main__":
    main()
