"""Counting probe of a trained or pretrained model, after the paper's Gemini experiment (counting.md §4).

For each vocabulary size m, ``n_prompts`` sequences of n symbols are drawn i.i.d. uniform over m symbols; the
query is the **last** symbol and the target its count. The **binary baseline** keeps the length, the query and
the query's positions (so the same target count) and fills every other position with one second symbol
(the symbol after the query in the vocabulary). Reported per (m, condition): the mean absolute error of the
predicted count, its standard error, the exact-match rate, and the share of answers that could not be parsed
(left out of the MAE). Example prompt pair, m = 3, n = 6, symbols a b c::

    vocab    b a c a c a      query a, count 3
    binary   b a b a b a      same positions of a, the rest b

Two back-ends (``Counter``):

* :class:`LimitlabCounter` — a :class:`~limitlab.nn.model.StackedTransformer` trained on (or wired for) the QC
  task; the prediction is the argmax count class at the read-out, in the task's own token format.
* :class:`HFCounter` — any local Hugging Face causal LM (a folder with config, weights and tokenizer); the prompt
  is ``'a b a c … How many times does "a" appear? Answer:'`` and the answer is the first integer in the greedily
  decoded continuation. ``transformers`` is optional (``pip install transformers``); nothing is downloaded.

>>> from limitlab.studies.counting.constructions import histogram_model
>>> model, task = histogram_model(d_model=8, m=6, n=24)
>>> df = run_probe(LimitlabCounter(model, task), vocab_sizes=[2, 6], n=24, n_prompts=8)
>>> df[["m", "condition", "mae"]].to_dict("records")
[{'m': 2, 'condition': 'vocab', 'mae': 0.0}, {'m': 2, 'condition': 'binary', 'mae': 0.0}, \
{'m': 6, 'condition': 'vocab', 'mae': 0.0}, {'m': 6, 'condition': 'binary', 'mae': 0.0}]
"""

from __future__ import annotations

import argparse
import math
import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from limitlab.nn.model import StackedTransformer
from limitlab.nn.positions import declaration
from limitlab.tasks.counting import BOS, FIRST_SYMBOL, SEP, CountingTask

__all__ = [
    "Counter",
    "HFCounter",
    "LimitlabCounter",
    "ProbeItem",
    "build_prompt",
    "default_words",
    "main",
    "parse_count",
    "plot_probe",
    "probe_items",
    "probe_table",
    "run_probe",
]

PROMPT = '{sequence}\nHow many times does "{query}" appear? Answer:'


@dataclass(frozen=True)
class ProbeItem:
    """One prompt: symbol indices 0..m-1 (length n); the query is the last symbol; target = its count."""

    symbols: tuple[int, ...]
    query: int
    target: int
    vocab: int  # m of the draw (the binary baseline keeps the m it was derived from)
    condition: str  # 'vocab' | 'binary'


