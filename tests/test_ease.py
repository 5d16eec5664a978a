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
    assert np.allclose(model.score_rows(new).numpy(), new.toarray() @ model.B_)
    with pytest.raises(ValueError, match="columns"):
        model.score_rows(sp.csr_matrix((1, 3)))
    with pytest.raises(ValueError, match="l2 > 0"):
        EASE(l2=0.0).fit(inter)
