"""JCA and AutoRec against hand computations: Eq. 2 on a tiny matrix, the block mini-batches and
their negatives (§4.3), the losses (Eq. 3, §5.4), the learned item normalisation factor, the
variants learning the synthetic block problem, new-user scoring, save/load and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_contract import FAST, beats_outside, block_problem, interactions, sigmoid
from test_contract import TINY as R

from ncflab.models import MODELS, FitOptions, Recommender, autoencoder
from ncflab.models import jca as jca_module
from ncflab.models.autoencoder import block_pairs, fold_in_outputs, pair_loss
from ncflab.models.autorec import IAutoRec, UAutoRec, UIAutoRec
from ncflab.models.jca import JCA, block_scores
from ncflab.models.jca_net import epoch_blocks

# 3 users x 4 items, implicit: user 0 liked items 0 and 2, user 1 item 1, user 2 items 1-3.


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    # As the contract suite: tiny problems run slower with more threads on a shared CPU.
    torch.set_num_threads(1)


def tiny_jca(**params) -> JCA:
    """JCA fitted for one epoch on R (its weights are then replaced by random ones)."""
    model = JCA(hidden=2, epochs=1, **params).fit(interactions(R), FitOptions(device="cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.module_.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    model._clear_caches()
    return model


def eq2(model: JCA) -> np.ndarray:
    """R̂ of Eq. 2, written out in numpy from the model's weights."""
    u, i = model.module_.user, model.module_.item
    w = {k: v.detach().numpy() for k, v in model.module_.state_dict().items()}
    user = sigmoid(sigmoid(R @ w["user.encoder.weight"] + w["user.encoder.bias"])
                   @ w["user.weight"] + w["user.bias"])  # fmt: skip
    pre = R.T @ w["item.encoder.weight"] + w["item.encoder.bias"]
    if i.factor is not None:
        pre = pre * w["item.factor"][:, None]  # f scales row i of (Rᵀ V^I + b₁^I)
    item = sigmoid(sigmoid(pre) @ w["item.weight"] + w["item.bias"])
    assert u.factor is None
    return 0.5 * (user + item.T)


@pytest.mark.parametrize("normalise", [True, False])
def test_scores_are_eq2(normalise: bool) -> None:
    model = tiny_jca(normalise=normalise)
    expected = eq2(model)
    np.testing.assert_allclose(model.score(np.arange(3)).numpy(), expected, rtol=1e-5)
    # The training block Ĉ (§4.3) is the same matrix restricted to the block.
    p, q = torch.tensor([0, 2]), torch.tensor([1, 2, 3])
    graph = model._graph(torch.device("cpu"))
    block = model.module_.block(graph, p, q).detach().numpy()
    np.testing.assert_allclose(block, expected[np.ix_([0, 2], [1, 2, 3])], rtol=1e-5)


@pytest.mark.parametrize("normalise", [True, False])
def test_pairs_are_the_block_at_those_pairs_with_the_same_gradients(normalise: bool) -> None:
    model = tiny_jca(normalise=normalise)
    module, graph = model.module_, model._graph(torch.device("cpu"))
    p, q = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 3])
    rows, cols = torch.tensor([0, 0, 2, 1, 2, 2]), torch.tensor([0, 2, 1, 1, 1, 0])
    weight = torch.tensor([0.3, -1.0, 2.0, 0.5, 1.5, -0.7])  # a loss that reads every pair
    grads = []
    for way in ("block", "pairs"):
        module.zero_grad(set_to_none=True)
        if way == "block":
            out = module.block(graph, p, q)[rows, cols]
        else:
            out = module.pairs(graph, p, q, rows, cols)
        (out * weight).sum().backward()
        grads.append({k: v.grad.clone() for k, v in module.named_parameters()})
        if way == "block":
            expected = out.detach()
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy(), rtol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-6, msg=k)


