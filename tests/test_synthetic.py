"""Synthetic data of a given shape: exact sizes, distinct pairs, enough records per user for a
leave-one-out split, power-law activity, the same draw for the same seed."""

from __future__ import annotations

import pandas as pd
import pytest

from ncflab.data.synthetic import power_law_ratings


def test_the_shape_is_exact_and_every_user_can_be_split() -> None:
    frame = power_law_ratings(2_000, 500, 9_000, seed=1)
    assert len(frame) == 9_000 and list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame["user"].nunique() == 2_000 and frame["item"].between(0, 499).all()
    assert not frame.duplicated(["user", "item"]).any()
    degree = frame.groupby("user").size()
    assert degree.min() >= 3
    assert degree.max() > 5 * degree.median()  # a heavy tail, not uniform activity
    assert frame["rating"].between(1, 5).all()
    pd.testing.assert_frame_equal(frame, power_law_ratings(2_000, 500, 9_000, seed=1))
    assert not frame.equals(power_law_ratings(2_000, 500, 9_000, seed=2))


def test_a_user_never_rates_more_items_than_exist() -> None:
    frame = power_law_ratings(20, 10, 150, user_shape=0.5, seed=0)  # a tail beyond 10 items
    assert frame.groupby("user").size().max() <= 10 and len(frame) == 150
    assert not frame.duplicated(["user", "item"]).any()


@pytest.mark.parametrize(
    ("args", "match"),
    [((10, 10, 20), "at least min_per_user"), ((0, 10, 20), "n_users"), ((5, 2, 20), "more than")],
)
def test_impossible_shapes_are_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        power_law_ratings(*args)


def test_the_cli_writes_a_file_train_reads(cli, tmp_path) -> None:
    out = tmp_path / "synth.parquet"
    res = cli("data", "synth", "-o", out, "--users", 300, "--items", 80, "--records", 1500)
    assert res.exit_code == 0 and "1,500 records" in res.output, res.output
    res = cli("data", "info", out)
    assert res.exit_code == 0 and '"users": 300' in res.output and '"ratings": 1500' in res.output
    res = cli("data", "synth", "-o", out, "--like", "nowhere")
    assert res.exit_code == 2 and "unknown shape 'nowhere'" in res.output
