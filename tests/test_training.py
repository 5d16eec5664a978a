"""The epoch driver and the minibatch loop on it: early stopping, best-epoch restore,
checkpoints, progress events, non-finite loss, seeding, prefetch; the same for the ALS models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_contract import FAST, block_problem, make

from ncflab.models import FitOptions, Recommender
from ncflab.models.bpr import BPR
from ncflab.training.driver import NonFiniteLossError, run_epochs
from ncflab.training.loop import train_loop

PEAK = 3
CURVE = [0.1, 0.2, 0.5, 0.3, 0.2, 0.4, 0.45, 0.1, 0.1, 0.1]  # best at epoch PEAK
# The models whose epochs are ALS sweeps rather than minibatches, driven by the same driver.
ALS_MODELS = ["ials", "eals"]


@pytest.fixture(scope="module")
def train():
    torch.set_num_threads(1)
    return block_problem()[0]


def curve_validator(snapshots: dict[int, torch.Tensor]):
    """A fake validator whose NDCG@10 follows CURVE; it records the weights it saw."""

    def validate(m: Recommender) -> dict[str, float]:
        epoch = len(snapshots) + 1
        snapshots[epoch] = m.module_.user.weight.detach().clone()
        return {"NDCG@10": CURVE[epoch - 1], "HR@10": 0.0}

    return validate


def test_early_stop_restores_best_epoch(train) -> None:
    snapshots: dict[int, torch.Tensor] = {}
    records: list[dict] = []
    model = BPR(**{**FAST["bpr"], "epochs": len(CURVE)})
    opts = FitOptions(
        validate=curve_validator(snapshots),
        patience=2,
        device="cpu",
        on_epoch=records.append,
    )
    model.fit(train, opts)
    # Stops once `patience` epochs pass without a new best: after epoch PEAK + 2.
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4, 5]
    assert records == model.history_
    assert model.best_epoch_ == PEAK
    assert set(records[0]) == {"epoch", "loss", "metrics", "seconds", "eval_seconds"}
    assert not torch.equal(snapshots[PEAK], snapshots[5])
    assert torch.equal(model.module_.user.weight, snapshots[PEAK])


def test_eval_every_validates_on_schedule_and_last_epoch(train) -> None:
    model = BPR(**{**FAST["bpr"], "epochs": 5})
    model.fit(train, FitOptions(validate=lambda m: {"NDCG@10": 1.0}, eval_every=2, device="cpu"))
    assert [bool(r["metrics"]) for r in model.history_] == [False, True, False, True, True]


def test_checkpoint_holds_best_model(train, tmp_path) -> None:
    snapshots: dict[int, torch.Tensor] = {}
    model = BPR(**{**FAST["bpr"], "epochs": 6})
    opts = FitOptions(validate=curve_validator(snapshots), patience=10, checkpoint_dir=tmp_path)
    model.fit(train, opts)
    loaded = Recommender.load(tmp_path)
    users = np.arange(train.n_users)
    assert torch.equal(loaded.score(users), model.score(users))
    assert loaded.best_epoch_ == PEAK


def test_missing_monitor_is_an_error(train) -> None:
    opts = FitOptions(validate=lambda m: {"HR@10": 0.5}, monitor="NDCG@10", device="cpu")
    with pytest.raises(KeyError, match="NDCG@10"):
        BPR(**FAST["bpr"]).fit(train, opts)


def test_without_validation_trains_every_epoch(train) -> None:
    events: list[dict] = []
    options = FitOptions(device="cpu", on_progress=events.append)
    model = BPR(**{**FAST["bpr"], "epochs": 4}).fit(train, options)
    assert len(model.history_) == 4 and not hasattr(model, "best_epoch_")
    kinds = [e["event"] for e in events if e["event"] != "step"]
    assert kinds == ["start", "epoch", "epoch", "epoch", "epoch", "end"]
    assert events[0] == {"event": "start", "epochs": 4, "done": 0}
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < losses[0]


def _user_factors(model: Recommender) -> np.ndarray:
    return (model.W_ if model.name == "ials" else model.P_).copy()


@pytest.mark.parametrize("name", ALS_MODELS)
def test_als_early_stop_restores_and_checkpoints_the_best_epoch(name: str, train, tmp_path):
    seen: dict[int, np.ndarray] = {}
    records: list[dict] = []

    def validate(m: Recommender) -> dict[str, float]:
        seen[len(seen) + 1] = _user_factors(m)  # the factors of the epoch being validated
        return {"NDCG@10": CURVE[len(seen) - 1], "HR@10": 0.0}

    opts = FitOptions(validate=validate, patience=2, device="cpu", checkpoint_dir=tmp_path)
    opts.on_epoch = records.append
    model = make(name, epochs=len(CURVE)).fit(train, opts)
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4, 5]
    assert records == model.history_ and model.best_epoch_ == PEAK
    assert not np.array_equal(seen[PEAK], seen[5])
    assert np.array_equal(_user_factors(model), seen[PEAK])
    users = np.arange(train.n_users)
    # The restored model is the fit that stopped at the best epoch, and so is the checkpoint.
    plain = make(name, epochs=PEAK).fit(train, FitOptions(device="cpu"))
    assert torch.equal(model.score(users), plain.score(users))
    loaded = Recommender.load(tmp_path)
    assert loaded.best_epoch_ == PEAK and torch.equal(loaded.score(users), model.score(users))


@pytest.mark.parametrize("name", ["bpr", *ALS_MODELS])
def test_every_iterative_model_reports_the_same_progress_events(name: str, train) -> None:
    events: list[dict] = []
    flat = {"NDCG@10": 0.5}
    options = FitOptions(device="cpu", on_progress=events.append, validate=lambda m: flat)
    model = make(name, epochs=4).fit(train, options)
    events = [e for e in events if e["event"] != "step"]  # within a long minibatch epoch only
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "epoch", "epoch", "end"]
    assert events[0] == {"event": "start", "epochs": 4, "done": 0}
    assert [{k: v for k, v in e.items() if k != "event"} for e in events[1:-1]] == model.history_
    assert model.best_epoch_ == 1  # no later epoch improved on the first


class _Toy(Recommender):
    pass


def test_non_finite_epoch_loss_names_the_epoch() -> None:
    losses = iter([2.0, 1.0, float("nan")])
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 3 \(last finite loss 1\)"):
        run_epochs(
            _Toy(), torch.nn.Module(), lambda e: next(losses), epochs=4, options=FitOptions()
        )


def test_non_finite_loss_names_epoch_and_step() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    module = torch.nn.Module()
    module.weight = weight
    calls = iter(range(100))

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        bad = next(calls) == 6  # 4 batches per epoch: epoch 2, step 3
        return (weight * x).sum() * (float("nan") if bad else 1.0)

    def batches(rng: np.random.Generator):
        return [(torch.ones(3),)] * 4

    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 .*lower learning rate"):
        train_loop(_Toy(), module, opt, batches, loss_fn, epochs=3, options=FitOptions())


def test_seed_changes_the_model(train) -> None:
    a = BPR(**FAST["bpr"], seed=1).fit(train, FitOptions(device="cpu"))
    b = BPR(**FAST["bpr"], seed=2).fit(train, FitOptions(device="cpu"))
    assert not torch.equal(a.score(np.arange(3)), b.score(np.arange(3)))


def _draw_recorder(drawn: list[np.ndarray], fail_at: int | None = None):
    """``batches`` that makes all its draws up front (as ``prefetch`` requires) and records
    them; the ``fail_at``-th call raises."""

    def batches(rng: np.random.Generator):
        if len(drawn) + 1 == fail_at:
            raise RuntimeError(f"sampling failed in call {fail_at}")
        x = rng.normal(size=(4, 3))
        drawn.append(x)
        yield from ((torch.from_numpy(row).float(),) for row in x)

    return batches


def _toy_fit(
    prefetch: bool, drawn: list, epochs: int = 4, model: Recommender | None = None, **opts
) -> torch.Tensor:
    module = torch.nn.Module()
    module.weight = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD(module.parameters(), lr=0.1)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return ((module.weight - x) ** 2).sum()

    batches = _draw_recorder(drawn, opts.pop("fail_at", None))
    start = opts.pop("validate_start", False)
    options = FitOptions(**opts)
    train_loop(model or _Toy(), module, opt, batches, loss_fn, epochs=epochs, options=options,
               prefetch=prefetch, validate_start=start)  # fmt: skip
    return module.weight.detach()


def test_validate_start_can_choose_the_untrained_weights() -> None:
    curve = iter([0.9, 0.5, 0.6, 0.7, 0.8, 0.95])  # the start beats the next 4 epochs
    model = _Toy()
    opts = {"validate": lambda m: {"NDCG@10": next(curve)}, "patience": 4}
    weight = _toy_fit(False, [], epochs=6, model=model, validate_start=True, **opts)
    assert torch.equal(weight, torch.ones(3))  # restored: the start's weights
    assert model.best_epoch_ == 0 and [r["epoch"] for r in model.history_] == [0, 1, 2, 3, 4]
    assert model.history_[0]["loss"] is None and model.history_[0]["metrics"]["NDCG@10"] == 0.9
    # Without a validator there is nothing to choose with: no epoch 0.
    plain = _Toy()
    _toy_fit(False, [], epochs=2, model=plain, validate_start=True)
    assert [r["epoch"] for r in plain.history_] == [1, 2]


def test_prefetch_draws_and_trains_exactly_as_the_plain_loop() -> None:
    plain: list[np.ndarray] = []
    ahead: list[np.ndarray] = []
    w_plain, w_ahead = _toy_fit(False, plain), _toy_fit(True, ahead)
    assert len(plain) == len(ahead) == 4  # nothing is drawn past the last epoch
    for a, b in zip(plain, ahead, strict=True):
        np.testing.assert_array_equal(a, b)
    assert torch.equal(w_plain, w_ahead)


def test_prefetch_with_early_stop_draws_the_same_epochs_and_finishes() -> None:
    curve = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    plain: list[np.ndarray] = []
    ahead: list[np.ndarray] = []
    opts = {"validate": lambda m: {"NDCG@10": next(curve)}, "patience": 2}
    w_plain = _toy_fit(False, plain, epochs=6, **opts)
    curve = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    opts["validate"] = lambda m: {"NDCG@10": next(curve)}
    w_ahead = _toy_fit(True, ahead, epochs=6, **opts)
    # Stopped after epoch 3; the prefetch had already drawn epoch 4, which is never used.
    assert len(plain) == 3 and len(ahead) == 4
    for a, b in zip(plain, ahead[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert torch.equal(w_plain, w_ahead)


def test_prefetch_raises_a_sampling_error_in_the_caller() -> None:
    with pytest.raises(RuntimeError, match="sampling failed in call 3"):
        _toy_fit(True, [], fail_at=3)


def test_bpr_fit_is_identical_without_prefetch(train, monkeypatch) -> None:
    import ncflab.training.loop as training

    a = BPR(**FAST["bpr"], seed=3).fit(train, FitOptions(device="cpu"))
    real = training._Epochs.__init__
    monkeypatch.setattr(training._Epochs, "__init__", lambda s, b, r, p: real(s, b, r, False))
    b = BPR(**FAST["bpr"], seed=3).fit(train, FitOptions(device="cpu"))
    assert [r["loss"] for r in a.history_] == [r["loss"] for r in b.history_]
    assert torch.equal(a.module_.user.weight, b.module_.user.weight)
