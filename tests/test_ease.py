from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ncflab.data.interactions import Interactions
from ncflab.models.ease import EASE


def _data() -> Interactions:
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1]])
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(5), np.arange(4))


def test_closed_form_matches_the_constrained_least_squares_solution() -> None:
    inter, l2 = _data(), 2.0
    model = EASE(l2=l2).fit(inter)
    b = model.B_.astype(np.float64)
    assert np.allclose(np.diag(b), 0.0)
    # Solve each column j directly: min ||x_j − X_{−j} w||² + λ||w||² over the other items.
    x = inter.csr("binary").toarray()
    for j in range(4):
        others = [k for k in range(4) if k != j]
        a = x[:, others]
        w = np.linalg.solve(a.T @ a + l2 * np.eye(3), a.T @ x[:, j])
        assert np.allclose(b[others, j], w, atol=1e-5)


def test_scores_are_rows_times_b_and_new_users_fold_in() -> None:
    inter = _data()
    model = EASE(l2=1.0).fit(inter)
    x = inter.csr("binary").toarray().astype(np.float32)
    assert np.allclose(model.score(np.arange(5)).numpy(), x @ model.B_, atol=1e-6)
    new = sp.csr_matrix(np.array([[0, 1, 1, 0]], np.float32))
    assert np.allclose(model.score_new_users(new).numpy(), new.toarray() @ model.B_)
    with pytest.raises(ValueError, match=r"scipy sparse \(B, 4\)"):
        model.score_new_users(sp.csr_matrix((1, 3)))
    with pytest.raises(ValueError, match="l2 > 0"):
        EASE(l2=0.0).fit(inter)


def test_recommend_for_items_folds_in_by_original_ids() -> None:
    inter = _data()
    model = EASE(l2=1.0).fit(inter)
    liked = inter.item_ids[[1, 2]]
    ids, scores = model.recommend_for_items(inter, liked, k=5)
    assert len(ids) == 2 and not set(ids.tolist()) & set(liked.tolist())  # 4 items − 2 liked
    row = sp.csr_matrix(np.array([[0, 1, 1, 0]], np.float32))
    expected = model.score_new_users(row)[0].numpy()
    assert np.allclose(scores, expected[inter.item_index(ids)])
    assert (np.diff(scores) <= 0).all()
    with pytest.raises(KeyError):
        model.recommend_for_items(inter, [inter.item_ids[0], "no-such-item"])
    with pytest.raises(ValueError, match="more than once"):
        model.recommend_for_items(inter, liked[[0, 0]], ratings=[1.0, 2.0])
