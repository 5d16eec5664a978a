from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from typer.testing import CliRunner

from ncflab.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_unknown_names_are_clear_errors(tmp_path) -> None:
    res = _run("train", "-m", "bpx", "-d", "ml-100k", "-p", "ncf")
    assert res.exit_code == 2 and "unknown model 'bpx'" in res.output
    res = _run("train", "-m", "itempop", "-d", "ml-1m", "-p", "nfc")
    assert res.exit_code == 2 and "unknown protocol 'nfc'" in res.output
    res = _run("data", "info", "ml-2m")
    assert res.exit_code == 2 and "ml-2m" in res.output and "ml-1m" in res.output
    res = _run("train", "-m", "bpr", "--set", "params.factorz=8")
    assert res.exit_code == 2 and "factorz" in res.output


def test_data_list_names_every_dataset() -> None:
    res = _run("data", "list")
    assert res.exit_code == 0
    for name in ("ml-100k", "ml-1m", "ml-latest-small", "ml-20m", "jca-ml-1m", "ncf-ml-1m"):
        assert name in res.output


@pytest.mark.slow
def test_train_evaluate_recommend_on_ml100k(tmp_path, data_dir) -> None:
    out = tmp_path / "run"
    res = _run("train", "-m", "itempop", "-d", "ml-100k", "-p", "ncf", "-o", str(out))
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"HR@10", "NDCG@10"} and set(metrics["valid"]) == {
        "HR@10",
        "NDCG@10",
    }
    assert metrics["fingerprint"]["split"]
    for name in ("config.toml", "split.json", "per_user.csv", "log.txt", "model/config.json"):
        assert (out / name).is_file(), name
    res = _run("evaluate", str(out))
    assert res.exit_code == 0 and f"{metrics['test']['HR@10']:.4f}" in res.output
    res = _run("recommend", str(out), "-u", "1", "-k", "5")
    assert res.exit_code == 0 and res.output.count("\n│ 1 ") == 5
    res = _run("recommend", str(out), "-u", "100000")
    assert res.exit_code == 2 and "unknown user id" in res.output
    res = _run("recommend", str(out), "-u", "1", "-k", "0")
    assert res.exit_code == 2 and "k must be a positive integer" in res.output


@pytest.mark.slow
def test_data_info_and_split(tmp_path, data_dir) -> None:
    res = _run("data", "info", "ml-100k")
    assert res.exit_code == 0 and '"users": 943' in res.output
    res = _run("data", "split", "ml-100k", "-p", "jncf", "-o", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "s" / "split.json").read_text())
    assert info["protocol"] == "jncf" and info["fingerprint"]
    negatives = pd.read_csv(tmp_path / "s" / "negatives.csv")
    assert negatives.groupby("user").size().eq(100).all() and negatives["user"].nunique() == 943


def test_summarize_gives_mean_and_sample_std() -> None:
    from ncflab.experiments.run import summarize

    runs = [{"valid": {"HR@10": 0.5}, "test": {"HR@10": v}} for v in (0.2, 0.4, 0.6)]
    out = summarize(runs)
    assert out["test"]["HR@10"]["mean"] == pytest.approx(0.4)
    assert out["test"]["HR@10"]["std"] == pytest.approx(0.2)  # ddof=1
    assert out["valid"]["HR@10"]["std"] == 0.0 and out["test"]["HR@10"]["n"] == 3


@pytest.mark.slow
def test_repeat_writes_one_run_per_seed_and_a_summary(tmp_path, data_dir) -> None:
    out = tmp_path / "rep"
    res = _run(
        "train",
        "-m",
        "itempop",
        "-d",
        "ml-100k",
        "-p",
        "jncf",
        "-r",
        "2",
        "-s",
        "5",
        "-o",
        str(out),
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["HR@10"]["n"] == 2
    for seed in (5, 6):
        assert (out / f"seed-{seed}" / "metrics.json").is_file()
    assert "±" in res.output


@pytest.mark.slow
def test_rules_on_a_trained_pairwise_run(tmp_path, data_dir) -> None:
    out = tmp_path / "nbpr"
    args = ("-m", "nbpr", "-d", "ml-100k", "-p", "ncr", "-o", str(out))
    res = _run("train", *args, "--set", "params.epochs=1", "--set", "params.batch_size=4096")
    assert res.exit_code == 0, res.output
    test_hr = json.loads((out / "metrics.json").read_text())["test"]["HR@10"]
    res = _run("rules", str(out), "--position", "last")
    assert res.exit_code == 0, res.output
    # NBPR's relation is a score difference, hence transitive: both rules give the same ranking.
    assert f"{test_hr:.4f}" in res.output and res.output.count(f"{test_hr:.4f}") == 2
    assert "│ hit_agreement │ 1.0000" in res.output and "│ intransitive  │ 0.0000" in res.output
    res = _run("rules", str(out), "--position", "middle")
    assert res.exit_code == 2 and "middle" in res.output
    pop = tmp_path / "pop"
    assert (
        _run("train", "-m", "itempop", "-d", "ml-100k", "-p", "ncr", "-o", str(pop)).exit_code == 0
    )
    res = _run("rules", str(pop))
    assert res.exit_code == 2 and "'itempop'" in res.output


@pytest.mark.slow
def test_resume_finishes_a_killed_run_as_the_whole_run(
    tmp_path, data_dir, monkeypatch, caplog
) -> None:
    from ncflab.training import driver as training

    caplog.set_level(logging.INFO, logger="ncflab")  # as `ncflab` itself logs (main())
    args = ["train", "-m", "bpr", "-d", "ml-100k", "-p", "ncf", "--set", "params.epochs=4"]
    args += ["--set", "train.snapshot_seconds=0", "--set", "train.threads=1"]
    assert _run(*args, "-o", str(tmp_path / "whole")).exit_code == 0
    report = training._report

    def killed_after_epoch_2(record, *rest) -> None:  # noqa: ANN001
        report(record, *rest)
        if record["epoch"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_report", killed_after_epoch_2)
    res = _run(*args, "-o", str(tmp_path / "cut"))
    assert res.exit_code == 130  # what a Ctrl-C gives
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(training, "_report", report)
    res = _run(*args, "-o", str(tmp_path / "cut"))  # would overwrite the unfinished run
    assert res.exit_code == 2 and "ncflab resume" in res.output
    res = _run("resume", str(tmp_path / "cut"))
    assert res.exit_code == 0, res.output
    whole, cut = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "cut"))
    assert cut["test"] == whole["test"] and cut["valid"] == whole["valid"]
    assert cut["resumed"] and not whole["resumed"]
    epochs = [[(r["epoch"], r["loss"]) for r in m["history"]] for m in (whole, cut)]
    assert epochs[0] == epochs[1] and len(epochs[0]) == 4
    log = (tmp_path / "cut" / "log.txt").read_text()
    assert "resumed after epoch 2 of 4" in log and "epoch 1 loss" in log  # both processes'
    res = _run("resume", str(tmp_path / "cut"))
    assert res.exit_code == 2 and "finished run" in res.output
    res = _run("resume", str(tmp_path))
    assert res.exit_code == 2 and "not a run folder" in res.output
