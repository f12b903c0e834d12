"""The encodings section's summary: per encoding and experiment, exact match in distribution, outward and inward
(mean and 95% interval over the seeds that learned), as a table and as the paper's bar figure (outward exact match
per encoding, addition beside multiplication)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis import PROPORTION
from limitlab.claims import Measure
from limitlab.report.figures import COLORS, new_figure
from limitlab.report.sections import Section
from limitlab.studies.arithmetic import analysis as A


def percent(x: Any) -> str:
    """0.5 -> '50.0%'; None or NaN -> '—'."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def with_interval(mean: float, low: float, high: float) -> str:
    """'50.0% [40.0%, 60.0%]', or the mean alone when there is no interval."""
    return percent(mean) if math.isnan(low) else f"{percent(mean)} [{percent(low)}, {percent(high)}]"


def encoding_summary(sec: Section, long: pd.DataFrame) -> None:
    """Per encoding and experiment: in-distribution, outward and inward exact match (mean and 95% interval over the
    seeds that learned their training distribution), a table and the paper's figure: outward exact match per
    encoding, addition beside multiplication."""
    rows = []
    for (exp, pos), g in long[long["format"] != "remainder"].groupby(A.KEYS, sort=True):
        row: dict[str, Any] = {"experiment": exp, "position": pos,
                               "learned (≥ 90% in distribution)": f"{int(g.drop_duplicates('run_id')['learned'].sum())}"
                                                                  f" of {g['run_id'].nunique()}"}
        for kind in ("in distribution", "outward", "inward"):
            part = g[g["kind"] == kind]
            values = A.seed_values(part, "exact") if len(part) else {}
            m = Measure.of(list(values.values()), PROPORTION) if values else None
            row[kind] = with_interval(m.estimate, m.low, m.high) if m else "—"
            row[f"_{kind}"] = (m.estimate, m.low, m.high) if m else (math.nan,) * 3
        rows.append(row)
    if not rows:
        return
    sec.results["summary"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    sec.table(sec.results["summary"], caption="Exact match per encoding on the length split: at the training digit "
              "counts (in distribution; for D_ab the other operand may be shorter there), beyond the training length "
              "(outward) and inside it but off the training support (inward: D_ab4 at 1–3 digits); mean over the "
              "digit counts of each kind, then over seeds (95% t-interval), from the seeds that learned their "
              "training distribution")
    bars = [r for r in rows if not str(r["experiment"]).split("/")[1].startswith("D_ab")]
    exps = sorted({r["experiment"] for r in bars})
    positions = sorted({r["position"] for r in bars})
    if len(positions) < 2 or not exps:
        return
    fig = new_figure(1.1 * len(positions) + 2.5, 3.4)
    ax = fig.subplots()
    step = 0.8 / len(exps)
    for j, exp in enumerate(exps):
        vals = {r["position"]: r["_outward"] for r in bars if r["experiment"] == exp}
        x = np.arange(len(positions)) + (j - (len(exps) - 1) / 2) * step
        mean = np.array([vals.get(p, (math.nan,) * 3)[0] for p in positions])
        low = np.array([vals.get(p, (math.nan,) * 3)[1] for p in positions])
        high = np.array([vals.get(p, (math.nan,) * 3)[2] for p in positions])
        err = np.vstack([mean - low, high - mean])
        ax.bar(x, np.nan_to_num(mean), step * 0.9, yerr=np.nan_to_num(err), capsize=3, label=exp,
               color=COLORS[j % len(COLORS)])
        for xi, mi in zip(x, mean):
            if math.isnan(mi):
                ax.text(xi, 0.02, "not\nlearned", ha="center", fontsize=6, rotation=90)
    ax.set_xticks(np.arange(len(positions)), positions)
    ax.set(ylim=(0, 1.05), ylabel="outward exact match", title="Beyond the training length, per encoding")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    sec.figure("encodings_outward.png", fig, "Outward exact match per position encoding (mean over the outward "
               "digit counts, then seeds; bars: 95% interval), addition beside multiplication; 'not learned': no "
               "seed reached 90% in distribution")
