from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncflab.data.interactions import Interactions
from ncflab.experiments.presets import PROTOCOLS, get_protocol, make_split


def _synthetic(n_users: int = 30, n_items: int = 150, per_user: int = 12) -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    frame = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": rng.integers(1, 6, len(users)).astype(float),
            "timestamp": rng.permutation(len(users)),
        }
    )
    return Interactions.from_frame(frame)


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known protocols"):
        get_protocol("ncf2")


@pytest.mark.parametrize("name", ["ncf", "jncf", "loo-full"])
def test_leave_one_out_presets_hold_out_the_latest_and_sample_as_declared(name: str) -> None:
    inter = _synthetic()
    protocol = get_protocol(name)
    split = make_split(protocol, inter, seed=3)
    assert len(split.test) == len(split.valid) == inter.n_users
    # each test record is its user's latest (timestamps are a permutation: no ties here)
    latest = pd.Series(inter.timestamps).groupby(inter.users).max().to_numpy()
    assert np.array_equal(split.test.timestamps[np.argsort(split.test.users)], latest)
    if protocol.n_negatives:
        assert split.negatives.shape == (inter.n_users, protocol.n_negatives)
    else:
        assert split.negatives is None
    assert split.info["protocol"] == name
    assert make_split(protocol, inter, seed=3).fingerprint() == split.fingerprint()


def test_every_preset_has_validation_and_a_monitor_among_its_metrics() -> None:
    for p in PROTOCOLS.values():
        metric, _, k = p.monitor.partition("@")
        assert metric in p.metrics and int(k) in p.ks, p.name


def test_jca_preset_keeps_ratings_of_four_and_more_and_splits_by_ratio() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 12, 15
    users = np.repeat(np.arange(n_users), n_items)
    items = np.tile(np.arange(n_items), n_users)
    ratings = rng.choice([2.0, 4.0, 5.0], len(users), p=[0.1, 0.45, 0.45])
    inter = Interactions.from_frame(
        pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": 0})
    )
    split = make_split(get_protocol("jca"), inter, seed=0)
    held = [split.train, split.valid, split.test]
    assert all((part.ratings >= 4).all() for part in held)
    assert split.negatives is None
    assert len(split.test) >= 0.2 * sum(len(p) for p in held) - split.n_users


def test_patience_is_the_protocols_unless_the_run_sets_it() -> None:
    from ncflab.experiments.presets import PROTOCOLS
    from ncflab.training.options import FitOptions

    assert FitOptions().patience is None  # unset = the protocol's choice
    assert PROTOCOLS["jca"].patience == 20  # JCA variants plateau early (see presets.py)
    assert all(p.patience == 5 for name, p in PROTOCOLS.items() if name != "jca")
