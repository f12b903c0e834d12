"""The arithmetic study's report: four experiments (sections) on the study contract, and the protocol table.

Every run group (experiment tag × position encoding) belongs to one section (:func:`section_of`):

* ``absolute`` — learned absolute positions on exact addition: 0% beyond the training length, the truncated target
  instead (Xu et al.'s notebooks), and the D_ab4 inward hole;
* ``modulus`` — mod p: p dividing 10^k generalizes, p′ > 1 falls to the truncated function's exact rate;
* ``encodings`` — other encodings and multiplication (claim (1) of the abstract; Abacus at 100 digits);
* ``scratchpad`` — the running-remainder format (beyond the paper).

Each section shows exact match per test digit count with a 95% band over seeds (figure and table), the digit-wise
accuracy maps, and judges its claims (:mod:`limitlab.studies.arithmetic.claims`) on per-seed values.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis import PROPORTION, UNBOUNDED
from limitlab.claims import Measure
from limitlab.report.figures import COLORS, heatmap, line_with_band, new_figure
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.report.tables import ProtocolTable
from limitlab.studies.arithmetic import analysis as A
from limitlab.studies.arithmetic import claims as C
from limitlab.studies.arithmetic.summary import encoding_summary
from limitlab.studies.arithmetic.summary import with_interval as _ci

SECTIONS = ("absolute", "modulus", "encodings", "scratchpad")


def section_of(row: dict) -> str:
    """The section a run (a row of :func:`analysis.runs_frame` or :func:`analysis.per_length`) is shown in."""
    if row["format"] == "remainder":
        return "scratchpad"
    if row["modulus"] is not None and not (isinstance(row["modulus"], float) and math.isnan(row["modulus"])):
        return "modulus"
    if row["op"] == "add" and row["position"] == "learned" and row["format"] in ("fixed", "plain"):
        return "absolute"
    return "encodings"


def _frames(ctx: ReportContext, section: Section) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, per-length rows) of the finished runs that belong to ``section`` (cached on the context)."""
    if "arithmetic" not in ctx.notes:
        runs = A.runs_frame(ctx.runs) if len(ctx.runs) else pd.DataFrame()
        if len(runs):
            runs["op"] = [t.op for t in runs["task"]]
            runs["modulus"] = [t.modulus for t in runs["task"]]
            runs["format"] = [t.format for t in runs["task"]]
            runs["section"] = [section_of(r) for r in runs.to_dict("records")]
        long = A.per_length(runs) if len(runs) else pd.DataFrame(columns=A.LONG)
        long["section"] = [section_of(r) for r in long.to_dict("records")]
        ctx.notes["arithmetic"] = (runs, long)
    runs, long = ctx.notes["arithmetic"]
    if not len(runs):
        return runs, long
    mine = runs[runs["section"] == section.key]
    section.uses(mine)
    return mine, long[long["section"] == section.key]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("≤", "le")).strip("-")


def _show_lengths(sec: Section, runs: pd.DataFrame, long: pd.DataFrame, predicted: bool) -> None:
    """A figure and a table of exact match per digit count (mean, 95% band over seeds) per experiment, and the
    digit-wise maps."""
    from matplotlib.ticker import PercentFormatter

    table = A.curves(long)
    sec.results["lengths"] = table.to_dict("records")
    for exp, g in table.groupby("experiment", sort=True):
        low_rates = g["predicted"][(g["predicted"] > 0) & (g["predicted"] < 0.05)] if predicted else g["predicted"][:0]
        small = len(low_rates) > 0
        fig = new_figure(10.5 if small else 6.5, 3.6)
        axes = np.atleast_1d(fig.subplots(1, 2 if small else 1))
        for ax in axes:
            _draw_lengths(ax, g, predicted)
        ax = axes[0]
        ax.set(ylim=(-0.03, 1.03))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(f"{exp}: solid = true target, dashed = truncated target", fontsize=9)
        ax.legend(fontsize=7)
        if small:  # the truncated function's rate (~1/p′) is invisible on a 0–100% axis
            top = 4 * float(low_rates.max())
            axes[1].set_ylim(-0.05 * top, top)
            axes[1].set_title(f"zoom: 0–{100 * top:.1f}%", fontsize=9)
            axes[1].yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
        seeds = int(g["n"].max())
        sec.figure(f"{sec.key}_lengths_{_safe(exp)}.png", fig,
                   f"{exp}: exact match vs test digit count n per position encoding, mean and 95% band over {seeds} "
                   "seed(s); dashed: against the truncated target f(a mod 10^k, b mod 10^k)"
                   + ("; dotted: the truncated function's exact rate on the test distribution" if predicted else ""))
    rows = [{"experiment": r["experiment"], "position": r["position"], "n": r["digits"], "seeds": r["n"],
             "exact (95% CI)": _ci(r["mean"], r["ci_low"], r["ci_high"]),
             "vs truncated target": _ci(r["trunc_mean"], r["trunc_low"], r["trunc_high"]),
             **({"truncated fn exact rate": r["predicted"]} if predicted else {})} for r in table.to_dict("records")]
    if rows:
        sec.table(rows, caption="Exact match per test digit count n: mean and 95% t-interval over seeds",
                  **({"percent": ["truncated fn exact rate"]} if predicted else {}))
    _digit_figures(sec, A.digit_maps(runs))


