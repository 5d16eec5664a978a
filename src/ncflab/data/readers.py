"""File formats → tidy frames with columns ``user, item[, rating, timestamp]``.

Every reader parses with the pandas C parser (about 0.2 s per million lines; ``::`` files are
rewritten to tabs in memory first, since a multi-character separator would force the slow Python
engine) and then validates the result with whole-column checks, so a bad file fails with a
:class:`DataFormatError` that names the file, the line number and the offending value instead of
turning into NaN ids or silently shifted columns. Ids are kept as they are in the file: integers
where the column is numeric, strings otherwise (Amazon ids are always read as strings, as ASINs
such as ``0001234567`` would lose their leading zeros).

A user's own files are read by :mod:`ncflab.data.user_files` with the same checks.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DataFormatError",
    "read_amazon",
    "read_jca",
    "read_movielens",
    "read_ncf_negatives",
    "read_ncf_rating",
    "read_table",
]

log = logging.getLogger(__name__)

COLUMNS = ("user", "item", "rating", "timestamp")


class DataFormatError(ValueError):
    """A data file does not have the expected format (the message names file, line and value)."""


# ------------------------------------------------------------------------------ public readers
def read_movielens(path: str | Path) -> pd.DataFrame:
    """A MovieLens ratings file as ``user, item, rating, timestamp``.

    The format follows the file name: ``u.data`` (ML-100K, tab-separated), ``ratings.dat``
    (ML-1M / ML-10M, ``::``-separated), ``ratings.csv`` (ML-20M / ML-25M / ml-latest-small,
    comma-separated with a header). A directory is searched for one of these names.

    Returns:
        (n, 4) frame: int64 user and item ids, float32 ratings, int64 unix timestamps.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("u.data", "ratings.dat", "ratings.csv") if (path / n).is_file()]
        if not found:
            raise FileNotFoundError(
                f"no MovieLens ratings file (u.data, ratings.dat or ratings.csv) in {path}"
            )
        path = found[0]
    name = path.name.removesuffix(".gz")
    if name.endswith(".dat"):
        return _read_delimited(path, "::", header=False)
    if name.endswith(".csv"):
        return _read_delimited(path, ",", header=True)
    return _read_delimited(path, "\t", header=False)


def read_amazon(path: str | Path) -> pd.DataFrame:
    """An Amazon ratings-only file as ``user, item, rating, timestamp``.

    Two layouts: McAuley's 2014 ``ratings_<Category>.csv`` (comma-separated, no header,
    ``reviewerID,asin,rating,unixtime``; ids read as strings) and the DMF authors' pruned file
    ``Amazon_ratings_Digital_Music_pruned.txt`` (space-separated, 0-based integer ids).
    """
    path = Path(path)
    first = _first_line(path)
    if "," in first:
        return _read_delimited(path, ",", header=False, id_dtype=str)
    return _read_delimited(path, r"\s+", header=False)


def read_ncf_rating(path: str | Path) -> pd.DataFrame:
    """An NCF benchmark ``*.train.rating`` / ``*.test.rating`` file (He et al. 2017, ``Data/``).

    Tab-separated ``user item rating timestamp`` with 0-based integer ids.
    """
    return _read_delimited(Path(path), "\t", header=False)


def read_ncf_negatives(path: str | Path) -> pd.DataFrame:
    """An NCF ``*.test.negative`` file: ``(user,item)\\tneg1\\tneg2…`` per line.

    Returns:
        (n_users, 2 + n_neg) wide frame: ``user``, ``item`` (the held-out test item of that
        line) and ``neg_0 … neg_{n_neg-1}``, all int64, in file order. This is the wide form
        accepted by ``split_from_frames(negatives=...)`` (which ignores the ``item`` column).
    """
    path = Path(path)
    raw = _parse(path, "\t", header=False, dtype=None)
    width = raw.shape[1]
    _check_missing(raw, path, header=False, what=f"{width} tab-separated fields")
    pair = raw[0].astype(str).str.extract(r"^\((-?\d+),(-?\d+)\)$")
    bad = pair[0].isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}, line {_line(raw.index[row], False)}: first field {raw.iat[row, 0]!r} is "
            "not '(user,item)'"
        )
    out = {"user": pair[0].to_numpy(np.int64), "item": pair[1].to_numpy(np.int64)}
    for j in range(width - 1):  # one pass per negative column, each vectorised over users
        out[f"neg_{j}"] = _check_integer(raw.iloc[:, j + 1], path, False, "negative item id")
    return pd.DataFrame(out)


