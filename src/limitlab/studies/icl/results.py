"""The icl report's evaluation: group the finished runs by pretraining distribution, evaluate each group once.

A *group* is every finished run whose spec is the same up to the seed (the seeds of one pretraining distribution
under one protocol), labelled by its ``pretrain`` tag. Its models come from the store's weights
(``ctx.load_model``; a report never trains), are scored with every baseline on the same prompts
(:func:`.evaluate.evaluate_sets`), and the errors are kept per seed and prompt. The evaluation is done once per
report and shared by every experiment (``ctx.notes``); nothing is written to the store.

Intervals: a curve's band and a claim's interval come from the shared bootstraps
(:mod:`limitlab.analysis.bootstrap`): the transformer's over seeds and prompts (:func:`two_level_band`: seeds and
prompts each bootstrapped — one prompt draw shared by every seed, since every seed's model sees the same prompts —
and combined in a t-interval), a baseline's over prompts (:func:`bootstrap_band`); a comparison is the same over
the paired differences transformer − baseline, per seed and prompt (:func:`gap_measure`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from limitlab.analysis.bootstrap import bootstrap_band, two_level_band, two_level_ci
from limitlab.claims import Measure, fmt_number
from limitlab.report.sections import ReportContext
from limitlab.spec import RunSpec
from limitlab.studies.icl.evaluate import TRANSFORMER, SetErrors, evaluate_sets, family_of
from limitlab.studies.icl.study import ReportOptions

CONFIDENCE = 0.95
N_BOOT = 1000
ERROR_RANGE = (0.0, float("inf"))  # a normalised squared error
NOTE_KEY = "icl.evaluation"


@dataclass
class Group:
    """The finished, weighted runs of one pretraining distribution and their errors on every evaluation set."""

    label: str
    specs: list[RunSpec]
    missing: list[str] = field(default_factory=list)  # finished runs without stored weights
    sets: dict[str, SetErrors] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def task(self):
        return self.specs[0].task

    @property
    def pretrain(self) -> str:
        return str(self.specs[0].tags.get("pretrain", self.task.name))

    def info(self, n_prompts: int) -> dict[str, Any]:
        t = self.task
        return {"label": self.label, "pretrain": self.pretrain, "task": t.name, "family": family_of(t), "d": t.d,
                "n_points": t.n_points, "fmt": t.fmt, "seeds": [s.seed for s in self.specs],
                "run_ids": [s.run_id for s in self.specs], "steps": self.specs[0].train.steps,
                "eval_prompts": n_prompts, "eval_seconds": round(self.seconds, 2),
                "sparsity": getattr(t, "sparsity", None), "freq_min": getattr(t, "freq_min", None),
                "freq_max": getattr(t, "freq_max", None),
                "families": list(getattr(t, "families", [family_of(t)])),
                "weights": list(getattr(t, "weights", [1.0]))}


@dataclass
class Evaluation:
    groups: list[Group]
    warnings: list[str]
    n_prompts: int
    device: str
    seconds: float

    def group(self, pretrain: str) -> Group | None:
        """The first group pretrained on ``pretrain`` (a ``pretrain`` tag), or None."""
        return next((g for g in self.groups if g.pretrain == pretrain), None)


def find_groups(ctx: ReportContext) -> list[Group]:
    """The finished runs of ``ctx`` grouped by spec up to the seed (their weights are loaded later)."""
    by_key: dict[str, list[RunSpec]] = {}
    for run_id in ctx.runs["run_id"] if len(ctx.runs) else []:
        spec = ctx.store.spec(run_id)
        key = json.dumps(spec.model_dump(mode="json", exclude={"seed", "tags"}), sort_keys=True)
        by_key.setdefault(key, []).append(spec)
    groups, seen = [], {}
    for specs in by_key.values():
        specs.sort(key=lambda s: s.seed)
        name = str(specs[0].tags.get("pretrain", specs[0].task.name))
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        groups.append(Group(label, specs))
    return groups


def evaluate(ctx: ReportContext, progress: Callable[[str], None] | None = None) -> Evaluation:
    """Every group's errors on every evaluation set (cached in ``ctx.notes``: one evaluation per report)."""
    if NOTE_KEY in ctx.notes:
        return ctx.notes[NOTE_KEY]
    options = ctx.options if isinstance(ctx.options, ReportOptions) else ReportOptions()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    start = time.monotonic()
    groups, warnings = find_groups(ctx), []
    twins = sorted({g.pretrain for g in groups if "#" in g.label})
    if twins:  # e.g. quick and repro runs in one store: the claims read the first group of each name
        warnings.append(f"more than one protocol pretrained on {', '.join(twins)} (groups "
                        f"{', '.join(g.label for g in groups if g.pretrain in twins)}); the claims judge the first "
                        "of each; report one preset's runs with --where (e.g. --where model.n_layers=4) or keep "
                        "presets in separate stores")
    for g in groups:
        t0 = time.monotonic()
        models, kept, why = [], [], ""
        for spec in g.specs:
            try:
                models.append(ctx.load_model(spec.run_id))
                kept.append(spec)
            except ValueError as exc:  # no stored weights: the message names the command that keeps them
                g.missing.append(spec.run_id)
                why = str(exc)
        if g.missing:
            warnings.append(f"{g.label}: {len(g.missing)} finished run(s) without stored weights are left out "
                            f"({', '.join(g.missing)}): {why}")
        g.specs = kept
        if models:
            g.sets = {s.key: s for s in evaluate_sets(models, g.task, options.eval_prompts, options.eval_full,
                                                      device, progress)}
        g.seconds = time.monotonic() - t0
    ev = Evaluation([g for g in groups if g.specs], warnings, options.eval_prompts, device,
                    time.monotonic() - start)
    ctx.notes[NOTE_KEY] = ev
    return ev


