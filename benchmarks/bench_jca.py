"""Training epoch time and full-ranking evaluation time of JCA (and the AutoRec baselines).

    python benchmarks/bench_jca.py --data-dir /work/shared/data [--threads 1 2] [--runs 5]
        [--models jca uautorec iautorec]

Data: ML-1M under the ``jca`` preset (ratings >= 4, the authors' > 5-positive filter, per-user
80/20, 10 % of train as validation), seed 0; the model trains on the 72 % train part. For each
model and thread count: ``--runs`` + 1 epochs of a real ``fit`` (default hyperparameters; the
first epoch, which pays one-off costs, is dropped), and ``--runs`` full-ranking evaluations of
all test users (P/R/F1/NDCG@1,5,10, training items masked), each one recomputing the item
component's cached hidden layer. Medians are printed.
Targets (issue 4): an ML-1M epoch < 3 s and evaluating all users < 2 s on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ncflab.data.datasets import load_dataset
from ncflab.evaluation.protocols import evaluate
from ncflab.experiments.presets import get_protocol, make_split
from ncflab.models import MODELS, FitOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["jca"])
    args = parser.parse_args()
    protocol = get_protocol("jca")
    split = make_split(protocol, load_dataset("ml-1m", data_dir=args.data_dir), seed=0)
    train = split.train
    print(f"ml-1m jca split: {train.n_users} users x {train.n_items} items, {len(train)} train")
    for name in args.models:
        for threads in args.threads:
            torch.set_num_threads(threads)
            model = MODELS[name](epochs=args.runs + 1, seed=0)
            model.fit(train, FitOptions(device="cpu"))
            epoch = statistics.median(r["seconds"] for r in model.history_[1:])
            evals = []
            for _ in range(args.runs):
                model._clear_caches(keep_graph=True)  # time the item hidden layer too
                start = time.perf_counter()
                result = evaluate(
                    model, split, part="test", ks=protocol.ks, metrics=protocol.metrics
                )
                evals.append(time.perf_counter() - start)
            print(
                f"{name:9s} threads={threads}: epoch {epoch:.2f} s, evaluation of "
                f"{result.n_users} users {statistics.median(evals):.2f} s "
                f"(medians of {args.runs}; target < 3 s and < 2 s)"
            )


if __name__ == "__main__":
    main()
