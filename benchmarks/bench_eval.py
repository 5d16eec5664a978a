"""Time full-ranking and sampled (99 negatives) evaluation of a dot-product model on ML-1M.

    python benchmarks/bench_eval.py --data-dir /work/shared/data [--repeat 5]
        [--threads-list 1 2] [--batch-size 1024] [--threads 1] [--out FILE]

The model has random 64-d user and item embeddings (score = U Vᵀ); the split is leave-one-out by
time with the second-latest record as validation, and 99 sampled negatives per user. After one
untimed warm-up evaluation (whose figures the line carries: ``users``, ``HR@10``, ``NDCG@10``),
one JSON line per thread count and protocol with the median wall seconds (``min``, ``max``) of
``--repeat`` evaluations; ``batch`` is the evaluation's users per scoring batch.
Targets on a 2-core machine: full ranking of all 6,040 users < 3 s, sampled < 1 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from harness import add_threads_list, emit, median_of, parser, setup, thread_counts

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


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--batch-size", type=int, default=1024)
    p.set_defaults(repeat=5)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("the stand-in model scores on the CPU only")
    setup(args)
    inter = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    split = with_negatives(leave_one_out(inter, validation="latest"), 99, seed=0)
    model = DotProduct(seed=0).fit(split.train)
    for at in thread_counts(args):
        for protocol in ("full", "sampled"):
            kw = {"protocol": protocol, "ks": (10,), "batch_size": args.batch_size}
            result = evaluate(model, split, **kw)  # warm-up, and the figures to record
            seconds, times = median_of(lambda kw=kw: evaluate(model, split, **kw), args.repeat)
            emit(
                at, model="dot-64", dataset="ml-1m/loo-latest", seconds=seconds,
                batch=args.batch_size, runs=len(times), what="evaluate", protocol=protocol,
                negatives=99, min=round(min(times), 4), max=round(max(times), 4),
                users=result.n_users,
                **{k: round(result.means[k], 4) for k in ("HR@10", "NDCG@10")},
            )  # fmt: skip


if __name__ == "__main__":
    main()
