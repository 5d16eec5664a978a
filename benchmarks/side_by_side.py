"""Time the same models in RecBole 1.2.1 and in ncflab on ML-1M, alternating fresh processes.

    NCFLAB_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        OPENBLAS_NUM_THREADS=1 python benchmarks/side_by_side.py \\
        --recbole-python /tmp/rbvenv/bin/python --repeat 3 \\
        [--only neumf bpr multvae] [--what epoch eval] [--out results/speed/side_by_side.jsonl]

For each of ``--repeat`` rounds and each model: one RecBole process, then one ncflab process
(this script with ``--side ncflab``), each training one epoch, then ranking every test user
against every item (history masked; HR, NDCG, Precision, Recall, MRR at 10). Only the epoch and
the evaluation are timed. RecBole runs in its own venv (``--recbole-python``, see
``side_by_side_recbole.py``); without it only ncflab runs and no ratio is printed. The ncflab
processes import a copy of the package taken at the start (``snapshot_ncflab``).

Same data: all 1,000,209 ML-1M ratings as positives (RecBole's ``ml-1m.inter`` is written under
``--work-dir`` and removed at the end), leave-one-out by time: 988,129 training records on both
sides. Networks are RecBole 1.2.1's yaml defaults, ncflab set to the same shapes (``NCFLAB``,
``BATCH``; what still differs is in ``DIFFERENCES`` and on every line).

Per model and measurement: a ``library`` recbole line, an ncflab line (median wall seconds of
the rounds; every round in ``times``, CPU seconds in ``cpu_seconds``), and a ``library`` ratio
line with ``ratio`` = RecBole seconds / ncflab seconds (> 1: ncflab is faster; its ``seconds``
is ncflab's) and ``cpu_ratio``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import emit, parser, setup

HERE = Path(__file__).resolve().parent
RECBOLE_SIDE = HERE / "side_by_side_recbole.py"
RESULT_TAG = "SBS_RESULT "
MODELS = ("neumf", "bpr", "multvae")
# Training batch of both sides: NeuMF point-wise instances (positives and negatives), BPR
# triplets, Mult-VAE users.
BATCH = {"neumf": 256, "bpr": 256, "multvae": 2048}
# ncflab's hyperparameters giving RecBole's default networks: NeuMF GMF 64 factors and an MLP
# [128 (= [p; q] of 64-d embeddings) → 128 → 64], output on 64 + 64; BPR 64 factors; Mult-VAE
# [I → 600 → 2·64] encoder and [64 → 600 → I] decoder. lr 1e-3 as RecBole's; BPR without L2,
# as RecBole's BPR loss has none. Mult-VAE at RecBole's 2048 users a step (ncflab's default: 500).
NCFLAB = {
    "neumf": {"factors": 64, "layers": [128, 128, 64], "n_neg": 1, "lr": 1e-3},
    "bpr": {"factors": 64, "n_neg": 1, "reg": 0.0, "lr": 1e-3},
    "multvae": {"dims": [600, 64], "dropout": 0.5, "lr": 1e-3},
}
DIFFERENCES = {
    "neumf": "RecBole: dropout 0.1 before each tower layer in training, ncflab none; ranking: "
    "RecBole runs every (user, item) pair through the whole tower (no full_sort_predict), "
    "ncflab applies the first layer's user and item halves once each. Both Adam 1e-3, log loss.",
    "bpr": "ncflab draws the epoch's triplets at once (vectorised), RecBole batch by batch; "
    "ncflab's loss has an L2 term, here with weight 0. Both Adam 1e-3.",
    "multvae": "RecBole: dense (B, I) input rows; ncflab: sparse embedding-bag first layer. "
    "RecBole's user list has the padding user (6041 rows, 3 steps) and ε ~ N(0, 0.01²); "
    "ncflab skips empty rows (6040) and draws ε ~ N(0, 1).",
}
METRICS = ("HR", "NDCG", "Precision", "Recall", "MRR")
CHILD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def build_parser() -> argparse.ArgumentParser:
    p = parser(__doc__)
    p.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--what", nargs="+", choices=["epoch", "eval"], default=["epoch", "eval"])
    p.add_argument("--recbole-python", help="RecBole venv's python")
    p.add_argument("--eval-users", type=int, default=256, help="users per evaluation batch")
    p.add_argument("--recbole-neumf-eval-users", type=int, default=1, help="see eval_users")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/sbs"))
    p.add_argument("--keep-work", action="store_true", help="keep this run's folder in --work-dir")
    p.add_argument("--timeout", type=float, default=3600, help="seconds allowed to one process")
    # Internal: run one ncflab measurement in this (fresh) process and print its result line.
    p.add_argument("--side", choices=["ncflab"], help=argparse.SUPPRESS)
    p.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    return p


def main() -> None:
    args = build_parser().parse_args()
    setup(args)
    if args.side == "ncflab":
        print(RESULT_TAG + json.dumps(ncflab_side(args)), flush=True)
        return
    run_dir = args.work_dir / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        records = write_atomic(args.data_dir, run_dir / "data" / "ml-1m" / "ml-1m.inter")
        print(f"ml-1m: {records:,} records written for RecBole under {run_dir}", file=sys.stderr)
        args.ncflab_src = snapshot_ncflab(run_dir / "src")
        recbole = recbole_available(args.recbole_python)
        results = alternate(args, run_dir, recbole)
    finally:
        if not args.keep_work:
            shutil.rmtree(run_dir, ignore_errors=True)
    report(args, results)


def alternate(args: argparse.Namespace, run_dir: Path, recbole: bool) -> dict[tuple, list]:
    """Round by round, model by model: a RecBole process, then an ncflab process."""
    results: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(args.repeat):
        for model in args.only:
            for side in ["recbole", "ncflab"] if recbole else ["ncflab"]:
                out = run_side(args, side, model, run_dir / f"{side}-{model}-{round_}")
                results.setdefault((side, model), []).append(out)
                shown = {k: out.get(k) for k in ("epoch_seconds", "eval_seconds")}
                print(f"round {round_ + 1} {side:7s} {model:7s} {shown}", file=sys.stderr)
    return results


def run_side(args: argparse.Namespace, side: str, model: str, cwd: Path) -> dict[str, Any]:
    """One measurement process (a fresh interpreter, one thread); returns its result line."""
    common = ["--model", model, "--what", *args.what, "--eval-users",
              str(eval_users(args, side, model)), "--threads", str(args.threads)]  # fmt: skip
    env = os.environ | {name: str(args.threads) for name in CHILD_ENV}
    if side == "recbole":
        data = cwd.parent / "data"
        cmd = [args.recbole_python, str(RECBOLE_SIDE), *common, "--batch", str(BATCH[model]),
               "--data-path", str(data)]  # fmt: skip
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--side", "ncflab", *common]
        cmd += ["--data-dir", str(args.data_dir)] if args.data_dir else []
        # Every round imports the snapshot taken at the start, not the live (edited) tree.
        path = os.pathsep.join(filter(None, [args.ncflab_src["path"], env.get("PYTHONPATH")]))
        env["PYTHONPATH"] = path
    # Its own working directory: RecBole writes log_tensorboard/ and saved/ into it.
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=args.timeout, check=False)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise RuntimeError(f"{side} {model} failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads(lines[-1][len(RESULT_TAG) :])


def eval_users(args: argparse.Namespace, side: str, model: str) -> int:
    """Users per evaluation batch. RecBole's NeuMF has no full_sort_predict: it predicts every
    (user, item) pair of a batch at once, (users × items × 128) floats, so larger batches only
    add allocation and page faults (ML-1M, 1 thread, busy machine: 1 user 36 s, 16 users 58 s,
    64 users 104 s); 1 user, its default eval_batch_size of 4096 pairs, is its fastest. Its BPR
    and Mult-VAE are fastest with many users (1 user: 4.1 s and 16 s; 256: 0.6 s and 1.5 s), as
    are ncflab's models (ncflab chunks NeuMF's pairs itself)."""
    if side == "recbole" and model == "neumf":
        return args.recbole_neumf_eval_users
    return args.eval_users


def snapshot_ncflab(dest: Path) -> dict[str, Any]:
    """Copy the ncflab package this interpreter imports to ``dest`` (the ncflab processes
    import it from there), so that edits to the working tree during a long run do not change
    the code measured between rounds; returns the commit, whether src/ differed from it and a
    hash of the copied sources, which every ncflab line records."""
    import hashlib

    import ncflab

    package = Path(ncflab.__file__).resolve().parent
    shutil.copytree(package, dest / "ncflab", ignore=shutil.ignore_patterns("__pycache__"))
    digest = hashlib.sha256()
    for f in sorted((dest / "ncflab").rglob("*.py")):
        digest.update(f.relative_to(dest).as_posix().encode() + f.read_bytes())
    git = ["git", "-C", str(package)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()  # fmt: skip
    dirty = subprocess.run([*git, "status", "--porcelain", "--", str(package)],
                           capture_output=True, text=True, check=False).stdout  # fmt: skip
    return {"path": str(dest), "commit": commit, "dirty": bool(dirty.strip()),
            "sha256": digest.hexdigest()[:16]}  # fmt: skip


def recbole_available(python: str | None) -> bool:
    """Whether RecBole's side can run; says why not when it cannot."""
    if not python:
        print("RecBole side skipped: no --recbole-python given", file=sys.stderr)
        return False
    probe = [python, "-c", "import recbole, torch; print(recbole.__version__, torch.__version__)"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=300, check=False)
    except OSError as exc:
        print(f"RecBole side skipped: cannot run {python}: {exc}", file=sys.stderr)
        return False
    if proc.returncode:
        print(f"RecBole side skipped: {python} cannot import recbole:\n{proc.stderr[-800:]}",
              file=sys.stderr)  # fmt: skip
        return False
    print(f"RecBole side: recbole, torch = {proc.stdout.split()}", file=sys.stderr)
    return True


