"""Counting analysis and claims: m_thr interpolation and censoring, spread over seeds, and every claim's criterion
(agree, disagree, inconclusive or not measured) on hand-made runs with a known answer — no training."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import limitlab.report.html as html_mod
from limitlab.report.sections import ReportContext
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting import claims as C
from limitlab.studies.counting import constructed
from limitlab.studies.counting.experiments import OOD, THRESHOLD

DS = (4, 8, 16)
MS = tuple(range(2, 61, 2))


def curves(thresholds: dict[tuple, float], ms, slope: float = 0.04) -> pd.DataFrame:
    """Accuracy linear in m, crossing 0.8 exactly at the given m_thr: {(task, variant, d, seed): m_thr}."""
    rows = []
    for (task, variant, d, seed), thr in thresholds.items():
        for m in ms:
            acc = float(np.clip(0.8 - slope * (m - thr), 0.0, 1.0))
            rows.append({"task": task, "variant": variant, "d": d, "seed": seed, "m": m, "accuracy": acc})
    return pd.DataFrame(rows)


def raw_runs(thr, slope=0.04, ood=lambda acc, seed: 0.1 * acc, position="learned", variant="bos", ms=MS):
    """The store's DataFrame of finished runs whose accuracy crosses 0.8 at ``thr(task, d, seed)``."""
    rows = []
    for task in ("qc", "mfc"):
        for d in DS:
            for seed in range(3):
                t = thr(task, d, seed)
                if t is None:
                    continue
                for m in ms:
                    acc = float(np.clip(0.8 - slope * (m - t), 0.0, 1.0))
                    rows.append({"run_id": f"{task}{variant}{d}-{m}-{seed}", "status": "done", "task.kind": task,
                                 "model.d_model": d, "task.m": m, "task.n": 5 * m, "seed": seed,
                                 "tags.variant": variant, "model.position": position,
                                 "result.test/accuracy": acc, "result.ood_long/accuracy": ood(acc, seed)})
    return pd.DataFrame(rows)


def verdicts(experiment, raw) -> dict[str, str]:
    ctx = ReportContext(None, None, raw, raw)
    return {r.claim.id: r.verdict for r in experiment.run(ctx).claims}


# ---- one curve, one group ----------------------------------------------------------------------------------------


def test_crossing_interpolates_and_censors():
    t = A.crossing([3, 5, 7, 9, 11], [1.0 - 0.04 * (m - 2.5) for m in (3, 5, 7, 9, 11)])
    assert t.censored == "none" and t.value == pytest.approx(7.5, abs=1e-12)
    assert A.crossing([4, 6, 8], [0.9, 0.8, 0.5]).value == pytest.approx(6.0)  # exactly 0.8 at 6 is still ≥
    right, left = A.crossing([4, 8, 16], [1.0, 0.95, 0.81]), A.crossing([4, 8, 16], [0.79, 0.5, 0.1])
    assert (right.value, right.censored, right.label) == (None, "right", "> 16")
    assert (left.value, left.censored, left.label) == (None, "left", "< 4")
    assert A.crossing([2, 4, 6, 8], [1.0, 0.6, 0.9, 0.1]).recovers


def test_thresholds_and_summary_known_values():
    truth = {("qc", "base", 8, 0): 7.0, ("qc", "base", 8, 1): 8.0, ("qc", "base", 8, 2): 9.0,
             ("qc", "base", 16, 0): 30.0}  # 30 > max m: right-censored
    thr = A.thresholds(curves(truth, ms=[4, 6, 8, 10, 12, 20]))
    s = A.summarize_thresholds(thr).set_index("d")
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)  # std of 7, 8, 9 is 1
    assert s.loc[8, "mean"] == pytest.approx(8.0) and s.loc[8, "ci_low"] == pytest.approx(8 - half)
    assert s.loc[16, "n_right"] == 1 and math.isnan(s.loc[16, "mean"]) and s.loc[16, "label"] == "> 20"
    two = A.summarize_thresholds(A.thresholds(curves({("qc", "b", 8, 0): 3.0, ("qc", "b", 8, 1): 7.0},
                                                     ms=range(2, 14))))
    assert two.iloc[0]["ci_low"] == 0.0 and two.iloc[0]["clipped"]  # 2 seeds: the raw interval reaches below 0


