"""Full-ranking evaluation at several users-per-batch sizes, the default rule among them
(``protocols.default_batch``: 1,024 users, fewer where their scores would pass SCORE_BUDGET).

    python benchmarks/bench_eval_batch.py --data-dir /work/shared/data
        [--dataset 13000x9245x440000] [--protocol jca] [--models jca multvae bpr]
        [--batches 1024 0] [--repeat 5] [--out FILE]

Each model trains one epoch (defaults, seed 0) on ``--dataset`` (a name, or ``UxIxR``
synthetic power-law ratings; see ``harness.load_split``) split by ``--protocol``; then its
validation part is evaluated at each of ``--batches`` (0 = the default rule) in turn, the
order rotating over ``--repeat`` rounds after one untimed round, with the protocol's metrics.
One line per model and batch: median seconds, the batch actually used, and whether every
per-user metric equals the first batch size's. ``--recommend``: instead, the top-10 lists of
every training user, training items excluded (``top_k``, what ``recommend`` runs); ``equal``
says whether the lists equal the first batch size's.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from harness import emit, load_split, parser, setup

from ncflab.evaluation.protocols import default_batch, evaluate
from ncflab.evaluation.topk import top_k
from ncflab.experiments.presets import get_protocol
from ncflab.models import MODELS, FitOptions


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--dataset", default="13000x9245x440000")
    ap.add_argument("--protocol", default="jca")
    ap.add_argument("--models", nargs="+", default=["jca", "multvae", "bpr"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1024, 0])
    ap.add_argument("--recommend", action="store_true", help="time top-10 lists instead")
    args = ap.parse_args()
    setup(args)
    split = load_split(args.dataset, args.protocol, args.data_dir)
    protocol = get_protocol(args.protocol)
    for name in args.models:
        model = MODELS[name](epochs=1, seed=0).fit(split.train, FitOptions(device=args.device))
        times: dict[int, list[float]] = {b: [] for b in args.batches}
        per_user = {}
        for r in range(args.repeat + 1):
            shift = r % len(args.batches)
            for b in args.batches[shift:] + args.batches[:shift]:
                if hasattr(model, "_clear_caches"):
                    model._clear_caches(keep_graph=True)  # cached item sides recomputed
                t0 = time.perf_counter()
                if args.recommend:
                    users = np.arange(split.n_users)
                    lists = top_k(model, users, 10, split.train.csr("binary"), b or None)
                else:
                    result = evaluate(model, split, part="valid", ks=protocol.ks,
                                      metrics=protocol.metrics, batch_size=b or None)  # fmt: skip
                    lists = result.per_user
                if r:
                    times[b].append(time.perf_counter() - t0)
                per_user[b] = lists
        first = per_user[args.batches[0]]
        for b in args.batches:
            got = per_user[b]
            same = (
                all(np.array_equal(x, y) for x, y in zip(got, first, strict=True))
                if args.recommend else bool(got.equals(first))
            )  # fmt: skip
            emit(
                args, model=name, dataset=args.dataset, seconds=statistics.median(times[b]),
                runs=len(times[b]), what="recommend" if args.recommend else "evaluate valid",
                protocol=args.protocol, batch=b or default_batch("full", split.n_items),
                default_rule=b == 0, users=len(first), equal=same,
            )  # fmt: skip


if __name__ == "__main__":
    main()