def _draw_lengths(ax, g: pd.DataFrame, predicted: bool) -> None:
    """Exact match per digit count with its band, per encoding; dashed: against the truncated target; dotted:
    the truncated function's exact rate."""
    for i, (pos, gp) in enumerate(g.groupby("position", sort=True)):
        gp = gp.sort_values("digits")
        color = COLORS[i % len(COLORS)]
        line_with_band(ax, gp["digits"], gp["mean"], gp["ci_low"], gp["ci_high"], label=f"{pos}", color=color)
        if gp["trunc_mean"].notna().any():
            line_with_band(ax, gp["digits"], gp["trunc_mean"], gp["trunc_low"], gp["trunc_high"],
                           label=f"{pos}, vs truncated target", color=color, marker=None, alpha=0.08)
            ax.lines[-1].set_linestyle("--")
    if predicted and g["predicted"].notna().any():
        first = g[g["position"] == g["position"].iloc[0]].sort_values("digits")
        ax.plot(first["digits"], first["predicted"], ls=":", color="black", lw=1.4,
                label="truncated function (exact rate)")
    ax.set(xlabel="test digit count n", ylabel="exact match")
    ax.grid(alpha=0.3)


def _digit_figures(sec: Section, maps: list[dict]) -> None:
    from matplotlib.ticker import PercentFormatter

    by_exp: dict[str, list[dict]] = {}
    for mp in maps:
        by_exp.setdefault(mp["experiment"], []).append(mp)
    for exp, panels in by_exp.items():
        fig = new_figure(min(3.2 * len(panels) + 1, 16), 3.0)
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        im = None
        for ax, mp in zip(axes, panels):
            cols = [str(j) for j in range(mp["slots"] - 1)] + ["END"]
            pivot = pd.DataFrame(mp["accuracy"], index=mp["n"], columns=cols)
            im = heatmap(ax, pivot, f"{mp['position']} ({mp['seeds']} seed(s))", xlabel="answer slot",
                         ylabel="test digits n", annotate=False)
        fig.colorbar(im, ax=list(axes), label="digit accuracy", format=PercentFormatter(1.0))
        sec.figure(f"{sec.key}_digits_{_safe(exp)}.png", fig,
                   f"{exp}: accuracy of each answer slot (the order the model writes them) per test digit count n, "
                   "mean over seeds, one panel per position encoding")
    sec.results["digits"] = maps


def _outward(long: pd.DataFrame) -> pd.DataFrame:
    return long[long["kind"] == "outward"]


def _judge(sec: Section, claim, values: dict, rows: pd.DataFrame, bounds: tuple[float, float] = PROPORTION,
           note: str = "", why: str = "no runs of this store measure it") -> None:
    """Judge ``claim`` on the mean of its per-seed ``values``, read from ``rows``; without values it is not
    measured, naming the runs left out for not learning their training distribution (or saying ``why``)."""
    if not values:
        sec.not_measured(claim, A.dropped(rows) or why)
        return
    sec.judge(claim, Measure.of(list(values.values()), bounds), note or A.dropped(rows))


