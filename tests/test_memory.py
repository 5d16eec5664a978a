"""A fit whose estimated memory is over the limit is refused before it allocates, with the
estimate and the limit in the message; the limit is what the system has, or the user's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_contract import block_problem, make
from test_resume import LOOP_MODELS

from ncflab.data.interactions import Interactions
from ncflab.memory import ENV, MemoryLimitError, available_bytes, check_fits, format_bytes
from ncflab.models import MODELS

# Every model trained by minibatch gradient steps.
GRADIENT_MODELS = {*LOOP_MODELS, "mlp", "uautorec", "iautorec"}


def test_the_limit_is_the_users_when_set(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    system = available_bytes()
    assert system is None or system > 0
    for text, value in (
        ("512M", 512 << 20),
        ("16G", 16 << 30),
        ("1.5GiB", 3 << 29),
        ("4096", 4096),
    ):
        monkeypatch.setenv(ENV, text)
        assert available_bytes() == value
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(ValueError, match="NCFLAB_MEMORY_LIMIT must be a number of bytes"):
        available_bytes()


def test_check_fits_names_the_step_the_estimate_and_the_limit(monkeypatch) -> None:
    monkeypatch.setenv(ENV, "1G")
    check_fits("a small step", 1 << 20)  # fits: nothing happens
    with pytest.raises(MemoryLimitError, match=r"a big step needs about 98\.0 GiB \(one matrix\)"):
        check_fits("a big step", 98 * (1 << 30), "one matrix")
    with pytest.raises(
        MemoryLimitError, match=r"over the limit of 1\.0 GiB \(NCFLAB_MEMORY_LIMIT\)"
    ):
        check_fits("a big step", 2 << 30)
    assert format_bytes(512) == "512 B" and format_bytes(3 << 29) == "1.5 GiB"


def test_ease_refuses_a_catalogue_it_cannot_hold(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    n_items = 2000
    users, items = rng.integers(0, 50, 500), rng.integers(0, n_items, 500)
    train = Interactions(users, items, None, None, np.arange(50), np.arange(n_items))
    monkeypatch.setenv(ENV, "16M")  # 4 × 2,000² + 12 × 2,000 × 1,024 bytes = 38.7 MiB needed
    with pytest.raises(MemoryLimitError, match=r"EASE on 2,000 items needs about 38\.7 MiB"):
        MODELS["ease"]().fit(train)
    monkeypatch.setenv(ENV, "64M")
    assert MODELS["ease"]().fit(train).B_.shape == (n_items, n_items)


def test_a_gradient_fit_refuses_when_its_optimizer_state_would_not_fit(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    train = Interactions(
        rng.integers(0, 40, 400), rng.integers(0, 60, 400), None, None, np.arange(40), np.arange(60)
    )
    # BPR with 64 factors: (40 + 60) × 64 float32 = 25.0 KiB of parameters; with their
    # gradients, Adam's two moments and early stopping's copy 5 × 25.0 KiB.
    monkeypatch.setenv(ENV, "100K")
    with pytest.raises(
        MemoryLimitError,
        match=r"training bpr on 40 users × 60 items needs "
        r"about 125\.0 KiB \(25\.0 KiB of parameters, their gradients, Adam's",
    ):
        MODELS["bpr"](epochs=1).fit(train)
    # Plain SGD keeps no moments: 3 × 25.0 KiB fits.
    assert MODELS["bpr"](epochs=1, optimizer="sgd").fit(train).history_
    monkeypatch.setenv(ENV, "1M")
    assert MODELS["bpr"](epochs=1).fit(train).history_


@pytest.mark.parametrize("name", sorted(GRADIENT_MODELS))
def test_every_gradient_model_refuses_before_allocating_its_network(name, monkeypatch) -> None:
    train = block_problem()[0]
    monkeypatch.setenv(ENV, "1K")
    model = make(name, epochs=1)
    first = {"uiautorec": "uautorec"}.get(name, name)  # U+I-AutoRec fits U-AutoRec first
    with pytest.raises(MemoryLimitError, match=rf"training {first} on 120 users × 48 items"):
        model.fit(train)
    # Refused on the shapes alone: no network was built (not even the shapes-only one kept).
    assert not hasattr(model, "module_")


def test_the_shapes_only_network_is_sized_like_the_real_one(monkeypatch) -> None:
    # JCA at Amazon Electronics' size: 442.6 M parameters, sized without allocating them.
    monkeypatch.setenv(ENV, "1G")
    model = MODELS["jca"]()
    with pytest.raises(MemoryLimitError, match=r"1\.6 GiB of parameters") as refused:
        model.build_to_train(1_221_341, 157_003, torch.device("cpu"))
    assert "needs about 8.2 GiB" in str(refused.value)
    real = MODELS["jca"]()
    real.build(600, 400)
    with torch.device("meta"):
        model.build(600, 400)
    sizes = [sum(p.numel() for p in m.module_.parameters()) for m in (real, model)]
    assert sizes[0] == sizes[1] > 0
