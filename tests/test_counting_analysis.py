"""Counting analysis: m_thr interpolation and censoring, spread over seeds, the linear fit, and the verdicts,
each against a hand-made DataFrame with a known answer."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import limitlab.report.html as html_mod
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting import claims as V


def curves(thresholds: dict[tuple, float], ms, slope: float = 0.04, task_of=None) -> pd.DataFrame:
    """Accuracy linear in m, crossing 0.8 exactly at the given m_thr: {(task, variant, d, seed): m_thr}."""
    rows = []
    for (task, variant, d, seed), thr in thresholds.items():
        for m in ms:
            acc = float(np.clip(0.8 - slope * (m - thr), 0.0, 1.0))
            rows.append({"task": task, "variant": variant, "d": d, "seed": seed, "m": m, "accuracy": acc})
    return pd.DataFrame(rows)


# ---- one curve ----------------------------------------------------------------------------------------------------


def test_crossing_of_accuracy_linear_in_m_is_exact():
    ms = [3, 5, 7, 9, 11]
    acc = [1.0 - 0.04 * (m - 2.5) for m in ms]  # 0.8 at m = 7.5 exactly
    t = A.crossing(ms, acc)
    assert t.censored == "none" and t.value == pytest.approx(7.5, abs=1e-12)
    assert t.label == "7.5" and not t.recovers


def test_crossing_on_a_grid_point_and_unsorted_duplicates():
    # exactly 0.8 at m = 6 (still >= 0.8), then below: the crossing is m = 6
    assert A.crossing([4, 6, 8], [0.9, 0.8, 0.5]).value == pytest.approx(6.0)
    # unsorted input, a duplicated m (averaged: 0.7) and a NaN (dropped)
    t = A.crossing([8, 4, 6, 6, 10], [0.2, 1.0, 0.6, 0.8, float("nan")])
    assert t.value == pytest.approx(4 + (1.0 - 0.8) * 2 / (1.0 - 0.7))


def test_censoring_is_reported_not_invented():
    right = A.crossing([4, 8, 16], [1.0, 0.95, 0.81])
    assert (right.value, right.censored, right.bound, right.label) == (None, "right", 16.0, "> 16")
    left = A.crossing([4, 8, 16], [0.79, 0.5, 0.1])
    assert (left.value, left.censored, left.bound, left.label) == (None, "left", 4.0, "< 4")
    assert A.crossing([], []).censored == "no data"
    assert right.interval == (16.0, math.inf) and left.interval == (0.0, 4.0)


def test_first_crossing_of_a_non_monotone_curve():
    t = A.crossing([2, 4, 6, 8], [1.0, 0.6, 0.9, 0.1])
    assert t.value == pytest.approx(2 + 0.2 / 0.4 * 2) and t.recovers


# ---- per curve, per group -------------------------------------------------------------------------------------------


def test_thresholds_and_summary_known_values():
    truth = {("qc", "base", 8, 0): 7.0, ("qc", "base", 8, 1): 8.0, ("qc", "base", 8, 2): 9.0,
             ("qc", "base", 16, 0): 30.0}  # 30 > max m: right-censored
    df = curves(truth, ms=[4, 6, 8, 10, 12, 20])
    thr = A.thresholds(df)
    got = {(r.d, r.seed): r for r in thr.itertuples()}
    for seed, value in enumerate([7.0, 8.0, 9.0]):
        assert got[(8, seed)].m_thr == pytest.approx(value) and got[(8, seed)].censored == "none"
    assert got[(16, 0)].censored == "right" and got[(16, 0)].label == "> 20" and math.isnan(got[(16, 0)].m_thr)

    s = A.summarize_thresholds(thr).set_index("d")
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # std of 7, 8, 9 is 1
    assert s.loc[8, "mean"] == pytest.approx(8.0) and s.loc[8, "std"] == pytest.approx(1.0)
    assert s.loc[8, "ci_low"] == pytest.approx(8 - half) and s.loc[8, "ci_high"] == pytest.approx(8 + half)
    assert s.loc[8, "label"] == f"8 ± {half:.3g} (3 seeds)"
    assert s.loc[16, "n_right"] == 1 and math.isnan(s.loc[16, "mean"]) and s.loc[16, "label"] == "> 20"
    assert (s.loc[16, "lo"], s.loc[16, "hi"]) == (20.0, math.inf)


def test_summary_never_averages_censored_seeds():
    truth = {("qc", "base", 8, 0): 6.0, ("qc", "base", 8, 1): 50.0, ("qc", "base", 8, 2): 1.0}
    s = A.summarize_thresholds(A.thresholds(curves(truth, ms=[4, 8, 16]))).iloc[0]
    assert (s["n_exact"], s["n_right"], s["n_left"]) == (1, 1, 1)
    assert s["mean"] == pytest.approx(6.0) and math.isnan(s["std"]) and math.isnan(s["ci_low"])
    assert s["label"] == "6 (1 seed); 1 seed > 16; 1 seed < 4"


# ---- fit ----------------------------------------------------------------------------------------------------------


def test_fit_recovers_known_line_and_excludes_censored():
    ms = list(range(4, 80, 4))
    truth = {("qc", "base", d, s): 1.5 * d + 2 for d in (8, 16, 32) for s in (0, 1)}
    truth[("qc", "base", 64, 0)] = 500.0  # right-censored: must not pull the fit
    fit = A.fit_lines(A.thresholds(curves(truth, ms))).iloc[0]
    assert fit["status"] == "ok"
    assert fit["a"] == pytest.approx(1.5) and fit["b"] == pytest.approx(2.0) and fit["r2"] == pytest.approx(1.0)
    assert fit["n_points"] == 6 and fit["n_censored"] == 1 and fit["n_d"] == 3


def test_fit_matches_scipy_on_noisy_points():
    rng = np.random.default_rng(0)
    thr = pd.DataFrame([{"task": "qc", "variant": "base", "d": d, "seed": s, "censored": "none",
                         "m_thr": 0.8 * d + 3 + rng.normal(0, 2)} for d in (8, 16, 32, 64) for s in range(3)])
    fit = A.fit_lines(thr).iloc[0]
    ref = stats.linregress(thr["d"], thr["m_thr"])
    assert fit["a"] == pytest.approx(ref.slope) and fit["b"] == pytest.approx(ref.intercept)
    assert fit["r2"] == pytest.approx(ref.rvalue ** 2) and fit["a_stderr"] == pytest.approx(ref.stderr)
    half = stats.t.ppf(0.975, len(thr) - 2) * ref.stderr
    assert fit["a_ci_low"] == pytest.approx(ref.slope - half)


def test_fit_says_too_few_points():
    thr = pd.DataFrame({"task": ["qc", "qc", "mfc", "mfc", "mfc"], "variant": "base", "d": [8, 16, 8, 8, 8],
                        "seed": [0, 0, 0, 1, 2], "m_thr": [9.0, 17.0, 5.0, 6.0, 7.0], "censored": "none"})
    fits = A.fit_lines(thr).set_index("task")
    assert (fits["status"] == "too few points").all()
    assert fits.loc["qc", "a"] is None and "2 uncensored point(s)" in fits.loc["qc", "reason"]
    assert "1 distinct d" in fits.loc["mfc", "reason"]
    assert V.claim_linear(fits.loc["qc"].to_dict())["verdict"] == "not measured"


# ---- tidy ---------------------------------------------------------------------------------------------------------


def test_tidy_reads_spec_columns():
    raw = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["done", "done", "pending"],
                        "task.kind": ["qc", "mfc", "qc"], "model.d_model": [8, 16, 8], "task.m": [3, 6, 3],
                        "task.n": [None, 24, 12], "seed": [0, 1, 0], "tags.variant": ["bos", None, "base"],
                        "result.test/accuracy": [0.9, 0.4, None], "result.ood_long/accuracy": [0.1, 0.0, None],
                        "result.train_loss": [0.3, 1.2, None]})
    t = A.tidy(raw)
    assert t[["task", "variant", "d", "m", "n", "seed"]].values.tolist() == [["qc", "bos", 8, 3, 30, 0],
                                                                             ["mfc", "untagged", 16, 6, 24, 1]]
    assert t["accuracy"].tolist() == [0.9, 0.4] and t["ood_accuracy"].tolist() == [0.1, 0.0]
    assert A.tidy(pd.DataFrame()).empty


# ---- transition, OOD, task comparison, verdicts -------------------------------------------------------------------


def test_transition_ratio_and_width():
    df = curves({("qc", "base", 10, 0): 10.0}, ms=[2, 5, 10, 15, 20, 40], slope=0.03)  # 50% at m = 20
    p = A.transition_points(df, A.thresholds(df)).iloc[0]
    assert p["ratio"] == pytest.approx(1.0) and p["width"] == pytest.approx(2.0)
    v = V.claim_transition(pd.DataFrame([p]))
    assert v["verdict"] == "agree"
    far = curves({("qc", "base", 10, 0): 35.0}, ms=[2, 5, 10, 20, 40, 80])  # m_thr = 3.5·d: not at d ≈ m
    assert V.claim_transition(A.transition_points(far, A.thresholds(far)))["verdict"] == "disagree"
    assert V.claim_transition(pd.DataFrame(columns=["ratio", "width"]))["verdict"] == "not measured"


def test_ood_summary_and_verdict():
    df = pd.DataFrame({"task": "qc", "variant": "base", "accuracy": [1.0, 0.9, 0.3],
                       "ood_accuracy": [0.1, 0.2, 0.0]})
    o = A.ood_summary(df).iloc[0]
    assert o["n_learned"] == 2 and o["test_learned"] == pytest.approx(0.95)
    assert o["ratio"] == pytest.approx(0.15 / 0.95)
    assert V.claim_ood(o.to_dict())["verdict"] == "agree"
    fine = pd.DataFrame({"task": "qc", "variant": "base", "accuracy": [1.0], "ood_accuracy": [0.9]})
    assert V.claim_ood(A.ood_summary(fine).iloc[0].to_dict())["verdict"] == "disagree"
    weak = pd.DataFrame({"task": "qc", "variant": "base", "accuracy": [0.5], "ood_accuracy": [0.1]})
    assert V.claim_ood(A.ood_summary(weak).iloc[0].to_dict())["verdict"] == "not measured"


def test_compare_tasks_is_censoring_aware():
    truth = {("qc", "base", 8, 0): 10.0, ("mfc", "base", 8, 0): 6.0,  # exact both: 6 <= 10
             ("qc", "base", 16, 0): 100.0, ("mfc", "base", 16, 0): 1.0,  # mfc < 4, qc > 32: le
             ("qc", "base", 32, 0): 1.0, ("mfc", "base", 32, 0): 12.0,  # qc < 4, mfc = 12: gt
             ("qc", "base", 64, 0): 100.0, ("mfc", "base", 64, 0): 100.0}  # both > 32: undetermined
    s = A.summarize_thresholds(A.thresholds(curves(truth, ms=[4, 8, 16, 32])))
    comp = V.compare_tasks(s).set_index("d")["result"].to_dict()
    assert comp == {8: "le", 16: "le", 32: "gt", 64: "undetermined"}
    v = V.claim_mfc_le_qc(V.compare_tasks(s))
    assert v["verdict"] == "agree" and "at 2 d" in v["ours"] and "at 1 d" in v["ours"]
    only_gt = pd.DataFrame({"result": ["gt", "undetermined"]})
    assert V.claim_mfc_le_qc(only_gt)["verdict"] == "disagree"
    assert V.claim_mfc_le_qc(pd.DataFrame({"result": ["undetermined"]}))["verdict"] == "not measured"


def test_claim_linear_verdicts():
    ok = {"status": "ok", "a": 1.0, "b": 1.0, "r2": 0.9, "a_ci_low": 0.5, "a_ci_high": 1.5, "n_points": 6,
          "n_censored": 0}
    assert V.claim_linear(ok)["verdict"] == "agree"
    assert V.claim_linear({**ok, "a_ci_low": -0.1})["verdict"] == "disagree"  # slope not surely positive
    assert V.claim_linear({**ok, "r2": 0.3})["verdict"] == "disagree"  # not linear
    assert V.claim_linear({})["verdict"] == "not measured"


def test_claim_histogram():
    cells = [{"histogram": 1.0, "histogram_exact_regime": True}, {"histogram": 0.2, "histogram_exact_regime": False}]
    assert V.claim_histogram(cells)["verdict"] == "agree"
    assert V.claim_histogram([{"histogram": 0.99, "histogram_exact_regime": True}])["verdict"] == "disagree"
    assert V.claim_histogram(cells[1:])["verdict"] == "not measured"


def test_docstring_examples():
    for module in (A, html_mod):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_html_page_escapes_and_refuses_absolute_figures(tmp_path):
    page = html_mod.Page("a <b> & c")
    page.table(pd.DataFrame({"x": [1.23456, float("nan")], "verdict": ["agree", "<script>"]}),
               highlight={"verdict": html_mod.VERDICT_CLASSES})
    page.figure("fig.png", "caption")
    with pytest.raises(ValueError, match="relative"):
        page.figure("/abs/fig.png", "a figure")
    text = page.write(tmp_path / "sub" / "index.html").read_text()
    assert "a &lt;b&gt; &amp; c" in text and "&lt;script&gt;" in text and "<script>" not in text
    assert 'class="good"' in text and "1.23" in text and "—" in text and 'src="fig.png"' in text
