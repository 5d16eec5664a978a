"""Finding a dataset's files locally, unpacking archives and downloading with checksums.

A file is looked for, in order, in ``data_dir`` (the argument, ``--data-dir`` on the command
line), then ``$NCFLAB_DATA_DIR`` — as ``<dir>/<dataset>/<file>`` and then, for a file name that
is *flat-safe* (see :func:`flat_names`), ``<dir>/<file>`` in each — then in the cache
(``$NCFLAB_CACHE_DIR`` or ``platformdirs.user_cache_dir("ncflab")``, as
``<cache>/<dataset>/<file>``). A MovieLens archive (e.g. ``ml-1m.zip``) found in those places is
unpacked into the cache. Otherwise the file is downloaded with pooch and checked against the
pinned checksum; where none is pinned the spec's ``hash_note`` says why, and the SHA-256 of what
was downloaded is logged so it can be recorded. A file that cannot be found or fetched raises
:class:`DatasetNotFoundError`, naming every place searched and what to do.

A local file whose own content is pinned (JCA's split files, the DMF file) and a local archive
with a pinned checksum are checked before use (:func:`check_local`). Hashing ML-20M's zip takes
seconds, so each digest is kept in ``<cache>/file-hashes.json`` under the file's absolute path
and reused while its size and modification time (ns) are unchanged. A file unpacked from a
pinned archive has no pin of its own: it is used without a check (logged at debug level).

This module knows nothing of the dataset table; :mod:`ncflab.data.datasets` passes it the
spec and the flat-safe names, and re-exports :class:`DatasetNotFoundError` and
:func:`cache_dir`.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
import pooch

if TYPE_CHECKING:  # only for annotations: datasets.py imports this module
    from ncflab.data.datasets import DataFile, DatasetSpec

__all__ = [
    "DatasetNotFoundError",
    "cache_dir",
    "check_local",
    "fetch",
    "file_digest",
    "find",
    "flat_names",
]

log = logging.getLogger(__name__)

# Names too generic to trust in a flat <dir>/<file> even when one dataset alone uses them today:
# a train.csv next to other data may be any project's split, not JCA's.
_GENERIC = frozenset({"train.csv", "test.csv", "vali.csv", "valid.csv", "ratings.csv"})
_HASHES = "file-hashes.json"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is neither present locally nor downloadable (offline, failed, bad hash)."""


def cache_dir() -> Path:
    """Where downloads are kept: ``$NCFLAB_CACHE_DIR`` or the platform's user cache."""
    return Path(os.environ.get("NCFLAB_CACHE_DIR") or platformdirs.user_cache_dir("ncflab"))


def flat_names(specs: Iterable[DatasetSpec]) -> frozenset[str]:
    """File and archive names that may be looked up flat, as ``<dir>/<file>``.

    A flat file carries no dataset name, so only a name that identifies its dataset is safe:
    one used by exactly one spec (``u.data``, ``ml-1m.zip``, ``ml-1m.train.rating``; not
    ``ratings.dat``, shared by ml-1m and ml-10m) and not a generic name like ``train.csv``.
    """
    counts = Counter(
        name
        for spec in specs
        for name in {spec.archive_name, *(f.name for f in spec.files)}
        if name
    )
    return frozenset(name for name, n in counts.items() if n == 1) - _GENERIC


def _roots(data_dir: str | Path | None) -> list[Path]:
    """The user's data folders in search order: the argument, then $NCFLAB_DATA_DIR."""
    roots = [data_dir, os.environ.get("NCFLAB_DATA_DIR")]
    return [Path(r).expanduser() for r in roots if r]


def _candidates(
    spec: DatasetSpec, file: str, data_dir: str | Path | None, flat: Collection[str]
) -> list[Path]:
    layouts = [Path(spec.name) / file] + ([Path(file)] if file in flat else [])
    return [root / p for root in _roots(data_dir) for p in layouts] + [
        cache_dir() / spec.name / file
    ]


def find(
    spec: DatasetSpec, file: str, data_dir: str | Path | None, flat: Collection[str]
) -> Path | None:
    """The first existing path of ``file`` in the lookup order (module docstring), or None.

    ``flat``: the names that may be looked up as ``<dir>/<file>`` (:func:`flat_names`).
    """
    return next((p for p in _candidates(spec, file, data_dir, flat) if p.is_file()), None)


def _archive_candidates(
    spec: DatasetSpec, data_dir: str | Path | None, flat: Collection[str]
) -> list[Path]:
    name = spec.archive_name or ""
    return _candidates(spec, name, data_dir, flat) + [cache_dir() / "downloads" / name]


