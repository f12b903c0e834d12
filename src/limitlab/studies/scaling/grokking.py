"""Grokking: emergence in time on modular addition (Power et al. 2022; Nanda et al. 2023).

A one-layer transformer (no LayerNorm, ReLU MLP) learns a + b mod p from a fixed 30% of the p² pairs with AdamW
and weight decay 1. Training accuracy reaches 100% early (memorisation); accuracy on the held-out pairs stays at
chance and then, long afterwards, jumps to ~100%. ``eval_every`` evaluates both the ``train`` split (the pairs
the model trains on) and ``test`` (the held-out rest), so the curves come from ``RunStore.metrics(run_id)``.

Derived per run: ``step_train`` (first evaluation with train accuracy ≥ 0.99), ``step_test`` (first with test
accuracy ≥ 0.9; censored at the last step when never reached) and their ratio, the delay of generalisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from limitlab.report.figures import save_figure
from limitlab.spec import RunSpec
from limitlab.studies.scaling.emergence import collect

EXPERIMENT = "grokking"
TRAIN_LEVEL, TEST_LEVEL = 0.99, 0.9


def grokking_specs(p: int = 113, train_fraction: float = 0.3, steps: int = 30_000, seeds: int | Sequence[int] = 1,
                   d_model: int = 128, n_heads: int = 4, lrs: Sequence[float] = (1e-3,), weight_decay: float = 1.0,
                   batch_size: int | None = None, eval_every: int = 250, eval_size: int = 2048) -> list[RunSpec]:
    """Nanda et al.'s setup: 1 layer, d_mlp = 4·d, ReLU, no LayerNorm, AdamW β = (0.9, 0.98), 10 warmup steps;
    one run per (learning rate, seed). ``batch_size`` None = the whole training set (full batch, drawn with
    replacement each step)."""
    n_train = max(1, round(train_fraction * p * p))
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return [RunSpec(
        study="scaling", seed=seed,
        task={"name": "modular_addition", "p": p, "train_fraction": train_fraction},
        model={"n_layers": 1, "n_heads": n_heads, "d_model": d_model, "d_mlp": 4 * d_model, "activation": "relu",
               "norm": "none", "max_len": 3},
        optim={"optimizer": "adamw", "lr": lr, "weight_decay": weight_decay, "beta2": 0.98, "warmup_steps": 10},
        train={"steps": steps, "batch_size": batch_size or n_train, "eval_every": eval_every, "eval_size": eval_size},
        tags={"experiment": EXPERIMENT, "p": p, "train_fraction": train_fraction, "lr": lr, "seed": seed},
    ) for lr in lrs for seed in seed_list]


def smoke() -> list[RunSpec]:
    """Seconds: p = 7, 120 steps (checks the pipeline, not grokking)."""
    return grokking_specs(p=7, steps=120, d_model=16, lrs=(3e-3,), eval_every=40, eval_size=128)


def quick(seeds: int = 1) -> list[RunSpec]:
    """CPU: p = 113 and 30% of the pairs as in Nanda et al., but minibatches of 512 (not the full 3,830) and
    3,000 steps, at two learning rates (3e-3, 1e-2; weight decay 1). Chosen from probes on this machine: at
    p = 31 (d 64) and p = 59 (d 128) with batch ≤ 512, lr ≤ 3e-3, held-out accuracy stayed ≤ 3% for 4,200 and
    2,000 steps; see docs/scaling-results.md."""
    return grokking_specs(p=113, steps=3000, seeds=seeds, lrs=(3e-3, 1e-2), batch_size=512, eval_every=100,
                          eval_size=1024)


def paper(seeds: int = 3) -> list[RunSpec]:
    """Nanda et al.: p = 113, 30% of the pairs, full batch (3,830), lr 1e-3, weight decay 1, 30k steps."""
    return grokking_specs(p=113, steps=30_000, seeds=seeds, eval_every=250)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def curves(specs: Sequence[RunSpec], records: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (run, eval step): p, seed, step, train/test accuracy and loss."""
    rows = []
    for spec in specs:
        for rec in records.get(spec.run_id, []):
            if "test/accuracy" in rec and "train/accuracy" in rec:
                rows.append({"run_id": spec.run_id, "p": spec.task.p, "lr": spec.optim.lr, "seed": spec.seed,
                             "step": rec["step"],
                             "train_acc": rec["train/accuracy"], "test_acc": rec["test/accuracy"],
                             "train_loss": rec.get("train/loss", math.nan),
                             "test_loss": rec.get("test/loss", math.nan)})
    cols = ["run_id", "p", "lr", "seed", "step", "train_acc", "test_acc", "train_loss", "test_loss"]
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows, columns=cols).drop_duplicates(["run_id", "step"], keep="last")
    return frame.sort_values(["run_id", "step"])


def first_step(steps: Sequence[int], values: Sequence[float], level: float) -> int | None:
    """The first step whose value is ≥ level (None if never).

    >>> first_step([100, 200, 300], [0.1, 0.95, 0.99], 0.9)
    200
    """
    for s, v in zip(steps, values):
        if v >= level:
            return int(s)
    return None


