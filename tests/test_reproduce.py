"""Reproductions: cells run once, a half-finished reproduction continues, summaries are kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ncflab.reproduce.runner import run_experiment_cells
from ncflab.reproduce.spec import load_experiment
from ncflab.reproduce.summary import read_per_user, read_summaries

EXPERIMENT = """
title = "A toy table"
protocol = "ncf"
datasets = ["ml-100k"]
metrics = ["HR@10", "NDCG@10"]
seeds = 2
train = { snapshot_seconds = 0.0 }

[profiles.quick]
seeds = 1

[[rows]]
id = "pop"
label = "ItemPop"
model = "itempop"
role = "baseline"
paper = { "ml-100k" = { "HR@10" = 0.40 } }

[[rows]]
id = "bpr"
label = "BPR"
model = "bpr"
params = { epochs = 2, factors = 8 }

[[rows]]
id = "bpr-grid"
label = "BPR"
model = "bpr"
params = { epochs = 2 }
grid = { factors = [4, 8] }
"""


@pytest.fixture
def toy(tmp_path: Path) -> tuple[Path, Path]:
    """A MovieLens-100K-shaped file of 80 users × 200 items in a data folder, and the
    experiment file ``experiments/toy/table.toml``."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 81):
        items = rng.choice(np.arange(1, 201), size=15, replace=False)
        lines += [f"{user}\t{i}\t4\t{1000 + t}" for t, i in enumerate(items)]
    (tmp_path / "data" / "ml-100k").mkdir(parents=True)
    (tmp_path / "data" / "ml-100k" / "u.data").write_text("\n".join(lines) + "\n")
    (tmp_path / "experiments" / "toy").mkdir(parents=True)
    (tmp_path / "experiments" / "toy" / "table.toml").write_text(EXPERIMENT)
    return tmp_path / "data", tmp_path / "experiments" / "toy" / "table.toml"


def _run(tmp_path: Path, data: Path, path: Path, profile: str = "full") -> list[str]:
    outcomes = run_experiment_cells(
        load_experiment(path), profile=profile, results=tmp_path / "results",
        runs_root=tmp_path / "runs", data_dir=str(data),
    )  # fmt: skip
    return [o.status for o in outcomes]


def test_a_reproduction_runs_each_cell_once_and_continues_after_a_kill(tmp_path, toy) -> None:
    data, path = toy
    assert load_experiment(path).cells("full")[-1].key == "bpr-grid[factors=8]/ml-100k/seed-1"
    assert _run(tmp_path, data, path) == ["ran"] * 8  # 4 rows (a grid of 2) × 2 seeds
    assert _run(tmp_path, data, path) == ["done"] * 8  # nothing is run twice
    summaries = read_summaries(tmp_path / "results" / "toy" / "table" / "full")
    assert len(summaries) == 8
    first = summaries[0]
    assert first["fingerprint"]["split"] and first["provenance"]["ncflab"]
    assert set(read_per_user(first).columns) >= {"user", "HR@10", "NDCG@10"}
    # All rows of a dataset share one split, so they pair user by user.
    assert len({s["fingerprint"]["split"] for s in summaries}) == 1
    # A half-finished reproduction: one summary lost; one run killed mid-training.
    results = tmp_path / "results" / "toy" / "table" / "full"
    (results / "pop" / "ml-100k" / "seed-0.json").unlink()
    killed = tmp_path / "runs" / "toy" / "table" / "full" / "bpr" / "ml-100k" / "seed-1"
    (results / "bpr" / "ml-100k" / "seed-1.json").unlink()
    before = json.loads((killed / "metrics.json").read_text())["test"]
    (killed / "metrics.json").unlink()
    statuses = _run(tmp_path, data, path)
    assert statuses.count("done") == 6
    assert sorted(s for s in statuses if s != "done") == ["resumed", "summarised"]
    again = json.loads((results / "bpr" / "ml-100k" / "seed-1.json").read_text())
    assert again["test"] == before  # the resumed run ends as the whole run did


def test_a_changed_setting_makes_a_cell_run_again(tmp_path, toy) -> None:
    data, path = toy
    assert _run(tmp_path, data, path, "quick") == ["ran"] * 4
    path.write_text(EXPERIMENT.replace("epochs = 2, factors = 8", "epochs = 3, factors = 8"))
    from ncflab.reproduce.report import build_report, render_markdown

    # The old summary is not the cell's figure any more: the report leaves it out.
    page = render_markdown(build_report([load_experiment(path)], tmp_path / "results", "quick"))
    assert "Cells done: 3 / 4" in page
    assert _run(tmp_path, data, path, "quick") == ["done", "ran", "done", "done"]


