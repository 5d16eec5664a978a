"""The committed summary of one finished cell: small, complete enough to report from.

``results/<paper>/<experiment>/<profile>/<row id>/<dataset>/seed-<S>.json`` holds::

    {
      "format": 1,
      "experiment": "jncf/table5", "profile": "quick",
      "row": "jncf", "label": "J-NCFc", "role": "model", "dataset": "ml-100k", "seed": 0,
      "config": {...},              # the run's resolved config (RunConfig.to_dict())
      "fingerprint": {"data": ..., "split": ...},
      "valid": {"HR@10": ...}, "test": {"HR@10": ..., "NDCG@10": ...},
      "history": [{"epoch", "loss", "metrics", "seconds", "eval_seconds"}, ...],
      "best_epoch": 12 | null, "fit_seconds": 31.2, "refit": null, "tuning": {...} | null,
      "provenance": {...},          # ncflab version and commit, library versions, threads
      "per_user": "seed-0.per_user.csv.gz"   # beside it: user id + each per-user metric
    }

The model weights are not kept: a summary is what a table needs, a few KB per cell.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ncflab.runs import jsonable

__all__ = ["SUMMARY_FORMAT", "read_per_user", "read_summaries", "summary_path", "write_summary"]

SUMMARY_FORMAT = 1


def summary_path(results: Path, paper: str, experiment: str, profile: str, key: str) -> Path:
    """Where the summary of cell ``key`` (``row/dataset/seed-S``) is kept."""
    return results / paper / experiment / profile / f"{key}.json"


def write_summary(path: Path, record: dict[str, Any], per_user: pd.DataFrame) -> None:
    """Write a cell's summary and its per-user metrics (gzip CSV, byte-stable: no time in the
    gzip header, so a rerun with equal figures changes no committed file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.removesuffix(".json") + ".per_user.csv.gz"
    text = per_user.to_csv(index=False, float_format="%.6g")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as fh:
        fh.write(text.encode())
    (path.parent / name).write_bytes(buffer.getvalue())
    record = {"format": SUMMARY_FORMAT, **record, "per_user": name}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=jsonable) + "\n")
    tmp.replace(path)  # the summary last: it marks the cell finished


def read_summaries(folder: Path) -> list[dict[str, Any]]:
    """Every summary under ``folder`` (one experiment and profile), sorted by path."""
    out = []
    for path in sorted(folder.rglob("*.json")):
        record = json.loads(path.read_text())
        if record.get("format") == SUMMARY_FORMAT:
            out.append({**record, "_path": str(path)})
    return out


def read_per_user(summary: dict[str, Any], **read_csv: Any) -> pd.DataFrame:
    """The per-user metrics of a summary read by ``read_summaries`` (``read_csv``: more
    arguments of ``pandas.read_csv``, e.g. a column's dtype)."""
    return pd.read_csv(Path(summary["_path"]).parent / summary["per_user"], **read_csv)
