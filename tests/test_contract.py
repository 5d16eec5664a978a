"""The contract every registered model keeps: shapes, consistency, determinism, save/load, and a
small synthetic problem it must learn (or, for non-personalised baselines, its own sanity check).

Adding a model to ``MODELS`` adds it here; give it small fast settings in ``FAST``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncflab.data.interactions import Interactions
from ncflab.models import MODELS, FitOptions, Recommender

# Small settings so each model fits the synthetic problem in about a second.
FAST: dict[str, dict] = {
    "bpr": {"factors": 16, "lr": 0.02, "reg": 1e-3, "epochs": 30, "batch_size": 256},
    "jncf": {"lr": 3e-3, "epochs": 15, "batch_size": 64},
    "dmf": {"lr": 0.01, "epochs": 15, "batch_size": 64},
    "ease": {"l2": 10.0},
    "nbpr": {"lr": 0.01, "epochs": 20, "batch_size": 64},
    "dncr": {"lr": 0.02, "epochs": 20, "batch_size": 128, "n_neg": 4},
    "neupr": {"lr": 0.01, "epochs": 20, "batch_size": 64},
    "jca": {"hidden": 32, "block_users": 64, "block_items": 32, "lr": 0.01, "epochs": 20},
    "uautorec": {"hidden": 32, "batch_size": 32, "lr": 0.01, "epochs": 20},
    "iautorec": {"hidden": 32, "batch_size": 16, "lr": 0.01, "epochs": 20},
    "uiautorec": {"hidden": 32, "batch_size": 32, "lr": 0.01, "epochs": 20},
    "itemknn": {"top_k": 20, "shrink": 10.0},
    "userknn": {"top_k": 20, "shrink": 10.0},
    "p3alpha": {"top_k": 20},
    "rp3beta": {"top_k": 20},
    "slim": {"top_k": 20},
    "ials": {"factors": 8, "reg": 0.01, "alpha0": 0.1, "epochs": 8},
    "eals": {"factors": 8, "c0": 10.0, "epochs": 10, "init_std": 0.1},
    "puresvd": {"factors": 4},
    "gmf": {"factors": 16, "lr": 0.01, "epochs": 8, "batch_size": 128, "init_std": 0.1},
    "mlp": {"lr": 0.01, "epochs": 8, "batch_size": 128},
    "neumf": {"factors": 4, "lr": 0.005, "epochs": 10, "batch_size": 64},
    "npr": {"factors": 16, "lr": 0.01, "epochs": 20, "batch_size": 64},
    "cdae": {"hidden": 32, "batch_size": 32, "lr": 0.01, "epochs": 20},
    "multvae": {"dims": [64, 16], "batch_size": 32, "lr": 3e-3, "epochs": 20, "anneal_steps": 50},
    "multdae": {"dims": [64, 16], "batch_size": 32, "lr": 3e-3, "epochs": 20},
}
# Models that cannot personalise, and what they must do on the synthetic problem instead.
NON_PERSONALISED = {"itempop", "random"}
# Pairwise rankers (NCR) score a candidate by its wins over the other candidates, so their
# score_items equals score only when the candidate set is all items.
SET_RELATIVE = {"nbpr", "dncr", "neupr"}
NAMES = sorted(MODELS)


def block_problem(
    n_groups: int = 4, users_per_group: int = 30, block: int = 12, liked: int = 8, seed: int = 0
) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Users in ``n_groups`` groups; each likes ``liked`` random items of its group's block of
    ``block`` items. One liked item per user is held out.

    Returns:
        train interactions, held-out item per user (n_users,), in-block mask (n_users, n_items).
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = n_groups * users_per_group, n_groups * block
    group = np.repeat(np.arange(n_groups), users_per_group)
    picks = np.argsort(rng.random((n_users, block)), axis=1)[:, :liked] + group[:, None] * block
    users = np.repeat(np.arange(n_users), liked - 1)
    ids = np.arange
    train = Interactions(users, picks[:, 1:].ravel(), None, None, ids(n_users), ids(n_items))
    in_block = (np.arange(n_items)[None, :] // block) == group[:, None]
    return train, picks[:, 0], in_block


# 3 users x 4 items for the autoencoders' hand computations: user 0 liked items 0 and 2,
# user 1 item 1, user 2 items 1-3.
TINY = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 1, 1, 1]], np.float32)


def interactions(matrix: np.ndarray) -> Interactions:
    """Implicit interactions at the nonzero cells of a dense (n_users, n_items) ``matrix``."""
    users, items = np.nonzero(matrix)
    n_users, n_items = matrix.shape
    return Interactions(users, items, None, None, np.arange(n_users), np.arange(n_items))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def beats_outside(scores: np.ndarray, held: np.ndarray, in_block: np.ndarray) -> float:
    """Fraction of users whose held-out item scores above every item outside their block."""
    outside = np.where(in_block, -np.inf, scores).max(axis=1)
    return float((scores[np.arange(len(held)), held] > outside).mean())


def make(name: str, **overrides: object) -> Recommender:
    return MODELS[name](**{**FAST.get(name, {}), **overrides})


@pytest.fixture(scope="module")
def problem() -> tuple[Interactions, np.ndarray, np.ndarray]:
    return block_problem()


@pytest.fixture(scope="module")
def fitted(problem) -> dict[str, Recommender]:
    """Each registered model fitted once on the synthetic problem (shared by the checks)."""
    torch.set_num_threads(1)
    opts = FitOptions(device="cpu")
    return {name: make(name, seed=3).fit(problem[0], opts) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_registry_name_and_params(name: str) -> None:
    model = make(name)
    assert type(model).name == name
    assert model.clone().get_params() == model.get_params()


@pytest.mark.parametrize("name", NAMES)
def test_score_shape_dtype_finite(name: str, fitted, problem) -> None:
    model, train = fitted[name], problem[0]
    scores = model.score(np.array([0, 5, 7, 119]))
    assert isinstance(scores, torch.Tensor)
    assert scores.shape == (4, train.n_items)
    assert scores.dtype == torch.float32 and scores.device.type == "cpu"
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", NAMES)
def test_score_items_matches_score(name: str, fitted, problem) -> None:
    model = fitted[name]
    users = np.array([1, 2, 40, 90])
    items = np.random.default_rng(0).integers(0, problem[0].n_items, size=(4, 9))
    if name in SET_RELATIVE:
        items = np.tile(np.arange(problem[0].n_items), (len(users), 1))
    full = model.score(users)
    expected = torch.gather(full, 1, torch.as_tensor(items))
    torch.testing.assert_close(model.score_items(users, items), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_user_is_an_error(name: str, fitted) -> None:
    with pytest.raises(IndexError, match="120"):
        fitted[name].score(np.array([0, 120]))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores(name: str, fitted, problem) -> None:
    again = make(name, seed=3).fit(problem[0], FitOptions(device="cpu"))
    users = np.arange(problem[0].n_users)
    assert torch.equal(again.score(users), fitted[name].score(users))


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, fitted, problem, tmp_path) -> None:
    model = fitted[name]
    loaded = Recommender.load(model.save(tmp_path / name))
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    users = np.arange(problem[0].n_users)
    assert torch.equal(loaded.score(users), model.score(users))


@pytest.mark.parametrize("name", [n for n in NAMES if n not in NON_PERSONALISED])
def test_learns_block_problem(name: str, fitted, problem) -> None:
    train, held, in_block = problem
    scores = fitted[name].score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


def test_itempop_ranks_most_popular_first(fitted, problem) -> None:
    scores = fitted["itempop"].score(np.array([0, 99])).numpy()
    counts = problem[0].item_counts()
    assert (scores[0] == scores[1]).all()
    order = np.argsort(-scores[0], kind="stable")
    assert (np.diff(counts[order]) <= 0).all()


def test_random_is_no_better_than_chance(fitted, problem) -> None:
    train, held, in_block = problem
    scores = fitted["random"].score(np.arange(train.n_users)).numpy()
    # Chance of beating all 36 out-of-block items is 1/37; allow generous noise.
    assert beats_outside(scores, held, in_block) < 0.2
    other = make("random", seed=4).fit(train).score(np.arange(3)).numpy()
    assert not np.array_equal(other, scores[:3])