def test_block_scores_take_pairs_below_the_share(monkeypatch) -> None:
    model = tiny_jca()
    graph = model._graph(torch.device("cpu"))
    p, q = torch.tensor([0, 2]), torch.tensor([1, 2, 3])
    rows, cols = torch.tensor([0, 1]), torch.tensor([1, 2])  # 2 of the block's 6 entries
    calls = []
    net = type(model.module_)
    monkeypatch.setattr(net, "pairs", lambda *a: calls.append("pairs") or torch.zeros(2))
    monkeypatch.setattr(net, "block", lambda *a: calls.append("block") or torch.zeros(2, 3))
    for share in (0.3, 0.4):  # 2 pairs against 1.8, then 2.4
        monkeypatch.setattr(jca_module, "PAIRS_BELOW", share)
        block_scores(model.module_, graph, p, q, rows, cols)
    assert calls == ["block", "pairs"]


def test_pair_losses_by_hand() -> None:
    pos, neg = torch.tensor([0.9, 0.5, 0.3]), torch.tensor([0.2, 0.45, 0.6])
    # Eq. 3 with d = 0.15: max(0, −0.55), max(0, 0.10), max(0, 0.45).
    assert pair_loss("hinge", pos, neg, 0.15).item() == pytest.approx(0.55)
    assert pair_loss("hinge", pos, neg, 0.0).item() == pytest.approx(0.3)
    mse = 0.1**2 + 0.5**2 + 0.7**2 + 0.2**2 + 0.45**2 + 0.6**2
    assert pair_loss("mse", pos, neg, 0.15).item() == pytest.approx(mse)
    bpr = sum(np.log1p(np.exp(n - p)) for p, n in [(0.9, 0.2), (0.5, 0.45), (0.3, 0.6)])
    assert pair_loss("bpr", pos, neg, 0.15).item() == pytest.approx(bpr, rel=1e-6)
    with pytest.raises(ValueError, match="'l1'"):
        pair_loss("l1", pos, neg, 0.15)


def test_epoch_blocks_tile_the_matrix() -> None:
    blocks = epoch_blocks(5, 4, 2, 3, np.random.default_rng(0))
    users = np.random.default_rng(0).permutation(5)  # the same draws, by hand
    items = np.random.default_rng(0)
    items.permutation(5)
    items = items.permutation(4)
    expected_p = [np.sort(users[:2]), np.sort(users[2:4]), np.sort(users[4:])]
    expected_q = [np.sort(items[:3]), np.sort(items[3:])]
    assert len(blocks) == 6  # 3 user chunks x 2 item chunks, user chunks outer
    expected = [(a, b) for a in expected_p for b in expected_q]
    for (p, q), (ep, eq) in zip(blocks, expected, strict=True):
        assert p.tolist() == ep.tolist() and q.tolist() == eq.tolist()
    covered = np.zeros((5, 4), int)
    for p, q in blocks:
        covered[np.ix_(p, q)] += 1
    assert (covered == 1).all()


def test_block_pairs_by_hand() -> None:
    csr = sp.csr_matrix(R)
    rows, cols = np.array([0, 2]), np.array([1, 2, 3])
    r, c, neg = block_pairs(csr, rows, cols, np.random.default_rng(0))
    # Block R[[0, 2]][:, [1, 2, 3]] = [[0, 1, 0], [1, 1, 1]]: user 2's row has no negative.
    assert r.tolist() == [0] and c.tolist() == [1]
    assert neg[0] in (0, 2)
    # Uniform over the block's negatives of that user, independently per positive.
    big = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 1, 0, 1]] * 2, np.float32))
    r, c, neg = block_pairs(big, np.array([0, 1]), np.arange(8), np.random.default_rng(1))
    assert r.tolist() == [0] * 4 + [1] * 4 and c.tolist() == [0, 1, 5, 7] * 2
    draws = np.concatenate(
        [block_pairs(big, np.array([0]), np.arange(8), np.random.default_rng(s))[2]
         for s in range(500)]
    )  # fmt: skip
    counts = np.bincount(draws, minlength=8)
    assert counts[[0, 1, 5, 7]].sum() == 0
    assert np.abs(counts[[2, 3, 4, 6]] / 2000 - 0.25).max() < 0.04