def write_atomic(data_dir: str | None, path: Path) -> int:
    """ML-1M as RecBole's atomic .inter file (original ids, timestamps; the rating column is
    left out: every rating is a positive); returns the number of records."""
    import pandas as pd

    from ncflab.data.datasets import load_dataset

    data = load_dataset("ml-1m", data_dir=data_dir, download=False)
    frame = pd.DataFrame({
        "user_id:token": data.user_ids[data.users], "item_id:token": data.item_ids[data.items],
        "timestamp:float": data.timestamps,
    })  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return len(frame)


def ncflab_side(args: argparse.Namespace) -> dict[str, Any]:
    """ncflab's measurement: load and split (untimed), one epoch (``history_`` seconds: the
    epoch's sampling and steps), then ``evaluate`` full ranking of the test part."""
    import resource

    import torch

    import ncflab
    from ncflab.data.datasets import load_dataset
    from ncflab.data.splits import leave_one_out
    from ncflab.evaluation.protocols import evaluate
    from ncflab.models import MODELS as REGISTRY
    from ncflab.models import FitOptions

    torch.set_num_interop_threads(1)
    data = load_dataset("ml-1m", data_dir=args.data_dir, download=False)
    split = leave_one_out(data, validation="latest")
    params = NCFLAB[args.model] | {"batch_size": BATCH[args.model], "epochs": 1, "seed": 0}
    if "epoch" not in args.what:  # evaluation only: a quick untimed fit of large batches
        params["batch_size"] = 1 << 15
    model = REGISTRY[args.model](**params)
    # CPU seconds of the epoch: from the loop's "start" event to its "epoch" event.
    cpu: dict[str, float] = {}
    mark = lambda event: cpu.setdefault(event["event"], time.process_time())  # noqa: E731
    model.fit(split.train, FitOptions(device="cpu", on_progress=mark))
    out: dict[str, Any] = {
        "library": "ncflab",
        "ncflab": getattr(ncflab, "__version__", None),
        "ncflab_from": str(Path(ncflab.__file__).parent),
        "torch": torch.__version__,
        "model": args.model,
        "train_records": len(split.train),
        "test_records": len(split.test),
        "n_users": split.n_users,
        "n_items": split.n_items,
        "config": params,
        "eval_users": args.eval_users,
        "threads": torch.get_num_threads(),
    }
    if "epoch" in args.what:
        out["epoch_seconds"] = model.history_[0]["seconds"]
        out["epoch_cpu_seconds"] = cpu["epoch"] - cpu["start"]
        out["loss"] = model.history_[0]["loss"]
    if "eval" in args.what:
        kw = {"protocol": "full", "ks": (10,), "metrics": METRICS, "batch_size": args.eval_users}
        t0, c0 = time.perf_counter(), time.process_time()
        result = evaluate(model, split, part="test", **kw)
        out["eval_seconds"] = time.perf_counter() - t0
        out["eval_cpu_seconds"] = time.process_time() - c0
        out["metrics"] = {k: round(v, 4) for k, v in result.means.items()}
    out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def report(args: argparse.Namespace, results: dict[tuple[str, str], list[dict]]) -> None:
    """Per model and measurement: RecBole's line, ncflab's line, and the ratio line. Wall
    seconds are the measurement; CPU seconds (the process's user + system time over the same
    span) are kept too, since on a shared machine waiting for a core inflates wall time."""
    for model in args.only:
        for what in args.what:
            wall: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for side in ("recbole", "ncflab"):
                runs = results.get((side, model))
                if not runs:
                    continue
                times = [r[f"{what}_seconds"] for r in runs]
                cpus = [r[f"{what}_cpu_seconds"] for r in runs]
                wall[side], cpu[side] = statistics.median(times), statistics.median(cpus)
                first = runs[0]
                keys = ("train_records", "test_records", "n_users", "n_items", "config", "torch")
                extra = {k: first[k] for k in keys}
                if what == "epoch":
                    extra |= {"loss": first["loss"], "steps": first.get("steps")}
                    batch, samples = BATCH[model], epoch_samples(model, first)
                else:
                    extra |= {"metrics": first["metrics"], "eval_users": first["eval_users"]}
                    batch, samples = first["eval_users"], None
                if side == "ncflab":
                    src = args.ncflab_src
                    extra["ncflab_src"] = {k: src[k] for k in ("commit", "dirty", "sha256")}
                    extra["ncflab_from"] = first["ncflab_from"]
                emit(args, model=model, dataset="ml-1m", seconds=wall[side], batch=batch,
                     runs=len(runs), samples=samples, library=side, what=what,
                     times=_rounded(times), cpu_seconds=round(cpu[side], 4),
                     cpu_times=_rounded(cpus), side_peak_mb=max(r["peak_mb"] for r in runs),
                     recbole=first.get("recbole"), differences=DIFFERENCES[model],
                     **extra)  # fmt: skip
            if len(wall) == 2:
                emit(args, model=model, dataset="ml-1m", seconds=wall["ncflab"],
                     runs=args.repeat, library="ratio", what=what,
                     recbole_seconds=round(wall["recbole"], 4),
                     ncflab_seconds=round(wall["ncflab"], 4),
                     ratio=round(wall["recbole"] / wall["ncflab"], 3),
                     cpu_ratio=round(cpu["recbole"] / cpu["ncflab"], 3))  # fmt: skip


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]  # a JSON line, not a float dump


def epoch_samples(model: str, run: dict) -> int:
    """What one epoch processes: NeuMF instances (positives + 1 negative each), BPR triplets,
    Mult-VAE user rows (RecBole's count includes its padding user)."""
    if model == "neumf":
        return 2 * run["train_records"]
    if model == "bpr":
        return run["train_records"]
    return run["n_users"]


if __name__ == "__main__":
    main()
