"""The icl study: presets, evaluation plan and machinery, every claim's criterion, and smoke end to end (CLI)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from limitlab.cli import main
from limitlab.report.sections import ReportContext
from limitlab.rng import TEST, StackRNG
from limitlab.studies import STUDIES
from limitlab.studies.icl import baselines as bl
from limitlab.studies.icl import claims as C
from limitlab.studies.icl.evaluate import (
    EVAL_SEED,
    SetErrors,
    baseline_predictions,
    draw,
    model_predictions,
    plan,
    squared_errors,
)
from limitlab.studies.icl.results import NOTE_KEY, Evaluation, Group
from limitlab.studies.icl.study import icl_specs, paper, quick, repro, smoke
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
    r = repro()
    assert len(r) == 12 and {s.tags["pretrain"] for s in r} == {"dense", "sparse", "mix_dense_sine", "rare_sine_0.1"}
    assert all(s.train.eval_every > 0 and s.task.d == 5 for s in r)  # the error-against-steps figure
    rare = next(s for s in r if s.tags["pretrain"] == "rare_sine_0.1")
    assert rare.task.weights == (0.9, 0.1) and rare.task.n_points == 16


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
    before = _files(store / "runs")
    assert main(["report", "icl", "--store", str(store), "--out", str(out), "--set", "eval_prompts=64"]) == 0
    assert _files(store / "runs") == before  # a report reads the store and writes only its own folder
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "limitlab.icl.report/3" and res["runs"]["done"] == 2
    groups = res["sections"]["evaluation"]["results"]["groups"]
    assert {g["pretrain"] for g in groups} == {"dense", "mix_dense_sine"}
    curves = res["sections"]["linear"]["results"]["curves"]
    trans = [c for c in curves if c["predictor"] == "transformer" and c["key"] == "dense"]
    assert len(trans) == 1 and trans[0]["prompts"] == 64 and len(trans[0]["mean"]) == trans[0]["index"][-1] + 1
    ls = next(c for c in curves if c["key"] == "dense" and c["predictor"] == "least squares")
    assert ls["mean"][-1] < 1e-6 and abs(ls["mean"][0] - 1) < 0.5  # noiseless LS: exact once k > d = 3
    assert [c["id"] for c in res["claims"]] == [c.id for c in STUDIES["icl"].claims]
    measured = [c for c in res["claims"] if c["verdict"] != "not measured"]
    assert measured and all(c["verdict"] == "inconclusive" and "needs 3 seeds" in c["ours"] for c in measured)
    assert all("'paper' preset" in c["ours"] for c in res["claims"] if c["id"].startswith(("icl.relu", "icl.tree")))
    for name in res["figures"]:
        assert (out / name).stat().st_size > 0
    assert (out / "index.html").read_text().count("<img") == len(res["figures"]) == len(list(out.glob("*.png")))
    # without weights the report leaves the run out and names the command that keeps them
    next(store.glob("runs/*/weights.safetensors")).unlink()
    assert main(["report", "icl", "--store", str(store), "--out", str(out), "--force", "--set",
                 "eval_prompts=16"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert any("limitlab run icl --save-weights" in w for w in res["warnings"])


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- every claim's criterion on synthetic errors: agree, disagree, inconclusive --------------------------------

P, N = 60, 11  # prompts, indices k = 0..10 (d = 5)


def _specs(pretrain: str):
    return icl_specs([pretrain], 3, d=5, n_linear=N, n_nonlinear=N, model={"n_layers": 1, "n_heads": 1,
                     "d_model": 8}, lr=1e-3, steps=10, batch_size=4, curriculum=False)


def _set(key, kind, gaps, baselines, value=None, cols=N, seed=0):
    """A set whose transformer errors are the baselines' plus gaps[s] per seed (and a little prompt noise)."""
    rng = np.random.default_rng(seed)
    base = (0.2 + 0.3 * rng.random((P, cols))).astype(np.float32)
    noise = 0.01 * rng.standard_normal((len(gaps), P, cols))
    trans = (base[None] + np.asarray(gaps, dtype=float)[:, None, None] + noise).astype(np.float32)
    return SetErrors(key, kind, key.split(":")[0], value, list(range(cols)), trans, {b: base for b in baselines})


def _group(pretrain, sets):
    return Group(pretrain, _specs(pretrain), sets={s.key: s for s in sets})


