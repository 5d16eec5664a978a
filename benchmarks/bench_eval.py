"""Time full-ranking and sampled (99 negatives) evaluation of a dot-product model on ML-1M.

    python benchmarks/bench_eval.py --data-dir /work/shared/data [--runs 5] [--threads 1 2]

The model has random 64-d user and item embeddings (score = U Vᵀ); the split is leave-one-out by
time with the second-latest record as validation, and 99 sampled negatives per user. Prints the
median (min, max) wall time of each protocol over ``--runs`` runs for each thread count.
Targets on a 2-core machine: full ranking of all 6,040 users < 3 s, sampled < 1 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ncflab.data.datasets import load_dataset
from ncflab.data.interactions import Interactions
from ncflab.data.splits import leave_one_out, with_negatives
from ncflab.evaluation.protocols import evaluate
from ncflab.models.base import Recommender


@dataclass(kw_only=True)
class DotProduct(Recommender):
    """Random embeddings, score = U Vᵀ: a stand-in with the cost of a factor model's scoring."""

    name = "bench-dot"
    dim: int = 64

    def fit(self, train: Interactions, options: object = None) -> DotProduct:
        gen = torch.Generator().manual_seed(self.seed)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.users_ = torch.randn(train.n_users, self.dim, generator=gen)
        self.items_ = torch.randn(train.n_items, self.dim, generator=gen)
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 scores."""
        return self.users_[torch.as_tensor(users)] @ self.items_.T

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 scores of candidates (B, C), without scoring every item."""
        u = self.users_[torch.as_tensor(users)]
        return torch.einsum("bd,bcd->bc", u, self.items_[torch.as_tensor(items)])


def timed(fn, runs: int) -> np.ndarray:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("NCFLAB_DATA_DIR", "/work/shared/data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    inter = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    split = with_negatives(leave_one_out(inter, validation="latest"), 99, seed=0)
    model = DotProduct(seed=0).fit(split.train)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"ml-1m: {inter.n_users:,} users x {inter.n_items:,} items, {len(inter):,} records")
    print(f"torch {torch.__version__}, numpy {np.__version__}, runs {args.runs}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for protocol in ("full", "sampled"):
            kw = {"protocol": protocol, "ks": (10,), "batch_size": args.batch_size}
            result = evaluate(model, split, **kw)  # warm-up, and the figures to print
            t = timed(lambda kw=kw: evaluate(model, split, **kw), args.runs)
            print(
                f"threads {threads}  {protocol:>7}: median {np.median(t):.3f} s "
                f"(min {t.min():.3f}, max {t.max():.3f})  {result.n_users} users  "
                f"HR@10 {result.means['HR@10']:.4f}  NDCG@10 {result.means['NDCG@10']:.4f}"
            )


if __name__ == "__main__":
    main()