# --- bands and measures --------------------------------------------------------------------------------------

def band(errors: np.ndarray, seed: int = 0) -> dict[str, list[float]]:
    """{mean, low, high} per column of (seeds, prompts, k) errors: two-level bootstrap when there are seeds,
    prompts only for a baseline (one 'seed')."""
    if errors.shape[0] > 1:
        b = two_level_band(errors, n_boot=N_BOOT, confidence=CONFIDENCE, seed=seed, bounds=ERROR_RANGE)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an index no prompt scores (orthogonal query): NaN
            b = bootstrap_band(errors[0], n_boot=N_BOOT, confidence=CONFIDENCE, seed=seed)
    return {k: [float(v) for v in b[k]] for k in ("mean", "low", "high")}


def gap_measure(values: np.ndarray, stat: Callable[[np.ndarray], np.ndarray], what: str,
                bounds: tuple[float, float] = (-np.inf, np.inf), seed: int = 0) -> Measure:
    """A claim's measure from per-seed, per-prompt values (seeds, prompts, columns) — paired gaps
    transformer − baseline, or errors — reduced by ``stat`` (over the last axis); the 95% interval is a
    two-level bootstrap over seeds and the shared prompts. ``values`` of the Measure: ``stat`` of each seed's
    own mean curve (shown in results.json)."""
    est, low, high = two_level_ci(values, stat, N_BOOT, CONFIDENCE, seed, shared_units=True, bounds=bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an unscored column: NaN
        per_seed = [float(stat(np.nanmean(v, axis=0))) for v in values]
    s, p = values.shape[:2]
    text = (f"{what} {fmt_number(est)} [{fmt_number(low)}, {fmt_number(high)}] over {s} seed{'s' * (s != 1)} × "
            f"{p} prompts")
    return Measure(est, low, high, s, tuple(per_seed), text)


def curve_records(groups: list[Group], kind: str = "family") -> list[dict[str, Any]]:
    """One record per (group, set of ``kind`` — family or ood, predictor): index, mean, low, high (95%), seeds,
    prompts."""
    out = []
    for g in groups:
        for i, (key, s) in enumerate(g.sets.items()):
            if s.kind != kind:
                continue
            head = {"group": g.label, "key": key, "kind": s.kind, "family": s.family, "value": s.value,
                    "index": s.index}
            for predictor in (TRANSFORMER, *s.baselines):
                e = s.errors(predictor)
                rec = {**head, "predictor": predictor, **band(e, seed=i), "seeds": int(e.shape[0]) if
                       predictor == TRANSFORMER else 0, "prompts": int(e.shape[1])}
                if predictor == TRANSFORMER:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        rec["seed_means"] = np.nanmean(e, axis=1).tolist()
                out.append(rec)
    return out


def sweep_points(ev: Evaluation, kind: str) -> list[dict[str, Any]]:
    """Points {series, group, x, k, mean, low, high} of one sweep (nnz | alpha | freq) over every group with it.

    A transformer is one series per group; a baseline that is the same for every group (same prompts) appears
    once; the group's own pretraining-prior Bayes is one series per group."""
    out, seen = [], set()
    for g in ev.groups:
        for i, s in enumerate(g.sets.values()):
            if s.kind != kind:
                continue
            for predictor in (TRANSFORMER, *s.baselines):
                if predictor == TRANSFORMER:
                    series = f"transformer ({g.label})"
                elif "pretraining" in predictor:
                    series = f"Bayes ({g.label} prior)"
                else:
                    series = predictor
                    if (series, s.value) in seen:
                        continue
                    seen.add((series, s.value))
                b = band(s.errors(predictor), seed=i)
                out.append({"series": series, "group": g.label, "x": s.value, "k": s.index[0],
                            **{k: v[0] for k, v in b.items()}})
    return out


def rare_points(ev: Evaluation) -> list[dict[str, Any]]:
    """The transformer's and the Bayes predictors' errors on the sine and dense families at the last index, vs
    the sine family's weight p in pretraining (1 for a sine-only model)."""
    out = []
    for g in ev.groups:
        p = sine_weight(g.task)
        if p is None:
            continue
        for i, key in enumerate(("sine", "dense")):
            s = g.sets.get(key)
            if s is None:
                continue
            for predictor in (TRANSFORMER, *(b for b in s.baselines if b.startswith("Bayes"))):
                b = band(s.errors(predictor)[..., -1:], seed=i)
                name = "transformer" if predictor == TRANSFORMER else predictor
                out.append({"series": f"{name} on {key}", "group": g.label, "x": p, "k": s.index[-1],
                            **{k: v[0] for k, v in b.items()}})
    return out


def sine_weight(task) -> float | None:
    """The sine family's weight in a pretraining distribution (1 for sine alone), None without one."""
    if task.name == "icl_sine" and task.alpha == 0:
        return 1.0
    if task.name == "icl_mixture" and set(task.families) == {"dense", "sine"}:
        return float(task.weights[list(task.families).index("sine")])
    return None
