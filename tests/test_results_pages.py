"""The committed result pages are exactly what ``ncflab report`` makes from the committed
summaries: nothing under docs/results/ can be edited by hand without this failing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ncflab.reproduce.report import build_report, render_markdown, write_report
from ncflab.reproduce.spec import experiment_files, load_experiment

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "results").glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_a_results_page_is_regenerated_byte_for_byte(page: Path, tmp_path: Path) -> None:
    profile = re.search(r"\(profile `(\w+)`\)", page.read_text().splitlines()[0]).group(1)
    experiments = [load_experiment(p) for p in experiment_files(ROOT / "experiments", page.stem)]
    report = build_report(experiments, ROOT / "results", profile)
    assert render_markdown(report) == page.read_text()
    for path in write_report(report, tmp_path):
        if path.suffix == ".csv":  # PNG bytes depend on the matplotlib build, not on us
            committed = ROOT / "docs" / "results" / path.relative_to(tmp_path)
            assert path.read_text() == committed.read_text(), path.name


def test_there_are_pages_to_check() -> None:
    if not PAGES:
        pytest.skip("no generated pages committed yet")
    assert all(p.stem in ("jncf", "jca", "ncr") for p in PAGES)
