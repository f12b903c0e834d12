"""Emergence vs metric (Schaeffer, Miranda & Koyejo 2023): the same runs scored by a sharp and by smooth metrics.

A ladder of model widths learns multi-digit addition (the ``arithmetic`` task, answer written least significant
digit first; its n + 1 digits and the end token are scored, see :func:`addition_task`) and a single 3-sparse
parity. Every run is scored, at every evaluation
step and at the end, by

* **exact match** (the whole answer right; equal to greedy decoding's exact match, see the task),
* **per-token accuracy**, **cross-entropy** per answer token (shown as the per-token probability exp(-CE)) and
  **edit distance** between the argmax answer and the target (shown as 1 - distance / L),

and plotted against non-embedding parameters N and training compute C = 6·N·tokens (+ attention; see
:func:`limitlab.costs.train_flops_per_token`). Schaeffer's argument: if per-token accuracy p rises smoothly,
exact match over L tokens is about p^L, flat near zero and then steep, so it *looks* emergent. The analysis
measures, per metric, how much of its range the largest single step of the ladder covers (``jump_share``), and
checks exact match against the prediction p^L from the same runs' per-token accuracy.

If a ``sparse_parity`` task is registered (written for the multitask experiment), the same scoring runs on it
too; otherwise only addition is used (the report says which).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.figures import save_figure
from limitlab.spec import RunSpec

EXPERIMENT = "emergence"
SMOOTH_SHARE = 0.5  # a metric is "smooth" over the ladder when no single step covers more than this of its range
METRICS = ("exact_match", "token_accuracy", "token_probability", "edit_score")
LABELS = {"exact_match": "exact match", "token_accuracy": "per-token accuracy",
          "token_probability": "per-token probability exp(-CE)", "edit_score": "1 - edit distance / L"}


def model_config(d_model: int, n_layers: int = 2, n_heads: int | None = None, max_len: int = 64,
                 **extra: Any) -> dict[str, Any]:
    """One rung of a width ladder: heads = d / 8 (at least 1), pre-LN, GELU MLP of width 4·d."""
    heads = n_heads if n_heads is not None else max(1, d_model // 8)
    if d_model % heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={heads}")
    return {"d_model": d_model, "n_layers": n_layers, "n_heads": heads, "max_len": max_len, **extra}


ADDITION_FORMATS = {"plain": "plain", "reverse": "fixed", "scratchpad": "detailed"}  # ours -> arithmetic format


def addition_task(digits: int, fmt: str = "reverse") -> dict[str, Any]:
    """``digits``-digit addition as an ``arithmetic`` task dict: both operands uniform in [0, 10^digits), written
    with leading zeros, the answer (digits + 1 tokens, then the end token) in ``fmt``: 'plain' (most significant
    digit first), 'reverse' (least significant first) or 'scratchpad' (per digit from the units up a_i b_i
    carry_in s_i, then the final carry and the plain answer: the task's 'detailed' format). No length splits.

    >>> addition_task(3)["format"], addition_task(3, "scratchpad")["format"]
    ('fixed', 'detailed')
    """
    if fmt not in ADDITION_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(ADDITION_FORMATS)}")
    return {"name": "arithmetic", "op": "add", "format": ADDITION_FORMATS[fmt], "width": digits,
            "train_digits": [digits], "test_digits": [], "uniform": True}


def task_config(task: str, digits: int = 4, parity_bits: int = 12, parity_k: int = 3,
                fmt: str = "reverse") -> dict[str, Any]:
    """The task dict of one emergence task: 'addition' (answer in ``fmt``) or 'sparse_parity' (one k-sparse
    parity)."""
    if task == "addition":
        return addition_task(digits, fmt)
    if task == "sparse_parity":
        return {"name": "sparse_parity", "n_bits": parity_bits, "k": parity_k, "subtasks": 1}
    raise ValueError(f"unknown emergence task {task!r}; allowed: addition, sparse_parity")


def emergence_specs(widths: Sequence[int], tasks: Sequence[str] = ("addition",), digits: int = 4,
                    fmt: str = "reverse", parity_bits: int = 12, parity_k: int = 3, steps: int = 2000,
                    batch_size: int = 64,
                    lr: float = 3e-3, seeds: int | Sequence[int] = 1, n_layers: int = 2, eval_every: int = 0,
                    eval_size: int = 512) -> list[RunSpec]:
    """(task × width × seed) runs; tags: experiment, task, d, seed. Addition is scored on its n + 1 answer
    digits and the end token (written least significant first by default: the format small models learn; 'plain'
    is much harder at CPU budgets, see docs/scaling-results.md); sparse parity (one subtask of ``sparse_parity``) on
    its one bit."""
    if not widths:
        raise ValueError("widths is empty; give at least one model width")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = []
    for task in tasks:
        cfg = task_config(task, digits, parity_bits, parity_k, fmt)
        for d in widths:
            for seed in seed_list:
                out.append(RunSpec(
                    study="scaling", seed=seed, task=cfg, model=model_config(d, n_layers),
                    optim={"optimizer": "adamw", "lr": lr, "weight_decay": 0.01, "schedule": "cosine",
                           "warmup_steps": min(100, steps // 10)},
                    train={"steps": steps, "batch_size": batch_size, "eval_every": eval_every,
                           "eval_size": eval_size},
                    tags={"experiment": EXPERIMENT, "task": task, "d": d, "seed": seed},
                ))
    return out


def smoke() -> list[RunSpec]:
    """Seconds on a CPU: two widths, 2-digit addition and a 6-bit parity, 150 steps."""
    return emergence_specs([8, 16], tasks=("addition", "sparse_parity"), digits=2, parity_bits=6, steps=150,
                           batch_size=32, eval_every=75, eval_size=128)


def quick(seeds: int = 1) -> list[RunSpec]:
    """A CPU ladder of six widths, 1,500 steps each: 3-digit addition (4 answer digits, reversed, and END) and a
    3-sparse parity of 12 bits."""
    return emergence_specs([4, 8, 12, 16, 24, 32], tasks=("addition", "sparse_parity"), digits=3, steps=1500,
                           batch_size=64, seeds=seeds, eval_every=300, eval_size=512)


def paper(seeds: int = 3) -> list[RunSpec]:
    """For one GPU: eight widths 8 … 256, 4 layers, 20k steps of batch 256, 3 seeds: 5-digit addition and a
    3-sparse parity of 24 bits."""
    return emergence_specs([8, 16, 24, 32, 48, 64, 128, 256], tasks=("addition", "sparse_parity"), digits=5,
                           parity_bits=24, steps=20_000, batch_size=256, seeds=seeds, n_layers=4, lr=1e-3,
                           eval_every=1000, eval_size=2048)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def scores(record: dict, split: str = "test", answer_len: int | None = None) -> dict[str, float]:
    """The four metrics of one result or eval record, each oriented so that 1 is perfect."""
    ce = record.get(f"{split}/loss", math.nan)
    dist = record.get(f"{split}/edit_distance", math.nan)
    length = answer_len or len(record.get(f"{split}/digit_accuracy") or []) or 1
    return {"exact_match": record.get(f"{split}/accuracy", math.nan),
            "token_accuracy": record.get(f"{split}/token_accuracy", math.nan),
            "token_probability": math.exp(-ce) if ce == ce else math.nan,
            "edit_score": 1 - dist / length if dist == dist else math.nan,
            "answer_len": length}


def run_table(specs: Sequence[RunSpec], results: dict[str, dict]) -> pd.DataFrame:
    """One row per finished run: task, d, seed, N (non-embedding), C (training FLOPs), L and the four scores."""
    from limitlab.costs import train_flops_per_token

    rows = []
    for spec in specs:
        res = results.get(spec.run_id)
        if not res:
            continue
        n = _n_params(spec)
        tokens = spec.train.steps * spec.train.batch_size * spec.task.seq_len()
        rows.append({"run_id": spec.run_id, "task": spec.tags.get("task", spec.task.name),
                     "d": spec.model.d_model, "seed": spec.seed, "N": n,
                     "C": train_flops_per_token(spec) * tokens, **scores(res, answer_len=_answer_len(spec))})
    return pd.DataFrame(rows)


def curve_table(specs: Sequence[RunSpec], records: dict[str, list[dict]]) -> pd.DataFrame:
    """Eval records over training: one row per (run, eval step) with C at that step and the four scores."""
    from limitlab.costs import train_flops_per_token

    rows = []
    for spec in specs:
        per_token = train_flops_per_token(spec) * spec.train.batch_size * spec.task.seq_len()
        for rec in records.get(spec.run_id, []):
            if "test/accuracy" not in rec:
                continue
            rows.append({"run_id": spec.run_id, "task": spec.tags.get("task", spec.task.name),
                         "d": spec.model.d_model, "seed": spec.seed, "step": rec["step"], "N": _n_params(spec),
                         "C": per_token * rec["step"], **scores(rec, answer_len=_answer_len(spec))})
    return pd.DataFrame(rows).drop_duplicates(["run_id", "step"], keep="last") if rows else pd.DataFrame()


def _answer_len(spec: RunSpec) -> int:
    """Scored tokens per sequence: the addition answer's length (end token included), or 1 (a single read-out,
    e.g. parity)."""
    return int(spec.task.slots()) if spec.task.name == "arithmetic" else 1


def _n_params(spec: RunSpec) -> int:
    from limitlab.costs import nonembedding_params

    return nonembedding_params(spec)


def jump_share(values: Sequence[float]) -> float:
    """The largest rise between neighbours of a ladder as a share of the metric's range (NaN if flat or short).

    >>> round(jump_share([0.0, 0.01, 0.02, 0.9, 1.0]), 3)
    0.88
    >>> round(jump_share([0.2, 0.4, 0.6, 0.8, 1.0]), 3)
    0.25
    """
    v = np.asarray([x for x in values if x == x], dtype=float)
    if len(v) < 3:
        return math.nan
    span = v.max() - v.min()
    return float(np.max(np.diff(v)) / span) if span > 1e-9 else math.nan


def analyze(runs: pd.DataFrame) -> dict[str, Any]:
    """Per task: the ladder (mean over seeds per width), each metric's jump share, and exact match vs p^L."""
    out: dict[str, Any] = {}
    if runs.empty:
        return out
    for task, g in runs.groupby("task"):
        ladder = g.groupby("d", as_index=False).agg(
            N=("N", "first"), C=("C", "mean"), seeds=("seed", "nunique"), answer_len=("answer_len", "first"),
            **{m: (m, "mean") for m in METRICS}).sort_values("N")
        shares = {m: jump_share(ladder[m].tolist()) for m in METRICS}
        predicted = ladder["token_accuracy"] ** ladder["answer_len"]
        err = float(np.nanmean(np.abs(predicted - ladder["exact_match"]))) if len(ladder) else math.nan
        one_token = bool((ladder["answer_len"] == 1).all())  # then token accuracy is exact match
        smooth = [shares[m] for m in METRICS[1:] if shares[m] == shares[m]
                  and not (one_token and m == "token_accuracy")]
        sharper = (shares["exact_match"] == shares["exact_match"] and bool(smooth)
                   and shares["exact_match"] >= 1.25 * max(smooth))
        smooth_ok = bool(smooth) and max(smooth) <= SMOOTH_SHARE
        out[str(task)] = {
            "ladder": ladder.assign(predicted_exact_match=predicted).to_dict("records"),
            "jump_share": shares, "pL_mean_abs_error": err, "exact_match_sharper": bool(sharper),
            "continuous_smooth": smooth_ok,
            "em_range": [float(ladder["exact_match"].min()), float(ladder["exact_match"].max())],
        }
    return out


