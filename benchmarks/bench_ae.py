"""Training epoch time of the user-row autoencoders CDAE, Mult-VAE and Mult-DAE.

    python benchmarks/bench_ae.py --data-dir /work/shared/data [--threads 1 2] [--runs 5]
        [--models cdae multvae multdae]

Data: ML-1M under the ``jca`` preset (ratings >= 4, the authors' > 5-positive filter, per-user
80/20, 10 % of train as validation), seed 0; the models train on the 72 % train part. For each
model and thread count: ``--runs`` + 1 epochs of a real ``fit`` with default hyperparameters
(the first epoch, which pays one-off costs, is dropped); prints the median epoch time and user
rows per second (training users / epoch time: every row is encoded and decoded once an epoch).
Target (issue 7): a CDAE epoch on ML-1M < 5 s on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from ncflab.data.datasets import load_dataset
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models import MODELS, FitOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["cdae", "multvae", "multdae"])
    args = parser.parse_args()
    split = make_split(get_protocol("jca"), load_dataset("ml-1m", data_dir=args.data_dir), seed=0)
    train = split.train
    rows = int((np.diff(train.csr("binary").indptr) > 0).sum())
    print(f"ml-1m jca split: {train.n_users} users x {train.n_items} items, {len(train)} train")
    for name in args.models:
        for threads in args.threads:
            torch.set_num_threads(threads)
            model = MODELS[name](epochs=args.runs + 1, seed=0)
            model.fit(train, FitOptions(device="cpu"))
            epochs = [r["seconds"] for r in model.history_[1:]]
            epoch = statistics.median(epochs)
            print(
                f"{name:8s} threads={threads}: epoch {epoch:.2f} s (min {min(epochs):.2f}, "
                f"max {max(epochs):.2f}), {rows / epoch:,.0f} rows/s "
                f"(median of {args.runs})"
            )


if __name__ == "__main__":
    main()
