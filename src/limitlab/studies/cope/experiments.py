"""The CoPE study's experiments: each turns the store's runs into one part of the page and judges its claims.

=================  =========================================================================================
flip_flop          error per encoding and split vs the paper's table; CoPE vs absolute / RoPE paired by seed;
                   the ICLR fragility row
selective_copy     the same for selective copy (in distribution, OOD dense and sparse)
counting           variable counting vs Table 3 (quick: 3 variables, short programs; paper: 1, 3, 5)
lm                 byte-level LMs: perplexity per context, CoPE vs baselines, extrapolation (repro: T = 64, CPU; paper)
p_max              the p_max ablation on flip-flop (repro, paper; no claim: the paper's numbers are not known)
cope_map           a stored CoPE model's attention and contextual positions on one test sequence
=================  =========================================================================================

Every comparison pairs seeds: for seed s the baseline's error minus CoPE's on the same split (see
:mod:`.claims`). A missing comparison says which preset runs it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from limitlab.claims import UNBOUNDED, Claim, Measure, fmt_number
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.studies.cope import claims as C
from limitlab.studies.cope.figures import counting_figure, error_figure, lm_figure, pmax_figure
from limitlab.studies.cope.results import (
    SPLITS,
    counting_rows,
    error_rows,
    lm_per_seed,
    lm_rows,
    per_seed,
    pmax_rows,
    runs_frame,
)

__all__ = ["EXPERIMENTS"]

TITLES = {"flip_flop": "Flip-flop", "selective_copy": "Selective copy"}


def _runs(ctx: ReportContext) -> pd.DataFrame:
    return runs_frame(ctx.runs) if len(ctx.runs) else runs_frame(pd.DataFrame({"run_id": [], "seed": []}))


def _cell(s: dict[str, Any], digits: int = 3) -> str:
    """'mean [low, high]' of a stats dict, or '—'."""
    if s["mean"] is None:
        return "—"
    if s["n"] < 2:
        return fmt_number(round(s["mean"], digits))
    return f"{fmt_number(round(s['mean'], digits))} [{fmt_number(round(s['low'], digits))}, " \
           f"{fmt_number(round(s['high'], digits))}]"


def _interval(m: Measure) -> str:
    """' [low, high]' of a measure over ≥ 2 seeds, else ''."""
    return f" [{fmt_number(m.low)}, {fmt_number(m.high)}]" if m.n > 1 else ""


def gain(base: dict[Any, float], cope: dict[Any, float], unit: str = "points") -> Measure | None:
    """The paired per-seed gain base − CoPE with a row text that also counts the seeds where CoPE is lower;
    None when no seed has both.

    >>> gain({0: 20.0, 1: 10.0, 2: 15.0}, {0: 0.0, 1: 0.0, 2: 1.0}).shown()
    '14.7 [2.16, 27.2] points over 3 seeds; CoPE lower on 3 of 3'
    """
    seeds = set(base) & set(cope)
    if not seeds:
        return None
    m = Measure.paired(base, cope, bounds=(-100.0, 100.0) if unit == "points" else UNBOUNDED)  # % points
    wins = sum(cope[s] < base[s] for s in seeds)
    text = f"{fmt_number(m.estimate)}{_interval(m)} {unit} over {m.n} seed{'s' * (m.n != 1)}; CoPE lower on {wins} " \
           f"of {m.n}"
    return Measure(m.estimate, m.low, m.high, m.n, m.values, text)


def _judge(sec: Section, claim: Claim, measure: Measure | None, why: str) -> dict[str, Any]:
    """Judge ``claim`` (or mark it not measured with ``why``); the row's numbers for the section's table."""
    result = sec.judge(claim, measure) if measure is not None else sec.not_measured(claim, why)
    return {"claim": claim.id, "ours": result.ours, "verdict": result.verdict}


def _fragility(sec: Section, measure: Measure | None, rope: dict[Any, float], why: str) -> dict[str, Any]:
    """The fragility row: a gain can exceed the threshold only if RoPE's own error does; where RoPE's mean error
    is at or below it, the row cannot disagree, so it is inconclusive (not a pass)."""
    claim = C.FLIP_FLOP_FRAGILE
    ceiling = sum(rope.values()) / len(rope) if rope else None
    if measure is None or ceiling is None or ceiling > claim.test.threshold:
        return _judge(sec, claim, measure, why)
    result = sec.cannot_decide(claim, measure, f"RoPE's own error ({ceiling:.3g}%) is at or below the "
                               f"{claim.test.threshold:g}-point threshold, so no gain here can exceed it")
    return {"claim": claim.id, "ours": result.ours, "verdict": result.verdict}


def synthetic(task: str) -> Experiment:
    """Flip-flop or selective copy: the error table and figure, and CoPE vs each baseline paired by seed."""
    title = TITLES[task]
    claim_sets = C.FLIP_FLOP if task == "flip_flop" else C.SELECTIVE_COPY
    extra = (C.FLIP_FLOP_FRAGILE,) if task == "flip_flop" else ()
    claims = (*(c for by in claim_sets.values() for c in by.values()), *extra)

    def analyze(ctx: ReportContext) -> Section:
        sec = Section(task, f"{title}: error (%)")
        runs = _runs(ctx)
        sec.uses(runs[(runs["task"] == task) & runs["ablation"].isna()])
        rows = error_rows(runs, task)
        if not rows:
            sec.paragraph(f"No {title.lower()} runs in this store; `limitlab run cope --preset quick` trains them.")
        else:
            splits = SPLITS[task]
            table = [{"encoding": r["pe"], "seeds": r["seeds"], **_split_cells(r, splits)} for r in rows]
            note = ("The paper reports one 'OOD' column, matched here to the sparse split FFL(0.98) (longer "
                    "write→read gaps, as its write-up describes); the dense split FFL(0.1) has no paper number and "
                    "no claim. " if task == "flip_flop" else "")
            sec.table(table, caption=f"{title}: token error (%), mean [95% interval] over seeds; 'paper' from its "
                                     "table; 'seq err' = mean % of sequences with any wrong read-out")
            if note:
                sec.paragraph(note)
            sec.figure(f"errors_{task}.png", error_figure(rows, splits, title),
                       f"{title}: token error (%) per split and encoding; bars: mean over seeds with its 95% interval, "
                       "dots: each seed, open diamonds: the paper's number")
        gains = []
        for split, by_base in claim_sets.items():
            cope = per_seed(runs, task, split, "cope")
            for base, claim in by_base.items():
                m = gain(per_seed(runs, task, split, base), cope)
                why = f"no {title.lower()} runs of CoPE and {base} on the same seeds"
                gains.append({"split": split, "baseline": base, **_judge(sec, claim, m, why)})
                if task == "flip_flop" and split == "sparse" and base == "rope":
                    gains.append({"split": split, "baseline": base, **_fragility(sec, m, per_seed(runs, task, split,
                                                                                              base), why)})
        if rows:
            sec.paragraph("CoPE against each baseline, paired by seed: the gain is the baseline's token error minus "
                          "CoPE's on the same seed (points), with its 95% t-interval over seeds. Positive: CoPE is "
                          "lower.")
            sec.table(gains, columns=["split", "baseline", "claim", "ours", "verdict"])
        sec.results.update({"rows": rows, "gains": gains})
        return sec

    return Experiment(task, f"{title}: error (%)", claims, analyze)


def _split_cells(row: dict[str, Any], splits: tuple[str, ...]) -> dict[str, Any]:
    """Per split: ours (mean [interval]), the paper's number, and the sequence error (%)."""
    out: dict[str, Any] = {}
    for s in splits:
        seq = row[s].get("seq_mean")
        out.update({f"{s}: ours": _cell(row[s], 2), f"{s}: paper": row[s]["paper"],
                    f"{s}: seq err": None if seq is None else round(seq, 2)})
    return out


