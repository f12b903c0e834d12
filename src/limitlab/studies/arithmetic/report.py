"""The arithmetic report: results.json, PNG figures and index.html from whatever arithmetic runs a store holds.

Files written to ``out_dir``::

    results.json             every number on the page ("schema": "limitlab.arithmetic.report/1"; NaN -> null)
    lengths_<experiment>.png exact match vs test digit count per encoding (solid), against the truncated target
                             (dashed), and for mod p the predicted accuracy of the truncated function (dotted)
    digits_<experiment>.png  digit-wise accuracy heatmaps (test digit count × answer slot), one panel per encoding
    index.html               claims, protocol, modulus table, inward/outward OOD, the figures

results.json sections: runs, protocol, claims, warnings, figures, store, and ``lengths`` (mean exact match per
experiment × encoding × n, with 95% interval over seeds, truncated-target accuracy and truncation agreement),
``digits`` (digit-wise maps), ``modulus`` (measured vs 1/p′), ``ood`` (in distribution / inward / outward).

>>> write_report(RunStore("limitlab-store"), "reports/arithmetic")        # doctest: +SKIP
PosixPath('reports/arithmetic/index.html')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.figures import COLORS, heatmap, new_figure
from limitlab.report.html import VERDICT_CLASSES, Page
from limitlab.report.scale import add_scale_banner
from limitlab.report.tables import ClaimsTable, ProtocolTable, not_measured, verdict
from limitlab.report.write import write_report as write_folder
from limitlab.studies.arithmetic import analysis as A

SCHEMA = "limitlab.arithmetic.report/1"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("≤", "le")).strip("-")


def _pct(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}%"


# ---- claims and protocol ----------------------------------------------------------------------------------------

LEARNED = 0.9  # a run group counts as "learned" when its in-distribution exact match is at least this


def _unlearned(rows: pd.DataFrame, what: str, column: str = "in distribution") -> dict[str, str]:
    shown = ", ".join(f"{r['experiment']} {r['position']} {_pct(r[column])}" for _, r in rows.iterrows())
    return not_measured(f"{what}: no run group reached {LEARNED:.0%} in distribution ({shown})",
                        f"only run groups with ≥ {LEARNED:.0%} in-distribution exact match are judged")


def claims(ood: list[dict], modulus: list[dict], curves: list[dict]) -> list[dict]:
    """The paper's claims (reference notes: [src] code/abstract, [nb] the authors' notebooks) against our runs.

    Only run groups that learned their training distribution (in-distribution exact match ≥ 90%) are judged; a
    claim whose runs all failed to learn is 'not measured', with their numbers."""
    table = ClaimsTable()
    o = pd.DataFrame(ood)
    if o.empty:
        o = pd.DataFrame(columns=["experiment", "position", "outward", "outward vs truncated", "inward",
                                  "in distribution"])
    all_add = o[o["experiment"].str.match(r"^add/") & o["outward"].notna()]
    add = all_add[all_add["in distribution"] >= LEARNED]
    ape = add[add["position"] == "learned"]
    if not len(ape) and len(all_add[all_add["position"] == "learned"]):
        table.add("Learned absolute PE: 0% beyond n, ~100% vs truncated target", "[nb]", "addition",
                  _unlearned(all_add[all_add["position"] == "learned"], "learned-PE addition"))
    elif len(ape):
        worst_exact, worst_trunc = ape["outward"].max(), ape["outward vs truncated"].min()
        scope = ", ".join(ape["experiment"])
        table.add("Learned absolute PE trained on ≤ n digits scores 0% exact match beyond n digits",
                  "[nb] Test_Accuracy_Table", scope,
                  verdict(f"outward exact ≤ {_pct(worst_exact)}", "agree if every learned-PE addition run group "
                          "has outward exact < 5%", "agree" if worst_exact < 0.05 else "disagree"))
        table.add("… and ~100% against the truncated target f(a mod 10^n, b mod 10^n) at every longer length",
                  "[nb] Test_Accuracy_Table", scope,
                  verdict(f"outward vs truncated ≥ {_pct(worst_trunc)} (mean over the outward lengths)",
                          "agree if every learned-PE addition run group scores > 90% against the truncated target",
                          "agree" if worst_trunc > 0.9 else "disagree"))
    else:
        table.add("Learned absolute PE: 0% beyond n, ~100% vs truncated target", "[nb]", "addition",
                  not_measured("no learned-PE addition runs"))
    rel = add[add["position"] != "learned"]
    rel_all = all_add[all_add["position"] != "learned"]
    if len(rel_all) and not len(rel):
        table.add("Addition generalizes with a suitable relative encoding", "[src] abstract (1)",
                  ", ".join(sorted(set(rel_all["position"]))), _unlearned(rel_all, "non-absolute encodings"))
    elif len(rel):
        best = rel.loc[rel["outward"].idxmax()]
        result = "agree" if best["outward"] >= 0.5 else "disagree"
        table.add("Addition generalizes to longer operands with a suitable (relative) encoding", "[src] abstract (1)",
                  ", ".join(sorted(set(rel["position"]))),
                  verdict(f"best outward exact {_pct(best['outward'])} ({best['position']}, {best['experiment']})",
                          "agree if some non-absolute encoding reaches ≥ 50% outward exact match", result))
    else:
        table.add("Addition generalizes with a suitable relative encoding", "[src] abstract (1)", "addition",
                  not_measured("no addition runs with a non-absolute encoding"))
    all_mul = o[o["experiment"].str.match(r"^mul/") & o["outward"].notna()]
    mul = all_mul[all_mul["in distribution"] >= LEARNED]
    if len(all_mul) and not len(mul):
        table.add("Multiplication does not generalize, whatever the encoding", "[src] abstract (1)", "multiplication",
                  _unlearned(all_mul, "multiplication"))
    elif len(mul):
        best = mul.loc[mul["outward"].idxmax()]
        result = "agree" if best["outward"] < 0.05 else "disagree"
        table.add("Multiplication does not generalize to longer operands, whatever the encoding", "[src] abstract (1)",
                  ", ".join(sorted(set(mul["position"]))),
                  verdict(f"best outward exact {_pct(best['outward'])} ({best['position']})",
                          "agree if every multiplication run stays < 5% outward", result))
    else:
        table.add("Multiplication does not generalize, whatever the encoding", "[src] abstract (1)", "multiplication",
                  not_measured("no multiplication runs"))
    m_all = pd.DataFrame(modulus)
    m = m_all[m_all["in_distribution"] >= LEARNED] if len(m_all) else m_all
    fixed = m[m["format"] != "remainder"] if len(m) else m
    pairs = []
    if len(fixed):
        for (op, pos), g in fixed.groupby(["op", "position"]):
            p100, p101 = g[g["p"] == 100], g[g["p"] == 101]
            if len(p100) and len(p101) and p100["outward"].notna().all() and p101["outward"].notna().all():
                pairs.append((op, pos, float(p100["outward"].iloc[0]), float(p101["outward"].iloc[0]),
                              float(p101["outward_predicted"].iloc[0])))
    if pairs:
        ok = all(a >= 0.9 and b <= max(0.05, 3 * pred) for _, _, a, b, pred in pairs)
        ours = "; ".join(f"{op} {pos}: mod 100 {_pct(a)}, mod 101 {_pct(b)} (predicted {_pct(pred)})"
                         for op, pos, a, b, pred in pairs)
        table.add("Mod 100 generalizes to longer operands, mod 101 does not, regardless of the encoding",
                  "[src] abstract (2); [nb] mod-mul tables", ", ".join(sorted({p[1] for p in pairs})),
                  verdict(ours, "agree if, for every encoding, mod 100 ≥ 90% outward and mod 101 ≤ max(5%, 3× its "
                                "predicted accuracy)", "agree" if ok else "disagree"))
        gap = min(a - b for _, _, a, b, _ in pairs)
        table.add("(weaker form) Beyond the training length mod 100 stays clearly above mod 101", "[src] abstract (2)",
                  ", ".join(sorted({p[1] for p in pairs})),
                  verdict(f"smallest gap mod 100 − mod 101: {100 * gap:.1f} points", "agree if mod 100 exceeds mod 101 "
                          "by ≥ 10 points of outward exact match for every encoding",
                          "agree" if gap >= 0.1 else "disagree"))
    else:
        why = "no pair of mod-100 and mod-101 run groups with the same encoding that both learned (in distribution: "
        why += ", ".join(f"{r['experiment']} {r['position']} {_pct(r['in_distribution'])}"
                         for _, r in m_all.iterrows()) + ")" if len(m_all) else "no modular runs"
        table.add("Mod 100 generalizes, mod 101 does not, regardless of the encoding", "[src] abstract (2)", "mod p",
                  not_measured(why))
    bad = fixed[(fixed["p_prime"] > 1) & fixed["outward"].notna()] if len(fixed) else fixed
    if len(bad):
        diffs = (bad["outward"] - bad["outward_predicted"]).abs()
        result = "agree" if diffs.max() <= 0.05 else "disagree"
        table.add("When p ∤ 10^n, accuracy beyond the training length collapses to the truncated function's "
                  "(asymptotically 1/p′)", "[nb] count_valid_pairs",
                  ", ".join(sorted({f"p={p}" for p in bad["p"]})),
                  verdict(f"largest |measured − predicted| = {_pct(diffs.max())} over {len(bad)} run group(s); "
                          f"1/p′ = {', '.join(sorted({_pct(x) for x in bad['one_over_p_prime']}))}",
                          "agree if measured outward exact is within 5 points of the truncation prediction "
                          "on our test sequences", result))
    hole = o[o["experiment"].str.contains("D_ab") & o["inward"].notna()] if len(o) else o
    if len(hole):
        worst = hole.loc[hole["inward"].idxmin()]
        table.add("Inward OOD: D_ab4 has a hole below the training length (72.6% at 3 digits, 100% at 4)",
                  "[nb] Test_Accuracy_Table", f"{worst['experiment']} {worst['position']}",
                  verdict(f"inward {_pct(worst['inward'])} vs in distribution {_pct(worst['in distribution'])}",
                          "agree if inward is ≥ 10 points below in distribution",
                          "agree" if worst["inward"] <= worst["in distribution"] - 0.1 else "disagree"))
    else:
        table.add("Inward OOD hole of D_ab4 at 3 digits", "[nb]", "addition", not_measured("no D_ab runs"))
    rem_all = m_all[m_all["format"] == "remainder"] if len(m_all) else m_all
    rem = rem_all[rem_all["in_distribution"] >= LEARNED] if len(rem_all) else rem_all
    if len(rem_all) and not len(rem):
        table.add("(beyond the paper) Running-remainder scratchpad makes mod 101 learnable", "[inf] §4(c)", "mod p",
                  _unlearned(rem_all, "remainder format", "in_distribution"))
    elif len(rem) and rem["outward"].notna().any():
        best = rem.loc[rem["outward"].idxmax()]
        table.add("(beyond the paper) A running-remainder scratchpad makes mod 101 generalize outward",
                  "[inf] reference §4(c)", f"{best['experiment']} {best['position']}",
                  verdict(f"outward exact {_pct(best['outward'])} (1/p′ = {_pct(best['one_over_p_prime'])}) on "
                          f"n = {best['outward_n']}; in distribution {_pct(best['in_distribution'])}",
                          "agree if ≥ 50% outward",
                          "agree" if best["outward"] >= 0.5 else "disagree"))
    else:
        table.add("(beyond the paper) Running-remainder scratchpad makes mod 101 learnable", "[inf] §4(c)", "mod 101",
                  not_measured("no remainder-format runs"))
    c = pd.DataFrame(curves)
    abacus = c[(c["position"].str.contains("abacus")) & (c["digits"] >= 100)] if len(c) else c
    if len(abacus):
        best = abacus.loc[abacus["mean"].idxmax()]
        table.add("(McLeish et al.) Abacus, trained on ≤ 20 digits, reaches ~99% on 100-digit addition",
                  "[src] arXiv 2405.17399 abstract", best["experiment"],
                  verdict(f"{_pct(best['mean'])} at n = {best['digits']}", "agree if ≥ 90%",
                          "agree" if best["mean"] >= 0.9 else "disagree"))
    else:
        table.add("(McLeish et al.) Abacus reaches ~99% on 100-digit addition", "[src] arXiv 2405.17399",
                  "beyond preset", not_measured("no Abacus runs tested at 100 digits (the beyond preset, GPU)"))
    return table.rows


def protocol(raw: pd.DataFrame) -> list[dict]:
    runs = raw[raw["status"] == "done"]
    proto = ProtocolTable(runs, group="tags.experiment")
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


# ---- figures ----------------------------------------------------------------------------------------------------

def figures(curves: list[dict], maps: list[dict], modulus: list[dict]) -> dict[str, Any]:
    from matplotlib.ticker import PercentFormatter

    out: dict[str, Any] = {}
    c = pd.DataFrame(curves)
    pred = {(r["experiment"], r["position"]): r for r in modulus}
    for exp, g in (c.groupby("experiment", sort=True) if len(c) else []):
        fig = new_figure(6.5, 3.6)
        ax = fig.subplots()
        for i, (pos, gp) in enumerate(g.groupby("position", sort=True)):
            gp = gp.sort_values("digits")
            color = COLORS[i % len(COLORS)]
            ax.plot(gp["digits"], gp["mean"], marker="o", ms=3, color=color, label=f"{pos}")
            lo, hi = gp["ci_low"].to_numpy(float), gp["ci_high"].to_numpy(float)
            if np.isfinite(lo).any():
                ax.fill_between(gp["digits"], np.where(np.isfinite(lo), lo, gp["mean"]),
                                np.where(np.isfinite(hi), hi, gp["mean"]), color=color, alpha=0.15, lw=0)
            if gp["truncated"].notna().any():
                ax.plot(gp["digits"], gp["truncated"], ls="--", color=color, lw=1)
            if (exp, pos) in pred and i == 0:
                ax.plot(gp["digits"], gp["agreement"], ls=":", color="black", lw=1.2, label="truncated fn (predicted)")
                ax.axhline(pred[(exp, pos)]["one_over_p_prime"], color="grey", lw=0.8, ls="-.", label="1/p′")
        ax.set_xlabel("test digit count n")
        ax.set_ylabel("exact match")
        ax.set_ylim(-0.03, 1.03)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))  # the page gives accuracies in percent
        ax.set_title(f"{exp}: solid = true target, dashed = truncated target", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        out[f"lengths_{_safe(exp)}.png"] = fig
    by_exp: dict[str, list[dict]] = {}
    for mp in maps:
        by_exp.setdefault(mp["experiment"], []).append(mp)
    for exp, panels in by_exp.items():
        fig = new_figure(min(3.2 * len(panels), 16), 3.0)
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        im = None
        for ax, mp in zip(axes, panels):
            k = mp["slots"]
            cols = [str(j) for j in range(k - 1)] + ["END"]
            pivot = pd.DataFrame(mp["accuracy"], index=mp["n"], columns=cols)
            im = heatmap(ax, pivot, f"{mp['position']} ({mp['seeds']} seed(s))", xlabel="answer slot (LSB first)",
                         ylabel="test digits n", annotate=False)
        fig.colorbar(im, ax=list(axes), label="digit accuracy", format=PercentFormatter(1.0))
        out[f"digits_{_safe(exp)}.png"] = fig
    return out


# ---- the page ---------------------------------------------------------------------------------------------------

def write_report(store: Any, out_dir: str | Path) -> Path:
    """Analyse the arithmetic runs of ``store``; write results.json, figures and index.html to ``out_dir``."""
    raw = store.to_dataframe("arithmetic")
    status = raw["status"].value_counts().to_dict() if len(raw) else {}
    runs = A.runs_frame(raw) if len(raw) else pd.DataFrame()
    long = A.per_length(runs) if len(runs) else pd.DataFrame(columns=["experiment", "position", "digits"])
    curves = A.length_curves(long)
    maps = A.digit_maps(runs) if len(runs) else []
    modulus = A.modulus_table(runs, long) if len(runs) else []
    ood = A.ood_table(long) if len(long) else []
    warnings = [] if len(runs) else ["No finished arithmetic runs: run `limitlab run arithmetic --preset quick`."]
    results = {
        "schema": SCHEMA, "study": "arithmetic", "store": str(getattr(store, "root", "")),
        "runs": {"total": len(raw), "done": int(status.get("done", 0)), "failed": int(status.get("failed", 0)),
                 "pending": int(status.get("pending", 0)), "running": int(status.get("running", 0)),
                 "used": len(runs)},
        "protocol": protocol(raw) if len(raw) else [],
        "claims": claims(ood, modulus, curves),
        "warnings": warnings, "lengths": curves, "digits": maps, "modulus": modulus, "ood": ood,
    }
    figs = figures(curves, maps, modulus)
    results["figures"] = {name[:-4]: name for name in figs}
    page = _page(results)
    add_scale_banner(page, "arithmetic", raw)
    return write_folder(out_dir, results, figs, page)


def _page(r: dict) -> Page:
    page = Page("Arithmetic: length generalization per position encoding",
                "Reproduction of Xu et al. 2024 (arXiv 2407.17963): addition vs multiplication, mod 100 vs mod 101, "
                "learned absolute vs relative encodings and Abacus (McLeish et al. 2024).")
    runs = r["runs"]
    page.paragraph(f"Store {r['store']}: {runs['total']} arithmetic run(s), {runs['done']} done, {runs['failed']} "
                   f"failed. Exact match is scored under teacher forcing, which equals greedy decoding's exact match "
                   f"(every answer token right given the right prefix). Test digit count n: one operand has exactly "
                   f"n digits, the other is uniform below 10^n (the paper's test scheme).")
    for w in r["warnings"]:
        page.paragraph(w, css="note")
    page.heading("Paper's claims vs our numbers", anchor="claims")
    page.table(r["claims"], columns=["claim", "source", "scope", "ours", "criterion", "verdict"],
               highlight={"verdict": VERDICT_CLASSES})
    page.heading("Protocol: ours vs the paper's", anchor="protocol")
    page.table(r["protocol"], columns=["item", "paper", "ours", "status", "note"],
               highlight={"status": {"departure": "warn", "same": "good", "paper unknown": "muted"}})
    page.heading("Modular arithmetic: measured vs predicted", anchor="modulus")
    page.paragraph("k = training digits the truncated function keeps; 1/p′ with p′ = p / gcd(p, 10^k) is the "
                   "theory's asymptotic accuracy beyond the training length; 'predicted' is the exact fraction of our "
                   "outward test sequences on which the truncated function (a mod 10^k ∘ b mod 10^k) mod p is right, "
                   "measured on the data (it is below 1/p′ just above k, where the high parts are small).")
    page.table(r["modulus"], columns=["experiment", "position", "format", "p", "k", "p_prime", "one_over_p_prime",
                                      "in_distribution", "outward", "outward_predicted", "outward_vs_truncated",
                                      "outward_n", "seeds"],
               percent=["one_over_p_prime", "in_distribution", "outward", "outward_predicted",
                        "outward_vs_truncated"])
    page.heading("In distribution, inward and outward OOD", anchor="ood")
    page.paragraph("Mean exact match over the test digit counts of each kind. Inward: n ≤ the largest training n but "
                   "outside the training support (e.g. D_ab4 at 3 digits); outward: n above it.")
    page.table(r["ood"], columns=["experiment", "position", "seeds", "in distribution", "inward", "inward n",
                                  "outward", "outward n", "outward vs truncated"],
               percent=["in distribution", "inward", "outward", "outward vs truncated"])
    page.heading("Exact match vs test length", anchor="lengths")
    for key, name in r["figures"].items():
        if key.startswith("lengths_"):
            page.figure(name, f"{key[len('lengths_'):]}: exact match vs test digit count n, one colour per "
                              "position encoding (solid: true target; dashed: truncated target)")
    page.heading("Digit-wise accuracy (test length × answer slot)", anchor="digits")
    for key, name in r["figures"].items():
        if key.startswith("digits_"):
            page.figure(name, f"{key[len('digits_'):]}: accuracy of each answer slot (least significant digit "
                              "first) per test digit count n, one panel per position encoding")
    page.table(r["lengths"], columns=["experiment", "position", "digits", "n", "mean", "ci_low", "ci_high",
                                      "truncated", "agreement"],
               percent=["mean", "ci_low", "ci_high", "truncated", "agreement"],
               caption="Exact match per test digit count (n = seeds; mean, 95% CI), truncated-target accuracy and "
                       "the truncation agreement of the test data")
    return page
