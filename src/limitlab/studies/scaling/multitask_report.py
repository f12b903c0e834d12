"""Analysis and report section of the multitask sparse-parity experiment (see :mod:`.multitask`; claims:
:data:`.multitask.CLAIMS`).

Each seed is one replicate of the whole ladder of sizes, so each claim's quantity is computed per seed and its
interval is a 95% t-interval over seeds:

* **abruptness** of a loss curve: the largest share of its total drop made between two consecutive evaluations
  (:func:`max_step_share`: near 1 for a jump, about 1/evaluations for a steady decline) and the 10→90% width of
  its drop as a fraction of training (:func:`drop_width`). Per seed, the median over the subtask curves against
  the median over the overall-loss curves of its runs (a ratio: paired within the seed).
* **order**: Spearman's ρ between a subtask's frequency rank and the step at which the seed's largest model
  learns it (accuracy ≥ 90%), or the smallest size that learns it by the end.

>>> import pandas as pd
>>> from limitlab.report.sections import ReportContext
>>> sec = analyze(ReportContext(None, None, pd.DataFrame(), pd.DataFrame()))
>>> sorted({r.verdict for r in sec.claims})
['not measured']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from limitlab.claims import Measure
from limitlab.report.sections import ReportContext, Section
from limitlab.studies.scaling.multitask import CLAIMS

LEARNED = 0.9  # accuracy at which a subtask counts as learned
MIN_DROP = 0.05  # nats: a curve that drops less has no transition to measure


def drop_width(steps: np.ndarray, y: np.ndarray) -> float | None:
    """Steps between 10% and 90% of a curve's total drop (from its first to its lowest value); None when the
    curve drops by less than ``MIN_DROP`` nats (nothing was learned, so there is no transition to measure).

    >>> drop_width(np.array([0, 100, 200, 300]), np.array([1.0, 1.0, 0.1, 0.1]))
    80.0
    """
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return None
    total = y[0] - y.min()
    if total < MIN_DROP:
        return None
    frac = (y[0] - np.minimum.accumulate(y)) / total  # monotone progress 0 → 1
    t10 = float(np.interp(0.1, frac, steps)) if frac[-1] >= 0.1 else None
    t90 = float(np.interp(0.9, frac, steps))
    return None if t10 is None else t90 - t10


def max_step_share(y: np.ndarray) -> float | None:
    """The largest share of a curve's total drop made between two consecutive evaluations (on the running
    minimum); None below a ``MIN_DROP``-nat drop.

    >>> round(max_step_share(np.array([1.0, 1.0, 0.2, 0.1])), 6)     # 0.8 of the 0.9 drop in one step
    0.888889
    """
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return None
    total = y[0] - y.min()
    if total < MIN_DROP:
        return None
    return float(np.max(-np.diff(np.minimum.accumulate(y))) / total)


def curves(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per evaluation: step, overall loss, and per-subtask loss/accuracy columns (uniform split)."""
    rows = []
    for rec in records:
        if "uniform/loss_by_subtask" not in rec:
            continue
        row = {"step": rec["step"], "loss": rec.get("test/loss", math.nan)}
        for j, (lo, acc) in enumerate(zip(rec["uniform/loss_by_subtask"], rec["uniform/accuracy_by_subtask"])):
            row[f"loss_{j}"], row[f"acc_{j}"] = lo, acc
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def run_summary(run: pd.Series, c: pd.DataFrame) -> dict[str, Any]:
    """Per run: final loss, the overall curve's abruptness, and per subtask its learning step and abruptness."""
    K, length = int(run["tags.subtasks"]), float(run["train.steps"])
    steps = c["step"].to_numpy(dtype=float)
    subtasks = []
    for j in range(K):
        if f"acc_{j}" not in c:
            subtasks.append({"subtask": j, "learned_step": None, "final_accuracy": math.nan})
            continue
        acc, loss = c[f"acc_{j}"].to_numpy(dtype=float), c[f"loss_{j}"].to_numpy(dtype=float)
        hit = np.nonzero(acc >= LEARNED)[0]
        width = drop_width(steps, loss)
        subtasks.append({"subtask": j, "frequency": run["tags.frequencies"][j],
                         "learned_step": float(steps[hit[0]]) if len(hit) else None,
                         "final_accuracy": float(acc[-1]), "final_loss": float(loss[-1]),
                         "max_step_share": max_step_share(loss),
                         "width_frac": None if width is None else width / length})
    overall = c["loss"].to_numpy(dtype=float)
    width = drop_width(steps, overall)
    return {"run_id": run["run_id"], "size": int(run["tags.size"]), "seed": int(run["seed"]),
            "n_params": int(run["tags.n_params"]), "steps": int(length), "final_loss": float(overall[-1]),
            "overall_width_frac": None if width is None else width / length,
            "overall_max_step_share": max_step_share(overall), "subtasks": subtasks}


