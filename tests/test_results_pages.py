"""The committed result pages are exactly what ``ncflab report`` makes from the committed
summaries: nothing under docs/results/ can be edited by hand without this failing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ncflab.cli.reproduce import results_folder
from ncflab.reproduce.glance import glance_markdown, update_readme
from ncflab.reproduce.report import build_report, render_markdown, write_report
from ncflab.reproduce.spec import experiment_files, load_experiment

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "results").rglob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_a_results_page_is_regenerated_byte_for_byte(page: Path, tmp_path: Path) -> None:
    profile = re.search(r"\(profile `(\w+)`\)", page.read_text().splitlines()[0]).group(1)
    experiments = [load_experiment(p) for p in experiment_files(ROOT / "experiments", page.stem)]
    report = build_report(experiments, ROOT / "results", profile)
    assert render_markdown(report) == page.read_text()
    for path in write_report(report, tmp_path):
        if path.suffix == ".csv":  # PNG bytes depend on the matplotlib build, not on us
            committed = page.parent / path.relative_to(tmp_path)
            assert path.read_text() == committed.read_text(), path.name


def test_there_are_pages_to_check() -> None:
    if not PAGES:
        pytest.skip("no generated pages committed yet")
    assert all(p.stem in ("jncf", "jca", "ncr") for p in PAGES)
    # A profile's pages sit where `ncflab report` puts them.
    for page in PAGES:
        profile = re.search(r"\(profile `(\w+)`\)", page.read_text().splitlines()[0]).group(1)
        assert page.parent == ROOT / results_folder(profile), page


def test_the_readme_glance_is_regenerated(tmp_path: Path) -> None:
    papers = sorted(p.name for p in (ROOT / "experiments").iterdir() if p.is_dir())
    every = {n: [load_experiment(p) for p in experiment_files(ROOT / "experiments", n)]
             for n in papers}  # fmt: skip
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    assert update_readme(readme, glance_markdown(every, ROOT / "results"))
    assert readme.read_text() == (ROOT / "README.md").read_text()
