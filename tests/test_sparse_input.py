"""The sparse first layer's faster paths give the same floats as the plain ones: the chunked
embedding bag, the sorted transpose, and every row's bag instead of the selected rows'."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ncflab.models import sparse_input
from ncflab.models.jncf import JNCF
from ncflab.models.sparse_input import RatingGraph, SparseLinear


def rating_graph(n_users: int, n_items: int, density: float, seed: int):
    """A random rated matrix with an empty row and an empty column, and its graph."""
    rng = np.random.default_rng(seed)
    dense = rng.integers(1, 6, (n_users, n_items)) * (rng.random((n_users, n_items)) < density)
    dense[1] = 0
    dense[:, 2] = 0
    csr = sp.csr_matrix(dense.astype(np.float32))
    graph = RatingGraph.from_csr(csr.indptr, csr.indices, csr.data, n_items, torch.device("cpu"))
    return dense, graph


@pytest.mark.parametrize(("n", "d"), [(6000, 256), (7000, 129), (5000, 70)])
def test_chunked_bag_sum_is_bitwise_the_embedding_bag(n: int, d: int, monkeypatch) -> None:
    # 6000 x 256 and 7000 x 129 floats exceed CACHE_BYTES and are read in CHUNK-column slices
    # (the last one narrower for 129); 5000 x 70 is chunked only with the smaller budget.
    gen = torch.Generator().manual_seed(n)
    table = torch.randn(n, d, generator=gen)
    index = torch.randint(0, n, (20_000,), generator=gen)
    offsets = torch.arange(0, 20_000, 37)
    values = torch.rand(20_000, generator=gen) * 5
    expected = F.embedding_bag(index, table, offsets, mode="sum", per_sample_weights=values)
    for budget in (sparse_input.CACHE_BYTES, n * sparse_input.CHUNK * 4):
        monkeypatch.setattr(sparse_input, "CACHE_BYTES", budget)
        assert torch.equal(sparse_input._bag_sum(index, table, offsets, values), expected)


@pytest.mark.parametrize("side", ["user", "item"])
def test_sorted_transpose_is_the_masked_transpose(side: str, monkeypatch) -> None:
    _, graph = rating_graph(30, 40, 0.3, seed=2)
    rows = torch.tensor([0, 1, 5, 6, 17, 29])  # row 1 (user side) / column 2 is empty
    bag = graph.user_bag(rows) if side == "user" else graph.item_bag(rows)
    monkeypatch.setattr(sparse_input, "SORT_BELOW", 0.0)
    masked = bag.transpose()
    monkeypatch.setattr(sparse_input, "SORT_BELOW", 1.0)
    for got, want in zip(bag.transpose(), masked, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("side", ["user", "item"])
def test_layer_on_every_row_equals_layer_on_selected_rows(side: str, monkeypatch) -> None:
    # Same outputs and weight gradient, bitwise, and autograd's dense answer (float rounding).
    dense, graph = rating_graph(25, 35, 0.3, seed=3)
    matrix = dense if side == "user" else dense.T
    layer = SparseLinear(matrix.shape[1], 6)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    rows = torch.tensor([1, 2, 3, 8, 20, 24])
    grad = torch.randn(len(rows), 6)
    results = []
    for all_rows in (float("inf"), 0.0):  # never / always every row
        monkeypatch.setattr(sparse_input, "ALL_ROWS", all_rows)
        layer.zero_grad()
        out = graph.user_layer(layer, rows) if side == "user" else graph.item_layer(layer, rows)
        out.backward(grad)
        results.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)
    weight = layer.weight.detach().clone().requires_grad_()
    v = torch.from_numpy(matrix[rows.numpy()]).float()
    out = v @ weight + layer.bias.detach()
    out.backward(grad)
    torch.testing.assert_close(results[0][0], out.detach())
    torch.testing.assert_close(results[0][1], weight.grad)


def test_jncf_step_is_the_same_by_every_path(monkeypatch) -> None:
    # J-NCF's training logits and every parameter's gradient on a minibatch: the layer as it
    # was (one-pass bags, masked transpose, selected rows) against each faster path.
    dense, graph = rating_graph(60, 50, 0.25, seed=4)
    model = JNCF(df_layers=[200, 16], di_layers=[8])
    model.build(60, 50)
    m = model.module_
    rng = np.random.default_rng(5)
    users = torch.from_numpy(rng.integers(0, 60, 40))
    items = torch.from_numpy(rng.integers(0, 50, (40, 5)))
    before = {"CACHE_BYTES": float("inf"), "SORT_BELOW": 0.0, "ALL_ROWS": float("inf")}
    faster = [
        {"CACHE_BYTES": 60 * sparse_input.CHUNK * 4},  # every table read in slices
        {"SORT_BELOW": 1.0},
        {"ALL_ROWS": 0.0},
        {},  # the defaults
    ]
    results = []
    for rules in [before] + [before | r for r in faster]:
        for k, v in rules.items():
            monkeypatch.setattr(sparse_input, k, v)
        m.zero_grad()
        logits = m.train_logits(graph, users, items)
        logits.sum().backward()
        results.append([logits.detach()] + [p.grad.clone() for p in m.parameters()])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)
