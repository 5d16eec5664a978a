"""NCR (NBPR, DNCR, NeuPR): forward passes against hand-computed values, the classification
strategy, the ranking rules (win counts, Algorithm 1, intransitivity) and learning."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_contract import FAST, beats_outside, block_problem

from ncflab.data.interactions import Interactions
from ncflab.data.sampling import NegativeSampler, bpr_triplets
from ncflab.data.splits import Split
from ncflab.evaluation.protocols import evaluate
from ncflab.experiments.ncr import _candidates, compare_rules
from ncflab.models import FitOptions, Recommender
from ncflab.models.bpr import BPRModule
from ncflab.models.ncr import DNCR, NBPR, NeuPR, ncr_instances
from ncflab.models.ncr_net import DNCRNet, NBPRNet, NeuPRNet, PairNet, tower_widths
from ncflab.models.ncr_rank import algorithm1_topk, beats, intransitive_fraction, win_counts

U0, V = [1.0, 2.0], [[3.0, 3.0], [0.5, 0.0], [0.0, 1.0]]  # 1 user, 3 items, d = 2


def tiny_nbpr(w: list[list[float]]) -> NBPRNet:
    net = NBPRNet(1, 3, 2, 0.01, 0.01, seed=0)
    with torch.no_grad():
        net.user.weight.copy_(torch.tensor([U0]))
        net.item.weight.copy_(torch.tensor(V))
        net.w.copy_(torch.tensor(w))
    return net


def tiny_dncr() -> DNCRNet:
    """d = 1, N = 3, factors 1: x₁ = [U; V_i; −V_j] → 2 → 1, then w. U = 0.5, V = (1, −1, 2)."""
    net = DNCRNet(1, 3, 1, 1, 3, 0.01, 0.01, seed=0)
    with torch.no_grad():
        net.user.weight.copy_(torch.tensor([[0.5]]))
        net.item.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0]]))
        net.first.weight.copy_(torch.tensor([[0.2, -0.4, 0.3], [1.0, 0.5, -0.6]]))
        net.first.bias.copy_(torch.tensor([0.1, -0.2]))
        net.tower[1].weight.copy_(torch.tensor([[0.7, -1.1]]))
        net.tower[1].bias.copy_(torch.tensor([0.05]))
        net.out.weight.copy_(torch.tensor([[1.5]]))
    return net


def dncr_by_hand(u: float, vi: float, vj: float) -> float:
    """Eq. 23 for ``tiny_dncr``, written out."""
    x1 = [u, vi, -vj]
    h2 = [
        math.tanh(0.2 * x1[0] - 0.4 * x1[1] + 0.3 * x1[2] + 0.1),
        math.tanh(1.0 * x1[0] + 0.5 * x1[1] - 0.6 * x1[2] - 0.2),
    ]
    h3 = math.tanh(0.7 * h2[0] - 1.1 * h2[1] + 0.05)
    return 1.5 * h3


def triplet(i: int, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.tensor([0]), torch.tensor([i]), torch.tensor([j])


# ------------------------------------------------------------------------- forward passes
def test_nbpr_forward_matches_hand_computation() -> None:
    # w₁ = (1, −1), w₂ = (2, 0.5); U⊙V₁ = (0.5, 0), U⊙V₂ = (0, 2):
    # x̂_u12 = w₁·(0.5, 0) − w₂·(0, 2) = 0.5 − 1 = −0.5; x̂_u21 = −2 − 1 = −3.
    net = tiny_nbpr([[1.0, -1.0], [2.0, 0.5]])
    assert net.logits(*triplet(1, 2)).item() == pytest.approx(-0.5)
    assert net.logits(*triplet(2, 1)).item() == pytest.approx(-3.0)
    pairs = net.pair_logits(torch.tensor([0]), torch.tensor([[1, 2]]))
    torch.testing.assert_close(pairs[0, 0, 1], torch.tensor(-0.5))
    torch.testing.assert_close(pairs[0, 1, 0], torch.tensor(-3.0))


def test_nbpr_with_unit_w_and_eq18_output_is_bpr_mf() -> None:
    # Eq. 17–18: with w = 1, a_out(x) = −log(1 + e^{−x}) of wᵀf is ln σ(U·V_i − U·V_j), the
    # BPR-OPT term of BPR-MF (Eq. 3–4); same embeddings in both models.
    net = tiny_nbpr([[1.0, 1.0], [1.0, 1.0]])
    bpr = BPRModule(1, 3, 2, 0.01, False, seed=0)
    bpr.load_state_dict({"user.weight": net.user.weight, "item.weight": net.item.weight})
    users, pos, neg = torch.tensor([0, 0, 0]), torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1])
    x = net.logits(users, pos, neg)
    w_u = bpr.user(users)
    diff = bpr.item_scores(w_u, pos) - bpr.item_scores(w_u, neg)
    torch.testing.assert_close(x, diff)  # 0.5 − 2 = −1.5, 2 − 9 = −7, 9 − 0.5 = 8.5
    torch.testing.assert_close(x, torch.tensor([-1.5, -7.0, 8.5]))
    a_out = -torch.log1p(torch.exp(-x))
    loss = bpr.loss(users[:1], pos[:1], neg[:1, None], reg=0.0)
    assert -a_out[0].item() == pytest.approx(loss.item(), rel=1e-6)


def test_dncr_forward_matches_hand_computation() -> None:
    net = tiny_dncr()
    for i, j in [(0, 1), (1, 0), (2, 1), (0, 2)]:
        vi, vj = [1.0, -1.0, 2.0][i], [1.0, -1.0, 2.0][j]
        assert net.logits(*triplet(i, j)).item() == pytest.approx(dncr_by_hand(0.5, vi, vj))


def test_dncr_fast_ranking_head_equals_tanh_head() -> None:
    net = DNCRNet(5, 20, 8, 2, 4, 0.3, 0.3, seed=1)
    users, items = torch.arange(5), torch.randint(0, 20, (5, 7), generator=torch.Generator())
    slow = net.pair_logits(users, items)  # gradients on: the literal tanh tower
    with torch.no_grad():
        fast = net.pair_logits(users, items)  # σ rewrite of §4.5's tanh layers
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-6)


def test_dncr_one_layer_reads_the_concatenation() -> None:
    net = DNCRNet(1, 3, 1, 1, 1, 0.01, 0.01, seed=0)
    with torch.no_grad():
        net.user.weight.fill_(0.5)
        net.item.weight.copy_(torch.tensor([[1.0], [-1.0], [2.0]]))
        net.first.weight.copy_(torch.tensor([[2.0, 3.0, 4.0]]))  # w of σ(wᵀx₁)
    # x₁ = [0.5; 1; −2] → 1 + 3 − 8 = −4.
    assert net.logits(*triplet(0, 2)).item() == pytest.approx(-4.0)


def test_tower_halves_to_the_predictive_factors() -> None:
    assert tower_widths(8, 4) == [32, 16, 8]  # §5.1: 96 → 32 → 16 → 8
    assert tower_widths(8, 1) == [] and tower_widths(8, 2) == [8]
    assert DNCR().clone(layers=6)._dncr(3, 4, 0).first.weight.shape == (128, 96)


def test_neupr_is_the_sum_of_its_parts_and_eq26_fuses_with_alpha() -> None:
    nbpr, dncr = tiny_nbpr([[1.0, -1.0], [2.0, 0.5]]), tiny_dncr()
    net = NeuPRNet(tiny_nbpr([[0.0, 0.0], [0.0, 0.0]]), DNCRNet(1, 3, 1, 1, 3, 0.01, 0.01, 7))
    net.fuse(nbpr, dncr, alpha=0.3)
    # Eq. 25–26: σ([αw_N; (1 − α)w_D]ᵀ[f^N; f^D]) = σ(α x̂^NBPR + (1 − α) x̂^DNCR).
    expected = 0.3 * -0.5 + 0.7 * dncr_by_hand(0.5, -1.0, 2.0)
    assert net.logits(*triplet(1, 2)).item() == pytest.approx(expected)
    assert nbpr.w[0, 0].item() == 1.0  # the pre-trained models are left as they were
    pairs = net.pair_logits(torch.tensor([0]), torch.tensor([[1, 2]]))
    assert pairs[0, 0, 1].item() == pytest.approx(expected)


@pytest.mark.parametrize("name", ["nbpr", "dncr", "neupr"])
def test_triplet_logits_agree_with_the_pair_matrix(name: str, fitted) -> None:
    model = fitted[name]
    net: PairNet = model.module_
    users, a, b = torch.tensor([0, 3, 50]), torch.tensor([1, 9, 30]), torch.tensor([5, 2, 30])
    pairs = model.pair_logits(users.numpy(), torch.stack([a, b], 1).numpy())
    with torch.no_grad():
        torch.testing.assert_close(net.logits(users, a, b), pairs[:, 0, 1], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(PairNet.logits(net, users, a, b), net.logits(users, a, b))


# ------------------------------------------------------------------- classification strategy
def test_mirrored_triplets_get_complementary_labels() -> None:
    train = block_problem()[0]
    sampler = NegativeSampler.from_csr(train.csr("binary"))
    rng = np.random.default_rng(0)
    users, pos, neg = bpr_triplets(sampler, rng, 3)
    u, a, b, y = ncr_instances(users, pos, neg, rng)
    assert len(y) == 2 * len(users) * 3 and y.sum() == len(y) / 2  # |D_S| = |D̄_S| (§4.2)
    positive = train.csr("binary")
    assert (np.asarray(positive[u[y == 1], a[y == 1]]).ravel() == 1).all()  # i observed
    assert (np.asarray(positive[u[y == 1], b[y == 1]]).ravel() == 0).all()  # j not
    key = lambda uu, x, z: set(zip(uu.tolist(), x.tolist(), z.tolist(), strict=True))  # noqa: E731
    d_s, d_bar = key(u[y == 1], a[y == 1], b[y == 1]), key(u[y == 0], a[y == 0], b[y == 0])
    assert d_bar == {(uu, j, i) for uu, i, j in d_s}  # D̄_S = {(u, j, i)} (Eq. 12)


def test_loss_is_eq15_binary_cross_entropy() -> None:
    model = NBPR(epochs=1, batch_size=4)
    model.fit(block_problem()[0], FitOptions(device="cpu"))
    net = model.module_
    users, a, b = torch.tensor([0, 0]), torch.tensor([1, 20]), torch.tensor([20, 1])
    p = torch.sigmoid(net.logits(users, a, b))
    eq15 = -(torch.log(p[0]) + torch.log(1 - p[1])) / 2
    bce = F.binary_cross_entropy_with_logits(net.logits(users, a, b), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(bce, eq15)


# --------------------------------------------------------------------------- ranking rules
def cycle_logits() -> torch.Tensor:
    """Candidates a, b, c, d with a ≻ b ≻ c ≻ a and all three ≻ d: L[x, y] = 1 if x ≻ y."""
    L = torch.zeros(1, 4, 4)
    for x, y in [(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)]:
        L[0, x, y] = 1.0
    return L


def test_win_counts_and_algorithm1_on_a_hand_example() -> None:
    # Transitive: scores s = (0.1, 0.9, 0.5, 0.7) with L[x, y] = s_x − s_y (NBPR's form).
    s = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    L = s[:, :, None] - s[:, None, :]
    assert win_counts(L).tolist() == [[0.0, 3.0, 1.0, 2.0]]
    assert algorithm1_topk(L, 3).tolist() == [[1, 3, 2]]
    # The cycle a ≻ b ≻ c ≻ a: each of a, b, c has 2 wins, d none.
    L = cycle_logits()
    assert win_counts(L).tolist() == [[2.0, 2.0, 2.0, 0.0]]
    # Algorithm 1 scans a, b, c, d: max = a; b loses to a; c beats a → c. Then a (c gone; a
    # beats b), then b, then d.
    assert algorithm1_topk(L, 4).tolist() == [[2, 0, 1, 3]]
    assert algorithm1_topk(L, 10).shape == (1, 4)


def test_ties_win_nothing() -> None:
    L = torch.zeros(2, 5, 5)  # a constant model
    assert win_counts(L).eq(0).all() and not beats(L).any()
    assert algorithm1_topk(L, 2).tolist() == [[0, 1], [0, 1]]  # ties keep the earlier item
    assert torch.isnan(intransitive_fraction(L)).all()  # no decided triangle


def test_intransitive_fraction_exact_and_sampled() -> None:
    # One cycle among the C(4, 3) = 4 triangles of ``cycle_logits``.
    L = cycle_logits()
    assert intransitive_fraction(L).item() == pytest.approx(0.25)
    assert intransitive_fraction(L, samples=4000, seed=1).item() == pytest.approx(0.25, abs=0.03)
    # A random tournament: exact count against Kendall's formula C(n,3) − Σ_v C(s_v, 2).
    L = torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(0))
    s = win_counts(L)
    cyclic = math.comb(12, 3) - (s * (s - 1) / 2).sum(1)
    torch.testing.assert_close(intransitive_fraction(L), cyclic / math.comb(12, 3))
    sampled = intransitive_fraction(L, samples=20000, seed=2)
    torch.testing.assert_close(sampled, cyclic / math.comb(12, 3), atol=0.02, rtol=0)


def test_bad_pair_logits_are_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, C\)"):
        win_counts(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="k must be"):
        algorithm1_topk(torch.zeros(1, 3, 3), 0)
    with pytest.raises(ValueError, match="C=2"):
        intransitive_fraction(torch.zeros(1, 2, 2), samples=5)


# ------------------------------------------------------------------------- the estimators
def make(name: str, **overrides: object) -> Recommender:
    cls = {"nbpr": NBPR, "dncr": DNCR, "neupr": NeuPR}[name]
    return cls(**{**FAST[name], "seed": 3, **overrides})


@pytest.fixture(scope="module")
def fitted() -> dict[str, Recommender]:
    torch.set_num_threads(1)
    train = block_problem()[0]
    return {n: make(n).fit(train, FitOptions(device="cpu")) for n in ("nbpr", "dncr", "neupr")}


@pytest.mark.parametrize("name", ["nbpr", "dncr", "neupr"])
def test_score_items_are_win_counts_of_the_pair_logits(name: str, fitted) -> None:
    model = fitted[name]
    users, items = np.array([0, 7, 100]), np.array([[3, 1, 40, 2], [5, 6, 7, 47], [0, 0, 9, 30]])
    wins = model.score_items(users, items)
    torch.testing.assert_close(wins, win_counts(model.pair_logits(users, items)))
    assert wins.dtype == torch.float32 and wins.max() <= 3
    assert wins[2, 0] == wins[2, 1]  # a repeated candidate ties with itself


@pytest.mark.parametrize("name", ["nbpr", "dncr", "neupr"])
def test_learns_block_problem_under_the_pairwise_rule(name: str, fitted) -> None:
    train, held, in_block = block_problem()
    users = np.arange(train.n_users)
    everything = np.tile(np.arange(train.n_items), (train.n_users, 1))
    assert beats_outside(fitted[name].score_items(users, everything).numpy(), held, in_block) >= 0.9


def test_nbpr_proxy_ranks_exactly_as_the_rule(fitted) -> None:
    # Eq. 19–22: NBPR's rule is i ≻ j iff (w₁ + w₂)ᵀ(U⊙V_i) > (w₁ + w₂)ᵀ(U⊙V_j).
    model = fitted["nbpr"]
    users = np.arange(20)
    proxy = copy.copy(model)
    proxy.full_scores = "proxy"
    scores, wins = proxy.score(users), model.score(users)
    net = model.module_
    u, v = net.user.weight[:20].detach(), net.item.weight.detach()
    expected = ((u * (net.w[0] + net.w[1]).detach()) @ (v - v.mean(0)).T).float()
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-6)
    # Win counts over all items = the number of items with a lower proxy score.
    below = (scores[:, :, None] > scores[:, None, :]).sum(2).float()
    assert (below == wins).float().mean() > 0.99  # float rounding may split near-ties


def test_neupr_pretraining_fuses_pretrained_parts(tmp_path) -> None:
    torch.set_num_threads(1)
    train, held, in_block = block_problem()
    model = make("neupr", pretrain=True, pretrain_alpha=0.5, epochs=8)
    model.fit(train, FitOptions(device="cpu"))
    assert model.pretrain_epochs_ == [8, 8]
    scores = model.score(np.arange(train.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9
    loaded = Recommender.load(model.save(tmp_path / "neupr"))
    items = np.tile(np.arange(train.n_items), (3, 1))
    assert torch.equal(
        loaded.score_items(np.arange(3), items), model.score_items(np.arange(3), items)
    )


def test_neupr_pretrain_from_saved_runs_is_pretrain_from_scratch(tmp_path) -> None:
    """An NBPR run of NeuPR's seed and a DNCR run of seed + 1 (no validation here, so nothing
    else differs) give the very NeuPR that fitting them inside ``pretrain`` gives."""
    torch.set_num_threads(1)
    train = block_problem()[0]
    fast = {"epochs": 2, "batch_size": 128, "seed": 4}
    NBPR(**fast).fit(train, FitOptions(device="cpu")).save(tmp_path / "nbpr_run" / "model")
    DNCR(**{**fast, "seed": 5}).fit(train, FitOptions(device="cpu")).save(tmp_path / "dncr")
    scratch = NeuPR(**fast, pretrain=True).fit(train, FitOptions(device="cpu"))
    paths = {
        "pretrained_nbpr": str(tmp_path / "nbpr_run"),
        "pretrained_dncr": str(tmp_path / "dncr"),
    }
    loaded = NeuPR(**fast, pretrain=True, **paths).fit(train, FitOptions(device="cpu"))
    for key, value in scratch.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[key], value), key
    assert loaded.pretrain_epochs_ == scratch.pretrain_epochs_ == [2, 2]
    with pytest.raises(ValueError, match=r"pretrained_dncr .* does not fit.*'layers': 4"):
        NeuPR(**fast, layers=3, pretrain=True, **paths).fit(train, FitOptions(device="cpu"))
    with pytest.raises(ValueError, match="holds a 'nbpr' model, not a 'dncr'"):
        swapped = {"pretrained_dncr": paths["pretrained_nbpr"]}
        NeuPR(**fast, pretrain=True, **swapped).fit(train, FitOptions(device="cpu"))
    with pytest.raises(ValueError, match="only used with pretrain=true"):
        NeuPR(**fast, **paths).fit(train, FitOptions(device="cpu"))


def test_topk_algorithm1_returns_item_indices(fitted) -> None:
    model = fitted["nbpr"]
    items = np.array([[10, 11, 12, 40, 41]])
    top = model.topk_algorithm1(np.array([0]), items, k=3)
    assert top.shape == (1, 3) and set(top[0]) <= set(items[0])
    wins = model.score_items(np.array([0]), items)[0].numpy()  # NBPR: transitive, so they agree
    assert list(top[0]) == list(items[0][np.argsort(-wins, kind="stable")[:3]])


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"batch_size": 1}, "batch_size"),
        ({"init": "he"}, "init"),
        ({"full_scores": "all"}, "full_scores"),
        ({"factors": 0}, "factors"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_hyperparameters_are_errors(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DNCR(**overrides).fit(block_problem()[0], FitOptions(device="cpu"))


def test_bad_layers_and_alpha_are_errors() -> None:
    train = block_problem()[0]
    with pytest.raises(ValueError, match="layers"):
        DNCR(layers=0).fit(train)
    with pytest.raises(ValueError, match="pretrain_alpha"):
        NeuPR(pretrain_alpha=1.5).fit(train)


def test_bad_candidates_are_errors(fitted) -> None:
    model = fitted["dncr"]
    with pytest.raises(ValueError, match="items must be"):
        model.score_items(np.array([0, 1]), np.array([[1, 2, 3]]))
    with pytest.raises(IndexError, match="48"):
        model.score_items(np.array([0]), np.array([[1, 48]]))
    with pytest.raises(IndexError, match="120"):
        model.score_items(np.array([120]), np.array([[1, 2]]))


def block_split() -> Split:
    """The block problem with its held-out items as test and 20 out-of-block negatives each."""
    train, held, in_block = block_problem()
    rng = np.random.default_rng(0)
    outside = np.argsort(np.where(in_block, 2.0, rng.random(in_block.shape)), axis=1)[:, :20]
    users, ids = np.arange(train.n_users), np.arange
    test = Interactions(users, held, None, None, ids(train.n_users), ids(train.n_items))
    return Split(train, test, negatives=outside)


@pytest.mark.parametrize("position", ["random", "first", "last"])
def test_compare_rules_agree_for_transitive_nbpr(fitted, position: str) -> None:
    out = compare_rules(fitted["nbpr"], block_split(), k=5, position=position)
    assert out["users"] == 120 and out["HR@5 wins"] >= 0.9
    assert out["HR@5 wins"] == out["HR@5 alg1"] and out["hit_agreement"] == 1.0
    assert out["NDCG@5 wins"] == pytest.approx(out["NDCG@5 alg1"])
    assert out["intransitive"] == 0.0  # Eq. 19–22


def test_compare_rules_on_dncr(fitted) -> None:
    out = compare_rules(fitted["dncr"], block_split(), k=5, batch_size=7)
    assert 0.0 <= out["intransitive"] < 0.5 and 0.0 <= out["topk_overlap"] <= 1.0
    assert out["HR@5 wins"] >= 0.9 and 0.0 <= out["NDCG@5 alg1"] <= out["HR@5 alg1"]


def test_compare_rules_places_the_held_out_item(fitted) -> None:
    split = block_split()
    users, items, slot = _candidates(split, "test", "random", seed=4)
    assert (items[np.arange(len(users)), slot] == block_problem()[1][users]).all()
    assert len(set(slot.tolist())) > 5  # spread over the 21 places
    rest = items[np.arange(items.shape[1])[None, :] != slot[:, None]].reshape(len(users), -1)
    assert (rest == split.negatives[users]).all()
    with pytest.raises(ValueError, match="position"):
        compare_rules(fitted["nbpr"], split, position="middle")


def test_a_constant_model_never_hits_in_sampled_evaluation(fitted) -> None:
    model = copy.deepcopy(fitted["dncr"])
    with torch.no_grad():
        model.module_.out.weight.zero_()  # every ŷ_uij = 0.5: all pairs tie
    result = evaluate(model, block_split(), part="test", protocol="sampled", ks=(10,))
    assert result.means["HR@10"] == 0.0  # ties win nothing and tied counts rank it last


@pytest.mark.parametrize("layers", [1, 2, 6])
def test_every_depth_of_fig6_trains_and_ranks(layers: int) -> None:
    torch.set_num_threads(1)
    train = block_problem()[0]
    model = NeuPR(layers=layers, epochs=2, batch_size=128, pretrain=True)
    model.fit(train, FitOptions(device="cpu"))
    wins = model.score_items(np.arange(4), np.tile(np.arange(10), (4, 1)))
    assert wins.shape == (4, 10) and torch.isfinite(wins).all()
