"""Pre-training of composite models from their parts (NeuMF's GMF and MLP, NeuPR's NBPR and
DNCR): loading a saved part, fitting one inside the composite fit, and the epochs a refit on
train ∪ valid gives each part."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ncflab.data.interactions import Interactions
from ncflab.models.base import Recommender
from ncflab.training.options import FitOptions

__all__ = ["check_pretrain_params", "fit_part", "load_part", "part_epochs", "part_refit_epochs"]


def load_part(
    path: str, cls: type[Recommender], param: str, want: dict[str, Any], have: Callable
) -> Any:
    """A saved ``cls`` model to pre-train a part of a composite model from (NeuMF's GMF and
    MLP, NeuPR's NBPR and DNCR): ``path`` is a model directory written by ``save`` or an
    ``ncflab train`` run directory holding ``model/``. ``have(model)`` must equal ``want`` (the
    shapes the composite model needs: users, items, widths), else a ValueError names ``param``
    and both."""
    where = Path(path)
    if (where / "model" / "config.json").is_file():
        where = where / "model"  # an ``ncflab train`` run directory
    model = Recommender.load(where)
    if not isinstance(model, cls):
        raise ValueError(f"{param} {path!r} holds a {model.name!r} model, not a {cls.name!r}")
    if have(model) != want:
        raise ValueError(
            f"{param} {path!r} does not fit this model: it has {have(model)}, this model and "
            f"data need {want}"
        )
    return model


def fit_part(
    model: Recommender, train: Interactions, options: FitOptions, name: str, epochs: int
) -> Any:
    """Fit ``model``, one part of a composite model's pre-training (NeuMF's GMF and MLP,
    NeuPR's NBPR and DNCR), with its checkpoints under ``name`` (``FitOptions.part``).
    ``epochs`` 0: as ``options`` say, validation and early stopping included. ``epochs`` > 0:
    exactly that many epochs, not validated: a refit on train ∪ valid (``train.refit``) runs
    each part for the epochs validation chose for it, as it does for the composite model."""
    options = options.part(name)
    if epochs:
        model = model.clone(epochs=epochs)
        options = dataclasses.replace(options, validate=None)
    return model.fit(train, options)


def check_pretrain_params(pretrain: bool, paths: dict[str, str], epochs: list[int]) -> None:
    """Check a composite model's pre-training settings: ``paths`` (each part's
    ``pretrained_*`` parameter and value, in order) and ``pretrain_epochs`` are only used with
    ``pretrain``; ``epochs`` is empty or one count >= 0 per part, 0 for a part loaded from a
    path (it is not fitted)."""
    if (any(paths.values()) or epochs) and not pretrain:
        raise ValueError(
            f"{' / '.join(paths)} / pretrain_epochs are only used with pretrain=true; set it, "
            "or leave them empty"
        )
    if not epochs:
        return
    names = list(paths)
    if len(epochs) != len(names) or not all(isinstance(e, int) and e >= 0 for e in epochs):
        raise ValueError(
            f"pretrain_epochs must be empty or {len(names)} counts >= 0 (one per part: "
            f"{', '.join(n.removeprefix('pretrained_') for n in names)}), got {epochs}"
        )
    for count, (param, path) in zip(epochs, paths.items(), strict=True):
        if count and path:
            raise ValueError(
                f"pretrain_epochs gives {count} epochs to the part that {param}={path!r} "
                "loads instead of fitting; give it 0"
            )


def part_epochs(part: Recommender) -> int:
    """The epochs a fitted part's weights come from: its best epoch when validated, else
    every epoch it ran."""
    best = getattr(part, "best_epoch_", None)
    return int(best) if best is not None else len(getattr(part, "history_", []))


def part_refit_epochs(model: Recommender, paths: dict[str, str]) -> dict[str, Any]:
    """``refit_params`` of a composite model pre-trained in its fit: ``pretrain_epochs`` =
    each fitted part's ``part_epochs`` (``pretrain_best_``), 0 for a part loaded from its
    path; none when no part was fitted."""
    best = getattr(model, "pretrain_best_", None)
    if best is None:
        return {}
    epochs = [0 if path else int(b) for b, path in zip(best, paths.values(), strict=True)]
    return {"pretrain_epochs": epochs} if any(epochs) else {}
