"""Grokking against weight decay: the delay of generalisation per weight decay, and the weight norm over training.

Power et al. 2022 found weight decay the intervention that helps grokking most; Nanda et al. 2023 show the weight
norm falling while held-out accuracy is still at chance (weight decay removing the memorising solution). The quick
preset trains one setting at several weight decays (3 seeds each); this module measures, per seed, how the
**delay** (first step with held-out accuracy ≥ 0.9 over first step with train accuracy ≥ 0.99) changes from the
smallest weight decay of the sweep to the largest, and draws the curves (accuracy and weight norm) per weight decay.

A run whose held-out accuracy never reaches its level within the budget is *censored*: its delay is at least
budget / step_train. :func:`paired_log_ratio` keeps such a bound only where it cannot flip the sign of the
comparison, and counts 0 (no evidence either way) where it could:

>>> paired_log_ratio(4.0, False, 2.0, False)          # both generalised: log2(4 / 2)
1.0
>>> paired_log_ratio(5.0, True, 2.0, False)           # smallest weight decay censored at ≥ 5: still ≥ log2(2.5)
1.3219280948873624
>>> paired_log_ratio(1.5, True, 2.0, False), paired_log_ratio(4.0, False, 2.0, True)   # the sign stays open
(0.0, 0.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from limitlab.claims import AtLeast, Claim, Measure
from limitlab.report.figures import COLORS, new_figure
from limitlab.studies.scaling.evals import plot_band, seed_band

TRAIN_LEVEL, TEST_LEVEL = 0.99, 0.9

SHORTER_WITH_WD = Claim(
    "scaling.grokking.weight_decay", "Power et al. 2022; Nanda et al. 2023",
    "Power: the comparison of regularisers (weight decay helps most); Nanda: weight norm and the cleanup phase",
    "More weight decay shortens the delay between memorising the training pairs and generalising to the held-out "
    "pairs",
    f"per seed, log2 of the delay ratio at the smallest weight decay of the sweep over the delay ratio at the "
    f"largest (delay ratio: first step with held-out accuracy ≥ {TEST_LEVEL} / first step with train accuracy ≥ "
    f"{TRAIN_LEVEL}; a run that never reaches {TEST_LEVEL} counts its step budget, a lower bound, and a pair whose "
    "sign that bound leaves open counts 0)",
    AtLeast(0.0, strict=True),
    untested="one learning rate (3e-3) and minibatches of 512, not Nanda's full batch at 1e-3; only the two ends of "
             "the sweep are compared (the middle weight decays are drawn, not tested); a run that never memorises "
             "(train accuracy < 0.99) has no delay and leaves its seed out")


def run_delays(table: pd.DataFrame) -> pd.DataFrame:
    """Per run (a :func:`limitlab.studies.scaling.grokking.per_run` table with ``weight_decay``): ``delay``, the
    ratio or its lower bound budget / step_train, and ``censored`` (held-out never reached its level)."""
    out = table.copy()
    censored = out["step_test"].isna() & out["step_train"].notna()
    test_step = out["step_test"].where(~censored, out["steps"])
    out["delay"] = test_step / out["step_train"]
    out["censored"] = censored
    return out


def paired_log_ratio(delay_small: float, censored_small: bool, delay_large: float, censored_large: bool) -> float:
    """log2(delay at the small weight decay / delay at the large one); a censored delay is a lower bound, so the
    ratio is kept only where that bound cannot flip its sign (see the module docstring)."""
    if math.isnan(delay_small) or math.isnan(delay_large):
        return math.nan
    value = math.log2(delay_small / delay_large)
    if censored_small and censored_large:
        return 0.0
    if censored_small:  # the true value is ≥ value
        return max(value, 0.0)
    if censored_large:  # the true value is ≤ value
        return min(value, 0.0)
    return value


def sweep_measure(delays: pd.DataFrame) -> tuple[Measure | None, str]:
    """The claim's per-seed measure between the smallest and the largest weight decay (None: fewer than two
    weight decays), and a sentence of what each seed showed."""
    wds = sorted(delays["weight_decay"].unique())
    if len(wds) < 2:
        return None, "one weight decay only: no sweep"
    lo = delays[delays["weight_decay"] == wds[0]].set_index("seed")
    hi = delays[delays["weight_decay"] == wds[-1]].set_index("seed")
    values, parts = {}, []
    for seed in sorted(set(lo.index) & set(hi.index)):
        a, b = lo.loc[seed], hi.loc[seed]
        values[seed] = paired_log_ratio(float(a["delay"]), bool(a["censored"]), float(b["delay"]),
                                        bool(b["censored"]))
        parts.append(f"seed {seed}: {_delay_text(a)} at wd {wds[0]:g} vs {_delay_text(b)} at wd {wds[-1]:g}")
    measure = Measure.of(list(values.values()))
    return measure, f"{measure.shown()}; " + "; ".join(parts)


def _delay_text(row: Any) -> str:
    if math.isnan(row["delay"]):
        return "no delay (train < 0.99)"
    return f"{'≥ ' if row['censored'] else ''}×{row['delay']:.1f}"


def curves_figure(curve: pd.DataFrame) -> Any:
    """One column per weight decay: train (dashed) and held-out (solid) accuracy on top, the weight norm below;
    mean over seeds with its 95% band, and each seed's held-out curve thin."""
    wds = sorted(curve["weight_decay"].unique())
    fig = new_figure(3.2 * len(wds) + 0.6, 5.6)
    axes = fig.subplots(2, len(wds), sharex=True, squeeze=False)
    has_norm = "weight_norm" in curve and curve["weight_norm"].notna().any()
    top = 0.0
    for j, wd in enumerate(wds):
        g = curve[curve["weight_decay"] == wd]
        acc, norm = axes[0, j], axes[1, j]
        for split, ls, color in (("train", "--", COLORS[0]), ("test", "-", COLORS[1])):
            plot_band(acc, seed_band(g, [], "step", f"{split}/accuracy"), "step",
                      "train" if split == "train" else "held-out", color, ls)
        for _, run in g.groupby("run_id"):
            acc.plot(run["step"], run["test/accuracy"], color=COLORS[1], lw=0.6, alpha=0.5)
        acc.axhline(TEST_LEVEL, color="grey", ls=":", lw=1)
        acc.set(title=f"weight decay {wd:g} ({g['seed'].nunique()} seeds)", ylim=(-0.02, 1.02))
        if has_norm:
            plot_band(norm, seed_band(g, [], "step", "weight_norm", (0.0, math.inf)), "step", "weight norm",
                      COLORS[2])
            top = max(top, float(g["weight_norm"].max()))
        else:
            norm.text(0.5, 0.5, "no weight norm recorded", ha="center", va="center", transform=norm.transAxes)
        norm.set(xlabel="training step")
        for ax in (acc, norm):
            ax.grid(alpha=0.3)
    for j in range(len(wds)):
        if has_norm:
            axes[1, j].set_ylim(0, top * 1.05)
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("L2 norm of all weights")
    axes[0, 0].legend(fontsize=7)
    return fig