def read_table(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    sep: str | None = None,
    header: bool = True,
    *,
    integer_ids: bool = False,
) -> pd.DataFrame:
    """A generic CSV / TSV / parquet file (optionally gzip-compressed) as a tidy frame.

    Args:
        path: the file; ``.parquet``/``.pq`` is read with pyarrow, anything else as text.
        columns: our name → the file's column name, e.g. ``{"user": "userId", "item":
            "movieId"}`` (JCA's split files). ``user`` and ``item`` are required, ``rating`` and
            ``timestamp`` optional. None means the file already uses our names (those present
            are taken). Without a header, give the column positions as strings ``"0"``, ``"1"``…
        sep: field separator; None picks it from the extension (``.csv`` comma, ``.tsv`` /
            ``.tab`` tab) or else from the first line (tab, comma, semicolon or whitespace).
        header: whether the first line holds column names.
        integer_ids: user and item ids must be integers: int64, also when written as floats
            (``1.0``); a non-integral id is a ``DataFormatError`` naming the line.
    """
    path = Path(path)
    suffix = path.name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    if suffix in ("parquet", "pq"):
        frame = pd.read_parquet(path)
        header = False  # so messages number parquet rows from 1
    else:
        frame = _parse(path, sep or _guess_sep(path, suffix), header=header, dtype=None)
        if not header:
            frame.columns = [str(c) for c in frame.columns]
    mapping = _column_mapping(list(frame.columns), columns, path)
    frame = frame[list(mapping.values())].set_axis(list(mapping), axis=1)
    if integer_ids:
        _check_missing(frame, path, header, what=f"a value in each of {list(frame.columns)}")
        for role in ("user", "item"):
            frame[role] = _check_integer(frame[role], path, header, f"{role} id")
    return _tidy(frame, path, header=header)


def read_jca(path: str | Path, item_column: str = "movieId") -> pd.DataFrame:
    """A JCA split file (Zhu et al. 2019; the authors' ``data/<dataset>/{train,vali,test}.csv``).

    Comma-separated with a header ``userId,<item_column>`` (``movieId`` for ml-1m, ``itemId`` for
    yelp and VideoGame, as the authors' ``data_preprocessor.py`` reads them); other columns are
    ignored. Ids become int64: VideoGame's are written as floats (``1.0``), and a non-integral
    one (``1.5``) is refused with the file, line and value.
    """
    columns = {"user": "userId", "item": item_column}
    return read_table(path, columns=columns, sep=",", integer_ids=True)


# ------------------------------------------------------------------------------- user files
def _read_delimited(
    path: Path, sep: str, header: bool, id_dtype: type | None = None
) -> pd.DataFrame:
    """A ``user item rating timestamp`` file (exactly four fields a line) as a tidy frame."""
    dtype = None if id_dtype is None else {0: id_dtype, 1: id_dtype}
    raw = _parse(path, sep, header=header, dtype=dtype)
    if raw.shape[1] != 4:
        line = 2 if header else 1
        raise DataFormatError(
            f"{path}, line {line}: {raw.shape[1]} fields, expected 4 (user, item, rating, "
            f"timestamp) separated by {sep!r}"
        )
    raw.columns = list(COLUMNS)
    return _tidy(raw, path, header=header)


def _parse(
    path: Path, sep: str, header: bool, dtype: dict | type | None, only_empty_na: bool = False
) -> pd.DataFrame:
    """Raw parse with the C parser; blank lines kept as all-NaN rows so row i is line i+1.

    ``only_empty_na``: only an empty field is missing, so ids such as ``NA`` or ``null`` in a
    user's file stay ids instead of becoming NaN (pandas' default list of NaN spellings)."""
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    source: Path | io.BytesIO = path
    if sep == "::":
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        source, sep = io.BytesIO(data.replace(b"::", b"\t")), "\t"
    try:
        frame = pd.read_csv(
            source,
            sep=sep,
            header=0 if header else None,
            dtype=dtype,
            skip_blank_lines=False,
            low_memory=False,  # one dtype per column, not one per chunk
            compression="infer" if isinstance(source, Path) else None,
            keep_default_na=not only_empty_na,
            na_values=[""] if only_empty_na else None,
        )
    except pd.errors.EmptyDataError as err:
        raise DataFormatError(f"{path} is empty: expected rating records") from err
    except pd.errors.ParserError as err:
        raise DataFormatError(f"{path}: malformed line: {_parser_detail(err)}") from err
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes a first data line with one field more than the header for an index
        # column, shifting every column by one: refuse it instead.
        raise DataFormatError(
            f"{path}, line 2: {frame.shape[1] + 1} fields, but the header names "
            f"{frame.shape[1]} columns {list(frame.columns)}"
        )
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.all():
        raise DataFormatError(f"{path} is empty: expected rating records")
    if blank.any():
        log.info("%s: skipped %d blank line(s)", path, int(blank.sum()))
        frame = frame[~blank]  # the index keeps the row number for messages
        # Blank lines forced NaN (so float) into integer columns: give them back their ints.
        for col in frame.columns:
            values = frame[col].to_numpy()
            if values.dtype.kind == "f" and np.array_equal(values, np.round(values)):
                frame[col] = values.astype(np.int64)
    return frame


