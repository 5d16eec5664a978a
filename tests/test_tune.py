"""Tuning: the declared space is checked, the budget is kept, only validation is looked at, and
the search repeats from its seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ncflab.experiments.tune as tune_mod
from ncflab.data.interactions import Interactions
from ncflab.data.splits import leave_one_out, with_negatives
from ncflab.experiments.presets import get_protocol
from ncflab.experiments.shared_study import mask_password
from ncflab.experiments.tune import check_space, search_space, tune_split

pytest.importorskip("optuna")


def _split():
    """60 users in 3 groups, each with 8 items of its group's block of 10, in time order."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(60):
        block = (u % 3) * 10
        users += [u] * 8
        items += (block + rng.permutation(10)[:8]).tolist()
    n = len(users)
    inter = Interactions(
        np.array(users), np.array(items), None, np.arange(n, dtype=np.int64),
        np.arange(60), np.arange(30),
    )  # fmt: skip
    return with_negatives(leave_one_out(inter), 9, seed=0)


def test_spaces_are_checked_against_the_model() -> None:
    assert "l2" in search_space("ease")
    with pytest.raises(ValueError, match="no hyperparameter 'lambda'"):
        check_space("ease", {"lambda": {"low": 1, "high": 2}})
    with pytest.raises(ValueError, match="low < high"):
        check_space("ease", {"l2": {"low": 5.0, "high": 1.0}})
    with pytest.raises(ValueError, match="low > 0 with log"):
        check_space("ease", {"l2": {"low": 0.0, "high": 1.0, "log": True}})
    with pytest.raises(ValueError, match="expected low, high"):
        check_space("ease", {"l2": {"low": 1.0}})
    with pytest.raises(ValueError, match="declares no search space"):
        search_space("itempop")
    with pytest.raises(KeyError, match="unknown model"):
        search_space("eas")


def test_budget_kept_best_is_the_validation_maximum_and_test_is_never_seen(monkeypatch) -> None:
    split, protocol = _split(), get_protocol("ncf")
    parts: list[str] = []
    real = tune_mod.evaluate

    def spy(model, split, *, part, **kw):
        parts.append(part)
        return real(model, split, part=part, **kw)

    monkeypatch.setattr(tune_mod, "evaluate", spy)
    space = {"l2": {"low": 0.1, "high": 1000.0, "log": True}}
    result = tune_split("ease", split, protocol, space, trials=5, seed=1)
    assert parts == ["valid"] * 5  # one validation per trial, test never
    assert len(result.trials) == 5 and result.budget["trials_run"] == 5
    scores = [t["valid"]["NDCG@10"] for t in result.trials]
    best = result.trials[int(np.argmax(scores))]
    assert result.best_params == best["params"] and result.best_valid == best["valid"]
    assert result.model.l2 == best["params"]["l2"]
    again = tune_split("ease", split, protocol, space, trials=5, seed=1)
    assert [t["params"] for t in again.trials] == [t["params"] for t in result.trials]


def test_choices_fixed_params_and_bad_budgets() -> None:
    split, protocol = _split(), get_protocol("ncf")
    space = {"factors": {"choices": [4, 8]}}
    fixed = {"epochs": 2, "lr": 0.01}
    result = tune_split("bpr", split, protocol, space, trials=2, params=fixed, sampler="random")
    assert result.best_params["factors"] in (4, 8) and result.best_params["epochs"] == 2
    with pytest.raises(ValueError, match="both fixed"):
        tune_split("bpr", split, protocol, space, trials=1, params={"factors": 4})
    with pytest.raises(ValueError, match="at least one trial"):
        tune_split("ease", split, protocol, {"l2": {"choices": [1.0]}}, trials=0)
    with pytest.raises(ValueError, match="unknown sampler"):
        tune_split("ease", split, protocol, {"l2": {"choices": [1.0]}}, trials=1, sampler="grid")


@pytest.mark.slow
def test_tune_cli_writes_a_run_with_the_chosen_values(tmp_path, data_dir) -> None:
    from typer.testing import CliRunner

    from ncflab.cli import app

    out = tmp_path / "tuned"
    space = tmp_path / "space.toml"
    space.write_text("[l2]\nchoices = [100.0, 300.0]\n")
    args = ["tune", "-m", "ease", "-d", "ml-100k", "-p", "jncf", "-n", "2", "--space", str(space)]
    res = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "tune.json").read_text())
    assert record["budget"]["trials"] == 2 and len(record["trials"]) == 2
    assert "l2 = " in (out / "config.toml").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"] == record["best"]["valid"] and "HR@10" in metrics["test"]
    res = CliRunner().invoke(app, ["evaluate", str(out)])
    assert res.exit_code == 0 and f"{metrics['test']['HR@10']:.4f}" in res.output


@pytest.mark.parametrize(
    "name",
    ["ease", "bpr", "itemknn", "userknn", "p3alpha", "rp3beta", "slim", "ials", "eals", "puresvd"],
)
def test_every_classic_baseline_declares_a_valid_space(name: str) -> None:
    assert search_space(name)  # check_space ran: every entry names a real hyperparameter