def _groups(claim_id: str, gaps) -> list:
    c = claim_id.split(".")[1]
    if c in ("dense_matches_least_squares", "dense_robust_to_prompt_shifts"):
        sets = [_set("dense", "family", gaps if c.startswith("dense_matches") else [0, 0, 0], ["least squares"])]
        if c == "dense_robust_to_prompt_shifts":
            sets += [_set(f"ood:{n}", "ood", gaps if n == "skewed" else [0, 0, 0], ["least squares"], seed=i)
                     for i, n in enumerate(C.ROBUST_SETS)]
        return [_group("dense", sets)]
    if c in ("sparse_matches_lasso", "sparse_beats_least_squares"):
        return [_group("sparse", [_set("sparse", "family", gaps, ["least squares", "Lasso α=0.01"])])]
    if c == "relu_matches_network":
        return [_group("relu", [_set("relu", "family", gaps, ["least squares", "2-layer NN (GD)"])])]
    if c == "tree_beats_greedy_learners":
        return [_group("tree", [_set("tree", "family", gaps, ["greedy tree (depth 4)", "gradient boosting"])])]
    if c == "mixture_selection_near_bayes":
        return [_group("mix_dense_sine", [_set(f, "family", gaps, ["Bayes (pretraining mixture)"], seed=i)
                                          for i, f in enumerate(("dense", "sine"))])]
    if c == "convex_combinations_fail":
        return [_group("mix_dense_sine", [_set(f"alpha:{a}", "alpha", gaps if a == 0.5 else [0, 0, 0],
                                               ["Bayes (true α)"], a, cols=1, seed=i)
                                          for i, a in enumerate((0.0, 0.3, 0.5, 0.7, 1.0))])]
    if c == "frequency_extrapolation_fails":
        return [_group("mix_dense_sine", [_set(f"freq:{w}", "freq", gaps if not 1 <= w <= 2 else [0, 0, 0],
                                               ["Bayes (true ω)"], w, cols=1, seed=i)
                                          for i, w in enumerate((0.25, 0.5, 1.0, 1.5, 2.0, 4.0))])]
    assert c == "rare_family_learned_worse"
    balanced = _group("mix_dense_sine", [_set("sine", "family", [0, 0, 0], ["Bayes (pretraining mixture)"])])
    rare = _group("rare_sine_0.1", [_set("sine", "family", gaps, ["Bayes (pretraining mixture)"])])
    return [balanced, rare]


def _verdict(claim_id: str, gaps) -> str:
    groups = _groups(claim_id, gaps)
    runs = pd.DataFrame({"run_id": [s.run_id for g in groups for s in g.specs]})
    ev = Evaluation(groups, [], P, "cpu", 0.0)
    ctx = ReportContext(STUDIES["icl"], None, runs, runs, None, {NOTE_KEY: ev})
    exp = next(e for e in STUDIES["icl"].experiments if claim_id in [c.id for c in e.claims])
    return next(r for r in exp.run(ctx).claims if r.claim.id == claim_id).verdict


# per claim: seed gaps that agree, disagree, straddle the threshold
CASES = {  # a close pair of seed sets on either side, and one whose seeds straddle the threshold
    "icl.dense_matches_least_squares": ([0.0, 0.02, 0.01], [0.3, 0.35, 0.32], [0.0, 0.1, 0.2]),
    "icl.sparse_matches_lasso": ([-0.1, -0.09, -0.11], [0.2, 0.25, 0.22], [-0.05, 0.05, 0.15]),
    "icl.sparse_beats_least_squares": ([-0.2, -0.25, -0.22], [0.1, 0.15, 0.12], [-0.1, 0.0, 0.1]),
    "icl.dense_robust_to_prompt_shifts": ([0.0, 0.02, 0.01], [0.3, 0.35, 0.32], [0.0, 0.1, 0.2]),
    "icl.relu_matches_network": ([-0.1, -0.09, -0.11], [0.2, 0.25, 0.22], [-0.05, 0.05, 0.15]),
    "icl.tree_beats_greedy_learners": ([-0.1, -0.09, -0.11], [0.2, 0.25, 0.22], [-0.05, 0.05, 0.15]),
    "icl.mixture_selection_near_bayes": ([0.0, 0.02, 0.01], [0.3, 0.35, 0.32], [0.0, 0.1, 0.2]),
    "icl.convex_combinations_fail": ([0.3, 0.35, 0.32], [0.0, 0.02, 0.01], [0.0, 0.1, 0.2]),
    "icl.frequency_extrapolation_fails": ([0.3, 0.35, 0.32], [0.0, 0.02, 0.01], [0.0, 0.1, 0.2]),
    "icl.rare_family_learned_worse": ([0.2, 0.25, 0.22], [-0.1, -0.08, -0.09], [-0.05, 0.05, 0.15]),
}


