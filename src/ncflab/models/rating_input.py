"""What the models whose input is the training rating matrix share (J-NCF, DMF).

Both feed a user's rating row and an item's rating column to a network (J-NCF Eq. 3, DMF Eq. 2),
so both keep the training matrix as CSR arrays (``indptr_``, ``indices_``, ``data_``: a loaded
model needs its inputs), hold it on the device as a ``RatingGraph``, and cache the item side of
ranking until the next optimizer step.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.models.sparse_input import RatingGraph

__all__ = ["RatingInput", "rating_matrix"]

log = logging.getLogger(__name__)


def rating_matrix(train: Interactions, feedback: str, model: str) -> tuple[sp.csr_matrix, bool]:
    """(n_users, n_items) float32 CSR input of ``model`` (a name for messages) with sorted int64
    indices, and whether it holds ratings: with ``feedback="explicit"`` and rated data the
    ratings (0 means unknown, so they must be > 0), else 1 for every observed pair."""
    explicit = feedback == "explicit" and train.ratings is not None
    if feedback == "explicit" and train.ratings is None:
        log.info("%s: data has no ratings, so explicit feedback is implicit (1/0)", model)
    m = sp.csr_matrix(train.csr("rating" if explicit else "binary"), dtype=np.float32)
    bad = m.data[~(np.isfinite(m.data) & (m.data > 0))]
    if bad.size:
        raise ValueError(
            f"{model} explicit feedback needs ratings > 0 (0 means unknown), got "
            f"{np.unique(bad)[:5].tolist()}; use feedback='implicit'"
        )
    m.sort_indices()
    m.indices = m.indices.astype(np.int64)
    return m, explicit


class RatingInput:
    """Mixin for a ``Recommender`` with the training matrix in ``indptr_``/``indices_``/
    ``data_``: its device graph (built once per device) and the item side of ranking
    (``_item_side``), cached in ``_q_items`` and dropped after every optimizer step and on
    load."""

    n_items_: int
    indptr_: np.ndarray
    indices_: np.ndarray
    data_: np.ndarray
    _graph_cache: RatingGraph | None = None
    _q_items: torch.Tensor | None = None

    def _graph(self, device: torch.device) -> RatingGraph:
        if self._graph_cache is None or self._graph_cache.device != device:
            self._graph_cache = RatingGraph.from_csr(
                self.indptr_, self.indices_, self.data_, self.n_items_, device
            )
        return self._graph_cache

    def _item_side(self) -> torch.Tensor:
        """(n_items, w) item side of ranking for every item, from its training column through
        the item network (``module_.embed_items``) and ``_finish_items``; cached until the next
        optimizer step, since every step changes it."""
        if self._q_items is None:
            graph = self._graph(self._device())  # type: ignore[attr-defined]
            m = self.module_.eval()  # type: ignore[attr-defined]
            all_items = torch.arange(self.n_items_, device=graph.device)
            self._q_items = self._finish_items(m.embed_items(*graph.item_bag(all_items)))
        return self._q_items

    def _finish_items(self, q: torch.Tensor) -> torch.Tensor:
        """What ranking needs of the embedded item columns ``q`` (n_items, d): ``q`` itself
        unless a model says otherwise."""
        return q

    def _clear_caches(self, keep_graph: bool = False) -> None:
        self._q_items = None
        if not keep_graph:
            self._graph_cache = None

    def load_arrays(self, arrays: dict[str, torch.Tensor]) -> None:
        super().load_arrays(arrays)  # type: ignore[misc]
        self._clear_caches()
