"""The counting report end to end through the generic writer: on a real smoke store (trained 20 steps), on a store
with fabricated results whose m_thr line is known, and on an empty store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from limitlab.cli import main
from limitlab.executors import train_sweep
from limitlab.report import validate_results
from limitlab.report.schema import StudyResults
from limitlab.report.study_report import write_study_report
from limitlab.store import RunStore
from limitlab.studies import STUDIES
from limitlab.studies.counting import analysis as A
from limitlab.studies.counting import claims as C
from limitlab.studies.counting.study import counting_specs, smoke
from limitlab.train.trainer import TrainOptions

PNG = b"\x89PNG\r\n\x1a\n"
STUDY = STUDIES["counting"]


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("smoke") / "store")
    train_sweep(smoke(steps=20, ms=(3, 6)), store, TrainOptions())
    return store


def rows(results) -> dict[str, dict]:
    return {c["id"]: c for c in results["claims"]}


def check_figures(out, results):
    html = (out / "index.html").read_text()
    assert results["figures"], "no figures"
    for name in results["figures"]:
        path = out / name
        assert path.read_bytes()[:8] == PNG, name
        img = imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, name
        assert f'src="{name}"' in html, f"index.html does not show {name}"
    return html


def test_study_is_on_the_contract():
    assert [e.key for e in STUDY.experiments] == ["threshold", "ood", "constructions"]
    assert STUDY.protocol is not None and len(STUDY.claims) == 10
    quick = STUDY.specs("quick")
    seeds = {s.seed for s in quick}
    assert len(seeds) >= 3 and {s.task.kind for s in quick} == {"qc", "mfc"}
    nope = [s for s in quick if s.model.position == "none"]
    assert nope and {s.tags["variant"] for s in nope} == {"bos_nope"} and {s.model.d_model for s in nope} == {8}


def test_report_on_smoke_store(smoke_store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "counting", "--store", str(smoke_store.root), "--out", str(out)]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    validate_results(r, StudyResults)
    df = smoke_store.to_dataframe("counting")
    runs = A.tidy(df)
    assert r["schema"] == "limitlab.counting.report/3" and r["runs"]["done"] == len(df) == 8
    assert [c["id"] for c in r["claims"]] == [c.id for c in STUDY.claims]
    assert set(r["sections"]) == {"threshold", "ood", "constructions"}
    by_id = rows(r)
    # 1 seed, 2 d: too few for a shape, the paired MFC/QC test or any interval; the NoPE contrast is not in smoke
    assert by_id[C.MTHR_LINEAR_QC.id]["verdict"] in ("not measured", "inconclusive")
    assert by_id[C.OOD_LONG.id]["verdict"] == "not measured"
    # every hand-wired cell of the smoke grid (d ∈ {8, 16}, m ∈ {3, 6}) is inside the exact regimes
    assert by_id[C.HISTOGRAM_QC.id]["verdict"] == by_id[C.HISTOGRAM_MFC.id]["verdict"] == "agree"
    cells = r["sections"]["constructions"]["results"]["cells"]
    assert [(c["task"], c["d"], c["m"], c["n"]) for c in cells] == [
        (t, d, m, 4 * m) for t in ("qc", "mfc") for d in (8, 16) for m in (3, 6)]
    for c in cells:
        sel = runs[(runs.task == c["task"]) & (runs.d == c["d"]) & (runs.m == c["m"])]
        assert c["trained"]["bos"] == pytest.approx(sel["accuracy"].mean())
    # the m_thr table agrees with the analysis of the store's DataFrame
    summary = A.summarize_thresholds(A.thresholds(runs))
    got = {(x["task"], x["d"]): x["label"] for x in r["sections"]["threshold"]["results"]["m_thr"]}
    assert got == {(t, d): lab for t, d, lab in zip(summary["task"], summary["d"], summary["label"])}
    proto = {row["item"]: row for row in r["protocol"]}
    assert proto["steps"]["ours"] == "20" and proto["steps"]["status"] == "departure"
    assert proto["n per m (n = k·m)"]["ours"] == "4" and proto["LayerNorm"]["ours"] == "none"
    html = check_figures(out, r)
    assert {"heatmap_qc_bos.png", "mthr_qc.png", "constructed_qc.png", "ood.png"} <= set(r["figures"])
    assert "does not test" in html and "not measured" in html


def _fake_accuracy(task: str, d: int, m: int, seed: int) -> float:
    """QC crosses 0.8 at m = d + 2 (+0.5 per seed), MFC at m = d/2 (+0.25 per seed); slope 0.05 per m."""
    thr = d + 2 + 0.5 * seed if task == "qc" else d / 2 + 0.25 * seed
    return float(np.clip(0.8 - 0.05 * (m - thr), 0.0, 1.0))


def test_report_recovers_a_known_line(tmp_path):
    specs = counting_specs(ds=(8, 16, 32), ms=(2, 4, 8, 12, 16, 24, 32, 36, 40), tasks=("qc", "mfc"), seeds=3,
                           variants=("bos",), steps=10, n_per_m=2)
    store = RunStore(tmp_path / "store")
    store.add(specs)
    store.claim([s.run_id for s in specs])
    for spec in specs:
        t = spec.tags
        if t["task"] == "mfc" and t["d"] == 32 and t["seed"] == 2:
            store.fail(spec.run_id, "diverged")
            continue
        acc = _fake_accuracy(t["task"], t["d"], t["m"], t["seed"])
        store.finish(spec.run_id, {"step": 10, "train_loss": 1.0, "test/accuracy": acc,
                                   "ood_long/accuracy": 0.1 * acc})
    out = tmp_path / "report"
    assert main(["report", "counting", "--store", str(store.root), "--out", str(out), "--set",
                 "construction_sequences=32"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["sections"]["constructions"]["results"]["n_sequences"] == 32
    res = r["sections"]["threshold"]["results"]
    fit = {(f["task"], f["variant"]): f for f in res["fits"]}
    assert fit[("qc", "bos")]["slope a"] == pytest.approx(1.0) and fit[("qc", "bos")]["intercept b"] == \
        pytest.approx(2.5)
    assert fit[("mfc", "bos")]["slope a"] == pytest.approx(0.5, abs=0.01)  # one failed run: seeds unbalanced
    by_id = rows(r)
    assert by_id[C.MTHR_LINEAR_QC.id]["verdict"] == "agree"  # exact lines: every rival is far worse
    assert by_id[C.AT_D_QC.id]["verdict"] == "agree"  # m_thr/d = 1 + (2 + 0.5·seed)/d, about 1.2
    assert by_id[C.AT_D_MFC.id]["verdict"] == "disagree"  # m_thr/d about 0.52: below 2/3
    assert by_id[C.MFC_LE_QC.id]["verdict"] == "agree"
    assert by_id[C.MFC_LE_QC.id]["seeds"] == 3 and "left out" in by_id[C.MFC_LE_QC.id]["note"]
    assert by_id[C.OOD_LONG.id]["verdict"] == "not measured"  # learned positions only: not judged
    assert r["runs"]["failed"] == 9 and any("failed" in w for w in r["warnings"])
    for x in res["m_thr"]:
        assert x["ci_low"] is None or x["ci_low"] >= 0.0
    check_figures(out, r)


def test_report_on_an_empty_store(tmp_path):
    store = RunStore(tmp_path / "store")  # the CLI refuses an empty store; the writer itself must not fail
    write_study_report(STUDY, store, tmp_path / "report")
    r = json.loads((tmp_path / "report" / "results.json").read_text())
    assert r["runs"]["total"] == 0 and r["figures"] == {}
    assert all(c["verdict"] == "not measured" for c in r["claims"])
    assert "No finished counting runs" in (tmp_path / "report" / "index.html").read_text()


def test_repro_preset_spans_six_d_with_an_m_grid_up_to_twice_d():
    repro = STUDY.specs("repro")
    assert {s.seed for s in repro} == {0, 1, 2} and {s.task.kind for s in repro} == {"qc", "mfc"}
    assert sorted({s.model.d_model for s in repro}) == [4, 8, 12, 16, 32, 64]  # ≥ 5 d, up to 64
    qc = {d: sorted({s.task.m for s in repro if s.task.kind == "qc" and s.model.d_model == d}) for d in (4, 32)}
    assert qc == {4: [3, 4, 6, 8], 32: [3, 4, 6, 8, 12, 16, 24]}
    assert all(s.train.steps == 3000 and s.task.bos and s.task.n == 5 * s.task.m for s in repro)  # quick's recipe
    assert {C.MTHR_LINEAR_QC.preset, C.AT_D_MFC.preset, C.MFC_LE_QC.preset} == {"repro"}


def test_missing_cell_warning_is_per_d():
    from limitlab.studies.counting.experiments import _warnings

    runs = A.tidy(pd.DataFrame([{"status": "done", "task.kind": "qc", "tags.variant": "bos", "model.d_model": d,
                                 "task.m": m, "task.n": 5 * m, "seed": s, "result.test/accuracy": 1.0}
                                for d, grid in ((4, (3, 4)), (8, (3, 4, 6, 8))) for m in grid for s in (0, 1)]))
    assert not any("missing" in w for w in _warnings(runs, A.thresholds(runs)))  # a shorter grid at small d
    fewer = runs[~((runs["d"] == 8) & (runs["m"] == 8) & (runs["seed"] == 1))]
    assert any("1 of 12" in w for w in _warnings(fewer, A.thresholds(fewer)))
    twice = pd.concat([runs, runs.iloc[:1]])
    assert any("more than one run" in w for w in _warnings(twice, A.thresholds(twice)))
