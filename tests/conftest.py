"""Shared fixtures: the real-data directory (slow tests skip without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$NCFLAB_DATA_DIR`` (the shared datasets); skips the test when it is not set."""
    value = os.environ.get("NCFLAB_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("NCFLAB_DATA_DIR is not set to a directory of datasets")
    return Path(value)


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    """A user's own small ratings file (CSV with a header, like MovieLens latest): 60 users ×
    200 items, 12–20 records each, ratings 1–5, increasing timestamps; the same every time."""
    return write_ratings_csv(tmp_path / "my_ratings.csv")


def write_ratings_csv(path: Path) -> Path:
    """Write the ``ratings_csv`` fixture's data to ``path`` (for module-scoped fixtures)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    rows = []
    for user in range(1, 61):
        items = rng.choice(np.arange(1, 201), size=int(rng.integers(12, 21)), replace=False)
        for t, item in enumerate(items):
            rows.append((user, int(item), float(rng.integers(1, 6)), 1_000_000 + 100 * user + t))
    frame = pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def cli():
    """Run ``ncflab`` in-process: ``cli("train", "-m", …)`` → click's Result (exit_code,
    output with stderr mixed in)."""
    from typer.testing import CliRunner

    from ncflab.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])