def analyze(curve: pd.DataFrame) -> list[dict[str, Any]]:
    """Per run: step_train, step_test (or censored), the delay ratio, final and peak accuracies."""
    out = []
    for run_id, g in curve.groupby("run_id", sort=False):
        g = g.sort_values("step")
        st = first_step(g["step"], g["train_acc"], TRAIN_LEVEL)
        se = first_step(g["step"], g["test_acc"], TEST_LEVEL)
        out.append({"run_id": run_id, "p": int(g["p"].iloc[0]), "lr": float(g["lr"].iloc[0]),
                    "seed": int(g["seed"].iloc[0]),
                    "steps": int(g["step"].max()), "step_train": st, "step_test": se,
                    "censored": se is None, "delay_ratio": se / st if (se and st) else None,
                    "final_train_acc": float(g["train_acc"].iloc[-1]), "final_test_acc": float(g["test_acc"].iloc[-1]),
                    "chance": 1 / int(g["p"].iloc[0])})
    return out


def claim(runs: list[dict[str, Any]]) -> dict[str, str]:
    row = {"claim": "Emergence in time (grokking): held-out accuracy jumps long after training accuracy saturates",
           "intuition": "3: abilities can emerge abruptly (here in training time; Power 2022, Nanda 2023)",
           "criterion": f"test acc reaches {TEST_LEVEL} at ≥ 2× the step where train acc reaches {TRAIN_LEVEL}, in "
                        "every run"}
    if not runs:
        return {**row, "ours": "no finished grokking runs", "verdict": "not measured"}
    parts = []
    for r in runs:
        if r["censored"]:
            parts.append(f"p={r['p']} lr {r['lr']:g} seed {r['seed']}: train ≥ {TRAIN_LEVEL} at step "
                         f"{r['step_train']}, test never ≥ {TEST_LEVEL} in {r['steps']} steps "
                         f"(final {r['final_test_acc']:.2f})")
        else:
            parts.append(f"p={r['p']} lr {r['lr']:g} seed {r['seed']}: train at step {r['step_train']}, test at "
                         f"{r['step_test']} "
                         f"(×{r['delay_ratio']:.1f})")
    grokked = [r for r in runs if not r["censored"] and r["step_train"] is not None]
    if len(grokked) < len(runs):  # no grokking within the budget: the runs cannot decide the claim
        verdict = "disagree" if any(r["delay_ratio"] < 2 for r in grokked) else "not measured"
    else:
        verdict = "agree" if all(r["delay_ratio"] >= 2 for r in grokked) else "disagree"
    return {**row, "ours": "; ".join(parts), "verdict": verdict}


def figure(curve: pd.DataFrame, path: Path) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if curve.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (_, g) in enumerate(curve.groupby("run_id", sort=False)):
        label = f"p={g['p'].iloc[0]}, lr {g['lr'].iloc[0]:g}, seed {g['seed'].iloc[0]}"
        ax.plot(g["step"], g["train_acc"], color=f"C{i}", ls="--", label=f"train, {label}")
        ax.plot(g["step"], g["test_acc"], color=f"C{i}", label=f"held-out, {label}")
    ax.set(xscale="log", xlabel="training step", ylabel="accuracy", ylim=(-0.02, 1.02),
           title="Grokking: train (dashed) vs held-out (solid) accuracy")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def report_section(runs: pd.DataFrame, out_dir: str | Path) -> tuple[dict, dict, list, Any]:
    """The frame's contract (see :mod:`limitlab.studies.scaling`): (results, figures, claims, render)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs, _, records = collect(runs)
    curve = curves(specs, records)
    per_run = analyze(curve)
    figures = {}
    if figure(curve, out_dir / "grokking_curves.png"):
        figures["curves"] = "grokking_curves.png"

    def render(page) -> None:
        if not specs:
            page.paragraph("No finished grokking runs in this store.", css="note")
            return
        s = specs[0]
        page.paragraph(f"Modular addition mod p={s.task.p}, {s.task.train_fraction:.0%} of the {s.task.p ** 2} pairs "
                       f"as a fixed training set (split from the seed), the rest held out; 1 layer, "
                       f"d={s.model.d_model}, no LayerNorm; AdamW lr {s.optim.lr:g}, weight decay "
                       f"{s.optim.weight_decay:g}, batch {s.train.batch_size}, {s.train.steps} steps. Nanda et al. "
                       "use p = 113, full batch (3,830 pairs) and lr 1e-3.")
        if "curves" in figures:
            page.figure(figures["curves"], "Train vs held-out accuracy over training steps")
        page.table(per_run, caption=f"Per run: first step with train acc ≥ {TRAIN_LEVEL} and held-out acc ≥ "
                                    f"{TEST_LEVEL} (None: not reached)")

    return {"runs": per_run}, figures, [claim(per_run)], render
