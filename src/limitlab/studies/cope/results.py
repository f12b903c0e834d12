"""The CoPE report's numbers: per (task, split, encoding) the error over seeds with its 95% interval beside the
paper's, and the per-seed values the claims pair.

Errors are fractions in the store and **percent** here (the paper's unit). For flip-flop and selective copy
``error`` is the token error (the fraction of scored read-outs wrong: the bit after each ``r``, each copied token);
the sequence error (any scored read-out of a sequence wrong) is given beside it, because the paper does not say
which it reports. Counting's error is per question. LM numbers are perplexities per byte (exp of the mean loss).

>>> runs = pd.DataFrame({"run_id": list("abcd"), "seed": [0, 1, 0, 1], "task": ["flip_flop"] * 4,
...                      "pe": ["cope", "cope", "rope", "rope"], "ablation": [None] * 4,
...                      "test/error": [0.0, 0.01, 0.2, 0.3]})
>>> per_seed(runs, "flip_flop", "test", "rope")
{0: 20.0, 1: 30.0}
>>> row = error_rows(runs, "flip_flop")[1]; row["pe"], round(row["test"]["mean"], 2), row["test"]["paper"]
('cope', 0.5, 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis.frames import tidy
from limitlab.analysis.intervals import mean_ci
from limitlab.studies.cope.claims import PAPER_NUMBERS

__all__ = ["PE_ORDER", "SPLITS", "counting_rows", "error_rows", "lm_per_seed", "lm_rows", "order", "per_seed",
           "pmax_rows", "rank", "runs_frame"]

SPLITS = {"flip_flop": ("test", "sparse", "dense"), "selective_copy": ("test", "dense", "sparse")}
PE_ORDER = ["absolute", "relative", "relative_capped", "rope", "nope", "alibi", "cope", "cope+relative", "cope+rope",
            "cope_sepkey"]
PERCENT = (0.0, 100.0)


def runs_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: run_id, seed, tags and every ``result.*`` column under its short name
    ('test/error', ...), plus n_vars and corpus of the task."""
    cols = {c[len("result."):]: c for c in raw.columns if isinstance(c, str) and c.startswith("result.")}
    extra = {k: c for k, c in {"n_vars": "task.n_vars", "corpus": "task.corpus"}.items() if c in raw}
    runs = tidy(raw, {**cols, **extra})
    for name in ("task", "pe", "ablation", "p_max", "corpus", "n_vars"):
        if name not in runs:
            runs[name] = None
    return runs


def rank(pe: str) -> tuple[int, str]:
    """Sort key of an encoding: the paper's order (absolute, relative, RoPE, ..., CoPE and its hybrids)."""
    return (PE_ORDER.index(pe) if pe in PE_ORDER else 99, pe)


def order(pes: Any) -> list[str]:
    """The distinct encodings of ``pes`` in the paper's order."""
    return sorted(set(pes), key=rank)


def _main(runs: pd.DataFrame, task: str) -> pd.DataFrame:
    """The runs of ``task`` outside any ablation."""
    return runs[(runs["task"] == task) & runs["ablation"].isna()]


def per_seed(runs: pd.DataFrame, task: str, split: str, pe: str, metric: str = "error",
             where: dict[str, Any] | None = None) -> dict[Any, float]:
    """{seed: value} of ``<split>/<metric>`` for one encoding, in seed order (errors in %, perplexity as
    exp(loss)); ``where`` filters further columns (``{"n_vars": 3}``)."""
    sub = _main(runs, task)
    sub = sub[sub["pe"] == pe]
    for key, value in (where or {}).items():
        sub = sub[sub[key] == value]
    col = f"{split}/{metric}"
    if col not in sub or sub.empty:
        return {}
    vals = pd.to_numeric(sub[col], errors="coerce")
    vals = np.exp(vals) if metric == "loss" else 100 * vals
    return {seed: float(v) for seed, v in sorted(zip(sub["seed"], vals), key=lambda sv: sv[0]) if not np.isnan(v)}


def _stats(values: list[float], paper: float | None, bounds: tuple[float, float] = PERCENT) -> dict[str, Any]:
    iv = mean_ci(values, bounds)
    return {"mean": iv.mean if iv.n else None, "low": iv.low, "high": iv.high, "n": iv.n, "per_seed": values,
            "paper": paper}


