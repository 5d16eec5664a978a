"""One run: resolve the config → build the model → split → fit (early stopping on validation)
→ evaluate test once → write the run folder (``ncflab.runs``: atomic, ordered, locked).

``load_run`` reads a finished run back: its model files are checked against the SHA-256
recorded at save, and its split is rebuilt from ``config.toml`` and must have the fingerprint
the run recorded, so a model is never evaluated or asked for recommendations on data it was
not made for.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncflab import runs
from ncflab.config import RunConfig, load_config
from ncflab.data.splits import Split
from ncflab.evaluation.protocols import EvalResult, evaluate, make_validator
from ncflab.experiments.data import load_split, resolve_config
from ncflab.experiments.presets import get_protocol
from ncflab.models import MODELS, FitOptions, Recommender
from ncflab.training import distributed
from ncflab.training.options import resolve_device

__all__ = [
    "RunResult",
    "build_model",
    "final_test",
    "load_run",
    "load_split",
    "per_user_frame",
    "refit_train_valid",
    "run_experiment",
    "summarize",
    "write_run",
]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What ``run_experiment`` returns: the fitted model, the split and both evaluations."""

    model: Recommender
    split: Split
    valid: EvalResult | None
    test: EvalResult
    metrics: dict[str, Any]
    config: RunConfig


def build_model(name: str, params: dict[str, Any], seed: int) -> Recommender:
    """A registry model with hyperparameter overrides; unknown names and fields, and values of
    the wrong type or range, are errors (before any data is read)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {sorted(MODELS)}")
    cls = MODELS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(params) - fields)
    if bad:
        raise ValueError(f"model {name!r} has no hyperparameter(s) {bad}; it has {sorted(fields)}")
    return cls(**{"seed": seed, **params})


def run_experiment(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    on_progress: Any = None,
) -> RunResult:
    """Run ``config`` end to end; write the run folder ``out`` when given.

    ``force`` replaces a finished run in ``out`` (nothing of it survives); ``resume``
    continues a killed run from its snapshot (the split must be the one it started on) and
    ends as the uninterrupted run would have; its ``fit_seconds`` then count only this
    process's part, and ``metrics.json`` says ``"resumed": true``. ``on_progress`` receives
    the training progress events (``FitOptions.on_progress``)."""
    if resume and out is None:
        raise ValueError("resume needs the run folder whose snapshot to continue")
    config = resolve_config(config)
    protocol = get_protocol(config.protocol)
    resolve_device(config.train.device)  # no CUDA for "cuda": said now, not after the split
    # Build the model first: an unknown name or hyperparameter fails before any data is read.
    model = build_model(config.model, config.params, config.seed)
    with ExitStack() as stack:
        # Under torchrun: every rank runs this, rank 0 alone writes the run folder (the
        # others read its snapshot when resuming).
        rank = stack.enter_context(distributed.session(resolve_device(config.train.device)))
        writer = None
        if out is not None and rank == 0:
            writer = stack.enter_context(runs.writer(out, force=force, resume=resume))
            stack.enter_context(writer.logging_to_file(append=resume))
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        t0 = time.perf_counter()
        split = load_split(config, protocol)
        log.info("split %s ready in %.1fs: %s", split.fingerprint(), time.perf_counter() - t0,
                 split.info)  # fmt: skip
        # The config is written once the data has been read: a file that cannot be read
        # leaves no run behind, and from here a kill leaves one that `ncflab resume` finishes.
        if writer is not None and resume:
            writer.check_split(split.fingerprint(), protocol.name)
        elif writer is not None:
            writer.write_config(config.to_toml())
            writer.write_split(split_record(split))
        folder = None if out is None else Path(out)
        return _fit_and_test(config, model, split, writer, folder, resume, on_progress)


def _fit_and_test(
    config: RunConfig,
    model: Recommender,
    split: Split,
    writer: runs.RunWriter | None,
    folder: Path | None,
    resume: bool,
    on_progress: Any,
) -> RunResult:
    resumed = resume and folder is not None and runs.has_snapshot(folder)
    protocol = get_protocol(config.protocol)
    kind, ks, metrics = protocol.evaluation, protocol.ks, protocol.metrics
    validator = None
    if split.valid is not None and len(split.valid):
        validator = make_validator(split, protocol=kind, ks=ks, metrics=metrics)
    if config.train.select_on == "test":
        log.warning("epochs are chosen on the TEST part (train.select_on='test'): an upper "
                    "reference of what test-set selection gives, not a result")  # fmt: skip
        validator = make_validator(split, protocol=kind, ks=ks, metrics=metrics, part="test")
    options = dataclasses.replace(
        config.train,
        validate=validator,
        checkpoint_dir=None if folder is None else folder / runs.CHECKPOINT,
        resume=resume,
        on_progress=on_progress,
    )
    t1, steps = time.perf_counter(), distributed.steps_taken()
    model.fit(split.train, options)
    fit_seconds = time.perf_counter() - t1
    if distributed.world_size() > 1 and distributed.steps_taken() == steps:
        n = distributed.world_size()
        log.warning("%s takes no minibatch steps: each of the %d processes fitted it whole, "
                    "which gains nothing over one", model.name, n)  # fmt: skip
    valid = None
    if split.valid is not None and len(split.valid):
        valid = evaluate(model, split, part="valid", protocol=kind, ks=ks, metrics=metrics)
    model, test, record = final_test(
        model,
        split,
        config,
        options,
        valid.means if valid else {},
        fit_seconds=round(fit_seconds, 3),
        resumed=resumed,
        selected_on=config.train.select_on,
        # Data-parallel: N ranks' minibatches made each step (an N times larger batch).
        **({"processes": distributed.world_size()} if distributed.world_size() > 1 else {}),
    )
    log.info("valid: %s", valid.means if valid else "no validation part")
    log.info("test (%d users, %s): %s", test.n_users, kind, test.means)
    if writer is not None:
        writer.finish(model, record, per_user_frame(test, split))
    return RunResult(model, split, valid, test, record, config)


def split_record(split: Split) -> dict[str, Any]:
    """What ``split.json`` holds: the split's rule, sizes and fingerprints."""
    return {**split.info, "fingerprint": split.fingerprint(), "data": split.train.fingerprint()}


