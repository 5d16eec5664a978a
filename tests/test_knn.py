from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ncflab.data.interactions import Interactions
from ncflab.models.knn import ItemKNN, UserKNN
from ncflab.models.similarity import blocked_topk, cosine_adjust, topk_columns, topk_rows

# 4 users × 3 items. Item columns: a = (1,1,0,1), b = (1,1,1,0), c = (0,1,1,0).
X = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 0, 0]])


def _inter(x: np.ndarray) -> Interactions:
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(x.shape[0]), np.arange(x.shape[1]))


def _dense_w(model: ItemKNN | UserKNN) -> np.ndarray:
    n = model.n_items_ if isinstance(model, ItemKNN) else model.n_users_
    return sp.csr_matrix((model.w_data_, model.w_indices_, model.w_indptr_), (n, n)).toarray()


def test_item_cosine_with_shrinkage_by_hand() -> None:
    # a·b = 2, a·c = 1, b·c = 2; ‖a‖ = ‖b‖ = √3, ‖c‖ = √2. With shrink 1:
    # sim(a,b) = 2/(3+1) = .5, sim(a,c) = 1/(√6+1), sim(b,c) = 2/(√6+1).
    model = ItemKNN(top_k=5, shrink=1.0, weighting="none").fit(_inter(X))
    r6 = np.sqrt(6.0)
    expected = np.array(
        [[0, 0.5, 1 / (r6 + 1)], [0.5, 0, 2 / (r6 + 1)], [1 / (r6 + 1), 2 / (r6 + 1), 0]]
    )
    assert np.allclose(_dense_w(model), expected, atol=1e-6)
    # Without shrinkage it is the plain cosine: sim(a,b) = 2/3, sim(b,c) = 2/√6.
    plain = _dense_w(ItemKNN(top_k=5, shrink=0.0, weighting="none").fit(_inter(X)))
    assert np.isclose(plain[0, 1], 2 / 3, atol=1e-6) and np.isclose(plain[1, 2], 2 / r6)
    scores = model.score(np.arange(4)).numpy()
    assert np.allclose(scores, X @ expected, atol=1e-6)


def test_item_top_k_keeps_each_items_k_most_similar() -> None:
    # Column j of W holds j's neighbours: with k = 1, a → b (.5 > .29), b → c, c → b.
    w = _dense_w(ItemKNN(top_k=1, shrink=1.0, weighting="none").fit(_inter(X)))
    assert (np.count_nonzero(w, axis=0) == 1).all()
    assert w[1, 0] > 0 and w[2, 1] > 0 and w[1, 2] > 0


def test_topk_rows_keeps_the_k_largest_and_drops_zeros() -> None:
    block = np.array([[0.1, 0.9, 0.0, 0.5, 0.7], [0.0, 0.0, 0.3, 0.0, 0.0]], np.float32)
    rows, cols, values = topk_rows(block, 3)
    kept = sp.csr_matrix((values, (rows, cols)), shape=block.shape).toarray()
    assert np.allclose(kept[0], [0, 0.9, 0, 0.5, 0.7])
    assert np.allclose(kept[1], [0, 0, 0.3, 0, 0])  # one non-zero only


def test_blocks_do_not_change_the_result() -> None:
    rng = np.random.default_rng(0)
    x = sp.random(40, 30, density=0.2, random_state=rng, format="csr", dtype=np.float32)
    xt = x.T.tocsr()
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
    adjust = cosine_adjust(norms, norms, 5.0, zero_self=True)
    one = blocked_topk(xt, x, 7, adjust)
    many = blocked_topk(xt, x, 7, adjust, block_entries=60)  # two rows per block
    assert np.allclose(one.toarray(), many.toarray())
    dense = (xt @ x).toarray() / (norms[:, None] * norms[None, :] + 5.0 + 1e-6)
    np.fill_diagonal(dense, 0)
    expected = np.sort(dense, axis=1)[:, -7:]
    assert np.allclose(np.sort(one.toarray(), axis=1)[:, -7:], expected, atol=1e-6)
    with pytest.raises(ValueError, match="top_k"):
        blocked_topk(xt, x, 0)


