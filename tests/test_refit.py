"""train.refit: after validation the model is fitted again on train ∪ valid (Dacrema et al.),
keeping the epoch count validation chose."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ncflab.data.interactions import Interactions
from ncflab.data.splits import leave_one_out, with_negatives
from ncflab.evaluation.protocols import make_validator
from ncflab.experiments.run import refit_train_valid
from ncflab.models import FitOptions
from ncflab.models.bpr import BPR
from ncflab.models.ease import EASE


def _split():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(40), 6)
    items = np.concatenate([(u % 2) * 10 + rng.permutation(10)[:6] for u in range(40)])
    inter = Interactions(
        users, items, None, np.arange(len(users), dtype=np.int64), np.arange(40), np.arange(20)
    )
    return with_negatives(leave_one_out(inter), 9, seed=0)


def test_closed_form_refit_equals_a_fit_on_train_and_valid() -> None:
    split = _split()
    model = EASE(l2=5.0).fit(split.train)
    refitted, info = refit_train_valid(model, split, FitOptions(device="cpu"))
    direct = EASE(l2=5.0).fit(split.train.concat(split.valid))
    assert np.array_equal(refitted.B_, direct.B_) and not np.array_equal(refitted.B_, model.B_)
    assert info["records"] == len(split.train) + len(split.valid) and "epochs" not in info
    assert model.B_ is not refitted.B_  # the validated model is left as it was


def test_trained_models_keep_the_epochs_validation_chose() -> None:
    split = _split()
    validate = make_validator(split, protocol="sampled", ks=(10,), metrics=("HR", "NDCG"))
    opts = FitOptions(device="cpu", validate=validate, patience=2)
    model = BPR(factors=8, epochs=12, lr=0.05, batch_size=64).fit(split.train, opts)
    refitted, info = refit_train_valid(model, split, opts)
    assert info["epochs"] == model.best_epoch_ and refitted.epochs == model.best_epoch_
    assert len(refitted.history_) == model.best_epoch_  # no validation, no early stop
    assert all(not r["metrics"] for r in refitted.history_)


def test_refit_needs_a_validation_part() -> None:
    split = _split()
    no_valid = dataclasses.replace(split, valid=None)
    with pytest.raises(ValueError, match="validation part"):
        refit_train_valid(EASE().fit(split.train), no_valid, FitOptions())


@pytest.mark.slow
def test_train_cli_refits_and_records_it(tmp_path, data_dir) -> None:
    import json

    from typer.testing import CliRunner

    from ncflab.cli import app

    out = tmp_path / "ease"
    args = ["train", "-m", "ease", "-d", "ml-100k", "-p", "ncf", "--set", "params.l2=200"]
    res = CliRunner().invoke(app, [*args, "--set", "train.refit=true", "-o", str(out)])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "metrics.json").read_text())
    assert record["refit"]["on"] == "train+valid"
    assert record["refit"]["records"] == 100_000 - 943  # every record but each user's test one
    assert "refit = true" in (out / "config.toml").read_text()
