"""Resuming the epoch driver: a fit killed after some epochs and resumed from its snapshot ends
exactly where an uninterrupted fit ends, for every model trained by the driver (the minibatch
models through ``train_loop``, the ALS models directly)."""

from __future__ import annotations

import json

import pytest
import torch
from test_contract import block_problem, make
from test_training import CURVE

from ncflab.models import FitOptions, Recommender
from ncflab.training.snapshot import SNAPSHOT_FILE

EPOCHS = 6
KILL_AT = 5  # the snapshot after epoch KILL_AT - 1 is the last one written
# Every model fitted by train_loop: the sampling kinds (prefetched triplets, lazily drawn blocks,
# user minibatches), in-module noise (dropout, corruption, the VAE's ε), Mult-VAE's annealing
# clock, and two fits in one (U+I-AutoRec).
LOOP_MODELS = [
    "bpr", "npr", "gmf", "neumf", "dmf", "jncf", "nbpr", "dncr", "neupr",
    "cdae", "jca", "multvae", "multdae", "uiautorec",
]  # fmt: skip
# The ALS models: factor buffers updated in place, no optimizer, no sampler.
ALS_MODELS = ["ials", "eals"]


@pytest.fixture(scope="module")
def train():
    torch.set_num_threads(1)
    return block_problem()[0]


class Killed(Exception):
    """Stands for the process being killed mid-fit."""


def _options(tmp, calls: list, kill_at: int | None = None, resume: bool = False) -> FitOptions:
    def on_epoch(record: dict) -> None:
        calls.append(record["epoch"])
        if len(calls) == kill_at:
            raise Killed

    def validate(m: Recommender) -> dict[str, float]:  # best at epoch 3, as in test_training
        return {"NDCG@10": CURVE[len(m.history_)]}

    return FitOptions(
        validate=validate,
        patience=10,
        device="cpu",
        checkpoint_dir=tmp,
        snapshot_seconds=0.0,
        resume=resume,
        on_epoch=on_epoch,
    )


def _same_fit(a: Recommender, b: Recommender) -> None:
    # Every learned array: a neural model's module weights, an ALS model's factors.
    sa, sb = a.state_arrays(), b.state_arrays()
    assert sa.keys() == sb.keys() and sa
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    strip = [(r["epoch"], r["loss"], r["metrics"]) for r in a.history_]
    assert strip == [(r["epoch"], r["loss"], r["metrics"]) for r in b.history_]


@pytest.mark.parametrize("name", LOOP_MODELS + ALS_MODELS)
def test_killed_and_resumed_fit_equals_uninterrupted(name: str, train, tmp_path) -> None:
    whole = make(name, epochs=EPOCHS).fit(train, _options(tmp_path / "whole", []))
    calls: list[int] = []
    # U+I-AutoRec: killed in its second fit, so its finished first fit is resumed as done.
    kill_at = KILL_AT + (EPOCHS if name == "uiautorec" else 0)
    with pytest.raises(Killed):
        make(name, epochs=EPOCHS).fit(train, _options(tmp_path / "cut", calls, kill_at))
    resumed_calls: list[int] = []
    resumed = make(name, epochs=EPOCHS).fit(
        train, _options(tmp_path / "cut", resumed_calls, resume=True)
    )
    _same_fit(whole, resumed)
    assert getattr(resumed, "best_epoch_", 3) == getattr(whole, "best_epoch_", 3) == 3
    # Only the epochs after the snapshot were trained again (U+I-AutoRec: its second fit's).
    assert len(resumed_calls) < len(calls) + EPOCHS
    # A finished fit resumes to itself without training.
    again_calls: list[int] = []
    again_options = _options(tmp_path / "cut", again_calls, resume=True)
    again = make(name, epochs=EPOCHS).fit(train, again_options)
    assert again_calls == []
    _same_fit(whole, again)


@pytest.mark.parametrize("name", ALS_MODELS)
def test_als_snapshot_holds_the_factors_and_no_optimizer_or_sampler(name: str, train, tmp_path):
    with pytest.raises(Killed):
        make(name, epochs=EPOCHS).fit(train, _options(tmp_path, [], KILL_AT))
    blob = torch.load(tmp_path / SNAPSHOT_FILE, weights_only=True)
    meta = json.loads(blob["meta"])
    assert set(blob["module"]) == set(blob["best"]) == {"users", "items"}
    assert blob["optimizer"] == {} and meta["rng"] is None
    assert meta["epoch"] == KILL_AT - 1 and meta["best_epoch"] == 3
    # The best epoch's model was checkpointed beside it, as for the neural models.
    assert Recommender.load(tmp_path).best_epoch_ == 3


