"""The protocol table of the counting report: what the runs did, read from their stored specs, next to what the
paper is reported to use. Nothing is assumed about the runs; items the sources do not state are 'paper unknown'.
:func:`protocol_rows` is the study's ``protocol=`` (the finished runs of the report's context)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from limitlab.analysis.frames import distinct
from limitlab.report.tables import ProtocolTable
from limitlab.studies.counting.study import PAPER_DS, PAPER_MS

__all__ = ["protocol_rows", "protocol_table"]


def base_first(variants: list) -> list:
    """The variants sorted by name, 'base' first."""
    return sorted(variants, key=lambda v: (v != "base", v))


def protocol_rows(ctx: Any) -> list[dict[str, Any]]:
    """The protocol rows of the finished runs in the report's context (none without runs)."""
    raw = ctx.raw
    return protocol_table(raw[raw["status"] == "done"] if "status" in raw else raw)


def _readout(row: pd.Series) -> str:
    cap = row.get("task.max_count")
    top = "n" if cap is None or (isinstance(cap, float) and math.isnan(cap)) else str(int(cap))
    if row.get("task.query", "last") == "appended":
        where = "the appended query token (… SEP q)"
    else:
        where = "the last sequence token (the query is the last token)"
    return f"linear head over count classes 0..{top}, read at {where}"


def _per_run(raw: pd.DataFrame) -> pd.DataFrame:
    """One protocol column per item, one row per run (display values)."""
    def col(name: str) -> pd.Series:
        return raw[name] if name in raw else pd.Series([None] * len(raw), index=raw.index, dtype=object)

    def known(value: Any) -> bool:
        return value is not None and value == value

    n, m = col("task.n"), raw["task.m"]
    return pd.DataFrame({
        "layers": col("model.n_layers"), "heads": col("model.n_heads"), "d": col("model.d_model"), "m": m,
        "n_per_m": [float(a) / b if known(a) else 10.0 for a, b in zip(n, m)],
        "optimizer": col("optim.optimizer"), "lr": col("optim.lr"),
        "schedule": [f"{a}, warmup {w}" for a, w in zip(col("optim.schedule"), col("optim.warmup_steps"))],
        "batch": col("train.batch_size"), "steps": col("train.steps"), "eval": col("train.eval_size"),
        "position": col("model.position"), "norm": col("model.norm"),
        "mlp": [f"{int(w) if known(w) else '4·d'} / {a}" for w, a in zip(col("model.d_mlp"), col("model.activation"))],
        "causal": col("model.causal"), "bos": col("task.bos"),
        "readout": [_readout(r) for _, r in raw.iterrows()],
        "variant": col("tags.variant").map(lambda v: v if known(v) else "untagged"),
    }, index=raw.index)


def protocol_table(raw: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per protocol item: item, paper (value and source tag), ours (the distinct values in the runs, per
    variant where they differ), status ('same' | 'departure' | 'paper unknown'), note. ``raw`` is the store's
    DataFrame restricted to the runs the report uses; nothing here is assumed about what they did."""
    if raw.empty:
        return []
    per_run = _per_run(raw)
    table = ProtocolTable(per_run, group="variant", order=base_first)

    def add(item: str, column: str | None, paper: Any, source: str = "[B]", **kw: Any) -> None:
        table.add(item, column, paper, source, **kw)

    ds, ms = distinct(per_run, "d"), distinct(per_run, "m")
    seeds = raw.assign(variant=per_run["variant"]).groupby(["task.kind", "variant", "model.d_model", "task.m"])[
        "seed"].nunique()
    add("layers", "layers", 2)
    add("heads", "heads", 4)
    add("d (embedding)", "d", "8 … 128, exact grid unknown", known=set(ds) != set(PAPER_DS),
        note=f"study.paper guesses {', '.join(map(str, PAPER_DS))}")
    add("m (vocabulary)", "m", "20 values, 5 … 150", same=set(ms) == set(PAPER_MS))
    add("n per m (n = k·m)", "n_per_m", 10.0)
    add("optimizer", "optimizer", "adam")
    add("learning rate", "lr", 1e-4)
    add("lr schedule", "schedule", "unknown", "", known=False)
    add("batch size", "batch", 16)
    add("steps", "steps", 100_000)
    add("test sequences", "eval", 1600)
    add("seeds per (task, variant, d, m)", None, "unknown", "", known=False, values=sorted(set(seeds.tolist())))
    add("position encoding", "position", "unknown", "", known=False)
    add("LayerNorm", "norm", "unknown", "", known=False)
    add("MLP width / activation", "mlp", "unknown", "", known=False)
    add("causal mask", "causal", "unknown", "", known=False)
    add("BOS token", "bos", "unknown", "", known=False)
    add("query / readout", "readout", "query = last token [R]; readout unknown", "", known=False)
    add("Gemini 1.5 probe (MAE vs vocabulary, binary baseline)", None, "run [B]", known=True, same=False,
        values=["not run: needs a pretrained LM; python -m limitlab.studies.counting.probe --help"])
    return table.rows
