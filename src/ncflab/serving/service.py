"""What ``ncflab serve`` answers, without the web framework: original ids mapped to indices
and back, top-K for known users, fold-in for new ones, similar items, and the model's record.

The service holds one loaded model and serves many requests, so everything a request would
otherwise rebuild (the known positives, the item-similarity accessor) is built once here. A
request's mistake is a ``ServiceError`` carrying its HTTP status, raised at the point where the
mistake is recognised; nothing else is turned into a client error, so a bug is never reported
to a client as their fault.

Every top-K goes through ``ncflab.evaluation.topk.top_k`` (``model.recommend`` for known users,
a fixed score row for the others), so masking and tie handling are those of ``ncflab
recommend`` and ``ncflab export``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.evaluation.topk import top_k
from ncflab.models.similarity import stored_csr
from ncflab.runs import jsonable
from ncflab.serving.export import id_indices, user_indices

if TYPE_CHECKING:
    from ncflab.config import RunConfig
    from ncflab.data.splits import Split
    from ncflab.models.base import Recommender

__all__ = [
    "BadRequest",
    "Limits",
    "RecommendationService",
    "ServiceError",
    "Unsupported",
    "UnknownId",
    "describe",
    "item_indices",
    "item_similarity",
]

Similarity = Callable[[int], np.ndarray]


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status it is answered with."""

    status = 422


class UnknownId(ServiceError):
    """A user or item id that is not in the run's data."""

    status = 404


class BadRequest(ServiceError):
    """A request whose values cannot be answered (k out of range, an item given twice...)."""

    status = 422


class Unsupported(ServiceError):
    """The loaded model cannot do what was asked (fold-in, item similarity)."""

    status = 422


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, so that no request can hold the model for long or exhaust
    memory: the answer of a batch is at most ``max_batch`` × ``max_k`` items.

    Attributes:
        max_k: the largest k a request may ask for.
        max_batch: the most users one batch request may name.
        max_body: the largest request body, in bytes.
    """

    max_k: int = 1000
    max_batch: int = 1000
    max_body: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("max_k", "max_batch", "max_body"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


class RecommendationService:
    """The answers of the HTTP service for one fitted model and its split.

    Model calls are serialised by a lock: models keep lazily built caches and toggle their
    networks' eval mode, which is not safe from several threads, and the web framework runs
    requests in a thread pool. Throughput comes from more worker processes, not threads.
    """

    def __init__(self, model: Recommender, split: Split, limits: Limits | None = None) -> None:
        self.model = model
        self.split = split
        self.limits = limits or Limits()
        self.user_ids = split.train.user_ids
        self.item_ids = split.train.item_ids
        self.known = split.known_positives()  # built once, sliced per request
        self.similarity = item_similarity(model)
        self.folds_in = model.folds_in()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ known users
    def for_users(self, users: Sequence[object], k: int) -> list[dict[str, Any]]:
        """Top-``k`` unseen items of each known user, in the order given."""
        self.check_k(k)
        if len(users) > self.limits.max_batch:
            raise BadRequest(f"at most {self.limits.max_batch} users per request, got {len(users)}")
        try:
            index = user_indices(users, self.user_ids)
        except KeyError as err:  # user_indices names the unknown ids
            raise UnknownId(err.args[0]) from None
        except ValueError as err:  # no id, or an id given twice
            raise BadRequest(str(err)) from None
        with self._lock, torch.no_grad():
            items, scores = self.model.recommend(index, k, exclude=self.known)
        ids = self.user_ids[index].tolist()
        return [
            {"user": uid, "k": k, "items": self._ranked(items[row], scores[row])}
            for row, uid in enumerate(ids)
        ]

    # -------------------------------------------------------------------- new users
    def for_new_user(
        self, items: Sequence[object], ratings: Sequence[float] | None, k: int
    ) -> dict[str, Any]:
        """Top-``k`` for a user unseen in training from the items they have (and ratings, 1
        each when None): ``score_new_users`` on their row, the given items never returned."""
        self.check_k(k)
        if not items:
            raise BadRequest("items must list at least one item the new user has")
        index = item_indices(items, self.item_ids)
        values = np.ones(len(index), np.float32) if ratings is None else _ratings(ratings, index)
        row = sp.csr_matrix((values, (np.zeros_like(index), index)), shape=(1, len(self.item_ids)))
        with self._lock, torch.no_grad():
            try:
                scores = self.model.score_new_users(row)
            except NotImplementedError as err:  # the model's own reason (base.py's default)
                raise Unsupported(str(err) or f"{self.model.name} cannot fold in users") from None
            top_items, top_scores = top_k(_Row(scores), _FIRST, k, exclude=row)
        return {"k": k, "items": self._ranked(top_items[0], top_scores[0])}

    # ---------------------------------------------------------------- similar items
    def similar_items(self, item: object, k: int) -> dict[str, Any]:
        """The ``k`` items most similar to ``item`` by the model's own item-item weights or
        item vectors (see ``item_similarity``), the item itself excluded."""
        self.check_k(k)
        if self.similarity is None:
            raise Unsupported(f"this model ({self.model.name}) has no item similarity")
        (index,) = item_indices([item], self.item_ids)
        scores = torch.from_numpy(self.similarity(int(index)))[None]
        itself = sp.csr_matrix(([1.0], ([0], [index])), shape=(1, len(self.item_ids)))
        with torch.no_grad():
            top_items, top_scores = top_k(_Row(scores), _FIRST, k, exclude=itself)
        (item_id,) = self.item_ids[index : index + 1].tolist()  # a plain int or str
        return {"item": item_id, "k": k, "items": self._ranked(top_items[0], top_scores[0])}

    # ---------------------------------------------------------------------- helpers
    def check_k(self, k: int) -> None:
        """k in 1..max_k: a bound on the work and the size of one answer."""
        if not 1 <= k <= self.limits.max_k:
            raise BadRequest(f"k must be between 1 and {self.limits.max_k}, got {k}")

    def _ranked(self, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        """One answer's items, best first, in original ids. ``top_k``'s padding (item -1) is
        dropped, and so is an item scored -inf or NaN: JSON has no such number, and a model
        scores -inf an item it never recommends."""
        kept = (items >= 0) & np.isfinite(scores)
        ids = self.item_ids[items[kept]].tolist()
        values = scores[kept].astype(float).tolist()
        return [
            {"item": i, "score": s, "rank": r}
            for r, (i, s) in enumerate(zip(ids, values, strict=True), start=1)
        ]


_FIRST = np.zeros(1, np.int64)  # the one row of a ``_Row``


class _Row:
    """A fixed (1, n_items) score row behind ``score(users)``, so that a new user's scores and
    an item's similarities go through the one ``top_k``."""

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores

    def score(self, users: np.ndarray) -> torch.Tensor:
        return self.scores[torch.from_numpy(np.asarray(users, dtype=np.int64))]


