"""Paired significance of two models on the same users (``ncflab.evaluation.stats``) and the
``ncflab significance`` verb."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_compare import _synthetic, _write
from typer.testing import CliRunner

from ncflab import cli
from ncflab.cli import app
from ncflab.evaluation.protocols import evaluate
from ncflab.evaluation.stats import holm, paired_test
from ncflab.experiments import compare
from ncflab.experiments import run as run_module
from ncflab.models.ease import EASE
from ncflab.models.popularity import ItemPop


def test_identical_models_show_no_difference() -> None:
    a = np.array([0.0, 1.0, 0.5, 0.25])
    t = paired_test(a, a.copy(), resamples=200)
    assert (t.diff, t.ci_low, t.ci_high) == (0.0, 0.0, 0.0)
    assert (t.t_p, t.wilcoxon_p, t.sign_p) == (1.0, 1.0, 1.0)
    assert (t.wins_a, t.wins_b, t.ties, t.n) == (0, 0, 4, 4)


def test_hand_computed_p_values() -> None:
    # d = 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), t = 2.5 / (sd / 2) = 3.873 on 3 df: p = .0305.
    t = paired_test(np.array([1.0, 2, 3, 4]), np.zeros(4), resamples=100)
    assert t.diff == 2.5 and t.t_p == pytest.approx(0.03047, abs=5e-5)
    # Signed ranks of d = 1..10, all positive: exact two-sided p = 2 / 2^10.
    t = paired_test(np.arange(1.0, 11.0), np.zeros(10), resamples=100)
    assert t.wilcoxon_p == pytest.approx(2 / 1024)
    # HR-like 0/1 values: A alone hits 9 users, B alone 1, 90 tie. Sign (McNemar exact) test:
    # p = 2 P(X <= 1), X ~ Binomial(10, 1/2) = 2 * 11 / 1024.
    a = np.r_[np.ones(9), 0.0, np.ones(40), np.zeros(50)]
    b = np.r_[np.zeros(9), 1.0, np.ones(40), np.zeros(50)]
    t = paired_test(a, b, resamples=100)
    assert (t.wins_a, t.wins_b, t.ties) == (9, 1, 90)
    assert t.sign_p == pytest.approx(22 / 1024) and t.diff == pytest.approx(0.08)
    # A constant non-zero difference: t is undefined, and the evidence is certain.
    assert paired_test(np.ones(5), np.zeros(5), resamples=10).t_p == 0.0


def test_the_bootstrap_interval_matches_normal_theory_and_is_seeded() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.1, 1.0, 4000)
    t = paired_test(d, np.zeros_like(d), resamples=4000, seed=7)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))  # the normal-theory 95 % half-width
    assert t.ci_low < d.mean() < t.ci_high
    assert (t.ci_high - t.ci_low) / 2 == pytest.approx(half, rel=0.1)
    again = paired_test(d, np.zeros_like(d), resamples=4000, seed=7)
    assert (again.ci_low, again.ci_high) == (t.ci_low, t.ci_high)
    other = paired_test(d, np.zeros_like(d), resamples=4000, seed=8)
    assert (other.ci_low, other.ci_high) != (t.ci_low, t.ci_high)
    narrow = paired_test(d, np.zeros_like(d), resamples=4000, confidence=0.5)
    assert narrow.ci_high - narrow.ci_low < t.ci_high - t.ci_low


def test_p_values_are_scipy_s_on_the_same_differences() -> None:
    rng = np.random.default_rng(11)
    a = rng.random(300)
    b = np.clip(a - 0.05 + rng.normal(0, 0.2, 300), 0, 1)
    b[:40] = a[:40]  # ties: Wilcoxon and the sign test drop them
    t = paired_test(a, b, resamples=10)
    assert t.t_p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert t.wilcoxon_p == pytest.approx(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    wins, losses = int((a > b).sum()), int((a < b).sum())
    assert t.sign_p == pytest.approx(stats.binomtest(wins, wins + losses).pvalue)
    assert (t.wins_a, t.wins_b, t.ties) == (wins, losses, 40)


def test_holm_by_hand() -> None:
    # p = .01, .04, .03, .005; m = 4. Sorted: .005, .01, .03, .04, multiplied by 4, 3, 2, 1:
    # .02, .03, .06, .04; running maximum: .02, .03, .06, .06; back in the given order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1: 2 × .7 = 1.4 → 1, then max(1.4, .9) → 1.
    assert holm([0.9, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([0.3, 0.8]) == pytest.approx([0.6, 0.8])  # 2 × .3, then max(.6, .8)
    # A NaN is no test: it stays NaN and m is 2, not 3.
    out = holm([0.01, np.nan, 0.04])
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.04])
    # Equal p-values get one adjusted value; one test is not adjusted; none gives none.
    assert holm([0.02, 0.02, 0.5]) == pytest.approx([0.06, 0.06, 0.5])
    assert holm([0.2]) == pytest.approx([0.2]) and holm([]).shape == (0,)


def test_holm_rejects_what_the_step_down_procedure_rejects() -> None:
    # The procedure as Holm wrote it: walk the sorted p-values and reject H_(i) while
    # p_(i) <= alpha / (m - i + 1); stop at the first that is not. Rejecting where the
    # adjusted p <= alpha must give the same set, for any alpha.
    rng = np.random.default_rng(5)
    for _ in range(200):
        m = int(rng.integers(1, 12))
        p = rng.random(m) ** rng.uniform(1, 6)  # many small ones
        adjusted = holm(p)
        assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)
        order = np.argsort(p)
        assert np.all(np.diff(adjusted[order]) >= 0)  # monotone in p
        for alpha in (0.01, 0.05, 0.2):
            rejected = set()
            for i, k in enumerate(order):
                if p[k] > alpha / (m - i):
                    break
                rejected.add(int(k))
            assert set(np.flatnonzero(adjusted <= alpha).tolist()) == rejected


@pytest.mark.parametrize(
    ("p", "match"),
    [([0.1, 1.5], r"in \[0, 1\], got 1.5 at position 1"), ([[0.1]], r"1-d .* shape \(1, 1\)")],
)
def test_holm_names_bad_input(p, match) -> None:
    with pytest.raises(ValueError, match=match):
        holm(p)


@pytest.mark.parametrize(
    ("a", "b", "kw", "match"),
    [
        ([1.0, 2.0], [1.0], {}, r"shapes \(2,\) and \(1,\)"),
        ([1.0], [1.0], {}, "at least 2 paired users, got 1"),
        ([1.0, np.nan, 2.0], [1.0, 1.0, 1.0], {}, "1 users have a non-finite value .*position 1"),
        ([1.0, 2.0], [1.0, 1.0], {"resamples": 0}, "resamples must be >= 1, got 0"),
        ([1.0, 2.0], [1.0, 1.0], {"confidence": 1.0}, r"confidence must be in \(0, 1\), got 1.0"),
    ],
)
def test_bad_input_is_named(a, b, kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_test(np.array(a), np.array(b), **kw)


def test_the_cli_tests_two_runs_on_their_split(tmp_path, monkeypatch) -> None:
    split = _synthetic(0)
    _write(tmp_path / "pop", split, ItemPop())
    _write(tmp_path / "ease", split, EASE())
    monkeypatch.setattr(run_module, "load_split", lambda config, protocol: _synthetic(0))
    monkeypatch.setattr(cli.console, "width", 160)  # one table row per metric, unwrapped
    runs = [str(tmp_path / "ease"), str(tmp_path / "pop")]
    res = CliRunner().invoke(app, ["significance", *runs, "-k", "5", "--resamples", "500"])
    assert res.exit_code == 0, res.output
    # The same per-user values the library gives (protocol ``jca``: full ranking).
    kw = {"protocol": "full", "ks": (5,), "metrics": ["Precision"]}
    a = evaluate(EASE().fit(split.train), split, **kw).per_user["Precision@5"].to_numpy()
    b = evaluate(ItemPop().fit(split.train), split, **kw).per_user["Precision@5"].to_numpy()
    t = paired_test(a, b, resamples=500)
    assert f"{t.diff:+.4f}" in res.output and f"{t.wins_a}/{t.wins_b}/{t.ties}" in res.output
    assert "Precision@5" in res.output and "Wilcoxon" in res.output
    res = CliRunner().invoke(app, ["significance", runs[0], str(tmp_path / "none")])
    assert res.exit_code == 2


def test_the_cli_pairs_the_per_user_files_the_runs_wrote(tmp_path, monkeypatch) -> None:
    split = _synthetic(0)
    _write(tmp_path / "pop", split, ItemPop())
    _write(tmp_path / "ease", split, EASE())
    monkeypatch.setattr(cli.console, "width", 160)

    def no_scoring(*args, **kwargs):
        raise AssertionError("the models were loaded to be scored again")

    monkeypatch.setattr(compare, "load_pair", no_scoring)
    # Rows in another order in one file: pairing is by user, not by row.
    path = tmp_path / "ease" / "per_user.csv"
    pd.read_csv(path).iloc[::-1].to_csv(path, index=False)
    runs = [str(tmp_path / "ease"), str(tmp_path / "pop")]
    res = CliRunner().invoke(app, ["significance", *runs, "--resamples", "500"])
    assert res.exit_code == 0, res.output
    kw = {"ks": (10,), "metrics": ["Precision"]}  # what _write evaluated
    a = evaluate(EASE().fit(split.train), split, **kw).per_user["Precision@10"].to_numpy()
    b = evaluate(ItemPop().fit(split.train), split, **kw).per_user["Precision@10"].to_numpy()
    t = paired_test(a, b, resamples=500)
    assert f"{t.diff:+.4f}" in res.output and f"{t.wins_a}/{t.wins_b}/{t.ties}" in res.output
    assert "per_user.csv" in res.output

    # --rescore, other cut-offs, valid, or files that do not pair (a user missing): score again.
    pop = tmp_path / "pop" / "per_user.csv"
    full = pd.read_csv(pop)
    full.iloc[1:].to_csv(pop, index=False)
    for extra in (["--rescore"], ["-k", "5"], ["--part", "valid"], []):
        res = CliRunner().invoke(app, ["significance", *runs, *extra])
        # An unexpected exception is reported by the CLI as an internal error, exit status 1.
        assert res.exit_code == 1 and "scored again" in res.output, (extra, res.output)
    full.to_csv(pop, index=False)
    assert compare.saved_test_pair(*runs) is not None

    # Runs that recorded different splits are refused before anything is read or scored.
    info = json.loads((tmp_path / "pop" / "split.json").read_text())
    info["fingerprint"] = "0" * 16
    (tmp_path / "pop" / "split.json").write_text(json.dumps(info))
    res = CliRunner().invoke(app, ["significance", *runs])
    assert res.exit_code == 2 and "different splits" in res.output
