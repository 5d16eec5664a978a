"""Results pages from committed cell summaries (``ncflab.reproduce.report``): the numbers
checked by hand, the paired tests against scipy and Holm, missing cells, byte-stable output."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ncflab.evaluation.stats import holm
from ncflab.reproduce.report import build_report, render_markdown, write_report
from ncflab.reproduce.runner import expected_config
from ncflab.reproduce.spec import load_experiment
from ncflab.reproduce.summary import summary_path, write_summary

TABLE = """
title = "Toy Table 2: HR@10 and NDCG@10"
protocol = "ncf"
datasets = ["ml-100k", "ml-1m"]
metrics = ["HR@10", "NDCG@10"]
seeds = 3

[[rows]]
id = "pop"
label = "ItemPop"
model = "itempop"
role = "baseline"
paper = { "ml-100k" = { "HR@10" = 0.40, "NDCG@10" = 0.20 } }

[[rows]]
id = "ease"
label = "EASE"
model = "ease"
role = "strong"

[[rows]]
id = "jncf"
label = "J-NCF"
model = "jncf"
paper = { "ml-100k" = { "HR@10" = 0.70 } }
"""

FIGURES = {
    "fig1": """
title = "Toy Figure 1: HR@10 by factors"
kind = "figure"
protocol = "ncf"
datasets = ["ml-100k"]
metrics = ["HR@10"]
seeds = 2
figure = { x = "factors", y = "HR@10" }

[[rows]]
id = "bpr"
label = "BPR"
model = "bpr"
grid = { factors = [8, 16] }
paper = { "factors=16|ml-100k" = { "HR@10" = 0.6 } }

[[rows]]
id = "pop"
label = "ItemPop"
model = "itempop"
role = "baseline"
""",
    "fig2": """
title = "Toy Figure 2: HR@N"
kind = "figure"
protocol = "ncf"
datasets = ["ml-100k"]
metrics = ["HR@10"]
seeds = 2
figure = { x = "cutoff", y = "HR" }

[[rows]]
id = "bpr"
model = "bpr"
paper = { "ml-100k" = { "HR@5" = 0.5 } }
""",
    "fig3": """
title = "Toy Figure 3: validation HR@10 by epoch"
kind = "figure"
protocol = "ncf"
datasets = ["ml-100k"]
metrics = ["HR@10"]
seeds = 1
figure = { x = "epoch", y = "HR@10" }

