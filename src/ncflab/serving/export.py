"""Top-K recommendations for many users of a fitted model, streamed to one Parquet file.

``Recommender.recommend`` answers for a few users in memory; an export covers every user of a
dataset, so it scores one batch of users at a time and appends each batch to the file through
one ``ParquetWriter``: peak memory is one batch of scores (batch × n_items float32), whatever
the number of users. Masking and top-K stay in ``ncflab.evaluation.topk.top_k`` (reached
through ``model.recommend``), so an exported list is the list ``ncflab recommend`` prints.

The file is long form, one row per (user, recommended item): ``user`` and ``item`` in the
data's original ids (their dtype kept: int64 for MovieLens, string for text ids), ``rank``
1..K (int32) and ``score`` (float32). It is written under a temporary name beside the output
and renamed when complete, so a killed export never leaves a partial file under the name.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from ncflab.data.splits import Split
    from ncflab.models.base import Recommender

__all__ = [
    "ExportSummary",
    "check_export",
    "count_of",
    "export_recommendations",
    "id_indices",
    "id_positions",
    "named",
    "read_users_file",
    "user_indices",
]

SHOWN = 10  # ids an error message names at most (then "and N more")
INT64 = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote.

    Attributes:
        out: the Parquet file.
        users: users exported.
        rows: rows written (at most users × k).
        k: the cut-off asked for.
        short: users given fewer than k items (they already have almost every item).
        seconds: wall time of scoring and writing.
    """

    out: Path
    users: int
    rows: int
    k: int
    short: int
    seconds: float