# ---- the four sections ------------------------------------------------------------------------------------------

def absolute(ctx: ReportContext) -> Section:
    sec = Section("absolute", "Learned absolute positions on addition: exact vs truncated target")
    runs, long = _frames(ctx, sec)
    sec.paragraph("Xu et al.'s notebooks: a learned-absolute-PE model trained on ≤ k-digit addition scores 100% up "
                  "to k digits and 0% beyond, yet ~100% against the truncated target (a mod 10^k) + (b mod 10^k): it "
                  "computes the sum of the low k digits. Test digit count n: one operand has exactly n digits, the "
                  "other is uniform below 10^n (the paper's test scheme).")
    _inward_hole(ctx, sec)
    if not len(runs):
        for claim in (C.APE_ZERO, C.APE_TRUNCATED, C.APE_TRUNC_VS_TRUE):
            sec.not_measured(claim, "no learned-PE addition runs in this store")
        return sec
    _show_lengths(sec, runs, long, predicted=False)
    out = _outward(long)
    _judge(sec, C.APE_ZERO, A.seed_values(out, "exact", "max"), out)
    _judge(sec, C.APE_TRUNCATED, A.seed_values(out, "truncated", "min"), out)
    trunc, exact = A.seed_values(out, "truncated"), A.seed_values(out, "exact")
    _judge(sec, C.APE_TRUNC_VS_TRUE, {s: trunc[s] - exact[s] for s in trunc}, out, bounds=UNBOUNDED)
    return sec


def _inward_hole(ctx: ReportContext, sec: Section) -> None:
    """The D_ab inward hole of learned positions, from the learned-PE D_ab addition runs of any format (the repro
    preset's are in the aligned format and shown in the encodings section beside the other encodings)."""
    long = ctx.notes["arithmetic"][1] if "arithmetic" in ctx.notes else pd.DataFrame(columns=A.LONG)
    dab = long[(long["position"] == "learned") & (long["op"] == "add") & long["modulus"].isna()
               & long["train"].astype(str).str.startswith("D_ab") & (long["format"] != "remainder")]
    if dab["kind"].eq("inward").any():
        ind, inward = (A.seed_values(dab[dab["kind"] == k], "exact") for k in ("in distribution", "inward"))
        _judge(sec, C.INWARD_HOLE, {s: ind[s] - inward[s] for s in set(ind) & set(inward)}, dab, bounds=UNBOUNDED)
    else:
        sec.not_measured(C.INWARD_HOLE, "no learned-PE D_ab addition runs in this store")


def modulus(ctx: ReportContext) -> Section:
    sec = Section("modulus", "Modular addition: mod 100 vs mod 101 against the truncated function's exact rate")
    runs, long = _frames(ctx, sec)
    sec.paragraph("k = the training digits the truncated function keeps; p′ = p / gcd(p, 10^k). The truncated "
                  "function ((a mod 10^k) ∘ (b mod 10^k)) mod p is right exactly when the dropped high digits "
                  "contribute 0 mod p′: always when p′ = 1 (mod 100, k = 2), and on a fraction of the test "
                  "distribution that tends to 1/p′ otherwise (mod 101: 0 at 3 digits, 1.00% at 4, then → 0.99%). "
                  "That fraction is computed exactly by counting residues (dotted line), not estimated from samples.")
    if not len(runs):
        for claim in (C.MOD100, C.MOD100_VS_101, C.MOD_RATE):
            sec.not_measured(claim, "no modular runs in this store")
        return sec
    _show_lengths(sec, runs, long, predicted=True)
    out = _outward(long[long["format"] != "remainder"])
    divides, coprime = out[out["p_prime"] == 1], out[out["p_prime"] > 1]
    _judge(sec, C.MOD100, A.seed_values(divides, "exact"), divides, why="no runs with p dividing 10^k")
    pairs: dict[Any, list[float]] = {}
    pair_rows = out[out["modulus"].isin([100, 101])]
    for _, g in pair_rows.groupby(["op", "position", "train"]):
        a, b = (A.seed_values(g[g["modulus"] == p], "exact") for p in (100, 101))
        for seed in set(a) & set(b):
            pairs.setdefault(seed, []).append(a[seed] - b[seed])
    diffs = {s: float(np.mean(v)) for s, v in pairs.items()}
    _judge(sec, C.MOD100_VS_101, diffs, pair_rows, bounds=UNBOUNDED,
           why="no mod-100 and mod-101 runs of the same encoding and seed")
    rate = coprime.assign(excess=(coprime["exact"] - coprime["predicted"]) * coprime["p_prime"])
    _judge(sec, C.MOD_RATE, A.seed_values(rate, "excess"), coprime, bounds=UNBOUNDED, why="no runs with p′ > 1")
    summary = []
    for (exp, pos), g in out.groupby(A.KEYS):
        per_seed = A.seed_values(g, "exact")
        m = Measure.of(list(per_seed.values()), PROPORTION)
        summary.append({"experiment": exp, "position": pos, "p′": int(g["p_prime"].iloc[0]),
                        "outward n": f"{g['digits'].min()}–{g['digits'].max()}",
                        "outward exact (95% CI)": _ci(m.estimate, m.low, m.high) if per_seed else "—",
                        "truncated fn exact rate": float(g.groupby("digits")["predicted"].first().mean()),
                        "1/p′": 1 / float(g["p_prime"].iloc[0]), "seeds": len(per_seed)})
    sec.results["outward"] = summary
    sec.table(summary, percent=["truncated fn exact rate", "1/p′"],
              caption="Beyond the training length: measured exact match (mean over the outward digit counts, then "
                      "seeds) beside the truncated function's exact rate (mean over the same digit counts)")
    return sec