[[rows]]
id = "bpr"
model = "bpr"
""",
}

# Each row's chance that a user's held-out item is in its top 10: J-NCF clearly best.
HIT_RATE = {"pop": 0.30, "ease": 0.50, "jncf": 0.75}
ACTIVITY = (np.arange(200) * 37) % 23 + 1  # training records per user, with ties
PROVENANCE = {"ncflab": "0.1.0", "git_commit": "0123456789abcdef" * 2 + "+dirty",
              "python": "3.12.1", "torch": "2.5.1", "numpy": "2.1.0", "scipy": "1.14.1",
              "threads": 2, "device": "cpu"}  # fmt: skip


def _cell(results: Path, exp: str, row: str, dataset: str, seed: int, **extra) -> pd.DataFrame:
    """Write one cell's summary with synthetic per-user HR@10 and NDCG@10 of 200 users;
    returns the per-user frame."""
    rng = np.random.default_rng([zlib.crc32(f"{row}/{dataset}".encode()), seed])
    hit = (rng.random(200) < HIT_RATE.get(row, 0.5)).astype(float)
    per_user = pd.DataFrame(
        {"user": np.arange(200), "train_items": ACTIVITY, "HR@10": hit,
         "NDCG@10": hit / np.log2(rng.integers(2, 12, 200))}
    )  # fmt: skip
    test = {m: float(per_user[m].mean()) for m in ("HR@10", "NDCG@10")}
    record = {
        "experiment": f"toy/{exp}", "profile": "full", "row": row, "dataset": dataset,
        "seed": seed, "fingerprint": {"data": "d", "split": extra.pop("split", f"s-{dataset}")},
        "test": {**test, **extra.pop("test", {})}, "history": extra.pop("history", []),
        "provenance": PROVENANCE,
    }  # fmt: skip
    key = f"{row}/{dataset}/seed-{seed}"
    record["config"] = _config(results.parent / "experiments" / "toy" / f"{exp}.toml", key)
    write_summary(summary_path(results, "toy", exp, "full", key), record, per_user)
    return per_user


def _config(path: Path, key: str) -> dict:
    """The config a summary of cell ``key`` holds (the report ignores summaries of other
    settings)."""
    cells = {c.key: c for c in load_experiment(path).cells("full")}
    return expected_config(cells[key])


@pytest.fixture
def table(tmp_path: Path):
    """``experiments/toy/table2.toml`` and its summaries: every cell but J-NCF seed 2 on
    ml-100k; on ml-1m J-NCF's split differs from the others'."""
    folder = tmp_path / "experiments" / "toy"
    folder.mkdir(parents=True)
    (folder / "table2.toml").write_text(TABLE)
    results = tmp_path / "results"
    frames = {}
    for row in ("pop", "ease", "jncf"):
        for dataset in ("ml-100k", "ml-1m"):
            for seed in range(3):
                if (row, dataset, seed) == ("jncf", "ml-100k", 2):
                    continue
                split = "other" if (row, dataset) == ("jncf", "ml-1m") else f"s-{dataset}"
                frames[row, dataset, seed] = _cell(results, "table2", row, dataset, seed,
                                                   split=split)  # fmt: skip
    return load_experiment(folder / "table2.toml"), results, frames


def test_a_table_s_numbers_by_hand(table, tmp_path) -> None:
    exp, results, frames = table
    written = write_report(build_report([exp], results, "full"), tmp_path / "docs")
    page = (tmp_path / "docs" / "toy.md").read_text()
    csv = pd.read_csv(tmp_path / "docs" / "toy" / "table2.csv").fillna({"marker": ""})
    assert written == [tmp_path / "docs" / "toy" / "table2.csv", tmp_path / "docs" / "toy.md"]
    assert "Cells done: 17 / 18 (profile `full`)." in page
    assert len(csv) == 3 * 2 * 2  # rows × datasets × metrics

    def line(row: str, dataset: str, metric: str) -> pd.Series:
        return csv[(csv.row == row) & (csv.dataset == dataset) & (csv.metric == metric)].iloc[0]

    # J-NCF on ml-100k: seeds 0 and 1 only; mean, sample std (ddof 1), ours − paper.
    hr = [frames["jncf", "ml-100k", s]["HR@10"].mean() for s in (0, 1)]
    mean, std = (hr[0] + hr[1]) / 2, abs(hr[0] - hr[1]) / np.sqrt(2)  # ddof 1 of two values
    jncf = line("jncf", "ml-100k", "HR@10")
    assert (jncf["mean"], jncf["std"], jncf.n) == (pytest.approx(mean), pytest.approx(std), 2)
    assert jncf.paper == 0.70 and jncf["diff"] == pytest.approx(mean - 0.70, abs=1e-6)
    assert (
        f"| ml-100k | J-NCF | {mean:.4f} ± {std:.4f} (2) ▲ | 0.7000 | {mean - 0.7:+.4f} |" in page
    )
    pop = [frames["pop", "ml-100k", s]["NDCG@10"].mean() for s in range(3)]
    line_pop = line("pop", "ml-100k", "NDCG@10")
    assert line_pop["std"] == pytest.approx(np.std(pop, ddof=1), rel=1e-5)
    assert line_pop["diff"] == pytest.approx(np.mean(pop) - 0.20, rel=1e-5)
    assert np.isnan(line("ease", "ml-100k", "HR@10").paper)  # the paper has no EASE

    # The strongest baseline is EASE (HR@10 0.5 > ItemPop's 0.3); the others are tested
    # against it on per-user values averaged over seeds, p Holm-adjusted over the table.
    def users(row: str, dataset: str, metric: str) -> np.ndarray:
        seeds = [frames[k][metric] for k in frames if k[:2] == (row, dataset)]
        return np.mean(seeds, axis=0)

    tested = [("pop", "ml-100k"), ("jncf", "ml-100k"), ("pop", "ml-1m")]
    raw = [
        stats.ttest_rel(users(r, d, m), users("ease", d, m)).pvalue
        for d in ("ml-100k", "ml-1m") for r in ("pop", "jncf") if (r, d) in tested
        for m in ("HR@10", "NDCG@10")
    ]  # fmt: skip
    done = csv[csv.p.notna()]
    assert done.p.to_numpy() == pytest.approx(raw, rel=1e-5)
    assert done.p_adjusted.to_numpy() == pytest.approx(holm(raw), rel=1e-5)
    assert list(done.marker) == ["▼", "▼", "▲", "▲", "▼", "▼"]
    assert (csv[csv.row == "ease"].marker == "").all()
    # J-NCF on ml-1m ran on another split: not tested, and the page says why.
    assert np.isnan(line("jncf", "ml-1m", "HR@10").p_adjusted)
    assert "ml-1m: J-NCF and EASE were not run on one split" in page
    assert "(ml-100k: EASE; ml-1m: EASE)" in page and "this table's 6 comparisons" in page
    # Provenance and the commands that regenerate it.
    assert "- ncflab 0.1.0; commit(s) 0123456789ab+dirty" in page
    assert "- python 3.12.1; torch 2.5.1; numpy 2.1.0; scipy 1.14.1" in page
    assert "`ncflab reproduce toy --table table2 --profile full` then `ncflab report toy " in page


def test_missing_cells_are_dashes_and_the_page_is_stable(table, tmp_path) -> None:
    exp, results, _ = table
    (results / "toy" / "table2" / "full" / "ease" / "ml-1m").rename(tmp_path / "gone")
    report = build_report([exp], results, "full")
    page = render_markdown(report)
    assert "Cells done: 14 / 18" in page
    assert "| ml-1m | EASE | — |  |  | — |  |  |" in page
    assert "(ml-100k: EASE; ml-1m: ItemPop)" in page  # the strongest that finished
    first = write_report(report, tmp_path / "a")
    second = write_report(build_report([exp], results, "full"), tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def _figures(tmp_path: Path) -> tuple[list, Path]:
    folder = tmp_path / "experiments" / "toy"
    folder.mkdir(parents=True)
    results = tmp_path / "results"
    for name, text in FIGURES.items():
        (folder / f"{name}.toml").write_text(text)
    for seed in range(2):
        for row in ("bpr[factors=8]", "bpr[factors=16]", "pop"):
            _cell(results, "fig1", row, "ml-100k", seed)
        at_n = {f"HR@{n}": n / 10 + seed / 100 for n in range(1, 11)}
        _cell(results, "fig2", "bpr", "ml-100k", seed, test=at_n)
    history = [{"epoch": e, "loss": 1.0 / e, "metrics": {"HR@10": 0.1 * e}} for e in (1, 2, 3)]
    _cell(results, "fig3", "bpr", "ml-100k", 0, history=history)
    return [load_experiment(folder / f"{n}.toml") for n in FIGURES], results


def test_figures_are_drawn_and_their_numbers_written(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    exps, results = _figures(tmp_path)
    written = write_report(build_report(exps, results, "full"), tmp_path / "docs")
    pngs = [p for p in written if p.suffix == ".png"]
    assert [p.name for p in pngs] == ["fig1.png", "fig2.png", "fig3.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    page = (tmp_path / "docs" / "toy.md").read_text()
    assert "![Toy Figure 1: HR@10 by factors](toy/fig1.png)" in page
    # fig1: factors 8 then 16 (numeric order), the paper's point at 16, ItemPop at every x.
    assert "| factors | BPR | BPR paper | ItemPop |" in page
    points = pd.read_csv(tmp_path / "docs" / "toy" / "fig1.csv")
    assert list(points.x) == ["8", "16", "all"] and points.paper.iloc[1] == 0.6
    # fig2: HR@1 … HR@10 of two seeds, the paper's HR@5 beside.
    hr5 = [0.5, 0.51]
    assert f"| 5 | {np.mean(hr5):.4f} ± {np.std(hr5, ddof=1):.4f} (2) | 0.5000 |" in page
    # fig3: the validation history of seed 0.
    assert "| 3 | 0.3000 (1) |" in page
    again = write_report(build_report(exps, results, "full"), tmp_path / "again")
    for a, b in zip(written, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_the_cli_writes_the_pages(table, tmp_path, cli) -> None:
    pytest.importorskip("matplotlib")
    exp, results, _ = table
    out = tmp_path / "docs" / "results"
    res = cli("report", "toy", "--profile", "full", "--results", results, "--experiments",
              tmp_path / "experiments", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "toy.md").read_text() == render_markdown(build_report([exp], results, "full"))


def test_a_report_is_of_one_paper(table) -> None:
    exp, results, _ = table
    with pytest.raises(ValueError, match=r"one paper's experiments, got papers \['other', 'toy'\]"):
        build_report([exp, dataclasses.replace(exp, paper="other")], results, "full")


def test_nothing_run_yet_is_all_dashes(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    exps, _ = _figures(tmp_path)
    (tmp_path / "experiments" / "toy" / "table2.toml").write_text(TABLE)
    exps.append(load_experiment(tmp_path / "experiments" / "toy" / "table2.toml"))
    report = build_report(exps, tmp_path / "nothing", "smoke")  # smoke: ml-100k, one seed
    page = render_markdown(report)
    assert [(s.done, s.total) for s in report.sections] == [(0, 3), (0, 1), (0, 1), (0, 3)]
    assert "| ml-100k | ItemPop | — | 0.4000 |  | — | 0.2000 |  |" in page
    assert "ml-100k: no baseline or strong row has finished, so nothing is tested." in page
    assert "ncflab unknown" not in page and page.count("— no finished cells yet.") == 3
    written = write_report(report, tmp_path / "docs")
    assert sum(p.suffix == ".png" for p in written) == 3


def test_epochs_chosen_on_test_are_labelled(table, tmp_path) -> None:
    exp, results, _ = table
    path = results / "toy" / "table2" / "full" / "ease" / "ml-100k" / "seed-0.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "selected_on": "test"}))
    page = render_markdown(build_report([exp], results, "full"))
    assert "| ml-100k | EASE (epochs chosen on test) |" in page
    assert "| ml-1m | EASE |" in page


VIEWS = {
    "table7": """