def claim(analysis: dict[str, Any]) -> list[dict[str, str]]:
    """Claims-table rows, one per task: exact match jumps where the continuous metrics are smooth.

    The continuous metrics compared are those that differ from exact match: for a one-token answer (parity)
    per-token accuracy *is* exact match, so only exp(-CE) is compared."""
    row = {"claim": "Emergence is partly the metric: exact match jumps where per-token metrics are smooth",
           "intuition": "3: single tasks can emerge abruptly while loss is smooth (Schaeffer 2023: partly the metric)",
           "criterion": f"exact match's largest ladder step covers ≥ 1.25× the range share of every continuous "
                        f"metric's, no continuous metric covers > {SMOOTH_SHARE} of its range in one step (smooth), "
                        "and EM ≈ p^L (mean |error| < 0.1; multi-token answers)"}
    if not analysis:
        return [{**row, "ours": "no finished emergence runs", "verdict": "not measured"}]
    rows = []
    for task, a in analysis.items():
        js = a["jump_share"]
        ours = (f"{task}: largest-step share EM {_f(js['exact_match'])} vs token acc {_f(js['token_accuracy'])}, "
                f"exp(-CE) {_f(js['token_probability'])}, edit {_f(js['edit_score'])}; |EM - p^L| "
                f"{_f(a['pL_mean_abs_error'])}")
        if a["em_range"][1] - a["em_range"][0] < 0.2:
            rows.append({**row, "ours": ours + " (exact match moved by < 0.2 over the ladder)",
                         "verdict": "not measured"})
            continue
        ok = a["exact_match_sharper"] and a["continuous_smooth"] and a["pL_mean_abs_error"] < 0.1
        rows.append({**row, "ours": ours, "verdict": "agree" if ok else "disagree"})
    return rows


