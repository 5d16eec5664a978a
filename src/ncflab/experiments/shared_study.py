"""One Optuna study shared by several processes, on one machine or several.

Why: to spread a search (``ncflab.experiments.tune``) over cores or machines. Every process
given the same RDB storage (``sqlite:///study.db``, ``postgresql://…``) and study name
(``SharedStudy``) runs trials of that one study. The study records what defines the search
(model, data, split, protocol, seeds, space, fixed values, sampler, monitored metric, the fit
options that change a score) when it is created; a process with other settings is refused.

The budget is the number of evaluated trials the study holds in all; a timeout is each
process's own. Running trials hold a place, so a trial only starts for a free place, and one
started just as another process took the last place is pruned unrun: the study never holds
more than the budget, and holds that many unless a trial raised or its process died (which
frees its place). A dead process's trial is failed once its heartbeat is stale.

The best: once the budget is spent, each process waits for the others' running trials and
takes the trial with the highest finite validation metric, the earliest on a tie, so that all
pick the same one. A process reuses its own model when it fitted that trial, else refits the
same model (same values, seed and thread count); each tests it once and writes its own run
folder. Which values are suggested depends on how the trials interleave, so a shared search
does not repeat exactly, unlike a single process's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ncflab.config import RunConfig
from ncflab.data.splits import Split
from ncflab.experiments.run import build_model
from ncflab.models import FitOptions, Recommender

__all__ = [
    "SharedStudy",
    "best_trial",
    "counted",
    "dataset_label",
    "default_study_name",
    "fit_settings",
    "mask_password",
    "open_shared_study",
    "refit_trial",
    "run_shared",
    "store_trial",
    "study_records",
]

log = logging.getLogger(__name__)

# The study user attr holding what defines the search, compared when a process joins.
SEARCH_ATTR = "ncflab_search"
# How long a joining process waits for the creator to record the search's settings: the
# creator writes them right after creating the study, so only a foreign study takes this long.
SETTINGS_WAIT_S = 10.0
# A process killed mid-trial stops its heartbeat; after the grace period (twice this) another
# process marks the trial failed, so waiting for running trials always ends.
HEARTBEAT_S = 30


@dataclass(frozen=True)
class SharedStudy:
    """An Optuna study in RDB storage that several processes fill together.

    Attributes:
        storage: an SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user:pw@host/db``).
        name: the study's name; processes with the same name and settings share the search.
        labels: what defines the search beyond ``tune_split``'s own arguments (the dataset,
            the split seed), recorded and compared on join like the rest.
    """

    storage: str
    name: str
    labels: dict[str, Any] = field(default_factory=dict)


def default_study_name(config: RunConfig) -> str:
    """The study name ``ncflab tune --storage`` uses without ``--study``: the same for the same
    model, dataset, protocol and seeds, so one command run on several machines joins one study.
    A ratings file counts by its file name (machines may mount it at different places; the
    split's fingerprint, compared on join, tells whether it is the same data)."""
    dataset, seeds = dataset_label(config.dataset), f"seed{config.seed}-split{config.split_seed}"
    return f"ncflab-{config.model}-{dataset}-{config.protocol}-{seeds}"


def dataset_label(dataset: str) -> str:
    """A dataset name, or a ratings file's name without its folder."""
    return Path(dataset).name or dataset


def mask_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for logs and records."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: hide anything between ':' and '@'
        head, sep, tail = url.partition("://")
        if sep and "@" in tail:
            auth, _, host = tail.rpartition("@")
            user = auth.split(":", 1)[0]
            return f"{head}://{user}:***@{host}" if ":" in auth else url
        return url


def fit_settings(options: FitOptions) -> dict[str, Any]:
    """The fit options that change what a trial scores. Device and threads change its speed
    and at most the last digits (which a refit on the trial's thread count avoids)."""
    return {k: getattr(options, k) for k in ("patience", "eval_every", "select_on")}


def run_shared(
    optuna: Any, study: Any, objective: Callable[[Any], float], trials: int, timeout: float | None
) -> None:
    """Run trials of a shared study while its budget has room, then (budget spent) wait for the
    other processes' running trials, so that every process chooses among the same trials."""
    if counted(study) < trials:
        stop = _stop_when_spent(trials)
        study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[stop])
    if counted(study) >= trials:  # else this process's timeout ended its part
        _wait_for_running(optuna, study)


def _open_storage(optuna: Any, url: str) -> Any:
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError

    where = mask_password(url)
    # sqlite locks the whole file on write: wait for the other processes instead of failing.
    engine = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else None
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S
                )
        except ArgumentError as err:
            raise ValueError(f"--storage {where!r} is not a database URL: {err}") from err
        except ImportError as err:  # optuna ships no driver for postgresql or mysql
            raise ImportError(f"--storage {where}: {err} (install the database's driver)") from err
        except (OperationalError, IntegrityError) as err:
            # Processes started together race to create the tables (and record the schema
            # version): the loser's retry finds them made.
            if attempt == 2:
                raise ValueError(f"cannot open the Optuna storage {where}: {err}") from err
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_shared_study(
    optuna: Any,
    shared: SharedStudy,
    settings: dict[str, Any],
    sampler: Callable[[int], Any],
    seed: int,
) -> tuple[Any, int]:
    """Create the study (recording ``settings``) or join it (checking them); returns the study
    and this process's sampler seed. ``sampler`` makes the search's sampler for a seed."""
    storage = _open_storage(optuna, shared.storage)
    mine = json.loads(json.dumps(settings, default=float))  # as the storage will give it back
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=shared.name,
            direction="maximize",
            sampler=sampler(seed),
        )
    except optuna.exceptions.DuplicatedStudyError:
        own_seed = secrets.randbelow(2**31)
        joined = sampler(own_seed)
        study = optuna.load_study(study_name=shared.name, storage=storage, sampler=joined)
        _check_settings(study, shared, mine)
        log.info("joined study %s (%d trials so far)", shared.name, counted(study))
        return study, own_seed
    study.set_user_attr(SEARCH_ATTR, mine)
    log.info("created study %s in %s", shared.name, mask_password(shared.storage))
    return study, seed


