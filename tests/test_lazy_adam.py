"""RowAdam: with sparse row gradients its exact mode is torch's fused Adam bit for bit (on its
own and in a whole NCF / BPR fit), and its lazy mode is Adam on the touched rows only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_contract import FAST, beats_outside, block_problem
from torch import nn

from ncflab.models import FitOptions
from ncflab.models.bpr import BPR
from ncflab.models.ncf import GMF, MLP, NeuMF
from ncflab.training.layers import embedding, lookup, seeded_generator
from ncflab.training.lazy_adam import RowAdam, row_adam, sparse_rows


class Toy(nn.Module):
    """Two tables and a dense layer: what the embedding models look like to an optimizer."""

    def __init__(self) -> None:
        super().__init__()
        gen = seeded_generator(0)
        self.user = embedding(7, 4, 0.1, gen)
        self.item = embedding(9, 4, 0.1, gen)
        self.dense = nn.Linear(4, 1)
        with torch.no_grad():
            self.dense.weight.copy_(torch.randn(1, 4, generator=gen))
            self.dense.bias.fill_(0.1)

    def loss(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        p, q = lookup(self.user, users), lookup(self.item, items)  # items may be 2-D
        return self.dense(p[:, None, :] * q).square().mean()


def batches(steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    # Repeated rows within a batch, and rows no batch touches (items 7, 8).
    return [
        (torch.randint(0, 7, (5,), generator=gen), torch.randint(0, 7, (5, 2), generator=gen))
        for _ in range(steps)
    ]


def train(model: Toy, opt: torch.optim.Optimizer, data: list) -> None:
    for users, items in data:
        opt.zero_grad(set_to_none=True)
        model.loss(users, items).backward()
        opt.step()


def test_sparse_rows_switches_gradients_not_values() -> None:
    model, users, items = Toy(), *batches(1)[0]
    dense = model.loss(users, items)
    dense.backward()
    grad = model.item.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    sparse_rows(model)
    sparse = model.loss(users, items)
    sparse.backward()
    assert torch.equal(dense, sparse)
    assert model.item.weight.grad.is_sparse and not model.dense.weight.grad.is_sparse
    torch.testing.assert_close(model.item.weight.grad.to_dense(), grad, rtol=0, atol=1e-12)
    with torch.no_grad():  # scoring never makes sparse tensors
        assert not lookup(model.item, items).is_sparse


def test_exact_mode_is_fused_adam_bit_for_bit() -> None:
    data = batches(30)
    reference, model = Toy(), Toy()
    train(reference, torch.optim.Adam(reference.parameters(), lr=0.01, fused=True), data)
    opt = row_adam(model, 0.01)
    train(model, opt, data)
    for (name, a), b in zip(reference.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b), name
    # The same state as torch's Adam (snapshots read either).
    groups = torch.optim.Adam(Toy().parameters(), fused=True).state_dict()["param_groups"]
    assert opt.state_dict()["param_groups"][0].keys() == groups[0].keys()
    assert set(opt.state[model.item.weight]) == {"step", "exp_avg", "exp_avg_sq"}
    # A step that looks up item 0 only still moves the other rows, on their momentum.
    before = model.item.weight.detach().clone()
    train(model, opt, [(torch.tensor([0]), torch.tensor([[0, 0]]))])
    assert (model.item.weight[1:7] != before[1:7]).all()


def test_exact_mode_resumes_from_a_state_dict() -> None:
    data = batches(20)
    straight = Toy()
    train(straight, row_adam(straight, 0.01), data)
    first = Toy()
    opt = row_adam(first, 0.01)
    train(first, opt, data[:10])
    second = Toy()
    second.load_state_dict(first.state_dict())
    resumed = row_adam(second, 0.01)
    resumed.load_state_dict(opt.state_dict())
    train(second, resumed, data[10:])
    for a, b in zip(straight.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_lazy_mode_is_adam_on_the_touched_rows() -> None:
    model = Toy()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = row_adam(model, 0.01, lazy=True)
    users = torch.tensor([1, 1, 3])
    items = torch.tensor([[0, 2], [2, 2], [5, 0]])
    model.loss(users, items).backward()
    grad_item = model.item.weight.grad.to_dense()
    opt.step()
    # First step of Adam on a row with gradient g: θ − lr · g / (|g| + ε) (bias-corrected).
    g = grad_item[[0, 2, 5]]
    expected = before["item.weight"][[0, 2, 5]] - 0.01 * g / (g.abs() + 1e-8)
    torch.testing.assert_close(model.item.weight[[0, 2, 5]], expected)
    untouched = [1, 3, 4, 6, 7, 8]
    assert torch.equal(model.item.weight[untouched], before["item.weight"][untouched])
    assert not opt.state[model.item.weight]["exp_avg"][untouched].any()
    # Later steps leave untouched rows' moments alone (no decay), unlike Adam.
    m = opt.state[model.item.weight]["exp_avg"].clone()
    opt.zero_grad(set_to_none=True)
    model.loss(torch.tensor([4]), torch.tensor([[6, 6]])).backward()
    opt.step()
    assert torch.equal(opt.state[model.item.weight]["exp_avg"][[0, 2, 5]], m[[0, 2, 5]])
    assert opt.state[model.item.weight]["step"].item() == 2


def test_dense_gradients_get_plain_adam() -> None:
    data = batches(10)
    reference, model = Toy(), Toy()
    train(reference, torch.optim.Adam(reference.parameters(), lr=0.01, fused=True), data)
    train(model, RowAdam(model.parameters(), lr=0.01, lazy=True), data)  # no sparse_rows
    for a, b in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def dense_adam(monkeypatch: pytest.MonkeyPatch, module: object) -> None:
    """Make ``module``'s models train with torch's fused Adam on dense gradients."""

    def adam(net: nn.Module, lr: float, lazy: bool = False) -> torch.optim.Optimizer:
        assert not lazy
        return torch.optim.Adam(net.parameters(), lr=lr, fused=True)

    monkeypatch.setattr(module, "row_adam", adam)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GMF(factors=8, epochs=2, batch_size=64, n_neg=2),
        lambda: MLP(factors=8, epochs=2, batch_size=64),
        lambda: NeuMF(factors=8, layers=[16, 16, 8], epochs=2, batch_size=64),
        lambda: BPR(factors=8, epochs=2, batch_size=64, item_bias=True, n_neg=2),
    ],
)
def test_fit_with_adam_is_the_dense_fit(monkeypatch: pytest.MonkeyPatch, make) -> None:
    torch.set_num_threads(1)
    train_set = block_problem(seed=2)[0]
    fitted = make().fit(train_set, FitOptions(device="cpu"))
    import ncflab.models.bpr as bpr_module
    import ncflab.models.ncf as ncf_module

    dense_adam(monkeypatch, ncf_module)
    dense_adam(monkeypatch, bpr_module)
    reference = make().fit(train_set, FitOptions(device="cpu"))
    for (name, a), b in zip(
        reference.module_.state_dict().items(), fitted.module_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "make",
    [
        lambda: GMF(**FAST["gmf"], optimizer="lazy_adam"),
        lambda: NeuMF(**FAST["neumf"], optimizer="lazy_adam"),
        lambda: BPR(**FAST["bpr"], optimizer="lazy_adam"),
    ],
)
def test_lazy_adam_learns_block_problem(make) -> None:
    torch.set_num_threads(1)
    train_set, held, in_block = block_problem(seed=1)
    model = make().fit(train_set, FitOptions(device="cpu"))
    scores = model.score(np.arange(train_set.n_users)).numpy()
    assert beats_outside(scores, held, in_block) >= 0.9


def test_unknown_optimizer_is_an_error() -> None:
    train_set = block_problem(seed=1)[0]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        GMF(optimizer="sparse").fit(train_set)