title = "Toy Table 7: by activity"
source = "table2"
view = "activity"
groups = [0.1, 0.5]
metrics = ["HR@10", "NDCG@10"]

[[rows]]
id = "jncf"
paper = { "10%|ml-100k" = { "HR@10" = 0.8 } }

[[rows]]
id = "ease"

[[rows]]
id = "pop"
label = "Popularity"
""",
    "table8": """
title = "Toy Table 8: time"
source = "table2"
view = "timing"
metrics = ["fit_seconds", "best_seconds", "epoch_seconds", "rank_seconds_per_user"]

[[rows]]
id = "jncf"
paper = { "ml-100k" = { "epoch_seconds" = 10.925 } }
""",
}


def _views(table, tmp_path: Path) -> list:
    folder = tmp_path / "experiments" / "toy"
    for name, text in VIEWS.items():
        (folder / f"{name}.toml").write_text(text)
    return [load_experiment(folder / f"{name}.toml") for name in VIEWS]


def test_an_activity_view_by_hand(table, tmp_path) -> None:
    _, results, frames = table
    view, _ = _views(table, tmp_path)
    assert view.cells("full")[0].experiment.name == "table2"  # the source's cells
    section = build_report([view], results, "full").sections[0]
    csv = section.table
    # Users ranked by training records (ties by user id): the first 20 / 100 of 200.
    ranked = np.lexsort((np.arange(200), ACTIVITY))
    group = {"10%": np.sort(ranked[:20]), "50%": np.sort(ranked[:100])}

    def users(row: str, dataset: str, metric: str, name: str) -> np.ndarray:
        seeds = [frames[k][metric].to_numpy() for k in frames if k[:2] == (row, dataset)]
        return np.mean(seeds, axis=0)[group[name]]

    line = csv[(csv.row == "jncf") & (csv.dataset == "ml-100k") & (csv.group == "10%")
               & (csv.metric == "HR@10")].iloc[0]  # fmt: skip
    per_seed = [frames["jncf", "ml-100k", s]["HR@10"].to_numpy()[group["10%"]].mean()
                for s in (0, 1)]  # fmt: skip
    assert line["mean"] == pytest.approx(np.mean(per_seed)) and line.n == 2
    assert line.paper == 0.8 and line.label == "J-NCF"
    assert set(csv.label) == {"J-NCF", "EASE", "Popularity"}  # a view's label wins
    # Each group tested against its own strongest baseline, Holm over every test of the view.
    tested = csv[csv.p.notna()]
    raw = []
    for d, name, r, m in zip(tested.dataset, tested.group, tested.row, tested.metric,
                             strict=True):  # fmt: skip
        ref = csv[(csv.dataset == d) & (csv.group == name) & (csv.metric == "HR@10")
                  & csv.role.isin(["baseline", "strong"])]  # fmt: skip
        best = ref.loc[ref["mean"].idxmax()].row
        raw.append(stats.ttest_rel(users(r, d, m, name), users(best, d, m, name)).pvalue)
    assert tested.p.to_numpy() == pytest.approx(raw, rel=1e-5)
    assert tested.p_adjusted.to_numpy() == pytest.approx(holm(raw), rel=1e-5)
    page = render_markdown(build_report([view], results, "full"))
    assert "| Dataset | Users | Row | HR@10 | paper | Δ |" in page
    assert "| ml-100k | 10% | J-NCF |" in page


def test_an_activity_view_needs_the_users_activity(table, tmp_path) -> None:
    _, results, _ = table
    view, _ = _views(table, tmp_path)
    file = results / "toy" / "table2" / "full" / "ease" / "ml-100k" / "seed-0.per_user.csv.gz"
    pd.read_csv(file).drop(columns="train_items").to_csv(file, index=False)
    with pytest.raises(ValueError, match="no train_items column .* run its cell again"):
        build_report([view], results, "full")


def test_a_timing_view_from_the_histories(tmp_path) -> None:
    folder = tmp_path / "experiments" / "toy"
    folder.mkdir(parents=True)
    (folder / "table2.toml").write_text(TABLE)
    results = tmp_path / "results"
    history = [{"epoch": e, "seconds": 2.0 * e, "eval_seconds": 0.4} for e in (1, 2, 3, 4)]
    for seed in range(3):
        _cell(results, "table2", "jncf", "ml-100k", seed, history=history)
    path = results / "toy" / "table2" / "full" / "jncf" / "ml-100k" / "seed-0.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "fit_seconds": 30.0, "best_epoch": 2}))
    timing = _views(None, tmp_path)[1]
    csv = build_report([timing], results, "full").sections[0].table
    got = {m: (v, n) for m, v, n in zip(csv.metric, csv["mean"], csv.n, strict=True)
           if not np.isnan(v)}  # fmt: skip
    assert got["fit_seconds"] == (30.0, 1)  # only seed 0 recorded one
    assert got["epoch_seconds"] == (pytest.approx(5.0), 3)
    # Training up to the chosen epoch: epochs 1-2 for seed 0, all four without a choice.
    assert got["best_seconds"][0] == pytest.approx((6.0 + 20.0 + 20.0) / 3)
    assert got["rank_seconds_per_user"][0] == pytest.approx(0.4 / 200)
    page = render_markdown(build_report([timing], results, "full"))
    assert "| ml-100k | J-NCF | 30 (1) |  | 15.33 ± 8.1 (3) |  | 5 ± 0 (3) | 10.93 |" in page
    assert "▲" not in page and "comparisons" not in page


def test_reference_rows_are_shown_never_tested(table, tmp_path) -> None:
    exp, results, _ = table
    folder = tmp_path / "experiments" / "toy"
    (folder / "table2.toml").write_text(
        TABLE + '\n[[rows]]\nid = "jncf-on-test"\nlabel = "J-NCF"\nmodel = "jncf"\n'
        'role = "reference"\ntrain = { select_on = "test" }\n'
    )
    for seed in range(2):
        _cell(results, "table2", "jncf-on-test", "ml-100k", seed)
    exp = load_experiment(folder / "table2.toml")
    csv = build_report([exp], results, "full").sections[0].table
    ref = csv[csv.row == "jncf-on-test"]
    assert ref["mean"].notna().any() and ref.p.isna().all()
    assert int(csv.p.notna().sum()) == 6  # as without the reference row


def test_a_figure_of_another_file_s_cells(table, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    _, results, frames = table
    folder = tmp_path / "experiments" / "toy"
    (folder / "curve.toml").write_text(
        'title = "Toy curve"\nkind = "figure"\nsource = "table2"\nmetrics = ["HR@10"]\n'
        '[figure]\nx = "cutoff"\ny = "HR"\n'
    )
    exp = load_experiment(folder / "curve.toml")
    written = write_report(build_report([exp], results, "full"), tmp_path / "docs")
    assert [p.name for p in written] == ["curve.csv", "curve.png", "toy.md"]
    points = pd.read_csv(written[0])
    jncf = points[(points.series == "J-NCF") & (points.dataset == "ml-100k")].iloc[0]
    hr = [frames["jncf", "ml-100k", s]["HR@10"].mean() for s in (0, 1)]
    assert (jncf.x, jncf.n) == (10, 2) and jncf["mean"] == pytest.approx(np.mean(hr))
    assert jncf.paper == 0.70  # the source row's figure at that cut-off
