"""The shared analysis layer (limitlab.analysis): each helper against a hand-computed case, intervals that stay in
the metric's range with 2 seeds, censoring, and fits whose intervals cover a known slope."""

from __future__ import annotations

import doctest
import importlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from limitlab import analysis as A

MODULES = ["limitlab.analysis", *(f"limitlab.analysis.{m}" for m in ("frames", "intervals", "bootstrap",
                                                                      "thresholds", "fits")),
           *(f"limitlab.report.{m}" for m in ("schema", "tables", "figures", "runs"))]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# ---- frames -------------------------------------------------------------------------------------------------------


def raw_store_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": ["r0", "r1", "r2", "r3"], "status": ["done", "done", "pending", "done"], "seed": [0, 1, 0, 2],
        "tags.family": ["linear", "linear", "relu", "relu"], "tags.d": [8, 8, 16, 16],
        "model.d_model": [8, 8, 16, 16], "result.test/mse": [0.5, 0.25, None, 1.0],
        "result.test/mse_per_index": [[1.0, 0.5, 0.25], [1.0, float("nan")], None, [2.0]],
        "result.train/loss": [0.1, 0.2, None, 0.3],
    })


def test_tidy_short_names_and_statuses():
    raw = raw_store_frame()
    t = A.tidy(raw, {"mse": "result.test/mse", "width": "model.d_model", "absent": "result.test/nothing"})
    assert t["run_id"].tolist() == ["r0", "r1", "r3"]
    assert list(t.columns) == ["run_id", "seed", "family", "d", "mse", "width", "absent"]
    assert t["mse"].tolist() == [0.5, 0.25, 1.0] and t["absent"].isna().all()
    assert len(A.tidy(raw, statuses=None)) == 4
    assert A.tag_columns(raw) == {"family": "tags.family", "d": "tags.d"}
    assert A.result_columns(raw, "test") == {"test/mse": "result.test/mse",
                                             "test/mse_per_index": "result.test/mse_per_index"}


def test_long_frame_one_row_per_run_and_index():
    t = A.tidy(raw_store_frame(), {"curve": "result.test/mse_per_index"})
    long = A.long_frame(t, "curve", index="k", keep=["family"], start=1)
    assert list(long.columns) == ["run_id", "family", "k", "curve"]
    assert long[["run_id", "k"]].values.tolist() == [["r0", 1], ["r0", 2], ["r0", 3], ["r1", 1], ["r1", 2],
                                                    ["r3", 1]]
    assert long["curve"].tolist()[:3] == [1.0, 0.5, 0.25] and math.isnan(long["curve"].iloc[4])
    assert A.long_frame(t.iloc[0:0], "curve").empty


def test_groups_and_distinct():
    t = A.tidy(raw_store_frame(), {"mse": "result.test/mse"})
    got = [(k, g["run_id"].tolist()) for k, g in A.groups(t, ["family", "d"])]
    assert got == [({"family": "linear", "d": 8}, ["r0", "r1"]), ({"family": "relu", "d": 16}, ["r3"])]
    assert A.distinct(t, "family") == ["linear", "relu"] and A.distinct(t, "nope") == []
    assert list(A.groups(t.iloc[0:0], ["d"])) == []


# ---- intervals ----------------------------------------------------------------------------------------------------


def test_mean_ci_is_the_t_interval_when_it_fits():
    iv = A.mean_ci([7.0, 8.0, 9.0], bounds=A.NONNEGATIVE)
    lo, hi = stats.t.interval(0.95, 2, loc=8.0, scale=1.0 / math.sqrt(3))
    assert (iv.mean, iv.std, iv.n) == (8.0, 1.0, 3)
    assert iv.low == pytest.approx(lo) and iv.high == pytest.approx(hi) and not iv.clipped
    assert iv.half_width == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))


