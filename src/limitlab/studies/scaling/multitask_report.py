"""Analysis, figures and report section of the multitask sparse-parity experiment (see :mod:`.multitask`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

LEARNED = 0.9  # accuracy at which a subtask counts as learned
ORDER_RHO = 0.5  # Spearman ρ above which "learned in order of frequency" agrees
ABRUPT_RATIO = 0.5  # median subtask width below this fraction of the overall loss's width counts as abrupt
SHARE_RATIO = 1.5  # median subtask largest-interval share above this multiple of the overall one counts as abrupt


def drop_width(steps: np.ndarray, y: np.ndarray) -> float | None:
    """Steps between 10% and 90% of a curve's total drop (from its first to its lowest value); None when the
    curve drops by less than 0.05 nats (nothing was learned, so there is no transition to measure)."""
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return None
    total = y[0] - y.min()
    if total < 0.05:
        return None
    frac = (y[0] - np.minimum.accumulate(y)) / total  # monotone progress 0 → 1
    t10 = float(np.interp(0.1, frac, steps)) if frac[-1] >= 0.1 else None
    t90 = float(np.interp(0.9, frac, steps))
    return None if t10 is None else t90 - t10


def max_step_share(y: np.ndarray) -> float | None:
    """The largest share of a curve's total drop (first value to lowest) made between two consecutive evaluations
    (on the running minimum): near 1 for a jump, ~1/evaluations for a steady decline; None below a 0.05-nat drop."""
    if len(y) < 3 or not np.all(np.isfinite(y)):
        return None
    total = y[0] - y.min()
    if total < 0.05:
        return None
    return float(np.max(-np.diff(np.minimum.accumulate(y))) / total)


def curves(run: pd.Series) -> pd.DataFrame:
    """One row per evaluation: step, overall loss, and per-subtask loss/accuracy columns (uniform split)."""
    rows = []
    for rec in run["metrics"]:
        if "uniform/loss_by_subtask" not in rec:
            continue
        row = {"step": rec["step"], "loss": rec.get("test/loss", math.nan)}
        for j, (lo, acc) in enumerate(zip(rec["uniform/loss_by_subtask"], rec["uniform/accuracy_by_subtask"])):
            row[f"loss_{j}"], row[f"acc_{j}"] = lo, acc
        rows.append(row)
    return pd.DataFrame(rows).drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def analyze(runs: pd.DataFrame) -> dict[str, Any]:
    done = runs[runs["status"] == "done"]
    per_run = []
    for _, run in done.iterrows():
        c = curves(run)
        if c.empty:
            continue
        K = int(run["tags.subtasks"])
        steps = c["step"].to_numpy(dtype=float)
        length = float(run["train.steps"])
        subtasks = []
        for j in range(K):
            if f"acc_{j}" not in c:
                subtasks.append({"subtask": j, "learned_step": None, "width": None})
                continue
            acc, loss = c[f"acc_{j}"].to_numpy(dtype=float), c[f"loss_{j}"].to_numpy(dtype=float)
            hit = np.nonzero(acc >= LEARNED)[0]
            width = drop_width(steps, loss)
            subtasks.append({"subtask": j, "frequency": run["tags.frequencies"][j],
                             "learned_step": float(steps[hit[0]]) if len(hit) else None,
                             "final_accuracy": float(acc[-1]), "final_loss": float(loss[-1]),
                             "max_step_share": max_step_share(loss),
                             "width": width, "width_frac": None if width is None else width / length})
        overall = drop_width(steps, c["loss"].to_numpy(dtype=float))
        per_run.append({"run_id": run["run_id"], "size": int(run["tags.size"]), "seed": int(run["tags.seed"]),
                        "n_params": int(run["tags.n_params"]), "d_model": int(run["tags.d_model"]),
                        "steps": int(length), "final_loss": float(c["loss"].iloc[-1]),
                        "overall_width": overall, "overall_width_frac": None if overall is None else overall / length,
                        "overall_max_step_share": max_step_share(c["loss"].to_numpy(dtype=float)),
                        "subtasks": subtasks, "_curves": c})
    return {"runs": per_run, "summary": _summary(per_run)}


def _summary(per_run: list[dict[str, Any]]) -> dict[str, Any]:
    if not per_run:
        return {"error": "no finished multitask runs with evaluation curves"}
    widths = [s["width_frac"] for r in per_run for s in r["subtasks"] if s.get("width_frac") is not None]
    overall = [r["overall_width_frac"] for r in per_run if r["overall_width_frac"] is not None]
    shares = [s["max_step_share"] for r in per_run for s in r["subtasks"] if s.get("max_step_share") is not None]
    overall_shares = [r["overall_max_step_share"] for r in per_run if r["overall_max_step_share"] is not None]
    out: dict[str, Any] = {"median_subtask_width_frac": float(np.median(widths)) if widths else None,
                           "median_overall_width_frac": float(np.median(overall)) if overall else None,
                           "n_subtask_curves": len(widths),
                           "median_subtask_max_step_share": float(np.median(shares)) if shares else None,
                           "median_overall_max_step_share":
                               float(np.median(overall_shares)) if overall_shares else None}
    # order in steps, in the largest model (mean over its seeds): censored subtasks rank last
    biggest = max(r["size"] for r in per_run)
    big = [r for r in per_run if r["size"] == biggest]
    K = len(big[0]["subtasks"])
    horizon = max(r["steps"] for r in big) * 2
    learned = np.array([[s["learned_step"] if s["learned_step"] is not None else horizon for s in r["subtasks"]]
                        for r in big]).mean(0)
    out["largest_size"] = {"size": biggest, "n_params": big[0]["n_params"], "learned_step": learned.tolist(),
                           "n_learned": int(sum(s["learned_step"] is not None for s in big[0]["subtasks"]))}
    out["order_rho_steps"] = _rho(np.arange(K), learned)
    # order in size: smallest size whose final accuracy reaches LEARNED (mean over seeds), per subtask
    sizes = sorted({r["size"] for r in per_run})
    first = []
    for j in range(K):
        ok = [s for s in sizes if np.mean([r["subtasks"][j].get("final_accuracy", 0) for r in per_run
                                           if r["size"] == s]) >= LEARNED]
        first.append(ok[0] if ok else len(sizes))
    out["first_size_learning"] = first
    out["order_rho_size"] = _rho(np.arange(K), np.array(first, dtype=float))
    return out


def _rho(rank: np.ndarray, value: np.ndarray) -> float | None:
    if len(rank) < 3 or np.all(value == value[0]):
        return None
    return float(stats.spearmanr(rank, value).statistic)


def claims(summary: dict[str, Any]) -> list[dict[str, Any]]:
    if "error" in summary:
        return [{"intuition": "Next-token prediction is massively multitask", "claim": "overall loss smooth, "
                 "subtasks abrupt, learned in order of frequency", "ours": summary["error"],
                 "criterion": "—", "verdict": "not measured"}]
    sub, ov = summary["median_subtask_width_frac"], summary["median_overall_width_frac"]
    if sub is None or ov is None:
        verdict, ours = "not measured", "no subtask or overall loss curve dropped by ≥ 0.05 nats"
    else:
        verdict = "agree" if sub < ABRUPT_RATIO * ov else "disagree"
        ours = (f"median 10→90% drop width: subtasks {sub:.1%} of training, overall loss {ov:.1%} "
                f"({summary['n_subtask_curves']} subtask curves)")
    rows = [{"intuition": "Next-token prediction is massively multitask", "claim": "the overall loss falls smoothly "
             "while single subtasks drop abruptly (drop width)", "ours": ours,
             "criterion": f"median subtask width < {ABRUPT_RATIO:.0%} of the overall loss's width",
             "verdict": verdict}]
    sub, ov = summary["median_subtask_max_step_share"], summary["median_overall_max_step_share"]
    rows.append({"intuition": "Next-token prediction is massively multitask", "claim": "the overall loss falls "
                 "smoothly while single subtasks drop abruptly (largest drop between two evaluations)",
                 "ours": "no curve dropped by ≥ 0.05 nats" if sub is None or ov is None else
                 f"median share of the total drop made in one evaluation interval: subtasks {sub:.0%}, overall "
                 f"loss {ov:.0%}", "criterion": f"subtask share > {SHARE_RATIO}× the overall share",
                 "verdict": "not measured" if sub is None or ov is None else
                 "agree" if sub > SHARE_RATIO * ov else "disagree"})
    for key, what in (("order_rho_steps", "the step at which the largest model learns it"),
                      ("order_rho_size", "the smallest model size that learns it")):
        rho = summary.get(key)
        rows.append({"intuition": "Next-token prediction is massively multitask", "claim": "subtasks are learned in "
                     f"order of frequency ({what})",
                     "ours": "no variation to rank (all learned together or none)" if rho is None else f"Spearman ρ = "
                     f"{rho:.2f} between frequency rank and {what}",
                     "criterion": f"ρ > {ORDER_RHO}", "verdict": "not measured" if rho is None else
                     "agree" if rho > ORDER_RHO else "disagree"})
    return rows


def report_section(runs: pd.DataFrame, out_dir: Path) -> tuple[dict, dict, list, Any]:
    """The multitask section (contract: limitlab.studies.scaling)."""
    from limitlab.studies.scaling.multitask_figures import write_figures

    res = analyze(runs)
    figures = write_figures(res["runs"], Path(out_dir)) if res["runs"] else {}
    for r in res["runs"]:
        r.pop("_curves")
    results = {"runs": res["runs"], "summary": res["summary"], "learned_accuracy": LEARNED,
               "status": {k: int(v) for k, v in runs["status"].value_counts().items()}}
    rows = claims(res["summary"])

    def render(page: Any) -> None:
        page.paragraph(f"K parity subtasks (k of n bits each) with frequencies ∝ (i+1)^−zipf; subtask 0 is the most "
                       f"common. Overall loss on the training mixture; per-subtask loss and accuracy on a uniform "
                       f"mixture. A subtask is learned when its accuracy reaches {LEARNED:g}; abruptness is the "
                       "10→90% width of a loss curve's drop as a fraction of training.")
        s = res["summary"]
        if "error" in s:
            page.paragraph(s["error"], css="error")
            return
        for key, cap in (("curves", "loss over steps per model size: thin = per subtask (uniform split), black = "
                                    "overall (training mixture)"),
                         ("by_size", "final per-subtask loss vs model size (and the overall loss)")):
            if key in figures:
                page.figure(figures[key], cap)
        rows_t = []
        for r in res["runs"]:
            row = {"size": r["size"], "N": r["n_params"], "seed": r["seed"], "final loss": r["final_loss"],
                   "overall width": r["overall_width_frac"]}
            for s_ in r["subtasks"]:
                row[f"learned step {s_['subtask']}"] = s_["learned_step"]
            rows_t.append(row)
        page.table(rows_t, caption="Per run: overall drop width (fraction of training) and each subtask's "
                                   "learning step (— = never reached the threshold)")
        page.table([{k: v for k, v in s.items() if not isinstance(v, dict)}], caption="Summary")

    return results, figures, rows, render