def test_normalisation_factor_learned_per_item() -> None:
    train = block_problem()[0]
    model = JCA(**FAST["jca"], seed=1)
    model.build(train.n_users, train.n_items)
    before = model.module_.item.factor.detach().clone()  # same seed, same initial f
    model.fit(train, FitOptions(device="cpu"))
    change = (model.module_.item.factor.detach() - before).numpy()
    assert np.abs(change).max() > 1e-2
    assert change.std() > 0.2 * np.abs(change).mean()  # not one shared shift
    assert JCA(normalise=False).clone().normalise is False
    nf = JCA(**FAST["jca"], normalise=False).fit(train, FitOptions(device="cpu"))
    assert nf.module_.item.factor is None and "item.factor" not in nf.module_.state_dict()


@pytest.mark.parametrize(
    "params", [{"loss": "mse"}, {"loss": "bpr"}, {"normalise": False}, {"block_users": 50}]
)
def test_variants_learn_block_problem(params: dict) -> None:
    train, held, in_block = block_problem()
    model = JCA(**{**FAST["jca"], **params}, seed=2).fit(train, FitOptions(device="cpu"))
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


def test_paper_regularisation_per_loss() -> None:
    assert JCA().regularisation() == 0.001
    assert JCA(loss="mse").regularisation() == 0.05
    assert JCA(loss="bpr").regularisation() == 0.01
    assert JCA(loss="bpr", reg=0.2).regularisation() == 0.2


def test_save_load_variant(tmp_path) -> None:
    model = tiny_jca(normalise=False, loss="mse")
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert loaded.get_params() == model.get_params()
    assert torch.equal(loaded.score(np.arange(3)), model.score(np.arange(3)))
    rows = sp.csr_matrix(R[:2])
    assert torch.equal(loaded.score_new_users(rows), model.score_new_users(rows))


@pytest.mark.parametrize(
    "name", ["jca", "jca_nf", "uautorec", "iautorec", "uiautorec", "cdae", "multvae", "multdae"]
)
def test_candidates_decoded_alone_are_the_full_scores(name: str, monkeypatch) -> None:
    if name.startswith("jca"):
        model = tiny_jca(normalise=name == "jca")
    elif name in ("multvae", "multdae"):
        model = MODELS[name](dims=[3, 2], epochs=1).fit(interactions(R), FitOptions())
    else:
        model = MODELS[name](hidden=2, epochs=1).fit(interactions(R), FitOptions(device="cpu"))
    users, items = np.array([2, 0, 1, 2]), np.array([[3, 1], [0, 0], [2, 1], [1, 3]])
    expected = torch.gather(model.score(users), 1, torch.from_numpy(items))
    calls = []
    gather = Recommender.score_items
    monkeypatch.setattr(Recommender, "score_items", lambda *a: calls.append(1) or gather(*a))
    monkeypatch.setattr(autoencoder, "DECODE_CANDIDATES_UNDER", 2)  # 2 × 2 = 4 items: decoded
    torch.testing.assert_close(model.score_items(users, items), expected, rtol=1e-6, atol=1e-7)
    assert not calls
    monkeypatch.setattr(autoencoder, "DECODE_CANDIDATES_UNDER", 3)  # 2 × 3 > 4: gathered
    torch.testing.assert_close(model.score_items(users, items), expected, rtol=0, atol=0)
    assert calls == [1]


