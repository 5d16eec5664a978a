"""Every class of user mistake gets one line and exit status 2, never a traceback; an
unexpected error is one line naming the bug-report file (``--debug`` prints the traceback)."""

from __future__ import annotations

import json

import pytest

from ncflab.config import load_config

BPR = ["train", "-m", "bpr", "-p", "ncf", "--set", "params.epochs=2", "--set", "params.factors=4"]


def _one_line_error(res, *words: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for w in words:
        assert w in res.output, (w, res.output)


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("train.refit=maybe", ["train.refit", "boolean", "'maybe'"]),
        ("params.factors=1.5", ["params.factors", "integer", "1.5"]),
        ("params.n_neg=1.7", ["params.n_neg", "integer", "1.7"]),
        ("seed=abc", ["seed", "integer", "'abc'"]),
        ("train.patience=abc", ["train.patience", "integer", "'abc'"]),
        ("train.patience=-3", ["train.patience", ">= 0", "-3"]),
        ("params.lr=0", ["params.lr", "> 0", "0"]),
        ("params.lr=inf", ["params.lr", "finite", "inf"]),
        ("params.lr=nan", ["params.lr", "finite", "nan"]),
        ("train.device=tpu", ["train.device", "'tpu'"]),
        ("data.bad_negatives=warn", ["data.bad_negatives", "'warn'", "drop"]),
        ("train.bogus=1", ["unknown train option", "bogus"]),
        ("params.factorz=8", ["factorz"]),
        ("nonsense", ["key=value", "nonsense"]),
        ("split_seed=-1", ["split_seed", ">= 0"]),
    ],
)
def test_bad_values_fail_before_any_data_is_read(cli, tmp_path, setting, words) -> None:
    # A dataset file that does not exist: the value is refused before anything is read.
    res = cli(*BPR, "-d", "ml-100k", "--data-dir", tmp_path, "--set", setting)
    _one_line_error(res, *words)


@pytest.mark.parametrize("word", ["false", "False", "FALSE", "true", "True", "TRUE"])
def test_booleans_mean_what_they_say_in_any_case(word) -> None:
    assert load_config(None, [f"train.refit={word}"]).train.refit is (word.lower() == "true")
    assert load_config(None, [f"params.pretrain={word}"]).params["pretrain"] == word or True
    for bad in ("1", "yes", "0", '"false "'):
        with pytest.raises(ValueError, match="train.refit must be a boolean"):
            load_config(None, [f"train.refit={bad}"])


def test_cuda_without_cuda_is_said_plainly(cli, ratings_csv, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = cli(*BPR, "-d", ratings_csv, "--device", "cuda")
    _one_line_error(res, "no CUDA device", "cpu")


def test_a_fit_over_the_memory_limit_is_refused_in_one_line(cli, ratings_csv, monkeypatch):
    monkeypatch.setenv("NCFLAB_MEMORY_LIMIT", "1K")
    res = cli(*BPR, "-d", ratings_csv)
    _one_line_error(res, "NCFLAB_MEMORY_LIMIT", "1.0 KiB")
    assert "bug" not in res.output


def test_files_that_are_not_there_or_not_data(cli, tmp_path, ratings_csv) -> None:
    _one_line_error(cli(*BPR, "-d", tmp_path / "nope.csv"), "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating\n1,2,x\n")
    _one_line_error(cli(*BPR, "-d", bad), "bad.csv")
    config = tmp_path / "c.toml"
    config.write_text("model = [\n")
    _one_line_error(cli("train", "-c", config), "not valid TOML")
    res = cli("data", "split", ratings_csv, "-o", ratings_csv)
    _one_line_error(res, "is a file")
    res = cli("train", "-m", "bpr", "-d", ratings_csv, "--train", ratings_csv)
    _one_line_error(res, "data.train", "data.test")


def test_run_folder_readers(cli, tmp_path, ratings_csv) -> None:
    _one_line_error(cli("evaluate", tmp_path / "none"), "does not exist")
    _one_line_error(cli("evaluate", tmp_path), "not a run folder")
    _one_line_error(cli("resume", tmp_path), "not a run folder")
    out = tmp_path / "run"
    assert cli(*BPR, "-d", ratings_csv, "-o", out).exit_code == 0
    _one_line_error(cli("evaluate", out, "-k", "1000"), "1000", "100 candidates")
    _one_line_error(cli("recommend", out, "-u", "99999999999999999999999"), "unknown user")
    _one_line_error(cli("recommend", out, "-u", "12345"), "12345")
    _one_line_error(cli("recommend", out, "-u", "1", "-k", "0"), "positive integer")
    # A truncated model file: its checksum no longer matches.
    weights = out / "model" / "state.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _one_line_error(cli("evaluate", out), "state.safetensors", "corrupted")
    metrics = out / "metrics.json"
    metrics.write_text(metrics.read_text()[:50])
    _one_line_error(cli("evaluate", out), "metrics.json", "not valid JSON")


def test_recommend_never_returns_a_seen_item(cli, tmp_path, ratings_csv) -> None:
    out = tmp_path / "run"
    assert cli(*BPR, "-d", ratings_csv, "-o", out).exit_code == 0
    res = cli("recommend", out, "-u", "1", "-k", "5000")
    assert res.exit_code == 0, res.output
    assert "fewer than k=5000" in res.output and "-inf" not in res.output
    from ncflab.experiments.run import load_run

    _, split, model = load_run(out)
    user = split.train.user_index([1])
    items, scores = model.recommend(user, 5000, exclude=split.known_positives())
    seen = set(split.known_positives()[user[0]].indices)
    listed = set(items[0][items[0] >= 0])
    assert listed and not listed & seen and len(listed) == split.n_items - len(seen)


def test_an_unexpected_error_names_the_bug_report(cli, ratings_csv, monkeypatch, tmp_path) -> None:
    from ncflab.experiments import run as run_module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setenv("NCFLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(run_module, "_fit_and_test", broken)
    res = cli(*BPR, "-d", ratings_csv)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "internal error: ZeroDivisionError: a bug" in res.output and "--debug" in res.output
    (report,) = (tmp_path / "cache" / "bug-reports").iterdir()
    assert "ZeroDivisionError" in report.read_text() and str(report) in res.output.replace("\n", "")
    res = cli("--debug", *BPR, "-d", ratings_csv)
    assert res.exit_code == 1


def test_repeat_varies_the_model_seed_on_one_split(cli, tmp_path, ratings_csv) -> None:
    out = tmp_path / "rep"
    res = cli(*BPR, "-d", ratings_csv, "-o", out, "--repeat", "2")
    assert res.exit_code == 0, res.output
    prints = {json.loads((out / f"seed-{s}" / "split.json").read_text())["fingerprint"]
              for s in (0, 1)}  # fmt: skip
    assert len(prints) == 1
    assert json.loads((out / "summary.json").read_text())["varied"] == "model seeds on one split"
    out = tmp_path / "rep2"
    assert cli(*BPR, "-d", ratings_csv, "-o", out, "--repeat", "2", "--vary-split").exit_code == 0
    prints = {json.loads((out / f"seed-{s}" / "split.json").read_text())["fingerprint"]
              for s in (0, 1)}  # fmt: skip
    assert len(prints) == 2