def test_ci_with_two_seeds_stays_inside_the_range():
    # 2 seeds: the t-interval 8 ± 12.7 would reach −4.7; a threshold cannot be negative
    iv = A.mean_ci([7.0, 9.0], bounds=A.NONNEGATIVE)
    raw_half = stats.t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2)
    assert iv.low == 0.0 and iv.high == pytest.approx(8.0 + raw_half) and iv.clipped
    # accuracy near 1 with 2 seeds: clipped at 1 from above, the lower end is the plain t end
    iv = A.mean_ci([0.9, 0.99], bounds=A.PROPORTION)
    assert iv.high == 1.0 and iv.clipped and 0.0 <= iv.low < 0.9
    assert iv.low == pytest.approx(0.945 - stats.t.ppf(0.975, 1) * np.std([0.9, 0.99], ddof=1) / math.sqrt(2))
    agg = A.aggregate(pd.DataFrame({"d": [8, 8, 16, 16], "acc": [0.1, 0.3, 0.97, 0.99]}), ["d"], "acc", A.PROPORTION)
    assert (agg["ci_low"] >= 0).all() and (agg["ci_high"] <= 1).all() and agg["clipped"].all()


def test_mean_ci_edge_cases():
    one = A.mean_ci([5.0, float("nan")])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.low) and math.isnan(one.std) and not one.clipped
    none = A.mean_ci([])
    assert none.n == 0 and math.isnan(none.mean)
    with pytest.raises(ValueError, match="outside the metric's range"):
        A.mean_ci([1.2, 0.5], bounds=A.PROPORTION)
    with pytest.raises(ValueError, match="low < high"):
        A.mean_ci([1.0], bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="confidence"):
        A.mean_ci([1.0, 2.0], confidence=95)


def test_wilson_hand_computed():
    lo, hi = A.wilson(8, 10)  # p = 0.8, z = 1.96: (0.4902, 0.9433)
    assert lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94332, abs=1e-4)
    lo, hi = A.wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.72247, abs=1e-4)
    with pytest.raises(ValueError, match="successes"):
        A.wilson(11, 10)


# ---- bootstrap ----------------------------------------------------------------------------------------------------


def test_bootstrap_band_hand_cases():
    same = np.tile([1.0, 2.0, 3.0], (5, 1))  # every prompt identical: no spread
    band = A.bootstrap_band(same, x=[10, 20, 30], n_boot=50)
    assert band["x"].tolist() == [10, 20, 30] and band["mean"].tolist() == [1.0, 2.0, 3.0]
    assert (band["low"] == band["mean"]).all() and (band["high"] == band["mean"]).all()
    one = A.bootstrap_band(np.array([[1.0, 2.0]]))
    assert one["low"].isna().all() and one["n"].tolist() == [1, 1]
    nan = A.bootstrap_band(np.array([[1.0, np.nan], [3.0, 4.0], [5.0, np.nan]]), n_boot=50)
    assert nan["mean"].tolist() == [3.0, 4.0] and nan["n"].tolist() == [3, 1] and math.isnan(nan["low"].iloc[1])
    with pytest.raises(ValueError, match="2-D"):
        A.bootstrap_band(np.zeros(3))


def test_bootstrap_band_matches_the_normal_interval_on_many_prompts():
    rng = np.random.default_rng(1)
    v = rng.normal(0.0, 1.0, size=(1000, 1))
    band = A.bootstrap_band(v, n_boot=1000, seed=3).iloc[0]
    half = 1.96 * v.std(ddof=1) / math.sqrt(len(v))
    assert (band["high"] - band["low"]) / 2 == pytest.approx(half, rel=0.1)
    assert band["low"] < band["mean"] < band["high"]
    est, lo, hi = A.bootstrap_ci(v[:, 0], n_boot=1000, seed=3)
    assert (lo, hi) == pytest.approx((band["low"], band["high"]), abs=0.01)