def _check_settings(study: Any, shared: SharedStudy, mine: dict[str, Any]) -> None:
    where = f"study {shared.name!r} in {mask_password(shared.storage)}"
    deadline = time.monotonic() + SETTINGS_WAIT_S
    while (theirs := study.user_attrs.get(SEARCH_ATTR)) is None:
        if time.monotonic() > deadline:
            raise ValueError(
                f"{where} was not made by `ncflab tune` (it records no search settings); "
                "name another study with --study"
            )
        time.sleep(0.2)
    if len(study.directions) != 1 or study.direction.name != "MAXIMIZE":
        raise ValueError(f"{where} does not maximise one value; name another study with --study")
    diffs = [
        f"{key}: study has {theirs.get(key)!r}, this run {mine.get(key)!r}"
        for key in sorted(set(theirs) | set(mine))
        if theirs.get(key) != mine.get(key)
    ]
    if diffs:
        raise ValueError(
            f"{where} was made with other settings ({'; '.join(diffs)}); run with the same "
            "settings to join it, or name another study with --study"
        )


def store_trial(
    trial: Any, record: dict[str, Any], *, worker: str, threads: int, device: str
) -> None:
    """Keep what tune.json and a refit need on the trial, for every process to read."""
    trial.set_user_attr("valid", {k: float(v) for k, v in record["valid"].items()})
    trial.set_user_attr("seconds", record["seconds"])
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("threads", threads)
    trial.set_user_attr("device", device)


def counted(study: Any, below: int | None = None) -> int:
    """The trials that take a place in the budget: evaluated ones (complete, or failed on a
    non-finite score: as in a single process, they were run) and running ones. A trial that
    raised, or whose process died, frees its place; surplus trials (pruned) never held one."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=states)
        if (below is None or t.number < below)
        and (t.state == TrialState.RUNNING or "valid" in t.user_attrs)
    )


def _stop_when_spent(trials: int) -> Callable[[Any, Any], None]:
    """An Optuna callback stopping this process once the study's budget is taken. Running
    trials count, so a trial only starts for a free place; a trial started in the moment
    another process took the last one finds that out and is pruned (``tune_split``): the
    study never holds more than ``trials`` evaluated trials (the storage numbers trials in
    the order it creates them), and holds that many unless a trial raised or its process
    died (which frees its place for the next run)."""

    def stop(study: Any, _trial: Any) -> None:
        if counted(study) >= trials:
            study.stop()

    return stop


def _wait_for_running(optuna: Any, study: Any, poll_s: float = 1.0) -> None:
    """Wait until no trial of the study runs, so that every process picks its best among the
    same trials. A dead process's trial is failed once its heartbeat is stale."""
    from optuna.trial import TrialState

    said = False
    while True:
        with warnings.catch_warnings():  # fail_stale_trials is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        if not said:
            log.info("waiting for %d trial(s) still running in other processes", len(running))
            said = True
        time.sleep(poll_s)


def study_records(study: Any, space: dict[str, Any], own: set[int]) -> list[dict[str, Any]]:
    """Every evaluated trial of the study, from any process, as ``tune_split`` records them."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.FAIL)
    records = []
    for t in study.get_trials(deepcopy=False, states=states):
        attrs = t.user_attrs
        if "valid" not in attrs:
            continue  # raised before being scored
        records.append(
            {
                "number": t.number,
                "params": {name: t.params[name] for name in space},
                "valid": attrs["valid"],
                "seconds": attrs["seconds"],
                "worker": attrs.get("worker"),
                "this_process": t.number in own,
                "threads": attrs.get("threads"),
                "device": attrs.get("device"),
            }
        )
    return sorted(records, key=lambda r: r["number"])


def best_trial(records: list[dict[str, Any]], monitor: str) -> dict[str, Any] | None:
    """The record with the highest finite ``monitor``; the earliest trial on a tie, so that
    every process sharing a study picks the same one."""
    scored = [r for r in records if math.isfinite(float(r["valid"][monitor]))]
    if not scored:
        return None
    return max(scored, key=lambda r: (float(r["valid"][monitor]), -r["number"]))


def refit_trial(
    model: str,
    params: dict[str, Any],
    seed: int,
    split: Split,
    options: FitOptions,
    trial: dict[str, Any],
) -> Recommender:
    """Fit again the model another process fitted for ``trial``."""
    device = options.torch_device().type
    if trial.get("device") not in (None, device):
        log.warning(
            "trial %d was fitted on device %r, this process uses %r: the refit may differ a "
            "little numerically",
            trial["number"],
            trial["device"],
            device,
        )
    log.info("refitting trial %d %s (fitted by %s)", trial["number"], params, trial.get("worker"))
    with _torch_threads(trial.get("threads")):
        return build_model(model, params, seed).fit(split.train, options)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads (float sums are ordered by the thread count)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
