"""One run: load data → split → fit (early stopping on validation) → evaluate test once → write.

A run directory holds everything needed to trust and repeat the result::

    config.toml      the resolved configuration (defaults filled in)
    split.json       the split's rule, sizes and fingerprints (data, split + candidates)
    metrics.json     {"valid": {...}, "test": {...}, "fingerprint": ..., "history": [...]}
    per_user.csv     test metrics per user (original user ids)
    model/           the trained model (config.json + state.safetensors, no pickle)
    log.txt          the run's log

``load_run`` reads one back: the split is rebuilt from ``config.toml`` and must have the
fingerprint stored in ``split.json``, so a model is never evaluated on data it was not made for.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncflab.config import RunConfig, load_config
from ncflab.data.datasets import DATASETS, load_dataset, load_split_files
from ncflab.data.splits import Split, split_from_frames, with_negatives
from ncflab.evaluation.protocols import EvalResult, evaluate, make_validator
from ncflab.experiments.presets import Protocol, get_protocol, make_split
from ncflab.models import MODELS, FitOptions, Recommender
from ncflab.training.loop import SNAPSHOT_FILE

__all__ = [
    "RunResult",
    "build_model",
    "final_test",
    "load_run",
    "load_split",
    "refit_train_valid",
    "refuse_unfinished",
    "run_experiment",
    "saved_fingerprint",
    "summarize",
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


def build_model(name: str, params: dict[str, Any], seed: int) -> Recommender:
    """A registry model with hyperparameter overrides; unknown names and fields are errors."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {sorted(MODELS)}")
    cls = MODELS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(params) - fields)
    if bad:
        raise ValueError(f"model {name!r} has no hyperparameter(s) {bad}; it has {sorted(fields)}")
    return cls(**{"seed": seed, **params})


def load_split(config: RunConfig, protocol: Protocol) -> Split:
    """The split a config asks for: a named dataset split by the protocol, or a fixed split
    read from files (``jca-ml-1m``, ``ncf-*``), whose given negatives are kept."""
    spec = DATASETS.get(config.dataset)
    if spec is not None and getattr(spec, "fixed_split", False):
        frames = load_split_files(config.dataset, data_dir=config.data_dir)
        split = split_from_frames(
            frames["train"],
            frames["test"],
            valid=frames.get("valid"),
            negatives=frames.get("negatives"),
            valid_in_train=getattr(spec, "valid_in_train", False),
        )
        if protocol.n_negatives and split.negatives is None:
            split = with_negatives(split, protocol.n_negatives, config.split_seed)
        split.info["protocol"] = protocol.name
        return split
    inter = load_dataset(config.dataset, data_dir=config.data_dir)
    return make_split(protocol, inter, seed=config.split_seed)


