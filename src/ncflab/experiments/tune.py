"""Hyperparameter tuning on the validation split only, with a declared space and a fixed budget.

A search space maps hyperparameter names to one of::

    {"low": 10.0, "high": 10000.0, "log": true}   # float (log-uniform when log)
    {"low": 5, "high": 1000, "log": true, "int": true}
    {"choices": [32, 64, 128]}                    # categorical

Each model may declare its own as the class attribute ``search_space`` (next to the defaults it
explores); a TOML file (``ncflab tune --space``) replaces it. The budget is a number of trials
and, optionally, a wall-clock limit. Every trial fits the model on the training part (models
with a training loop early-stop on validation, as ``ncflab train`` does) and is scored by the
protocol's validation metric; **test is evaluated once, for the best trial only**, after the
search (refitted on train ∪ valid first when the config says ``train.refit = true``).
Sampling is Optuna's (TPE by default, or random; seeded, so a search repeats).

A search can be shared by several processes, on one machine or several (``SharedStudy``: an
Optuna RDB storage such as ``sqlite:///study.db`` or ``postgresql://…``, and a study name):
each runs trials of the one study until it holds the budget's number of evaluated trials, then
tests the study's best trial once and writes its own run folder; see
``ncflab.experiments.shared_study`` for how the budget is kept and the best chosen. A shared
search does not repeat exactly, unlike a single process's.

The output directory is an ordinary run directory (``config.toml`` holds the chosen values, so
``ncflab train --config OUT/config.toml`` retrains it; ``ncflab evaluate``/``compare`` read it)
plus ``tune.json``: the space, the budget, the sampler, every trial's values, validation metrics
and time, and the best trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ncflab import runs
from ncflab.config import RunConfig
from ncflab.data.splits import Split
from ncflab.evaluation.protocols import evaluate, make_validator
from ncflab.experiments.data import resolve_config
from ncflab.experiments.presets import Protocol, get_protocol
from ncflab.experiments.run import build_model, final_test, load_split, per_user_frame, split_record
from ncflab.experiments.shared_study import (
    SharedStudy,
    best_trial,
    counted,
    dataset_label,
    default_study_name,
    fit_settings,
    mask_password,
    open_shared_study,
    refit_trial,
    run_shared,
    store_trial,
    study_records,
)
from ncflab.models import MODELS, FitOptions, Recommender

__all__ = [
    "TuneResult",
    "check_space",
    "run_tuning",
    "search_space",
    "tune_split",
]

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random")


@dataclass
class TuneResult:
    """What a search returns: the best fitted model, its values and every trial."""

    model: Recommender
    best_params: dict[str, Any]
    best_valid: dict[str, float]
    trials: list[dict[str, Any]]
    budget: dict[str, Any]
    best_number: int | None = None


def search_space(model: str) -> dict[str, dict[str, Any]]:
    """The space model ``model`` declares (``search_space`` class attribute), checked."""
    if model not in MODELS:
        raise KeyError(f"unknown model {model!r}; registered models: {sorted(MODELS)}")
    space = getattr(MODELS[model], "search_space", None)
    if not space:
        raise ValueError(f"model {model!r} declares no search space; pass one with --space FILE")
    return check_space(model, space)


def check_space(model: str, space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``space`` validated against the model's hyperparameters; an error names the bad entry."""
    fields = {f.name for f in dataclasses.fields(MODELS[model])} - {"seed"}
    if not space:
        raise ValueError("the search space is empty")
    for name, spec in space.items():
        if name not in fields:
            raise ValueError(f"search space: {model!r} has no hyperparameter {name!r}")
        if not isinstance(spec, dict):
            raise ValueError(f"search space entry {name!r} must be a table, got {spec!r}")
        if "choices" in spec:
            if set(spec) != {"choices"} or not spec["choices"]:
                raise ValueError(f"search space {name!r}: give only a non-empty 'choices' list")
            continue
        low, high = spec.get("low"), spec.get("high")
        if set(spec) - {"low", "high", "log", "int"} or low is None or high is None:
            raise ValueError(f"search space {name!r}: expected low, high[, log, int], got {spec}")
        if not low < high or (spec.get("log") and low <= 0):
            raise ValueError(f"search space {name!r}: need low < high (and low > 0 with log)")
    return space


