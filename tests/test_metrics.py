"""Metrics against hand-computed values, the pessimistic tie rule and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncflab.evaluation import metrics
from ncflab.evaluation.metrics import METRICS, check_ks, check_metrics, score_metrics

L2 = math.log2


def values(result: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {k: v.tolist() for k, v in result.items()}


def test_two_relevant_items_hand_computed() -> None:
    # Relevant items at positions 1 and 3 of 5 candidates.
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]])
    relevant = torch.tensor([[False, True, False, True, False]])
    got = values(score_metrics(scores, relevant, ks=(1, 2, 10)))
    idcg2 = 1 + 1 / L2(3)
    assert got["HR@1"] == [0.0] and got["HR@2"] == [1.0]
    assert got["Precision@2"] == [0.5] and got["Recall@2"] == [0.5]
    assert got["F1@2"] == [0.5] and got["F1@1"] == [0.0]
    assert got["NDCG@2"] == pytest.approx([(1 / L2(3)) / idcg2])
    # K = 10 > 5 candidates: precision still divides by K, recall and NDCG see both items.
    assert got["Precision@10"] == [0.2] and got["Recall@10"] == [1.0]
    assert got["F1@10"] == pytest.approx([2 * 0.2 / 1.2])
    assert got["NDCG@10"] == pytest.approx([(1 / L2(3) + 1 / L2(5)) / idcg2])
    assert got["MRR"] == [0.5]
    # Pairs won: item 1 beats 2 of 3 non-relevant, item 3 beats 1 of 3.
    assert got["AUC"] == pytest.approx([3 / 6])


def test_idcg_uses_min_of_k_and_relevant_count() -> None:
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    relevant = torch.tensor([[True, False, True, True, False]])
    got = values(score_metrics(scores, relevant, ks=(2,), metrics=["NDCG", "Recall"]))
    assert list(got) == ["NDCG@2", "Recall@2"]
    assert got["NDCG@2"] == pytest.approx([1 / (1 + 1 / L2(3))])
    assert got["Recall@2"] == pytest.approx([1 / 3])


def test_ties_count_against_the_relevant_item() -> None:
    # The relevant item ties with two non-relevant items: it is ranked after both.
    scores = torch.tensor([[3.0, 2.0, 2.0, 2.0, 1.0]])
    relevant = torch.tensor([[False, False, True, False, False]])
    got = values(score_metrics(scores, relevant, ks=(1, 3, 4)))
    assert got["HR@3"] == [0.0] and got["HR@4"] == [1.0]
    assert got["MRR"] == [1 / 4]
    assert got["AUC"] == [1 / 4]  # only the 1.0 item scores strictly lower


def test_constant_scorer_gets_zero() -> None:
    relevant = torch.zeros(7, 100, dtype=torch.bool)
    relevant[torch.arange(7), torch.arange(7) * 13] = True
    got = score_metrics(torch.zeros(7, 100), relevant, ks=(1, 10, 50))
    for key in ("HR@10", "NDCG@10", "HR@50", "Precision@1", "F1@10", "AUC"):
        assert got[key].tolist() == [0.0] * 7, key
    assert got["MRR"].tolist() == [1 / 100] * 7


def test_perfect_scorer_gets_one() -> None:
    gen = torch.Generator().manual_seed(0)
    relevant = torch.rand(5, 40, generator=gen) < 0.1
    relevant[:, 0] = True
    scores = relevant.float() + 0.01 * torch.rand(5, 40, generator=gen)
    got = score_metrics(scores, relevant, ks=(10,))
    for key in ("HR@10", "NDCG@10", "Recall@10", "MRR", "AUC"):
        assert got[key].tolist() == pytest.approx([1.0] * 5), key
    assert got["Precision@10"].tolist() == pytest.approx((relevant.sum(1) / 10).tolist())


def test_relevant_items_tied_with_each_other() -> None:
    scores = torch.tensor([[1.0, 1.0, 0.5, 0.2]])
    relevant = torch.tensor([[True, True, False, False]])
    got = values(score_metrics(scores, relevant, ks=(1, 2)))
    assert got["HR@1"] == [1.0] and got["NDCG@2"] == [1.0] and got["AUC"] == [1.0]


def test_excluded_candidates_leave_the_ranking() -> None:
    scores = torch.tensor([[9.0, 8.0, 1.0, 0.5]])
    relevant = torch.tensor([[False, False, True, False]])
    exclude = torch.tensor([[True, True, False, False]])
    got = values(score_metrics(scores, relevant, ks=(1,), exclude=exclude))
    assert got["HR@1"] == [1.0] and got["AUC"] == [1.0]
    # A relevant candidate is never excluded.
    exclude[0, 2] = True
    got = values(score_metrics(scores, relevant, ks=(1,), exclude=exclude))
    assert got["HR@1"] == [1.0] and got["MRR"] == [1.0]


def test_auc_is_nan_without_non_relevant_candidates() -> None:
    got = score_metrics(torch.tensor([[1.0, 2.0]]), torch.tensor([[True, True]]), ks=(1,))
    assert math.isnan(got["AUC"].item())


def _reference(scores: np.ndarray, relevant: np.ndarray, k: int) -> dict[str, list[float]]:
    """Slow per-user reference written straight from the definitions."""
    out: dict[str, list[float]] = {"HR": [], "NDCG": [], "MRR": [], "AUC": []}
    for s, r in zip(scores, relevant, strict=True):
        rel, non = s[r], s[~r]
        pos = sorted(int((non >= v).sum()) + j for j, v in enumerate(sorted(rel, reverse=True)))
        dcg = sum(1 / L2(p + 2) for p in pos if p < k)
        idcg = sum(1 / L2(i + 2) for i in range(min(k, len(rel))))
        out["HR"].append(float(pos[0] < k))
        out["NDCG"].append(dcg / idcg)
        out["MRR"].append(1 / (pos[0] + 1))
        out["AUC"].append(float(np.mean([(v > non).mean() for v in rel])))
    return out


def test_matches_reference_on_random_integer_scores() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, (30, 25)).astype(np.float32)  # many ties
    relevant = rng.random((30, 25)) < 0.2
    relevant[:, 3] = True
    got = score_metrics(scores, relevant, ks=(5,), metrics=["HR", "NDCG", "MRR", "AUC"])
    ref = _reference(scores, relevant, 5)
    for name in ("HR", "NDCG"):
        np.testing.assert_allclose(got[f"{name}@5"].numpy(), ref[name])
    np.testing.assert_allclose(got["MRR"].numpy(), ref["MRR"])
    np.testing.assert_allclose(got["AUC"].numpy(), ref["AUC"])


@pytest.mark.parametrize("width", [1, 2, 5, 20])
def test_counting_and_sorting_give_the_same_positions(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ties, padded relevant slots, -inf (non-candidate) slots, a -inf relevant score, a row
    # with no candidate at all: both ways of ranking must agree to the integer.
    rng = np.random.default_rng(width)
    other = torch.from_numpy(rng.integers(0, 7, (40, 60)).astype(np.float32))
    other[rng.random((40, 60)) < 0.3] = float("-inf")
    other[5] = float("-inf")
    rel = torch.from_numpy(rng.integers(0, 7, (40, width)).astype(np.float32))
    rel[7, 0] = float("-inf")
    valid = torch.from_numpy(rng.random((40, width)) < 0.7)
    valid[:, 0] = True
    got = {}
    for name, counts in (("count", True), ("sort", False)):
        monkeypatch.setattr(metrics, "_counting_is_cheaper", lambda r, c, counts=counts: counts)
        got[name] = metrics.rank_relevant(rel, valid, other)
    for field in ("positions", "valid", "n_other"):
        a, b = getattr(got["count"], field), getattr(got["sort"], field)
        assert a.dtype == b.dtype and torch.equal(a, b), field


@pytest.mark.parametrize("cutoff", [1, 3, 10, 59])
def test_a_cutoff_keeps_every_position_below_it(cutoff: int) -> None:
    # Ties, -inf slots, padding, a row with fewer candidates than the cutoff, a -inf relevant
    # score: below the cutoff the positions are the exact ones, at or past it they stay past it.
    rng = np.random.default_rng(cutoff)
    other = torch.from_numpy(rng.integers(0, 7, (40, 60)).astype(np.float32))
    other[rng.random((40, 60)) < 0.3] = float("-inf")
    other[5, 2:] = float("-inf")
    rel = torch.from_numpy(rng.integers(0, 7, (40, 6)).astype(np.float32))
    rel[7, 0] = float("-inf")
    valid = torch.from_numpy(rng.random((40, 6)) < 0.7)
    valid[:, 0] = True
    exact = metrics.rank_relevant(rel, valid, other)
    cut = metrics.rank_relevant(rel, valid, other, cutoff=cutoff)
    assert torch.equal(cut.valid, exact.valid) and torch.equal(cut.n_other, exact.n_other)
    below = exact.positions < cutoff
    assert torch.equal(cut.positions[below], exact.positions[below])
    assert bool((cut.positions[~below] >= cutoff).all())
    assert bool((cut.positions[~below] <= exact.positions[~below]).all())
    for k in {1, cutoff}:
        want = metrics.compute_metrics(exact, (k,), ["HR", "NDCG", "Precision", "Recall", "F1"])
        got = metrics.compute_metrics(cut, (k,), ["HR", "NDCG", "Precision", "Recall", "F1"])
        for key in want:
            assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("ks", [0, -3, (10, 0), 2.5, "10", (True,), ()])
def test_bad_k_is_an_error(ks: object) -> None:
    with pytest.raises(ValueError, match="K=|ks is empty"):
        check_ks(ks)  # type: ignore[arg-type]


def test_ks_are_sorted_and_deduplicated() -> None:
    assert check_ks((20, 10, np.int64(10))) == (10, 20)
    assert check_ks(5) == (5,)


def test_metric_names() -> None:
    assert check_metrics(None) == METRICS
    assert check_metrics(["ndcg", "hr", "P", "HR"]) == ("NDCG", "HR", "Precision")
    with pytest.raises(ValueError, match="'MAP'"):
        check_metrics(["HR", "MAP"])


def test_non_finite_scores_are_an_error() -> None:
    scores = torch.tensor([[1.0, float("nan")], [float("inf"), 0.0]])
    with pytest.raises(ValueError, match="2 non-finite"):
        score_metrics(scores, torch.tensor([[True, False], [True, False]]))


def test_rows_without_relevant_items_are_an_error() -> None:
    with pytest.raises(ValueError, match="no relevant"):
        score_metrics(torch.zeros(2, 3), torch.tensor([[True, False, False], [False] * 3]))