def run_experiment(
    config: RunConfig,
    out: str | Path | None = None,
    progress: bool = False,
    resume: bool = False,
) -> RunResult:
    """Run ``config`` end to end; write the run directory when ``out`` is given
    (``progress``: show the training loop's progress bar, for the CLI).

    ``config.toml`` is written before training, so a killed run can be resumed:
    ``resume=True`` continues the training loop from the snapshot in ``out/checkpoint`` (see
    ``train_loop``), and the run ends as the uninterrupted one would have. Its ``fit_seconds``
    then count only this process's part, and ``metrics.json`` says ``"resumed": true``."""
    if resume and out is None:
        raise ValueError("resume needs the run directory (out) whose snapshot to continue")
    checkpoint = Path(out) / "checkpoint" if out else None
    if not resume:
        refuse_unfinished(out)
    resumed = resume and checkpoint is not None and any(checkpoint.rglob(SNAPSHOT_FILE))
    protocol = get_protocol(config.protocol)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    # Build the model first: an unknown name or hyperparameter fails before any data is read.
    model = build_model(config.model, config.params, config.seed)
    t0 = time.perf_counter()
    split = load_split(config, protocol)
    log.info(
        "split %s ready in %.1fs: %s", split.fingerprint(), time.perf_counter() - t0, split.info
    )
    ks, metrics = protocol.ks, protocol.metrics
    kind = protocol.evaluation
    validator = None
    if split.valid is not None and len(split.valid):
        validator = make_validator(split, protocol=kind, ks=ks, metrics=metrics)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.toml").write_text(config.to_toml())
    options = FitOptions(
        validate=validator,
        monitor=config.train.monitor or protocol.monitor,
        patience=protocol.patience if config.train.patience is None else config.train.patience,
        eval_every=config.train.eval_every,
        device=config.train.device,
        checkpoint_dir=checkpoint,
        resume=resume,
        snapshot_seconds=config.train.snapshot_seconds,
    )
    t1 = time.perf_counter()
    model.fit(split.train, options)
    fit_seconds = time.perf_counter() - t1
    valid = None
    if validator is not None:
        valid = evaluate(model, split, part="valid", protocol=kind, ks=ks, metrics=metrics)
    model, test, record = final_test(
        model,
        split,
        config,
        options,
        valid.means if valid else {},
        fit_seconds=round(fit_seconds, 3),
        resumed=resumed,
    )
    log.info("valid: %s", valid.means if valid else "no validation part")
    log.info("test (%d users, %s): %s", test.n_users, kind, test.means)
    if out is not None:
        write_run(Path(out), config, model, split, test, record)
    return RunResult(model, split, valid, test, record)


def refuse_unfinished(out: str | Path | None) -> None:
    """Raise when ``out`` holds a run that was killed before it finished (a training snapshot,
    its own or a pre-trained part's, and no ``metrics.json``): starting another run there would
    overwrite what it had trained, which ``ncflab resume`` can finish."""
    if out is None or (Path(out) / "metrics.json").is_file():
        return
    snapshots = sorted((Path(out) / "checkpoint").rglob(SNAPSHOT_FILE))
    if snapshots:
        raise ValueError(
            f"{out} holds an unfinished run ({snapshots[0]}): `ncflab resume {out}` finishes "
            "it; delete the folder to start it over"
        )


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
    out: Path, config: RunConfig, model: Recommender, split: Split, test: EvalResult, record: dict
) -> None:
    """Write the run directory (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(config.to_toml())
    info = {**split.info, "fingerprint": split.fingerprint(), "data": split.train.fingerprint()}
    (out / "split.json").write_text(json.dumps(info, indent=2, default=str))
    (out / "metrics.json").write_text(json.dumps(record, indent=2, default=float))
    per_user = test.per_user.copy()
    if "user" in per_user.columns:
        per_user["user"] = split.train.user_ids[per_user["user"].to_numpy()]
    per_user.to_csv(out / "per_user.csv", index=False)
    model.save(out / "model")


def saved_fingerprint(run: str | Path) -> str | None:
    """The split fingerprint stored in ``run/split.json``, or None when the run has none."""
    path = Path(run) / "split.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("fingerprint") or None


def load_run(
    run: str | Path, *, data_dir: str | None = None, split: Split | None = None
) -> tuple[RunConfig, Split, Recommender]:
    """Read a run directory back: its resolved config, its split rebuilt from the config (the
    fingerprint checked against ``split.json``) and its saved model.

    Args:
        run: a directory written by ``run_experiment(..., out=run)``.
        data_dir: overrides the config's ``data_dir`` (the data may have moved).
        split: a split already rebuilt for another run; reused (not rebuilt) when this run's
            saved fingerprint equals its fingerprint, as when two runs share one split.
    """
    run = Path(run)
    config = load_config(run / "config.toml")
    if data_dir is not None:
        config.data_dir = data_dir
    saved = saved_fingerprint(run)
    if split is None or saved is None or saved != split.fingerprint():
        split = load_split(config, get_protocol(config.protocol))
        if saved and saved != split.fingerprint():
            raise ValueError(
                f"the rebuilt split has fingerprint {split.fingerprint()}, the run was made on "
                f"{saved}: the data or the code changed"
            )
    return config, split, Recommender.load(run / "model")


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