def test_new_users_are_the_mean_of_the_user_component_and_fitted_item_outputs() -> None:
    model = tiny_jca()
    w = {k: v.detach().numpy() for k, v in model.module_.state_dict().items()}
    row = np.array([[0, 1, 1, 0]], np.float32)
    hidden = sigmoid(row @ w["user.encoder.weight"] + w["user.encoder.bias"])
    user_part = sigmoid(hidden @ w["user.weight"] + w["user.bias"])
    hidden_items = model._item_hidden().detach()
    item_part = torch.sigmoid(fold_in_outputs(hidden_items, sp.csr_matrix(row))).numpy()
    # Any positive value counts as a 1 (implicit feedback).
    got = model.score_new_users(sp.csr_matrix(row * 4))
    np.testing.assert_allclose(got.numpy(), 0.5 * (user_part + item_part), rtol=1e-5)
    ids, scores = model.recommend_for_items(interactions(R), [1, 2], k=5)
    assert sorted(ids.tolist()) == [0, 3]  # liked items excluded, only two left
    assert np.all(np.diff(scores) <= 0)
    with pytest.raises(KeyError, match="99"):
        model.recommend_for_items(interactions(R), [1, 99])
    with pytest.raises(ValueError, match="shape"):
        model.score_new_users(sp.csr_matrix((1, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        model.score_new_users(sp.csr_matrix(-row))


def test_fold_in_outputs_solve_the_penalised_logistic_regression() -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.rand(40, 6, generator=gen)  # 40 items, H = 6
    rows = sp.csr_matrix((torch.rand(5, 40, generator=gen) < 0.3).numpy().astype(np.float32))
    logits = fold_in_outputs(hidden, rows, reg=2.0)
    z = torch.cat([hidden.double(), torch.ones(40, 1, dtype=torch.float64)], dim=1)
    theta = torch.linalg.lstsq(z, logits.T).solution.T  # logits = theta zᵀ exactly
    grad = (torch.sigmoid(logits) - torch.from_numpy(rows.toarray())) @ z + 2 * 2.0 * theta
    assert grad.abs().max() < 1e-6  # the optimum of Σ BCE + reg ‖θ‖²
    # One user's answer does not depend on who else is in the batch.
    alone = torch.cat([fold_in_outputs(hidden, rows[i : i + 1], reg=2.0) for i in range(5)])
    torch.testing.assert_close(alone, logits)


def test_autorec_family() -> None:
    train = block_problem()[0]
    opts, users = FitOptions(device="cpu"), np.arange(train.n_users)
    params = {**FAST["uautorec"], "seed": 5}
    u = UAutoRec(**params).fit(train, opts)
    i = IAutoRec(**params, reg=0.2).fit(train, opts)
    ui = UIAutoRec(**params, item_reg=0.2).fit(train, opts)
    # UI-AutoRec is the mean of the separately trained U- and I-AutoRec (JCA §3.3).
    torch.testing.assert_close(ui.score(users), 0.5 * (u.score(users) + i.score(users)))
    assert {r["component"] for r in ui.history_} == {"uautorec", "iautorec"}
    rows = sp.csr_matrix(np.eye(3, train.n_items, dtype=np.float32))
    # New users: U-AutoRec reads the row; I-AutoRec fits their output weights; UI, the mean.
    both = 0.5 * (u.score_new_users(rows) + i.score_new_users(rows))
    torch.testing.assert_close(ui.score_new_users(rows), both)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"loss": "l1"}, "loss must be one of"),
        ({"block_users": 0}, "block_users"),
        ({"block_items": 2.5}, "block_items"),
        ({"hidden": -3}, "hidden"),
        ({"reg": -1.0}, "reg"),
        ({"lr": 0.0}, "lr"),
        ({"lr": "fast"}, "lr"),
        ({"margin": float("nan")}, "margin"),
        ({"normalise": "yes"}, "normalise"),
    ],
)
def test_bad_params_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JCA(**params).fit(interactions(R))
    if "block_users" not in params and "block_items" not in params and "normalise" not in params:
        with pytest.raises(ValueError, match=match):
            UAutoRec(**params).fit(interactions(R))
