"""A fit whose estimated memory is over the limit is refused before it allocates, with the
estimate and the limit in the message; the limit is what the system has, or the user's."""

from __future__ import annotations

import numpy as np
import pytest

from ncflab.data.interactions import Interactions
from ncflab.memory import ENV, MemoryLimitError, available_bytes, check_fits, format_bytes
from ncflab.models import MODELS


def test_the_limit_is_the_users_when_set(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    system = available_bytes()
    assert system is None or system > 0
    for text, value in (
        ("512M", 512 << 20),
        ("16G", 16 << 30),
        ("1.5GiB", 3 << 29),
        ("4096", 4096),
    ):
        monkeypatch.setenv(ENV, text)
        assert available_bytes() == value
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(ValueError, match="NCFLAB_MEMORY_LIMIT must be a number of bytes"):
        available_bytes()


def test_check_fits_names_the_step_the_estimate_and_the_limit(monkeypatch) -> None:
    monkeypatch.setenv(ENV, "1G")
    check_fits("a small step", 1 << 20)  # fits: nothing happens
    with pytest.raises(MemoryLimitError, match=r"a big step needs about 98\.0 GiB \(one matrix\)"):
        check_fits("a big step", 98 * (1 << 30), "one matrix")
    with pytest.raises(
        MemoryLimitError, match=r"over the limit of 1\.0 GiB \(NCFLAB_MEMORY_LIMIT\)"
    ):
        check_fits("a big step", 2 << 30)
    assert format_bytes(512) == "512 B" and format_bytes(3 << 29) == "1.5 GiB"


def test_ease_refuses_a_catalogue_it_cannot_hold(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    n_items = 2000
    users, items = rng.integers(0, 50, 500), rng.integers(0, n_items, 500)
    train = Interactions(users, items, None, None, np.arange(50), np.arange(n_items))
    monkeypatch.setenv(ENV, "16M")  # 4 × 2,000² + 12 × 2,000 × 1,024 bytes = 38.7 MiB needed
    with pytest.raises(MemoryLimitError, match=r"EASE on 2,000 items needs about 38\.7 MiB"):
        MODELS["ease"]().fit(train)
    monkeypatch.setenv(ENV, "64M")
    assert MODELS["ease"]().fit(train).B_.shape == (n_items, n_items)


def test_a_gradient_fit_refuses_when_its_optimizer_state_would_not_fit(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    train = Interactions(
        rng.integers(0, 40, 400), rng.integers(0, 60, 400), None, None, np.arange(40), np.arange(60)
    )
    # BPR with 64 factors: (40 + 60) × 64 float32 = 25.0 KiB of parameters, 75.0 KiB more.
    monkeypatch.setenv(ENV, "50K")
    with pytest.raises(MemoryLimitError, match=r"training bpr needs about 75\.0 KiB"):
        MODELS["bpr"](epochs=1).fit(train)
    monkeypatch.setenv(ENV, "1M")
    assert MODELS["bpr"](epochs=1).fit(train).history_
