"""The leaderboard's page: the board (per task and overall), the cost of each encoding, the papers' orders.

=======  ==================================================================================================
board    per task: ID and OOD score per encoding (mean, 95% interval over seeds), how many seeds met the ID
         criterion, mean ID and OOD rank with bootstrap intervals; the encodings left out and why; overall
         ranks (mean of per-task ranks) with intervals
cost     per encoding and task: parameters and estimated training memory per model (:mod:`limitlab.costs`, the
         planner's count), and the step time measured by ``limitlab bench --preset leaderboard/<preset>`` when
         its JSON is given (``limitlab report leaderboard --set bench=FILE``); a report never trains or times
papers   each paper's own order against ours: per pair agree / disagree / inconclusive, Kendall's τ_b
=======  ==================================================================================================
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from limitlab.analysis.intervals import mean_ci
from limitlab.report.html import VERDICT_CLASSES
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.studies.leaderboard import papers as P
from limitlab.studies.leaderboard.encodings import encodings as board_encodings
from limitlab.studies.leaderboard.presets import excluded
from limitlab.studies.leaderboard.ranking import overall, rank_table, seed_ranks
from limitlab.studies.leaderboard.tasks import FAMILIES, met

__all__ = ["EXPERIMENTS", "ReportOptions", "score_frame"]


class ReportOptions(BaseModel):
    """``limitlab report leaderboard --set KEY=VALUE``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    bench: str | None = Field(None, description="JSON of `limitlab bench --preset leaderboard/P --json`")
    n_boot: int = Field(2000, ge=100, le=100_000, description="bootstrap resamples of the rank intervals")


def _options(ctx: ReportContext) -> ReportOptions:
    return ctx.options if isinstance(ctx.options, ReportOptions) else ReportOptions()


def score_frame(ctx: ReportContext) -> tuple[pd.DataFrame, list[str]]:
    """One row per finished run: task, encoding, seed, id, ood, ok (ID criterion met), run_id, recipe; and
    warnings. Where a task has runs of several recipes (presets) in the store, the one with most runs is used."""
    runs = ctx.runs
    cols = {c[len("result."):]: c for c in runs.columns if isinstance(c, str) and c.startswith("result.")}
    rows = []
    for rec in runs.to_dict("records"):
        family = FAMILIES.get(rec.get("tags.task"))
        if family is None:
            continue
        spec = ctx.store.spec(rec["run_id"])
        results = {k: rec[c] for k, c in cols.items()}
        score_id = family.id_score(results, spec.task)
        score_ood = family.ood_score(results, spec.task) if family.ood_score else math.nan
        recipe = json.dumps({"task": spec.task.model_dump(mode="json"), "steps": spec.train.steps,
                             "d": spec.model.d_model, "layers": spec.model.n_layers}, sort_keys=True)
        rows.append({"task": family.key, "encoding": spec.model.position, "seed": spec.seed, "id": score_id,
                     "ood": score_ood, "ok": met(family, score_id), "run_id": rec["run_id"], "recipe": recipe,
                     "spec": spec})
    frame = pd.DataFrame(rows, columns=["task", "encoding", "seed", "id", "ood", "ok", "run_id", "recipe", "spec"])
    warnings = []
    keep = []
    for task, group in frame.groupby("task", sort=False):
        sizes = group["recipe"].value_counts()
        if len(sizes) > 1:
            warnings.append(f"{task}: runs of {len(sizes)} recipes (presets) in this store; the board uses the one "
                            f"with most runs ({sizes.iloc[0]}), {int(sizes.iloc[1:].sum())} run(s) left out")
        keep.append(group[group["recipe"] == sizes.index[0]])
    return (pd.concat(keep) if keep else frame), warnings


def _ci(values: pd.Series, higher_better: bool) -> str:
    ci = mean_ci(pd.to_numeric(values, errors="coerce").to_numpy(float))
    if ci.n == 0:
        return "–"
    return f"{ci.mean:.3g}" + (f" [{ci.low:.3g}, {ci.high:.3g}]" if ci.n > 1 else "")


def _rank(row: Any) -> str:
    if row is None or math.isnan(row["mean_rank"]):
        return "–"
    return f"{row['mean_rank']:.2f}" + (f" [{row['low']:.2f}, {row['high']:.2f}]" if not math.isnan(row["low"])
                                        else "")


