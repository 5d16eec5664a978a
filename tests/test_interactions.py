from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncflab.data.interactions import Interactions


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": [30, 10, 10, 20, 10],
            "item": ["b", "a", "c", "a", "a"],
            "rating": [5.0, 3.0, 4.0, 1.0, 2.0],
            "timestamp": [5, 1, 2, 3, 4],
        }
    )


def test_from_frame_encodes_sorted_ids_and_keeps_them() -> None:
    inter = Interactions.from_frame(_frame())
    assert inter.user_ids.tolist() == [10, 20, 30]
    assert inter.item_ids.tolist() == ["a", "b", "c"]
    assert inter.users.tolist() == [2, 0, 0, 1, 0]
    assert inter.items.tolist() == [1, 0, 2, 0, 0]
    pd.testing.assert_frame_equal(inter.to_frame(), _frame(), check_dtype=False)


def test_csr_values_and_duplicates_keep_last_record() -> None:
    inter = Interactions.from_frame(_frame())
    binary = inter.csr("binary").toarray()
    assert binary.tolist() == [[1, 0, 1], [1, 0, 0], [0, 1, 0]]
    # user 10 rated item "a" twice (3.0 then 2.0): the later record wins, nothing is summed.
    assert inter.csr("rating")[0, 0] == 2.0
    assert inter.csr("count")[0, 0] == 2.0
    assert inter.csr("binary") is inter.csr("binary")  # cached


def test_subset_and_lookup_errors() -> None:
    inter = Interactions.from_frame(_frame())
    sub = inter.subset(inter.users == 0)
    assert len(sub) == 3 and sub.n_users == 3
    assert inter.user_index([20, 30]).tolist() == [1, 2]
    with pytest.raises(KeyError, match="unknown user id"):
        inter.user_index([99])
    with pytest.raises(KeyError, match="unknown item id"):
        inter.item_index(["zz"])


def test_fingerprint_changes_with_content_and_bad_shapes_are_refused() -> None:
    a = Interactions.from_frame(_frame())
    b = Interactions.from_frame(_frame())
    assert a.fingerprint() == b.fingerprint()
    assert a.subset(np.arange(4)).fingerprint() != a.fingerprint()
    with pytest.raises(ValueError, match="items has"):
        Interactions(
            np.zeros(2, np.int64), np.zeros(3, np.int64), None, None, a.user_ids, a.item_ids
        )
    with pytest.raises(KeyError, match="no column 'item'"):
        Interactions.from_frame(pd.DataFrame({"user": [1]}))
