"""The run folder: ordered atomic writes, one writer, no silent overwrite, checked reads.

Runs are made through the command line on a user's own small ratings file (``ratings_csv``),
so the whole path a user takes is exercised, fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ncflab import runs

TRAIN = ["train", "-m", "bpr", "-p", "ncf", "--set", "params.epochs=3", "--set",
         "params.factors=8", "--set", "train.snapshot_seconds=0"]  # fmt: skip


def _train(cli, ratings_csv: Path, out: Path, *extra: str):
    return cli(*TRAIN, "-d", ratings_csv, "-o", out, *extra)


def test_a_finished_run_holds_every_file_and_its_provenance(cli, ratings_csv, tmp_path) -> None:
    out = tmp_path / "run"
    res = _train(cli, ratings_csv, out)
    assert res.exit_code == 0, res.output
    assert runs.run_state(out) == "finished"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["model_files"]) == {"config.json", "state.safetensors"}
    prov = metrics["provenance"]
    assert prov["ncflab"] and prov["torch"] and prov["numpy"] and prov["threads"] >= 1
    config = (out / "config.toml").read_text()
    assert f'dataset = "{ratings_csv.resolve()}"' in config  # absolute: readable from anywhere
    assert "split_seed = 0" in config and "patience = 5" in config  # resolved, not implied
    assert not list(out.glob("*.tmp*")) and not (out / "model.tmp").exists()


def test_a_finished_run_is_never_overwritten_without_force(cli, ratings_csv, tmp_path) -> None:
    out = tmp_path / "run"
    assert _train(cli, ratings_csv, out).exit_code == 0
    before = (out / "metrics.json").read_text()
    res = _train(cli, ratings_csv, out, "--set", "params.factors=4")
    assert res.exit_code == 2 and "finished run" in res.output and "--force" in res.output
    assert (out / "metrics.json").read_text() == before
    (out / "notes.txt").write_text("mine")  # a file of the user's own survives --force
    res = _train(cli, ratings_csv, out, "--set", "params.factors=4", "--force")
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["params"]["factors"] == 4 and (out / "notes.txt").read_text() == "mine"
    assert "factors = 4" in (out / "config.toml").read_text()


def test_a_folder_of_other_files_is_refused(cli, ratings_csv, tmp_path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    res = _train(cli, ratings_csv, tmp_path / "mine")
    assert res.exit_code == 2 and "thesis.tex" in res.output
    (tmp_path / "afile").write_text("x")
    res = _train(cli, ratings_csv, tmp_path / "afile")
    assert res.exit_code == 2 and "is a file" in res.output


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler catches it."""


def _renames(monkeypatch, limit: int | None = None) -> list[str]:
    """Record every ``os.replace`` (the last step of every write); with ``limit``, the process
    is "killed" just before rename number ``limit`` (0-based)."""
    calls: list[str] = []
    real = os.replace

    def replace(src, dst):  # noqa: ANN001
        if limit is not None and len(calls) >= limit:
            raise _Killed
        calls.append(Path(dst).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("cut", range(10))
def test_a_kill_at_any_write_leaves_a_run_that_resumes_or_is_refused(
    cli, ratings_csv, tmp_path, monkeypatch, cut
) -> None:
    """Every file of a run appears through one rename (``os.replace``), so a kill at any
    moment equals a kill just before one of them: try each in turn."""
    whole = tmp_path / "whole"
    with monkeypatch.context() as m:
        calls = _renames(m)
        assert _train(cli, ratings_csv, whole).exit_code == 0
    assert calls[-1] == "metrics.json"  # written last: it marks a finished run
    if cut >= len(calls):
        pytest.skip(f"a run makes {len(calls)} renames")
    out = tmp_path / "cut"
    with monkeypatch.context() as m:
        _renames(m, limit=cut)
        with pytest.raises(_Killed):
            _train(cli, ratings_csv, out)
    state = runs.run_state(out)
    assert state in ("unfinished", "empty"), state  # never "finished" before metrics.json
    res = cli("evaluate", out)
    assert res.exit_code == 2 and "ncflab" in res.output, res.output
    if state == "empty":  # killed before its config: nothing to resume, a new train may start
        assert _train(cli, ratings_csv, out).exit_code == 0
        return
    res = cli("resume", out)
    assert res.exit_code == 0, res.output
    done, ref = (json.loads((d / "metrics.json").read_text()) for d in (out, whole))
    assert done["test"] == ref["test"] and done["valid"] == ref["valid"]
    assert cli("evaluate", out).exit_code == 0


def test_a_changed_model_file_is_refused_by_name(cli, ratings_csv, tmp_path) -> None:
    out = tmp_path / "run"
    assert _train(cli, ratings_csv, out).exit_code == 0
    weights = out / "model" / "state.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-100:-60] = bytes(40)  # flipped bytes inside the weights: still loadable
    weights.write_bytes(bytes(blob))
    for verb in (("evaluate", out), ("recommend", out, "-u", "1")):
        res = cli(*verb)
        assert res.exit_code == 2 and "state.safetensors" in res.output, res.output
        assert "changed or corrupted" in res.output


def test_changed_data_is_refused_by_every_reader(cli, ratings_csv, tmp_path) -> None:
    out = tmp_path / "run"
    assert _train(cli, ratings_csv, out).exit_code == 0
    lines = ratings_csv.read_text().splitlines()
    ratings_csv.write_text("\n".join(lines[:-3]) + "\n")  # three records fewer
    for verb in (("evaluate", out), ("recommend", out, "-u", "1"), ("compare", out, out)):
        res = cli(*verb)
        assert res.exit_code == 2 and "split" in res.output, (verb, res.output)
    (out / "split.json").unlink()  # the fingerprint in metrics.json still guards
    res = cli("evaluate", out)
    assert res.exit_code == 2 and "split" in res.output


def test_a_second_writer_is_refused_by_name(ratings_csv, tmp_path) -> None:
    """Two real processes train into one folder: the second is refused while the first
    holds it, and the first finishes untouched."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "ncflab", *TRAIN, "-d", str(ratings_csv), "-o", str(out)]
    slow = ["--set", "params.epochs=200", "--set", "train.patience=200"]
    first = subprocess.Popen(args + slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (out / "config.toml").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"being written by another ncflab process (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()
    # The killed first run left an unfinished run: resume or --force, never a silent mix.
    assert runs.run_state(out) == "unfinished"


def test_selection_on_test_is_an_upper_reference_said_as_such(cli, ratings_csv, tmp_path) -> None:
    out = tmp_path / "run"
    res = _train(cli, ratings_csv, out, "--set", "train.select_on=test",
                 "--set", "params.epochs=6")  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selected_on"] == "test"
    # The epochs were scored on test: the restored best one is the test figure itself.
    best = max(r["metrics"]["NDCG@10"] for r in metrics["history"])
    assert metrics["test"]["NDCG@10"] == pytest.approx(best)
    res = _train(cli, ratings_csv, tmp_path / "bad", "--set", "train.select_on=train")
    assert res.exit_code == 2 and "train.select_on" in res.output