def encodings(ctx: ReportContext) -> Section:
    sec = Section("encodings", "Other position encodings and multiplication")
    runs, long = _frames(ctx, sec)
    sec.paragraph("Claim (1) of the abstract: with a suitable (relative) encoding addition generalizes to longer "
                  "operands, multiplication does not. The repro preset trains every encoding on D≤4 addition, D_ab4 "
                  "addition (both operands exactly 4 digits: the inward test at 1–3 digits) and D≤2 multiplication "
                  "in the aligned format (every number least significant digit first, zero-padded, so digit i of "
                  "a, b and the answer sit at fixed distances at every length); the paper preset does the same at "
                  "mini-GPT size in the paper's format, and the beyond preset tests Abacus at 100 digits. The claims "
                  "read D≤4 addition and D≤2 multiplication; a run below 90% in distribution is shown but not "
                  "counted.")
    claims = (C.REL_ADD, C.MUL_NOT, C.ADD_VS_MUL, C.ABACUS)
    if not len(runs):
        for claim in claims:
            sec.not_measured(claim, "no runs with other encodings or multiplication in this store")
        return sec
    _show_lengths(sec, runs, long, predicted=False)
    out = _outward(long)

    def best(rows: pd.DataFrame) -> tuple[dict, str]:
        by_pos = {pos: A.seed_values(g, "exact") for pos, g in rows.groupby("position")}
        by_pos = {p: v for p, v in by_pos.items() if v}
        if not by_pos:
            return {}, ""
        pos = max(by_pos, key=lambda p: np.mean(list(by_pos[p].values())))
        return by_pos[pos], f"best encoding: {pos}; {A.dropped(rows)}".rstrip("; ")

    encoding_summary(sec, long)
    plain = ~out["train"].astype(str).str.startswith("D_ab")  # D_ab runs are the inward test, not these claims
    add = out[(out["op"] == "add") & (out["position"] != "learned") & plain]
    mul = out[(out["op"] == "mul") & plain]
    values, note = best(add)
    _judge(sec, C.REL_ADD, values, add, note=note, why="no addition runs with a non-absolute encoding")
    values, note = best(mul)
    _judge(sec, C.MUL_NOT, values, mul, note=note, why="no multiplication runs")
    diffs: dict[Any, list[float]] = {}
    for pos in sorted(set(add["position"]) & set(mul["position"])):
        a, m = A.seed_values(add[add["position"] == pos], "exact"), A.seed_values(mul[mul["position"] == pos], "exact")
        for seed in set(a) & set(m):
            diffs.setdefault(seed, []).append(a[seed] - m[seed])
    both = out[out["position"].isin(set(add["position"]) & set(mul["position"]))]
    _judge(sec, C.ADD_VS_MUL, {s: float(np.mean(v)) for s, v in diffs.items()}, both, bounds=UNBOUNDED,
           why="no encoding with both addition and multiplication runs")
    abacus = long[long["position"].str.contains("abacus") & (long["digits"] == 100)]
    values = A.seed_values(abacus, "exact")
    if values:
        sec.judge(C.ABACUS, Measure.count(list(values.values())), A.dropped(abacus))
    else:
        sec.not_measured(C.ABACUS, A.dropped(abacus) or "no Abacus runs tested at 100 digits")
    return sec


