"""What every benchmark script shares: its common options, the data it times on, and one JSON
line per measurement.

A script builds its parser with ``parser(description)`` (``--threads``, ``--repeat``,
``--data-dir``, ``--device``, ``--out``), calls ``setup(args)`` (thread count, output file),
times its variants with ``timed`` or ``median_of``, and writes each measurement with
``emit(args, model=…, dataset=…, seconds=…, …)``: one line of JSON with the fields below, plus
whatever the script adds, to stdout and, with ``--out FILE``, appended to FILE. Why one format:
the figures in docs/ are tables made from these lines, and a line carries what is needed to
reproduce it (threads, batch, versions, the command). A script that compares thread counts
adds ``add_threads_list(p)`` (``--threads-list 1 2``) and loops over ``thread_counts(args)``.

Fields of every line: ``model``, ``dataset``, ``threads``, ``batch`` (None where no minibatch),
``seconds`` (median of the repeats), ``runs`` (how many), ``samples_per_s`` (when the script
says how many samples one run processes), ``peak_mb`` (the process's max RSS so far, which
includes everything measured before in the same process: scripts that compare memory run
each variant in its own process), ``torch``, ``numpy``, ``python``, ``cpus``, ``command``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "add_threads_list", "emit", "load_split", "median_of", "parser", "peak_mb", "setup",
    "thread_counts", "timed",
]  # fmt: skip


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch (intra-op) threads; default 1")
    p.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is kept")
    p.add_argument("--data-dir", default=os.environ.get("NCFLAB_DATA_DIR"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    return p


def setup(args: argparse.Namespace) -> None:
    """Apply the common options: the thread count (set explicitly: a shared machine's default
    is every core, which makes timings depend on what else runs)."""
    torch.set_num_threads(args.threads)


def add_threads_list(p: argparse.ArgumentParser) -> None:
    """``--threads-list N [N ...]``: thread counts to measure one after another, in place of
    the single ``--threads``."""
    p.add_argument("--threads-list", type=int, nargs="+", metavar="N",
                   help="thread counts to measure in turn (instead of --threads)")  # fmt: skip


def thread_counts(args: argparse.Namespace) -> Iterator[argparse.Namespace]:
    """Per thread count of ``--threads-list`` (or ``--threads`` alone): a copy of ``args`` with
    ``threads`` set to it, torch's thread count set too, to pass to ``emit``."""
    for n in getattr(args, "threads_list", None) or [args.threads]:
        torch.set_num_threads(n)
        yield argparse.Namespace(**{**vars(args), "threads": n})


def peak_mb() -> float:
    """The process's peak resident memory so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    """The median and all wall times of ``repeat`` calls of ``fn``."""
    times = [timed(fn) for _ in range(max(1, repeat))]
    return statistics.median(times), times


def emit(
    args: argparse.Namespace,
    *,
    model: str,
    dataset: str,
    seconds: float,
    batch: int | None = None,
    runs: int = 1,
    samples: int | None = None,
    **extra: Any,
) -> dict:
    """Print (and append to ``args.out``) one measurement as a JSON line; returns it."""
    row: dict[str, Any] = {
        "model": model, "dataset": dataset, "threads": args.threads, "batch": batch,
        "seconds": round(float(seconds), 4), "runs": runs,
    }  # fmt: skip
    if samples is not None:
        row["samples_per_s"] = round(samples / seconds) if seconds > 0 else None
    row |= {k: _plain(v) for k, v in extra.items()}
    row |= {
        "peak_mb": round(peak_mb()), "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
    }  # fmt: skip
    line = json.dumps(row)
    print(line, flush=True)
    if getattr(args, "out", None) is not None:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return row


def load_split(name: str, protocol: str, data_dir: str | None, seed: int = 0):
    """The named dataset split by a preset protocol, as ``ncflab train -d NAME -p PROTOCOL``
    would split it (local files only: a benchmark never downloads). A name ``UxIxR`` (e.g.
    ``100000x20000x2000000``) is synthetic power-law ratings of U users, I items and R records
    (``ncflab.data.synthetic.power_law_ratings``, seed 0) instead."""
    from ncflab.data.datasets import load_dataset
    from ncflab.experiments.presets import get_protocol, make_split

    if "x" in name and all(part.isdigit() for part in name.split("x")):
        from ncflab.data.interactions import Interactions
        from ncflab.data.synthetic import power_law_ratings

        users, items, records = (int(part) for part in name.split("x"))
        data = Interactions.from_frame(power_law_ratings(users, items, records, seed=0))
    else:
        data = load_dataset(name, data_dir=data_dir, download=False)
    return make_split(get_protocol(protocol), data, seed=seed)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (json cannot write them)."""
    return value.item() if isinstance(value, np.generic) else value
