"""The papers' own encoding orders, as data, and where the board agrees with each.

Each :class:`PaperOrder` is one ordering a paper reports (from /work/shared/reference: cope.md, arithmetic.md),
best first, in the registry's names (the CoPE paper's "absolute" is ``learned``); a tier holds encodings the paper
does not order among themselves. counting.md has no ordering to take: Yehudai et al. compare no encodings, and
Chang & Bisk's "transformers need positional embeddings to count OOD" is about inductive counting at every
position, another task than QC.

Agreement, per pair the paper orders (a ahead of b) on the same task and split: our paired difference over seeds
(a's score − b's, signed so that positive is "a better"), its 95% t-interval; **agree** when the interval is above
0, **disagree** when below, **inconclusive** otherwise. For the one overall ordering (Kazemnejad et al.'s rank
over their tasks) the units are our tasks: b's OOD mean rank − a's, over the tasks both stand on. Per ordering,
Kendall's τ_b between the paper's tiers and our mean ranks of the same encodings (1: same order, −1: reversed).

>>> [o.pairs() for o in ORDERS if o.place == "Table 3"][0]
[('cope', 'relative'), ('cope', 'learned'), ('relative', 'learned')]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from limitlab.analysis.intervals import t_interval

CoPE = "Golovneva et al. 2024 (CoPE)"


@dataclass(frozen=True)
class PaperOrder:
    paper: str
    place: str
    task: str  # a board task, or 'overall'
    split: str  # 'id' or 'ood'
    tiers: tuple[tuple[str, ...], ...]  # best first
    numbers: str  # what the paper reports, for the page
    note: str = ""

    def pairs(self) -> list[tuple[str, str]]:
        """(a, b) for every a in an earlier tier than b."""
        return [(a, b) for i, tier in enumerate(self.tiers) for later in self.tiers[i + 1:] for a in tier
                for b in later]

    def rank_of(self) -> dict[str, float]:
        return {enc: float(i) for i, tier in enumerate(self.tiers) for enc in tier}


ORDERS: tuple[PaperOrder, ...] = (
    PaperOrder(CoPE, "flip-flop table", "flip_flop", "id", (("cope",), ("rope",), ("learned",)),
               "test error 0.0 / 1.8 / 6.8%"),
    PaperOrder(CoPE, "flip-flop table", "flip_flop", "ood", (("cope",), ("rope",), ("learned",)),
               "OOD error 4.9 / 20.3 / 21.7%"),
    PaperOrder(CoPE, "selective-copy table", "selective_copy", "id", (("cope",), ("learned",), ("rope",)),
               "test error 0.0 / 16.9 / 40.1%"),
    PaperOrder(CoPE, "selective-copy table", "selective_copy", "ood", (("cope",), ("learned",), ("rope",)),
               "OOD sparse error 0.0 / 85.2 / 100%"),
    PaperOrder(CoPE, "Table 3", "variable_counting", "id", (("cope",), ("relative",), ("learned",)),
               "3 variables: error 1.2 / 17.8 / 67.6%"),
    PaperOrder(CoPE, "code LM table", "lm", "id", (("cope",), ("cope+rope",), ("rope",), ("learned",)),
               "test perplexity 3.9 / 4.0 / 4.1 / 4.7", "an unknown code corpus, BPE tokens; ours: stdlib bytes"),
    PaperOrder(CoPE, "Wikitext table", "lm", "id", (("cope+relative",), ("cope",), ("relative",), ("learned",)),
               "test perplexity 23.23 / 23.46 / 23.81 / 24.87", "Wikitext-103; ours: stdlib bytes"),
    PaperOrder(CoPE, "length-generalisation figure", "lm", "ood", (("cope",), ("relative",)),
               "trained at 512, at 2048: ≈ 22.0 vs > 25", "read from a figure; ours 2T–4T"),
    PaperOrder("Kazemnejad et al. 2023", "abstract (mean reciprocal rank)", "overall", "ood",
               (("none",), ("t5",), ("alibi",), ("rope",), ("learned",)),
               "NoPE 0.69 MRR, ahead of T5, ALiBi, RoPE, APE", "their tasks (copy, addition, SCAN, …), 2L tests"),
    PaperOrder("McLeish et al. 2024 (Abacus)", "headline", "arithmetic", "ood", (("abacus",),
                                                                                ("learned", "rope", "none")),
               "≈ 99% at 100 digits after ≤ 20", "reversed variable-length format; ours: aligned (fixed width), "
               "where a digit's index in its number is its column"),
    PaperOrder("Xu et al. 2024", "abstract, claim (1)", "arithmetic", "ood", (("relative",), ("learned",)),
               "relative PE generalises addition, APE does not", "their RPE runs are not in the released code"),
)


def pair_verdict(diffs: list[float]) -> tuple[float, float, float, str]:
    """(mean, low, high, verdict) of paired differences (positive: the paper's order holds)."""
    vals = [d for d in diffs if not math.isnan(d)]
    if len(vals) < 2:
        return (float(np.mean(vals)) if vals else math.nan, math.nan, math.nan, "inconclusive")
    mean = float(np.mean(vals))
    _, low, high = t_interval(vals)  # (std, low, high); equal differences give low = high = mean
    verdict = "agree" if low > 0 else "disagree" if high < 0 else "inconclusive"
    return mean, low, high, verdict


def task_pairs(order: PaperOrder, scores: pd.DataFrame, higher_better: bool) -> list[dict]:
    """Rows per pair for one per-task ordering; ``scores``: columns encoding, seed, id, ood, ok."""
    sign = 1.0 if higher_better else -1.0
    rows = []
    for a, b in order.pairs():
        sa = scores[scores["encoding"] == a].set_index("seed")[order.split]
        sb = scores[scores["encoding"] == b].set_index("seed")[order.split]
        seeds = sorted(set(sa.index) & set(sb.index))
        if not seeds:
            rows.append(_row(order, a, b, math.nan, math.nan, math.nan, "not measured", "no runs of both"))
            continue
        diffs = [sign * (float(sa[s]) - float(sb[s])) for s in seeds]
        mean, low, high, verdict = pair_verdict(diffs)
        missed = scores[scores["encoding"].isin([a, b]) & ~scores["ok"].astype(bool)]
        note = f"{len(seeds)} seeds" + (f"; {len(missed)} run(s) missed the ID criterion" if len(missed) else "")
        rows.append(_row(order, a, b, mean, low, high, verdict, note))
    return rows


def overall_pairs(order: PaperOrder, task_means: pd.DataFrame) -> list[dict]:
    """Rows per pair for an overall ordering; ``task_means``: columns task, encoding, mean_rank (OOD)."""
    table = task_means.pivot_table(index="task", columns="encoding", values="mean_rank")
    rows = []
    for a, b in order.pairs():
        if a not in table or b not in table:
            rows.append(_row(order, a, b, math.nan, math.nan, math.nan, "not measured", "no runs of both"))
            continue
        diffs = (table[b] - table[a]).dropna().tolist()
        mean, low, high, verdict = pair_verdict(diffs)
        rows.append(_row(order, a, b, mean, low, high, verdict, f"{len(diffs)} tasks (rank difference)"))
    return rows


def kendall(order: PaperOrder, our_ranks: dict[str, float]) -> tuple[float, int]:
    """(Kendall's τ_b between the paper's tiers and our mean ranks, encodings compared); NaN below 2."""
    from scipy.stats import kendalltau

    paper = order.rank_of()
    common = [e for e in paper if e in our_ranks and not math.isnan(our_ranks[e])]
    if len(common) < 2:
        return math.nan, len(common)
    tau = kendalltau([paper[e] for e in common], [our_ranks[e] for e in common]).statistic
    return float(tau), len(common)


def _row(order: PaperOrder, a: str, b: str, mean: float, low: float, high: float, verdict: str,
         note: str) -> dict:
    return {"paper": order.paper, "place": order.place, "task": order.task, "split": order.split,
            "paper says": f"{a} ahead of {b}", "ours": mean, "low": low, "high": high, "verdict": verdict,
            "note": note}
