"""The CoPE study end to end: presets validate, the smoke preset trains on CPU, the report writes its tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from limitlab.executors import train_sweep
from limitlab.store import RunStore
from limitlab.studies import STUDIES
from limitlab.studies.cope import results as R
from limitlab.studies.cope.report import write_cope_report
from limitlab.train.trainer import TrainOptions


def test_presets_expand_and_validate():
    study = STUDIES["cope"]
    quick = study.specs("quick")
    assert len(quick) == 18 and {s.tags["pe"] for s in quick} == {"absolute", "rope", "cope"}
    assert {s.tags["task"] for s in quick} == {"flip_flop", "selective_copy"}
    assert {s.seed for s in quick} == {0, 1, 2}
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


def test_claim_rule():
    agree, how = R.lowest_claim({"cope": [0.0, 0.01, 0.0], "rope": [0.2, 0.3, 0.25]})
    assert agree["verdict"] == "agree" and how == "separated"
    tie, how = R.lowest_claim({"cope": [0.10, 0.30, 0.05], "rope": [0.2, 0.1, 0.3]})
    assert tie["verdict"] == "disagree" and how == "tie" and "within the seed spread" in tie["ours"]
    lost, how = R.lowest_claim({"cope": [0.5, 0.5], "rope": [0.1, 0.1]})
    assert lost["verdict"] == "disagree" and how == "lost" and "rope is lower" in lost["ours"]
    none, _ = R.lowest_claim({"rope": [0.1]})
    assert none["verdict"] == "not measured"


def test_error_claims_quote_percent_like_the_rest_of_the_page():
    runs = pd.DataFrame({"task": ["flip_flop"] * 4, "pe": ["cope", "cope", "rope", "rope"], "ablation": [None] * 4,
                         "test/error": [0.0, 0.01, 0.2, 0.3], "n_vars": [None] * 4, "corpus": [None] * 4})
    rows, _ = R.claims_table(runs, [])
    test = next(r for r in rows if r["claim"] == "CoPE has the lowest flip-flop error (test)")
    assert test["verdict"] == "agree" and "cope 0.5 ± 0.71%" in test["ours"] and "rope 25 ± 7.1%" in test["ours"]


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(10):
        (root / f"f{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 40)
    return root


def test_smoke_trains_and_reports(tmp_path, corpus):
    specs = STUDIES["cope"].specs("smoke", {"study.corpus": str(corpus)})
    assert len(specs) == 8
    store = RunStore(tmp_path / "store")
    summary = train_sweep(specs, store, TrainOptions(save_weights=True, log_every=10**9))
    assert summary["trained"] == 8 and summary["failed"] == 0
    out = tmp_path / "report"
    index = write_cope_report(store, out)
    assert index.exists()
    res = json.loads((out / "results.json").read_text())
    assert res["runs"]["done"] == 8 and res["schema"] == "limitlab.cope.report/1"
    ff = {row["pe"]: row for row in res["tables"]["flip_flop"]}
    assert set(ff) == {"absolute", "rope", "cope"}
    assert ff["cope"]["test_paper"] == 0.0 and ff["rope"]["sparse_paper"] == pytest.approx(0.203)
    assert all(0 <= ff[pe]["test_mean"] <= 1 for pe in ff) and len(ff["cope"]["dense_per_seed"]) == 1
    assert res["tables"]["variable_counting"][0]["paper"] == 0.0  # 1 variable, CoPE: 0.0% in Table 3
    lm = res["tables"]["lm"][0]
    assert lm["pe"] == "cope" and lm["test_ppl"] > 1 and lm["ctx2x_ppl"] > 1
    assert len(res["curves"]["text"]["cope"]["ctx2x"]) == 32  # loss per position at 2T
    verdicts = {c["claim"]: c["verdict"] for c in res["claims"]}
    assert verdicts["CoPE has the lowest flip-flop error (test)"] in ("agree", "disagree")
    assert res["cope_map"]["source"] == "stored" and (out / "cope_map.png").exists()
    assert (out / "errors_flip_flop.png").exists() and (out / "extrapolation_text.png").exists()
    assert {r["item"] for r in res["protocol"]} >= {"flip_flop: length", "variable_counting: truncation"}
    html = index.read_text()
    assert "Does CoPE win?" in html and "Selective copy: error" in html


def test_report_of_an_empty_store(tmp_path):
    store = RunStore(tmp_path / "empty")
    index = write_cope_report(store, tmp_path / "report")
    res = json.loads((tmp_path / "report" / "results.json").read_text())
    assert res["runs"]["total"] == 0 and res["warnings"]
    assert "no finished cope runs" in index.read_text()


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
