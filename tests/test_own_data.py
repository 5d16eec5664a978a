"""A user's own data from the command line and from Python: a ratings file, a published split
of files, and a named published split's quirks (NCF's files) handled by the config's rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ncflab
from ncflab import runs

EASE = ["train", "-m", "ease", "-p", "ncf"]


def _test_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())["test"]


def test_a_ratings_file_trains_like_a_dataset(cli, ratings_csv, tmp_path) -> None:
    res = cli("data", "info", ratings_csv)
    assert res.exit_code == 0 and '"users": 60' in res.output, res.output
    out = tmp_path / "run"
    res = cli(*EASE, "-d", ratings_csv, "-o", out)
    assert res.exit_code == 0, res.output
    # Renamed columns are mapped by flags (or [data] columns in a config file).
    renamed = tmp_path / "renamed.tsv"
    pd.read_csv(ratings_csv).rename(columns={"userId": "who", "movieId": "what"}).to_csv(
        renamed, sep="\t", index=False
    )
    res = cli(*EASE, "-d", renamed, "-o", tmp_path / "renamed")
    assert res.exit_code == 2 and "who" in res.output  # no user column found: said, by name
    res = cli(*EASE, "-d", renamed, "--user-col", "who", "--item-col", "what",
              "-o", tmp_path / "renamed")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert _test_metrics(tmp_path / "renamed") == _test_metrics(out)


def test_a_split_of_your_own_files_gives_the_same_figures(cli, ratings_csv, tmp_path) -> None:
    """The split ``data split`` writes, read back as a user's own files, is the same split:
    the same figures for the same model."""
    whole = tmp_path / "whole"
    assert cli(*EASE, "-d", ratings_csv, "-o", whole).exit_code == 0
    files = tmp_path / "split"
    assert cli("data", "split", ratings_csv, "-p", "ncf", "-o", files).exit_code == 0
    out = tmp_path / "own"
    res = cli(*EASE, "--train", files / "train.csv", "--valid", files / "valid.csv",
              "--test", files / "test.csv", "--negatives", files / "negatives.csv",
              "-o", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert _test_metrics(out) == pytest.approx(_test_metrics(whole), abs=1e-9)
    saved = runs.recorded_fingerprint(whole), runs.recorded_fingerprint(out)
    assert saved[0] == saved[1]
    assert cli("evaluate", out).exit_code == 0  # readable back, files checked


def _ncf_files(folder: Path, n_users: int = 30, n_items: int = 80, n_neg: int = 20) -> None:
    """NCF's layout (``ml-1m.train.rating``, ``.test.rating``, ``.test.negative``), with the
    quirk of NCF's real files: some users' own test item is among their negatives."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    train, test, negs = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=12, replace=False)
        train += [(u, int(i), 4, 1000 + t) for t, i in enumerate(items[:-1])]
        test.append((u, int(items[-1]), 5, 2000))
        pool = np.setdiff1d(np.arange(n_items), items)
        row = [int(x) for x in rng.choice(pool, size=n_neg, replace=False)]
        if u % 10 == 0:
            row[5] = int(items[-1])  # the test item among its own negatives
        negs.append(f"({u},{int(items[-1])})\t" + "\t".join(map(str, row)))
    for name, rows in (("ml-1m.train.rating", train), ("ml-1m.test.rating", test)):
        (folder / name).write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    (folder / "ml-1m.test.negative").write_text("\n".join(negs) + "\n")


