from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ncflab.data.interactions import Interactions
from ncflab.models.puresvd import PureSVD


def _data() -> Interactions:
    rng = np.random.default_rng(0)
    x = rng.random((9, 7)) < 0.45
    u, i = np.nonzero(x)
    return Interactions(u, i, None, None, np.arange(9), np.arange(7))


def test_scores_are_numpys_rank_k_projection() -> None:
    inter = _data()
    x = inter.csr("binary").toarray().astype(np.float64)
    _, s, vt = np.linalg.svd(x)
    assert s[2] - s[3] > 1e-3  # the top-3 subspace is well defined
    v = vt[:3].T
    model = PureSVD(factors=3).fit(inter)
    assert np.allclose(model.score(np.arange(9)).numpy(), x @ v @ v.T, atol=1e-5)
    # X V Vᵀ = U_k Σ_k V_kᵀ: the best rank-3 approximation of X.
    u, s3 = np.linalg.svd(x)[0][:, :3], s[:3]
    assert np.allclose(x @ v @ v.T, (u * s3) @ vt[:3], atol=1e-10)


def test_fold_in_is_the_same_formula_and_deterministic() -> None:
    inter = _data()
    model = PureSVD(factors=3).fit(inter)
    x = inter.csr("binary")
    folded = model.score_new_users(x[[2, 5]] * 4.0)  # any value > 0 = interacted
    assert np.allclose(folded.numpy(), model.score(np.array([2, 5])).numpy(), atol=1e-6)
    again = PureSVD(factors=3).fit(inter)
    assert np.array_equal(again.score(np.arange(9)).numpy(), model.score(np.arange(9)).numpy())
    with pytest.raises(ValueError, match=r"scipy sparse \(B, 7\)"):
        model.score_new_users(sp.csr_matrix((1, 3)))


def test_rank_out_of_range_is_named() -> None:
    # Below 1: refused at construction (a declared range); above the data's rank: at fit.
    with pytest.raises(ValueError, match=r"params.factors must be >= 1, got 0"):
        PureSVD(factors=0)
    with pytest.raises(ValueError, match=r"factors must be in \[1, 6\].*got 7"):
        PureSVD(factors=7).fit(_data())


@pytest.mark.slow
def test_default_on_ml1m_reaches_the_published_level(data_dir) -> None:
    from ncflab.data.datasets import load_dataset
    from ncflab.evaluation.protocols import evaluate
    from ncflab.experiments.presets import get_protocol, make_split

    split = make_split(get_protocol("ncf"), load_dataset("ml-1m", data_dir=data_dir), seed=0)
    model = PureSVD().fit(split.train)
    res = evaluate(model, split, part="valid", protocol="sampled", ks=(10,))
    assert res.means["HR@10"] > 0.70  # Dacrema et al.'s PureSVD on test: .6937
