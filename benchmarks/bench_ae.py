"""Training epoch time of the user-row autoencoders CDAE, Mult-VAE and Mult-DAE.

    python benchmarks/bench_ae.py --data-dir /work/shared/data [--threads-list 1 2]
        [--repeat 5] [--models cdae multvae multdae] [--threads 1] [--out FILE]

Data: ML-1M under the ``jca`` preset (ratings >= 4, the authors' > 5-positive filter, per-user
80/20, 10 % of train as validation), seed 0; the models train on the 72 % train part. For each
model and thread count: ``--repeat`` + 1 epochs of a real ``fit`` with default hyperparameters
(the first epoch, which pays one-off costs, is dropped); one JSON line with the median epoch
seconds (``min``, ``max``, ``times``) and user rows per second as ``samples_per_s`` (training
users / epoch time: every row is encoded and decoded once an epoch).
Target: a CDAE epoch on ML-1M < 5 s on the 2-core CPU.
"""

from __future__ import annotations

import statistics

import numpy as np
from harness import add_threads_list, emit, load_split, parser, setup, thread_counts

from ncflab.models import MODELS, FitOptions


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--models", nargs="+", default=["cdae", "multvae", "multdae"])
    p.set_defaults(repeat=5)
    args = p.parse_args()
    setup(args)
    train = load_split("ml-1m", "jca", args.data_dir).train
    rows = int((np.diff(train.csr("binary").indptr) > 0).sum())
    for name in args.models:
        for at in thread_counts(args):
            model = MODELS[name](epochs=args.repeat + 1, seed=0)
            model.fit(train, FitOptions(device=args.device))
            epochs = [r["seconds"] for r in model.history_[1:]]
            emit(
                at, model=name, dataset="ml-1m/jca", seconds=statistics.median(epochs),
                batch=getattr(model, "batch_size", None), runs=len(epochs), samples=rows,
                what="epoch", min=round(min(epochs), 3), max=round(max(epochs), 3),
                times=[round(t, 3) for t in epochs], users=rows,
            )  # fmt: skip


if __name__ == "__main__":
    main()