def test_tidy_reads_spec_columns():
    raw = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["done", "done", "pending"],
                        "task.kind": ["qc", "mfc", "qc"], "model.d_model": [8, 16, 8], "task.m": [3, 6, 3],
                        "task.n": [None, 24, 12], "seed": [0, 1, 0], "tags.variant": ["bos", None, "base"],
                        "model.position": ["none", "learned", "learned"],
                        "result.test/accuracy": [0.9, 0.4, None], "result.ood_long/accuracy": [0.1, 0.0, None]})
    t = A.tidy(raw)
    assert t[["task", "variant", "position", "d", "m", "n"]].values.tolist() == [
        ["qc", "bos", "none", 8, 3, 30], ["mfc", "untagged", "learned", 16, 6, 24]]
    assert A.tidy(pd.DataFrame()).empty


def test_task_gap_pairs_per_d_and_seed_and_leaves_censored_out():
    truth = {("qc", "bos", 8, 0): 10.0, ("mfc", "bos", 8, 0): 6.0, ("qc", "bos", 16, 0): 14.0,
             ("mfc", "bos", 16, 0): 12.0, ("qc", "bos", 8, 1): 100.0, ("mfc", "bos", 8, 1): 6.0}
    gaps, pairs, censored = A.task_gap(A.thresholds(curves(truth, ms=range(2, 30, 2))), "bos")
    assert gaps == {0: pytest.approx(3.0)} and (pairs, censored) == (2, 1)


# ---- claims: each criterion on runs with a known answer ------------------------------------------------------------


def test_linear_claim_agrees_on_a_line_and_disagrees_on_sqrt():
    noise = np.random.default_rng(0).normal(0, 0.3, (2, 17, 3))
    line = verdicts(THRESHOLD, raw_runs(lambda task, d, s: d + 2 + noise[int(task == "qc"), d, s]))
    assert line[C.MTHR_LINEAR_QC.id] == line[C.MTHR_LINEAR_MFC.id] == "agree"
    sqrt = verdicts(THRESHOLD, raw_runs(lambda task, d, s: 10 * math.sqrt(d) - 12 + noise[0, d, s]))
    assert sqrt[C.MTHR_LINEAR_QC.id] == "disagree"  # √d (concave) beats the line
    flat = verdicts(THRESHOLD, raw_runs(lambda task, d, s: 9 + 0.3 * ((d // 4 + s) % 3 - 1)))  # no trend
    assert flat[C.MTHR_LINEAR_QC.id] == "disagree"  # a constant beats the line
    # 60% line, 40% √d: the line and √d fit about as well (AICc within 2 of each other)
    unsure = verdicts(THRESHOLD, raw_runs(lambda task, d, s: 0.6 * (d + 2) + 0.4 * (10 * math.sqrt(d) - 12)
                                          + 0.3 * ((d // 4 + s) % 3 - 1)))
    assert unsure[C.MTHR_LINEAR_QC.id] == "inconclusive"


def test_linear_claim_not_measured_when_censored():
    v = verdicts(THRESHOLD, raw_runs(lambda task, d, s: 200.0))  # never falls below 0.8 on the grid
    assert v[C.MTHR_LINEAR_QC.id] == "not measured" and v[C.AT_D_QC.id] == "not measured"


def test_threshold_at_d_claim():
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: d * (1 + 0.05 * s)))[C.AT_D_QC.id] == "agree"
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: 2.5 * d))[C.AT_D_QC.id] == "disagree"
    spread = {0: 0.55, 1: 1.0, 2: 1.6}  # per-seed ratios whose interval straddles the bounds
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: spread[s] * d))[C.AT_D_QC.id] == "inconclusive"


def test_sharp_transition_claim():
    # width = m(0.5) / m_thr = 1 + 0.3 / (slope · m_thr)
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: d + 2, slope=0.1))[C.SHARP.id] == "agree"
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: d + 2, slope=0.012))[C.SHARP.id] == "disagree"
    mixed = verdicts(THRESHOLD, pd.concat([raw_runs(lambda t, d, s: d + 2 if s < 2 else None, slope=0.1),
                                           raw_runs(lambda t, d, s: d + 2 if s == 2 else None, slope=0.012)]))
    assert mixed[C.SHARP.id] == "inconclusive"


