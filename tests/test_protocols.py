"""Full-ranking and sampled protocols: masking, candidates, batching and errors."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
import pytest
import torch

from ncflab.data.interactions import Interactions
from ncflab.data.splits import Split, leave_one_out, ratio_split, with_negatives
from ncflab.evaluation import protocols
from ncflab.evaluation.protocols import default_batch, evaluate, make_validator
from ncflab.models.base import Recommender


def records(pairs: list[tuple[int, int]], n_users: int = 3, n_items: int = 6) -> Interactions:
    users, items = (np.array(x, np.int64) for x in zip(*pairs, strict=True))
    return Interactions(users, items, None, None, np.arange(n_users), np.arange(n_items))


class Table:
    """A fake model whose scores are a fixed (n_users, n_items) table."""

    def __init__(self, table: np.ndarray, as_numpy: bool = False) -> None:
        self.table, self.as_numpy = np.asarray(table, np.float32), as_numpy

    def score(self, users: np.ndarray) -> torch.Tensor | np.ndarray:
        out = self.table[users]
        return out if self.as_numpy else torch.from_numpy(out)

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.take_along_axis(self.table[users], items, axis=1))


@dataclass(kw_only=True)
class Dot(Recommender):
    """A Recommender subclass: random embeddings, score = U Vᵀ (score_items from the base)."""

    name = "dot-test"
    dim: int = 4

    def fit(self, train: Interactions, options: object = None) -> Dot:
        gen = torch.Generator().manual_seed(self.seed)
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.u_ = torch.randn(train.n_users, self.dim, generator=gen)
        self.v_ = torch.randn(train.n_items, self.dim, generator=gen)
        return self

    def score(self, users: np.ndarray) -> torch.Tensor:
        return self.u_[torch.as_tensor(users)] @ self.v_.T


@pytest.fixture
def split() -> Split:
    train = records([(0, 0), (0, 1), (1, 2), (1, 3), (2, 4)])
    valid = records([(0, 2), (1, 4)])
    test = records([(0, 3), (1, 5), (2, 0), (2, 1)])
    negatives = np.array([[4, 5], [0, 1], [2, 3]])
    return Split(train, test, valid, negatives)


# Item scores 5 > 4 > … > 0 for every user: the model prefers low item indices.
DESCENDING = np.tile(np.arange(6, 0, -1, dtype=np.float32), (3, 1))


def test_full_ranking_masks_train_and_valid_for_test(split: Split) -> None:
    res = evaluate(Table(DESCENDING), split, ks=(1, 2), metrics=["HR", "Recall", "MRR"])
    per = res.per_user.set_index("user")
    # User 0: train {0,1} and valid {2} masked, so test item 3 is first.
    assert per.loc[0, "HR@1"] == 1.0
    # User 1: masked {2,3,4}; ranking 0, 1, 5 → test item 5 at position 2.
    assert per.loc[1, "MRR"] == pytest.approx(1 / 3)
    # User 2: masked {4}; test {0,1} on top.
    assert per.loc[2, "Recall@2"] == 1.0
    assert res.n_users == 3 and res.part == "test" and res.protocol == "full"
    assert list(res.per_user.columns) == ["user", "HR@1", "HR@2", "Recall@1", "Recall@2", "MRR"]
    assert res.means["HR@1"] == pytest.approx(2 / 3)


def test_full_ranking_on_valid_masks_only_train(split: Split) -> None:
    res = evaluate(Table(DESCENDING), split, part="valid", ks=(1,), metrics=["MRR"])
    per = res.per_user.set_index("user")["MRR"]
    # User 0: train {0,1} masked, valid item 2 is first. User 1: masked {2,3}; the test item 5
    # is not masked but ranks after 4 anyway, while 0 and 1 compete: 4 is third.
    assert per.to_dict() == {0: 1.0, 1: pytest.approx(1 / 3)}
    assert res.n_users == 2


def test_valid_evaluation_does_not_hide_test_items() -> None:
    train = records([(0, 0)], n_users=1, n_items=4)
    valid, test = records([(0, 2)], 1, 4), records([(0, 1)], 1, 4)
    res = evaluate(Table([[9.0, 8.0, 7.0, 0.0]]), Split(train, test, valid), part="valid", ks=(1,))
    assert res.means["HR@1"] == 0.0  # the test item 1 outranks valid item 2


def test_sampled_protocol_with_known_negatives(split: Split) -> None:
    table = np.zeros((3, 6), np.float32)
    table[0] = [0, 0, 0, 1, 2, 0]  # test 3 vs negatives 4 (higher) and 5 (lower)
    table[1] = [5, 5, 5, 5, 5, 5]  # constant: ties lose
    table[2] = [3, 2, 0, 0, 9, 9]  # test {0,1} vs negatives {2,3}: both win
    res = evaluate(Table(table), split, protocol="sampled", ks=(1, 2), metrics=["HR", "AUC"])
    per = res.per_user.set_index("user")
    assert per["HR@1"].tolist() == [0.0, 0.0, 1.0]
    assert per["HR@2"].tolist() == [1.0, 0.0, 1.0]
    assert per["AUC"].tolist() == [0.5, 0.0, 1.0]


def test_sampled_drops_negatives_equal_to_a_relevant_item(split: Split) -> None:
    negatives = split.negatives.copy()
    negatives[0] = [3, 5]  # user 0's test item is also listed as a negative
    bad = Split(split.train, split.test, split.valid, negatives)
    table = np.ones((3, 6), np.float32)
    res = evaluate(Table(table), bad, protocol="sampled", ks=(1,), metrics=["HR", "AUC"])
    per = res.per_user.set_index("user")
    assert per.loc[0, "AUC"] == 0.0 and per.loc[0, "HR@1"] == 0.0  # loses only to item 5


def random_interactions(rng: np.random.Generator, n: int = 4000) -> Interactions:
    """Up to ``n`` distinct random (user, item) pairs of 60 users and 80 items, timestamped."""
    frame = pd.DataFrame(
        {"user": rng.integers(0, 60, n), "item": rng.integers(0, 80, n), "timestamp": np.arange(n)}
    )
    return Interactions.from_frame(frame.drop_duplicates(["user", "item"]))


def test_batching_gives_the_same_result() -> None:
    inter = random_interactions(np.random.default_rng(0))
    loo = with_negatives(leave_one_out(inter), 20, seed=1)
    ratio = with_negatives(ratio_split(inter, test_ratio=0.3, seed=1), 20, seed=1)  # R > 1
    model = Dot(seed=2).fit(inter)
    for split, protocol in product((loo, ratio), ("full", "sampled")):
        whole = evaluate(model, split, protocol=protocol, ks=(1, 5, 10), batch_size=1024)
        for size in (1, 7):
            parts = evaluate(model, split, protocol=protocol, ks=(1, 5, 10), batch_size=size)
            pd.testing.assert_frame_equal(whole.per_user, parts.per_user)
            assert whole.means == parts.means


def test_the_default_batch_keeps_full_ranking_scores_within_the_budget(monkeypatch) -> None:
    assert default_batch("sampled", 157_003) == 1024
    assert default_batch("full", 3706) == 1024  # ML-1M: 3.8 M scores a batch
    assert default_batch("full", 9242) == 453  # the Yelp split: 453 x 9,242 <= 2^22
    assert default_batch("full", 157_003) == 26
    assert default_batch("full", 1 << 23) == 1
    # evaluate() and make_validator() without a batch size use it: 80 items, a budget of 400
    # scores is 5 users a batch.
    inter = random_interactions(np.random.default_rng(0))
    split = leave_one_out(inter)
    model = Dot(seed=2).fit(inter)
    whole = evaluate(model, split, ks=(10,))
    sizes = []
    score = Dot.score
    monkeypatch.setattr(Dot, "score", lambda self, users: sizes.append(len(users)) or score(
        self, users))  # fmt: skip
    monkeypatch.setattr(protocols, "SCORE_BUDGET", 400)
    pd.testing.assert_frame_equal(evaluate(model, split, ks=(10,)).per_user, whole.per_user)
    assert max(sizes) == 5
    sizes.clear()
    make_validator(split, protocol="full", ks=(10,))(model)
    assert max(sizes) == 5
    sizes.clear()
    evaluate(model, split, ks=(10,), batch_size=7)  # a batch size given is kept
    assert max(sizes) == 7


def test_at_k_metrics_alone_give_the_values_of_an_exact_ranking() -> None:
    # Without MRR or AUC only positions below max(K) matter, and full ranking compares each
    # row's relevant items with its top max(K) other scores only; the @K values must be those
    # of the exact positions. Integer scores (many ties) and R > 1 relevant items a user.
    rng = np.random.default_rng(4)
    inter = random_interactions(rng)
    split = ratio_split(inter, test_ratio=0.3, seed=1)
    table = Table(rng.integers(0, 5, (inter.n_users, inter.n_items)))
    at_k = ["HR", "NDCG", "Precision", "Recall", "F1"]
    for ks in [(1, 5, 10), (3,), (79,), (200,)]:
        cut = evaluate(table, split, ks=ks, metrics=at_k, batch_size=16)
        exact = evaluate(table, split, ks=ks, metrics=[*at_k, "MRR"], batch_size=16)
        pd.testing.assert_frame_equal(cut.per_user, exact.per_user.drop(columns="MRR"))


def test_oracle_and_constant_models_on_a_real_split() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"user": rng.integers(0, 30, 900), "item": rng.integers(0, 200, 900), "timestamp": 0}
    )
    inter = Interactions.from_frame(frame.drop_duplicates(["user", "item"]))
    split = with_negatives(leave_one_out(inter), 99, seed=0)
    oracle = split.test.csr("binary").toarray()
    for protocol in ("full", "sampled"):
        good = evaluate(Table(oracle), split, protocol=protocol, ks=(1,)).means
        assert good["HR@1"] == 1.0 and good["NDCG@1"] == 1.0 and good["AUC"] == 1.0
        flat = evaluate(Table(np.zeros_like(oracle)), split, protocol=protocol).means
        assert flat["HR@10"] == 0.0 and flat["AUC"] == 0.0


def test_numpy_scores_are_accepted(split: Split) -> None:
    a = evaluate(Table(DESCENDING, as_numpy=True), split).per_user
    b = evaluate(Table(DESCENDING), split).per_user
    pd.testing.assert_frame_equal(a, b)


def test_make_validator_evaluates_valid(split: Split) -> None:
    validate = make_validator(split, protocol="full", ks=(1,), metrics=["MRR"])
    assert validate(Table(DESCENDING)) == pytest.approx({"MRR": (1 + 1 / 3) / 2})


def test_errors(split: Split) -> None:
    model = Table(DESCENDING)
    no_neg = Split(split.train, split.test, split.valid)
    with pytest.raises(ValueError, match="split.negatives"):
        evaluate(model, no_neg, protocol="sampled")
    with pytest.raises(ValueError, match="'train'"):
        evaluate(model, split, part="train")
    with pytest.raises(ValueError, match="'ranking'"):
        evaluate(model, split, protocol="ranking")
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate(model, split, batch_size=0)
    with pytest.raises(ValueError, match="K=0"):
        evaluate(model, split, ks=(0,))
    with pytest.raises(ValueError, match="'MAP'"):
        evaluate(model, split, metrics=["MAP"])
    with pytest.raises(ValueError, match="no valid records"):
        make_validator(Split(split.train, split.test), protocol="full", ks=(10,))
    with pytest.raises(ValueError, match="split.negatives"):
        make_validator(no_neg, protocol="sampled", ks=(10,))


def test_bad_model_output_names_the_model(split: Split) -> None:
    table = DESCENDING.copy()
    table[1, 2:4] = np.nan
    with pytest.raises(ValueError, match=r"Table\.score returned 2 non-finite"):
        evaluate(Table(table), split)
    with pytest.raises(ValueError, match=r"shape \(3, 5\); expected \(3, 6\)"):
        evaluate(Table(DESCENDING[:, :5]), split)


def test_missing_negatives_row_is_an_error(split: Split) -> None:
    negatives = split.negatives.copy()
    negatives[2] = -1
    bad = Split(split.train, split.test, split.valid, negatives)
    with pytest.raises(ValueError, match="user index 2"):
        evaluate(Table(DESCENDING), bad, protocol="sampled")


def test_f1_of_means_is_the_harmonic_mean_of_averaged_precision_and_recall() -> None:
    from ncflab.evaluation.protocols import f1_of_means

    # JCA's Table 3 (ML-1M, JCA): P@10 .2384, R@10 .1845 → F1@10 .2080.
    means = {"Precision@10": 0.2384, "Recall@10": 0.1845, "F1@10": 0.15, "HR@10": 0.9}
    assert f1_of_means(means) == {"F1avg@10": pytest.approx(0.2080, abs=5e-5)}
    zero = {"Precision@1": 0.0, "Recall@1": 0.0, "F1@1": 0.0}
    assert f1_of_means(zero) == {"F1avg@1": 0.0}
    assert f1_of_means({"Precision@5": 0.1, "Recall@5": 0.2}) == {}  # F1 not asked for


def test_recommendations_batch_like_full_ranking(monkeypatch) -> None:
    """``top_k`` (``recommend``) without a batch size batches as ``default_batch`` does, and
    the lists do not depend on the batch."""
    from ncflab.evaluation.topk import top_k

    inter = random_interactions(np.random.default_rng(0))
    model = Dot(seed=2).fit(inter)
    users, exclude = np.arange(inter.n_users), inter.csr("binary")
    whole = top_k(model, users, 10, exclude)
    sizes = []
    score = Dot.score
    monkeypatch.setattr(Dot, "score", lambda self, users: sizes.append(len(users)) or score(
        self, users))  # fmt: skip
    monkeypatch.setattr(protocols, "SCORE_BUDGET", 400)  # 80 items: 5 users a batch
    batched = top_k(model, users, 10, exclude)
    assert max(sizes) == 5
    for got, want in zip(batched, whole, strict=True):
        np.testing.assert_array_equal(got, want)
