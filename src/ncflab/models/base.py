"""The Recommender interface every model implements.

A model is a keyword-only dataclass: its fields are its hyperparameters (defaults from its paper,
cited next to them), learned state lives in attributes ending in ``_``. ``fit`` learns from a
training ``Interactions``; ``score`` returns scores over all items and ``score_items`` over a
candidate set. The evaluator owns masking, top-K and metrics; models only score.

Saving writes ``config.json`` (model name + hyperparameters + small state) and
``state.safetensors`` (arrays and module weights): no pickle, so a saved model is safe to load.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
import torch

from ncflab.data.interactions import Interactions
from ncflab.training.options import FitOptions
from ncflab.typed import Bounds, check_dataclass

__all__ = ["COMMON_BOUNDS", "Recommender"]

# Ranges of the hyperparameters that several models share, declared once for all of them; a
# model's own field metadata (``ncflab.typed.bounds``) or ``_check_params`` adds the rest.
COMMON_BOUNDS: dict[str, Bounds] = {
    "seed": Bounds(ge=0),
    "lr": Bounds(gt=0),
    "reg": Bounds(ge=0),
    "weight_decay": Bounds(ge=0),
    "factors": Bounds(ge=1),
    "batch_size": Bounds(ge=1),
    "n_neg": Bounds(ge=1),
    "epochs": Bounds(ge=0),  # 0 only for a warm-started model's refit; models say >= 1 otherwise
    "init_std": Bounds(gt=0),
    "top_k": Bounds(ge=1),
    "shrink": Bounds(ge=0),
    "dropout": Bounds(ge=0, lt=1),
}


@dataclass(kw_only=True)
class Recommender:
    """Base class of all models. Subclasses add hyperparameter fields and implement
    ``fit`` and ``score``; pairwise or candidate-only models override ``score_items``."""

    name: ClassVar[str] = "base"
    # ``ncflab tune``'s default search space: {hyperparameter: {"low", "high"[, "log", "int"]}
    # or {"choices": [...]}} (see ncflab.experiments.tune); empty = none declared.
    search_space: ClassVar[dict] = {}
    seed: int = 0

    def __post_init__(self) -> None:
        # Checked at construction, so a bad value fails before any data is read: the declared
        # types and ranges first, then the model's own rules (choices, cross-field conditions).
        check_dataclass(self, COMMON_BOUNDS, prefix="params.")
        check = getattr(self, "_check_params", None)
        if check is not None:
            check()

    # --------------------------------------------------------------- learning
    def fit(self, train: Interactions, options: FitOptions | None = None) -> Self:
        """Learn from ``train``; returns self. Sets ``n_users_`` and ``n_items_``."""
        raise NotImplementedError

    def score(self, users: np.ndarray) -> torch.Tensor:
        """(B, n_items) float32 CPU scores of every item for each user index (higher = better)."""
        raise NotImplementedError

    def score_items(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        """(B, C) float32 CPU scores of candidate ``items`` (B, C) for ``users`` (B,)."""
        full = self.score(users)
        return torch.gather(full, 1, torch.as_tensor(items, dtype=torch.long))

    # ------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a plain dict (the dataclass fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def clone(self, **overrides: Any) -> Self:
        """A fresh, unfitted model with the same hyperparameters, some overridden."""
        return type(self)(**{**self.get_params(), **overrides})

    def refit_params(self) -> dict[str, Any]:
        """Hyperparameters, besides ``epochs``, that a refit on train ∪ valid
        (``train.refit``) takes from this fit's validation; none by default."""
        return {}

    def check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def check_users(self, users: np.ndarray) -> np.ndarray:
        """``users`` as a (B,) int64 array, checked to be fitted user indices."""
        self.check_fitted()
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        bad = users[(users < 0) | (users >= self.n_users_)]
        if bad.size:
            raise IndexError(
                f"user indices {bad[:5].tolist()} are outside [0, {self.n_users_}) "
                f"of this fitted {type(self).__name__}"
            )
        return users

    def _device(self) -> torch.device:
        """The device of the fitted network ``module_`` (neural models keep it there)."""
        return next(self.module_.parameters()).device

    def check_candidates(
        self, users: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``users`` (B,) and candidate ``items`` (B, C) as int64 arrays, both checked to be
        fitted indices (``score_items``'s arguments)."""
        users = self.check_users(users)
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 2 or items.shape[0] != len(users):
            raise ValueError(f"items must be (B={len(users)}, C), got shape {items.shape}")
        bad = items[(items < 0) | (items >= self.n_items_)]
        if bad.size:
            raise IndexError(f"item indices {bad[:5].tolist()} outside [0, {self.n_items_})")
        return users, items

    def recommend(
        self, users: np.ndarray, k: int = 10, exclude: sp.spmatrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (item indices (B, k'), scores (B, k')) for user indices ``users`` (B,),
        best first, k' = min(k, n_items). ``exclude``: an (n_users, n_items) sparse matrix
        whose non-zeros are never returned, usually the items users already have
        (``split.known_positives()`` or ``train.csr()``); a row with fewer than k allowed items
        is padded with item -1 and score -inf."""
        from ncflab.evaluation.topk import top_k

        users = self.check_users(users)
        if exclude is not None and exclude.shape != (self.n_users_, self.n_items_):
            raise ValueError(
                f"exclude must be ({self.n_users_}, {self.n_items_}), got {exclude.shape}"
            )
        return top_k(self, users, k, None if exclude is None else sp.csr_matrix(exclude))

    # ------------------------------------------------------------ training
    def build_to_train(self, n_users: int, n_items: int, device: torch.device) -> None:
        """``build`` the network this fit trains, once its training is known to fit in memory
        (``checked_module``: sized on the meta device first; Adam's two moments unless the
        model's ``optimizer`` is plain SGD), so a fit too large is refused before it allocates."""
        from ncflab.memory import checked_module
        from ncflab.training.distributed import world_size

        def build() -> torch.nn.Module:
            self.build(n_users, n_items)
            return self.module_

        states = 0 if getattr(self, "optimizer", "adam") == "sgd" else 2
        what = f"training {self.name} on {n_users:,} users × {n_items:,} items"
        try:
            checked_module(what, build, device, states, world_size())
        except MemoryError:
            vars(self).pop("module_", None)  # the shapes-only network of the check
            raise

    # ------------------------------------------------------------ new users
    @classmethod
    def folds_in(cls) -> bool:
        """Whether the model can score users unseen in training (it overrides
        ``score_new_users``)."""
        return cls.score_new_users is not Recommender.score_new_users

    def score_new_users(self, rows: sp.spmatrix) -> torch.Tensor:
        """(B, n_items) float32 CPU scores for users not seen in training, from their rows
        ``rows`` (B, n_items), scipy sparse (fold-in, no retraining). Models whose parameters
        are per training user cannot do this and keep this default, which says so."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot score a user unseen in training without retraining "
            "(its parameters are per training user)"
        )

    def check_rows(self, rows: sp.spmatrix, *, binary: bool = True) -> sp.csr_matrix:
        """New users' ``rows`` as float32 CSR (duplicates summed, zeros dropped; every value
        set to 1 when ``binary``). Anything but a (B, n_items) sparse matrix of finite values
        >= 0 is an error naming what was given: a new user's data is never silently changed."""
        self.check_fitted()
        if not sp.issparse(rows) or rows.ndim != 2 or rows.shape[1] != self.n_items_:
            raise ValueError(
                f"rows must be a scipy sparse (B, {self.n_items_}) matrix, got "
                f"{type(rows).__name__} of shape {getattr(rows, 'shape', None)}"
            )
        csr = sp.csr_matrix(rows, dtype=np.float32)
        csr.sum_duplicates()
        if not (np.isfinite(csr.data).all() and (csr.data >= 0).all()):
            raise ValueError("new users' rows must hold finite values >= 0 (0 = unknown)")
        csr.eliminate_zeros()
        if binary:
            csr.data[:] = 1.0
        return csr

    def recommend_for_items(
        self,
        train: Interactions,
        item_ids: np.ndarray | list,
        ratings: np.ndarray | list | None = None,
        k: int = 10,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for one new user given the original ids of the items they interacted
        with (and their ``ratings``, 1 each when None) through ``score_new_users``; ``train``
        supplies the id maps. Unknown ids raise ``KeyError`` naming them, an item given twice
        with ratings a ``ValueError``. Returns (k,) original item ids (the given items
        excluded) and their scores."""
        self.check_fitted()
        if train.n_items != self.n_items_:
            raise ValueError(f"train has {train.n_items} items, the model {self.n_items_}")
        index = train.item_index(item_ids)  # KeyError names unknown ids
        if ratings is None:
            index = np.unique(index)
            values = np.ones(len(index), np.float32)
        else:
            values = np.asarray(ratings, dtype=np.float32)
            if values.shape != index.shape:
                raise ValueError(
                    f"ratings must have one value per item ({len(index)}), got {values.shape}"
                )
            uniq, counts = np.unique(index, return_counts=True)
            if (counts > 1).any():
                twice = train.item_ids[uniq[counts > 1]][:5].tolist()
                raise ValueError(f"items {twice} are given more than once with ratings")
        row = sp.csr_matrix((values, (np.zeros_like(index), index)), shape=(1, self.n_items_))
        scores = self.score_new_users(row)[0]
        scores[torch.from_numpy(index)] = -torch.inf
        top = torch.topk(scores, min(k, self.n_items_ - len(np.unique(index))))
        return train.item_ids[top.indices.numpy()], top.values.numpy()

    # ----------------------------------------------------------- persistence
    def state_arrays(self) -> dict[str, torch.Tensor]:
        """Learned tensors to save. Default: every ``*_`` ndarray/tensor attribute and the
        ``state_dict`` of every ``*_`` ``nn.Module`` attribute (keys prefixed ``attr.``)."""
        out: dict[str, torch.Tensor] = {}
        for key, value in vars(self).items():
            if not key.endswith("_"):
                continue
            if isinstance(value, torch.nn.Module):
                for k, v in value.state_dict().items():
                    out[f"{key}.{k}"] = v.detach().cpu().contiguous()
            elif isinstance(value, torch.Tensor):
                out[key] = value.detach().cpu().contiguous()
            elif isinstance(value, np.ndarray):
                out[key] = torch.from_numpy(np.ascontiguousarray(value))
        return out

    def state_scalars(self) -> dict[str, Any]:
        """Learned JSON-able values (ints, floats, strings, lists) ending in ``_``."""
        return {
            k: v
            for k, v in vars(self).items()
            if k.endswith("_") and isinstance(v, int | float | str | bool | list)
        }

    def build(self, n_users: int, n_items: int) -> None:
        """Create empty learned structures (e.g. an nn.Module) before weights are loaded.
        Models that keep an nn.Module override this and call it from ``fit`` too."""

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``state.safetensors`` into directory ``path``."""
        from safetensors.torch import save_file

        self.check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {"model": self.name, "params": self.get_params(), "state": self.state_scalars()}
        (path / "config.json").write_text(json.dumps(config, indent=2, default=str))
        save_file(self.state_arrays(), str(path / "state.safetensors"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model written by ``save``; the class comes from the registry by name."""
        from safetensors.torch import load_file

        from ncflab.models import MODELS

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no saved model at {path} (expected {path / 'config.json'})")
        try:
            config = json.loads((path / "config.json").read_text())
            name = config["model"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path / 'config.json'} is not a saved model's config: {err}"
            ) from err
        if name not in MODELS:
            raise KeyError(f"saved model {name!r} is not in the registry {sorted(MODELS)}")
        model = MODELS[name](**config["params"])
        state = config.get("state", {})
        for k, v in state.items():
            setattr(model, k, v)
        model.build(state["n_users_"], state["n_items_"])
        try:
            arrays = load_file(str(path / "state.safetensors"))
            model.load_arrays(arrays)
        except FileNotFoundError:
            raise
        except Exception as err:  # safetensors and torch raise several kinds on a bad file
            raise ValueError(
                f"{path / 'state.safetensors'} cannot be read as {name!r} weights (truncated, "
                f"edited or from another model): {err}"
            ) from err
        return model

    def load_arrays(self, arrays: dict[str, torch.Tensor]) -> None:
        """Inverse of ``state_arrays``: module weights into their modules, the rest as
        attributes (numpy arrays where the model stored numpy)."""
        modules: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in arrays.items():
            attr, _, rest = key.partition(".")
            if rest:
                modules.setdefault(attr, {})[rest] = value
            else:
                setattr(self, attr, value.numpy() if self.arrays_as_numpy else value)
        for attr, sd in modules.items():
            getattr(self, attr).load_state_dict(sd)

    arrays_as_numpy: ClassVar[bool] = True