def test_every_claim_has_cases():
    assert set(CASES) == {c.id for c in STUDIES["icl"].claims}
    assert all(c.untested and c.min_seeds >= 3 for c in STUDIES["icl"].claims)
    presets = {c.id: c.preset for c in STUDIES["icl"].claims}
    assert {k for k, v in presets.items() if v == "paper"} == {  # runs only the paper preset trains
        "icl.relu_matches_network", "icl.tree_beats_greedy_learners"}
    assert {k for k, v in presets.items() if v == "repro"} == {  # the mixtures: the CPU repro preset
        "icl.mixture_selection_near_bayes", "icl.convex_combinations_fail", "icl.frequency_extrapolation_fails",
        "icl.rare_family_learned_worse"}


def test_a_model_poor_everywhere_does_not_count_as_failing_on_combinations():
    """The same excess of 0.3 at every α (pure families too) is no failure specific to convex combinations."""
    groups = _groups("icl.convex_combinations_fail", [0.0, 0.0, 0.0])
    for s in groups[0].sets.values():
        s.transformer += 0.3
    runs = pd.DataFrame({"run_id": [sp.run_id for sp in groups[0].specs]})
    ctx = ReportContext(STUDIES["icl"], None, runs, runs, None, {NOTE_KEY: Evaluation(groups, [], P, "cpu", 0.0)})
    exp = next(e for e in STUDIES["icl"].experiments if e.key == "out_of_domain")
    result = next(r for r in exp.run(ctx).claims if r.claim.id == "icl.convex_combinations_fail")
    assert result.verdict == "inconclusive" and abs(result.measure.estimate) < 0.05  # it fails on the families


def test_combinations_cannot_be_judged_when_a_pretraining_family_already_fails():
    """Excess 0.4 at α = 0.5 but 0.3 on pure sine (α = 0): no failure specific to the combinations can be shown."""
    groups = _groups("icl.convex_combinations_fail", [0.4, 0.4, 0.4])
    groups[0].sets["alpha:0.0"].transformer += 0.3
    runs = pd.DataFrame({"run_id": [sp.run_id for sp in groups[0].specs]})
    ctx = ReportContext(STUDIES["icl"], None, runs, runs, None, {NOTE_KEY: Evaluation(groups, [], P, "cpu", 0.0)})
    exp = next(e for e in STUDIES["icl"].experiments if e.key == "out_of_domain")
    result = next(r for r in exp.run(ctx).claims if r.claim.id == "icl.convex_combinations_fail")
    assert result.verdict == "inconclusive" and "pretraining family α = 0" in result.note


@pytest.mark.parametrize("claim_id", list(CASES))
def test_claim_criterion_agree_disagree_inconclusive(claim_id):
    agree, disagree, straddle = CASES[claim_id]
    assert [_verdict(claim_id, g) for g in (agree, disagree, straddle)] == ["agree", "disagree", "inconclusive"]


def test_a_claim_is_judged_at_every_k_not_on_average():
    """G1 reads the largest gap over k: a gap of 0.3 at one k (k = d, say) alone makes it disagree."""
    groups = _groups("icl.dense_matches_least_squares", [0.0, 0.0, 0.0])
    s = groups[0].sets["dense"]
    s.transformer[..., 5] += 0.3
    runs = pd.DataFrame({"run_id": [sp.run_id for sp in groups[0].specs]})
    ctx = ReportContext(STUDIES["icl"], None, runs, runs, None, {NOTE_KEY: Evaluation(groups, [], P, "cpu", 0.0)})
    result = next(r for r in STUDIES["icl"].experiments[1].run(ctx).claims)
    assert result.verdict == "disagree" and 0.25 < result.measure.estimate < 0.35
