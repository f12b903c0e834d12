"""The CoPE study's protocol table: the paper's setup beside ours, per task, read from the stored specs.

``protocol(ctx)`` gives one row per item and task (layers, width, steps, the task's sizes, the encodings, seeds)
for the tasks the store's finished runs cover; 'paper unknown' where the sources do not say (then ours is our
choice). Source tags as in reference/cope.md: [V] checked in a source, [R] a secondary write-up, [I] inferred.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from limitlab.report.tables import ProtocolTable

__all__ = ["protocol"]

PAPER_PROTOCOL: dict[str, dict[str, tuple[Any, str]]] = {  # item -> (paper value, source tag); absent = unknown
    "flip_flop": {"layers": (4, "[R]"), "width": (256, "[R]"), "heads": (4, "[R]"), "steps": (10_000, "[R]"),
                  "batch size": (16, "[R] Liu's recipe"), "learning rate": (3e-4, "[R] Liu's recipe")},
    "selective_copy": {"layers": (4, "[R]"), "width": (256, "[R]"), "heads": (4, "[R]")},
    "variable_counting": {"layers": (4, "[V] run.sh"), "width": (256, "[V] run.sh"), "heads": (4, "[V] run.sh"),
                          "steps": (15_700, "[V] run.sh"), "batch size": (64, "[V] run.sh"),
                          "learning rate": (7e-5, "[V] run.sh")},
    "text_lm": {"layers": (12, "[I] GPT-2 small"), "width": (768, "[I]"), "heads": (12, "[I]")},
}
PAPER_PE = {"flip_flop": {"absolute", "rope", "cope"}, "selective_copy": {"absolute", "rope", "cope"},
            "variable_counting": {"absolute", "relative", "cope"},
            "text_lm": {"absolute", "relative", "rope", "cope", "cope+relative", "cope+rope"}}
COLUMNS = {"layers": "model.n_layers", "width": "model.d_model", "heads": "model.n_heads", "steps": "train.steps",
           "batch size": "train.batch_size", "learning rate": "optim.lr"}


def protocol(ctx: Any) -> list[dict[str, Any]]:
    """Paper vs ours, read from the stored specs of the finished runs (``ctx.runs``), per task."""
    rows: list[dict[str, Any]] = []
    used = ctx.runs
    if used.empty or "tags.task" not in used:
        return rows
    for task, part in used.groupby("tags.task"):
        proto = ProtocolTable(part, group=None)
        pre = f"{task}: "
        known = PAPER_PROTOCOL.get(task, {})
        for item, col in COLUMNS.items():
            value, source = known.get(item, ("unknown", ""))
            proto.add(pre + item, col, value, source, known=item in known)
        paper_pe = PAPER_PE.get(task, set())
        proto.add(pre + "encodings", "tags.pe", ", ".join(sorted(paper_pe)), "[V]",
                  same=paper_pe <= set(part["tags.pe"]), note="ours: the encodings run in this store")
        n_seeds = part["seed"].nunique()
        proto.add(pre + "seeds", None, "mean of 3", "[V] Table 3", same=n_seeds >= 3, values=[f"{n_seeds} per cell"])
        if task == "flip_flop":
            proto.add(pre + "length", "task.length", 512, "[V]")
            proto.add(pre + "train p_i", "task.p_i", 0.8, "[V]")
        elif task == "selective_copy":
            proto.add(pre + "blanks (in-dist)", "task.blanks", 256, "[R]")
            proto.add(pre + "data tokens", "task.n_tokens", "16 (Mamba's)", "[R]", known=False)
            proto.add(pre + "vocabulary", "task.vocab", "16 (Mamba's)", "[R]", known=False)
        elif task == "variable_counting":
            proto.add(pre + "variables", "task.n_vars", "1, 3, 5", "[V] Table 3",
                      same={1, 3, 5} <= set(part["task.n_vars"]))
            proto.add(pre + "statements", "task.max_statements", 512, "[V]")
            proto.add(pre + "truncation", None, "left-truncated at 512 tokens (~14% of samples)", "[V]", same=False,
                      values=["none: sequences sized to the longest program, right-padded"])
            proto.add(pre + "training data", None, "10k fixed samples, 100 epochs", "[V]", same=False,
                      values=["fresh samples every step"])
        elif task == "text_lm":
            proto.add(pre + "context T", "task.length", 1024, "[R]", note="ours in bytes, the paper's in BPE tokens")
            proto.add(pre + "tokenizer", None, "GPT-2 BPE", "[I]", same=False, values=["bytes (256 ids)"])
            proto.add(pre + "corpus", "task.corpus", "Wikitext-103; code corpus unknown", "[V]", same=False)
        p_max = sorted({int(x) for x in part.get("tags.p_max", pd.Series(dtype=float)).dropna()})
        if p_max:
            proto.add(pre + "CoPE p_max", None, 64 if task == "text_lm" else "unknown (RAM default: block + 1)",
                      "[R]" if task == "text_lm" else "", known=task == "text_lm", values=p_max)
        rows.extend(proto.rows)
    return rows