def _f(x: float) -> str:
    return "—" if x != x else f"{x:.2f}"


# ---- figures and report -------------------------------------------------------------------------------------------

def figure(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> Path | None:
    """Per task: the four metrics vs N (final, mean over seeds) and vs C (eval curves), exact match beside them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if runs.empty:
        return None
    tasks = sorted(runs["task"].unique())
    fig, axes = plt.subplots(len(tasks), 2, figsize=(11, 4 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        g = runs[runs["task"] == task].groupby("d", as_index=False).mean(numeric_only=True).sort_values("N")
        ax = axes[row][0]
        for m in METRICS:
            ax.plot(g["N"], g[m], marker="o", lw=2.5 if m == "exact_match" else 1.2, label=LABELS[m])
        ax.plot(g["N"], g["token_accuracy"] ** g["answer_len"], ls=":", color="k", label="(per-token acc)^L")
        ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel="score (1 = perfect)", ylim=(-0.02, 1.02),
               title=f"{task}: final scores vs model size")
        ax.legend(fontsize=8)
        ax = axes[row][1]
        c = curves[curves["task"] == task] if not curves.empty else curves
        for m, style in (("exact_match", "-"), ("token_accuracy", "--")):
            for d, cd in (c.groupby("d") if not c.empty else []):
                cd = cd.groupby("step", as_index=False).mean(numeric_only=True)
                ax.plot(cd["C"], cd[m], style, label=f"{LABELS[m]}, d={d}")
        ax.set(xscale="log", xlabel="training compute C (FLOPs)", ylabel="score", ylim=(-0.02, 1.02),
               title=f"{task}: exact match (solid), token accuracy (dashed)")
        ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, path)


def _nested(row: dict[str, Any]) -> dict[str, Any]:
    """A run's spec as a nested dict, from the dotted spec columns of a store DataFrame row (NaN cells left out)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        top = key.split(".")[0]
        if top not in RunSpec.model_fields or (isinstance(value, float) and value != value):
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def collect(runs: pd.DataFrame) -> tuple[list[RunSpec], dict[str, dict], dict[str, list[dict]]]:
    """From the frame's rows of one experiment (every status): the finished runs' specs, their final results
    ({run_id: {"split/metric": value}}) and their metric records (the ``metrics`` column)."""
    if runs is None or runs.empty:
        return [], {}, {}
    done = runs[runs["status"] == "done"] if "status" in runs else runs
    specs, results, records = [], {}, {}
    for row in done.to_dict("records"):
        spec = RunSpec.model_validate(_nested(row))
        specs.append(spec)
        results[spec.run_id] = {k[len("result."):]: v for k, v in row.items()
                                if k.startswith("result.") and not (isinstance(v, float) and v != v)}
        records[spec.run_id] = list(row.get("metrics") or [])
    return specs, results, records


def report_section(runs: pd.DataFrame, out_dir: str | Path) -> tuple[dict, dict, list, Any]:
    """The frame's contract (see :mod:`limitlab.studies.scaling`): (results, figures, claims, render)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs, results, records = collect(runs)
    table, curves = run_table(specs, results), curve_table(specs, records)
    analysis = analyze(table)
    figures = {}
    if not table.empty and figure(table, curves, out_dir / "emergence_metrics.png"):
        figures["metrics"] = "emergence_metrics.png"
    from limitlab.tasks import TASKS

    tasks = sorted(table["task"].unique()) if not table.empty else []

    def render(page) -> None:
        page.paragraph("The same runs scored four ways: addition (the answer's n + 1 digits, least significant "
                       "first, and the end token are scored) and one 3-sparse parity (one answer bit: exact match = "
                       "per-token accuracy, so only exp(-CE) is a continuous counterpart). Exact match is the sharp "
                       "metric; per-token accuracy, exp(-cross-entropy) and 1 - edit distance / L are continuous. "
                       "'Largest step share' is the share of a metric's range covered by the largest single step of "
                       "the width ladder (1 = all of it at once).")
        if specs and "sparse_parity" not in tasks:
            why = "no sparse_parity task is registered" if "sparse_parity" not in TASKS else \
                "no sparse-parity runs are in this store"
            page.paragraph(f"Only multi-digit addition is scored here: {why}.", css="note")
        if not specs:
            page.paragraph("No finished emergence runs in this store.", css="note")
        if "metrics" in figures:
            page.figure(figures["metrics"], "Scores vs N (left); exact match (solid) vs per-token accuracy (dashed) "
                                            "over training compute (right)")
        for task, a in analysis.items():
            rows = [{"d": r["d"], "N": r["N"], "seeds": r["seeds"], **{LABELS[m]: r[m] for m in METRICS},
                     "(token acc)^L": r["predicted_exact_match"]} for r in a["ladder"]]
            page.table(rows, caption=f"{task}: final scores per width (mean over seeds)")
            page.table([{"metric": LABELS[m], "largest step share": a["jump_share"][m]} for m in METRICS],
                       caption=f"{task}: how abrupt each metric is over the ladder")

    return {"analysis": analysis, "runs": len(table)}, figures, claim(analysis), render
