"""``limitlab bench --preset``: project a whole preset's wall time from a few measured stacks.

The preset is planned into stacks; :func:`pick_stacks` chooses a few spread over their per-step cost; each is
measured (``bench.measure``); :func:`fit_line` fits step seconds = a + b · stack FLOPs per step on them, with
a, b >= 0; :func:`project` sums that over every stack of the plan (and over every run, for one at a time).

>>> fit_line([1.0, 2.0, 3.0], [3.0, 5.0, 7.0])     # 1 s of overhead + 2 s per unit of FLOPs
(1.0, 2.0)
"""

from __future__ import annotations

from collections.abc import Sequence

from limitlab.costs import train_flops_per_step
from limitlab.planner import Stack


def pick_stacks(stacks: Sequence[Stack], k: int) -> list[Stack]:
    """Up to k stacks spread over the per-step cost range (cheapest, dearest and quantiles between)."""
    ordered = sorted(stacks, key=lambda s: s.flops_per_step)
    if len(ordered) <= k:
        return ordered
    idx = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [len(ordered) - 1]
    return [ordered[i] for i in idx]


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares y = a + b·x with a, b >= 0 (a single point: through the origin)."""
    if len(xs) == 1:
        return 0.0, ys[0] / xs[0]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    b = max(b, 0.0)
    a = my - b * mx
    if a < 0:
        a, b = 0.0, sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    return a, b


def project(stacks: Sequence[Stack], rows: Sequence[dict], mode: str) -> dict:
    """Fit step seconds vs stack FLOPs on the measured rows and sum over every stack of the plan."""
    pts = [(r["models"] * r["flops_per_model_step"], r["models"] / r["modes"][mode]["stacked"]["model_steps_per_s"])
           for r in rows if mode in r["modes"]]
    a, b = fit_line([p[0] for p in pts], [p[1] for p in pts])
    total = sum(s.steps * (a + b * s.flops_per_step) for s in stacks)
    out = {"mode": mode, "fit_overhead_s": a, "fit_s_per_flop": b, "stacked_hours": total / 3600}
    loop_pts = [(r["flops_per_model_step"], 1 / r["modes"][mode]["loop"]["model_steps_per_s"])
                for r in rows if "loop" in r["modes"].get(mode, {})]
    if loop_pts:
        la, lb = fit_line([p[0] for p in loop_pts], [p[1] for p in loop_pts])
        loop_total = sum(sp.train.steps * (la + lb * train_flops_per_step(sp)) for st in stacks for sp in st.specs)
        out["loop_hours"] = loop_total / 3600
    return out