def test_a_killed_run_continues_at_another_thread_count(tmp_path, toy) -> None:
    data, path = toy
    exp = load_experiment(path)
    kw = {"profile": "quick", "results": tmp_path / "results", "runs_root": tmp_path / "runs",
          "data_dir": str(data)}  # fmt: skip
    assert [o.status for o in run_experiment_cells(exp, threads=2, **kw)] == ["ran"] * 4
    results = tmp_path / "results" / "toy" / "table" / "quick"
    killed = tmp_path / "runs" / "toy" / "table" / "quick" / "bpr" / "ml-100k" / "seed-0"
    (results / "bpr" / "ml-100k" / "seed-0.json").unlink()
    (killed / "metrics.json").unlink()
    # The thread count is the machine's, not the cell's: the run is resumed, not redone.
    statuses = [o.status for o in run_experiment_cells(exp, threads=1, **kw)]
    assert statuses == ["done", "resumed", "done", "done"]


def test_a_view_runs_its_source_s_cells_and_a_thinned_dataset_keeps_its_users(
    tmp_path, toy
) -> None:
    data, path = toy
    path.write_text(
        EXPERIMENT.replace('id = "pop"', 'id = "pop"\ngrid = { "data.records" = [900, 600] }')
    )
    view = path.parent / "view.toml"
    view.write_text(
        'title = "By activity"\nsource = "table"\nview = "activity"\ngroups = [0.5, 1.0]\n'
        'metrics = ["HR@10"]\n\n[[rows]]\nid = "pop"\n'
    )
    exp = load_experiment(view)
    assert exp.protocol == "ncf" and exp.datasets == ["ml-100k"]
    outcomes = run_experiment_cells(
        exp, profile="quick", results=tmp_path / "results", runs_root=tmp_path / "runs",
        data_dir=str(data),
    )  # fmt: skip
    assert [o.status for o in outcomes] == ["ran", "ran"]
    assert {o.cell.experiment.name for o in outcomes} == {"table"}  # kept as the source's
    folder = tmp_path / "results" / "toy" / "table" / "quick"
    for records in (900, 600):
        file = folder / f"pop[data.records={records}]" / "ml-100k" / "seed-0.json"
        summary = json.loads(file.read_text())
        assert sum(summary["data"].values()) == records  # train + valid + test
        assert summary["config"]["data"] == {"records": records}
        per_user = read_per_user({**summary, "_path": str(file)})
        assert len(per_user) == 80 and per_user["train_items"].min() >= 1


ANALYSED = """
title = "Analyses of trained models"
protocol = "ncf"
datasets = ["ml-100k"]
metrics = ["HR@10"]
seeds = 1

[[rows]]
id = "pop"
model = "itempop"
role = "baseline"
analyses = ["hits@10"]

[[rows]]
id = "bpr"
model = "bpr"
params = { epochs = 2, factors = 8 }
analyses = ["hits@10"]

[[rows]]
id = "nbpr"
model = "nbpr"
params = { epochs = 1, factors = 8 }
analyses = ["rules"]
"""


def test_analyses_are_kept_in_summaries_and_views_read_them(tmp_path, toy) -> None:
    from ncflab.experiments.compare import hits_difference_rate, top_k_hits
    from ncflab.experiments.ncr import compare_rules
    from ncflab.experiments.run import load_run
    from ncflab.reproduce.report import build_report, render_markdown

    data, path = toy
    path.write_text(ANALYSED)
    (path.parent / "hits.toml").write_text(
        'title = "Hits"\nsource = "table"\nview = "hits"\npair = ["pop", "bpr"]\n'
        'metrics = ["users", "no_hit", "above_0.2", "mean_rate"]\n'
    )
    (path.parent / "rules.toml").write_text(
        'title = "Rules"\nsource = "table"\nview = "rules"\n'
        'metrics = ["HR@10 alg1", "HR@10 wins", "hit_agreement"]\n\n[[rows]]\nid = "nbpr"\n'
    )
    kw = {"profile": "full", "results": tmp_path / "results", "runs_root": tmp_path / "runs",
          "data_dir": str(data)}  # fmt: skip
    assert [o.status for o in run_experiment_cells(load_experiment(path), **kw)] == ["ran"] * 3
    folder = tmp_path / "results" / "toy" / "table" / "full"
    summaries = {s["row"]: s for s in read_summaries(folder)}
    runs = tmp_path / "runs" / "toy" / "table" / "full"
    # The rules analysis is compare_rules on the trained model, as `ncflab rules` runs it.
    _, split, nbpr = load_run(runs / "nbpr" / "ml-100k" / "seed-0", data_dir=str(data))
    expected = compare_rules(nbpr, split, part="test", k=10, position="random", seed=0)
    kept = summaries["nbpr"]["analyses"]["rules"]
    assert {k: kept[k] for k in expected} == pytest.approx(expected)
    # The hits view's rates are compare's hits difference rates of the two trained models.
    models = [
        load_run(runs / r / "ml-100k" / "seed-0", data_dir=str(data))[2] for r in ("pop", "bpr")
    ]
    rates = hits_difference_rate(*(top_k_hits(m, split, 10) for m in models))
    report = build_report(
        [load_experiment(path.parent / "hits.toml")], tmp_path / "results", "full"
    )
    got = dict(zip(report.sections[0].table.metric, report.sections[0].table["mean"], strict=True))
    defined = rates[~np.isnan(rates)]
    assert got["users"] == len(rates) == 80 and got["no_hit"] == np.isnan(rates).sum()
    assert got["above_0.2"] == pytest.approx((defined > 0.2).mean())
    assert got["mean_rate"] == pytest.approx(defined.mean())
    rules = build_report(
        [load_experiment(path.parent / "rules.toml")], tmp_path / "results", "full"
    )
    page = render_markdown(rules)
    assert f"| ml-100k | nbpr | {expected['HR@10 alg1']:.4f} (1) |" in page
    # A row that gains an analysis later is analysed from its finished run, not trained again.
    path.write_text(ANALYSED.replace('analyses = ["rules"]', 'analyses = ["rules", "hits@10"]'))
    statuses = [o.status for o in run_experiment_cells(load_experiment(path), **kw)]
    assert statuses == ["done", "done", "summarised"]


