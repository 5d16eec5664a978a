"""Time an epoch of NeuMF, GMF and MLP on ML-1M (``ncf`` split, seed 0), 4 negatives per
positive, at ncflab's default batch 1024 (chosen on validation) and the authors' 256, with
their defaults unless overridden.

    python benchmarks/bench_ncf.py --data-dir /work/shared/data [--epochs 2] [--repeats 3]
        [--threads 1 2] [--factors 8] [--batch-sizes 1024 256] [--models neumf gmf mlp]

Each repeat is a fresh fit of ``--epochs`` epochs (no validation); per model and thread count
it prints the median over all epochs of all repeats of the wall seconds per epoch (min–max),
the process CPU seconds per epoch (closer to the quiet-machine time when the CPU is shared),
training samples per second (positives plus negatives, median epoch) and the peak resident
memory so far, then every epoch's seconds. The first epoch of a fit also samples; later ones
find their samples drawn by ``train_loop``'s prefetch thread during the previous epoch.
Target on a 2-core machine: a NeuMF epoch under 20 s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from ncflab.data.datasets import load_dataset
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models import MODELS, FitOptions


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("NCFLAB_DATA_DIR"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--factors", type=int, default=8)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 256])
    parser.add_argument("--n-neg", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=["neumf", "gmf", "mlp"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    train = make_split(get_protocol("ncf"), data, seed=0).train
    samples = len(train) * (1 + args.n_neg)
    print(f"ml-1m train: {train.n_users} users, {train.n_items} items, {len(train)} records, ")
    print(f"{samples} samples per epoch ({args.n_neg} negatives)")
    for threads, batch, name in itertools.product(args.threads, args.batch_sizes, args.models):
        torch.set_num_threads(threads)
        secs, cpu_secs = [], []
        for repeat in range(args.repeats):
            cpu = [time.process_time()]
            options = FitOptions(
                device=args.device, on_epoch=lambda _, c=cpu: c.append(time.process_time())
            )
            model = MODELS[name](
                factors=args.factors, epochs=args.epochs, batch_size=batch,
                n_neg=args.n_neg, seed=repeat,
            )  # fmt: skip
            model.fit(train, options)
            secs += [r["seconds"] for r in model.history_]
            cpu_secs += list(np.diff(cpu))
        s = np.array(secs)
        print(
            f"{name:5s} factors={args.factors} threads={threads} batch={batch}: "
            f"epoch {np.median(s):.2f} s "
            f"({s.min():.2f}–{s.max():.2f}), CPU {np.median(cpu_secs):.2f} s, "
            f"{samples / np.median(s):,.0f} samples/s, peak RSS {peak_mb():.0f} MB"
        )
        print("  epochs (s):", " ".join(f"{x:.2f}" for x in s))


if __name__ == "__main__":
    main()