def test_ncf_files_with_their_quirk_train_from_the_command_line(cli, tmp_path, caplog) -> None:
    _ncf_files(tmp_path / "data" / "ncf-ml-1m")
    base = ["-m", "itempop", "-d", "ncf-ml-1m", "-p", "ncf", "--data-dir", tmp_path / "data"]
    out = tmp_path / "run"
    res = cli("train", *base, "-o", out)
    assert res.exit_code == 0, res.output
    split = json.loads((out / "split.json").read_text())
    assert split["bad_negatives"]["positive_entries"] == 3  # users 0, 10, 20: dropped, counted
    assert split["carved_validation"]["rule"] == "loo"  # no validation part: carved, said
    config = (out / "config.toml").read_text()
    assert 'bad_negatives = "drop"' in config and "without_valid" not in config
    res = cli("train", *base, "--set", "data.bad_negatives=error", "-o", tmp_path / "strict")
    assert res.exit_code == 2 and "bad_negatives" in res.output and "drop" in res.output
    res = cli("train", *base, "--set", "data.without_valid=epochs", "-o", tmp_path / "epochs")
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "epochs" / "metrics.json").read_text())
    assert metrics["valid"] == {}
    res = cli("data", "split", "ncf-ml-1m", "-p", "ncf", "--data-dir", tmp_path / "data",
              "-o", tmp_path / "split")  # fmt: skip
    assert res.exit_code == 0, res.output
    negatives = pd.read_csv(tmp_path / "split" / "negatives.csv")
    per_user = negatives.groupby("user").size()
    assert len(per_user) == 30 and sorted(set(per_user)) == [19, 20]  # 3 rows had one dropped


def test_resume_refuses_a_changed_split(cli, ratings_csv, tmp_path) -> None:
    out = tmp_path / "run"
    assert cli(*EASE, "-d", ratings_csv, "-o", out).exit_code == 0
    (out / "metrics.json").unlink()  # as if killed before the end
    config = out / "config.toml"
    config.write_text(config.read_text().replace("split_seed = 0", "split_seed = 1"))
    res = cli("resume", out)
    assert res.exit_code == 2 and "cannot resume" in res.output and "split" in res.output


def test_the_public_api(ratings_csv, tmp_path) -> None:
    inter = ncflab.Interactions.from_frame(ncflab.read_user_file(ratings_csv))
    split = ncflab.make_split("ncf", inter, seed=0)
    model = ncflab.MODELS["itempop"]().fit(split.train)
    assert 0 <= ncflab.evaluate(model, split, protocol="sampled").means["HR@10"] <= 1
    items, scores = model.recommend([0, 1], k=5, exclude=split.known_positives())
    assert items.shape == (2, 5) and not split.known_positives()[0, items[0]].toarray().any()
    config = ncflab.RunConfig(model="ease", dataset=str(ratings_csv), protocol="ncf")
    result = ncflab.train(config, out=tmp_path / "run")
    loaded_config, loaded_split, loaded = ncflab.load_run(tmp_path / "run")
    assert loaded_split.fingerprint() == result.split.fingerprint()
    assert loaded_config.dataset == str(ratings_csv.resolve())
    users = np.arange(5)
    assert np.array_equal(loaded.score(users).numpy(), result.model.score(users).numpy())


def test_data_records_thins_before_the_split_and_never_a_published_split(
    cli, ratings_csv, tmp_path
) -> None:
    from ncflab.config import ConfigError, DataOptions, RunConfig
    from ncflab.experiments.data import load_split, resolve_config

    def split(records: int | None, seed: int = 0):
        config = RunConfig(dataset=str(ratings_csv), protocol="jncf", model="itempop",
                           split_seed=seed, data=DataOptions(records=records))  # fmt: skip
        return load_split(resolve_config(config))

    full, thin = split(None), split(400)
    assert sum(thin.info["sizes"].values()) == 400 < sum(full.info["sizes"].values())
    assert thin.train.n_users == full.train.n_users == 60  # every user stays, with 3 records
    assert thin.fingerprint() != full.fingerprint() != split(400, seed=1).fingerprint()
    assert split(400).fingerprint() == thin.fingerprint()
    with pytest.raises(ConfigError, match="data.records must be >= 1"):
        DataOptions(records=0)
    with pytest.raises(ValueError, match="n_records=100 is too few to keep all 60 users"):
        split(100)
    res = cli("train", "-m", "itempop", "-d", "jca-ml-1m", "-p", "jca", "--set",
              "data.records=1000", "-o", tmp_path / "run")  # fmt: skip
    assert res.exit_code == 2 and "published split whose parts are fixed" in res.output