def test_a_view_names_rows_with_the_analysis_it_needs(tmp_path, toy) -> None:
    from ncflab.typed import ConfigError

    _, path = toy
    path.write_text(ANALYSED)
    (path.parent / "hits.toml").write_text(
        'title = "Hits"\nsource = "table"\nview = "hits"\npair = ["pop", "nbpr"]\n'
        'metrics = ["users"]\n'
    )
    with pytest.raises(ConfigError, match=r'needs rows of table with analyses = \["hits@10"\]'):
        load_experiment(path.parent / "hits.toml")


def test_a_missing_dataset_fails_its_cells_only(tmp_path, toy, monkeypatch) -> None:
    monkeypatch.delenv("NCFLAB_DATA_DIR", raising=False)  # ml-1m must be nowhere here
    monkeypatch.setenv("NCFLAB_CACHE_DIR", str(tmp_path / "cache"))
    data, path = toy
    path.write_text(EXPERIMENT.replace('datasets = ["ml-100k"]', 'datasets = ["ml-100k", "ml-1m"]'))
    outcomes = run_experiment_cells(
        load_experiment(path), profile="quick", results=tmp_path / "results",
        runs_root=tmp_path / "runs", data_dir=str(data),
    )  # fmt: skip
    failed = [o for o in outcomes if o.status == "failed"]
    assert {o.cell.dataset for o in failed} == {"ml-1m"} and len(failed) == 4
    assert "ml-1m" in failed[0].error


@pytest.mark.slow
def test_the_smoke_profile_runs_every_papers_tables_and_reports(tmp_path, data_dir) -> None:
    """Every experiment file's machinery end to end on ml-100k (one seed, one epoch, two
    tuning trials): each cell runs and each paper's report builds."""
    from ncflab.reproduce.report import build_report, write_report
    from ncflab.reproduce.spec import experiment_files

    root = Path(__file__).resolve().parents[1] / "experiments"
    for paper in ("jncf", "jca", "ncr"):
        experiments = [load_experiment(p) for p in experiment_files(root, paper)]
        for experiment in experiments:
            outcomes = run_experiment_cells(
                experiment, profile="smoke", results=tmp_path / "results",
                runs_root=tmp_path / "runs", threads=2,
            )  # fmt: skip
            failed = [(o.cell.key, o.error) for o in outcomes if o.status == "failed"]
            assert not failed, (experiment.name, failed)
        written = write_report(build_report(experiments, tmp_path / "results", "smoke"),
                               tmp_path / "docs")  # fmt: skip
        assert (tmp_path / "docs" / f"{paper}.md") in written


def test_print_commands_lists_unfinished_cells_each_runnable_alone(tmp_path, toy, cli) -> None:
    import shlex

    data, path = toy
    where = ["--results", tmp_path / "results", "--runs", tmp_path / "runs",
             "--experiments", path.parents[1], "--data-dir", data]  # fmt: skip
    res = cli("reproduce", "toy", "--profile", "quick", "--print-commands", *where)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    keys = [c.key for c in load_experiment(path).cells("quick")]
    assert len(lines) == len(keys) == 4
    assert all(f"--cell {shlex.quote(k)}" in line for k, line in zip(keys, lines, strict=True))
    # A printed command runs exactly its cell: afterwards it is no longer listed.
    args = shlex.split(lines[1])
    assert args[:2] == ["ncflab", "reproduce"]
    res = cli(*args[1:])
    assert res.exit_code == 0 and "1/1 cells done" in res.output, res.output
    again = cli("reproduce", "toy", "--profile", "quick", "--print-commands", *where)
    assert again.output.splitlines() == [lines[0], *lines[2:]]
    res = cli("reproduce", "toy", "--cell", "nothing/ml-100k/seed-0", *where)
    assert res.exit_code == 2 and "no cell ['nothing/ml-100k/seed-0']" in res.output