def probe_items(vocab_sizes: Sequence[int], n: int, n_prompts: int = 50, seed: int = 0) -> list[ProbeItem]:
    """Pairs of (vocab, binary) items for each m, deterministic in (seed, m, prompt index).

    >>> items = probe_items([3], n=6, n_prompts=1)
    >>> [(i.condition, i.symbols[-1] == i.query, len(set(i.symbols)) <= 3) for i in items]
    [('vocab', True, True), ('binary', True, True)]
    >>> items[0].target == items[1].target == items[0].symbols.count(items[0].query)
    True
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    items = []
    for m in vocab_sizes:
        if m < 2:
            raise ValueError(f"vocabulary sizes must be >= 2 (the binary baseline needs two symbols), got {m}")
        for i in range(n_prompts):
            rng = np.random.default_rng([seed, int(m), i])
            seq = rng.integers(0, m, size=n)
            q = int(seq[-1])
            hits = seq == q
            filler = (q + 1) % m
            binary = np.where(hits, q, filler)
            target = int(hits.sum())
            items.append(ProbeItem(tuple(int(s) for s in seq), q, target, int(m), "vocab"))
            items.append(ProbeItem(tuple(int(s) for s in binary), q, target, int(m), "binary"))
    return items


class Counter(Protocol):
    """A back-end: predicted counts for items (None where no answer could be read)."""

    name: str

    def count(self, items: Sequence[ProbeItem]) -> list[int | None]: ...


# ----------------------------------------------------------------------------------------------------------------
# (a) limitlab models


class LimitlabCounter:
    """Counts with model ``index`` of a StackedTransformer for a QC :class:`CountingTask` (query = last token or
    appended, with or without BOS — the task's own format). Vocabulary sizes up to ``task.m``.

    >>> from limitlab.studies.counting.constructions import histogram_model
    >>> model, task = histogram_model(d_model=8, m=5, n=20)
    >>> LimitlabCounter(model, task).count(probe_items([5], n=20, n_prompts=1))[0] is not None
    True
    """

    def __init__(self, model: StackedTransformer, task: CountingTask, index: int = 0, batch_size: int = 128,
                 name: str | None = None) -> None:
        if not isinstance(task, CountingTask) or task.kind != "qc":
            raise ValueError(f"the probe counts a queried token: it needs a QC CountingTask, got {task!r}")
        if not 0 <= index < model.n_models:
            raise ValueError(f"index {index} out of range for a stack of {model.n_models} model(s)")
        self.model, self.task, self.index, self.batch_size = model, task, index, batch_size
        self.name = name or f"limitlab d={model.cfg.d_model} m={task.m} n={task.length}"

    def _inputs(self, item: ProbeItem) -> list[int]:
        if item.vocab > self.task.m or max(item.symbols) >= self.task.m:
            raise ValueError(f"vocabulary size {item.vocab} is larger than the model's m={self.task.m}")
        ids = [FIRST_SYMBOL + s for s in item.symbols]
        if self.task.query == "appended":
            ids += [SEP, FIRST_SYMBOL + item.query]
        return ([BOS] if self.task.bos else []) + ids

    @torch.no_grad()
    def count(self, items: Sequence[ProbeItem]) -> list[int | None]:
        """Argmax count class at the last position of each item (all items of one call share a length)."""
        if not items:
            return []
        rows = [self._inputs(i) for i in items]
        if len({len(r) for r in rows}) > 1:
            raise ValueError("items of one call must share a length")
        length = len(rows[0])
        if length > self.model.cfg.max_len and declaration(self.model.cfg.position).length_limited:
            raise ValueError(f"sequences of {length} tokens exceed the model's max_len={self.model.cfg.max_len}")
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out: list[int | None] = []
        for start in range(0, len(rows), self.batch_size):
            x = torch.tensor(rows[start:start + self.batch_size], device=device)  # (B, T)
            x = x.unsqueeze(0).expand(self.model.n_models, -1, -1)  # (M, B, T): every model sees the batch
            readout = torch.full((*x.shape[:2], 1), length - 1, device=device)  # (M, B, 1)
            logits = self.model(x, readout)[self.index, :, 0]  # (B, C)
            out.extend(int(c) for c in logits.argmax(-1).tolist())
        self.model.train(was_training)
        return out


# ----------------------------------------------------------------------------------------------------------------
# (b) Hugging Face causal LMs


def default_words(count: int) -> list[str]:
    """Symbol words: a..z, A..Z, then two-letter lowercase pairs (aa, ab, …).

    >>> default_words(3), default_words(54)[-2:]
    (['a', 'b', 'c'], ['aa', 'ab'])
    """
    pool = list(string.ascii_lowercase) + list(string.ascii_uppercase)
    pool += [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase]
    if count > len(pool):
        raise ValueError(f"at most {len(pool)} default symbols; pass symbols=[...]")
    return pool[:count]


def build_prompt(words: Sequence[str], query: str, template: str = PROMPT) -> str:
    """The prompt for a sequence of symbol words.

    >>> build_prompt(["a", "b", "a"], "a")
    'a b a\\nHow many times does "a" appear? Answer:'
    """
    return template.format(sequence=" ".join(words), query=query)


def parse_count(text: str) -> int | None:
    """The first integer in a decoded answer, or None.

    >>> parse_count(" 12 times"), parse_count("twelve"), parse_count("1,200"), parse_count("3, 4")
    (12, None, 1200, 3)
    """
    match = re.search(r"\d+(?:,\d{3})*", text)
    return None if match is None else int(match.group().replace(",", ""))


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError("the Hugging Face probe needs the optional package 'transformers' "
                          "(pip install transformers)") from None
    return transformers


class HFCounter:
    """Greedy-decoding counter for a local Hugging Face causal LM folder (no download: ``local_files_only``).

    >>> counter = HFCounter("/models/my-lm", max_new_tokens=4)                  # doctest: +SKIP
    >>> run_probe(counter, vocab_sizes=[2, 5, 10, 20], n=50, n_prompts=100)    # doctest: +SKIP
    """

    def __init__(self, path: str | Path, device: str = "cpu", max_new_tokens: int = 6,
                 symbols: Sequence[str] | None = None, template: str = PROMPT, name: str | None = None) -> None:
        transformers = _require_transformers()
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no local model folder at {path} (the probe never downloads models)")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        self.model.to(device).eval()
        self.device, self.max_new_tokens, self.template = device, max_new_tokens, template
        self.symbols = list(symbols) if symbols is not None else None
        self.name = name or f"hf:{path.name}"
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (
            self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0)

    def prompt(self, item: ProbeItem) -> str:
        words = self.symbols if self.symbols is not None else default_words(max(item.vocab, max(item.symbols) + 1))
        if max(item.symbols) >= len(words):
            raise ValueError(f"{len(words)} symbols given, vocabulary size {item.vocab} needs more")
        return build_prompt([words[s] for s in item.symbols], words[item.query], self.template)

    @torch.no_grad()
    def count(self, items: Sequence[ProbeItem]) -> list[int | None]:
        """One greedy generation per item (batch of one: no padding side effects)."""
        out: list[int | None] = []
        for item in items:
            enc = self.tokenizer(self.prompt(item), return_tensors="pt").to(self.device)
            ids = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.pad_id)
            text = self.tokenizer.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.append(parse_count(text))
        return out


# ----------------------------------------------------------------------------------------------------------------
# running and summarising


def run_probe(counter: Counter, vocab_sizes: Sequence[int], n: int, n_prompts: int = 50, seed: int = 0
              ) -> pd.DataFrame:
    """MAE per (vocabulary size, condition). Columns: model, m, condition, n, prompts, mean_target, mae,
    mae_sem, exact, unparsed (share of answers without an integer; they are left out of mae/exact)."""
    items = probe_items(vocab_sizes, n, n_prompts, seed)
    preds = counter.count(items)
    frame = pd.DataFrame({"m": [i.vocab for i in items], "condition": [i.condition for i in items],
                          "target": [i.target for i in items],
                          "pred": [np.nan if p is None else float(p) for p in preds]})
    rows = []
    for (m, cond), g in frame.groupby(["m", "condition"], sort=False):
        ok = g[g["pred"].notna()]
        err = (ok["pred"] - ok["target"]).abs()
        rows.append({"model": counter.name, "m": int(m), "condition": cond, "n": n, "prompts": len(g),
                     "mean_target": float(g["target"].mean()),
                     "mae": float(err.mean()) if len(ok) else math.nan,
                     "mae_sem": float(err.std(ddof=1) / math.sqrt(len(err))) if len(ok) > 1 else math.nan,
                     "exact": float((err == 0).mean()) if len(ok) else math.nan,
                     "unparsed": 1.0 - len(ok) / len(g)})
    return pd.DataFrame(rows)


def probe_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per m: mae_vocab, mae_binary and gap = mae_vocab − mae_binary.

    >>> probe_table(pd.DataFrame({"m": [2, 2], "condition": ["vocab", "binary"], "mae": [1.5, 0.5]}))
    ... # doctest: +NORMALIZE_WHITESPACE
       m  mae_vocab  mae_binary  gap
    0  2        1.5         0.5  1.0
    """
    wide = df.pivot_table(index="m", columns="condition", values="mae", aggfunc="mean")
    out = pd.DataFrame({"m": wide.index, "mae_vocab": wide.get("vocab"), "mae_binary": wide.get("binary")})
    out["gap"] = out["mae_vocab"] - out["mae_binary"]
    return out.reset_index(drop=True)


def plot_probe(df: pd.DataFrame, path: str | Path) -> Path:
    """MAE vs vocabulary size, one line per (model, condition), with ± standard-error bars; a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4), dpi=110, layout="constrained")
    ax = fig.subplots()
    for (model, cond), g in df.groupby(["model", "condition"], sort=False):
        g = g.sort_values("m")
        ax.errorbar(g["m"], g["mae"], yerr=g["mae_sem"].fillna(0), marker="o" if cond == "vocab" else "s",
                    ls="-" if cond == "vocab" else "--", capsize=3, label=f"{model}: {cond}")
    ax.set_xscale("log")
    ax.set_xlabel("vocabulary size m")
    ax.set_ylabel("mean absolute error of the count")
    ax.set_title("Counting probe: vocabulary vs binary baseline (same length, same count)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m limitlab.studies.counting.probe MODEL_DIR --vocab 2,5,10,20 --n 50 --prompts 50 --out DIR``."""
    parser = argparse.ArgumentParser(prog="python -m limitlab.studies.counting.probe",
                                     description="counting probe of a local Hugging Face causal LM")
    parser.add_argument("model", help="local model folder (never downloaded)")
    parser.add_argument("--vocab", default="2,5,10,20,50", help="comma-separated vocabulary sizes")
    parser.add_argument("--n", type=int, default=50, help="sequence length in symbols")
    parser.add_argument("--prompts", type=int, default=50, help="prompts per vocabulary size and condition")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for probe.csv and probe.png")
    args = parser.parse_args(argv)
    try:
        counter = HFCounter(args.model, device=args.device)
        df = run_probe(counter, [int(v) for v in args.vocab.split(",")], args.n, args.prompts, args.seed)
    except (ImportError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(df.to_string(index=False))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "probe.csv", index=False)
        plot_probe(df, out / "probe.png")
        print(f"written: {out / 'probe.csv'}, {out / 'probe.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
