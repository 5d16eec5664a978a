"""Hits of a model and JCA's hits difference rate between two models (JCA §3.3, Fig. 1)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from typer.testing import CliRunner

from ncflab.cli import app
from ncflab.config import RunConfig
from ncflab.data.interactions import Interactions
from ncflab.data.splits import Split, ratio_split
from ncflab.evaluation.protocols import evaluate
from ncflab.experiments import run as run_module
from ncflab.experiments.compare import (
    Hits,
    ecdf,
    hits_difference_rate,
    load_pair,
    plot_cdf,
    summarize_rates,
    top_k_hits,
)
from ncflab.experiments.run import write_run
from ncflab.models.ease import EASE
from ncflab.models.popularity import ItemPop


def records(pairs: list[tuple[int, int]], n_users: int = 3, n_items: int = 6) -> Interactions:
    users, items = (np.array(x, np.int64) for x in zip(*pairs, strict=True))
    return Interactions(users, items, None, None, np.arange(n_users), np.arange(n_items))


class Table:
    """A fake model whose scores are a fixed (n_users, n_items) table."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, np.float32)

    def score(self, users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.table[users])


def hits_of(sets: list[set[int]], n_items: int = 6, k: int = 10) -> Hits:
    """Hits of users 0..len(sets)-1, one set of item indices each."""
    rows = [r for r, s in enumerate(sets) for _ in s]
    cols = [i for s in sets for i in sorted(s)]
    items = sp.csr_matrix(
        (np.ones(len(rows), np.int8), (rows, cols)), shape=(len(sets), n_items), dtype=np.int8
    )
    return Hits(np.arange(len(sets)), items, k, "test")


def as_sets(hits: Hits) -> dict[int, set[int]]:
    m = hits.items.tocsr()
    return {
        int(u): set(m.indices[m.indptr[r] : m.indptr[r + 1]].tolist())
        for r, u in enumerate(hits.users)
    }


@pytest.fixture
def split() -> Split:
    train = records([(0, 0), (0, 1), (1, 2), (1, 3), (2, 4)])
    valid = records([(0, 2), (1, 4)])
    test = records([(0, 3), (1, 5), (2, 0), (2, 1)])
    return Split(train, test, valid)


# Item scores 5 > 4 > … > 0 for every user: the model prefers low item indices.
DESCENDING = np.tile(np.arange(6, 0, -1, dtype=np.float32), (3, 1))


# ---------------------------------------------------------------------------- the rate itself
def test_rate_by_hand_with_an_empty_union() -> None:
    a = hits_of([{1, 2}, {1}, set(), {1}, {0, 1, 2, 3}])
    b = hits_of([{2, 3}, {1}, set(), set(), {0, 1, 2, 4}])
    rate = hits_difference_rate(a, b)
    # {1,2} vs {2,3}: union 3, both 1 → 2/3; equal sets → 0; nothing → 0/0; one-sided → 1;
    # union 5, both 3 → 2/5.
    np.testing.assert_allclose(rate, [2 / 3, 0.0, np.nan, 1.0, 0.4])
    np.testing.assert_array_equal(rate, hits_difference_rate(b, a))  # symmetric

    summary = summarize_rates(rate)
    assert summary.n_users == 5 and summary.n_undefined == 1
    assert summary.above == {0.2: 0.75, 0.5: 0.5}  # of the 4 defined users
    assert summary.above_all == {0.2: 0.6, 0.5: 0.4}  # of all 5
    assert summary.mean == pytest.approx((2 / 3 + 0 + 1 + 0.4) / 4)
    x, f = summary.cdf
    np.testing.assert_allclose(x, [0.0, 0.4, 2 / 3, 1.0])
    np.testing.assert_allclose(f, [0.25, 0.5, 0.75, 1.0])


def test_all_undefined_gives_nan_shares_not_an_error() -> None:
    summary = summarize_rates(np.array([np.nan, np.nan]))
    assert summary.n_undefined == 2 and np.isnan(summary.above[0.2]) and np.isnan(summary.mean)
    assert summary.above_all[0.5] == 0.0 and len(summary.cdf[0]) == 0
    assert ecdf(np.array([]))[1].size == 0


def test_rate_refuses_hits_of_different_users_or_k() -> None:
    a = hits_of([{1}, {2}])
    with pytest.raises(ValueError, match="same split"):
        hits_difference_rate(a, hits_of([{1}, {2}, {3}]))
    with pytest.raises(ValueError, match="same K"):
        hits_difference_rate(a, hits_of([{1}, {2}], k=5))


# ------------------------------------------------------------------------------------- hits
def test_hits_mask_train_and_valid_like_evaluation(split: Split) -> None:
    model = Table(DESCENDING)
    # User 0: {0,1,2} masked → 3 first (its test item). User 1: {2,3,4} masked → 0, 1, 5.
    # User 2: {4} masked → 0, 1 first, both test items.
    assert as_sets(top_k_hits(model, split, 1)) == {0: {3}, 1: set(), 2: {0}}
    assert as_sets(top_k_hits(model, split, 3)) == {0: {3}, 1: {5}, 2: {0, 1}}
    # Valid masks train only: user 0 → 2 first; user 1 → 0, 1, 4, so no hit at K=2.
    valid = top_k_hits(model, split, 2, part="valid")
    assert as_sets(valid) == {0: {2}, 1: set()} and valid.part == "valid"


