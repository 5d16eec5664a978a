"""One BPR epoch on ML-1M (``ncf`` split, seed 0) per optimizer implementation, side by side:
Adam (the per-parameter loop), Adam ``foreach``, Adam ``fused``, and SparseAdam (lazy Adam: only
the rows a batch touches, from sparse embedding gradients).

    python benchmarks/bench_optimizers.py [--batch 256 4096] [--repeat 2] [--threads 1]

Each variant trains a fresh BPR (defaults, one epoch, no validation) with ``fit_triplets``, the
variants interleaved ``--repeat`` times; prints one JSON line per (batch, variant) with the
median seconds. Adam, foreach and fused are one algorithm (results equal to float rounding);
SparseAdam is another (moments of untouched rows are not decayed).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import ncflab.models.bpr as bpr_module
from ncflab.data.datasets import load_dataset
from ncflab.experiments.presets import get_protocol, make_split
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
        t0 = time.perf_counter()
        make = VARIANTS[variant]
        fit_triplets(model, train, FitOptions(device="cpu"), lambda p: make(p, model.lr))
        return time.perf_counter() - t0
    finally:
        bpr_module.lookup = dense_lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("NCFLAB_DATA_DIR"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    train = make_split(get_protocol("ncf"), data, seed=0).train
    for batch in args.batch:
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeat):
            for variant in VARIANTS:
                times[variant].append(epoch_seconds(train, variant, batch))
        for variant, values in times.items():
            row = {"model": "bpr", "dataset": "ml-1m", "batch": batch, "variant": variant,
                   "threads": args.threads, "seconds": round(float(np.median(values)), 2),
                   "torch": torch.__version__}  # fmt: skip
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
