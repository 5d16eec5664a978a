"""Every registered model trained and evaluated on a device (CUDA by default), then J-NCF's and
NeuMF's ML-1M epoch there: the short check to run on a GPU machine.

    python benchmarks/gpu_check.py --device cuda --out gpu.jsonl
    python benchmarks/gpu_check.py --device cpu --models bpr jca --no-epochs   # the script itself

Each model: ``run_experiment`` on ml-100k (its paper's protocol, one or two epochs), one JSON
line with the status (ok, or the error), seconds and test metrics; a model that cannot use the
device must fail here, not in a user's run. Then the median training seconds of a J-NCF epoch
(batch 256 and 4096) and a NeuMF epoch (batch 256 and 1024) on ML-1M, ``--repeat`` epochs each.
"""

from __future__ import annotations

import statistics
import time
import traceback

from harness import emit, parser, setup

from ncflab.config import RunConfig
from ncflab.experiments.run import run_experiment
from ncflab.models import MODELS, FitOptions

# A protocol per model (its paper's; the rest the NCF protocol): what `ncflab train` would run.
PROTOCOL = {"jca": "jca", "jncf": "jncf", "nbpr": "ncr", "dncr": "ncr", "neupr": "ncr"}
FEW_EPOCHS = {"epochs": 2}


def check_model(args, name: str) -> None:
    params = FEW_EPOCHS if "epochs" in MODELS[name].__dataclass_fields__ else {}
    config = RunConfig(model=name, dataset="ml-100k", protocol=PROTOCOL.get(name, "ncf"),
                       params=dict(params), data_dir=args.data_dir,
                       train=FitOptions(device=args.device, threads=args.threads))  # fmt: skip
    t0 = time.perf_counter()
    try:
        result = run_experiment(config)
        status, test = "ok", {k: round(v, 4) for k, v in result.metrics["test"].items()}
    except Exception as err:  # the point is to list every failure, not to stop at the first
        status, test = f"{type(err).__name__}: {err}", {}
        traceback.print_exc()
    emit(args, model=name, dataset="ml-100k", seconds=time.perf_counter() - t0,
         device=args.device, status=status, test=test)  # fmt: skip


def epoch_seconds(args, name: str, protocol: str, batch: int) -> None:
    config = RunConfig(model=name, dataset="ml-1m", protocol=protocol,
                       params={"epochs": args.repeat, "batch_size": batch}, data_dir=args.data_dir,
                       train=FitOptions(device=args.device, threads=args.threads))  # fmt: skip
    result = run_experiment(config)
    seconds = [r["seconds"] for r in result.model.history_ if r["loss"] is not None]
    emit(args, model=name, dataset="ml-1m", seconds=statistics.median(seconds), batch=batch,
         runs=len(seconds), device=args.device, epochs_s=[round(s, 2) for s in seconds],
         test={k: round(v, 4) for k, v in result.metrics["test"].items()})  # fmt: skip


def main() -> None:
    p = parser(__doc__)
    p.set_defaults(device="cuda", repeat=2)
    p.add_argument("--models", nargs="+", default=sorted(MODELS))
    p.add_argument("--no-epochs", action="store_true", help="skip the ML-1M epoch timings")
    args = p.parse_args()
    setup(args)
    for name in args.models:
        check_model(args, name)
    if not args.no_epochs:
        timed = (("jncf", "jncf", (256, 4096)), ("neumf", "ncf", (256, 1024)))
        for name, protocol, batches in timed:
            for batch in batches:
                epoch_seconds(args, name, protocol, batch)


if __name__ == "__main__":
    main()