def _counting(ctx: ReportContext) -> Section:
    sec = Section("counting", "Variable counting: error (%)")
    runs = _runs(ctx)
    sec.uses(runs[(runs["task"] == "variable_counting") & runs["ablation"].isna()])
    rows = counting_rows(runs)
    if rows:
        sec.table([{"variables": r["n_vars"], "encoding": r["pe"], "seeds": r["n"], "ours": _cell(r, 2),
                    "paper": r["paper"]} for r in rows],
                  caption="Counting error (%) per question, mean [95% interval] over seeds; 'paper': Table 3")
        sec.figure("counting.png", counting_figure(rows), "Variable counting: error (%) vs number of variables; "
                   "points: mean with its 95% interval over seeds, small dots: seeds, open diamonds: Table 3")
    else:
        sec.paragraph("No variable counting runs in this store; `limitlab run cope --preset quick` trains 3 "
                      "variables, the paper preset 1, 3 and 5.")
    gains = []
    for n, by_base in C.COUNTING.items():
        cope = per_seed(runs, "variable_counting", "test", "cope", where={"n_vars": n})
        for base, claim in by_base.items():
            m = gain(per_seed(runs, "variable_counting", "test", base, where={"n_vars": n}), cope)
            why = f"no {n}-variable counting runs of CoPE and {base} on the same seeds"
            gains.append({"variables": n, "baseline": base, **_judge(sec, claim, m, why)})
    if rows:
        sec.table(gains, columns=["variables", "baseline", "claim", "ours", "verdict"],
                  caption="CoPE against each baseline, paired by seed: baseline − CoPE error (points)")
    sec.results.update({"rows": rows, "gains": gains})
    return sec


