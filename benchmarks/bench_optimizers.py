"""One BPR epoch on ML-1M (``ncf`` split, seed 0) per optimizer implementation, side by side:
Adam (the per-parameter loop), Adam ``foreach``, Adam ``fused``, and SparseAdam (lazy Adam: only
the rows a batch touches, from sparse embedding gradients).

    python benchmarks/bench_optimizers.py [--batch 256 4096] [--repeat 2] [--threads 1]
        [--data-dir DIR] [--out FILE]

Each variant trains a fresh BPR (defaults, one epoch, no validation) with ``fit_triplets``, the
variants interleaved ``--repeat`` times; one JSON line per (batch, variant) with the median
seconds of the whole one-epoch fit (``times`` all of them). Adam, foreach and fused are one
algorithm (results equal to float rounding); SparseAdam is another (moments of untouched rows
are not decayed).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from harness import emit, load_split, parser, setup, timed

import ncflab.models.bpr as bpr_module
from ncflab.models import FitOptions
from ncflab.training.triplets import fit_triplets

VARIANTS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=False),
    "adam-foreach": lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=True),
    "adam-fused": lambda params, lr: torch.optim.Adam(params, lr=lr, fused=True),
    "sparse-adam": lambda params, lr: torch.optim.SparseAdam(list(params), lr=lr),
}


def epoch_seconds(train, variant: str, batch: int) -> float:
    dense_lookup = bpr_module.lookup
    if variant == "sparse-adam":  # the embeddings' gradients as sparse rows
        bpr_module.lookup = lambda emb, index: F.embedding(index, emb.weight, sparse=True)
    try:
        model = bpr_module.BPR(batch_size=batch, epochs=1, seed=0)
        make = VARIANTS[variant]
        options = FitOptions(device="cpu")
        return timed(lambda: fit_triplets(model, train, options, lambda p: make(p, model.lr)))
    finally:
        bpr_module.lookup = dense_lookup


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    p.set_defaults(repeat=2)
    args = p.parse_args()
    if args.device != "cpu":
        p.error("the optimizers are compared on the CPU only")
    setup(args)
    train = load_split("ml-1m", "ncf", args.data_dir).train
    for batch in args.batch:
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeat):
            for variant in VARIANTS:
                times[variant].append(epoch_seconds(train, variant, batch))
        for variant, values in times.items():
            emit(args, model="bpr", dataset="ml-1m/ncf", seconds=statistics.median(values),
                 batch=batch, runs=len(values), samples=2 * len(train), variant=variant,
                 times=[round(t, 3) for t in values])  # fmt: skip


if __name__ == "__main__":
    main()
