"""Data-parallel training against one process: ``ncflab train`` alone and under
``torchrun --nproc-per-node N`` (gloo on CPU), same model, data, seed and effective minibatch.

    python benchmarks/bench_ddp.py --models neumf jncf --processes 2 --epochs 10 3 \
        --out results/speed/ddp.jsonl

Each process trains with ``--threads`` threads; the data-parallel run gives each rank
``batch_size / N`` so that a step sees as many instances as one process's step (same effective
minibatch, same number of steps per epoch: the comparison is of speed at equal algorithm).
Runs alternate (one process, N processes) ``--repeat`` times, each a fresh command writing a
run folder under ``--work``; one JSON line per run with the median training seconds per epoch
(validation excluded), the whole command's seconds and the test metrics of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import emit, parser, setup

# Each model's protocol and batch (its default minibatch, the papers' size).
MODELS = {"neumf": ("ncf", 1024), "jncf": ("jncf", 256), "bpr": ("ncf", 4096)}


def command(model: str, epochs: int, processes: int, threads: int, out: Path) -> list[str]:
    protocol, batch = MODELS[model]
    train = [
        "train", "-m", model, "-d", "ml-1m", "-p", protocol, "-o", str(out), "--force",
        "--set", f"params.epochs={epochs}", "--set", f"params.batch_size={batch // processes}",
        "--set", f"train.threads={threads}",
    ]  # fmt: skip
    if processes == 1:
        return [sys.executable, "-m", "ncflab", *train]
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    return [torchrun, "--standalone", f"--nproc-per-node={processes}", "-m", "ncflab", *train]


def one_run(model: str, epochs: int, processes: int, threads: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(command(model, epochs, processes, threads, out), env=env,
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{model} with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    record = json.loads((out / "metrics.json").read_text())
    epochs_s = [r["seconds"] for r in record["history"] if r["loss"] is not None]
    return {
        "epoch_s": statistics.median(epochs_s),
        "epochs_run": len(epochs_s),
        "eval_s": round(statistics.median(r["eval_seconds"] for r in record["history"]), 3),
        "command_s": round(wall, 1),
        "best_epoch": max(record["history"], key=lambda r: r["metrics"].get("NDCG@10", -1))[
            "epoch"
        ],
        "test": {k: round(v, 4) for k, v in record["test"].items()},
        "valid": {k: round(v, 4) for k, v in record["valid"].items()},
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--models", nargs="+", default=["neumf", "jncf"], choices=sorted(MODELS))
    p.add_argument("--epochs", type=int, nargs="+", default=[10, 3], help="per model")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/ncflab-bench-ddp"))
    args = p.parse_args()
    setup(args)
    padded = args.epochs + args.epochs[-1:] * len(args.models)  # the last count repeats
    epochs = dict(zip(args.models, padded, strict=False))
    for model in args.models:
        for repeat in range(args.repeat):
            for n in (1, args.processes):
                out = args.work / f"{model}-{n}p-{repeat}"
                row = one_run(model, epochs[model], n, args.threads, out)
                emit(args, model=model, dataset="ml-1m", seconds=row.pop("epoch_s"),
                     batch=MODELS[model][1], processes=n, per_rank_batch=MODELS[model][1] // n,
                     repeat=repeat, **row)  # fmt: skip
                shutil.rmtree(out)


if __name__ == "__main__":
    main()
