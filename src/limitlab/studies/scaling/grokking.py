"""Grokking: emergence in training time on modular addition (Power et al. 2022; Nanda et al. 2023).

A one-layer transformer (no LayerNorm, ReLU MLP) learns a + b mod p from a fixed share of the p² pairs with AdamW
and weight decay 1. Training accuracy reaches ~100% early (memorisation); accuracy on the held-out pairs stays near
chance and then, long afterwards, rises to ~100%. ``eval_every`` evaluates both the ``train`` split (the pairs the
model trains on) and ``test`` (the held-out rest), so the curves come from the store's metrics records.

Derived per run: ``step_train`` (first evaluation with train accuracy ≥ 0.99), ``step_test`` (first with held-out
accuracy ≥ 0.9; NaN when never reached in the budget) and their ratio, the **delay** of generalisation. The claim
is an existence claim on the published regime (:func:`published_regime`): runs outside it (a learning-rate sweep,
weight decays far from 1) are shown, never counted for or against it. The quick preset also sweeps the weight
decay (0.3, 1, 2); :mod:`limitlab.studies.scaling.grokking_sweep` tests how the delay changes with it and draws
accuracy and weight norm (recorded with every evaluation) against steps per weight decay.

>>> delay_ratio(1000.0, 3400.0), delay_ratio(1000.0, float("nan"))
(3.4, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from limitlab.claims import Claim, Exists, Measure
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.report.tables import ProtocolTable
from limitlab.spec import RunSpec
from limitlab.studies.scaling.evals import eval_curves, experiment_runs, first_step
from limitlab.studies.scaling.grokking_sweep import (
    SHORTER_WITH_WD,
    curves_figure,
    delay_figure,
    run_delays,
    sweep_measure,
)

NAME = "grokking"
TRAIN_LEVEL, TEST_LEVEL, DELAY = 0.99, 0.9, 2.0

GROKS = Claim(
    "scaling.grokking.delay", "Power et al. 2022; Nanda et al. 2023", "Power Fig. 1; Nanda Fig. 1",
    "On modular addition with weight decay, held-out accuracy rises to ~100% long after training accuracy has "
    "reached ~100% (grokking)",
    f"delay ratio (first step with held-out accuracy ≥ {TEST_LEVEL} / first step with train accuracy ≥ "
    f"{TRAIN_LEVEL}; 0 if held-out never reaches {TEST_LEVEL})",
    Exists(DELAY, count=1),
    untested="runs outside the published regime (p 97–113, 30–50% of pairs, ≤ 2 layers, AdamW weight decay 0.5–2, "
             "lr 3e-4–3e-3) are shown, not counted; the delay is measured at the evaluation interval; the weight norm "
             "is drawn, not tested, and no restricted or excluded loss (Nanda's other progress measures) is "
             "recorded; a run that groks after its "
             "budget counts as not showing it; this existence test replaced a first 'every seed' test after a probe "
             "at p = 113 had shown one slow seed; the every-seed test is now its own row, scaling.grokking.every_seed")


SEEDS = 3

GROKS_EVERY_SEED = Claim(
    "scaling.grokking.every_seed", "Power et al. 2022; Nanda et al. 2023", "Power Fig. 1; Nanda Fig. 1",
    "Grokking is the rule in the published setting, not one lucky run: held-out accuracy rises to ~100% long after "
    "training accuracy has reached ~100% in every seed",
    f"delay ratio of each seed of one setting of the published regime (all but the seed equal; the setting with "
    f"the most seeds at ≥ {DELAY}): first step with held-out accuracy ≥ {TEST_LEVEL} / first step with train "
    f"accuracy ≥ {TRAIN_LEVEL}, 0 if held-out never reaches {TEST_LEVEL}",
    Exists(DELAY, count=SEEDS), min_seeds=SEEDS,
    untested=f"'long after' is a delay ratio ≥ {DELAY} (held-out 0.9 takes at least as many steps again as "
             "memorising did): Nanda et al.'s full-batch runs show ×7–10 and Power et al.'s more, while our "
             "minibatches and lr 3e-3 compress it, and a ratio ≤ 1.5 is the 'rise together' picture; seeds of "
             "different settings are not pooled; a run that groks after its budget counts as not showing it")


def grokking_specs(p: int = 113, train_fraction: float = 0.3, steps: int = 30_000, seeds: int | Sequence[int] = 1,
                   d_model: int = 128, n_heads: int = 4, lrs: Sequence[float] = (1e-3,),
                   weight_decays: Sequence[float] = (1.0,), batch_size: int | None = None, eval_every: int = 250,
                   eval_size: int = 2048) -> list[RunSpec]:
    """Nanda et al.'s setup: 1 layer, d_mlp = 4·d, ReLU, no LayerNorm, AdamW β = (0.9, 0.98), 10 warmup steps;
    one run per (learning rate, weight decay, seed). ``batch_size`` None = the whole training set (full batch,
    drawn with replacement each step)."""
    n_train = max(1, round(train_fraction * p * p))
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return [RunSpec(
        study="scaling", seed=seed,
        task={"name": "modular_addition", "p": p, "train_fraction": train_fraction},
        model={"n_layers": 1, "n_heads": n_heads, "d_model": d_model, "d_mlp": 4 * d_model, "activation": "relu",
               "norm": "none", "max_len": 3},
        optim={"optimizer": "adamw", "lr": lr, "weight_decay": wd, "beta2": 0.98, "warmup_steps": 10},
        train={"steps": steps, "batch_size": batch_size or n_train, "eval_every": eval_every, "eval_size": eval_size},
        tags={"experiment": NAME, "p": p, "train_fraction": train_fraction, "lr": lr, "weight_decay": wd,
              "seed": seed},
    ) for lr in lrs for wd in weight_decays for seed in seed_list]


def smoke() -> list[RunSpec]:
    """Seconds: p = 7, 120 steps, 3 seeds (checks the pipeline, not grokking)."""
    return grokking_specs(p=7, steps=120, seeds=3, d_model=16, lrs=(3e-3,), eval_every=40, eval_size=128)


def quick(seeds: int = 3, weight_decays: Sequence[float] = (0.3, 1.0, 2.0), steps: int = 3500,
          p: int = 97) -> list[RunSpec]:
    """CPU: p = 97 (Power et al.'s modulus) and 30% of the pairs, minibatches of 512 (Power et al.'s batch, not
    Nanda's full 3,830) and lr 3e-3 (not 1e-3); weight decay 0.3, 1 and 2 (1 is the published recipe, the others
    the sweep; 2 is the largest that still memorises first), 3,500 steps, 3 seeds each; evaluated every 100 steps
    on 1,024 training and 1,024 held-out pairs. Departures chosen so the transition fits a CPU budget (the recipe
    search is in docs/scaling-results.md)."""
    return grokking_specs(p=p, steps=steps, seeds=seeds, lrs=(3e-3,), weight_decays=weight_decays,
                          batch_size=512, eval_every=100, eval_size=1024)


def paper(seeds: int = 3) -> list[RunSpec]:
    """Nanda et al.: p = 113, 30% of the pairs, full batch (3,830), lr 1e-3, weight decay 1, 30k steps; and the
    same without weight decay (Power et al.: weight decay matters most)."""
    return grokking_specs(p=113, steps=30_000, seeds=seeds, weight_decays=(1.0, 0.0), eval_every=250)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def published_regime(spec: RunSpec) -> bool:
    """Whether a run is in the regime where grokking is published (Power 2022: p = 97, 2 layers, batch 512;
    Nanda 2023: p = 113, 1 layer, full batch; both AdamW lr 1e-3, weight decay ~1, 30–50% of the pairs)."""
    t, o = spec.task, spec.optim
    return (t.name == "modular_addition" and 97 <= t.p <= 113 and 0.3 <= t.train_fraction <= 0.5
            and spec.model.n_layers <= 2 and o.optimizer == "adamw" and 0.5 <= o.weight_decay <= 2
            and 3e-4 <= o.lr <= 3e-3)


def delay_ratio(step_train: float, step_test: float) -> float:
    """step_test / step_train; 0 when held-out accuracy never reached its level (or train never did)."""
    if math.isnan(step_train) or math.isnan(step_test) or step_train <= 0:
        return 0.0
    return step_test / step_train


def per_run(curve: pd.DataFrame, specs: dict[str, RunSpec]) -> pd.DataFrame:
    """One row per run: setting, seed, step_train, step_test, delay ratio, final and peak held-out accuracy."""
    rows = []
    for run_id, g in curve.groupby("run_id", sort=False):
        spec = specs[run_id]
        st = first_step(g["step"], g["train/accuracy"], TRAIN_LEVEL)
        se = first_step(g["step"], g["test/accuracy"], TEST_LEVEL)
        norm = g["weight_norm"] if "weight_norm" in g else pd.Series([math.nan] * len(g))
        rows.append({"run_id": run_id, "setting": g["setting"].iloc[0], "family": g["family"].iloc[0],
                     "weight_decay": spec.optim.weight_decay,
                     "seed": spec.seed, "regime": published_regime(spec), "steps": int(g["step"].max()),
                     "step_train": st, "step_test": se, "delay_ratio": delay_ratio(st, se),
                     "final_train_acc": float(g["train/accuracy"].iloc[-1]),
                     "final_test_acc": float(g["test/accuracy"].iloc[-1]),
                     "max_test_acc": float(g["test/accuracy"].max()),
                     "norm_at_train": _at(g["step"], norm, st), "norm_at_test": _at(g["step"], norm, se),
                     "final_norm": float(norm.iloc[-1])})
    return pd.DataFrame(rows).sort_values(["setting", "seed"]).reset_index(drop=True)


def _at(steps: pd.Series, values: pd.Series, step: float) -> float:
    """The value recorded at ``step`` (NaN when the step is NaN or has no record)."""
    hit = values[steps.to_numpy() == step]
    return float(hit.iloc[0]) if len(hit) else math.nan


def _family(spec: RunSpec) -> str:
    """The setting without its weight decay: the runs of one weight-decay sweep share it."""
    t, o = spec.task, spec.optim
    return (f"p={t.p}, {t.train_fraction:.0%} train, lr {o.lr:g}, batch {spec.train.batch_size}, "
            f"{spec.train.steps} steps")


def _setting(spec: RunSpec) -> str:
    t, o = spec.task, spec.optim
    return (f"p={t.p}, {t.train_fraction:.0%} train, lr {o.lr:g}, wd {o.weight_decay:g}, batch "
            f"{spec.train.batch_size}")


def _shown(runs: pd.DataFrame) -> str:
    hits = runs[runs["delay_ratio"] >= DELAY]
    parts = [f"seed {r.seed}: train ≥ {TRAIN_LEVEL} at {r.step_train:.0f}, held-out ≥ {TEST_LEVEL} at "
             + (f"{r.step_test:.0f} (×{r.delay_ratio:.1f})" if r.step_test == r.step_test else
                f"— (never in {r.steps} steps; final {r.final_test_acc:.2f})")
             for r in runs.itertuples()]
    return f"{len(hits)} of {len(runs)} runs of the published regime: " + "; ".join(parts)


def analyze(ctx: ReportContext) -> Section:
    """The section: accuracy and weight-norm curves per weight decay with seed bands, the delay against weight
    decay, the per-run table, the existence claim on the published regime and the weight-decay claim."""
    sec = Section(NAME, "Emergence in time: grokking")
    runs, specs = experiment_runs(ctx, NAME)
    sec.uses(runs)
    curve = eval_curves(ctx.store, specs, lambda s: {"setting": _setting(s), "family": _family(s),
                                                       "weight_decay": s.optim.weight_decay})
    if curve.empty or "train/accuracy" not in curve:
        sec.paragraph("No finished grokking runs with train and held-out evaluations in this store.", css="note")
        sec.not_measured(GROKS, "no finished grokking runs")
        sec.not_measured(SHORTER_WITH_WD, "no finished grokking runs")
        sec.not_measured(GROKS_EVERY_SEED, "no finished grokking runs")
        return sec
    table = per_run(curve, specs)
    s = next(iter(specs.values()))
    sec.paragraph(f"Modular addition mod p, a fixed share of the p² pairs as the training set (split from the seed), "
                  f"the rest held out; 1 layer, d={s.model.d_model}, no LayerNorm, ReLU MLP; AdamW β2 0.98, 10 "
                  "warmup steps. Nanda et al. use p = 113, 30% of the pairs, full batch and lr 1e-3 (thousands of "
                  "steps to grok); Power et al. p = 97, batch 512, lr 1e-3. Chance is 1/p. The weight norm is the "
                  "L2 norm of all the model's parameters, recorded with every evaluation.")
    families = list(dict.fromkeys(curve.sort_values("weight_decay")["family"]))
    for i, family in enumerate(families):
        name = "grokking_curves.png" if i == 0 else f"grokking_curves_{i + 1}.png"
        sec.figure(name, curves_figure(curve[curve["family"] == family]),
                   f"{family}: train (dashed) and held-out (solid) accuracy (top) and the weight norm (bottom) "
                   "against training steps, one column per weight decay: mean over seeds with its 95% band; thin: "
                   "each seed's held-out accuracy")
    delays = run_delays(table)
    if (delays["delay"] > 0).any():  # a log axis needs one run that memorised (train ≥ 0.99)
        sec.figure("grokking_delay_vs_wd.png", delay_figure(delays),
                   "Delay ratio against weight decay, each seed (▲: held-out accuracy never reached 0.9; drawn at "
                   "its lower bound, budget / step of train ≥ 0.99)")
    else:
        sec.paragraph(f"No run reached train accuracy {TRAIN_LEVEL}: no delay to draw against weight decay.")
    sec.table(table.drop(columns=["run_id", "family"]).to_dict("records"),
              caption=f"Per run: first step with train accuracy ≥ {TRAIN_LEVEL} and held-out accuracy ≥ {TEST_LEVEL} "
                      f"(NaN: not reached), their ratio (the delay; 0 when held-out never got there), final and "
                      f"peak held-out accuracy, the weight norm at those two steps and at the end; regime = counted "
                      f"for the existence claim")
    sec.results["runs"] = table.drop(columns=["run_id", "family"]).to_dict("records")
    regime = table[table["regime"]]
    if regime.empty:
        sec.not_measured(GROKS, "no run of the published regime")
    else:
        sec.judge(GROKS, Measure.count(regime["delay_ratio"].tolist(), text=_shown(regime)))
    swept = max(families, key=lambda f: delays.loc[delays["family"] == f, "weight_decay"].nunique())
    measure, text = sweep_measure(delays[delays["family"] == swept])
    if measure is None:
        sec.not_measured(SHORTER_WITH_WD, text)
    else:
        sec.judge(SHORTER_WITH_WD, Measure(measure.estimate, measure.low, measure.high, measure.n, measure.values,
                                           f"{swept}: {text}"))
    _judge_every_seed(sec, regime)
    return sec


def _judge_every_seed(sec: Section, regime: pd.DataFrame) -> None:
    """The every-seed claim on the published-regime setting with the most seeds at delay ≥ DELAY (ties: the first
    setting in order)."""
    if regime.empty:
        sec.not_measured(GROKS_EVERY_SEED, "no run of the published regime")
        return
    hits = regime.assign(hit=regime["delay_ratio"] >= DELAY).groupby("setting", sort=True)["hit"].sum()
    best = str(hits.idxmax())
    runs = regime[regime["setting"] == best]
    sec.judge(GROKS_EVERY_SEED, Measure.count(runs["delay_ratio"].tolist(), text=f"{best}: {_shown(runs)}"))


def protocol(ctx: ReportContext) -> list[dict[str, Any]]:
    """Paper (Nanda et al. 2023) vs ours, read from the stored specs of the grokking runs."""
    runs = ctx.tagged(experiment=NAME)
    if runs.empty:
        return []
    table = ProtocolTable(runs, group=None)
    table.add("modulus p", "task.p", 113, "[Nanda]", note="97 in quick (Power et al.'s modulus): memorised in a "
              "few hundred steps, so the delay fits a CPU budget")
    table.add("training share of the p² pairs", "task.train_fraction", 0.3, "[Nanda]")
    table.add("layers", "model.n_layers", 1, "[Nanda]")
    table.add("d_model", "model.d_model", 128, "[Nanda]")
    table.add("learning rate", "optim.lr", 1e-3, "[Nanda, Power]", note="3e-3 in quick: the transition within "
              "a CPU budget")
    table.add("weight decay", "optim.weight_decay", 1.0, "[Nanda]", note="quick sweeps 0.3, 1, 2 (1 and 2: "
              "the published regime; the ends: the weight-decay claim)")
    table.add("batch", "train.batch_size", "full batch (3,830)", "[Nanda]", same=False,
              note="minibatches of 512 in quick (Power et al.'s batch)")
    table.add("steps", "train.steps", "up to 50k epochs (grokking at ~10k)", "[Nanda]", same=False)
    return table.rows


EXPERIMENT = Experiment(NAME, "Emergence in time: grokking", (GROKS, SHORTER_WITH_WD, GROKS_EVERY_SEED),
                        analyze)