def test_bootstrap_band_frame_groups():
    long = pd.DataFrame({"family": ["a"] * 4 + ["b"] * 2, "prompt": [0, 0, 1, 1, 0, 0], "k": [1, 2, 1, 2, 1, 2],
                         "err": [1.0, 0.5, 1.0, 0.5, 2.0, 1.0]})
    band = A.bootstrap_band_frame(long, unit="prompt", x="k", value="err", by=["family"], n_boot=20)
    assert list(band.columns) == ["family", "k", "mean", "low", "high", "n"]
    assert band[["family", "k", "mean"]].values.tolist() == [["a", 1, 1.0], ["a", 2, 0.5], ["b", 1, 2.0],
                                                             ["b", 2, 1.0]]


# ---- crossings ----------------------------------------------------------------------------------------------------


def test_first_crossing_interpolates_and_censors():
    c = A.first_crossing([3, 5, 7, 9, 11], [1.0 - 0.04 * (m - 2.5) for m in (3, 5, 7, 9, 11)], 0.8)
    assert c.censored == "none" and c.value == pytest.approx(7.5) and not c.recovers
    right = A.first_crossing([4, 8, 16], [1.0, 0.95, 0.81], 0.8)
    assert (right.value, right.censored, right.bound, right.label, right.interval) == (None, "right", 16.0, "> 16",
                                                                                      (16.0, math.inf))
    left = A.first_crossing([4, 8, 16], [0.79, 0.5, 0.1], 0.8, floor=1.0)
    assert (left.censored, left.bound, left.label, left.interval) == ("left", 4.0, "< 4", (1.0, 4.0))
    assert A.first_crossing([], [], 0.8).censored == "no data"
    bumpy = A.first_crossing([2, 4, 6, 8], [1.0, 0.6, 0.9, 0.1], 0.8)
    assert bumpy.value == pytest.approx(3.0) and bumpy.recovers
    # error falling over in-context examples: 'below'; accuracy rising over steps: 'above'
    assert A.first_crossing([1, 2, 4, 8], [1.0, 0.6, 0.2, 0.05], 0.1).value == pytest.approx(4 + 4 * 0.1 / 0.15)
    up = A.first_crossing([0, 100, 200, 300], [0.2, 0.4, 0.95, 0.99], 0.9, direction="above")
    assert up.value == pytest.approx(100 + 100 * 0.5 / 0.55)
    assert A.first_crossing([0, 1], [0.95, 0.99], 0.9, direction="above").censored == "left"
    with pytest.raises(ValueError, match="direction"):
        A.first_crossing([1], [1], 0.5, direction="down")


def test_summarize_crossings_two_seeds_stay_non_negative_and_censored_are_not_averaged():
    df = pd.DataFrame({"d": 8, "seed": np.repeat([0, 1, 2], 4), "m": [2, 4, 6, 8] * 3,
                       "acc": [1.0, 0.9, 0.7, 0.5,   1.0, 1.0, 0.9, 0.6,   1.0, 1.0, 0.95, 0.9]})
    cr = A.crossings(df, ["d", "seed"], "m", "acc", 0.8)
    assert cr["value"].tolist()[:2] == pytest.approx([5.0, 6 + 2 * 0.1 / 0.3]) and cr["censored"].tolist() == [
        "none", "none", "right"]
    s = A.summarize_crossings(cr, ["d"]).iloc[0]
    mean = (5.0 + 6 + 2 / 3) / 2
    assert (s["curves"], s["n_exact"], s["n_right"], s["n_left"]) == (3, 2, 1, 0)
    assert s["mean"] == pytest.approx(mean) and s["ci_low"] == 0.0 and s["clipped"]  # raw t low end: < 0
    assert s["ci_high"] == pytest.approx(mean + stats.t.ppf(0.975, 1) * np.std([5.0, 6 + 2 / 3], ddof=1)
                                         / math.sqrt(2))
    assert s["lo"] == pytest.approx(5.0) and s["hi"] == math.inf
    assert s["label"] == f"{mean:.3g} [0, {s['ci_high']:.3g}] (2 seeds); 1 seed > 8"
    all_left = A.summarize_crossings(pd.DataFrame({"d": 8, "value": [np.nan] * 2, "censored": "left",
                                                   "bound": [2.0, 2.0]}), ["d"]).iloc[0]
    assert all_left["label"] == "< 2" and math.isnan(all_left["mean"]) and (all_left["lo"], all_left["hi"]) == (
        0.0, 2.0)