def test_ties_at_the_cut_off_are_not_hits(split: Split) -> None:
    # A constant scorer ties every candidate: evaluation ranks relevant items last, so no hits.
    hits = top_k_hits(Table(np.ones((3, 6))), split, 2)
    assert hits.items.nnz == 0 and hits.counts().tolist() == [0, 0, 0]


def test_hits_agree_with_precision_and_with_a_plain_top_k() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"user": rng.integers(0, 50, n), "item": rng.integers(0, 70, n)})
    inter = Interactions.from_frame(frame.drop_duplicates(["user", "item"]))
    split = ratio_split(inter, test_ratio=0.3, valid_ratio=0.1, seed=1)  # several test items
    scores = rng.integers(0, 4, (inter.n_users, inter.n_items)).astype(np.float32)  # ties
    distinct = rng.normal(size=scores.shape)
    for table, k in ((scores, 5), (distinct, 10)):
        model = Table(table)
        hits = top_k_hits(model, split, k, batch_size=7)
        assert as_sets(hits) == as_sets(top_k_hits(model, split, k, batch_size=1024))
        res = evaluate(model, split, ks=(k,), metrics=["Precision"], batch_size=7)
        np.testing.assert_array_equal(hits.users, res.per_user["user"].to_numpy())
        np.testing.assert_allclose(hits.counts() / k, res.per_user[f"Precision@{k}"])
    # Without ties the hits are the test items among a plain top-K of the masked scores.
    test = split.test.csr().toarray() > 0
    known = (split.train.csr() + split.valid.csr()).toarray() > 0
    top = np.argsort(-np.where(known & ~test, -np.inf, distinct), axis=1)[:, :10]
    hits = top_k_hits(Table(distinct), split, 10)
    expect = {int(u): {int(i) for i in top[u] if test[u, i]} for u in hits.users}
    assert as_sets(hits) == expect and hits.items.nnz > 0


def test_bad_k_and_part_are_clear_errors(split: Split) -> None:
    with pytest.raises(ValueError, match="k=0"):
        top_k_hits(Table(DESCENDING), split, 0)
    with pytest.raises(ValueError, match="unknown part 'train'"):
        top_k_hits(Table(DESCENDING), split, 1, part="train")


# ----------------------------------------------------------------------------- run directories
def _write(out, split: Split, model, seed: int = 0) -> None:
    model.fit(split.train)
    test = evaluate(model, split, ks=(10,), metrics=["Precision"])
    cfg = RunConfig(dataset="ml-100k", protocol="jca", model=model.name, split_seed=seed)
    write_run(out, cfg, model, split, test, {"test": test.means})


def _synthetic(seed: int) -> Split:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": rng.integers(0, 40, 2000), "item": rng.integers(0, 60, 2000)})
    inter = Interactions.from_frame(frame.drop_duplicates(["user", "item"]))
    return ratio_split(inter, test_ratio=0.2, valid_ratio=0.1, seed=seed)


def test_load_pair_and_the_cli_on_two_runs(tmp_path, monkeypatch) -> None:
    split = _synthetic(0)
    _write(tmp_path / "pop", split, ItemPop())
    _write(tmp_path / "ease", split, EASE())
    # The runs name ml-100k; hand back the synthetic split instead of reading data files.
    monkeypatch.setattr(run_module, "load_split", lambda config, protocol: _synthetic(0))
    shared, a, b = load_pair(tmp_path / "pop", tmp_path / "ease")
    assert shared.fingerprint() == split.fingerprint()
    assert a.name == "itempop" and b.name == "ease"

    res = CliRunner().invoke(app, ["compare", str(tmp_path / "pop"), str(tmp_path / "ease")])
    assert res.exit_code == 0, res.output
    rate = hits_difference_rate(top_k_hits(a, split, 10), top_k_hits(b, split, 10))
    summary = summarize_rates(rate)
    assert f"{summary.above[0.2]:.1%}" in res.output and "undefined" in res.output

    runs = [str(tmp_path / "pop"), str(tmp_path / "ease")]
    if importlib.util.find_spec("matplotlib") is not None:
        res = CliRunner().invoke(app, ["compare", *runs, "--png", str(tmp_path / "cdf.png")])
        assert res.exit_code == 0, res.output
        assert (tmp_path / "cdf.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("matplotlib", "matplotlib.figure"):  # as if it were not installed
        monkeypatch.setitem(sys.modules, name, None)
    res = CliRunner().invoke(app, ["compare", *runs, "--png", str(tmp_path / "no.png")])
    assert res.exit_code == 2 and "pip install matplotlib" in res.output
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_cdf(summary, tmp_path / "no.png")


def test_runs_on_different_splits_are_refused(tmp_path, monkeypatch) -> None:
    _write(tmp_path / "a", _synthetic(0), ItemPop())
    _write(tmp_path / "b", _synthetic(1), ItemPop(), seed=1)
    with pytest.raises(ValueError, match="different splits"):
        load_pair(tmp_path / "a", tmp_path / "b")  # from split.json, before any data is read
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 2 and "different splits" in res.output
    # Without b's split.json its split is rebuilt from its config and then compared.
    (tmp_path / "b" / "split.json").unlink()
    monkeypatch.setattr(
        run_module, "load_split", lambda config, protocol: _synthetic(config.split_seed)
    )
    with pytest.raises(ValueError, match="different splits"):
        load_pair(tmp_path / "a", tmp_path / "b")
