"""File formats → tidy frames with columns ``user, item[, rating, timestamp]``.

Every reader parses with the pandas C parser (about 0.2 s per million lines; ``::`` files are
rewritten to tabs in memory first, since a multi-character separator would force the slow Python
engine) and then validates the result with whole-column checks, so a bad file fails with a
:class:`DataFormatError` that names the file, the line number and the offending value instead of
turning into NaN ids or silently shifted columns. Ids are kept as they are in the file: integers
where the column is numeric, strings otherwise (Amazon ids are always read as strings, as ASINs
such as ``0001234567`` would lose their leading zeros).

A user's own files (:func:`read_user_file`, :func:`read_split_files`) are read with ids as text
first and become int64 only when every id of the file is a plain integer, so ``007`` stays
``"007"`` rather than turning into 7 and meeting another user's id.
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
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DataFormatError",
    "read_amazon",
    "read_jca",
    "read_movielens",
    "read_ncf_negatives",
    "read_ncf_rating",
    "read_negatives_file",
    "read_split_files",
    "read_table",
    "read_user_file",
]

log = logging.getLogger(__name__)

COLUMNS = ("user", "item", "rating", "timestamp")
SPLIT_PARTS = ("train", "valid", "test", "negatives")

# Column names a user's file may use for each role without a mapping (compared in lower case).
# Only used when exactly one column of the file matches a role; otherwise columns= is required.
_ROLE_NAMES = {
    "user": ("user", "userid", "user_id"),
    "item": ("item", "itemid", "item_id", "movieid", "movie_id"),
    "rating": ("rating",),
    "timestamp": ("timestamp",),
}
_TEXT_SEPS = {"csv": ",", "tsv": "\t", "tab": "\t"}
_PARQUET = ("parquet", "pq")
# A plain integer as text: no leading zero, no "+" or "-0", at most 19 digits (int64's width;
# a larger value fails the cast and keeps every id of the column as text).
_PLAIN_INT = r"\s*(?:0|-?[1-9]\d{0,18})\s*"


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
def read_user_file(
    path: str | Path, *, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """A user's own ratings file as ``user, item[, rating, timestamp]``.

    The format follows the extension: ``.csv`` (comma), ``.tsv`` / ``.tab`` (tab), each
    optionally ``.gz``-compressed, or ``.parquet`` / ``.pq``. Text files need a header line.
    Records are checked like the named datasets' (a missing value, a non-numeric rating, a
    non-integer timestamp or an empty file is a :class:`DataFormatError` naming the file, the
    line and the value); no record is changed or dropped.

    Args:
        path: the file.
        columns: our role → the file's column name, e.g. ``{"user": "uid", "item": "sku",
            "rating": "stars"}``; a role it does not name (or all, when None) takes the one other
            column named for it, case-insensitively —
            user: ``user``, ``userId``, ``user_id``; item: ``item``, ``itemId``, ``item_id``,
            ``movieId``, ``movie_id``; ``rating``; ``timestamp`` (the last two optional). Two
            columns matching one role is an error asking for ``columns``.
        sep: the field separator of a text file with another extension (``.txt``, ``.dat``);
            it overrides the extension's.

    Returns:
        (n, 2..4) frame in file order: ids int64 when every id of the column is a plain integer,
        else as written (text; parquet ids keep their stored type); float32 ratings; int64
        timestamps.
    """
    path = Path(path)
    fmt = _user_format(path, sep)
    if fmt == "parquet":
        frame, header = _read_parquet(path), False  # messages number parquet rows from 1
        mapping = _user_columns(list(frame.columns), columns, path)
    else:
        mapping = _user_columns(_header_names(path, fmt), columns, path)
        ids = {mapping["user"]: str, mapping["item"]: str}  # as written: "007" is not 7
        frame, header = _parse(path, fmt, header=True, dtype=ids, only_empty_na=True), True
    frame = frame[list(mapping.values())].set_axis(list(mapping), axis=1)
    if frame.empty:
        raise DataFormatError(f"{path} is empty: expected rating records")
    if fmt != "parquet":
        _check_missing(frame, path, header, what=f"a value in each of {list(frame.columns)}")
        frame["user"], frame["item"] = _plain_ids(frame["user"]), _plain_ids(frame["item"])
    return _tidy(frame, path, header=header)


def read_negatives_file(
    path: str | Path, *, columns: Mapping[str, str] | None = None, sep: str | None = None
) -> pd.DataFrame:
    """Sampled negatives for a user's own split, in one of three layouts.

    - NCF's ``.test.negative`` (``(user,item)\\tneg\\tneg…``; recognised by the ``.negative``
      extension or a first field starting with ``(``): as :func:`read_ncf_negatives`.
    - Wide, with a header: the user column, optionally the held-out item column, and one column
      per negative (``user,neg_0,neg_1,…``): one row per user.
    - Long: only a user and an item column (``user,item``): one row per negative.

    The user and item columns are found as in :func:`read_user_file` (``columns["user"]`` /
    ``columns["item"]`` or the usual names); every other column is a negative.

    Returns:
        ``user``, [``item``,] ``neg_0…neg_{k-1}`` (wide) or ``user, item`` (long): the forms
        ``split_from_frames(negatives=...)`` accepts; ids as in :func:`read_user_file`.
    """
    path = Path(path)
    fmt = _user_format(path, sep) if not _is_ncf_negatives(path) else "ncf"
    if fmt == "ncf":
        return read_ncf_negatives(path)
    if fmt == "parquet":
        raw, header = _read_parquet(path), False
    else:
        raw, header = _parse(path, fmt, header=True, dtype=str, only_empty_na=True), True
    if raw.empty:
        raise DataFormatError(f"{path} is empty: expected a user and its negative items per line")
    mapping = dict(columns or {})
    user = mapping.get("user") or _role_column(list(raw.columns), "user", path, required=True)
    item = mapping.get("item") if mapping.get("item") in raw.columns else None
    item = item or _role_column([c for c in raw.columns if c != user], "item", path)
    if user not in raw.columns:
        raise DataFormatError(f"{path}: missing user column {user!r}; it has {list(raw.columns)}")
    negs = [c for c in raw.columns if c not in (user, item)]
    _check_missing(raw, path, header, what=f"a value in each of {list(raw.columns)}")
    fix = np.asarray if fmt == "parquet" else _plain_ids
    out = {"user": fix(raw[user])}
    if item is not None:
        out["item"] = fix(raw[item])
    if negs:  # all negatives decided together, so one odd id keeps them all as text
        values = fix(pd.Series(raw[negs].to_numpy().reshape(-1)))
        out |= {f"neg_{j}": values[j :: len(negs)] for j in range(len(negs))}
    elif item is None:
        raise DataFormatError(f"{path}: no negative item column besides the user column {user!r}")
    return pd.DataFrame(out)


def read_split_files(
    paths: Mapping[str, str | Path],
    *,
    columns: Mapping[str, str] | None = None,
    sep: str | None = None,
) -> dict[str, pd.DataFrame]:
    """A user's own published split: the parts read with :func:`read_user_file`, the
    negatives with :func:`read_negatives_file`.

    Args:
        paths: part → file; "train" and "test" required, "valid" and "negatives" optional.
        columns, sep: as in :func:`read_user_file`, for every file.

    Returns:
        part → frame, ready for ``split_from_frames(d["train"], d["test"], d.get("valid"),
        d.get("negatives"))``.

    Raises:
        ValueError: an unknown or missing part, or ids of one role written as integers in one
            file and as text in another (they could not match; the message shows an example).
    """
    unknown = sorted(set(paths) - set(SPLIT_PARTS))
    missing = [part for part in ("train", "test") if part not in paths]
    if unknown or missing:
        raise ValueError(
            f"split parts {sorted(paths)}: unknown {unknown}, missing {missing}; expected "
            f"train and test, optionally valid and negatives"
        )
    out = {
        part: read_user_file(paths[part], columns=columns, sep=sep)
        for part in ("train", "valid", "test")
        if part in paths
    }
    if "negatives" in paths:
        out["negatives"] = read_negatives_file(paths["negatives"], columns=columns, sep=sep)
    _check_id_kinds(out, paths)
    return out


def _user_format(path: Path, sep: str | None) -> str:
    """The format of a user's file: "parquet", or the field separator of a text file."""
    name = path.name.lower()
    suffix = name.removesuffix(".gz").rsplit(".", 1)[-1] if "." in name else ""
    if suffix in _PARQUET:
        if sep is not None:
            raise ValueError(f"sep={sep!r} applies to text files, and {path} is parquet")
        return "parquet"
    if sep is not None:
        return sep
    if suffix in _TEXT_SEPS:
        return _TEXT_SEPS[suffix]
    raise ValueError(
        f"cannot tell the format of {path} from its extension {('.' + suffix)!r}: expected "
        ".csv, .tsv or .tab (optionally .gz) or .parquet / .pq; for another text file pass sep"
    )


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    return pd.read_parquet(path)