def scratchpad(ctx: ReportContext) -> Section:
    sec = Section("scratchpad", "Beyond the paper: the running-remainder scratchpad for mod p")
    runs, long = _frames(ctx, sec)
    sec.paragraph("Addition mod p in the remainder format: every operand digit (most significant first) is followed "
                  "by the running remainder r ← (10·r + d) mod p that the model writes, then (r_a + r_b) mod p. Every "
                  "written token depends on a fixed-size neighbourhood, a translation-invariant recursion, so the "
                  "p′ > 1 barrier of the truncated function need not apply.")
    if not len(runs):
        sec.not_measured(C.REMAINDER, "no remainder-format runs in this store")
        return sec
    _show_lengths(sec, runs, long, predicted=False)
    out = _outward(long)
    coprime = out[out["p_prime"] > 1]
    _judge(sec, C.REMAINDER, A.seed_values(coprime, "exact"), coprime, why="no remainder-format runs with p′ > 1")
    return sec


def protocol(ctx: ReportContext) -> list[dict]:
    """The paper's setup (as the reference notes recover it from the authors' code) beside ours."""
    if not len(ctx.runs):
        return []
    proto = ProtocolTable(ctx.runs, group="tags.experiment")
    proto.add("layers", "model.n_layers", 6, "[src] mini-gpt")
    proto.add("heads", "model.n_heads", 6, "[src]")
    proto.add("width d", "model.d_model", 384, "[src]")
    proto.add("optimizer", "optim.optimizer", "adamw", "[src]")
    proto.add("learning rate (peak)", "optim.lr", 1e-3, "[src]")
    proto.add("schedule", "optim.schedule", "cosine", "[src] (cosine to 1e-4; mul: decay_lr=False)")
    proto.add("β2", "optim.beta2", 0.99, "[src]")
    proto.add("weight decay", "optim.weight_decay", 0.1, "[src]")
    proto.add("batch size", "train.batch_size", 64, "[src]")
    proto.add("steps", "train.steps", "until stopped (max_iters 8M/20M)", "[src]", known=False)
    proto.add("seeds", "seed", "one run per setting in the notebooks", "[nb]", same=False)
    proto.add("operand width (fixed format)", "task.width", 20, "[src]")
    proto.add("position encoding", "model.position", "learned (the only working one in the code)", "[src]",
              same=False)
    proto.add("dropout", None, "0.2 (add), 0.1 (mul)", "[src]", same=False, values=[0.0],
              note="the engine has no dropout")
    proto.add("training data", None, "100k (add) / 500k (mul) samples per n, fixed files", "[src]", same=False,
              values=["fresh samples every step"])
    proto.add("test sequences", "train.eval_size", "up to 10k per n", "[src]", same=False,
              note="ours: in total over all test digit counts of the 'lengths' split")
    return proto.rows


EXPERIMENTS = (
    Experiment("absolute", "Learned absolute positions on addition",
               (C.APE_ZERO, C.APE_TRUNCATED, C.APE_TRUNC_VS_TRUE, C.INWARD_HOLE), absolute),
    Experiment("modulus", "Modular addition: mod 100 vs mod 101", (C.MOD100, C.MOD100_VS_101, C.MOD_RATE), modulus),
    Experiment("encodings", "Other encodings and multiplication", (C.REL_ADD, C.MUL_NOT, C.ADD_VS_MUL, C.ABACUS),
               encodings),
    Experiment("scratchpad", "The running-remainder scratchpad", (C.REMAINDER,), scratchpad),
)