def error_rows(runs: pd.DataFrame, task: str) -> list[dict[str, Any]]:
    """Flip-flop / selective copy: per encoding, per split {mean, low, high, n, per_seed, paper} of the token
    error (%) and the sequence error's mean (%)."""
    sub = _main(runs, task)
    rows = []
    for pe in order(sub["pe"]):
        row: dict[str, Any] = {"pe": pe, "seeds": int((sub["pe"] == pe).sum())}
        for split in SPLITS[task]:
            vals = list(per_seed(runs, task, split, pe).values())
            row[split] = _stats(vals, PAPER_NUMBERS.get((task, split), {}).get(pe))
            seq = [100 - v for v in per_seed(runs, task, split, pe, "accuracy").values()]
            row[split]["seq_mean"] = float(np.mean(seq)) if seq else None
        rows.append(row)
    return rows


def counting_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Variable counting: per (variables, encoding) the error (%) over seeds and the paper's Table 3 number."""
    sub = _main(runs, "variable_counting")
    rows = []
    for n in sorted(int(x) for x in sub["n_vars"].dropna().unique()):
        for pe in order(sub[sub["n_vars"] == n]["pe"]):
            vals = list(per_seed(runs, "variable_counting", "test", pe, where={"n_vars": n}).values())
            paper = PAPER_NUMBERS.get(("variable_counting", str(n)), {}).get(pe)
            rows.append({"n_vars": n, "pe": pe, **_stats(vals, paper)})
    return rows


def lm_rows(runs: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(perplexity per corpus × encoding × context with its interval, loss-by-position curves per corpus ×
    encoding × split, mean of seeds). Corpus 'text' is a given path (Wikitext), 'stdlib' the standard library."""
    sub = _main(runs, "text_lm")
    rows: list[dict[str, Any]] = []
    curves: dict[str, Any] = {}
    if sub.empty:
        return rows, curves
    splits = sorted({c.split("/")[0] for c in sub.columns if isinstance(c, str) and c.endswith("/loss")
                     and sub[c].notna().any()}, key=lambda s: (s != "test", s))
    kinds = sub["corpus"].fillna("stdlib").map(lambda c: "stdlib" if c == "stdlib" else "text")
    for (kind, pe), one in sub.groupby([kinds, "pe"]):
        row: dict[str, Any] = {"corpus": kind, "pe": pe, "seeds": len(one)}
        for split in splits:
            vals = np.exp(pd.to_numeric(one[split + "/loss"], errors="coerce").dropna()).tolist()
            paper = PAPER_NUMBERS.get(("text_lm", kind), {}).get(pe) if split == "test" else None
            row[split] = _stats(vals, paper, (1.0, np.inf))
            vec = [v for v in one.get(f"{split}/loss_by_position", []) if isinstance(v, list)]
            if vec:
                curves.setdefault(kind, {}).setdefault(pe, {})[split] = np.mean(np.array(vec, float), 0).tolist()
        rows.append(row)
    rows.sort(key=lambda r: (r["corpus"], rank(r["pe"])))
    return rows, curves


def lm_per_seed(runs: pd.DataFrame, kind: str, pe: str, split: str = "test") -> dict[Any, float]:
    """{seed: perplexity} of one LM encoding on corpus ``kind`` ('text' or 'stdlib')."""
    sub = runs[(runs["task"] == "text_lm") & runs["ablation"].isna()]
    sub = sub[sub["corpus"].fillna("stdlib").map(lambda c: "stdlib" if c == "stdlib" else "text") == kind]
    return per_seed(sub, "text_lm", split, pe, "loss")


def pmax_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """The p_max ablation (flip-flop, CoPE): error (%) per p_max and split, with its interval over seeds."""
    sub = runs[(runs["pe"] == "cope") & (runs["task"] == "flip_flop")]
    if sub["ablation"].isna().all():
        return []
    out = []
    for p_max, one in sub.groupby("p_max"):
        row: dict[str, Any] = {"p_max": int(p_max), "seeds": len(one)}
        for split in SPLITS["flip_flop"]:
            vals = (100 * pd.to_numeric(one[f"{split}/error"], errors="coerce").dropna()).tolist()
            row[split] = _stats(vals, None)
        out.append(row)
    return out
