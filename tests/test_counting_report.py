"""The counting report end to end: on a real smoke store (trained 20 steps), on a store with fabricated results
whose m_thr line is known, and on an empty store."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from matplotlib.image import imread

from limitlab.cli import main
from limitlab.executors import train_sweep
from limitlab.store import RunStore
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting.report import RESULTS_SCHEMA, write_report
from limitlab.studies.counting.study import counting_specs, smoke
from limitlab.train.trainer import TrainOptions

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("smoke") / "store")
    train_sweep(smoke(steps=20, variants=("base",), ms=(3, 6)), store, TrainOptions())
    return store


def verdict(results, prefix, scope):
    (hit,) = [c for c in results["claims"] if c["claim"].startswith(prefix) and c["scope"] == scope]
    return hit["verdict"]


def check_figures(out, results):
    html = (out / "index.html").read_text()
    assert results["figures"], "no figures"
    for name in results["figures"].values():
        path = out / name
        assert path.read_bytes()[:8] == PNG, name
        img = imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, name
        assert f'src="{name}"' in html, f"index.html does not show {name}"
    return html


def test_constructions_module_exists():
    # the report degrades gracefully without it; the test suite must not
    from limitlab.studies.counting import constructions

    assert callable(constructions.construction_grid)


def test_report_on_smoke_store(smoke_store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "counting", "--store", str(smoke_store.root), "--out", str(out)]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    df = smoke_store.to_dataframe("counting")
    runs = A.tidy(df)

    assert r["schema"] == RESULTS_SCHEMA
    assert {"runs", "grid", "protocol", "results", "constructions", "claims", "warnings", "figures"} <= set(r)
    assert r["runs"]["done"] == len(df) == r["runs"]["used"] == 8
    assert r["grid"] == {"tasks": ["qc", "mfc"], "variants": ["base"], "d": [8, 16], "m": [3, 6], "seeds": [0]}

    # every accuracy cell and every m_thr agrees with the DataFrame
    thr = A.thresholds(runs)
    for task in ("qc", "mfc"):
        res = r["results"][task]["base"]
        assert len(res["accuracy"]) == 4
        for cell in res["accuracy"]:
            sel = runs[(runs.task == task) & (runs.d == cell["d"]) & (runs.m == cell["m"])]
            assert cell["mean"] == pytest.approx(sel["accuracy"].mean())
            assert cell["ood_mean"] == pytest.approx(sel["ood_accuracy"].mean())
        assert [x["d"] for x in res["m_thr"]] == [8, 16]
        for x in res["m_thr"]:
            (seed,) = x["per_seed"]
            want = thr[(thr.task == task) & (thr.d == x["d"])].iloc[0]
            assert seed["censored"] == want["censored"] and seed["label"] == want["label"]
            if want["censored"] == "none":
                assert seed["m_thr"] == pytest.approx(want["m_thr"])
            else:
                assert seed["m_thr"] is None
        # 2 d × 1 seed is never enough for a line: the report must say so
        assert res["fit"]["status"] == "too few points" and res["fit"]["a"] is None
        assert res["ood"]["runs"] == 4

    # the protocol is read from the specs, not assumed
    proto = {row["item"]: row for row in r["protocol"]}
    assert proto["steps"]["ours"] == "20" and proto["steps"]["status"] == "departure"
    assert proto["heads"]["ours"] == str(int(df["model.n_heads"].iloc[0]))
    assert proto["learning rate"]["ours"] == f"{df['optim.lr'].iloc[0]:g}"
    assert proto["n per m (n = k·m)"]["ours"] == "4" and proto["LayerNorm"]["ours"] == "none"
    assert proto["layers"]["status"] == "same"

    # constructions on the trained grid: d ∈ {8, 16}, m ∈ {3, 6}: all inside the exact regimes (QC m ≤ d − 1,
    # MFC m ≤ d − 2), so every hand-wired model must be exact
    cons = r["constructions"]
    assert cons["available"], cons.get("error")
    assert cons["tasks"] == ["qc", "mfc"]
    want = [(t, d, m, 4 * m) for t in ("qc", "mfc") for d in (8, 16) for m in (3, 6)]
    assert [(c["task"], c["d"], c["m"], c["n"]) for c in cons["cells"]] == want
    assert all(c["histogram"] == 1.0 and c["histogram_exact_regime"] for c in cons["cells"])
    for c in cons["cells"]:
        sel = runs[(runs.task == c["task"]) & (runs.d == c["d"]) & (runs.m == c["m"])]
        assert c["trained"]["base"] == pytest.approx(sel["accuracy"].mean())

    assert {c["verdict"] for c in r["claims"]} <= {"agree", "disagree", "not measured"}
    assert verdict(r, "m_thr grows", "qc/base") == "not measured"
    assert any(c["verdict"] == "agree" and "histogram" in c["scope"] for c in r["claims"])

    html = check_figures(out, r)
    assert set(r["figures"]) == {"heatmap/qc/base", "heatmap/mfc/base", "mthr/qc", "mthr/mfc", "constructed/qc",
                                 "constructed/mfc", "ood"}
    for text in ("agree", "not measured", "departure", "too few points"):
        assert text in html
    assert html.count("<table") >= 5


def _fake_accuracy(task: str, d: int, m: int, seed: int) -> float:
    """QC crosses 0.8 at m = d + 2 (+0.5 per seed), MFC at m = d/2 + 1; 5 accuracy points per unit of m."""
    thr = d + 2 + 0.5 * seed if task == "qc" else d / 2 + 1
    return float(np.clip(0.8 - 0.05 * (m - thr), 0.0, 1.0))


def test_report_recovers_a_known_line(tmp_path):
    specs = counting_specs(ds=(8, 16, 32), ms=(4, 8, 12, 16, 24, 32, 36, 40), tasks=("qc", "mfc"), seeds=2,
                           variants=("base", "bos"), steps=10, n_per_m=2, ood=True)
    store = RunStore(tmp_path / "store")
    store.add(specs)
    ids = store.claim([s.run_id for s in specs])
    for spec in specs:
        t = spec.tags
        if t["variant"] == "bos" and (t["d"] == 32 or t["seed"] == 1):
            store.release([spec.run_id])  # a partial variant: missing cells stay pending
            continue
        if t["variant"] == "bos" and t["m"] == 4 and t["d"] == 8:
            store.fail(spec.run_id, "diverged")
            continue
        acc = _fake_accuracy(t["task"], t["d"], t["m"], t["seed"])
        store.finish(spec.run_id, {"step": 10, "train_loss": 1.0, "test/accuracy": acc,
                                   "ood_long/accuracy": 0.1 * acc})
    assert ids
    out = tmp_path / "report"
    index = write_report(store, out, construction_sequences=32)
    r = json.loads((out / "results.json").read_text())

    qc = r["results"]["qc"]["base"]
    by_d = {x["d"]: x for x in qc["m_thr"]}
    for d in (8, 16, 32):
        assert by_d[d]["mean"] == pytest.approx(d + 2.25) and by_d[d]["n_exact"] == 2
        assert by_d[d]["std"] == pytest.approx(math.sqrt(0.125))
        assert by_d[d]["ci95"][0] < d + 2.25 < by_d[d]["ci95"][1]
    f = qc["fit"]
    assert f["status"] == "ok" and f["a"] == pytest.approx(1.0) and f["b"] == pytest.approx(2.25)
    assert f["r2"] == pytest.approx(1.0, abs=1e-3) and f["n_points"] == 6
    mfc = r["results"]["mfc"]["base"]["fit"]
    assert mfc["a"] == pytest.approx(0.5) and mfc["b"] == pytest.approx(1.0)

    # the partial variant: 2 d × 1 seed left, one failed cell, the rest pending
    bos = r["results"]["qc"]["bos"]
    assert [x["d"] for x in bos["m_thr"]] == [8, 16] and bos["fit"]["status"] == "too few points"
    assert r["runs"]["failed"] == 2 and r["runs"]["pending"] > 0
    joined = " ".join(r["warnings"])
    assert "failed" in joined and "not finished" in joined and "missing" in joined

    assert verdict(r, "m_thr grows", "qc/base") == "agree"
    assert verdict(r, "m_thr grows", "mfc/base") == "agree"
    assert verdict(r, "sharp transition", "qc/base") == "agree"
    assert verdict(r, "catastrophic OOD", "qc/base") == "agree"
    assert verdict(r, "m_thr(MFC) ≤ m_thr(QC)", "mfc vs qc/base") == "agree"
    assert verdict(r, "m_thr grows", "qc/bos") == "not measured"

    cons = r["constructions"]
    assert cons["available"] and cons["n_sequences"] == 32
    cells = {(c["task"], c["d"], c["m"]): c for c in cons["cells"]}
    assert cells[("qc", 8, 4)]["histogram"] == 1.0 and cells[("qc", 8, 4)]["count_attend"] is None
    assert cells[("qc", 8, 40)]["count_attend"] == 1.0 and not cells[("qc", 8, 40)]["histogram_exact_regime"]
    assert cells[("mfc", 8, 4)]["histogram"] == 1.0 and cells[("mfc", 8, 8)]["histogram_exact_regime"] is False
    assert cells[("mfc", 8, 40)]["count_attend"] is None  # CountAttend is a QC construction
    assert cells[("qc", 8, 40)]["trained"]["base"] == pytest.approx(_fake_accuracy("qc", 8, 40, 0) / 2
                                                              + _fake_accuracy("qc", 8, 40, 1) / 2)

    html = check_figures(out, r)
    assert index == out / "index.html"
    assert re.search(r"m_thr = 1·d \+ 2\.25", html), "the fitted line is not on the page"


def test_report_on_an_empty_store(tmp_path):
    store = RunStore(tmp_path / "store")
    index = write_report(store, tmp_path / "report")
    r = json.loads((tmp_path / "report" / "results.json").read_text())
    assert r["runs"]["total"] == 0 and r["results"] == {} and r["figures"] == {}
    assert all(c["verdict"] == "not measured" for c in r["claims"])
    assert "No finished counting runs" in index.read_text()


def test_two_seed_interval_stays_non_negative_and_schema_enforces_it(tmp_path):
    # 2 seeds with m_thr 3 and 7 at d = 8: the raw t-interval is 5 ± 25.4, i.e. below zero
    specs = counting_specs(ds=(8, 16), ms=(2, 4, 6, 8, 10, 12), tasks=("qc",), seeds=2, steps=10, n_per_m=2)
    store = RunStore(tmp_path / "store")
    store.add(specs)
    store.claim([s.run_id for s in specs])
    for spec in specs:
        t = spec.tags
        thr = (3.0 if t["seed"] == 0 else 7.0) if t["d"] == 8 else 9.0 + t["seed"]
        acc = float(np.clip(0.8 - 0.05 * (t["m"] - thr), 0.0, 1.0))
        store.finish(spec.run_id, {"step": 10, "train_loss": 1.0, "test/accuracy": acc})
    write_report(store, tmp_path / "report", constructions=False)
    r = json.loads((tmp_path / "report" / "results.json").read_text())
    by_d = {x["d"]: x for x in r["results"]["qc"]["base"]["m_thr"]}
    raw_half = 12.706204736174707 * math.sqrt(8.0) / math.sqrt(2)  # t(0.975, 1) · std / √2, std of 3 and 7 = √8
    assert by_d[8]["mean"] == pytest.approx(5.0) and by_d[8]["ci95"] == pytest.approx([0.0, 5.0 + raw_half])
    assert by_d[8]["ci95_clipped"] and by_d[8]["label"] == f"5 [0, {5.0 + raw_half:.3g}] (2 seeds)"
    half16 = 12.706204736174707 * math.sqrt(0.5) / math.sqrt(2)  # 9 and 10: 9.5 ± 6.35 stays above 0, unclipped
    assert by_d[16]["ci95"] == pytest.approx([9.5 - half16, 9.5 + half16]) and not by_d[16]["ci95_clipped"]
    assert by_d[16]["label"] == f"9.5 ± {half16:.3g} (2 seeds)"
    html = (tmp_path / "report" / "index.html").read_text()
    assert "CI clipped at 0" in html

    from limitlab.report import validate_results
    from limitlab.studies.counting.schema import CountingResults

    validate_results(r, CountingResults)
    by_d[8]["ci95"] = [-1.0, 10.0]
    with pytest.raises(ValueError, match="0 ≤ low ≤ high"):
        validate_results(r, CountingResults)
