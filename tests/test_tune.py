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
