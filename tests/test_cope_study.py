"""The CoPE study end to end: presets validate, the smoke preset trains on CPU, the report writes its tables."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from limitlab.executors import train_sweep
from limitlab.report.sections import ReportContext
from limitlab.store import RunStore
from limitlab.studies import STUDIES
from limitlab.train.trainer import TrainOptions


def test_presets_expand_and_validate():
    study = STUDIES["cope"]
    quick = study.specs("quick")
    assert len(quick) == 27 and {s.tags["task"] for s in quick} == {"flip_flop", "selective_copy", "variable_counting"}
    by_task = {t: {s.tags["pe"] for s in quick if s.tags["task"] == t} for t in ("flip_flop", "variable_counting")}
    assert by_task == {"flip_flop": {"absolute", "rope", "cope"}, "variable_counting": {"absolute", "relative", "cope"}}
    assert {s.seed for s in quick} == {0, 1, 2}
    counting = [s for s in quick if s.tags["task"] == "variable_counting"]
    assert all(s.task.n_vars == 3 for s in counting)  # the claim cope.counting_3var_* is measured by quick
    cope = next(s for s in counting if s.tags["pe"] == "cope")
    assert cope.model.position_options["p_max"] > cope.task.seq_len()  # uncapped, as RAM's default
    paper = study.specs("paper")
    ff = [s for s in paper if s.tags["task"] == "flip_flop" and "ablation" not in s.tags]
    assert {s.tags["pe"] for s in ff} >= {"absolute", "relative", "relative_capped", "rope", "nope", "alibi", "cope",
                                         "cope+relative", "cope_sepkey"}
    assert all(s.model.n_layers == 4 and s.model.d_model == 256 and s.model.n_heads == 4 for s in ff)
    assert all(s.train.steps == 10_000 and s.task.length == 512 for s in ff)
    assert sorted({s.tags["p_max"] for s in paper if s.tags.get("ablation") == "p_max"}) == [4, 16, 256]
    sep = next(s for s in ff if s.tags["pe"] == "cope_sepkey")
    assert sep.model.position_options["cope_sep_key"] is True
    capped = next(s for s in ff if s.tags["pe"] == "relative_capped")
    assert capped.model.position_options["rel_max_distance"] == 64
    uncapped = next(s for s in ff if s.tags["pe"] == "relative")
    assert uncapped.model.position_options["rel_max_distance"] >= 512
    lm = [s for s in paper if s.tags["task"] == "text_lm"]
    learned = next(s for s in lm if s.tags["pe"] == "absolute")
    assert learned.model.max_len >= int(2.5 * learned.task.length)  # learned positions cover the longest split
    assert {s.tags["pe"] for s in lm} >= {"cope", "cope+rope", "relative_capped"}


def _raw(task: str, errors: dict[str, list[float]], split: str = "sparse", **task_cols) -> pd.DataFrame:
    """A store-like frame: one finished run per (encoding, seed) of ``task`` with ``<split>/error`` (fractions)."""
    rows = []
    for pe, values in errors.items():
        for seed, err in enumerate(values):
            rows.append({"run_id": f"{pe}-{seed}", "status": "done", "seed": seed, "tags.task": task, "tags.pe": pe,
                         f"result.{split}/error": err, **task_cols})
    return pd.DataFrame(rows)


def _verdicts(key: str, raw: pd.DataFrame) -> dict[str, dict]:
    study = STUDIES["cope"]
    (exp,) = [e for e in study.experiments if e.key == key]
    sec = exp.run(ReportContext(study, None, raw, raw))
    return {r.claim.id: {"verdict": r.verdict, "ours": r.ours} for r in sec.claims}


# the paired per-seed gain (baseline − CoPE): agree above 0, disagree below, inconclusive when it straddles 0
@pytest.mark.parametrize("rope, cope, expected", [
    ([0.20, 0.25, 0.30], [0.0, 0.01, 0.0], "agree"),               # CoPE lower on every seed, tight
    ([0.0, 0.01, 0.0], [0.20, 0.25, 0.30], "disagree"),             # CoPE higher on every seed
    ([0.18, 0.03, 0.15], [0.0, 0.0, 0.0], "inconclusive"),          # lower on 3 of 3, but the interval straddles 0
    ([0.10, 0.30, 0.05], [0.20, 0.10, 0.30], "inconclusive"),       # mixed
])
def test_cope_vs_baseline_is_a_paired_per_seed_test(rope, cope, expected):
    v = _verdicts("flip_flop", _raw("flip_flop", {"rope": rope, "cope": cope}))
    row = v["cope.flip_flop_sparse_vs_rope"]
    assert row["verdict"] == expected
    assert "points over 3 seeds" in row["ours"] and "CoPE lower on" in row["ours"]
    assert v["cope.flip_flop_sparse_vs_absolute"]["verdict"] == "not measured"  # no absolute runs


def test_the_pairing_is_by_seed_not_by_mean():
    """Same means and spreads, different pairing: a seed-matched gain is decided where unpaired means are not."""
    rope, cope = [0.10, 0.20, 0.30], [0.05, 0.15, 0.25]              # CoPE 5 points lower on every seed
    assert _verdicts("flip_flop", _raw("flip_flop", {"rope": rope, "cope": cope}))[
        "cope.flip_flop_sparse_vs_rope"]["verdict"] == "agree"
    assert _verdicts("flip_flop", _raw("flip_flop", {"rope": rope, "cope": cope[::-1]}))[
        "cope.flip_flop_sparse_vs_rope"]["verdict"] == "inconclusive"


# ICLR fragility: the paired gain at or below 7.5 points agrees, above disagrees, straddling is inconclusive
@pytest.mark.parametrize("rope, cope, expected", [
    ([0.17, 0.18, 0.19], [0.18, 0.17, 0.20], "agree"),              # no gain: ICLR's Table 8
    ([0.20, 0.21, 0.22], [0.04, 0.05, 0.05], "disagree"),           # a robust ~16-point gain: the arXiv table
    ([0.183, 0.033, 0.154], [0.0, 0.0, 0.0], "inconclusive"),       # CoPE lower on 3 of 3, interval [-7, 32]
])
def test_flip_flop_fragility_is_paired_with_the_published_threshold(rope, cope, expected):
    v = _verdicts("flip_flop", _raw("flip_flop", {"rope": rope, "cope": cope}))
    assert v["cope.flip_flop_ood_gain_fragile"]["verdict"] == expected


def test_flip_flop_fragility_cannot_agree_where_ropes_error_is_below_the_threshold():
    """RoPE at 4% error: no gain can exceed 7.5 points, so 'agree' would be guaranteed; the row says inconclusive."""
    v = _verdicts("flip_flop", _raw("flip_flop", {"rope": [0.04, 0.05, 0.03], "cope": [0.0, 0.01, 0.0]}))
    row = v["cope.flip_flop_ood_gain_fragile"]
    assert row["verdict"] == "inconclusive" and "no gain here can exceed it" in row["ours"]


def test_too_few_seeds_is_inconclusive():
    v = _verdicts("selective_copy", _raw("selective_copy", {"absolute": [0.8, 0.7], "cope": [0.0, 0.0]}, "dense"))
    assert v["cope.selective_copy_dense_vs_absolute"]["verdict"] == "inconclusive"
    assert "needs 3 seeds" in v["cope.selective_copy_dense_vs_absolute"]["ours"]


@pytest.mark.parametrize("relative, cope, expected", [
    ([0.18, 0.17, 0.19], [0.01, 0.02, 0.01], "agree"),
    ([0.01, 0.02, 0.01], [0.18, 0.17, 0.19], "disagree"),
    ([0.05, 0.01, 0.09], [0.04, 0.05, 0.03], "inconclusive"),
])
def test_counting_claims_pair_seeds_per_number_of_variables(relative, cope, expected):
    raw = _raw("variable_counting", {"relative": relative, "cope": cope}, "test", **{"task.n_vars": 3})
    v = _verdicts("counting", raw)
    assert v["cope.counting_3var_vs_relative"]["verdict"] == expected
    assert v["cope.counting_1var_vs_relative"]["verdict"] == "not measured"
    assert "'paper' preset" in v["cope.counting_5var_vs_absolute"]["ours"]


def _lm_raw(ppl: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """LM runs on the standard library: (perplexity at T, at 2.5T) per encoding and seed."""
    rows = []
    for pe, values in ppl.items():
        for seed, (at_t, far) in enumerate(values):
            rows.append({"run_id": f"{pe}-{seed}", "status": "done", "seed": seed, "tags.task": "text_lm",
                         "tags.pe": pe, "task.corpus": "stdlib", "result.test/loss": math.log(at_t),
                         "result.ctx2.5x/loss": math.log(far)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("cope, falls, below_relative", [
    ([(8.0, 7.5), (8.1, 7.7), (7.9, 7.4)], "agree", "agree"),        # falls past T on every seed
    ([(8.0, 8.5), (8.1, 8.7), (7.9, 8.4)], "disagree", "agree"),     # rises, but less than relative
    ([(8.0, 7.5), (8.1, 8.7), (7.9, 7.8)], "inconclusive", "inconclusive"),
    ([(8.0, 9.5), (8.1, 9.7), (7.9, 9.4)], "disagree", "disagree"),  # rises more than relative
])
def test_lm_extrapolation_claims(cope, falls, below_relative):
    relative = [(7.8, 9.0), (7.9, 9.2), (7.7, 8.9)]
    v = _verdicts("lm", _lm_raw({"relative": relative, "cope": cope, "rope": [(8.5, 9.0)] * 3}))
    assert v["cope.lm_extrapolation_falls"]["verdict"] == falls
    assert v["cope.lm_extrapolation_vs_relative"]["verdict"] == below_relative
    assert v["cope.lm_stdlib_vs_rope"]["verdict"] == "agree" and v["cope.lm_text_vs_absolute"]["verdict"] == \
        "not measured"


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cope")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(10):
        (corpus / f"f{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 40)
    specs = STUDIES["cope"].specs("smoke", {"study.corpus": str(corpus)})
    assert len(specs) == 8
    store = RunStore(root / "store")
    summary = train_sweep(specs, store, TrainOptions(save_weights=True, log_every=10**9))
    assert summary["trained"] == 8 and summary["failed"] == 0
    return store


def test_smoke_trains_and_reports(smoke_store, tmp_path):
    out = tmp_path / "report"
    index = STUDIES["cope"].report(smoke_store, out)
    res = json.loads((out / "results.json").read_text())
    assert res["runs"]["done"] == 8 and res["schema"] == "limitlab.cope.report/3"
    assert [c["id"] for c in res["claims"]] == [c.id for c in STUDIES["cope"].claims]
    ff = {row["pe"]: row for row in res["sections"]["flip_flop"]["results"]["rows"]}
    assert set(ff) == {"absolute", "rope", "cope"}
    assert ff["cope"]["test"]["paper"] == 0.0 and ff["rope"]["sparse"]["paper"] == pytest.approx(20.3)
    assert all(0 <= ff[pe]["test"]["mean"] <= 100 for pe in ff) and len(ff["cope"]["dense"]["per_seed"]) == 1
    assert res["sections"]["counting"]["results"]["rows"][0]["paper"] == 0.0  # 1 variable, CoPE: 0.0% in Table 3
    lm = res["sections"]["lm"]["results"]["rows"][0]
    assert lm["pe"] == "cope" and lm["test"]["mean"] > 1 and lm["ctx2x"]["mean"] > 1
    assert len(res["sections"]["lm"]["results"]["curves"]["text"]["cope"]["ctx2x"]) == 32  # loss per position at 2T
    verdicts = {c["id"]: c["verdict"] for c in res["claims"]}
    assert verdicts["cope.flip_flop_test_vs_rope"] == "inconclusive"  # one seed: too few
    assert verdicts["cope.counting_3var_vs_relative"] == "not measured"
    assert res["sections"]["cope_map"]["results"]["map"]["drawn"]
    for name in ("cope_map.png", "errors_flip_flop.png", "errors_selective_copy.png", "counting.png", "lm_text.png"):
        assert (out / name).exists() and res["figures"][name] == name
    assert {r["item"] for r in res["protocol"]} >= {"flip_flop: length", "variable_counting: truncation"}
    html = index.read_text()
    assert "Selective copy: error" in html and "paired by seed" in html


def test_report_never_trains_and_names_the_command_without_weights(smoke_store, tmp_path, monkeypatch):
    import shutil

    import limitlab.train.trainer as trainer

    copy = RunStore(shutil.copytree(smoke_store.root, tmp_path / "store"))
    for weights in (tmp_path / "store").rglob("weights.safetensors"):
        weights.unlink()
    monkeypatch.setattr(trainer.StackTrainer, "__init__", lambda *a, **k: pytest.fail("a report trained"))
    out = tmp_path / "report"
    html = STUDIES["cope"].report(copy, out).read_text()
    res = json.loads((out / "results.json").read_text())
    assert res["sections"]["cope_map"]["results"]["map"] == {"drawn": False}
    assert not (out / "cope_map.png").exists() and "--save-weights" in html


def test_report_of_an_empty_store(tmp_path):
    store = RunStore(tmp_path / "empty")
    index = STUDIES["cope"].report(store, tmp_path / "report")
    res = json.loads((tmp_path / "report" / "results.json").read_text())
    assert res["runs"]["total"] == 0 and {c["verdict"] for c in res["claims"]} == {"not measured"}
    assert "No finished cope runs" in index.read_text()


def test_cope_map_captures_positions_of_every_layer():
    import torch

    from limitlab.spec import RunSpec
    from limitlab.studies.cope.attention import cope_maps
    from limitlab.train.trainer import build_model

    spec = RunSpec(study="cope", task={"name": "selective_copy", "vocab": 4, "n_tokens": 3, "blanks": 5},
                   model={"d_model": 16, "n_heads": 2, "n_layers": 2, "position": "cope",
                          "position_options": {"p_max": 4}}, seed=3)
    model = build_model([spec])
    with torch.no_grad():
        for block in model.blocks:
            block.attn.encodings[0].table.normal_()  # a non-zero table, so positions matter
    maps = cope_maps(model, spec)
    t = spec.task.seq_len()
    assert len(maps["attention"]) == len(maps["positions"]) == 2
    for attn, pos in zip(maps["attention"], maps["positions"]):
        assert attn.shape == pos.shape == (2, t, t)
        assert torch.allclose(attn.sum(-1), torch.ones(2, t), atol=1e-5)
        lower = torch.tril(torch.ones(t, t, dtype=torch.bool))
        assert (pos[:, ~lower] == 0).all() and (pos <= 4).all()
        assert (pos[..., :-1] >= pos[..., 1:] - 1e-6).all()  # p_ij does not increase with the key index j
        assert ((pos.diagonal(dim1=-2, dim2=-1) > 0) & (pos.diagonal(dim1=-2, dim2=-1) <= 1)).all()  # p_ii = g_ii
    assert "positions" not in vars(model.blocks[0].attn.encodings[0])  # the capture hook is removed


def test_repro_preset_lm_extrapolation_and_p_max_ablation():
    from limitlab.studies.cope import claims as C

    repro = STUDIES["cope"].specs("repro")
    lm = [s for s in repro if s.tags["task"] == "text_lm"]
    assert {s.tags["pe"] for s in lm} == {"absolute", "relative", "rope", "cope", "cope+rope"}
    assert {s.seed for s in lm} == {0, 1, 2} and {s.task.length for s in lm} == {64}
    assert set(lm[0].task.splits()) == {"test", "ctx2x", "ctx3x", "ctx4x"}  # evaluated at T, 2T, 3T, 4T
    learned = next(s for s in lm if s.tags["pe"] == "absolute")
    assert learned.model.max_len == 256  # rows for 4T exist (those past T are never trained)
    ff = [s for s in repro if s.tags["task"] == "flip_flop"]
    assert sorted({s.tags["p_max"] for s in ff}) == [2, 4, 8, 16, 64] and {s.tags["pe"] for s in ff} == {"cope"}
    quick = {s.run_id for s in STUDIES["cope"].specs("quick")}
    assert {s.tags["p_max"] for s in ff if s.run_id in quick} == {16}  # the quick CoPE flip-flop runs, reused
    assert C.LM_EXTRAPOLATES.preset == "repro" and C.LM["stdlib"]["rope"].preset == "repro"
    assert C.LM["text"]["absolute"].preset == "paper"  # Wikitext needs a path: the paper preset
    assert {s.run_id for s in STUDIES["cope"].specs("repro", {"study.corpus": "stdlib"})} == {s.run_id for s in repro}


def test_repro_lm_on_a_given_text(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("a line of text\n" * 200)
    lm = [s for s in STUDIES["cope"].specs("repro", {"study.corpus": str(text), "study.tasks": ["lm"]})]
    assert len(lm) == 15 and {s.task.corpus for s in lm} == {str(text)} and {s.tags["corpus"] for s in lm} == {"text"}


def test_p_max_ablation_table_and_figure():
    study = STUDIES["cope"]
    (exp,) = [e for e in study.experiments if e.key == "p_max"]
    errors = {f"result.{split}/error": 0.0 for split in ("test", "sparse", "dense")}
    rows = [{"run_id": f"{p}-{s}", "status": "done", "seed": s, "tags.task": "flip_flop", "tags.pe": "cope",
             "tags.p_max": p, "tags.ablation": None if p == 16 else "p_max",
             **{k: 0.01 * p for k in errors}} for p in (4, 16, 64) for s in range(3)]
    raw = pd.DataFrame(rows)
    sec = exp.run(ReportContext(study, None, raw, raw))
    assert [r["p_max"] for r in sec.results["rows"]] == [4, 16, 64] and "p_max.png" in sec.figures
    assert sec.results["rows"][1]["sparse"]["mean"] == pytest.approx(16.0)
