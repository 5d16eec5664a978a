"""A user's own files → tidy frames: a ratings file (CSV, TSV, parquet) and the parts of a
published split of their own (train, valid, test, negatives).

Ids are read as text first and become int64 only when every id of the file is a plain integer,
so ``007`` stays ``"007"`` rather than turning into 7 and meeting another user's id. Every
check and message is the named datasets' (:mod:`ncflab.data.readers`): a bad file fails with a
:class:`DataFormatError` naming the file, the line and the value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ncflab.data.readers import (
    COLUMNS,
    DataFormatError,
    _check_missing,
    _first_line,
    _headerless_hint,
    _parse,
    _tidy,
    read_ncf_negatives,
)

__all__ = ["SPLIT_PARTS", "read_negatives_file", "read_split_files", "read_user_file"]

log = logging.getLogger(__name__)

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