def board_ranks(scores: pd.DataFrame, n_boot: int) -> dict[str, dict[str, pd.DataFrame]]:
    """task -> {'id': seed ranks, 'ood': seed ranks} (ID: every run by its score; OOD: failures last)."""
    out = {}
    for task, group in scores.groupby("task", sort=False):
        family = FAMILIES[task]
        ranks = {"id": seed_ranks(group.assign(score=group["id"]), family.higher_better, use_ok=False)}
        if family.ood_score is not None:
            ranks["ood"] = seed_ranks(group.assign(score=group["ood"]), family.higher_better, use_ok=True)
        out[task] = ranks
    return out


def analyze_board(ctx: ReportContext) -> Section:
    sec = Section("board", "The board: every encoding on every task")
    scores, warnings = score_frame(ctx)
    sec.warnings += warnings
    sec.uses(scores)
    n_boot = _options(ctx).n_boot
    sec.paragraph("Per task, each encoding's in-distribution (ID) and out-of-distribution (OOD) score, mean and 95% "
                  "t-interval over seeds; how many seeds met the ID criterion; and its mean rank among the task's "
                  "encodings (1 = best) with a 95% bootstrap interval over seeds. In the OOD ranking a run that "
                  "missed its ID criterion ranks below every run that met it (tied with the other misses).")
    ranks = board_ranks(scores, n_boot)
    results: dict[str, Any] = {"tasks": {}}
    everyone = board_encodings()
    for key, family in FAMILIES.items():
        sec.heading(f"{family.title} ({key})")
        group = scores[scores["task"] == key]
        left_out = {} if group.empty else {e: why for e in everyone if (why := excluded(key, e)) is not None}
        crit = ("≥ " if family.higher_better else "≤ ") + f"{family.criterion:g}"
        sec.paragraph(f"Score: {family.unit} ({'higher' if family.higher_better else 'lower'} is better); ID "
                      f"criterion {crit}; OOD: {family.ood_text}.")
        if group.empty:
            sec.paragraph(f"No finished runs of {key} in this store.")
        else:
            id_table = rank_table(ranks[key]["id"], n_boot)
            ood_table = rank_table(ranks[key]["ood"], n_boot) if "ood" in ranks[key] else None
            order = list(ood_table["encoding"]) if ood_table is not None else list(id_table["encoding"])
            rows = []
            for enc in order:
                g = group[group["encoding"] == enc]
                rid = id_table.set_index("encoding").loc[enc]
                rood = ood_table.set_index("encoding").loc[enc] if ood_table is not None else None
                rows.append({"encoding": enc, "ID score": _ci(g["id"], family.higher_better),
                             "ID met": f"{int(g['ok'].sum())}/{len(g)}", "OOD score": _ci(g["ood"],
                                                                                          family.higher_better),
                             "ID rank": _rank(rid), "OOD rank": _rank(rood)})
            sec.table(rows, caption=f"{key}: best OOD rank first" if ood_table is not None else
                      f"{key}: best ID rank first")
            results["tasks"][key] = {
                "id_ranks": id_table.to_dict("records"),
                "ood_ranks": ood_table.to_dict("records") if ood_table is not None else None,
                "scores": group[["encoding", "seed", "id", "ood", "ok"]].to_dict("records")}
        if left_out:
            sec.bullets([f"{e} left out: {why}" for e, why in left_out.items()])
        results["tasks"].setdefault(key, {})["left_out"] = left_out
    sec.heading("Overall")
    per_split = {split: overall({t: r[split] for t, r in ranks.items() if split in r}, n_boot) for split in
                 ("id", "ood")}
    merged = per_split["ood"].merge(per_split["id"], on="encoding", how="outer", suffixes=("_ood", "_id"))
    sec.paragraph("Mean over tasks of each encoding's mean rank (ID: 7 tasks, OOD: the 6 with an OOD split), "
                  "with a 95% bootstrap interval that resamples every task's seeds. An encoding on fewer tasks "
                  "is averaged over those it stands on (column 'tasks'). Ranks on tasks with more encodings run "
                  "higher: compare within a task's table for the sharpest statements.")
    rows = []
    for rec in merged.to_dict("records"):
        rows.append({"encoding": rec["encoding"], "tasks (OOD)": _int(rec.get("tasks_ood")),
                     "OOD rank": _rank({k: rec[f"{k}_ood"] for k in ("mean_rank", "low", "high")}),
                     "tasks (ID)": _int(rec.get("tasks_id")),
                     "ID rank": _rank({k: rec[f"{k}_id"] for k in ("mean_rank", "low", "high")})})
    sec.table(rows, caption="Overall, best OOD rank first")
    results["overall"] = {split: frame.to_dict("records") for split, frame in per_split.items()}
    if len(scores):
        sec.figure("leaderboard_ranks.png", rank_figure(ranks, per_split, n_boot),
                   "Mean rank per task, scaled to 0 (best of the task's encodings) … 1 (worst), in distribution "
                   "(left) and out of distribution (right); rows in overall OOD order, best on top; grey: not on "
                   "that task (or no OOD split).")
    sec.results.update(results)
    ctx.notes["leaderboard"] = {"scores": scores, "ranks": ranks, "overall": per_split}
    return sec