def delay_figure(delays: pd.DataFrame) -> Any:
    """Delay ratio against weight decay (log–log): each seed (a triangle where the run never generalised, at its
    lower bound) and the geometric mean of the uncensored runs."""
    fig = new_figure(5.0, 3.8)
    ax = fig.subplots()
    for i, (seed, g) in enumerate(delays.groupby("seed")):
        g = g.sort_values("weight_decay")
        ax.plot(g["weight_decay"], g["delay"], color=COLORS[i % len(COLORS)], lw=0.8, alpha=0.6,
                label=f"seed {seed}")
        for censored, marker in ((False, "o"), (True, "^")):
            part = g[g["censored"] == censored]
            ax.scatter(part["weight_decay"], part["delay"], color=COLORS[i % len(COLORS)], marker=marker, s=30)
    clean = delays[~delays["censored"] & delays["delay"].notna()]
    if len(clean):
        geo = clean.groupby("weight_decay")["delay"].apply(lambda d: float(np.exp(np.log(d).mean())))
        ax.plot(geo.index, geo.values, color="black", lw=2, label="geometric mean (generalised runs)")
    if (delays["weight_decay"] > 0).all():
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=0.1)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set(yscale="log", xlabel="weight decay (AdamW)", ylabel="delay (step held-out ≥ 0.9 / train ≥ 0.99)")
    ax.set_title("Delay vs weight decay (▲: never generalised, lower bound)", fontsize=9)
    ax.set_xticks(sorted(delays["weight_decay"].unique()))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig
