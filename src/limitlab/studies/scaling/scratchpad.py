"""Time to think: addition written plain, reversed, or with a scratchpad, at equal compute (Nye et al. 2021;
Lee et al. 2023).

Every run of a (width, seed) gets the same number of **tokens processed** (``token_budget``); a format with longer
sequences therefore sees fewer training samples: steps = budget / (batch · sequence length). The scratchpad
writes, for each digit from the units up, both operand digits, the carry in and the sum digit, then the answer:
more tokens to think in, fewer samples. Each run is evaluated ``n_evals`` times, so exact match can be read
against training samples seen (and tokens processed) as well as against model size.

Exact match is over everything the model writes (scratchpad included), which under teacher forcing equals greedy
decoding's exact match of the whole output; so a correct answer after a wrong scratchpad counts as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from limitlab.claims import AtMost, Claim, Measure
from limitlab.report.figures import COLORS, new_figure
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.report.tables import ProtocolTable
from limitlab.spec import RunSpec
from limitlab.studies.scaling.emergence import ADDITION_FORMATS, addition_task, model_config
from limitlab.studies.scaling.evals import eval_curves, experiment_runs, plot_band, seed_band
from limitlab.tasks.arithmetic import ArithmeticTask

NAME = "scratchpad"
FORMATS = tuple(ADDITION_FORMATS)  # plain, reverse, scratchpad (tags.format; the task's formats in emergence)
LEVEL = 0.5  # exact match a run must reach; where it crosses, interpolated between evaluations
_UNTESTED = ("addition only, trained from scratch (no prompting); one level of exact match (0.5); a run that never "
             "reaches it counts at its whole budget (conservative for the format that does reach it); pairs are "
             "(seed, width)")

SAMPLES = Claim(
    "scaling.scratchpad.samples", "Lee et al. 2023; Nye et al. 2021", "Lee Sec. 5 (chain-of-thought data)",
    "Writing intermediate steps (a scratchpad) makes addition learnable from fewer training samples than the plain "
    "answer", f"paired per-seed log2(training samples to exact match {LEVEL}: scratchpad / plain)",
    AtMost(0.0, strict=True), untested=_UNTESTED)
COMPUTE = Claim(
    "scaling.scratchpad.compute", "Wei 2023 (time to think); Nye et al. 2021", "Wei: 'give the model time to think'",
    "Spending more tokens on intermediate steps pays for itself: at equal training tokens the scratchpad learns "
    "addition with less compute than the plain answer",
    f"paired per-seed log2(training tokens to exact match {LEVEL}: scratchpad / plain)", AtMost(0.0, strict=True),
    untested=_UNTESTED)
REVERSE = Claim(
    "scaling.scratchpad.reverse", "Lee et al. 2023", "Lee Sec. 4 (reversed output)",
    "Writing the answer least significant digit first makes addition learnable from fewer samples than the plain "
    "answer", f"paired per-seed log2(training samples to exact match {LEVEL}: reversed / plain)",
    AtMost(0.0, strict=True), untested=_UNTESTED)
CLAIMS = (SAMPLES, COMPUTE, REVERSE)


def scratchpad_specs(widths: Sequence[int], digits: int = 3, token_budget: int = 2_000_000, batch_size: int = 64,
                     formats: Sequence[str] = FORMATS, lr: float = 3e-3, seeds: int | Sequence[int] = 3,
                     n_layers: int = 2, n_evals: int = 20, eval_size: int = 512) -> list[RunSpec]:
    """(format × width × seed) runs with ``token_budget`` training tokens each; tags carry samples and tokens."""
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"unknown format {f!r}; allowed: {', '.join(FORMATS)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = []
    for fmt in formats:
        cfg = addition_task(digits, fmt)
        task = ArithmeticTask.model_validate({k: v for k, v in cfg.items() if k != "name"})
        steps = max(1, round(token_budget / (batch_size * task.seq_len())))
        for d in widths:
            for seed in seed_list:
                out.append(RunSpec(
                    study="scaling", seed=seed, task=cfg,
                    model=model_config(d, n_layers, max_len=max(64, task.seq_len())),
                    optim={"optimizer": "adamw", "lr": lr, "weight_decay": 0.01, "schedule": "cosine",
                           "warmup_steps": min(100, steps // 10)},
                    train={"steps": steps, "batch_size": batch_size, "eval_every": max(1, steps // n_evals),
                           "eval_size": eval_size},
                    tags={"experiment": NAME, "format": fmt, "d": d, "seed": seed,
                          "samples": steps * batch_size, "tokens": steps * batch_size * task.seq_len()},
                ))
    return out


def smoke() -> list[RunSpec]:
    """Seconds: 2-digit addition, one width, the three formats, 3 seeds, 30k tokens each."""
    return scratchpad_specs([16], digits=2, token_budget=30_000, batch_size=32, n_evals=2, eval_size=128)


def quick(seeds: int = 3) -> list[RunSpec]:
    """CPU: 3-digit addition, width 32, 3 seeds, 2M tokens per run, 20 evaluations each."""
    return scratchpad_specs([32], digits=3, token_budget=2_000_000, seeds=seeds)


def paper(seeds: int = 3) -> list[RunSpec]:
    """One GPU: 5-digit addition, widths 32 … 384 (Lee et al.'s n_embd 384), 4 layers, 200M tokens per run."""
    return scratchpad_specs([32, 64, 128, 256, 384], digits=5, token_budget=200_000_000, batch_size=256,
                            lr=1e-3, seeds=seeds, n_layers=4, n_evals=20, eval_size=2048)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def curves(store: Any, specs: dict[str, RunSpec]) -> pd.DataFrame:
    """One row per (run, evaluation): format, d, seed, step, samples and tokens seen, exact match, token accuracy."""
    def columns(spec: RunSpec) -> dict[str, Any]:
        return {"format": spec.tags["format"], "d": spec.model.d_model, "batch": spec.train.batch_size,
                "seq_len": spec.task.seq_len(), "budget_steps": spec.train.steps}

    curve = eval_curves(store, specs, columns)
    if curve.empty:
        return curve
    curve["samples"] = curve["step"] * curve["batch"]
    curve["tokens"] = curve["samples"] * curve["seq_len"]
    return curve.rename(columns={"test/accuracy": "exact_match", "test/token_accuracy": "token_accuracy"})


def crossing(steps: Sequence[float], values: Sequence[float], level: float = LEVEL) -> float:
    """The step where a curve first reaches ``level``, linearly interpolated between evaluations (the curve starts
    at step 0 from 0); NaN if never.

    >>> crossing([100, 200, 300], [0.2, 0.4, 0.8]), crossing([100, 200], [0.1, 0.2])
    (225.0, nan)
    """
    prev_s, prev_v = 0.0, 0.0
    for s, v in zip(steps, values):
        if v >= level:
            return float(prev_s + (s - prev_s) * (level - prev_v) / (v - prev_v)) if v > prev_v else float(s)
        prev_s, prev_v = float(s), float(v)
    return math.nan


def per_run(curve: pd.DataFrame) -> pd.DataFrame:
    """Per run: the step where exact match reaches :data:`LEVEL` (censored at the budget), as samples and tokens,
    and final exact match."""
    rows = []
    for run_id, g in curve.groupby("run_id", sort=False):
        g = g.sort_values("step")
        step = crossing(g["step"], g["exact_match"])
        censored = step != step
        step = float(g["budget_steps"].iloc[0]) if censored else step
        rows.append({"run_id": run_id, "format": g["format"].iloc[0], "d": int(g["d"].iloc[0]),
                     "seed": int(g["seed"].iloc[0]), "reached": not censored,
                     "samples_to": step * g["batch"].iloc[0], "tokens_to": step * g["batch"].iloc[0] *
                     g["seq_len"].iloc[0], "final_exact_match": float(g["exact_match"].iloc[-1])})
    return pd.DataFrame(rows).sort_values(["d", "format", "seed"]).reset_index(drop=True)


def log_ratio(runs: pd.DataFrame, fmt: str, base: str, column: str) -> dict[tuple[int, int], float]:
    """{(seed, d): log2(column of ``fmt`` / column of ``base``)}; NaN where neither run reached the level."""
    by = runs.drop_duplicates(["format", "seed", "d"], keep="last").set_index(["format", "seed", "d"])
    out = {}
    for seed, d in {(s, d) for s, d in zip(runs["seed"], runs["d"])}:
        if (fmt, seed, d) in by.index and (base, seed, d) in by.index:
            a, b = by.loc[(fmt, seed, d)], by.loc[(base, seed, d)]
            out[(seed, d)] = math.log2(a[column] / b[column]) if (a["reached"] or b["reached"]) else math.nan
    return out


def judge(sec: Section, runs: pd.DataFrame) -> None:
    for claim, fmt, column in ((SAMPLES, "scratchpad", "samples_to"), (COMPUTE, "scratchpad", "tokens_to"),
                               (REVERSE, "reverse", "samples_to")):
        ratios = log_ratio(runs, fmt, "plain", column) if not runs.empty else {}
        if not ratios:
            sec.not_measured(claim, f"{fmt} and plain runs not both finished")
            continue
        if all(v != v for v in ratios.values()):
            sec.not_measured(claim, f"neither {fmt} nor plain reached exact match {LEVEL} in its budget")
            continue
        zeros = dict.fromkeys(ratios, 0.0)
        sec.judge(claim, Measure.paired(ratios, zeros))


def _figure(curve: pd.DataFrame) -> Any:
    fig = new_figure(11, 4.2)
    axes = fig.subplots(1, 2)
    for ax, x, name in ((axes[0], "samples", "training samples seen"), (axes[1], "tokens", "training tokens")):
        for i, fmt in enumerate(FORMATS):
            for d, g in curve[curve["format"] == fmt].groupby("d"):
                band = seed_band(g, [], x, "exact_match")
                plot_band(ax, band, x, f"{fmt}, d={d} ({g['seed'].nunique()} seeds)", COLORS[i])
        ax.axhline(LEVEL, color="grey", ls=":", lw=1)
        ax.set(xscale="log", xlabel=name, ylabel="exact match", ylim=(-0.02, 1.02),
               title=f"Exact match vs {name} (equal tokens per run)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def analyze(ctx: ReportContext) -> Section:
    """The section: exact match vs samples and tokens with seed bands, per-run crossings, three paired claims."""
    sec = Section(NAME, "Time to think: plain, reversed and scratchpad addition")
    runs, specs = experiment_runs(ctx, NAME)
    sec.uses(runs)
    curve = curves(ctx.store, specs)
    if curve.empty:
        sec.paragraph("No finished scratchpad runs with evaluations in this store.", css="note")
        return sec
    first = next(iter(specs.values()))
    tokens = first.train.steps * first.train.batch_size * first.task.seq_len()
    sec.paragraph(f"{first.task.width}-digit addition; every run processes the same number of training tokens "
                  f"(about {tokens:,}), so longer formats see fewer samples. Exact match covers everything the model "
                  f"writes (scratchpad included). Where exact match first reaches {LEVEL} is interpolated between "
                  "evaluations; comparisons pair runs of the same seed and width.")
    sec.figure("scratchpad_exact_match.png", _figure(curve), "Exact match vs training samples seen (left) and vs "
               "training tokens (right), per format: mean and 95% band over seeds")
    table = per_run(curve)
    sec.table(table.drop(columns=["run_id"]).to_dict("records"),
              caption=f"Per run: samples and tokens until exact match ≥ {LEVEL} (the whole budget when never "
                      "reached), final exact match")
    sec.results["runs"] = table.drop(columns=["run_id"]).to_dict("records")
    judge(sec, table)
    return sec


def protocol(ctx: ReportContext) -> list[dict[str, Any]]:
    """Lee et al. 2023 vs ours, read from the stored specs."""
    runs = ctx.tagged(experiment=NAME)
    if runs.empty:
        return []
    table = ProtocolTable(runs, group=None)
    table.add("operand digits", "task.width", 3, "[Lee]")
    table.add("layers", "model.n_layers", 6, "[Lee]")
    table.add("d_model", "model.d_model", 384, "[Lee]")
    table.add("training data", None, "10k balanced examples, 10k iterations of batch 256", "[Lee]", same=False,
              values=["fresh samples, equal tokens per format"])
    return table.rows


EXPERIMENT = Experiment(NAME, "Time to think: plain, reversed and scratchpad addition", CLAIMS, analyze)