def fetch(
    spec: DatasetSpec,
    file: DataFile,
    data_dir: str | Path | None,
    download: bool,
    flat: Collection[str],
) -> Path:
    """Unpack ``file`` from a local archive, or download it; raise a helpful error otherwise.

    Raises:
        DatasetNotFoundError: no archive, ``download`` is False, or the download failed
            (offline, HTTP error, checksum mismatch, bad archive).
    """
    target = cache_dir() / spec.name / file.name
    url = spec.archive_url or file.url
    if spec.archive_url is not None:
        local = [p for p in _archive_candidates(spec, data_dir, flat) if p.is_file()]
        if local:
            _verify(local[0], spec.archive_hash)
            return _unzip(spec, file, local[0], target)
    if not download:
        reason = "downloads are disabled (download=False)"
        raise _not_found(spec, file, data_dir, flat, reason)
    try:
        if spec.archive_url is not None:
            path = _download(url, spec.archive_hash, cache_dir() / "downloads")
            return _unzip(spec, file, path, target)
        return _download(url, file.known_hash, target.parent)
    except Exception as err:  # offline, HTTP error, checksum mismatch, bad archive: one message
        reason = f"downloading {url} failed: {type(err).__name__}: {err}"
        raise _not_found(spec, file, data_dir, flat, reason) from err


def _verify(path: Path, known_hash: str | None) -> None:
    """A local archive must be the published one when its checksum is pinned."""
    if known_hash is None:
        return
    alg, expected = known_hash.split(":")
    actual = file_digest(path, alg)
    if actual != expected:
        raise DatasetNotFoundError(
            f"{path} has {alg} {actual}, expected {expected} (the published archive); "
            "replace it with the original download, or delete it to download it again"
        )


def check_local(spec: DatasetSpec, file: DataFile, path: Path) -> Path:
    """``path`` (a local copy of ``file``) after checking it against the file's own pin.

    Raises:
        DatasetNotFoundError: the content differs from the pinned one; the message names the
            file, both digests and the remedies.
    """
    if file.known_hash is None:
        # Either nothing is pinned (hash_note says why) or only the archive is, and a file
        # unpacked by the user cannot be compared with a zip's checksum.
        log.debug("%s: no checksum of the file itself is pinned; used unchecked", path)
        return path
    alg, expected = file.known_hash.split(":")
    actual = file_digest(path, alg)
    if actual != expected:
        raise DatasetNotFoundError(
            f"{path} is not the published {file.name} of dataset {spec.name!r}: its {alg} is "
            f"{actual}, expected {expected}. Replace it with the original ({file.url}), or "
            "delete it so that it is downloaded again."
        )
    return path


def file_digest(path: Path, alg: str) -> str:
    """The ``alg`` hex digest of ``path``, computed once per (path, size, mtime_ns).

    The cache is a small JSON file in :func:`cache_dir` (so ``$NCFLAB_CACHE_DIR`` redirects
    it); it is written atomically, and an unreadable or unwritable cache only costs a re-hash.
    """
    path = path.resolve()
    stat = path.stat()
    key, stamp = f"{alg}:{path}", [stat.st_size, stat.st_mtime_ns]
    store = cache_dir() / _HASHES
    known = _read_json(store)
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return str(entry["digest"])
    digest = pooch.file_hash(str(path), alg=alg)
    known[key] = {"stamp": stamp, "digest": digest}
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        partial = store.with_name(f"{store.name}.{os.getpid()}.part")
        partial.write_text(json.dumps(known, indent=1, sort_keys=True))
        partial.replace(store)  # atomic: a concurrent reader sees the old or the new file
    except OSError as err:
        log.debug("could not record the digest of %s in %s: %s", path, store, err)
    return digest


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: start afresh (the digests are recomputed)
    return data if isinstance(data, dict) else {}


def _download(url: str, known_hash: str | None, folder: Path) -> Path:
    path = Path(pooch.retrieve(url, known_hash, fname=url.rsplit("/", 1)[-1], path=folder))
    if known_hash is None:
        digest = pooch.file_hash(str(path))
        log.warning("no pinned checksum for %s; sha256 of the download: %s", url, digest)
    return path


def _unzip(spec: DatasetSpec, file: DataFile, archive: Path, target: Path) -> Path:
    member = f"{spec.archive_dir}/{file.name}" if spec.archive_dir else file.name
    with zipfile.ZipFile(archive) as zf:
        if member not in zf.namelist():
            raise DatasetNotFoundError(f"{archive} has no member {member!r}; is it {spec.name}?")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")  # no half-written file on a crash
        with zf.open(member) as src, open(partial, "wb") as dst:
            while chunk := src.read(1 << 24):
                dst.write(chunk)
    partial.replace(target)
    log.info("unpacked %s from %s into %s", member, archive, target)
    return target


def _not_found(
    spec: DatasetSpec,
    file: DataFile,
    data_dir: str | Path | None,
    flat: Collection[str],
    reason: str,
) -> DatasetNotFoundError:
    searched = _candidates(spec, file.name, data_dir, flat)
    if spec.archive_name:
        searched += _archive_candidates(spec, data_dir, flat)
    where = "\n  ".join(str(p) for p in searched)
    fetch_from = spec.archive_url or file.url
    also = f" (or the archive {spec.archive_name})" if spec.archive_name else ""
    return DatasetNotFoundError(
        f"dataset {spec.name!r}: file {file.name!r} not found. Searched:\n  {where}\n"
        f"Source: {fetch_from}; {reason}.\n"
        f"Put {file.name}{also} in <dir>/{spec.name}/ and pass --data-dir <dir> "
        f"(data_dir=<dir> in Python) or set NCFLAB_DATA_DIR=<dir>."
    )
