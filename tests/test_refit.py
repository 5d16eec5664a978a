"""train.refit: after validation the model is fitted again on train ∪ valid (Dacrema et al.),
keeping the epoch count validation chose."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.splits import leave_one_out, with_negatives
from ncflab.evaluation.protocols import make_validator
from ncflab.experiments.run import refit_train_valid
from ncflab.models import FitOptions
from ncflab.models.bpr import BPR
from ncflab.models.ease import EASE
from ncflab.models.ncf import NeuMF
from ncflab.models.ncr import NeuPR


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


@pytest.mark.parametrize(
    ("cls", "extra"),
    [
        (NeuMF, {"factors": 4, "layers": [16, 8, 4], "lr": 0.01}),
        (NeuPR, {"factors": 4, "lr": 0.01}),
    ],
)
def test_pretrained_parts_are_refitted_for_their_own_best_epochs(cls, extra) -> None:
    """The refit pre-trains each part for the epochs validation chose for it, not for the
    composite model's epoch count; without validation, a part runs exactly those epochs."""
    torch.set_num_threads(1)
    split = _split()
    first_part = {NeuMF: "gmf", NeuPR: "nbpr"}[cls]

    def validate(m) -> dict[str, float]:  # peaks: first part epoch 2, second 4, composite 3
        peak = 3 if isinstance(m, cls) else 2 if m.name == first_part else 4
        epoch = 1 + sum(r["epoch"] > 0 for r in m.history_)  # the composite's start is epoch 0
        return {"NDCG@10": -abs(epoch - peak)}

    opts = FitOptions(device="cpu", validate=validate, patience=2)
    model = cls(**extra, epochs=12, batch_size=64, pretrain=True).fit(split.train, opts)
    assert model.pretrain_best_ == [2, 4] and model.best_epoch_ == 3
    refitted, info = refit_train_valid(model, split, opts)
    assert info["epochs"] == 3 and info["pretrain_epochs"] == [2, 4]
    assert refitted.pretrain_epochs == [2, 4] and refitted.pretrain_best_ == [2, 4]
    assert len(refitted.history_) == 3 and model.pretrain_epochs == []
    fixed = cls(**extra, epochs=1, batch_size=64, pretrain=True, pretrain_epochs=[5, 1])
    fixed.fit(split.train, opts)  # validated options: the parts still run 5 and 1 epochs
    assert fixed.pretrain_best_ == [5, 1]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"pretrain_epochs": [1, 1]}, "only used with pretrain=true"),
        ({"pretrain": True, "pretrain_epochs": [1]}, r"2 counts >= 0 .*nbpr, dncr.*got \[1\]"),
        ({"pretrain": True, "pretrain_epochs": [1, -1]}, r"got \[1, -1\]"),
        (
            {"pretrain": True, "pretrain_epochs": [2, 0], "pretrained_nbpr": "runs/nbpr"},
            "gives 2 epochs to the part that pretrained_nbpr='runs/nbpr' loads",
        ),
    ],
)
def test_pretrain_epochs_are_checked(params, match) -> None:
    with pytest.raises(ValueError, match=match):
        NeuPR(epochs=1, **params).fit(_split().train, FitOptions(device="cpu"))