@pytest.mark.parametrize(
    ("name", "parts"), [("neumf", ["gmf", "mlp"]), ("neupr", ["nbpr", "dncr"])]
)
def test_pretrained_fit_resumes_its_finished_parts(name: str, parts: list, train, tmp_path) -> None:
    whole = make(name, epochs=EPOCHS, pretrain=True).fit(train, _options(tmp_path / "w", []))
    with pytest.raises(Killed):  # the parts report no epochs: killed in the fine-tuning
        make(name, epochs=EPOCHS, pretrain=True).fit(train, _options(tmp_path / "c", [], 2))
    for part in parts:  # each pre-trained part finished and left its final snapshot
        blob = torch.load(tmp_path / "c" / f"pretrain-{part}" / SNAPSHOT_FILE, weights_only=True)
        assert '"done": true' in blob["meta"]
    resumed = make(name, epochs=EPOCHS, pretrain=True)
    resumed.fit(train, _options(tmp_path / "c", [], resume=True))
    _same_fit(whole, resumed)


def test_resume_without_snapshot_trains_from_epoch_one(train, tmp_path) -> None:
    calls: list[int] = []
    make("bpr", epochs=3).fit(train, _options(tmp_path, calls, resume=True))
    assert calls == [1, 2, 3] and (tmp_path / SNAPSHOT_FILE).is_file()


def test_resume_with_other_hyperparameters_is_an_error(train, tmp_path) -> None:
    make("bpr", epochs=3).fit(train, _options(tmp_path, []))
    with pytest.raises(ValueError, match=r"hyperparameters differ.*'lr'"):
        make("bpr", epochs=3, lr=0.5).fit(train, _options(tmp_path, [], resume=True))
    with pytest.raises(ValueError, match="snapshot of 'bpr'"):
        make("npr", epochs=3).fit(train, _options(tmp_path, [], resume=True))


def test_a_hyperparameter_added_since_the_snapshot_resumes_at_its_default(train, tmp_path):
    """A snapshot written before a model gained a hyperparameter (NeuPR's ``pretrain_epochs``)
    resumes while that hyperparameter is at its default, and not when it is set."""
    calls: list[int] = []
    with pytest.raises(Killed):
        make("neupr", epochs=EPOCHS).fit(train, _options(tmp_path, calls, kill_at=KILL_AT))
    path = tmp_path / SNAPSHOT_FILE
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    assert meta["params"].pop("pretrain_epochs") == []
    blob["meta"] = json.dumps(meta)
    torch.save(blob, path)
    calls = []
    make("neupr", epochs=EPOCHS).fit(train, _options(tmp_path, calls, resume=True))
    assert calls == list(range(KILL_AT, EPOCHS + 1))  # from the snapshot, not epoch 1
    torch.save(blob, path)
    with pytest.raises(ValueError, match=r"hyperparameters differ.*'pretrain_epochs'"):
        later = make("neupr", epochs=EPOCHS, pretrain=True, pretrain_epochs=[1, 1])
        later.fit(train, _options(tmp_path, [], resume=True))


def test_resume_needs_a_checkpoint_dir(train) -> None:
    opts = FitOptions(device="cpu", resume=True)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        make("bpr", epochs=2).fit(train, opts)


def test_snapshots_are_written_only_as_often_as_asked(train, tmp_path) -> None:
    calls: list[int] = []
    opts = _options(tmp_path, calls, kill_at=3)
    opts.snapshot_seconds = 3600.0
    with pytest.raises(Killed):
        make("bpr", epochs=4).fit(train, opts)
    assert not (tmp_path / SNAPSHOT_FILE).exists()  # an hour never passed
    make("bpr", epochs=2).fit(train, opts)
    # The end of a fit always writes one, marked done and without optimizer moments.
    blob = torch.load(tmp_path / SNAPSHOT_FILE, weights_only=True)
    assert '"done": true' in blob["meta"] and blob["optimizer"] == {}
