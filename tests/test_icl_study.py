"""The icl study: presets, evaluation plan, the evaluation machinery, and smoke end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import torch

from limitlab.cli import main
from limitlab.rng import TEST, StackRNG
from limitlab.studies import STUDIES
from limitlab.studies.icl import baselines as bl
from limitlab.studies.icl.evaluate import (
    EVAL_SEED,
    baseline_predictions,
    draw,
    model_predictions,
    plan,
    squared_errors,
)
from limitlab.studies.icl.study import paper, quick, smoke
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import tokens
from limitlab.tasks.icl_linear import ICLLinear
from limitlab.tasks.icl_mixture import ICLMixture
from limitlab.tasks.icl_relu import ICLReLU
from limitlab.tasks.icl_tree import ICLTree
from limitlab.train.trainer import build_model


def test_presets():
    q = quick()
    assert len(q) == 6 and {s.tags["pretrain"] for s in q} == {"dense", "sparse"}
    assert sorted({s.seed for s in q}) == [0, 1, 2] and all(s.task.d == 5 for s in q)
    p = paper()
    assert len(p) == 27 and len({s.run_id for s in p}) == 27
    first = p[0]
    assert (first.model.n_layers, first.model.n_heads, first.model.d_model) == (12, 8, 256)
    assert (first.optim.lr, first.train.batch_size, first.train.steps) == (1e-4, 64, 500_000)
    assert first.task.curriculum is not None and first.task.curriculum.dims_start == 5
    relu = next(s for s in p if s.tags["pretrain"] == "relu")
    assert relu.task.n_points == 101 and relu.task.curriculum.points_start == 26
    assert len(smoke()) == 2 and STUDIES["icl"].save_weights


def test_plan_covers_the_paper_evaluations():
    dense = [e.key for e in plan(ICLLinear(d=4, n_points=9))]
    assert dense[0] == "dense" and "ood:orthogonal_query" in dense and "ood:scale_x_3" in dense
    assert [k for k in dense if k.startswith("nnz:")] == ["nnz:1", "nnz:2", "nnz:3", "nnz:4"]
    mix = plan(ICLMixture(d=3, n_points=8, families=("dense", "sine"), weights=(0.5, 0.5)))
    keys = [e.key for e in mix]
    assert keys[:2] == ["dense", "sine"] and sum(k.startswith("alpha:") for k in keys) == 11
    assert any(e.kind == "freq" and e.value < 1 for e in mix) and any(e.kind == "freq" and e.value > 2 for e in mix)
    assert "Bayes (pretraining mixture)" in mix[0].baselines
    assert [e.key for e in plan(ICLReLU(d=3, n_points=8))] == ["relu", "dense"]
    tree = plan(ICLTree(d=3, n_points=8), full=True)
    assert [e.key for e in tree] == ["tree"] and "greedy tree (depth 4)" in tree[0].baselines


def test_eval_prompts_are_the_task_batches_and_predictions_are_read_at_x_tokens():
    task = ICLLinear(d=3, n_points=5)
    p = draw(task, 16)
    batch = TaskStack([task]).sample(StackRNG([EVAL_SEED], stream=TEST), 16, 0)
    assert torch.equal(batch.inputs[0], tokens(p.xs[None], p.ys[None], "garg")[0])
    from limitlab.spec import RunSpec

    specs = [RunSpec(task=task, model={"d_model": 8, "n_layers": 1, "n_heads": 2, "max_len": 10}, seed=s)
             for s in (0, 1)]
    model = build_model(specs)
    pred = model_predictions(model, p, "garg")  # (M, P, n)
    direct = model(batch.inputs.expand(2, -1, -1, -1), batch.positions.expand(2, -1, -1))[..., 0]
    assert torch.allclose(pred.float(), direct, atol=1e-5)


def test_query_sets_are_scored_one_prefix_at_a_time():
    task = ICLLinear(d=3, n_points=6, prompt_set="overlapping_query")
    p = draw(task, 64)
    from limitlab.spec import RunSpec

    model = build_model([RunSpec(task=task, model={"d_model": 8, "n_layers": 1, "n_heads": 2, "max_len": 12})])
    pred = model_predictions(model, p, "garg")[0]  # (P, n)
    i = 4
    xs = p.xs[:, : i + 1].clone()
    xs[:, i] = p.qx[:, i]
    seq = tokens(xs[None], p.ys[None, :, : i + 1], "garg")
    manual = model(seq, torch.full((1, 64, 1), 2 * i))[0, :, 0, 0]
    assert torch.allclose(pred[:, i].float(), manual, atol=1e-5)
    # least squares interpolates its context (min-norm, noiseless): a query copied from the context is exact
    err = squared_errors(baseline_predictions(bl.LeastSquares(), p), p, task.normaliser())
    assert np.nanmax(err[:, 1:]) < 1e-6
    zero = squared_errors(baseline_predictions(bl.Zero(), draw(ICLLinear(d=3, n_points=6), 4000)), draw(
        ICLLinear(d=3, n_points=6), 4000), 3.0)
    assert abs(zero.mean() - 1.0) < 0.05  # Garg's normalisation puts the zero predictor at 1


def test_smoke_trains_and_reports_through_the_cli(tmp_path):
    store, out = tmp_path / "store", tmp_path / "report"
    assert main(["run", "icl", "--preset", "smoke", "--store", str(store), "--device", "cpu", "--quiet"]) == 0
    assert len(list(store.glob("runs/*/weights.safetensors"))) == 2  # kept without --save-weights
    assert main(["report", "icl", "--store", str(store), "--out", str(out), "--set", "eval_prompts=64"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "limitlab.icl.report/1" and res["runs"]["used"] == 2
    assert {g["pretrain"] for g in res["groups"]} == {"dense", "mix_dense_sine"}
    trans = [c for c in res["curves"] if c["predictor"] == "transformer" and c["key"] == "dense"]
    assert len(trans) == 2 and all(c["n_prompts"] == 64 and len(c["mean"]) == c["index"][-1] + 1 for c in trans)
    ls = next(c for c in res["curves"] if c["group"] == "dense" and c["key"] == "dense"
              and c["predictor"] == "least squares")
    assert ls["mean"][-1] < 1e-6 and abs(ls["mean"][0] - 1) < 0.5  # noiseless LS: exact once k > d = 3
    assert {c["verdict"] for c in res["claims"]} <= {"agree", "disagree", "not measured"} and len(res["claims"]) == 8
    for name in res["figures"].values():
        assert (out / name).stat().st_size > 0
    assert (out / "index.html").read_text().count("<img") == len(res["figures"])