def _suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if "choices" in spec:
            out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif spec.get("int"):
            out[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log"))
        else:
            log_ = bool(spec.get("log"))
            out[name] = trial.suggest_float(name, spec["low"], spec["high"], log=log_)
    return out


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:  # an optional dependency: only tuning needs it
        raise RuntimeError("tuning needs optuna: pip install 'ncflab[tune]'") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def tune_split(
    model: str,
    split: Split,
    protocol: Protocol,
    space: dict[str, dict[str, Any]],
    *,
    trials: int,
    timeout: float | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    sampler: str = "tpe",
    options: FitOptions | None = None,
    shared: SharedStudy | None = None,
) -> TuneResult:
    """Search ``space`` for registry model ``model`` on ``split``'s validation part.

    Args:
        params: fixed hyperparameters (not searched) applied to every trial.
        trials: the budget in trials; ``timeout`` (seconds) stops earlier if reached. With
            ``shared``, ``trials`` is the number of evaluated trials the study should hold in
            all (a later call with more extends the search) and ``timeout`` is this process's.
        seed: seeds the sampler and every trial's model (one seed: trials differ only by
            their values). In a shared study only the process that creates it samples from
            ``seed``; every joining process draws its own sampler seed (recorded in the
            budget), else processes started together would suggest the same values.
        options: fit options (device, patience, ...); its ``validate`` is set here.
        shared: run the trials of this RDB-stored study, alongside other processes.
    """
    if trials < 1:
        raise ValueError(f"the budget must be at least one trial, got {trials}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    if split.valid is None or not len(split.valid):
        raise ValueError("tuning needs a split with a validation part (test is never used)")
    space = check_space(model, space)
    fixed = dict(params or {})
    overlap = sorted(set(fixed) & set(space))
    if overlap:
        raise ValueError(f"{overlap} are both fixed (params) and searched (space)")
    optuna = _optuna()
    kind, ks, metrics = protocol.evaluation, protocol.ks, protocol.metrics
    validator = make_validator(split, protocol=kind, ks=ks, metrics=metrics)
    base = options or FitOptions()
    monitor = base.monitor or protocol.monitor
    fit_options = dataclasses.replace(base, validate=validator, monitor=monitor)
    if shared is None:
        study = optuna.create_study(direction="maximize", sampler=_sampler(optuna, sampler, seed))
        sampler_seed = seed
    else:
        settings = {
            "model": model,
            "protocol": protocol.name,
            "seed": seed,
            "split": split.fingerprint(),
            "space": space,
            "params": fixed,
            "sampler": sampler,
            "monitor": monitor,
            "train": fit_settings(base),
            **shared.labels,
        }
        make = functools.partial(_sampler, optuna, sampler, shared=True)
        study, sampler_seed = open_shared_study(optuna, shared, settings, make, seed)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    own: dict[int, dict[str, Any]] = {}
    best: dict[str, Any] = {}

    def objective(trial: Any) -> float:
        if shared is not None and counted(study, below=trial.number) >= trials:
            # Other processes filled the budget while this trial was being created.
            study.stop()
            raise optuna.TrialPruned("the study's budget is spent")
        values = _suggest(trial, space)
        t0 = time.perf_counter()
        fitted = build_model(model, {**fixed, **values}, seed).fit(split.train, fit_options)
        valid = evaluate(fitted, split, part="valid", protocol=kind, ks=ks, metrics=metrics)
        score = float(valid.means[monitor])
        seconds = time.perf_counter() - t0
        record = {
            "number": trial.number,
            "params": values,
            "valid": valid.means,
            "seconds": seconds,
        }
        if shared is not None:
            threads, device = torch.get_num_threads(), base.torch_device().type
            store_trial(trial, record, worker=worker, threads=threads, device=device)
        own[trial.number] = record
        log.info("trial %d %s: %s=%.4f (%.1fs)", trial.number, values, monitor, score, seconds)
        if math.isfinite(score) and (not best or score > best["score"]):
            best.update(score=score, model=fitted, number=trial.number)
        return score

    if shared is None:
        study.optimize(objective, n_trials=trials, timeout=timeout)
        records = list(own.values())
    else:
        run_shared(optuna, study, objective, trials, timeout)
        records = study_records(study, space, set(own))
    chosen = best_trial(records, monitor)
    if chosen is None:
        raise RuntimeError(f"no trial produced a finite {monitor}")
    if best and best["number"] == chosen["number"]:
        fitted = best["model"]
    else:  # another process fitted it: the same values, seed and threads fit the same model
        fitted = refit_trial(model, {**fixed, **chosen["params"]}, seed, split, fit_options, chosen)
    budget = {
        "trials": trials,
        "timeout_s": timeout,
        "trials_run": len(own),
        "sampler": sampler,
        "seed": seed,
        "monitor": monitor,
        "optuna": optuna.__version__,
    }
    if shared is not None:
        budget.update(
            storage=mask_password(shared.storage),
            study=shared.name,
            trials_in_study=len(records),
            sampler_seed=sampler_seed,
            worker=worker,
        )
    best_params = {**fixed, **chosen["params"]}
    return TuneResult(fitted, best_params, chosen["valid"], records, budget, chosen["number"])


def _sampler(optuna: Any, name: str, seed: int, *, shared: bool = False) -> Any:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # With several processes, TPE's constant liar gives trials still running a pessimistic
    # value, so that processes do not all sample next to the same promising point; alone in a
    # study it changes nothing.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=shared)


def run_tuning(
    config: RunConfig,
    out: str | Path | None,
    *,
    trials: int,
    timeout: float | None = None,
    space: dict[str, Any] | None = None,
    sampler: str = "tpe",
    force: bool = False,
    storage: str | None = None,
    study: str | None = None,
) -> tuple[TuneResult, dict[str, Any]]:
    """Tune ``config.model`` on ``config``'s split (``space``: the model's own when None), then
    evaluate the best trial's model once on test; write the run folder (``config.toml`` = the
    chosen values) and ``tune.json``. Returns the search and the run record (``metrics.json``).

    ``storage`` (an Optuna RDB URL) shares the search with the other processes given the same
    storage and study (``study``: else ``default_study_name(config)``); see ``tune_split``."""
    if study is not None and storage is None:
        raise ValueError("--study names a study in a --storage: give --storage URL too")
    config = resolve_config(config)
    protocol = get_protocol(config.protocol)
    space = check_space(config.model, space) if space else search_space(config.model)
    build_model(config.model, config.params, config.seed)  # bad fixed values fail before data
    with contextlib.ExitStack() as stack:
        writer = None
        if out is not None:
            writer = stack.enter_context(runs.writer(out, force=force))
            stack.enter_context(writer.logging_to_file(append=False))
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        split = load_split(config, protocol)
        if writer is not None:  # once the data has been read, as run_experiment does
            writer.write_config(config.to_toml())
            writer.write_split(split_record(split))
        options = dataclasses.replace(config.train)
        shared = None
        if storage is not None:
            labels = {"dataset": dataset_label(config.dataset), "split_seed": config.split_seed}
            shared = SharedStudy(storage, study or default_study_name(config), labels)
        result = tune_split(
            config.model,
            split,
            protocol,
            space,
            trials=trials,
            timeout=timeout,
            params=config.params,
            seed=config.seed,
            sampler=sampler,
            options=options,
            shared=shared,
        )
        # The chosen trial's fit is the tested model's fit time; the search's is beside it.
        chosen = [t["seconds"] for t in result.trials if t["number"] == result.best_number]
        model, test, record = final_test(
            result.model,
            split,
            config,
            options,
            result.best_valid,
            tuning={"budget": result.budget, "space": space},
            fit_seconds=round(chosen[0], 3) if chosen else None,
            tuning_seconds=round(sum(t["seconds"] for t in result.trials), 3),
        )
        if writer is not None:
            chosen = dataclasses.replace(config, params=result.best_params)
            writer.write_config(chosen.to_toml())
            tune_record = {
                "space": space,
                "budget": result.budget,
                "best": {
                    "number": result.best_number,
                    "params": result.best_params,
                    "valid": result.best_valid,
                },
                "trials": result.trials,
            }
            text = json.dumps(tune_record, indent=2, default=float)
            writer.finish(model, record, per_user_frame(test, split), {runs.TUNE: text})
    return result, record
