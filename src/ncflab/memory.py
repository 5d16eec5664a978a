"""Memory a fit may use, checked before it allocates: a model that would not fit says so, with
its estimate and the limit, instead of being killed by the operating system part-way through.

The limit is the memory available now (Linux: ``MemAvailable`` in /proc/meminfo, lowered to a
cgroup's ``memory.max`` headroom when the process runs in a container), or the value of
``NCFLAB_MEMORY_LIMIT`` when set (bytes, or with a unit: ``512M``, ``16G``), which lets a user
keep a fit within less than the machine has.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

__all__ = [
    "ENV",
    "MemoryLimitError",
    "available_bytes",
    "check_fits",
    "checked_module",
    "format_bytes",
]

M = TypeVar("M", bound=nn.Module)

ENV = "NCFLAB_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MemoryLimitError(MemoryError):
    """A fit refused before it starts: its estimated peak memory is over the limit."""


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps a number ≥ 1 (``3.8 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _parse(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"{ENV} must be a number of bytes, e.g. 16G or 512M; got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_headroom() -> int | None:
    """memory.max − memory.current of this process's cgroup (v2), when it sets a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """The memory a fit may allocate: ``NCFLAB_MEMORY_LIMIT`` when set, else what the system
    has available (None where it cannot be read: the check is then skipped)."""
    if os.environ.get(ENV):
        return _parse(os.environ[ENV])
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if not found and hasattr(os, "sysconf"):
        try:
            found = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def check_fits(what: str, need: float, how: str = "", advice: str = "") -> None:
    """Refuse (``MemoryLimitError``) a step whose estimated peak ``need`` bytes is over the
    limit, naming ``what`` it is, the estimate, its make-up ``how``, the limit, and what to
    do (``advice``, else a machine with more memory)."""
    limit = available_bytes()
    if limit is not None and need > limit:
        source = f"{ENV}" if os.environ.get(ENV) else "memory available now"
        detail = f" ({how})" if how else ""
        raise MemoryLimitError(
            f"{what} needs about {format_bytes(need)}{detail}, over the limit of "
            f"{format_bytes(limit)} ({source}); {advice or 'use a machine with more memory'}"
        )


def checked_module(
    what: str,
    factory: Callable[[], M],
    device: torch.device,
    optimizer_states: int = 2,
    processes: int = 1,
) -> M:
    """``factory()``, the network a gradient-trained model is about to fit, built only after
    checking that its training fits: it is first built on PyTorch's meta device (shapes, no
    memory) to size its parameters P, then the fit needs P for the weights, P for their
    gradients, ``optimizer_states`` × P for the optimizer (Adam's two moments; 0 for plain
    SGD), P for the copy of the best epoch's weights that early stopping keeps, and P more for
    the buffer that averages gradients when ``processes`` > 1 (data-parallel). On a GPU the
    card's own memory is the limit, which this does not read: only the CPU is checked."""
    if device.type == "cpu":
        with torch.device("meta"):
            shapes = factory()
        size = float(sum(p.numel() * p.element_size() for p in shapes.parameters()))
        copies = 3 + optimizer_states + (1 if processes > 1 else 0)
        parts = [f"{format_bytes(size)} of parameters", "their gradients"]
        parts += {0: [], 2: ["Adam's two moments"]}.get(optimizer_states, ["optimizer state"])
        parts += ["the best epoch's copy"]
        parts += ["the buffer averaging gradients over processes"] if processes > 1 else []
        check_fits(what, copies * size, ", ".join(parts))
    return factory()