def rank_figure(ranks: dict[str, dict[str, pd.DataFrame]], per_split: dict[str, pd.DataFrame], n_boot: int) -> Any:
    """Two heatmaps (ID, OOD): encodings × tasks, each task's mean ranks scaled to [0, 1], and the overall rank."""
    from limitlab.report.figures import heatmap, new_figure

    order = list(per_split["ood"]["encoding"]) or list(per_split["id"]["encoding"])
    order += [e for e in per_split["id"]["encoding"] if e not in order]
    fig = new_figure(11, 0.35 * len(order) + 2)
    for ax, split in zip(fig.subplots(1, 2), ("id", "ood")):
        columns = {}
        for task, by_split in ranks.items():
            if split in by_split:
                table = rank_table(by_split[split], n_boot).set_index("encoding")["mean_rank"]
                n = by_split[split].groupby("seed")["encoding"].count().max()
                columns[task] = (table - 1) / max(n - 1, 1)
        pivot = pd.DataFrame(columns).reindex(order[::-1])
        heatmap(ax, pivot, title=f"{split.upper()}: scaled mean rank (0 = best)", cmap="viridis_r")
    return fig


def _int(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))


def _board(ctx: ReportContext) -> dict[str, Any]:
    if "leaderboard" not in ctx.notes:
        analyze_board(ctx)
    return ctx.notes["leaderboard"]


def _bench_times(path: str | None) -> tuple[dict[tuple[str, str], float], str]:
    """{(task, encoding): seconds per model-step} from a bench JSON, and the device it names."""
    if not path:
        return {}, ""
    data = json.loads(Path(path).read_text())
    times = {}
    for row in data.get("rows", []):
        labels = row.get("labels", {}).get("tags", {})
        mode = row.get("modes", {}).get("eager", {}).get("stacked", {})
        if "task" in labels and "encoding" in labels and mode.get("model_steps_per_s"):
            times[(labels["task"], labels["encoding"])] = 1.0 / mode["model_steps_per_s"]
    info = data.get("info", {})
    load = info.get("load_avg")
    return times, f"{info.get('name', '?')}" + (f", load {load[0]}" if load else "")


def analyze_cost(ctx: ReportContext) -> Section:
    from limitlab.costs import model_bytes, total_params

    sec = Section("cost", "Cost of each encoding")
    scores = _board(ctx)["scores"]
    times, device = _bench_times(_options(ctx).bench)
    sec.paragraph("Per task and encoding: parameters of one model, the planner's estimate of its training memory "
                  "(weights, gradients, Adam state, and activations as limitlab.costs counts them — an estimate, "
                  "not a measurement) and, when a bench file is given, the measured step time per model (one "
                  "stack of the preset's runs, eager mode). Ratios are to learned absolute positions on the same "
                  "task.")
    if times:
        sec.paragraph(f"Step times measured by `limitlab bench` on {device}.")
    else:
        sec.paragraph("Step time: not measured here. `limitlab bench --preset leaderboard/quick --preset-stacks 1000 "
                      "--no-loop --seconds 1 --repeat 1 --json > bench.json`, then `limitlab report leaderboard "
                      "--set bench=bench.json`.")
    rows = []
    for (task, enc), group in scores.groupby(["task", "encoding"], sort=False):
        spec = group["spec"].iloc[0]
        rows.append({"task": task, "encoding": enc, "params": total_params(spec),
                     "memory_mb": model_bytes(spec) / 2**20, "ms_per_step": 1000 * times.get((task, enc), math.nan)})
    frame = pd.DataFrame(rows, columns=["task", "encoding", "params", "memory_mb", "ms_per_step"])
    if frame.empty:
        sec.paragraph("No finished runs.")
        return sec
    base = frame[frame["encoding"] == "learned"].set_index("task")
    for col in ("memory_mb", "ms_per_step"):
        frame[f"{col}_ratio"] = [r[col] / base[col].get(r["task"], math.nan) for r in frame.to_dict("records")]
    summary = frame.groupby("encoding", sort=False).agg(
        tasks=("task", "count"), memory_ratio=("memory_mb_ratio", "median"), time_ratio=("ms_per_step_ratio",
                                                                                       "median"))
    sec.table([{"encoding": e, "tasks": int(r["tasks"]), "memory × learned (median)": _fmt(r["memory_ratio"]),
                "step time × learned (median)": _fmt(r["time_ratio"])} for e, r in summary.iterrows()],
              caption="Median over tasks of the ratio to learned positions")
    sec.table([{"task": r["task"], "encoding": r["encoding"], "params": r["params"],
                "est. memory (MB)": _fmt(r["memory_mb"]), "ms / model-step": _fmt(r["ms_per_step"])}
               for r in frame.to_dict("records")], caption="Per task")
    sec.results["cost"] = frame.to_dict("records")
    sec.results["bench_device"] = device or None
    return sec


