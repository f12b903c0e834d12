"""The icl report as experiments on the study contract: each turns the shared evaluation into a section.

The evaluation (:mod:`.results`: every finished run's stored weights, every baseline, the same prompts) is done
once per report and shared; each experiment below draws its figures, fills ``section.results`` and judges its
claims (:mod:`.claims`) on paired, per-seed-and-prompt bootstraps. A claim whose runs are not in the store is
'not measured', naming the preset that trains them.

==============  ================================================================================================
evaluation      the models evaluated, how errors are normalised and how intervals are made
linear          dense and sparse linear functions vs least squares, Lasso and exact Bayes; the nnz sweep
shifts          Garg's prompt distribution shifts (dense-linear models)
nonlinear       ReLU networks and decision trees vs their task-specific learners
mixtures        Yadlowsky's pretraining mixtures: selection against the mixture's Bayes predictor
out_of_domain   convex combinations, sine frequencies outside the range, rare families
training        error against training steps (log axis) with the claim's threshold and the paper's value
==============  ================================================================================================
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from limitlab.claims import Measure
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.studies.icl import claims as C
from limitlab.studies.icl import training
from limitlab.studies.icl.evaluate import EVAL_SEED
from limitlab.studies.icl.figures import curve_grid, sweep_figure
from limitlab.studies.icl.results import (
    CONFIDENCE,
    Evaluation,
    Group,
    curve_records,
    evaluate,
    gap_measure,
    rare_points,
    sine_weight,
    sweep_points,
)

LARGEST = "largest gap"


def _largest(c: np.ndarray) -> np.ndarray:
    return np.nanmax(c, -1)


def _progress(msg: str) -> None:
    print(f"icl report: evaluating {msg}", file=sys.stderr, flush=True)


def _eval(ctx: ReportContext, sec: Section) -> Evaluation:
    ev = evaluate(ctx, _progress)
    for g in ev.groups:
        sec.uses(ctx.runs[ctx.runs["run_id"].isin([s.run_id for s in g.specs])])
    return ev


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in label)


def _curves(sec: Section, groups: list[Group], kind: str = "family") -> list[dict[str, Any]]:
    """One figure per group: error vs k on each of its families (or prompt sets), every predictor."""
    records = curve_records(groups, kind)
    for g in groups:
        mine = [r for r in records if r["group"] == g.label]
        keys = list(dict.fromkeys(r["key"] for r in mine))
        if not keys:
            continue
        seeds = len(g.specs)
        if kind == "family":
            sec.figure(f"curves_{_safe(g.label)}.png",
                       curve_grid(mine, keys, f"pretrained on {g.label}: error vs in-context examples"),
                       f"Pretrained on {g.label}: normalised squared error vs in-context examples k; the "
                       f"transformer (black, {seeds} seed(s)) with its {CONFIDENCE:.0%} band over seeds and prompts, "
                       "baselines on the same prompts, Bayes dashed; the dotted line at 1 is the zero predictor.")
        else:
            sec.figure(f"ood_{_safe(g.label)}.png",
                       curve_grid(mine, keys, f"pretrained on {g.label}: Garg's prompt distribution shifts", cols=4),
                       f"Pretrained on {g.label}: random quadrants, orthogonal / overlapping query, half subspace, "
                       "skewed covariance, scaled x and y, noisy y; bands as above.")
    return records


def _at(records: list[dict[str, Any]], key: str, ks: list[int]) -> list[dict[str, Any]]:
    """A table: one row per predictor on set ``key``, its mean [low, high] at each k of ``ks``."""
    rows = []
    for r in records:
        if r["key"] != key:
            continue
        row: dict[str, Any] = {"group": r["group"], "predictor": r["predictor"]}
        for k in ks:
            if k < len(r["mean"]):
                m, lo, hi = r["mean"][k], r["low"][k], r["high"][k]
                row[f"k = {k}"] = f"{m:.3f}" if not np.isfinite(lo) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        rows.append(row)
    return rows


# --- experiments ---------------------------------------------------------------------------------------------

def evaluation_section(ctx: ReportContext) -> Section:
    sec = Section("evaluation", "Models evaluated")
    ev = _eval(ctx, sec)
    sec.paragraph(
        f"Each finished run's stored weights are scored with every baseline on the same prompts: "
        f"{ev.n_prompts} prompts per evaluation set, drawn once from seed {EVAL_SEED}'s test stream. Errors are "
        "squared errors divided by Var y of the set (Garg: ÷d dense and ReLU net, ÷k sparse, ÷1 tree; the zero "
        f"predictor scores 1). A transformer's curve is the mean over seeds of each seed's mean over prompts; its "
        f"band and every claim's interval are {CONFIDENCE:.0%} intervals from a two-level bootstrap: seeds and "
        "prompts (one draw shared by every seed) are resampled apart and their variances combined in a t-interval "
        "(Welch–Satterthwaite degrees of freedom; with 3 seeds and a seed-dominated spread, t = 4.3); a "
        "comparison with a baseline is the same over the paired gaps transformer − baseline per seed and prompt. "
        f"Baselines' bands resample prompts. Evaluation took {ev.seconds:.0f} s on {ev.device}; nothing was "
        "written to the store.")
    sec.warnings.extend(ev.warnings)
    rows = [{k: g.info(ev.n_prompts)[k] for k in ("label", "task", "d", "n_points", "fmt", "seeds", "steps",
                                                   "eval_seconds")} for g in ev.groups]
    if rows:
        sec.table(rows)
    else:
        sec.paragraph("No finished icl runs with stored weights: `limitlab run icl --preset quick` trains and keeps "
                      "them (the study saves weights; `--save-weights` for any other study).", css="error")
    sec.results["groups"] = [g.info(ev.n_prompts) for g in ev.groups]
    sec.results["timing"] = {"evaluation_seconds": round(ev.seconds, 2), "device": ev.device}
    return sec


def linear_section(ctx: ReportContext) -> Section:
    sec = Section("linear", "Dense and sparse linear functions (Garg)")
    ev = _eval(ctx, sec)
    dense, sparse = ev.group("dense"), ev.group("sparse")
    records = _curves(sec, [g for g in (dense, sparse) if g is not None])
    sec.results["curves"] = records
    if dense is None:
        sec.not_measured(C.DENSE_LS, "no dense-pretrained runs with weights in the store")
    else:
        d = dense.task.d
        ks = sorted({1, d - 1, d, dense.task.n_points - 1})
        sec.table(_at(records, "dense", ks), caption=f"Dense linear (d = {d}): mean [95% interval] at k.")
        gap = dense.sets["dense"].gap("least squares")[..., 1:]
        sec.judge(C.DENSE_LS, gap_measure(gap, _largest, LARGEST))
    if sparse is None:
        for claim in (C.SPARSE_LASSO, C.SPARSE_LS):
            sec.not_measured(claim, "no sparse-pretrained runs with weights in the store")
    else:
        d, s = sparse.task.d, sparse.task.sparsity
        ks = sorted({1, s + 1, d - 1, d, sparse.task.n_points - 1})
        sec.table(_at(records, "sparse", ks), caption=f"Sparse linear (d = {d}, {s} non-zero): mean [95%] at k.")
        errs = sparse.sets["sparse"]
        sec.judge(C.SPARSE_LASSO, gap_measure(errs.gap("Lasso α=0.01")[..., 1:], _largest, LARGEST))
        if s + 1 <= d - 1:
            sec.judge(C.SPARSE_LS, gap_measure(errs.gap("least squares")[..., s + 1:d], _largest, LARGEST))
        else:
            sec.not_measured(C.SPARSE_LS, f"no k between s + 1 = {s + 1} and d − 1 = {d - 1}")
    points = sweep_points(ev, "nnz")
    sec.results["nnz"] = points
    if points:
        sec.figure("nnz.png", sweep_figure(points, "non-zero weights (nnz)",
                                           "sparsity sweep at k = ⌊d/2⌋ in-context examples"),
                   "Yadlowsky's sparsity sweep: error at k = ⌊d/2⌋ vs the number of non-zero weights of the "
                   "evaluation function, with the exact Bayes predictor that knows the sparsity.")
    return sec


def shifts_section(ctx: ReportContext) -> Section:
    sec = Section("shifts", "Prompt distribution shifts (Garg)")
    ev = _eval(ctx, sec)
    dense = ev.group("dense")
    if dense is None:
        sec.not_measured(C.DENSE_OOD, "no dense-pretrained runs with weights in the store")
        return sec
    sec.results["curves"] = _curves(sec, [dense], kind="ood")
    present = [name for name in C.ROBUST_SETS if f"ood:{name}" in dense.sets]
    gaps = np.stack([C.last_scored(dense.sets[f"ood:{n}"].gap("least squares")) for n in present], -1)
    m = gap_measure(gaps, _largest, LARGEST)
    per_set = dict(zip(present, np.nanmean(gaps, axis=(0, 1)).tolist()))
    sec.results["gap_at_last_scored_k"] = per_set
    sec.paragraph("Mean paired gap transformer − least squares at each set's last scored k: " + "; ".join(
        f"{n} {v:+.3f}" for n, v in per_set.items()) + ".")
    sec.judge(C.DENSE_OOD, m)
    return sec


def _vs_baseline(group: Group, key: str, pick: Callable[[dict[str, np.ndarray]], np.ndarray | None]
                 ) -> np.ndarray | None:
    s = group.sets.get(key)
    base = pick(s.baselines) if s is not None else None
    return None if base is None else (s.transformer - base[None])[..., 1:]


def _better_tree(baselines: dict[str, np.ndarray]) -> np.ndarray | None:
    names = [n for n in ("greedy tree (depth 4)", "gradient boosting") if n in baselines]
    if len(names) < 2:
        return None
    a, b = (baselines[n] for n in names)
    return np.where(np.nanmean(a, 0) <= np.nanmean(b, 0), a, b)  # per k, the learner with the lower mean error


def nonlinear_section(ctx: ReportContext) -> Section:
    sec = Section("nonlinear", "ReLU networks and decision trees (Garg)")
    ev = _eval(ctx, sec)
    groups = {p: ev.group(p) for p in ("relu", "tree")}
    sec.results["curves"] = _curves(sec, [g for g in groups.values() if g is not None])
    for pre, claim, pick in (("relu", C.RELU_NN, lambda b: b.get("2-layer NN (GD)")), ("tree", C.TREE, _better_tree)):
        g = groups[pre]
        if g is None:
            sec.not_measured(claim, f"no {pre}-pretrained runs with weights in the store")
            continue
        gap = _vs_baseline(g, pre, pick)
        if gap is None:
            sec.not_measured(claim, "its baselines are computed with `limitlab report icl --set eval_full=true`")
        else:
            sec.judge(claim, gap_measure(gap, _largest, LARGEST))
    return sec


def mixtures_section(ctx: ReportContext) -> Section:
    sec = Section("mixtures", "Pretraining mixtures (Yadlowsky)")
    ev = _eval(ctx, sec)
    others = [g for g in ev.groups if g.pretrain not in ("dense", "sparse", "relu", "tree")]
    sec.results["curves"] = _curves(sec, others)
    measures = []
    for pre in ("mix_dense_sparse", "mix_dense_sine"):
        g = ev.group(pre)
        if g is None:
            continue
        gaps = [s.gap("Bayes (pretraining mixture)")[..., 1:] for s in g.sets.values()
                if s.kind == "family" and "Bayes (pretraining mixture)" in s.baselines]
        if gaps:
            m = gap_measure(np.concatenate(gaps, -1), _largest, f"{pre}: {LARGEST}")
            measures.append(m)
    if measures:
        sec.judge(C.MIX_BAYES, C.worst_of(measures, "; ".join(m.text for m in measures)))
    else:
        sec.not_measured(C.MIX_BAYES, "no balanced-mixture runs (mix_dense_sparse, mix_dense_sine) in the store")
    return sec


def _sweep(group: Group, kind: str, baseline: str) -> tuple[list[float], np.ndarray]:
    """(sweep values, paired gaps (seeds, prompts, values)) of one sweep of ``group`` at its k."""
    sets = sorted((s for s in group.sets.values() if s.kind == kind and baseline in s.baselines),
                  key=lambda s: s.value)
    if not sets:
        return [], np.empty((0, 0, 0))
    return [s.value for s in sets], np.concatenate([s.gap(baseline) for s in sets], -1)


def out_of_domain_section(ctx: ReportContext) -> Section:
    sec = Section("out_of_domain", "Out-of-domain functions and rare families (Yadlowsky)")
    ev = _eval(ctx, sec)
    for kind, x_label, title, log_x in (("alpha", "α (weight of the linear part)",
                                         "α·linear + (1−α)·sine, at the last index", False),
                                        ("freq", "sine frequency ω", "frequency sweep at the last index", True)):
        pts = sweep_points(ev, kind)
        sec.results[kind] = pts
        if pts:
            g = next(x for x in ev.groups if x.label == pts[0]["group"])
            comp = g.task.component("sine") if g.task.name == "icl_mixture" else g.task
            shade = (comp.freq_min, comp.freq_max) if kind == "freq" else None
            sec.figure(f"{kind}.png", sweep_figure(pts, x_label, title, log_x, shade),
                       f"{title}; transformers with {CONFIDENCE:.0%} bands over seeds and prompts, Bayes dashed"
                       + ("; the pretraining range shaded." if kind == "freq" else "."))
    mix = ev.group("mix_dense_sine")
    values, gaps = _sweep(mix, "alpha", "Bayes (true α)") if mix else ([], None)
    mid = np.array([0.3 <= a <= 0.7 for a in values], dtype=bool)
    ends = np.array([a in (0.0, 1.0) for a in values], dtype=bool)
    if mid.any() and ends.any():
        def mid_minus_ends(c: np.ndarray) -> np.ndarray:
            return np.nanmax(c[..., mid], -1) - np.nanmean(c[..., ends], -1)

        measure = gap_measure(gaps, mid_minus_ends, "largest over α ∈ [0.3, 0.7] − mean over α ∈ {0, 1}")
        own = {a: float(np.nanmean(gaps[..., i])) for i, a in enumerate(values) if ends[i]}
        worst = max(own, key=own.get)
        if own[worst] > C.CONVEX.test.threshold and measure.n >= C.CONVEX.min_seeds:  # fails on a family itself
            sec.cannot_decide(C.CONVEX, measure, f"the model's own excess on the pretraining family α = {worst:g} "
                              f"({own[worst]:.3f}) is above the failure threshold {C.CONVEX.test.threshold:g}, so a "
                              "failure on the combinations cannot be told apart from a failure on that family")
        else:
            sec.judge(C.CONVEX, measure)
    else:
        sec.not_measured(C.CONVEX, "no dense + sine mixture runs (mix_dense_sine) in the store")
    freq_model = mix or ev.group("sine")
    values, gaps = _sweep(freq_model, "freq", "Bayes (true ω)") if freq_model else ([], None)
    if values:
        comp = freq_model.task.component("sine") if freq_model.task.name == "icl_mixture" else freq_model.task
        inside = np.array([comp.freq_min <= w <= comp.freq_max for w in values])
        if inside.any() and (~inside).any():
            def outside_minus_inside(c: np.ndarray) -> np.ndarray:
                return np.nanmean(c[..., ~inside], -1) - np.nanmean(c[..., inside], -1)

            sec.judge(C.FREQ, gap_measure(gaps, outside_minus_inside, f"{freq_model.label}: outside − inside"))
        else:
            sec.not_measured(C.FREQ, "the frequency grid has no point both inside and outside the range")
    else:
        sec.not_measured(C.FREQ, "no dense + sine (or sine) runs in the store")
    rare = rare_points(ev)
    sec.results["rare"] = rare
    if rare:
        sec.figure("rare.png", sweep_figure(rare, "weight of the sine family in pretraining",
                                            "rare-family sweep, at the last index"),
                   "Sine- and dense-family error at the last index vs the sine family's weight in pretraining.")
    m = _rare_measure(ev)
    if m is None:
        sec.not_measured(C.RARE, "needs rare_sine_<p> and mix_dense_sine runs with a common seed")
    else:
        sec.judge(C.RARE, m)
    return sec


def _rare_measure(ev: Evaluation) -> Measure | None:
    by_weight = {sine_weight(g.task): g for g in ev.groups if sine_weight(g.task) is not None and "sine" in g.sets}
    low = min((p for p in by_weight if p < 0.5), default=None)
    if low is None or 0.5 not in by_weight:
        return None
    a, b = by_weight[low], by_weight[0.5]
    seeds_a, seeds_b = [s.seed for s in a.specs], [s.seed for s in b.specs]
    common = [s for s in seeds_a if s in seeds_b]
    if not common:
        return None
    ea = a.sets["sine"].transformer[[seeds_a.index(s) for s in common]][..., -1:]
    eb = b.sets["sine"].transformer[[seeds_b.index(s) for s in common]][..., -1:]
    return gap_measure(ea - eb, lambda c: c[..., 0], f"weight {low:g} − 0.5:")


EXPERIMENTS = (
    Experiment("evaluation", "Models evaluated", (), evaluation_section),
    Experiment("linear", "Dense and sparse linear functions (Garg)", (C.DENSE_LS, C.SPARSE_LASSO, C.SPARSE_LS),
               linear_section),
    Experiment("shifts", "Prompt distribution shifts (Garg)", (C.DENSE_OOD,), shifts_section),
    Experiment("nonlinear", "ReLU networks and decision trees (Garg)", (C.RELU_NN, C.TREE), nonlinear_section),
    Experiment("mixtures", "Pretraining mixtures (Yadlowsky)", (C.MIX_BAYES,), mixtures_section),
    Experiment("out_of_domain", "Out-of-domain functions and rare families (Yadlowsky)", (C.CONVEX, C.FREQ, C.RARE),
               out_of_domain_section),
    Experiment("training", "Error against training steps", (), training.analyze),
)