def test_mfc_le_qc_claim_is_paired_per_seed():
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: d + 6 - 3 * (t == "mfc") + s))[C.MFC_LE_QC.id] == "agree"
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: d + 6 + 3 * (t == "mfc")))[C.MFC_LE_QC.id] == "disagree"
    gap = {0: -2.0, 1: 0.5, 2: 3.0}
    assert verdicts(THRESHOLD, raw_runs(lambda t, d, s: d + 6 - gap[s] * (t == "mfc")))[C.MFC_LE_QC.id] == \
        "inconclusive"
    qc_only = raw_runs(lambda t, d, s: d + 6 if t == "qc" else None)
    assert verdicts(THRESHOLD, qc_only)[C.MFC_LE_QC.id] == "not measured"


def test_ood_claim_is_judged_on_nope_runs_only():
    learned = raw_runs(lambda t, d, s: d + 4, ood=lambda acc, s: 0.0)
    assert verdicts(OOD, learned)[C.OOD_LONG.id] == "not measured"  # guaranteed by the set-up: not judged

    def nope(ood):
        return pd.concat([learned, raw_runs(lambda t, d, s: d + 4, ood=ood, position="none", variant="bos_nope")])

    assert verdicts(OOD, nope(lambda acc, s: 0.1 * acc))[C.OOD_LONG.id] == "agree"
    assert verdicts(OOD, nope(lambda acc, s: 0.95 * acc))[C.OOD_LONG.id] == "disagree"
    assert verdicts(OOD, nope(lambda acc, s: (0.1, 0.5, 0.9)[s] * acc))[C.OOD_LONG.id] == "inconclusive"


def test_construction_claims():
    sec = constructed.Section("c", "c")
    constructed._judge(sec, C.HISTOGRAM_QC, [{"histogram": 1.0, "histogram_ood": 1.0}] * 3,
                       ("histogram", "histogram_ood"), "none")
    constructed._judge(sec, C.HISTOGRAM_MFC, [{"histogram": 1.0, "histogram_ood": 0.99}],
                       ("histogram", "histogram_ood"), "none")
    constructed._judge(sec, C.COUNT_ATTEND, [], ("count_attend",), "no evaluated QC cell with m ≥ d")
    assert [r.verdict for r in sec.claims] == ["agree", "disagree", "not measured"]
    assert "no evaluated QC cell with m ≥ d" in sec.claims[2].ours
    # hand-wired models have no seeds: one cell decides (no 'inconclusive' for these rows)
    assert C.HISTOGRAM_QC.min_seeds == 1


def test_claims_are_data_with_numeric_thresholds():
    ids = [c.id for e in (THRESHOLD, OOD, constructed.CONSTRUCTIONS) for c in e.claims]
    assert len(ids) == len(set(ids)) == 10
    assert C.AT_D_QC.test.thresholds() == {"low": pytest.approx(2 / 3), "high": pytest.approx(1.5)}
    assert C.MTHR_LINEAR_QC.test.thresholds() == {"margin": 2.0}
    assert "constant, sqrt, log, quadratic" in C.MTHR_LINEAR_QC.criterion
    assert all(c.untested for e in (THRESHOLD, OOD, constructed.CONSTRUCTIONS) for c in e.claims)


def test_docstring_examples():
    for module in (A, html_mod):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__
