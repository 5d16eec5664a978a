"""Time an epoch of NeuMF, GMF and MLP on ML-1M (``ncf`` split, seed 0), 4 negatives per
positive, at ncflab's default batch 1024 (chosen on validation) and the authors' 256, with
their defaults unless overridden.

    python benchmarks/bench_ncf.py --data-dir /work/shared/data [--epochs 2] [--repeat 3]
        [--threads-list 1 2] [--factors 8] [--batch-sizes 1024 256] [--models neumf gmf mlp]
        [--n-neg 4] [--device cpu] [--threads 1] [--out FILE]

Each repeat is a fresh fit of ``--epochs`` epochs (no validation); per model, thread count and
batch, one JSON line with the median over all epochs of all ``--repeat`` fits of the wall
seconds per epoch (``min``, ``max``, every epoch's seconds in ``times``, ``runs`` the number of
epochs), the process CPU seconds per epoch (``cpu_s``, closer to the quiet-machine time when the
CPU is shared), training samples per second (positives plus negatives, median epoch) and the
peak resident memory so far. The first epoch of a fit also samples; later ones find their
samples drawn by ``train_loop``'s prefetch thread during the previous epoch.
Target on a 2-core machine: a NeuMF epoch under 20 s.
"""

from __future__ import annotations

import itertools
import statistics
import time

from harness import add_threads_list, emit, load_split, parser, setup, thread_counts

from ncflab.models import MODELS, FitOptions


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--factors", type=int, default=8)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 256])
    p.add_argument("--n-neg", type=int, default=4)
    p.add_argument("--models", nargs="+", default=["neumf", "gmf", "mlp"])
    args = p.parse_args()
    setup(args)
    train = load_split("ml-1m", "ncf", args.data_dir).train
    samples = len(train) * (1 + args.n_neg)
    for at in thread_counts(args):
        for batch, name in itertools.product(args.batch_sizes, args.models):
            secs, cpu_secs = [], []
            for repeat in range(args.repeat):
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
                cpu_secs += [b - a for a, b in itertools.pairwise(cpu)]
            emit(
                at, model=name, dataset="ml-1m/ncf", seconds=statistics.median(secs),
                batch=batch, runs=len(secs), samples=samples, what="epoch",
                factors=args.factors, n_neg=args.n_neg, epochs=args.epochs, fits=args.repeat,
                min=round(min(secs), 3), max=round(max(secs), 3),
                cpu_s=round(statistics.median(cpu_secs), 3), times=[round(t, 3) for t in secs],
            )  # fmt: skip


if __name__ == "__main__":
    main()