def _fmt(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3g}"


def analyze_papers(ctx: ReportContext) -> Section:
    sec = Section("papers", "The papers' own orders against the board")
    board = _board(ctx)
    scores, ranks, per_split = board["scores"], board["ranks"], board["overall"]
    sec.paragraph("Each ordering a paper reports, in the registry's names, best first (a tier '{a, b}' is "
                  "unordered). Per pair: our paired difference over seeds (positive: the paper's order holds), its "
                  "95% t-interval and a verdict; per ordering, Kendall's τ_b against our mean ranks (1: the same "
                  "order). Our tasks are smaller than the papers' (see the protocol of each study).")
    pair_rows, order_rows = [], []
    task_means = pd.concat([rank_table(r["ood"]).assign(task=t) for t, r in ranks.items() if "ood" in r] or
                           [pd.DataFrame(columns=["task", "encoding", "mean_rank"])])
    for order in P.ORDERS:
        if order.task == "overall":
            ours = dict(zip(per_split[order.split]["encoding"], per_split[order.split]["mean_rank"]))
            pair_rows += P.overall_pairs(order, task_means)
        else:
            family = FAMILIES[order.task]
            group = scores[scores["task"] == order.task]
            split_ranks = ranks.get(order.task, {}).get(order.split)
            ours = {} if split_ranks is None else dict(zip(*[rank_table(split_ranks)[c] for c in
                                                             ("encoding", "mean_rank")]))
            pair_rows += P.task_pairs(order, group, family.higher_better)
        tau, n = P.kendall(order, ours)
        order_rows.append({"paper": order.paper, "where": order.place, "task": order.task, "split": order.split,
                           "paper's order": " > ".join("{" + ", ".join(t) + "}" if len(t) > 1 else t[0]
                                                       for t in order.tiers),
                           "paper's numbers": order.numbers, "τ_b (ours)": _fmt(tau), "encodings": n,
                           "note": order.note})
    sec.table(order_rows, caption="Orderings")
    shown = [{**{k: v for k, v in r.items() if k not in ("ours", "low", "high")},
              "ours (95% interval)": "–" if math.isnan(r["ours"]) else
              f"{r['ours']:.3g}" + ("" if math.isnan(r["low"]) else f" [{r['low']:.3g}, {r['high']:.3g}]")}
             for r in pair_rows]
    sec.table(shown, caption="Pairs", highlight={"verdict": VERDICT_CLASSES})
    tally = pd.Series([r["verdict"] for r in pair_rows], dtype=object).value_counts().to_dict()
    sec.paragraph("Pairs: " + ", ".join(f"{v} {int(tally.get(v, 0))}" for v in
                                        ("agree", "disagree", "inconclusive", "not measured")) + ".")
    sec.results["orders"] = order_rows
    sec.results["pairs"] = pair_rows
    return sec


EXPERIMENTS = (
    Experiment("board", "The board", (), analyze_board),
    Experiment("cost", "Cost", (), analyze_cost),
    Experiment("papers", "Papers", (), analyze_papers),
)