def per_user_frame(test: EvalResult, split: Split) -> pd.DataFrame:
    """The per-user test metrics with original user ids (``per_user.csv``), and each user's
    number of training records (``train_items``: the activity that per-activity tables such
    as J-NCF's Table 7 group users by; not a metric, so never paired or averaged as one)."""
    per_user = test.per_user.copy()
    if "user" in per_user.columns:
        index = per_user["user"].to_numpy()
        per_user["user"] = split.train.user_ids[index]
        per_user.insert(1, "train_items", split.train.user_counts()[index])
    return per_user


def final_test(
    model: Recommender,
    split: Split,
    config: RunConfig,
    options: FitOptions,
    valid: dict[str, float],
    **extra: Any,
) -> tuple[Recommender, EvalResult, dict[str, Any]]:
    """The end of a run (``train`` and ``tune``): refit on train ∪ valid when the config asks,
    evaluate test once, and build the record written as ``metrics.json`` (``valid``: the
    validated model's metrics; ``extra``: more entries). Returns the tested model, the test
    result and the record."""
    protocol = get_protocol(config.protocol)
    kind, ks, metrics = protocol.evaluation, protocol.ks, protocol.metrics
    refit, history = None, getattr(model, "history_", [])
    if config.train.refit:
        model, refit = refit_train_valid(model, split, options)
    test = evaluate(model, split, part="test", protocol=kind, ks=ks, metrics=metrics)
    record = {
        "valid": valid,
        "test": test.means,
        "model": config.model,
        "dataset": config.dataset,
        "protocol": protocol.name,
        "fingerprint": {"data": split.train.fingerprint(), "split": split.fingerprint()},
        "n_test_users": test.n_users,
        **extra,
        "refit": refit,
        "history": history,
    }
    return model, test, record


