"""The experiment files under experiments/: they load, every row they run builds its model, and
every figure copied from a paper names one of the file's datasets and metrics."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ncflab.data.datasets import DATASETS
from ncflab.evaluation.metrics import METRICS
from ncflab.experiments.presets import PROTOCOLS
from ncflab.models import MODELS
from ncflab.reproduce.spec import HITS_STATS, PROFILES, TIMINGS, Experiment, load_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
FILES = sorted(EXPERIMENTS.glob("*/*.toml"))
PAPERS_TEXT = ROOT.parent / "shared" / "papers"  # the papers' full texts, where present
STRONG = {"ease", "ials", "slim", "rp3beta"}
# What NCR's rule comparison measures (ncflab.experiments.ncr.compare_rules at k = 10).
RULES = {f"{m}@10 {r}" for m in ("HR", "NDCG") for r in ("alg1", "wins")} | {
    "hit_agreement", "topk_overlap", "intransitive", "users"}  # fmt: skip
# Metrics of the summaries beyond the per-user ones: F1avg@K (JCA's F1 of the mean P and R).
DERIVED = {"F1avg": "F1"}


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.stem}" for p in paths]


@pytest.fixture(scope="module", params=FILES, ids=_ids(FILES))
def experiment(request) -> Experiment:
    return load_experiment(request.param)


def test_every_paper_has_experiment_files() -> None:
    assert {p.parent.name for p in FILES} >= {"jncf", "jca", "ncr"}


def test_protocol_datasets_and_metrics_are_known(experiment: Experiment) -> None:
    protocol = PROTOCOLS.get(experiment.protocol)
    assert protocol is not None, f"unknown protocol {experiment.protocol!r}"
    datasets = set(experiment.datasets)
    for profile in experiment.profiles.values():
        datasets |= set(profile.datasets or [])
    assert datasets <= set(DATASETS), sorted(datasets - set(DATASETS))
    if experiment.view in ("timing", "hits", "rules"):  # figures of their own, not metrics
        own = {"timing": TIMINGS, "hits": HITS_STATS, "rules": RULES}[experiment.view]
        assert set(experiment.metrics) <= set(own)
        return
    for metric in experiment.metrics:
        name, _, k = metric.partition("@")
        base = DERIVED.get(name, name)
        assert base in METRICS and base in protocol.metrics, metric
        assert k.isdigit() and int(k) in protocol.ks, f"{metric}: the protocol has {protocol.ks}"
    assert len(set(experiment.metrics)) == len(experiment.metrics)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_cell_builds_its_model(experiment: Experiment, profile: str) -> None:
    cells = experiment.cells(profile)
    seen = set()
    for cell in cells:
        assert cell.dataset in DATASETS
        key = (cell.row.id, repr(sorted(cell.params.items())))
        if key in seen:
            continue
        seen.add(key)
        assert cell.row.model in MODELS, cell.row.model
        MODELS[cell.row.model](**cell.params)  # unknown fields, bad types and ranges raise
        if cell.row.tune:
            space = getattr(MODELS[cell.row.model], "search_space", None)
            assert space, f"{cell.row.id}: tune needs the model's search space"
    if profile == "full" and not experiment.source:
        n_rows = sum(len(r.expand()) for r in experiment.rows)
        assert len(cells) == n_rows * len(experiment.datasets) * experiment.seeds


def test_profiles_name_existing_rows(experiment: Experiment) -> None:
    ids = {r.id for r in experiment.rows}
    for name, profile in experiment.profiles.items():
        assert set(profile.rows or []) <= ids, (name, sorted(set(profile.rows or []) - ids))


def test_paper_figures_name_the_files_datasets_and_metrics(experiment: Experiment) -> None:
    datasets, metrics = set(experiment.datasets), set(experiment.metrics)
    if experiment.view == "activity":  # keyed "<group>|<dataset>"
        groups = {f"{g * 100:g}%" for g in experiment.groups}
        datasets = {f"{g}|{d}" for g in groups for d in datasets}
    for base in experiment.rows:
        if experiment.source:  # a view's rows are its source's, shown with their figures
            base = dataclasses.replace(base, grid={})
        expanded = base.expand()
        # A grid row's figures are keyed "<grid tag>|<dataset>": each must meet one grid point.
        n_keys = sum(len(r.paper) for r in expanded)
        assert n_keys == len(base.paper), f"{base.id}: paper keys that match no grid point"
        for row in expanded:
            for dataset, values in row.paper.items():
                assert dataset in datasets, f"{row.id}: {dataset} is not one of {sorted(datasets)}"
                assert set(values) <= metrics, f"{row.id}: {sorted(set(values) - metrics)}"
                if experiment.view != "timing":  # timings are seconds
                    assert all(0.0 < v <= 1.0 for v in values.values()), (row.id, values)


def test_tables_carry_the_strong_baselines(experiment: Experiment) -> None:
    if experiment.kind != "table" or experiment.source:
        pytest.skip("figures need not; a view shows its source's rows")
    strong = {r.model: r for r in experiment.rows if r.role == "strong"}
    assert set(strong) >= STRONG
    assert all(strong[m].tune >= 1 for m in STRONG)


def test_figures_vary_what_they_plot(experiment: Experiment) -> None:
    if experiment.figure is None:
        pytest.skip("a table")
    x = experiment.figure.x
    rows = experiment.origin.rows if experiment.origin else experiment.rows
    assert x in ("cutoff", "epoch") or any(x in r.grid for r in rows), x
    if x == "cutoff":  # y names the family: Precision for Precision@1, @5, @10
        family = experiment.figure.y.split("@")[0]
        assert any(m.split("@")[0] == family for m in experiment.metrics)
    else:
        assert experiment.figure.y in experiment.metrics


def test_paper_figures_are_printed_in_the_paper(experiment: Experiment) -> None:
    """Every copied figure appears in the paper's text as printed (".6829" or "0.5661")."""
    texts = sorted(PAPERS_TEXT.glob(f"{experiment.paper}-*.txt"))
    if not texts:
        pytest.skip(f"no text of the {experiment.paper} paper in {PAPERS_TEXT}")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", texts[0].read_text())  # 5,451.671 → 5451.671
    printed = set(re.findall(r"(?<![\d.])\d*\.\d+", text))
    numbers = {float(s) for s in printed}
    for row in experiment.rows:
        for values in row.paper.values():
            for metric, value in values.items():
                assert value in numbers, f"{row.id} {metric} = {value} is not in the paper"
