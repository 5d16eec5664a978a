"""The run folder: the only code that knows its layout. Writes are atomic and ordered, one
writer at a time, and every reader checks what it reads.

A run folder holds::

    config.toml      the resolved configuration (defaults filled in, paths absolute)
    split.json       the split's rule, sizes and fingerprints (written when the split is built)
    checkpoint/      the training loop's best state and resumable snapshot
    per_user.csv     test metrics per user (original user ids)
    model/           the trained model (config.json + state.safetensors, no pickle)
    tune.json        the search of ``ncflab tune`` (tuned runs only)
    metrics.json     written last: its presence marks a finished run. Valid and test metrics,
                     the split fingerprint, the SHA-256 of every model file, the provenance
    log.txt          the run's log

Why this order: a kill at any point leaves either a finished run whose every file is whole, or
an unfinished one (no ``metrics.json``) that ``ncflab resume`` finishes or ``--force``
replaces; never a "finished" run without its model, nor one folder mixing two runs' files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "METRICS",
    "PER_USER_INFO",
    "MODEL",
    "PER_USER",
    "SPLIT",
    "TUNE",
    "RunError",
    "RunWriter",
    "atomic_write",
    "check_model_files",
    "has_snapshot",
    "jsonable",
    "provenance",
    "read_metrics",
    "recorded_fingerprint",
    "require_finished",
    "run_state",
    "writer",
]

log = logging.getLogger(__name__)

CONFIG = "config.toml"
SPLIT = "split.json"
METRICS = "metrics.json"
PER_USER = "per_user.csv"
# Columns of per_user.csv that describe the user rather than measure the model.
PER_USER_INFO = ("user", "train_items")
MODEL = "model"
CHECKPOINT = "checkpoint"
LOG = "log.txt"
TUNE = "tune.json"
LOCK = ".lock"
# Everything a run writes; ``--force`` removes exactly these, so files of the user's own in the
# folder are never deleted.
LAYOUT = (CONFIG, SPLIT, METRICS, PER_USER, MODEL, CHECKPOINT, LOG, TUNE, MODEL + ".tmp")


class RunError(ValueError):
    """A run folder that cannot be used as asked (finished, unfinished, locked, changed)."""


def run_state(path: str | Path) -> str:
    """ "absent" (no folder), "empty", "finished" (``metrics.json``), "unfinished" (a config
    but no ``metrics.json``) or "foreign" (files, none of them a run's)."""
    path = Path(path)
    if not path.exists():
        return "absent"
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a run folder")
    if (path / METRICS).is_file():
        return "finished"
    if (path / CONFIG).is_file():
        return "unfinished"
    return "foreign" if any(not _ours(p.name) for p in path.iterdir()) else "empty"


def _ours(name: str) -> bool:
    """A name a run writes: a layout entry, the lock, or a temporary file a kill left."""
    return name == LOCK or any(name == n or name.startswith(n + ".tmp") for n in LAYOUT)


def _snapshots(path: Path) -> list[Path]:
    from ncflab.training.snapshot import SNAPSHOT_FILE

    return sorted((path / CHECKPOINT).rglob(SNAPSHOT_FILE))


def has_snapshot(path: str | Path) -> bool:
    """Whether the run in ``path`` left a resumable snapshot (its own or a pre-trained part's)."""
    return bool(_snapshots(Path(path)))


class RunWriter:
    """Writes one run folder (see ``writer``); every file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def write_config(self, toml: str) -> None:
        atomic_write(self.path / CONFIG, toml)

    def write_split(self, info: dict[str, Any]) -> None:
        atomic_write(self.path / SPLIT, json.dumps(info, indent=2, default=jsonable))

    def check_split(self, fingerprint: str, protocol: str) -> None:
        """For a resumed run: the rebuilt split must be the one the run started on."""
        saved = _read_json(self.path / SPLIT) if (self.path / SPLIT).is_file() else {}
        was = saved.get("fingerprint")
        if was is not None and was != fingerprint:
            raise RunError(
                f"cannot resume {self.path}: its split was {was}, the data and config now give "
                f"{fingerprint} (the data files, the protocol or the split seed changed)"
            )
        if saved.get("protocol") not in (None, protocol):
            raise RunError(
                f"cannot resume {self.path}: it was started under protocol "
                f"{saved['protocol']!r}, its config now says {protocol!r}"
            )

    def finish(
        self,
        model: Any,
        record: dict[str, Any],
        per_user: Any | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Write the per-user metrics, the model, ``extra`` files (name → text), then
        ``metrics.json`` (``record`` + the model files' SHA-256 + provenance), last."""
        if per_user is not None:
            tmp = self.path / (PER_USER + ".tmp")
            per_user.to_csv(tmp, index=False)
            os.replace(tmp, self.path / PER_USER)
        staging, final = self.path / (MODEL + ".tmp"), self.path / MODEL
        shutil.rmtree(staging, ignore_errors=True)
        model.save(staging)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for name, text in (extra or {}).items():
            atomic_write(self.path / name, text)
        record = {**record, "model_files": model_digests(final), "provenance": provenance()}
        atomic_write(self.path / METRICS, json.dumps(record, indent=2, default=jsonable))

    @contextlib.contextmanager
    def logging_to_file(self, append: bool) -> Iterator[None]:
        """Copy the library's log into ``log.txt`` while the block runs (``append``: keep what
        an earlier process of this run wrote)."""
        handler = logging.FileHandler(self.path / LOG, mode="a" if append else "w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger = logging.getLogger("ncflab")
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            handler.close()


@contextlib.contextmanager
def writer(path: str | Path, *, force: bool = False, resume: bool = False) -> Iterator[RunWriter]:
    """The one writer of run folder ``path``, for the block's duration.

    A second process asking for the same folder is refused by name (an OS lock, released even
    when the holder is killed). A new run refuses a finished run (unless ``force``), an
    unfinished one that a snapshot could resume (unless ``force``), and a folder holding files
    of anything else; with ``force`` every file of the old run is removed first, so nothing of
    it survives beside the new one. ``resume`` needs an unfinished run.
    """
    path = Path(path)
    state = run_state(path)
    path.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        state = run_state(path)  # again, now that no other writer can change it
        if resume:
            _check_resumable(path, state)
        else:
            _prepare_new(path, state, force)
        yield RunWriter(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunError(
                f"{path} is being written by another ncflab process (pid {holder}); wait for "
                "it to end, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_resumable(path: Path, state: str) -> None:
    if state == "finished":
        raise RunError(f"{path} is a finished run ({path / METRICS} exists); nothing to resume")
    if state != "unfinished":
        raise RunError(f"{path} has no {CONFIG}: not a run folder of `ncflab train`")


def _prepare_new(path: Path, state: str, force: bool) -> None:
    if state == "foreign":
        names = sorted(p.name for p in path.iterdir() if not _ours(p.name))
        raise RunError(
            f"{path} holds files that are not a run's ({', '.join(names[:5])}); choose a new "
            "or empty folder"
        )
    if state == "finished" and not force:
        raise RunError(
            f"{path} holds a finished run ({path / METRICS}); pass --force to replace it, or "
            "choose another folder"
        )
    if state == "unfinished" and not force and _snapshots(path):
        raise RunError(
            f"{path} holds an unfinished run ({_snapshots(path)[0]}): `ncflab resume {path}` "
            "finishes it; pass --force to start it over"
        )
    if state in ("finished", "unfinished"):
        log.info("removing the %s run in %s before the new one", state, path)
    for target in path.iterdir():
        if target.name == LOCK or not _ours(target.name):
            continue
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (or a kill)
    sees the old file or the new one, never half of one."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------- reading
def require_finished(path: str | Path) -> Path:
    """``path`` as a finished run folder, else a ``RunError`` saying what it is instead."""
    path = Path(path)
    state = run_state(path)
    if state == "finished":
        return path
    if state == "absent":
        raise RunError(f"run folder {path} does not exist")
    if state == "unfinished":
        raise RunError(
            f"{path} is an unfinished run (no {METRICS}): `ncflab resume {path}` finishes it"
        )
    raise RunError(f"{path} is not a run folder of `ncflab train` (no {CONFIG}, no {METRICS})")


def read_metrics(path: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of a finished run."""
    return _read_json(require_finished(path) / METRICS)


def recorded_fingerprint(path: str | Path) -> str | None:
    """The split fingerprint the run recorded: ``split.json``'s, else ``metrics.json``'s."""
    path = Path(path)
    if (path / SPLIT).is_file():
        value = _read_json(path / SPLIT).get("fingerprint")
        if value:
            return str(value)
    if (path / METRICS).is_file():
        value = (_read_json(path / METRICS).get("fingerprint") or {}).get("split")
        if value:
            return str(value)
    return None


def model_digests(model_dir: Path) -> dict[str, str]:
    """file name → SHA-256 of every file of a saved model."""
    return {p.name: _sha256(p) for p in sorted(model_dir.iterdir()) if p.is_file()}


def check_model_files(path: str | Path) -> Path:
    """The run's ``model/`` folder, after checking each file's SHA-256 against the one
    ``metrics.json`` recorded at save: a changed, truncated or missing file is refused by name
    (a flipped byte in the weights would otherwise give wrong figures without a word)."""
    path = require_finished(path)
    recorded = _read_json(path / METRICS).get("model_files")
    folder = path / MODEL
    if recorded is None:
        raise RunError(
            f"{path / METRICS} records no model checksums (written by an older ncflab); "
            "train the run again to read it with its integrity checked"
        )
    actual = model_digests(folder) if folder.is_dir() else {}
    for name, digest in recorded.items():
        if name not in actual:
            raise RunError(f"{folder / name} is missing: the run's model is incomplete")
        if actual[name] != digest:
            raise RunError(
                f"{folder / name} has SHA-256 {actual[name][:16]}…, the run recorded "
                f"{digest[:16]}… at save: the file was changed or corrupted"
            )
    return folder


def provenance(device: str | None = None) -> dict[str, Any]:
    """What produced a result: ncflab's version and git commit (when run from a checkout),
    Python and library versions, threads, device, machine."""
    import numpy
    import scipy
    import torch

    from ncflab import __version__

    out: dict[str, Any] = {
        "ncflab": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "threads": torch.get_num_threads(),
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "platform": platform.platform(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
    }
    return out


def _git_commit() -> str | None:
    """HEAD of the checkout ncflab runs from ("+dirty" when it has uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{path} is not valid JSON ({err}); the file was edited or cut") from err


def jsonable(x: object) -> object:
    """``json.dumps``'s fallback for what a record may hold: numpy scalars as Python numbers,
    anything else (paths, …) as its text."""
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, float):
        return x
    return str(x)
