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
from ncflab.models.ncf import GMF, MLP, NeuMF
from ncflab.models.ncf_net import fuse
from ncflab.models.ncr import DNCR, NBPR, NeuPR


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


def _peaks(cls, first_part: str, composite: int):
    """A validator whose best epoch is 2 for the first pre-trained part, 4 for the second and
    ``composite`` for the composite model (whose warm start is validated as epoch 0)."""

    def validate(m) -> dict[str, float]:
        whole = isinstance(m, cls)
        peak = composite if whole else 2 if m.name == first_part else 4
        epoch = len(m.history_) + (0 if whole else 1)  # the epoch being validated
        return {"NDCG@10": -abs(epoch - peak)}

    return validate


COMPOSITES = [
    (NeuMF, "gmf", {"factors": 4, "layers": [16, 8, 4], "lr": 0.01}),
    (NeuPR, "nbpr", {"factors": 4, "lr": 0.01}),
]


@pytest.mark.parametrize(("cls", "first_part", "extra"), COMPOSITES)
def test_pretrained_parts_are_refitted_for_their_own_best_epochs(cls, first_part, extra):
    """The refit pre-trains each part for the epochs validation chose for it, not for the
    composite model's epoch count; without validation, a part runs exactly those epochs."""
    torch.set_num_threads(1)
    split = _split()
    opts = FitOptions(device="cpu", validate=_peaks(cls, first_part, 3), patience=2)
    model = cls(**extra, epochs=12, batch_size=64, pretrain=True).fit(split.train, opts)
    assert model.pretrain_best_ == [2, 4] and model.best_epoch_ == 3
    refitted, info = refit_train_valid(model, split, opts)
    assert info["epochs"] == 3 and info["pretrain_epochs"] == [2, 4]
    assert refitted.pretrain_epochs == [2, 4] and refitted.pretrain_best_ == [2, 4]
    assert len(refitted.history_) == 3 and model.pretrain_epochs == []
    fixed = cls(**extra, epochs=1, batch_size=64, pretrain=True, pretrain_epochs=[5, 1])
    fixed.fit(split.train, opts)  # validated options: the parts still run 5 and 1 epochs
    assert fixed.pretrain_best_ == [5, 1]


@pytest.mark.parametrize(("cls", "first_part", "extra"), COMPOSITES)
def test_a_kept_warm_start_is_refitted_as_refitted_parts_fused(cls, first_part, extra):
    """When validation keeps the fused start (epoch 0), the refit fuses parts refitted on
    train ∪ valid and fine-tunes them 0 epochs."""
    torch.set_num_threads(1)
    split = _split()
    opts = FitOptions(device="cpu", validate=_peaks(cls, first_part, 0), patience=2)
    model = cls(**extra, epochs=12, batch_size=64, pretrain=True).fit(split.train, opts)
    assert model.best_epoch_ == 0
    refitted, info = refit_train_valid(model, split, opts)
    assert info["epochs"] == 0 and info["pretrain_epochs"] == [2, 4]
    assert refitted.history_ == [] and refitted.pretrain_best_ == [2, 4]
    # The same weights as the two parts fitted on train ∪ valid for 2 and 4 epochs, fused.
    data, plain = split.train.concat(split.valid), FitOptions(device="cpu")
    shared = {**extra, "batch_size": 64}
    expected = cls(**shared)
    expected.build(data.n_users, data.n_items)
    if cls is NeuMF:
        no_tower = {k: v for k, v in shared.items() if k != "layers"}
        gmf = GMF(**no_tower, epochs=2).fit(data, plain)
        mlp = MLP(**{**shared, "epochs": 4}).fit(data, plain)
        fuse(expected.module_, gmf.module_, mlp.module_, 0.5)
    else:
        nbpr = NBPR(**{**shared, "epochs": 2}).fit(data, plain)
        dncr = DNCR(**{**shared, "epochs": 4, "seed": 1}).fit(data, plain)
        expected.module_.fuse(nbpr.module_, dncr.module_, 0.5)
    for key, value in expected.module_.state_dict().items():
        assert torch.equal(refitted.module_.state_dict()[key], value), key


def test_a_kept_start_with_nothing_to_refit_is_an_error() -> None:
    split = _split()
    model = BPR(factors=4, epochs=1, batch_size=64).fit(split.train, FitOptions(device="cpu"))
    model.best_epoch_ = 0  # as if validation had kept a start no part of which is fitted here
    with pytest.raises(ValueError, match="epoch 0.*nothing to refit"):
        refit_train_valid(model, split, FitOptions(device="cpu"))


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