# ---- fits ---------------------------------------------------------------------------------------------------------


def test_linear_fit_matches_linregress_and_covers_the_known_slope():
    rng = np.random.default_rng(0)
    x = np.repeat([8.0, 16.0, 32.0, 64.0], 3)
    y = 0.8 * x + 3 + rng.normal(0, 2, len(x))
    f = A.linear_fit(x, y)
    ref = stats.linregress(x, y)
    assert f.slope == pytest.approx(ref.slope) and f.intercept == pytest.approx(ref.intercept)
    assert f.r2 == pytest.approx(ref.rvalue ** 2) and f.slope_stderr == pytest.approx(ref.stderr)
    assert f.slope_ci[0] < 0.8 < f.slope_ci[1]
    assert f.predict([0.0])[0] == pytest.approx(ref.intercept)


def test_linear_fit_interval_has_its_nominal_coverage():
    rng = np.random.default_rng(5)
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    hits = 0
    for _ in range(400):
        f = A.linear_fit(x, 2.0 * x - 1 + rng.normal(0, 1, len(x)))
        hits += f.slope_ci[0] <= 2.0 <= f.slope_ci[1]
    assert 0.92 <= hits / 400 <= 0.98  # 95% nominal; ±2.2 binomial standard errors


def test_linear_fit_too_few_points_and_bad_input():
    f = A.linear_fit([8, 16], [9.0, 17.0])
    assert f.status == "too few points" and f.slope is None and "2 point(s)" in f.reason
    assert "1 distinct x" in A.linear_fit([8, 8, 8], [1.0, 2.0, 3.0]).reason
    assert A.linear_fit([1, 2, 3, np.nan], [1.0, 2.0, np.nan, 4.0]).status == "too few points"  # 2 valid pairs
    flat = A.linear_fit([1, 2, 3], [5.0, 5.0, 5.0])
    assert flat.status == "ok" and math.isnan(flat.r2) and "R² undefined" in flat.reason
    with pytest.raises(ValueError, match="same length"):
        A.linear_fit([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="predict"):
        f.predict([1])
    fits = A.linear_fits(pd.DataFrame({"g": ["a"] * 3 + ["b"] * 2, "x": [1, 2, 3, 1, 2],
                                       "y": [2.0, 4.0, 6.0, 1.0, 1.0]}), ["g"], "x", "y").set_index("g")
    assert fits.loc["a", "slope"] == pytest.approx(2.0) and fits.loc["b", "status"] == "too few points"


def test_power_law_and_curve_fit_recover_known_exponents():
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    rng = np.random.default_rng(2)
    y = 5.0 * x ** -0.7 * np.exp(rng.normal(0, 0.02, len(x)))
    p = A.power_law_fit(x, y)
    assert p.slope == pytest.approx(-0.7, abs=0.05) and p.slope_ci[0] < -0.7 < p.slope_ci[1]
    with pytest.raises(ValueError, match="x > 0 and y > 0"):
        A.power_law_fit([0, 1, 2], [1, 2, 3])

    xs = np.linspace(0, 5, 40)
    ys = 1.0 - 0.8 * np.exp(-1.5 * xs) + rng.normal(0, 0.01, len(xs))
    fit = A.curve_fit(lambda t, a, b, k: a - b * np.exp(-k * t), xs, ys, ["a", "b", "k"], p0=[1, 1, 1],
                      n_boot=200, seed=0)
    assert fit.status == "ok" and fit.n_points == 40 and fit.n_boot_ok > 150
    for name, true in (("a", 1.0), ("b", 0.8), ("k", 1.5)):
        assert fit.ci[name][0] < true < fit.ci[name][1], name
        assert fit.params[name] == pytest.approx(true, rel=0.05)
    assert fit.rmse == pytest.approx(0.01, rel=0.5)
    few = A.curve_fit(lambda t, a, b: a * t + b, [1.0, 2.0], [1.0, 2.0], ["a", "b"])
    assert few.status == "failed" and "more points than parameters" in few.reason


# ---- the report builder (limitlab.report) -------------------------------------------------------------------------


def envelope(**extra):
    return {"schema": "limitlab.toy.report/3", "study": "toy", "runs": {"total": 2, "done": 2, "used": 2},
            "protocol": [], "claims": [], "warnings": [], "figures": {}, "store": "", "sections": {}, **extra}


def test_write_report_writes_validated_json_pngs_and_page(tmp_path):
    from matplotlib.image import imread

    from limitlab.report import Page, ProtocolTable, lines_with_bands, new_figure, write_report

    runs = pd.DataFrame({"model.n_layers": [2, 2], "optim.lr": [1e-3, 3e-3], "tags.variant": ["a", "b"]})
    proto = ProtocolTable(runs)
    proto.add("layers", "model.n_layers", 2, "[V]")
    proto.add("learning rate", "optim.lr", 1e-3, "[B]")
    fig = new_figure(4, 3)
    band = A.bootstrap_band_frame(pd.DataFrame({"f": "lin", "p": [0, 0, 1, 1], "k": [1, 2, 1, 2],
                                                "e": [1.0, 0.4, 0.8, 0.2]}), "p", "k", "e", by=["f"], n_boot=20)
    lines_with_bands(fig.subplots(), band, "k", by="f")
    section = {"title": "t", "presets": [], "runs": 2, "results": {"mse": float("nan"), "k": np.int64(3)}}
    results = envelope(protocol=proto.rows, figures={"curve": "curve.png"}, sections={"main": section})
    page = Page("toy")
    page.figure("curve.png", "error vs k")
    index = write_report(tmp_path / "out", results, {"curve.png": fig}, page)
    got = json.loads((tmp_path / "out" / "results.json").read_text())
    assert got["sections"]["main"]["results"] == {"mse": None, "k": 3}  # NaN -> null, numpy -> python
    assert [r["status"] for r in got["protocol"]] == ["same", "departure"]
    assert got["protocol"][1]["ours"] == "a: 0.001; b: 0.003"
    assert imread(tmp_path / "out" / "curve.png").shape[0] > 100
    assert 'src="curve.png"' in index.read_text()
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_write_report_refuses_a_bad_results_dict_and_writes_nothing(tmp_path):
    from limitlab.report import Page, validate_results, write_report

    with pytest.raises(ValueError, match=r"invalid at schema"):
        write_report(tmp_path / "a", envelope(schema="counting v1"), {}, Page("x"))
    with pytest.raises(ValueError, match=r"invalid at runs.done"):
        write_report(tmp_path / "a", envelope(runs={"total": 1, "done": -1}), {}, Page("x"))
    with pytest.raises(ValueError, match=r"invalid at protocol.0.status"):
        validate_results(envelope(protocol=[{"item": "x", "paper": "1", "ours": "1", "status": "similar"}]))
    with pytest.raises(ValueError, match="plain file name"):
        write_report(tmp_path / "a", envelope(), {"../up.png": None}, Page("x"))
    with pytest.raises(ValueError, match=r"invalid at sections"):
        write_report(tmp_path / "a", envelope(sections={"main": {"title": "t"}}), {}, Page("x"))
    assert not (tmp_path / "a").exists()


def test_heatmap_helper_marks_missing_cells():
    from limitlab.report import heatmap, new_figure

    pivot = pd.DataFrame([[0.9, np.nan], [0.2, 0.5]], index=pd.Index([8, 16], name="d"),
                         columns=pd.Index([3, 6], name="m"))
    ax = new_figure(3, 2).subplots()
    heatmap(ax, pivot, "acc")
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["0.20", "0.50", "0.90"] and ax.get_xlabel() == "m" and ax.get_ylabel() == "d"
