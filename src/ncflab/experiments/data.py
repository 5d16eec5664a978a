"""The split a run's config asks for: a named dataset, your own ratings file, or a published
split (named, or your own files), with the published split's quirks treated by the config's
rules and a missing validation part never passed over in silence.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from ncflab.config import ConfigError, RunConfig
from ncflab.data.datasets import DATASETS, load_dataset, load_split_files
from ncflab.data.filters import sparsity_subset
from ncflab.data.interactions import Interactions
from ncflab.data.splits import Split, carve_validation, split_from_frames, with_negatives
from ncflab.data.user_files import read_split_files, read_user_file
from ncflab.experiments.presets import Protocol, get_protocol, make_split

__all__ = ["QUIRK_DEFAULTS", "load_split", "resolve_config"]

log = logging.getLogger(__name__)

# How a named published split's quirks are treated unless the config says otherwise. NCF's
# ml-1m files list 156 users' own test item among their 99 negatives; NCF's evaluation scores
# the candidates as the keys of a dict, so such a duplicate counts once: "drop" gives the same
# ranking. The JCA authors' Yelp files hold duplicate rows and 4,109 test pairs that are also
# in train; their evaluation keeps them (masked as train items, never hit, counted in recall):
# "keep" reproduces the paper's figures, "clean" is the honest alternative.
QUIRK_DEFAULTS: dict[str, dict[str, str]] = {
    "ncf-ml-1m": {"bad_negatives": "drop"},
    "ncf-pinterest-20": {"bad_negatives": "drop"},
    "jca-yelp": {"overlap": "keep"},
    "jca-games": {"overlap": "keep"},
}


def resolve_config(config: RunConfig) -> RunConfig:
    """``config`` with everything a run folder must pin down made explicit: ``data_dir``,
    a dataset file and your own split's files as absolute paths; the protocol's patience and
    monitor where the config leaves them unset; the dataset's rules for its quirks. Unknown
    protocol names fail here, before any data is read."""
    protocol = get_protocol(config.protocol)
    data_dir = config.data_dir
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser().resolve())
    dataset = config.dataset
    if dataset not in DATASETS and _looks_like_path(dataset) and not config.data.files:
        if not Path(dataset).expanduser().is_file():
            raise FileNotFoundError(
                f"dataset {dataset!r} is neither a named dataset ({', '.join(sorted(DATASETS))})"
                " nor a file"
            )
        dataset = str(Path(dataset).expanduser().resolve())
    elif dataset not in DATASETS and not config.data.files:
        raise KeyError(
            f"unknown dataset {dataset!r}; known datasets: {sorted(DATASETS)} (or give the path "
            "of your own ratings file, or your own split with --train/--test)"
        )
    if config.data.files and dataset in DATASETS:
        raise ConfigError(
            f"data.train/test give a split of your own files, but dataset {dataset!r} names a "
            'registered dataset; give your split a name of its own (e.g. dataset = "my-split")'
        )
    files = {role: str(Path(p).expanduser().resolve()) for role, p in config.data.files.items()}
    for role, path in files.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"data.{role} file not found: {path}")
    quirks = {**QUIRK_DEFAULTS.get(config.dataset, {})}
    quirks.update({k: v for k, v in _quirks(config).items() if v is not None})
    data = dataclasses.replace(config.data, **files, **quirks)
    train = dataclasses.replace(
        config.train,
        patience=protocol.patience if config.train.patience is None else config.train.patience,
        monitor=config.train.monitor or protocol.monitor,
    )
    return dataclasses.replace(config, dataset=dataset, data_dir=data_dir, data=data, train=train)


def _quirks(config: RunConfig) -> dict[str, str | None]:
    d = config.data
    return {
        "bad_negatives": d.bad_negatives,
        "overlap": d.overlap,
        "without_valid": d.without_valid,
    }


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "." in Path(name).name


def load_split(config: RunConfig, protocol: Protocol | None = None) -> Split:
    """The split ``config`` asks for (see the module docstring); every random part drawn from
    ``config.split_seed``."""
    protocol = protocol or get_protocol(config.protocol)
    spec = DATASETS.get(config.dataset)
    if config.data.records is not None and (config.data.files or (spec and spec.fixed_split)):
        raise ConfigError(
            f"data.records={config.data.records} thins a dataset before it is split; "
            f"{config.dataset!r} is a published split whose parts are fixed"
        )
    if config.data.files:
        frames = read_split_files(
            {r: Path(p) for r, p in config.data.files.items()},
            columns=config.data.columns or None,
            sep=config.data.sep or None,
        )
        return _published(config, protocol, frames, valid_in_train=False)
    if spec is not None and spec.fixed_split:
        frames = load_split_files(config.dataset, data_dir=config.data_dir)
        return _published(config, protocol, frames, valid_in_train=spec.valid_in_train)
    if spec is not None:
        inter = load_dataset(config.dataset, data_dir=config.data_dir)
    else:
        frame = read_user_file(
            Path(config.dataset), columns=config.data.columns or None, sep=config.data.sep or None
        )
        inter = Interactions.from_frame(frame)
    if config.data.records is not None:
        n = len(inter)
        # Three records per user (train, validation, test) keep every user in the paper's
        # leave-one-out split, which J-NCF's Table 4 also does (same users in every version);
        # the paper's own removal rule keeps only one.
        inter = sparsity_subset(
            inter, config.data.records, seed=config.split_seed, min_user_records=3
        )
        log.info("thinned %s from %d to %d records (data.records)", config.dataset, n, len(inter))
    return make_split(protocol, inter, seed=config.split_seed)


def _published(
    config: RunConfig, protocol: Protocol, frames: dict, *, valid_in_train: bool
) -> Split:
    """A published split from its frames, its quirks treated by the config's rules."""
    split = split_from_frames(
        frames["train"],
        frames["test"],
        valid=frames.get("valid"),
        negatives=frames.get("negatives"),
        valid_in_train=valid_in_train,
        bad_negatives=config.data.bad_negatives or "error",
        overlap=config.data.overlap or "error",
    )
    if split.valid is None or not len(split.valid):
        rule = config.data.without_valid or "carve"
        if rule == "error":
            raise ConfigError(
                f"the split of {config.dataset!r} has no validation part; set "
                "data.without_valid to 'carve' (one by the protocol's rule) or 'epochs'"
            )
        if rule == "carve":
            split = carve_validation(split, protocol.split, config.split_seed)
            log.info(
                "the published split has no validation part: carved one from train by the "
                "%s protocol's rule (%s), %d records",
                protocol.name,
                protocol.split,
                len(split.valid) if split.valid is not None else 0,
            )
        else:
            log.warning(
                "the published split has no validation part and data.without_valid='epochs': "
                "no early stopping, every model trains all its epochs"
            )
    if protocol.n_negatives and split.negatives is None:
        split = with_negatives(split, protocol.n_negatives, config.split_seed)
    split.info["protocol"] = protocol.name
    return split