def _lm(ctx: ReportContext) -> Section:
    sec = Section("lm", "Language and code modelling: perplexity per byte")
    runs = _runs(ctx)
    sec.uses(runs[(runs["task"] == "text_lm") & runs["ablation"].isna()])
    rows, curves = lm_rows(runs)
    if rows:
        splits = [s for s in rows[0] if s == "test" or (s.startswith("ctx") and s.endswith("x"))]
        sec.table([{"corpus": r["corpus"], "encoding": r["pe"], "seeds": r["seeds"],
                    **{s: _cell(r[s]) for s in splits}, "paper test ppl (BPE, not comparable)": r["test"]["paper"]}
                   for r in rows],
                  caption="Perplexity per byte, mean [95% interval] over seeds; 'test' is the training context T, "
                          "ctxNx is N·T")
        for corpus in sorted({r["corpus"] for r in rows}):
            sec.figure(f"lm_{corpus}.png", lm_figure([r for r in rows if r["corpus"] == corpus],
                                                     curves.get(corpus, {}), corpus),
                       f"{corpus}: perplexity per byte vs evaluation context with 95% bands over seeds (left); loss "
                       "per position at the longest context, mean of seeds, moving average (right)")
    else:
        sec.paragraph("No LM runs in this store: the repro preset trains them on a CPU (T = 64), the paper preset "
                      "on a GPU.")
    gains = []
    for corpus, by_base in C.LM.items():
        cope = lm_per_seed(runs, corpus, "cope")
        for base, claim in by_base.items():
            why = f"no {corpus} LM runs of CoPE and {base} on the same seeds"
            gains.append({"corpus": corpus, "baseline": base,
                          **_judge(sec, claim, gain(lm_per_seed(runs, corpus, base), cope, "perplexity"), why)})
    corpus = "text" if lm_per_seed(runs, "text", "cope") else "stdlib"
    longest = max((s for s in (rows[0] if rows else {}) if s.startswith("ctx") and s.endswith("x")),
                  key=lambda s: float(s[3:-1]), default=None)
    falls = vs_rel = None
    if longest:
        at_t, far = lm_per_seed(runs, corpus, "cope"), lm_per_seed(runs, corpus, "cope", longest)
        seeds = sorted(set(at_t) & set(far), key=str)
        if seeds:
            m = Measure.of([far[s] - at_t[s] for s in seeds])
            path = ", ".join(f"{at_t[s]:.3g} → {far[s]:.3g}" for s in seeds)
            falls = Measure(m.estimate, m.low, m.high, m.n, m.values,
                            f"{fmt_number(m.estimate)}{_interval(m)} over {m.n} seed{'s' * (m.n != 1)} ({corpus}, "
                            f"T → {longest}: {path})")
        vs_rel = gain(lm_per_seed(runs, corpus, "relative", longest), far, "perplexity")
    gains.append({"corpus": corpus, "baseline": "T → longest",
                  **_judge(sec, C.LM_EXTRAPOLATES, falls, "no CoPE LM runs evaluated past T")})
    gains.append({"corpus": corpus, "baseline": "relative at the longest",
                  **_judge(sec, C.LM_EXTRAPOLATION_VS_RELATIVE, vs_rel,
                           "no LM runs of CoPE and relative evaluated past T on the same seeds")})
    sec.results.update({"rows": rows, "curves": curves, "gains": gains})
    return sec