def _median(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else math.nan


def _rho(value: np.ndarray) -> float:
    """Spearman ρ between frequency rank (0 = most frequent) and ``value``; NaN when nothing varies."""
    if len(value) < 3 or np.all(value == value[0]):
        return math.nan
    return float(stats.spearmanr(np.arange(len(value)), value).statistic)


def seed_summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The four claim quantities of one seed's runs (see the module docstring)."""
    sub = [s for r in runs for s in r["subtasks"]]
    out = {"share_ratio": _median([s.get("max_step_share") for s in sub]) /
           _median([r["overall_max_step_share"] for r in runs]),
           "width_ratio": _median([s.get("width_frac") for s in sub]) /
           _median([r["overall_width_frac"] for r in runs])}
    big = max(runs, key=lambda r: r["size"])
    horizon = 2.0 * big["steps"]
    out["order_steps"] = _rho(np.array([s["learned_step"] if s["learned_step"] is not None else horizon
                                        for s in big["subtasks"]]))
    sizes = sorted(r["size"] for r in runs)
    first = [min([r["size"] for r in runs if r["subtasks"][j]["final_accuracy"] >= LEARNED], default=len(sizes))
             for j in range(len(big["subtasks"]))]
    out["order_size"] = _rho(np.array(first, dtype=float)) if len(sizes) >= 2 else math.nan
    out["largest_size"], out["n_learned_largest"] = big["size"], sum(s["learned_step"] is not None
                                                                     for s in big["subtasks"])
    return out


def analyze(ctx: ReportContext) -> Section:
    """The multitask section: per-run curves, per-seed claim quantities, figures with bands over seeds."""
    from limitlab.studies.scaling.multitask_figures import figures

    sec = Section("multitask", "Multitask next-token prediction (multitask sparse parity)")
    runs = sec.uses(ctx.tagged(experiment="multitask"))
    sec.paragraph(f"K parity subtasks (k of n bits each) with frequencies ∝ (i+1)^−zipf; subtask 0 is the most "
                  f"common. Overall loss on the training mixture; per-subtask loss and accuracy on a uniform mixture. "
                  f"A subtask is learned when its accuracy reaches {LEARNED:g}. Every claim is measured per seed "
                  "(each seed trains the whole ladder of sizes) with a 95% t-interval over seeds.")
    per_run, curve = [], {}
    for _, run in runs.iterrows():
        c = curves(ctx.store.metrics(run["run_id"]))
        if c.empty:
            continue
        per_run.append(run_summary(run, c))
        curve[run["run_id"]] = c
    if not per_run:
        for claim in CLAIMS:
            sec.not_measured(claim, "no finished multitask runs with evaluation curves")
        return sec
    seeds = sorted({r["seed"] for r in per_run})
    by_seed = {s: seed_summary([r for r in per_run if r["seed"] == s]) for s in seeds}
    for claim in CLAIMS:
        key = claim.id.rsplit(".", 1)[1]
        key = {"abrupt_share": "share_ratio", "abrupt_width": "width_ratio"}.get(key, key)
        values = [by_seed[s][key] for s in seeds]
        bounds = (-1.0, 1.0) if key.startswith("order") else (0.0, math.inf)
        sec.judge(claim, Measure.of(values, bounds=bounds))
    sec.results = {"learned_accuracy": LEARNED, "by_seed": by_seed, "runs": per_run}
    for name, (fig, caption) in figures(per_run, curve).items():
        sec.figure(f"multitask_{name}.png", fig, caption)
    sec.table([{"seed": s, **v} for s, v in by_seed.items()], caption="Per seed: the claims' quantities")
    rows = []
    for r in per_run:
        row = {"size": r["size"], "N": r["n_params"], "seed": r["seed"], "final loss": r["final_loss"],
               "overall width": r["overall_width_frac"], "overall share": r["overall_max_step_share"]}
        row.update({f"learned step {s['subtask']}": s["learned_step"] for s in r["subtasks"]})
        rows.append(row)
    sec.table(rows, caption="Per run: the overall loss's drop width (fraction of training) and largest one-interval "
                            "share, and each subtask's learning step (empty: never reached the threshold)")
    return sec
