"""JCA's training step on one block: the whole n × m block decoded (``JCAModule.block``) against
the block's sampled pairs alone (``JCAModule.pairs``), forward and backward of the loss.

    python benchmarks/bench_jca_block.py --repeat 8 --out results/speed/jca_block.jsonl

Data, all under the ``jca`` preset's split, the model's training part: ML-1M and Amazon
Digital Music (local files), and synthetic power-law ratings (``--synthetic USERSxITEMSxRECORDS``,
``harness.load_split``) for sparser catalogues. Default JCA
(1,500 × 1,500 blocks, H = 160), weights as initialised; the first ``--repeat`` blocks of an
epoch with positives, both ways on each block alternating. A line per data set and way with
the median milliseconds a block, the pairs' share of the block's entries (``share``), and the
way ``jca.block_scores`` takes at that share. ``jca.PAIRS_BELOW`` is set from this crossover.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from harness import emit, load_split, parser, setup

from ncflab.models import jca
from ncflab.models.autoencoder import block_pairs, pair_loss
from ncflab.models.jca_net import epoch_blocks
from ncflab.training.options import FitOptions


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--datasets", nargs="+", default=["ml-1m", "amazon-digital-music"])
    p.add_argument(
        "--synthetic", nargs="*", default=["100000x20000x2000000", "200000x30000x1000000"]
    )
    args = p.parse_args()
    setup(args)
    for name in [*args.datasets, *args.synthetic]:
        train = load_split(name, "jca", args.data_dir).train
        model = jca.JCA(epochs=1)
        csr, module, graph, _ = model._setup(train, FitOptions(device=args.device))
        rng = np.random.default_rng(0)
        times: dict[str, list[float]] = {"block": [], "pairs": []}
        shares = []
        for bp, bq in epoch_blocks(train.n_users, train.n_items, 1500, 1500, rng):
            if len(shares) == args.repeat:
                break
            r, c, neg = block_pairs(csr, bp, bq, rng)
            if not len(r):
                continue
            pt, qt, rt, ct, nt = (torch.from_numpy(a) for a in (bp, bq, r, c, neg))
            rows, cols = torch.cat([rt, rt]), torch.cat([ct, nt])
            shares.append(len(rows) / (len(bp) * len(bq)))
            for way, ts in times.items():
                module.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                if way == "block":
                    out = module.block(graph, pt, qt).reshape(-1)[rows * len(bq) + cols]
                else:
                    out = module.pairs(graph, pt, qt, rows, cols)
                pair_loss("hinge", out[: len(r)], out[len(r) :], model.margin).backward()
                ts.append(time.perf_counter() - t0)
        share = statistics.median(shares)
        chosen = "pairs" if share < jca.PAIRS_BELOW else "block"
        for way, ts in times.items():
            emit(args, model="jca", dataset=name, seconds=statistics.median(ts), batch=1500,
                 runs=len(ts), way=way, ms=round(1e3 * statistics.median(ts), 1),
                 share=round(share, 5), chosen=chosen, users=train.n_users,
                 items=train.n_items)  # fmt: skip


if __name__ == "__main__":
    main()