def _is_ncf_negatives(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".negative"):
        return True
    suffix = name.rsplit(".", 1)[-1]
    return suffix not in _PARQUET and _first_line(path).lstrip().startswith("(")


def _header_names(path: Path, sep: str) -> list:
    """The column names on a text file's first line."""
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    engine = "python" if len(sep) > 1 else "c"  # "::" or a regex
    try:
        return list(pd.read_csv(path, sep=sep, nrows=0, engine=engine).columns)
    except pd.errors.EmptyDataError as err:
        raise DataFormatError(f"{path} is empty: expected a header line and records") from err


def _user_columns(names: list, columns: Mapping[str, str] | None, path: Path) -> dict[str, str]:
    """Role → file column: the given mapping for the roles it names, and for every other role
    the one column named for it (so mapping only ``user`` and ``item`` still finds a column
    called ``timestamp``, which a leave-one-out split needs)."""
    given = dict(columns or {})
    unknown = sorted(set(given) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown target column(s) {unknown}; expected some of {COLUMNS}")
    absent = [src for src in given.values() if src not in names]
    if absent:
        raise DataFormatError(
            f"{path}: missing column(s) {absent}; the file has columns {list(names)}"
            + _headerless_hint(names)
        )
    rest = [n for n in names if n not in given.values()]
    found = {}
    for role in COLUMNS:  # four roles, not a loop over records
        column = given.get(role) or _role_column(
            rest, role, path, required=role in ("user", "item")
        )
        if column is not None:
            found[role] = column
    if any(found[r] != r for r in found):
        log.info("%s: columns %s", path, found)
    return found


def _role_column(names: list, role: str, path: Path, required: bool = False) -> str | None:
    hits = [n for n in names if str(n).lower() in _ROLE_NAMES[role]]
    if len(hits) > 1 or (required and not hits):
        what = f"columns {hits} could each be" if hits else "no column is"
        raise DataFormatError(
            f"{path}: {what} the {role} column (names taken for it: "
            f"{list(_ROLE_NAMES[role])}); the file has columns {list(names)}; name the "
            f"columns with columns={{'user': ..., 'item': ...}}" + _headerless_hint(names)
        )
    return hits[0] if hits else None


def _plain_ids(col: pd.Series) -> np.ndarray:
    """(n,) int64 when every id is a plain integer (surrounding blanks allowed), else the ids
    as written (text). No missing values (checked before)."""
    # pyarrow's vectorised regex and cast: 10x faster than the pandas string methods.
    text = pa.array(col.astype(str))
    if pc.all(pc.match_substring_regex(text, f"^{_PLAIN_INT}$")).as_py():
        try:
            return pc.cast(pc.utf8_trim_whitespace(text), pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # beyond int64
            pass
    return col.to_numpy(dtype=object)


def _check_id_kinds(frames: dict[str, pd.DataFrame], paths: Mapping[str, str | Path]) -> None:
    """Every file must write a role's ids alike: integer ids never equal text ids."""
    for role in ("user", "item"):
        cols = [(p, f[c]) for p, f in frames.items() for c in f.columns if _role_of(c) == role]
        ints = sorted({p for p, c in cols if c.dtype.kind in "iu"})
        other = [(p, c) for p, c in cols if c.dtype.kind not in "iu"]
        if ints and other:
            part, col = other[0]
            example = next(v for v in col if not isinstance(v, int | np.integer))
            raise ValueError(
                f"{role} ids are integers in {ints} but not in {part} ({paths[part]}), e.g. "
                f"{example!r}: they could never match; write them alike in every file"
            )


def _role_of(column: str) -> str:
    """The id role of a tidy or negatives frame column (negatives are items)."""
    return "item" if column == "item" or column.startswith("neg_") else column


# ---------------------------------------------------------------------------- parsing helpers
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