def export_recommendations(
    model: Recommender,
    split: Split,
    out: str | Path,
    k: int,
    users: Sequence[object] | np.ndarray | None = None,
    batch_size: int = 1024,
    *,
    overwrite: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write the top-``k`` items of each user to the Parquet file ``out``, best first, never an
    item the user has in train, valid or test (``split.known_positives()``, as ``ncflab
    recommend`` excludes). A user with fewer than ``k`` such items gets all of them: the
    padding ``top_k`` returns (item -1) is never written.

    Args:
        model: the fitted model (``load_run``'s).
        split: the split it was fitted on (its id maps and known positives).
        out: the file to write; an existing one is refused unless ``overwrite``.
        k: items per user, a positive integer; k ≥ n_items gives every unseen item.
        users: original user ids to export, in this order (each once); None: every user of
            the split in index order. Unknown or repeated ids raise an error naming them.
        batch_size: users scored at a time; memory grows with it, the file does not change.
        overwrite: replace an existing ``out``.
        on_batch: called after each batch with (users done, users in all), for progress.
    """
    out = Path(out)
    check_export(out, k, batch_size, overwrite=overwrite)
    ids = split.train.user_ids
    index = np.arange(len(ids), dtype=np.int64) if users is None else user_indices(users, ids)
    start = time.perf_counter()
    exclude = split.known_positives()  # built once, not per batch
    schema = _schema(split)
    rows = short = 0
    # The temporary name of runs.atomic_write: beside the output (same file system, so the
    # rename is atomic), and unique to this process.
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for lo in range(0, len(index), batch_size):
                batch = index[lo : lo + batch_size]
                items, scores = model.recommend(batch, k, exclude=exclude)
                table, kept = _batch_table(batch, items, scores, split, schema)
                writer.write_table(table)
                rows += table.num_rows
                short += int((kept < k).sum())
                if on_batch is not None:
                    on_batch(lo + len(batch), len(index))
        # Checked again: another process may have written the output in the meantime.
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} appeared while exporting; nothing was replaced")
        os.replace(tmp, out)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    return ExportSummary(out, len(index), rows, k, short, seconds)


def check_export(out: str | Path, k: int, batch_size: int, *, overwrite: bool = False) -> None:
    """Refuse arguments an export would fail on, before any scoring (the CLI calls it before
    loading the run, which takes longer than the check)."""
    for name, value in (("k", k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"output {out} is a directory; give the path of a .parquet file")
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; --force (overwrite=True) replaces it")


def user_indices(values: Sequence[object] | np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The indices of the original user ids ``values`` among ``ids`` (the split's
    ``train.user_ids``), in order. Text values are read as the ids' type ("42" is user 42 of
    MovieLens). No id, an unknown id or an id given twice is an error naming them."""
    return id_indices(values, ids, "user")


def id_indices(
    values: Sequence[object] | np.ndarray,
    ids: np.ndarray,
    what: str,
    unknown: type[Exception] = KeyError,
    repeated: type[Exception] = ValueError,
) -> np.ndarray:
    """Indices of the original ``what`` ids ``values`` among ``ids``, in order (text read as
    the ids' type); no id or an id given twice raises ``repeated``, an unknown id ``unknown``
    (a caller chooses the types: the service's carry an HTTP status), each naming them."""
    values = list(values)
    if not values:
        raise repeated(f"no {what} ids given")
    pos = id_positions(values, ids)
    missing = list(dict.fromkeys(str(values[i]) for i in np.flatnonzero(pos < 0)))
    if missing:
        raise unknown(
            f"{count_of(missing, f'unknown {what} id')} (not in the run's data): {named(missing)}"
        )
    _, first, counts = np.unique(pos, return_index=True, return_counts=True)
    twice = [str(values[i]) for i in np.sort(first[counts > 1])]
    if twice:
        raise repeated(f"{count_of(twice, f'{what} id')} listed more than once: {named(twice)}")
    return pos


def read_users_file(path: str | Path) -> list[str]:
    """The user ids a file lists, as written: one id per line, or a CSV whose header names a
    ``user`` column (a first line that is just ``user`` is such a header). Blank lines are
    skipped; a file without ids is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"users file {path} not found")
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's BOM
        reader = csv.reader(fh)
        lines = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    col = 0
    if lines:
        header = [c.strip().lower() for c in lines[0][1]]
        if len(header) > 1 or header == ["user"]:
            if "user" not in header:
                raise ValueError(
                    f"users file {path} has columns {lines[0][1]} and none is 'user': give one "
                    "user id per line, or name the column of ids 'user'"
                )
            col, lines = header.index("user"), lines[1:]
    if not lines:
        raise ValueError(f"users file {path} lists no user ids (it is empty)")
    width = len(lines[0][1])
    for line, row in lines:
        if len(row) != width or not row[col].strip():
            raise ValueError(
                f"users file {path}, line {line}: {row} is not {width} field(s) with a user id"
            )
    return [row[col].strip() for _, row in lines]


def id_positions(values: list[object], ids: np.ndarray) -> np.ndarray:
    """Index of each value in ``ids``, -1 where it is none of them (text read as the ids'
    type: "42" is id 42 when the ids are integers)."""
    index = pd.Index(ids)
    if ids.dtype.kind in "iu":
        parsed = [_as_int(v) for v in values]
        ok = np.array([p is not None for p in parsed], dtype=bool)
        pos = np.full(len(values), -1, dtype=np.int64)
        if ok.any():
            found = np.array([p for p in parsed if p is not None], dtype=np.int64)
            pos[ok] = index.get_indexer(found)
        return pos
    if ids.dtype.kind in "OUS":
        wanted = np.array([str(v) for v in values], dtype=object)
    else:
        wanted = np.asarray(values)
    return index.get_indexer(wanted).astype(np.int64)


def _as_int(value: object) -> int | None:
    """An integer id from an int or its text, None when it cannot be an int64 id."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value) if isinstance(value, int | np.integer | str) else None
    except ValueError:
        return None
    return number if number is not None and INT64[0] <= number <= INT64[1] else None


def count_of(names: list[str], what: str) -> str:
    """ "3 unknown user ids", "1 user id": a count for an error message."""
    return f"{len(names)} {what}{'s' if len(names) > 1 else ''}"


def named(names: list[str]) -> str:
    """The first ``SHOWN`` names, then "and N more": ids an error message lists."""
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _schema(split: Split) -> pa.Schema:
    """Fixed up front: every batch is written with it, the ids in the data's own type."""
    return pa.schema(
        [
            ("user", _id_type(split.train.user_ids)),
            ("rank", pa.int32()),
            ("item", _id_type(split.train.item_ids)),
            ("score", pa.float32()),
        ]
    )


def _id_type(ids: np.ndarray) -> pa.DataType:
    if ids.dtype.kind in "iu":
        return pa.from_numpy_dtype(ids.dtype)
    if ids.dtype.kind in "OUS":
        return pa.string()
    return pa.array(ids[:1]).type


def _batch_table(
    users: np.ndarray, items: np.ndarray, scores: np.ndarray, split: Split, schema: pa.Schema
) -> tuple[pa.Table, np.ndarray]:
    """One batch's rows, and how many items each user got. ``top_k`` pads a row with item -1
    after the user's allowed items; the padding is dropped here."""
    kept = items >= 0
    counts = kept.sum(axis=1)
    # Rank among the kept items: an allowed item a model scores -inf ties with the padding and
    # may sort after it, and a rank must still run 1, 2, 3 without gaps.
    ranks = np.cumsum(kept, axis=1, dtype=np.int32)[kept]
    columns = [
        np.repeat(split.train.user_ids[users], counts),
        ranks,
        split.train.item_ids[items[kept]],
        scores[kept].astype(np.float32, copy=False),
    ]
    arrays = [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema), counts