def refit_train_valid(
    model: Recommender, split: Split, options: FitOptions
) -> tuple[Recommender, dict[str, Any]]:
    """A fresh copy of ``model`` fitted on train ∪ valid, without validation: the procedure of
    Dacrema et al. (TOIS 2021) after tuning. A model trained by the training loop keeps the
    number of epochs validation chose (``best_epoch_``), and a pre-trained composite model
    its parts' (``Recommender.refit_params``); closed-form models just refit.
    Returns the new model and what was done (stored in ``metrics.json``)."""
    if split.valid is None or not len(split.valid):
        raise ValueError("train.refit needs a split with a validation part")
    overrides: dict[str, Any] = model.refit_params()
    best = getattr(model, "best_epoch_", None)
    if best is not None:
        if "epochs" not in model.get_params():
            raise ValueError(f"{model.name} chose epochs on validation but has no 'epochs' field")
        # Epoch 0 is the warm start (pre-trained parts, fused): the refit rebuilds it from parts
        # refitted on train ∪ valid and trains it 0 epochs. With no part to refit (all loaded
        # from saved runs) there is nothing of it to fit on train ∪ valid.
        if best == 0 and not overrides:
            raise ValueError(
                f"validation chose {model.name}'s starting weights (epoch 0, the warm start "
                "before any training step), and no part of it is fitted here: there is "
                "nothing to refit"
            )
        overrides = {"epochs": int(best), **overrides}
    t0 = time.perf_counter()
    data = split.train.concat(split.valid)
    refitted = model.clone(**overrides)
    plain = dataclasses.replace(options, validate=None, checkpoint_dir=None, resume=False)
    refitted.fit(data, plain)
    seconds = time.perf_counter() - t0
    log.info("refit on train + valid (%d records) %s in %.1fs", len(data), overrides, seconds)
    return refitted, {"on": "train+valid", "records": len(data), **overrides, "seconds": seconds}


def write_run(
    out: str | Path,
    config: RunConfig,
    model: Recommender,
    split: Split,
    test: EvalResult,
    record: dict[str, Any],
    *,
    force: bool = False,
) -> Path:
    """Write a run made by hand (a model fitted and tested from Python) as a finished run
    folder, through the same ordered, locked writer ``run_experiment`` uses; ``record``
    becomes ``metrics.json`` (the split fingerprint is added)."""
    fingerprint = {"data": split.train.fingerprint(), "split": split.fingerprint()}
    record = {"model": config.model, "dataset": config.dataset, "protocol": config.protocol,
              **record, "fingerprint": fingerprint}  # fmt: skip
    with runs.writer(out, force=force) as w:
        w.write_config(config.to_toml())
        w.write_split(split_record(split))
        w.finish(model, record, per_user_frame(test, split))
    return Path(out)


def load_run(
    run: str | Path, *, data_dir: str | None = None, split: Split | None = None
) -> tuple[RunConfig, Split, Recommender]:
    """Read a finished run folder back: its config, its split rebuilt from the config (the
    fingerprint checked against the one the run recorded) and its model (each file checked
    against the SHA-256 recorded at save). Any mismatch is a ``RunError`` naming it.

    Args:
        run: a folder written by ``run_experiment(..., out=run)``.
        data_dir: overrides the config's ``data_dir`` (the data may have moved).
        split: a split already rebuilt for another run; reused (not rebuilt) when this run's
            recorded fingerprint equals its fingerprint, as when two runs share one split.
    """
    run = runs.require_finished(run)
    config = load_config(run / runs.CONFIG)
    if data_dir is not None:
        config.data_dir = str(Path(data_dir).expanduser().resolve())
    model_dir = runs.check_model_files(run)
    saved = runs.recorded_fingerprint(run)
    if saved is None:
        raise runs.RunError(f"{run} records no split fingerprint: its data cannot be checked")
    if split is None or saved != split.fingerprint():
        split = load_split(config, get_protocol(config.protocol))
        if saved != split.fingerprint():
            raise runs.RunError(
                f"the data of {run} now gives split {split.fingerprint()}, the run was made on "
                f"{saved}: the data files (data_dir {config.data_dir}) or the code changed"
            )
    return config, split, Recommender.load(model_dir)


def summarize(records: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample standard deviation (ddof=1; 0 for one run) of each metric over runs:
    ``{"valid": {"HR@10": {"mean", "std", "n"}}, "test": {...}}``, plus the per-seed values."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for part in ("valid", "test"):
        names = sorted({k for r in records for k in r.get(part, {})})
        out[part] = {}
        for name in names:
            values = np.array([r[part][name] for r in records if name in r.get(part, {})])
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out[part][name] = {
                "mean": float(values.mean()),
                "std": std,
                "n": len(values),
                "values": values.tolist(),
            }
    return out
