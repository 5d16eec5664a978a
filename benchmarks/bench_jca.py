"""Training epoch time and full-ranking evaluation time of JCA (and the AutoRec baselines).

    python benchmarks/bench_jca.py --data-dir /work/shared/data [--threads-list 1 2]
        [--repeat 5] [--models jca uautorec iautorec] [--threads 1] [--out FILE]

Data: ML-1M (or ``--data``: another name, or ``UxIxR`` synthetic power-law ratings, see
``harness.load_split``) under the ``jca`` preset (ratings >= 4, the authors' > 5-positive
filter, per-user 80/20, 10 % of train as validation), seed 0; the model trains on the 72 %
train part. For each model and thread count: ``--repeat`` + 1 epochs of a real ``fit``
(default hyperparameters; the first epoch, which pays one-off costs, is dropped), and
``--repeat`` full-ranking evaluations of all test users (P/R/F1/NDCG@1,5,10, training items
masked), each one recomputing the item component's cached hidden layer. Two JSON lines with
the medians: ``what`` "epoch" and ``what`` "evaluate" (``users`` evaluated).
Targets: an ML-1M epoch < 3 s and evaluating all users < 2 s on the 2-core CPU.
``--pairs-below 0`` decodes every training block whole (``jca.PAIRS_BELOW``), for comparison.

``--sampled``: instead, each model trains one epoch on the ``jncf`` split (leave-one-out, 99
sampled negatives a user) of ``--data`` (ML-1M, or ``UxIxR`` synthetic power-law ratings, see
``harness.load_split``), and the sampled test evaluation of all users is timed both ways,
alternating: the candidates decoded alone (the model's ``score_items``) and gathered from every
item's score (``Recommender.score_items``); lines ``what`` "sampled" with ``way`` and HR@10.
"""

from __future__ import annotations

import statistics
import time

from harness import add_threads_list, emit, load_split, parser, setup, thread_counts, timed

from ncflab.data.splits import Split
from ncflab.evaluation.protocols import evaluate
from ncflab.experiments.presets import get_protocol
from ncflab.models import MODELS, FitOptions, autoencoder, jca
from ncflab.models.base import Recommender


def evaluation_seconds(model: Recommender, split: Split) -> tuple[float, int]:
    """Seconds of one full-ranking test evaluation, the item component's cached hidden layer
    recomputed (cleared before, untimed), and the number of users evaluated."""
    protocol = get_protocol("jca")
    model._clear_caches(keep_graph=True)
    out = {}
    seconds = timed(lambda: out.update(r=evaluate(
        model, split, part="test", ks=protocol.ks, metrics=protocol.metrics
    )))  # fmt: skip
    return seconds, out["r"].n_users


def sampled(args, names: list[str]) -> None:
    """The ``--sampled`` lines: sampled evaluation, candidates decoded vs gathered."""
    split = load_split(args.data, "jncf", args.data_dir)
    protocol = get_protocol("jncf")
    for name in names:
        model = MODELS[name](epochs=1, seed=0).fit(split.train, FitOptions(device=args.device))
        ways = {"decoded": type(model).score_items, "gathered": Recommender.score_items}
        times: dict[str, list[float]] = {way: [] for way in ways}
        hr = {}
        rule = autoencoder.DECODE_CANDIDATES_UNDER
        autoencoder.DECODE_CANDIDATES_UNDER = 1  # "decoded" decodes, whatever the rule says
        for _ in range(args.repeat):
            for way, fn in ways.items():
                model.score_items = fn.__get__(model)  # this instance only
                model._clear_caches(keep_graph=True)
                t0 = time.perf_counter()
                result = evaluate(model, split, part="test", protocol="sampled", ks=protocol.ks,
                                  metrics=protocol.metrics)  # fmt: skip
                times[way].append(time.perf_counter() - t0)
                hr[way] = result.means["HR@10"]
        autoencoder.DECODE_CANDIDATES_UNDER = rule
        chosen = "gathered" if 100 * rule > split.train.n_items else "decoded"
        for way, ts in times.items():
            emit(args, model=name, dataset=f"{args.data}/jncf", seconds=statistics.median(ts),
                 runs=len(ts), what="sampled", way=way, hr10=round(hr[way], 6), chosen=chosen,
                 times=[round(t, 3) for t in ts])  # fmt: skip


def main() -> None:
    p = parser(__doc__)
    add_threads_list(p)
    p.add_argument("--models", nargs="+", default=["jca"])
    p.add_argument("--sampled", action="store_true", help="time sampled evaluation instead")
    p.add_argument("--data", default="ml-1m", help="a data set's name, or UxIxR synthetic")
    p.add_argument(
        "--pairs-below",
        type=float,
        default=jca.PAIRS_BELOW,
        help="jca.PAIRS_BELOW for the epochs (0: always decode whole blocks)",
    )
    p.set_defaults(repeat=5)
    args = p.parse_args()
    setup(args)
    if args.sampled:
        sampled(args, args.models)
        return
    jca.PAIRS_BELOW = args.pairs_below
    split = load_split(args.data, "jca", args.data_dir)
    train = split.train
    for name in args.models:
        for at in thread_counts(args):
            model = MODELS[name](epochs=args.repeat + 1, seed=0)
            model.fit(train, FitOptions(device=args.device))
            epochs = [r["seconds"] for r in model.history_[1:]]
            batch = getattr(model, "batch_size", None)
            emit(at, model=name, dataset=f"{args.data}/jca", seconds=statistics.median(epochs),
                 batch=batch, runs=len(epochs), what="epoch", pairs_below=jca.PAIRS_BELOW,
                 times=[round(t, 3) for t in epochs])  # fmt: skip
            evals = [evaluation_seconds(model, split) for _ in range(args.repeat)]
            seconds = [t for t, _ in evals]
            emit(at, model=name, dataset=f"{args.data}/jca", seconds=statistics.median(seconds),
                 runs=len(evals), what="evaluate", users=evals[-1][1],
                 times=[round(t, 3) for t in seconds])  # fmt: skip


if __name__ == "__main__":
    main()