def test_weightings_by_hand() -> None:
    inter = _inter(X)
    # ItemKNN TF-IDF: user u weighs idf_u = log(3 / (1 + |I_u|)) -> user 1 (3 items) weighs 0.
    tfidf = ItemKNN(top_k=5, shrink=0.0, weighting="tfidf").fit(inter)
    lengths = X.sum(axis=1)
    idf_u = np.maximum(np.log(3 / (1 + lengths)), 0)
    xw = X * idf_u[:, None]
    norms = np.linalg.norm(xw, axis=0)
    expected = xw.T @ xw / (norms[:, None] * norms[None, :] + 1e-6)
    np.fill_diagonal(expected, 0)
    assert np.allclose(_dense_w(tfidf), expected, atol=1e-5)
    # UserKNN BM25: item factor idf_i = log(4 / (1 + |U_i|)), user factor 2.2 / (1.2 (.25 +
    # .75 len/avg) + 1).
    bm25 = UserKNN(top_k=5, shrink=0.0, weighting="bm25", reverse=False).fit(inter)
    idf_i = np.maximum(np.log(4 / (1 + X.sum(axis=0))), 0)
    tf = 2.2 / (1.2 * (0.25 + 0.75 * lengths / lengths.mean()) + 1)
    xw = X * tf[:, None] * idf_i[None, :]
    norms = np.linalg.norm(xw, axis=1)
    expected = xw @ xw.T / (norms[:, None] * norms[None, :] + 1e-6)
    np.fill_diagonal(expected, 0)
    assert np.allclose(_dense_w(bm25), expected, atol=1e-5)
    assert np.allclose(bm25.score(np.arange(4)).numpy(), expected @ xw, atol=1e-5)


@pytest.mark.parametrize("weighting", ["none", "tfidf", "bm25"])
def test_itemknn_fold_in_equals_training_score(weighting: str) -> None:
    inter = _data()
    model = ItemKNN(top_k=3, shrink=2.0, weighting=weighting).fit(inter)
    rows = inter.csr("binary")[[0, 3, 5]]
    assert np.allclose(model.score_new_users(rows).numpy(), model.score(np.array([0, 3, 5])))


@pytest.mark.parametrize("reverse", [False, True])
def test_userknn_fold_in_equals_the_score_of_a_user_fitted_with_them(reverse: bool) -> None:
    inter = _data()
    params = {"top_k": 3, "shrink": 2.0, "weighting": "none", "reverse": reverse}
    full = UserKNN(**params).fit(inter)
    # The same data without user 4's records: user 4's row folded in finds the neighbours
    # (and neighbours' rows) it had as a training user, so it gets the same scores. Reversed,
    # user 4 enters the lists of the users it is more similar to than their 3rd neighbour.
    without = UserKNN(**params).fit(inter.subset(inter.users != 4))
    row = inter.csr("binary")[[4]]
    assert np.allclose(without.score_new_users(row).numpy(), full.score(np.array([4])).numpy())


def test_userknn_reverse_scores_from_the_users_that_chose_u() -> None:
    inter = _data()
    own = UserKNN(top_k=2, shrink=1.0, weighting="none", reverse=False).fit(inter)
    rev = UserKNN(top_k=2, shrink=1.0, weighting="none", reverse=True).fit(inter)
    assert np.allclose(_dense_w(rev), _dense_w(own).T)
    assert np.allclose(rev.kth_, np.sort(_dense_w(own), axis=1)[:, -2])  # each list's 2nd
    x = inter.csr("binary").toarray()
    assert np.allclose(rev.score(np.arange(12)).numpy(), _dense_w(own).T @ x, atol=1e-6)


def test_bad_hyperparameters_are_named() -> None:
    inter = _inter(X)
    with pytest.raises(ValueError, match="top_k"):
        ItemKNN(top_k=0).fit(inter)
    with pytest.raises(ValueError, match="shrink"):
        UserKNN(shrink=-1.0).fit(inter)
    with pytest.raises(ValueError, match="'idf'"):
        ItemKNN(weighting="idf").fit(inter)


def _data() -> Interactions:
    rng = np.random.default_rng(1)
    return _inter((rng.random((12, 9)) < 0.4).astype(int))


def test_topk_columns_keeps_each_columns_k_largest() -> None:
    m = sp.csr_matrix(np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.0], [0.3, 0.0, 0.4]], np.float32))
    kept = topk_columns(m, 1).toarray()
    assert np.allclose(kept, [[0, 0.9, 0], [0.5, 0, 0], [0, 0, 0.4]])
    assert np.array_equal(topk_columns(m, 5).toarray(), m.toarray())
