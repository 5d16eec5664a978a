"""``ncflab export`` and ``ncflab.serving.export``: every user's top-K of a saved run in one
Parquet file, equal to ``model.recommend``, streamed in batches and written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ncflab.experiments.run import load_run
from ncflab.serving.export import export_recommendations

EASE = ["train", "-m", "ease", "-p", "ncf"]


@pytest.fixture
def run(cli, ratings_csv, tmp_path) -> Path:
    """A finished EASE run on the 60-user × 200-item ratings file (integer ids)."""
    out = tmp_path / "run"
    res = cli(*EASE, "-d", ratings_csv, "-o", out)
    assert res.exit_code == 0, res.output
    return out


def _read(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_every_user_gets_what_recommend_gives(cli, run, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    res = cli("export", run, "-o", out, "-k", 15)
    assert res.exit_code == 0, res.output
    assert "exported 60 users" in res.output and str(out) in res.output
    table = pq.read_table(out)
    assert [f.name for f in table.schema] == ["user", "rank", "item", "score"]
    assert [str(f.type) for f in table.schema] == ["int64", "int32", "int64", "float"]
    frame = table.to_pandas()

    _, split, model = load_run(run)
    users = np.arange(split.n_users)
    items, scores = model.recommend(users, 15, exclude=split.known_positives())
    assert frame["user"].unique().tolist() == split.train.user_ids.tolist()  # index order
    for u in users:
        got = frame[frame["user"] == split.train.user_ids[u]]
        assert got["rank"].tolist() == list(range(1, 16))
        assert got["item"].tolist() == split.train.item_ids[items[u]].tolist()
        np.testing.assert_array_equal(got["score"].to_numpy(), scores[u])


def test_no_known_item_and_no_padding_when_k_reaches_the_items(cli, run, tmp_path) -> None:
    out = tmp_path / "all.parquet"
    assert cli("export", run, "-o", out, "-k", 1000).exit_code == 0  # k > 200 items
    frame = _read(out)
    _, split, _ = load_run(run)
    known = split.known_positives()
    user = split.train.user_index(frame["user"].to_numpy())
    item = split.train.item_index(frame["item"].to_numpy())
    assert known[user, item].sum() == 0  # nothing from train, valid or test
    assert (frame["item"] >= 0).all() and np.isfinite(frame["score"]).all()
    # Each user gets every item they do not have: no more (no -1 rows), no fewer.
    per_user = frame.groupby("user").size().reindex(split.train.user_ids).to_numpy()
    expected = split.n_items - np.diff(known.indptr)
    np.testing.assert_array_equal(per_user, expected)
    assert (frame.groupby("user")["rank"].max().to_numpy() == per_user).all()


def test_users_file_exports_exactly_those_users(cli, run, tmp_path) -> None:
    listed = tmp_path / "users.txt"
    listed.write_text("17\n3\n\n42\n")  # a blank line is skipped
    out = tmp_path / "some.parquet"
    res = cli("export", run, "-o", out, "-k", 5, "--users", listed)
    assert res.exit_code == 0, res.output
    frame = _read(out)
    assert frame["user"].unique().tolist() == [17, 3, 42]  # in the file's order
    assert len(frame) == 15
    # A CSV with a user column gives the same file.
    csv = tmp_path / "users.csv"
    csv.write_text("name,user\na,17\nb,3\nc,42\n")
    res = cli("export", run, "-o", tmp_path / "csv.parquet", "-k", 5, "--users", csv)
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(_read(tmp_path / "csv.parquet"), frame)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\n999\n1000\nabc\n", "3 unknown user ids (not in the run's data): 999, 1000, abc"),
        ("user\n5\n6\n5\n6\n7\n", "2 user ids listed more than once: 5, 6"),
        ("", "lists no user ids"),
        ("user\n", "lists no user ids"),
        ("a,b\n1,2\n", "none is 'user'"),
    ],
)
def test_a_bad_users_file_is_refused_by_name(cli, run, tmp_path, text, message) -> None:
    listed = tmp_path / "users.txt"
    listed.write_text(text)
    out = tmp_path / "recs.parquet"
    res = cli("export", run, "-o", out, "--users", listed)
    assert res.exit_code == 2 and message in res.output, res.output
    assert not out.exists() and _leftovers(tmp_path) == []


def test_unknown_ids_are_counted_and_named_up_to_ten(cli, run, tmp_path) -> None:
    listed = tmp_path / "users.txt"
    listed.write_text("".join(f"{1000 + i}\n" for i in range(12)))
    res = cli("export", run, "-o", tmp_path / "r.parquet", "--users", listed)
    assert res.exit_code == 2
    assert "12 unknown user ids" in res.output and "1009 and 2 more" in res.output
    assert "1010" not in res.output


def test_batch_size_does_not_change_the_file(run, tmp_path) -> None:
    _, split, model = load_run(run)
    frames = []
    for size in (1, 7, 1000):
        out = tmp_path / f"b{size}.parquet"
        summary = export_recommendations(model, split, out, 10, batch_size=size)
        assert (summary.users, summary.rows) == (60, 600)
        frames.append(_read(out))
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0])


def test_text_ids_stay_text(cli, ratings_csv, tmp_path) -> None:
    frame = pd.read_csv(ratings_csv)
    frame["userId"] = "u" + frame["userId"].astype(str)
    frame["movieId"] = "m" + frame["movieId"].astype(str)
    named = tmp_path / "named.csv"
    frame.to_csv(named, index=False)
    assert cli(*EASE, "-d", named, "-o", tmp_path / "run").exit_code == 0
    (tmp_path / "users.txt").write_text("u7\nu12\n")
    out = tmp_path / "recs.parquet"
    res = cli("export", tmp_path / "run", "-o", out, "-k", 3, "--users", tmp_path / "users.txt")
    assert res.exit_code == 0, res.output
    table = pq.read_table(out)
    assert str(table.schema.field("user").type) == str(table.schema.field("item").type) == "string"
    got = table.to_pandas()
    assert (
        got["user"].tolist() == ["u7"] * 3 + ["u12"] * 3 and got["item"].str.startswith("m").all()
    )


def test_an_existing_output_is_kept_without_force(cli, run, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    out.write_text("keep me")
    res = cli("export", run, "-o", out, "-k", 5)
    assert res.exit_code == 2 and "exists" in res.output and "--force" in res.output
    assert out.read_text() == "keep me"
    res = cli("export", run, "-o", out, "-k", 5, "--force")
    assert res.exit_code == 0, res.output
    assert len(_read(out)) == 300 and _leftovers(tmp_path) == []


@pytest.mark.parametrize("flags", [["-k", 0], ["-k", -3], ["--batch-size", 0]])
def test_non_positive_k_or_batch_is_refused(cli, run, tmp_path, flags) -> None:
    res = cli("export", run, "-o", tmp_path / "r.parquet", *flags)
    assert res.exit_code == 2 and "must be a positive integer" in res.output, res.output


def test_a_failure_midway_leaves_no_file(run, tmp_path, monkeypatch) -> None:
    _, split, model = load_run(run)
    score, calls = model.score, []

    def failing(users: np.ndarray):
        calls.append(len(users))
        if len(calls) == 2:
            raise RuntimeError("scoring failed")
        return score(users)

    monkeypatch.setattr(model, "score", failing)
    out = tmp_path / "out" / "recs.parquet"
    out.parent.mkdir()
    with pytest.raises(RuntimeError, match="scoring failed"):
        export_recommendations(model, split, out, 10, batch_size=16)
    assert len(calls) == 2 and list(out.parent.iterdir()) == []
    # An interrupt (Ctrl-C) cleans up too, and an existing output survives a failed overwrite.
    out.write_bytes(b"old")
    calls.clear()
    monkeypatch.setattr(model, "score", lambda users: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        export_recommendations(model, split, out, 10, overwrite=True)
    assert [p.name for p in out.parent.iterdir()] == ["recs.parquet"]
    assert out.read_bytes() == b"old"
