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