def _shared_tune(tmp_path, out, *extra) -> list[str]:
    """`ncflab tune` arguments for a small shared EASE search over a user's ratings file."""
    from conftest import write_ratings_csv

    ratings, space = tmp_path / "ratings.csv", tmp_path / "space.toml"
    if not ratings.exists():
        write_ratings_csv(ratings)
        space.write_text("[l2]\nlow = 1.0\nhigh = 1000.0\nlog = true\n")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return ["tune", "-m", "ease", "-d", str(ratings), "-p", "ncf", "--space", str(space),
            "--storage", url, "-o", str(out), *map(str, extra)]  # fmt: skip


def _read(folder) -> tuple[dict, dict]:
    return json.loads((folder / "tune.json").read_text()), json.loads(
        (folder / "metrics.json").read_text()
    )


def test_a_process_joining_a_spent_study_tests_the_same_best(cli, tmp_path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    res = cli(*_shared_tune(tmp_path, first, "-n", 4))
    assert res.exit_code == 0, res.output
    res = cli(*_shared_tune(tmp_path, second, "-n", 4))
    assert res.exit_code == 0, res.output
    (tune1, metrics1), (tune2, metrics2) = _read(first), _read(second)
    assert tune1["budget"]["trials_run"] == 4 and tune2["budget"]["trials_run"] == 0
    assert (
        tune2["budget"]["study"]
        == tune1["budget"]["study"]
        == "ncflab-ease-ratings.csv-ncf-seed0-split0"
    )
    assert tune2["budget"]["storage"].startswith("sqlite:///")
    assert [t["params"] for t in tune2["trials"]] == [t["params"] for t in tune1["trials"]]
    assert all(t["this_process"] for t in tune1["trials"])
    assert not any(t["this_process"] for t in tune2["trials"])
    assert tune2["best"] == tune1["best"]
    # the second process refitted the first's best model: the same test metrics
    assert metrics2["test"] == metrics1["test"] and metrics2["valid"] == metrics1["valid"]
    assert (second / "config.toml").read_text() == (first / "config.toml").read_text()


# Each process sleeps this long per trial, so that the two really run trials side by side.
_SLOW_TRIALS = """
import sys, time
from pathlib import Path

import ncflab.experiments.tune as tune_mod

real = tune_mod.evaluate


def slow(*args, **kw):
    time.sleep(0.4)
    return real(*args, **kw)


tune_mod.evaluate = slow
ready, peer = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()  # start together: wait (60 s at most) for the other process to be imported
deadline = time.monotonic() + 60
while not peer.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
from ncflab.cli import main

sys.argv = ["ncflab", *sys.argv[3:]]
main()
"""


def test_concurrent_processes_share_one_budget_and_agree(tmp_path) -> None:
    import os
    import subprocess
    import sys

    import optuna

    script = tmp_path / "slow_tune.py"
    script.write_text(_SLOW_TRIALS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / "a", tmp_path / "b"]
    flags = [tmp_path / "a.ready", tmp_path / "b.ready"]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(flags[i]),
                str(flags[1 - i]),
                *_shared_tune(tmp_path, outs[i], "-n", 6, "--study", "shared"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    (tune_a, metrics_a), (tune_b, metrics_b) = _read(outs[0]), _read(outs[1])
    # Running trials hold a place in the budget and a trial started just as the last place was
    # taken is pruned unrun, so the study ends with exactly the budget, not budget + 1.
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    assert len(tune_a["trials"]) == len(tune_b["trials"]) == 6
    assert tune_a["budget"]["trials_run"] + tune_b["budget"]["trials_run"] == 6
    assert tune_a["budget"]["trials_run"] >= 1 and tune_b["budget"]["trials_run"] >= 1
    assert tune_a["best"] == tune_b["best"]
    assert metrics_a["test"] == metrics_b["test"]


def test_joining_with_other_settings_is_refused_naming_them(cli, tmp_path) -> None:
    assert cli(*_shared_tune(tmp_path, tmp_path / "a", "-n", 1, "--study", "s")).exit_code == 0
    res = cli(*_shared_tune(tmp_path, tmp_path / "b", "-n", 1, "--study", "s", "--seed", 1))
    assert res.exit_code == 2 and "seed: study has 0, this run 1" in res.output, res.output
    res = cli(
        *_shared_tune(tmp_path, tmp_path / "c", "-n", 1, "--study", "s", "--sampler", "random")
    )
    assert res.exit_code == 2 and "sampler: study has 'tpe'" in res.output, res.output
    (tmp_path / "space.toml").write_text("[l2]\nchoices = [10.0, 100.0]\n")
    res = cli(*_shared_tune(tmp_path, tmp_path / "d", "-n", 1, "--study", "s"))
    assert res.exit_code == 2 and "space: study has" in res.output, res.output
    ratings = str(tmp_path / "ratings.csv")
    res = cli("tune", "-m", "ease", "-d", ratings, "--study", "s")
    assert res.exit_code == 2 and "give --storage" in res.output, res.output


def test_passwords_are_masked_in_records() -> None:
    assert mask_password("postgresql://me:secret@db.example:5432/ncf") == (
        "postgresql://me:***@db.example:5432/ncf"
    )
    assert mask_password("sqlite:////data/study.db") == "sqlite:////data/study.db"
