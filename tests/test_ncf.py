"""GMF, MLP and NeuMF: the tower rule, forward passes and the log loss against hand-computed
values, the pre-training fusion (Eq. 13), and learning the synthetic block problem."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_contract import FAST, beats_outside, block_problem

from ncflab.models import FitOptions
from ncflab.models.ncf import GMF, MLP, NeuMF
from ncflab.models.ncf_net import GMFBody, MLPBody, NCFNet, fuse, mlp_layers
from ncflab.training.losses import log_loss


def set_(param: torch.Tensor, values: list) -> None:
    with torch.no_grad():
        param.copy_(torch.tensor(values, dtype=torch.float32))


def tiny_gmf() -> NCFNet:
    """1 user, 2 items, f = 2: p_0 = (1, 2), q_0 = (0.5, −1), q_1 = (0, 1), h = (2, 1), b = 0.1."""
    net = NCFNet([GMFBody(1, 2, 2, 0.01, 0)], "glorot", 0.01, 0)
    set_(net.bodies[0].user.weight, [[1.0, 2.0]])
    set_(net.bodies[0].item.weight, [[0.5, -1.0], [0.0, 1.0]])
    set_(net.out.weight, [[2.0, 1.0]])
    set_(net.out.bias, [0.1])
    return net


def tiny_mlp() -> NCFNet:
    """layers [4, 2]: p_0 = (1, 2), q_0 = (3, −1), q_1 = (0, 0); W rows (1, 0, 0, 1) and
    (0, −1, 1, 0), b = (0, 0.5); h = (1, 2), b_out = −0.5."""
    net = NCFNet([MLPBody(1, 2, [4, 2], "glorot", 0.01, 0)], "glorot", 0.01, 0)
    body = net.bodies[0]
    set_(body.user.weight, [[1.0, 2.0]])
    set_(body.item.weight, [[3.0, -1.0], [0.0, 0.0]])
    set_(body.tower[0].weight, [[1.0, 0.0, 0.0, 1.0], [0.0, -1.0, 1.0, 0.0]])
    set_(body.tower[0].bias, [0.0, 0.5])
    set_(net.out.weight, [[1.0, 2.0]])
    set_(net.out.bias, [-0.5])
    return net


def test_tower_rule_is_the_papers() -> None:
    # §4.1: factors 8 → neural CF layers 32 → 16 → 8, embedding size 16 (input 2 · 16 = 32).
    assert mlp_layers(8) == [32, 32, 16, 8]
    assert mlp_layers(64) == [256, 256, 128, 64]
    assert mlp_layers(8, hidden=1) == [8, 8]
    body = MLP(factors=16)._mlp_body(3, 4)
    assert body.user.weight.shape == (3, 32) and body.width == 16
    assert MLP(layers=[64, 32, 16, 8])._mlp_body(3, 4).dim == 32  # the authors' README run


def test_gmf_forward_matches_hand_computation() -> None:
    # Eq. 9 before σ: hᵀ(p ⊙ q) + b = 2·0.5 + 1·(−2) + 0.1 = −0.9 and 0 + 2 + 0.1 = 2.1.
    net = tiny_gmf()
    users = torch.tensor([0, 0])
    torch.testing.assert_close(net.logits(users, torch.tensor([0, 1])), torch.tensor([-0.9, 2.1]))
    candidates = net.logits(torch.tensor([0]), torch.tensor([[0, 1]]))
    torch.testing.assert_close(candidates, torch.tensor([[-0.9, 2.1]]))


def test_mlp_forward_matches_hand_computation() -> None:
    # Eq. 10: [p; q] = (1, 2, 3, −1) → W·+b = (0, 1.5) → ReLU (0, 1.5) → 1·0 + 2·1.5 − 0.5 = 2.5.
    # Item 1: [p; q] = (1, 2, 0, 0) → (1, −1.5) → ReLU (1, 0) → 1 − 0.5 = 0.5.
    net = tiny_mlp()
    users = torch.tensor([0, 0])
    torch.testing.assert_close(net.logits(users, torch.tensor([0, 1])), torch.tensor([2.5, 0.5]))
    # The split first layer used for candidate sets gives the same values.
    candidates = net.logits(torch.tensor([0]), torch.tensor([[0, 1]]))
    torch.testing.assert_close(candidates, torch.tensor([[2.5, 0.5]]))


def test_neumf_forward_concatenates_the_parts() -> None:
    # Eq. 12: σ(hᵀ[φ^GMF; φ^MLP] + b); φ^GMF(item 0) = (0.5, −2), φ^MLP(item 0) = (0, 1.5).
    gmf, mlp = tiny_gmf(), tiny_mlp()
    net = NCFNet([gmf.bodies[0], mlp.bodies[0]], "glorot", 0.01, 0)
    set_(net.out.weight, [[1.0, 1.0, -1.0, 2.0]])
    set_(net.out.bias, [0.25])
    expected = 0.5 - 2.0 + 0.0 + 3.0 + 0.25
    logit = net.logits(torch.tensor([0]), torch.tensor([0]))
    torch.testing.assert_close(logit, torch.tensor([expected]))


def test_log_loss_matches_hand_computation() -> None:
    # Eq. 7: −[y log σ(x) + (1 − y) log(1 − σ(x))]: x = 0, y = 1 → ln 2; x = 2, y = 0 → ln(1 + e²).
    loss = log_loss(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]), logits=True)
    assert loss.item() == pytest.approx((math.log(2) + math.log1p(math.e**2)) / 2, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_fusion_gives_the_eq13_weights(alpha: float) -> None:
    gmf, mlp = GMF(factors=4, seed=1), MLP(factors=4, seed=2)
    gmf.build(5, 7), mlp.build(5, 7)
    with torch.no_grad():  # distinct, non-zero biases
        gmf.module_.out.bias.fill_(0.3), mlp.module_.out.bias.fill_(-0.7)
    neumf = NeuMF(factors=4, alpha=alpha)
    neumf.build(5, 7)
    fuse(neumf.module_, gmf.module_, mlp.module_, alpha)
    h = neumf.module_.out.weight[0]
    torch.testing.assert_close(h[:4], alpha * gmf.module_.out.weight[0])
    torch.testing.assert_close(h[4:], (1 - alpha) * mlp.module_.out.weight[0])
    assert neumf.module_.out.bias.item() == pytest.approx(alpha * 0.3 - (1 - alpha) * 0.7)
    for part, src in zip(neumf.module_.bodies, (gmf, mlp), strict=True):
        for key, value in src.module_.bodies[0].state_dict().items():
            assert torch.equal(part.state_dict()[key], value)
    # Hence the fused logit is the α-mix of the two pre-trained logits, for every pair.
    users, items = torch.arange(5)[:, None], torch.arange(7)[None, :].expand(5, -1)
    with torch.no_grad():
        mix = alpha * gmf.module_.logits(users[:, 0], items) + (1 - alpha) * mlp.module_.logits(
            users[:, 0], items
        )
        torch.testing.assert_close(neumf.module_.logits(users[:, 0], items), mix)


def test_pretrained_fit_starts_from_the_fusion(monkeypatch) -> None:
    """``pretrain`` fits GMF and MLP, fuses them and fine-tunes; with an SGD step of 1e-12 the
    fine-tuned weights are the fused ones."""
    torch.set_num_threads(1)
    train, _, _ = block_problem()
    fast = {"factors": 4, "lr": 0.01, "epochs": 2, "batch_size": 128}
    fitted = {}

    def pretrained(self, data, options):
        fitted["gmf"] = GMF(**fast).fit(data, options)
        fitted["mlp"] = MLP(**fast).fit(data, options)
        return fitted["gmf"], fitted["mlp"]

    monkeypatch.setattr(NeuMF, "pretrained", pretrained)
    model = NeuMF(**fast, pretrain=True, finetune_optimizer="sgd", finetune_lr=1e-12)
    model.fit(train, FitOptions(device="cpu"))
    expected = NeuMF(**fast)
    expected.build(train.n_users, train.n_items)
    fuse(expected.module_, fitted["gmf"].module_, fitted["mlp"].module_, 0.5)
    for key, value in expected.module_.state_dict().items():
        torch.testing.assert_close(model.module_.state_dict()[key], value)
    assert model.pretrain_best_ == [2, 2]  # no validation: the parts keep all their epochs


def test_pretrained_fit_keeps_the_fusion_when_validation_prefers_it() -> None:
    """The fused start is validated as epoch 0; when no fine-tuned epoch beats it, the fit
    ends with exactly the fused weights (the loop restores its best epoch)."""
    torch.set_num_threads(1)
    train, _, _ = block_problem()
    fast = {"factors": 4, "lr": 0.01, "epochs": 3, "batch_size": 128}
    gmf = GMF(**fast).fit(train, FitOptions(device="cpu"))
    mlp = MLP(**fast).fit(train, FitOptions(device="cpu"))
    start_wins = FitOptions(
        device="cpu", patience=2, validate=lambda m: {"NDCG@10": 0.0 if m.history_ else 1.0}
    )
    model = NeuMF(**fast, pretrain=True)
    model.pretrained = lambda data, options: (gmf, mlp)
    model.fit(train, start_wins)
    assert model.best_epoch_ == 0 and [r["epoch"] for r in model.history_] == [0, 1, 2]
    expected = NeuMF(**fast)
    expected.build(train.n_users, train.n_items)
    fuse(expected.module_, gmf.module_, mlp.module_, 0.5)
    for key, value in expected.module_.state_dict().items():
        assert torch.equal(model.module_.state_dict()[key], value), key


def test_pretrain_runs_gmf_and_mlp_with_the_shared_settings() -> None:
    torch.set_num_threads(1)
    train, _, _ = block_problem()
    model = NeuMF(factors=4, layers=[16, 8, 4], epochs=1, batch_size=128)
    gmf, mlp = model.pretrained(train, FitOptions(device="cpu"))
    assert gmf.factors == 4 and mlp.layers == [16, 8, 4] and mlp.epochs == 1
    assert len(gmf.history_) == len(mlp.history_) == 1


def test_pretrain_from_saved_runs_is_pretrain_from_scratch(tmp_path) -> None:
    """GMF and MLP runs saved with NeuMF's settings give the very NeuMF that fitting them
    inside ``pretrain`` gives (a run directory with ``model/`` or a model directory)."""
    torch.set_num_threads(1)
    train, _, _ = block_problem()
    fast = {"factors": 4, "lr": 0.01, "epochs": 2, "batch_size": 128, "seed": 5}
    GMF(**fast).fit(train, FitOptions(device="cpu")).save(tmp_path / "gmf_run" / "model")
    MLP(**fast).fit(train, FitOptions(device="cpu")).save(tmp_path / "mlp_model")
    scratch = NeuMF(**fast, pretrain=True).fit(train, FitOptions(device="cpu"))
    loaded = NeuMF(
        **fast,
        pretrain=True,
        pretrained_gmf=str(tmp_path / "gmf_run"),
        pretrained_mlp=str(tmp_path / "mlp_model"),
    ).fit(train, FitOptions(device="cpu"))
    for key, value in scratch.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[key], value), key


def test_pretrain_from_saved_runs_rejects_what_does_not_fit(tmp_path) -> None:
    torch.set_num_threads(1)
    train, _, _ = block_problem()
    fast = {"lr": 0.01, "epochs": 1, "batch_size": 128}
    GMF(**fast, factors=8).fit(train, FitOptions(device="cpu")).save(tmp_path / "gmf8")
    neumf = NeuMF(**fast, factors=4, pretrain=True, pretrained_gmf=str(tmp_path / "gmf8"))
    with pytest.raises(ValueError, match=r"does not fit this model.*'width': 8"):
        neumf.fit(train, FitOptions(device="cpu"))
    wrong_kind = NeuMF(**fast, factors=8, pretrain=True, pretrained_mlp=str(tmp_path / "gmf8"))
    with pytest.raises(ValueError, match="holds a 'gmf' model, not a 'mlp'"):
        wrong_kind.fit(train, FitOptions(device="cpu"))
    with pytest.raises(ValueError, match="only used with pretrain=true"):
        NeuMF(pretrained_gmf=str(tmp_path / "gmf8")).fit(train, FitOptions(device="cpu"))


@pytest.mark.parametrize(
    "cls, overrides",
    [
        (MLP, {"layers": [32, 16, 8]}),  # MLP-2, embeddings 16
        (NeuMF, {"layers": [32, 16, 8]}),
        (NeuMF, {"pretrain": True, "finetune_optimizer": "adam", "finetune_lr": 0.005}),
        (NeuMF, {"pretrain": True, "finetune_optimizer": "sgd", "finetune_lr": 0.1}),
        (GMF, {"init": "normal", "n_neg": 2}),
    ],
)
def test_variants_learn_block_problem(cls, overrides: dict) -> None:
    torch.set_num_threads(1)
    train, held, in_block = block_problem(seed=1)
    model = cls(**{**FAST[cls.name], **overrides}).fit(train, FitOptions(device="cpu"))
    scores = model.score(np.arange(train.n_users))
    assert beats_outside(scores.numpy(), held, in_block) >= 0.9
    # Ranking all items in chunks equals the per-pair training path.
    users = torch.arange(train.n_users).repeat_interleave(train.n_items)
    items = torch.arange(train.n_items).repeat(train.n_users)
    with torch.no_grad():
        pairs = model.module_.logits(users, items).view(train.n_users, -1)
    torch.testing.assert_close(scores, pairs, rtol=1e-5, atol=1e-5)


def test_mlp0_cannot_personalise() -> None:
    # §4.4: MLP-0 projects [p_u; q_i] straight to h, so a user's ranking is the items' order
    # hᵢᵀq_i for everyone (the paper: no better than ItemPop).
    torch.set_num_threads(1)
    train, _, _ = block_problem(seed=1)
    scores = MLP(**{**FAST["mlp"], "layers": [16]}).fit(train).score(np.arange(train.n_users))
    order = torch.argsort(scores, dim=1, stable=True)
    assert (order == order[0]).all()


@pytest.mark.parametrize(
    "cls, params, match",
    [
        (GMF, {"factors": 0}, "factors"),
        (GMF, {"lr": -1.0}, "lr"),
        (GMF, {"init": "zeros"}, "init"),
        (MLP, {"layers": [15, 8]}, "even"),
        (NeuMF, {"alpha": 1.5}, "alpha"),
        (NeuMF, {"finetune_optimizer": "rmsprop"}, "finetune_optimizer"),
        (NeuMF, {"finetune_lr": 0.0}, "finetune_lr"),
    ],
)
def test_bad_params_are_errors(cls, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**params).fit(block_problem()[0])