def item_indices(values: Sequence[object], ids: np.ndarray) -> np.ndarray:
    """Indices of the original item ids ``values`` among ``ids``, in order, read as
    ``user_indices`` reads user ids (same parsing); an unknown id is ``UnknownId`` and an id
    given twice ``BadRequest``, each naming them."""
    return id_indices(values, ids, "item", unknown=UnknownId, repeated=BadRequest)


def _ratings(ratings: Sequence[float], index: np.ndarray) -> np.ndarray:
    """A new user's ratings, one positive finite number per item (0 would mean "no
    interaction", which contradicts listing the item)."""
    if len(ratings) != len(index):
        raise BadRequest(
            f"ratings must have one value per item: {len(index)} items, {len(ratings)} ratings"
        )
    with np.errstate(over="ignore"):  # checked as the model will see them: 1e39 is inf there
        values = np.asarray(ratings, dtype=np.float64).astype(np.float32)
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise BadRequest("ratings must be finite numbers > 0 (within float32)")
    return values


# ------------------------------------------------------------------------ item similarity
def item_similarity(model: Recommender) -> Similarity | None:
    """A function item index → (n_items,) float32 similarities of every item to it, for the
    models that define one cleanly; None for the others. Built once per model.

    Item-item models score ``x_u W``, so column i of W holds the weights of the items from
    which the model predicts i (for item kNN, exactly i's top-k neighbours; for EASE, column i
    ranks items as the symmetric −P does); an item outside a sparse W's column is -inf, never
    listed. Factor models give the cosine of item vectors (BPR's item bias is left out: it is
    not a property shared between two items).
    """
    build = _ACCESSORS.get(getattr(model, "name", ""))
    return None if build is None else build(model)


def _dense_columns(weights: np.ndarray) -> Similarity:
    weights = np.asarray(weights, dtype=np.float32)
    return lambda i: np.ascontiguousarray(weights[:, i])


def _sparse_columns(model: Recommender) -> Similarity:
    n = model.n_items_
    w = stored_csr(model, "w_", (n, n)).tocsc()  # columns sliced per request

    def column(i: int) -> np.ndarray:
        out = np.full(n, -np.inf, np.float32)
        span = slice(w.indptr[i], w.indptr[i + 1])
        out[w.indices[span]] = w.data[span]
        return out

    return column


def _cosine(vectors: np.ndarray | torch.Tensor) -> Similarity:
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)  # a zero vector is similar to nothing
    return lambda i: unit @ unit[i]


_ACCESSORS: dict[str, Callable[[Any], Similarity]] = {
    "ease": lambda m: _dense_columns(m.B_),
    "itemknn": _sparse_columns,
    "slim": _sparse_columns,
    "p3alpha": _sparse_columns,
    "rp3beta": _sparse_columns,
    "ials": lambda m: _cosine(m.H_),
    "eals": lambda m: _cosine(m.Q_),
    "puresvd": lambda m: _cosine(m.V_),
    "bpr": lambda m: _cosine(m.module_.item.weight),
}


# ---------------------------------------------------------------------------- the record
def describe(
    config: RunConfig, metrics: dict[str, Any], service: RecommendationService
) -> dict[str, Any]:
    """What ``GET /model`` answers: the model and its hyperparameters, the data and protocol,
    the split fingerprint the run recorded, its test metrics and provenance (``metrics.json``).
    Values JSON cannot hold (NaN, infinities) become null."""
    model, split = service.model, service.split
    recorded = metrics.get("fingerprint") or {}
    record = {
        "name": config.model,
        "hyperparameters": model.get_params(),
        "dataset": config.dataset,
        "protocol": config.protocol,
        "split_fingerprint": recorded.get("split") or split.fingerprint(),
        "data_fingerprint": recorded.get("data"),
        "n_users": int(len(split.train.user_ids)),
        "n_items": int(len(split.train.item_ids)),
        "test": metrics.get("test") or {},
        "provenance": metrics.get("provenance") or {},
        "fold_in": service.folds_in,
        "item_similarity": service.similarity is not None,
    }
    return _finite(json.loads(json.dumps(record, default=jsonable)))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
