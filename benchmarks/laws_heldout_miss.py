"""Why does L(N, D) miss the held-out run of the laws ladder? Fit form, ladder, or too few steps at the small end.

Reads a store with the ``laws-quick`` runs (3 seeds) and, per corpus and seed, predicts the held-out run (the
cell with the most compute) from different fit sets and forms, printing the relative error (measured −
predicted)/measured:

* **form** — on the claim's own fit set (C ≤ C_max/100): the Chinchilla form E + A/N^α + B/D^β (the claim's),
  the same without E (4 parameters), and Kaplan's joint form [(N_c/N)^(α_N/α_D) + D_c/D]^α_D;
* **ladder** — the Chinchilla form on C ≤ C_max/30, C_max/10 and every cell but the held-out one;
* **steps at the small end** — the same sets without the 20-step runs (and without 20 and 60);
* **longer small runs** — with ``--extra STORE``: the claim's fit set plus the runs of that store (small models
  trained longer, e.g. ``--set study.steps=[1620]`` on the small sizes) that fall under the cut.

    PYTHONPATH=src python benchmarks/laws_heldout_miss.py STORE [--extra STORE2] [--corpus stdlib]

A row per (variant, seed) and a summary (mean and 95% t-interval over seeds) per variant.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import optimize

from limitlab.analysis.frames import done
from limitlab.analysis.intervals import mean_ci
from limitlab.store import RunStore
from limitlab.studies.scaling.fit import fit_chinchilla
from limitlab.studies.scaling.laws_report import cells


def load(root: str) -> pd.DataFrame:
    runs = done(RunStore(root).to_dataframe("scaling"))
    return cells(runs[runs["tags.experiment"] == "laws"])


def chinchilla(fit_cells: pd.DataFrame, N: float, D: float) -> float:
    return float(fit_chinchilla(fit_cells["N"], fit_cells["D"], fit_cells["loss"]).predict(N, D)[0])


def _least_squares(model: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], starts: list[list[float]],
                   c: pd.DataFrame) -> np.ndarray:
    """Parameters minimising the squared error of log L over ``c`` (best of ``starts``)."""
    logN, logD, y = np.log(c["N"].to_numpy()), np.log(c["D"].to_numpy()), np.log(c["loss"].to_numpy())
    best, best_cost = None, math.inf
    for x0 in starts:
        with np.errstate(all="ignore"):
            res = optimize.least_squares(lambda p: model(p, logN, logD) - y, x0, method="lm", max_nfev=4000)
        if np.isfinite(res.cost) and res.cost < best_cost:
            best, best_cost = res.x, res.cost
    return best


def no_floor(fit_cells: pd.DataFrame, N: float, D: float) -> float:
    """A/N^α + B/D^β (E = 0): log L = LSE(a − α log N, b − β log D)."""
    def model(p: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
        return np.logaddexp(p[0] - p[1] * logN, p[2] - p[3] * logD)

    starts = [[a, al, b, be] for a in (2, 5, 10) for al in (0.2, 0.5, 1.0) for b in (2, 5, 10) for be in (0.2, 0.5)]
    p = _least_squares(model, starts, fit_cells)
    return float(np.exp(model(p, np.log([N]), np.log([D])))[0])


def kaplan(fit_cells: pd.DataFrame, N: float, D: float) -> float:
    """Kaplan et al.'s joint form: log L = α_D · log((N_c/N)^(α_N/α_D) + D_c/D), with r = α_N/α_D."""
    def model(p: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
        log_nc, log_dc, r, a_d = p
        return a_d * np.logaddexp(r * (log_nc - logN), log_dc - logD)

    starts = [[nc, dc, r, a] for nc in (10, 20, 30) for dc in (10, 15, 20) for r in (0.5, 1.0, 2.0)
              for a in (0.05, 0.1, 0.3)]
    p = _least_squares(model, starts, fit_cells)
    return float(np.exp(model(p, np.log([N]), np.log([D])))[0])


def variants(c: pd.DataFrame, extra: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, Callable]]:
    held = c.loc[c["C"].idxmax()]
    rest = c.drop(index=held.name)
    cut = lambda ratio: rest[rest["C"] <= held["C"] / ratio]  # noqa: E731
    out = {
        "form: Chinchilla, C ≤ C_max/100 (the claim)": (cut(100), chinchilla),
        "form: no E (A/N^α + B/D^β), C ≤ C_max/100": (cut(100), no_floor),
        "form: Kaplan joint, C ≤ C_max/100": (cut(100), kaplan),
        "ladder: Chinchilla, C ≤ C_max/30": (cut(30), chinchilla),
        "ladder: Chinchilla, C ≤ C_max/10": (cut(10), chinchilla),
        "ladder: Chinchilla, every cell but the held-out": (rest, chinchilla),
        "steps: C ≤ C_max/10 without 20-step runs": (cut(10).query("steps > 20"), chinchilla),
        "steps: every cell but held-out, without 20-step runs": (rest.query("steps > 20"), chinchilla),
        "steps: every cell but held-out, without 20- and 60-step runs": (rest.query("steps > 60"), chinchilla),
    }
    if len(extra):
        more = extra[extra["C"] <= held["C"] / 100]
        out["longer small runs: C ≤ C_max/100 plus the extra store's cells"] = (
            pd.concat([cut(100), more]), chinchilla)
        out["longer small runs, Kaplan joint form"] = (pd.concat([cut(100), more]), kaplan)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--extra", default=None, help="a store with more laws runs (small models trained longer)")
    ap.add_argument("--corpus", default="stdlib", help="tags.corpus value (stdlib, markov-order1)")
    args = ap.parse_args()
    base = load(args.store)
    base = base[base["corpus"] == args.corpus]
    extra = load(args.extra) if args.extra else pd.DataFrame(columns=base.columns)
    extra = extra[extra["corpus"] == args.corpus]
    rows = []
    for seed, c in base.groupby("seed"):
        held = c.loc[c["C"].idxmax()]
        for name, (fit_cells, law) in variants(c.reset_index(drop=True),
                                              extra[extra["seed"] == seed]).items():
            try:
                pred = law(fit_cells, held["N"], held["D"])
            except (ValueError, TypeError) as err:  # too few cells for the form
                pred = math.nan
                print(f"seed {seed}, {name}: {err}")
            sizes = sorted(fit_cells["size"].unique())
            rows.append({"variant": name, "seed": seed, "cells": len(fit_cells),
                         "sizes": f"{sizes[0]}–{sizes[-1]}" if sizes else "—",
                         "steps": "/".join(str(s) for s in sorted(fit_cells["steps"].unique())),
                         "measured": held["loss"], "predicted": pred,
                         "rel_error": (held["loss"] - pred) / held["loss"]})
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200, "display.max_colwidth", 70)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    for name, g in table.groupby("variant", sort=False):
        iv = mean_ci(g["rel_error"].to_numpy(dtype=float))
        print(f"| {name} | {g['cells'].iloc[0]}–{g['cells'].iloc[-1]} | {g['steps'].iloc[0]} | "
              f"{iv.mean:+.1%} [{iv.low:+.1%}, {iv.high:+.1%}] | "
              + " / ".join(f"{v:+.1%}" for v in g["rel_error"]) + " |")


if __name__ == "__main__":
    main()