def _pmax(ctx: ReportContext) -> Section:
    sec = Section("p_max", "p_max ablation (flip-flop, CoPE): error (%)")
    runs = _runs(ctx)
    rows = pmax_rows(runs)
    if rows:
        sec.uses(runs[(runs["task"] == "flip_flop") & (runs["pe"] == "cope")])
        sec.table([{"p_max": r["p_max"], "seeds": r["seeds"], **{s: _cell(r[s], 2) for s in SPLITS["flip_flop"]}}
                   for r in rows], caption="Token error (%), mean [95% interval] over seeds; no claim: the paper's "
                                           "ablation numbers are not known to us")
        sec.figure("p_max.png", pmax_figure(rows, SPLITS["flip_flop"]),
                   "CoPE's flip-flop token error against p_max (log scale): mean with its 95% band over seeds, seeds "
                   "as dots; 'sparse' is the OOD split")
    else:
        sec.paragraph("No p_max ablation runs in this store (the repro preset runs p_max 2 … 64 at the quick scale, "
                      "the paper preset 4, 16, 64, 256).")
    sec.results["rows"] = rows
    return sec


def _cope_map(ctx: ReportContext) -> Section:
    """The last layer of a stored CoPE model on one test sequence (flip-flop seed 0 first, else selective copy)."""
    from limitlab.studies.cope.attention import cope_maps, map_figure

    sec = Section("cope_map", "A CoPE attention and position map")
    runs = _runs(ctx)
    cand = runs[runs["task"].isin(list(TITLES)) & (runs["pe"] == "cope") & runs["ablation"].isna()]
    if cand.empty:
        sec.paragraph("No CoPE flip-flop or selective-copy run to draw.")
        return sec
    cand = cand.sort_values(["task", "seed"])
    stored = [rid for rid in cand["run_id"] if ctx.store.has_weights(rid)]
    if not stored:
        sec.paragraph(f"Not drawn: the store keeps no weights for its {len(cand)} CoPE run(s) (a report never "
                      "trains). Train with `limitlab run cope --preset quick --save-weights` (the cope study keeps "
                      "weights by default; a store made before it did needs the flag and --rerun-other-code or a new "
                      "store).", css="note")
        sec.results["map"] = {"drawn": False}
        return sec
    run_id = stored[0]
    model, spec = ctx.load_model(run_id), ctx.store.spec(run_id)
    sec.uses(cand[cand["run_id"] == run_id])
    maps = cope_maps(model, spec)
    task = spec.task.name
    if task == "flip_flop":
        labels = ["wri01"[t] for t in maps["tokens"]]
    else:
        labels = ["." if t == 0 else ">" if t == 1 else chr(ord("A") + t - 2) for t in maps["tokens"]]
    sec.paragraph(f"Run {run_id} ({task}, seed {spec.seed}; weights stored with the run), test sequence 0. Right: "
                  "p_ij, the number of gated tokens between key j and query i.")
    sec.figure("cope_map.png", map_figure(maps, labels, TITLES[task]),
               "A CoPE model's last layer on one test sequence: attention weights (left) and contextual positions "
               "p_ij (right); upper triangle (future keys) blank")
    sec.results["map"] = {"drawn": True, "run_id": run_id, "task": task, "seed": int(spec.seed)}
    return sec


EXPERIMENTS: tuple[Experiment, ...] = (
    synthetic("flip_flop"),
    synthetic("selective_copy"),
    Experiment("counting", "Variable counting: error (%)", tuple(c for by in C.COUNTING.values() for c in by.values()),
           _counting),
    Experiment("lm", "Language and code modelling: perplexity per byte",
           (*(c for by in C.LM.values() for c in by.values()), C.LM_EXTRAPOLATES, C.LM_EXTRAPOLATION_VS_RELATIVE),
           _lm),
    Experiment("p_max", "p_max ablation (flip-flop, CoPE): error (%)", (), _pmax),
    Experiment("cope_map", "A CoPE attention and position map", (), _cope_map),
)
