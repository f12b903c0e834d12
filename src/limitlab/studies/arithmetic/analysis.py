"""The arithmetic study's numbers, from the store's DataFrame: per-length accuracy, digit-wise accuracy, the
modulus table against 1/p′, inward vs outward OOD, and the claims against the paper.

Every function takes the tidy frame of :func:`runs_frame` (one row per finished run with its task) and returns
plain records, so results.json and the page show the same numbers.

* exact match per test digit count n (the ``lengths`` split), against the true and the truncated target;
* **outward** OOD: n above the largest training n; **inward**: n at or below it but outside the training support
  (D_ab4 at 3 digits; D4 at 1–3, where neither operand has exactly 4 digits); **in distribution**: n in the
  training support;
* for mod p: 1/p′ (p′ = p / gcd(p, 10^k), k the truncation depth) and the exact predicted accuracy of a model
  that computes the truncated function on our test sequences (``truncation_agreement``, measured on the data).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from limitlab.analysis import PROPORTION, aggregate, tidy
from limitlab.tasks.arithmetic import ArithmeticTask, predicted_accuracy

KEYS = ["experiment", "position"]
COLUMNS = {
    "test_acc": "result.test/accuracy",
    "exact": "result.lengths/accuracy_by_length",
    "truncated": "result.lengths_truncated/accuracy_by_length",
    "agreement": "result.lengths/truncation_agreement_by_length",
    "digits": "result.lengths/digit_accuracy_by_length",
}


def _none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def task_of(row: pd.Series) -> ArithmeticTask:
    """Rebuild a run's task from its flattened ``task.*`` spec columns."""
    fields = {k[len("task."):]: _none(v) for k, v in row.items()
              if isinstance(k, str) and k.startswith("task.") and k != "task.name"}
    return ArithmeticTask(**{k: v for k, v in fields.items() if v is not None or k in ("modulus", "truncate_digits")})


def runs_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per finished arithmetic run: tags, seed, the result vectors and its task (column ``task``)."""
    runs = tidy(raw, COLUMNS)
    if runs.empty:
        return runs
    done = raw[raw["status"] == "done"].reset_index(drop=True)
    runs["task"] = [task_of(r) for _, r in done.iterrows()]
    runs["modulus"] = [t.modulus for t in runs["task"]]
    runs["k"] = [t.truncation for t in runs["task"]]
    return runs


def per_length(runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame: one row per (run, test digit count n) with exact, truncated, agreement and the OOD kind."""
    rows = []
    for rec in runs.to_dict("records"):
        task: ArithmeticTask = rec["task"]
        support, top = set(task.train_digits), task.max_digits
        for n in task.test_digits:
            kind = "in distribution" if n in support else "outward" if n > top else "inward"
            row = {"run_id": rec["run_id"], "experiment": rec["experiment"], "position": rec["position"],
                   "seed": rec["seed"], "digits": n, "kind": kind}
            for name in ("exact", "truncated", "agreement"):
                vec = rec.get(name)
                row[name] = float(vec[n]) if isinstance(vec, list) and n < len(vec) and vec[n] is not None \
                    else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=["run_id", "experiment", "position", "seed", "digits", "kind", "exact",
                                       "truncated", "agreement"])


def length_curves(long: pd.DataFrame) -> list[dict]:
    """Mean over seeds (with a 95% t-interval clipped to [0, 1]; ``n`` = seeds) per (experiment, position, digits)."""
    if long.empty:
        return []
    out = aggregate(long, [*KEYS, "digits"], "exact", bounds=PROPORTION)
    trunc = aggregate(long, [*KEYS, "digits"], "truncated", bounds=PROPORTION)[[*KEYS, "digits", "mean"]]
    agree = long.groupby([*KEYS, "digits"], as_index=False)["agreement"].mean()
    out = out.merge(trunc.rename(columns={"mean": "truncated"}), on=[*KEYS, "digits"], how="left")
    out = out.merge(agree, on=[*KEYS, "digits"], how="left")
    return out.to_dict("records")


def digit_maps(runs: pd.DataFrame) -> list[dict]:
    """Digit-wise accuracy per (experiment, position): rows = test digit counts n, columns = answer slot k
    (mean over seeds); the last slot is END."""
    out = []
    for (exp, pos), g in runs.groupby(KEYS, sort=True):
        task: ArithmeticTask = g["task"].iloc[0]
        k = task.splits()["lengths"].slots()
        mats = []
        for vec in g["digits"]:
            if not isinstance(vec, list):
                continue
            arr = np.array([np.nan if v is None else v for v in vec], dtype=float)
            arr = np.pad(arr, (0, max(0, (max(task.test_digits) + 1) * k - len(arr))), constant_values=np.nan)
            mats.append(arr.reshape(-1, k)[task.test_digits])
        if mats:
            with warnings.catch_warnings():  # a cell no seed scored stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(np.stack(mats), 0)
            out.append({"experiment": exp, "position": pos, "n": list(task.test_digits), "slots": k,
                        "accuracy": mean.tolist(), "seeds": len(mats)})
    return out


def ood_table(long: pd.DataFrame) -> list[dict]:
    """Mean exact match per (experiment, position) in distribution, inward and outward (mean over n, then seeds)."""
    rows = []
    for (exp, pos), g in long.groupby(KEYS, sort=True):
        row: dict[str, Any] = {"experiment": exp, "position": pos, "seeds": g["seed"].nunique()}
        for kind in ("in distribution", "inward", "outward"):
            part = g[g["kind"] == kind]
            row[kind] = part.groupby("seed")["exact"].mean().mean() if len(part) else None
            row[f"{kind} n"] = sorted(part["digits"].unique().tolist())
        out = g[g["kind"] == "outward"]
        row["outward vs truncated"] = out.groupby("seed")["truncated"].mean().mean() if len(out) else None
        rows.append(row)
    return rows


def modulus_table(runs: pd.DataFrame, long: pd.DataFrame) -> list[dict]:
    """Per modular (experiment, position): measured accuracy in and beyond the training length next to 1/p′ and
    the exact truncation prediction for our test sequences."""
    rows = []
    mod = runs[runs["modulus"].notna()]
    for (exp, pos), g in mod.groupby(KEYS, sort=True):
        task: ArithmeticTask = g["task"].iloc[0]
        p, k = int(task.modulus), task.truncation
        sub = long[(long["experiment"] == exp) & (long["position"] == pos)]
        out, ind = sub[sub["kind"] == "outward"], sub[sub["kind"] == "in distribution"]
        rows.append({
            "experiment": exp, "position": pos, "op": task.op, "p": p, "format": task.format, "k": k,
            "p_prime": p // math.gcd(p, 10**k), "one_over_p_prime": predicted_accuracy(p, k),
            "in_distribution": ind.groupby("seed")["exact"].mean().mean() if len(ind) else None,
            "outward": out.groupby("seed")["exact"].mean().mean() if len(out) else None,
            "outward_predicted": out["agreement"].mean() if len(out) else None,
            "outward_vs_truncated": out.groupby("seed")["truncated"].mean().mean() if len(out) else None,
            "outward_n": sorted(out["digits"].unique().tolist()), "seeds": g["seed"].nunique(),
        })
    return rows