def _parser_detail(err: Exception) -> str:
    """pandas' 'Expected 4 fields in line 3, saw 5' without the tokenizer preamble."""
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
    if match:
        want, line, saw = match.groups()
        return f"line {line} has {saw} fields, expected {want}"
    return str(err)


def _first_line(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line
    raise DataFormatError(f"{path} is empty: expected rating records")


def _guess_sep(path: Path, suffix: str) -> str:
    if suffix == "csv":
        return ","
    if suffix in ("tsv", "tab"):
        return "\t"
    first = _first_line(path)
    for sep in ("\t", ",", ";"):
        if sep in first:
            return sep
    return r"\s+"


def _column_mapping(names: list, columns: Mapping[str, str] | None, path: Path) -> dict[str, str]:
    """Our column name → the file's column name; required ones must exist."""
    if columns is None:
        columns = {c: c for c in COLUMNS if c in names}
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown target column(s) {unknown}; expected some of {COLUMNS}")
    missing_target = [c for c in ("user", "item") if c not in columns]
    absent = [src for src in columns.values() if src not in names]
    if missing_target or absent:
        raise DataFormatError(
            f"{path}: missing column(s) {missing_target + absent}; the file has columns "
            f"{list(names)}; map them with columns={{'user': ..., 'item': ...}}"
            + _headerless_hint(names)
        )
    return {c: columns[c] for c in COLUMNS if c in columns}


def _headerless_hint(names: list) -> str:
    """A hint when the 'column names' are numbers: the file probably has no header line."""
    numeric = pd.to_numeric(pd.Series([str(n) for n in names]), errors="coerce").notna()
    if len(names) and numeric.all():
        return "; its first line looks like data, not column names: add a header line"
    return ""


# ------------------------------------------------------------------------- validation helpers
def _tidy(frame: pd.DataFrame, path: Path, header: bool) -> pd.DataFrame:
    """Check every column and give ratings float32, timestamps int64; ids are kept as read."""
    _check_missing(frame, path, header, what=f"a value in each of {list(frame.columns)}")
    out = {"user": frame["user"].to_numpy(), "item": frame["item"].to_numpy()}
    if "rating" in frame:
        out["rating"] = _check_number(frame["rating"], path, header).astype(np.float32)
    if "timestamp" in frame:
        out["timestamp"] = _check_integer(frame["timestamp"], path, header, "timestamp")
    return pd.DataFrame(out)


def _line(frame_index: object, header: bool) -> int:
    return int(frame_index) + (2 if header else 1)


def _show(value: object) -> str:
    """repr of a cell as the user wrote it (plain Python, not ``np.float64(...)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _check_missing(frame: pd.DataFrame, path: Path, header: bool, what: str) -> None:
    missing = frame.isna().any(axis=1).to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        absent = frame.iloc[row].isna().to_numpy()
        columns = [c for c, gone in zip(frame.columns, absent, strict=True) if gone]
        raise DataFormatError(
            f"{path}, line {_line(frame.index[row], header)}: missing field(s) {columns} "
            f"({int((~absent).sum())} of {frame.shape[1]} present), expected {what}; "
            f"{int(missing.sum())} such line(s) in all"
        )


def _check_number(col: pd.Series, path: Path, header: bool) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}, line {_line(col.index[row], header)}: rating {_show(col.iloc[row])} is not a "
            f"number; {int(bad.sum())} bad rating(s) in all"
        )
    return values


def _check_integer(col: pd.Series, path: Path, header: bool, what: str) -> np.ndarray:
    if col.dtype.kind in "iu":
        return col.to_numpy(np.int64)
    values = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}, line {_line(col.index[row], header)}: {what} {_show(col.iloc[row])} is "
            f"not an integer; {int(bad.sum())} bad value(s) in all"
        )
    return values.astype(np.int64)
