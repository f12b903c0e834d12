"""In-context learning with flipped labels (Wei et al. 2023, "Larger language models do in-context learning
differently"), on models trained here and on a local Hugging Face causal LM.

**Our models** (task ``flipped_icl``): pretraining mixes sequences labelled by a fixed prior map g (learnable in
the weights) with sequences labelled by a per-sequence random map (learnable only in context). At test the
exemplars are labelled by g with 0, 25, 50, 75 or 100% of them flipped (splits ``flip0`` … ``flip100``); the
queries repeat exemplar symbols. Scored per width: accuracy against the prior g (a model that overrides its prior
with the context falls towards 1 - p), the flip-follow rate (share of flipped queries answered with the flipped
label), the invalid-label rate, and accuracy with semantically unrelated labels (split ``sul``). Wei's claim:
small models keep their prior (flat curve), large ones follow the flips (accuracy below chance at 100%).

**A Hugging Face LM** (:class:`HFFlipProbe`, ``transformers`` = the ``probe`` extra, nothing downloaded): the same
protocol on text. Words with a sentiment (the prior) are the inputs; a prompt holds ``k`` exemplars
``Input: <word>\\nOutput: <label>`` with round(p·k) labels flipped, then an unseen query word; the prediction is
the label with the higher log-likelihood (as lm-eval's multiple choice), and a greedy next token that starts no
label counts as invalid. ``labels=("foo", "bar")`` gives the SUL variant. Run it with
``python -m limitlab.studies.scaling.flipped PATH``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limitlab.report.figures import save_figure
from limitlab.spec import RunSpec
from limitlab.studies.scaling.emergence import collect, model_config
from limitlab.tasks.flipped_icl import FLIP_RATES

EXPERIMENT = "flipped"
SPLITS = tuple(f"flip{round(100 * p)}" for p in FLIP_RATES)


def flipped_specs(widths: Sequence[int], steps: int = 3000, batch_size: int = 64, lr: float = 3e-3,
                  seeds: int | Sequence[int] = 1, n_layers: int = 2, eval_size: int = 512,
                  **task: Any) -> list[RunSpec]:
    """A width ladder on the flipped-label ICL task; ``task`` overrides its fields (k, prior_fraction, …)."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = []
    for d in widths:
        for seed in seed_list:
            out.append(RunSpec(
                study="scaling", seed=seed, task={"name": "flipped_icl", **task},
                model=model_config(d, n_layers), optim={"optimizer": "adamw", "lr": lr, "weight_decay": 0.01,
                                                        "schedule": "cosine", "warmup_steps": min(100, steps // 10)},
                train={"steps": steps, "batch_size": batch_size, "eval_size": eval_size},
                tags={"experiment": EXPERIMENT, "d": d, "seed": seed},
            ))
    return out


def smoke() -> list[RunSpec]:
    """Seconds: two widths, 150 steps."""
    return flipped_specs([8, 16], steps=150, batch_size=32, eval_size=128, n_symbols=16, k=6)


def quick(seeds: int = 1) -> list[RunSpec]:
    """CPU: widths 8 … 64, 2 layers, 2,000 steps of batch 64."""
    return flipped_specs([8, 16, 32, 64], steps=2000, seeds=seeds)


def paper(seeds: int = 3) -> list[RunSpec]:
    """One GPU: widths 8 … 256, 4 layers, 20k steps of batch 256, 64 symbols, 16 exemplars."""
    return flipped_specs([8, 16, 32, 64, 128, 256], steps=20_000, batch_size=256, lr=1e-3, seeds=seeds, n_layers=4,
                         eval_size=2048, n_symbols=64, k=16)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def table(specs: Sequence[RunSpec], results: dict[str, dict]) -> pd.DataFrame:
    """One row per (run, split): d, N, seed, flip rate (NaN for sul/test) and the split's metrics."""
    from limitlab.costs import nonembedding_params

    rows = []
    for spec in specs:
        res = results.get(spec.run_id) or {}
        for split in (*SPLITS, "sul", "test"):
            if f"{split}/prior_accuracy" not in res:
                continue
            rows.append({"run_id": spec.run_id, "d": spec.model.d_model, "N": nonembedding_params(spec),
                         "seed": spec.seed, "split": split,
                         "flip": int(split[4:]) / 100 if split.startswith("flip") else math.nan,
                         "prior_accuracy": res[f"{split}/prior_accuracy"],
                         "context_accuracy": res[f"{split}/context_accuracy"],
                         "flip_follow": res.get(f"{split}/flip_follow", math.nan),
                         "invalid_rate": res[f"{split}/invalid_rate"]})
    return pd.DataFrame(rows)


def analyze(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per width (mean over seeds): accuracy vs prior at each flip rate, flip-follow at 100%, invalid, SUL."""
    out = []
    if rows.empty:
        return out
    for d, g in rows.groupby("d"):
        mean = g.groupby("split").mean(numeric_only=True)
        rec: dict[str, Any] = {"d": int(d), "N": int(g["N"].iloc[0]), "seeds": int(g["seed"].nunique())}
        for split in SPLITS:
            rec[f"prior_acc_{split}"] = float(mean.loc[split, "prior_accuracy"]) if split in mean.index else math.nan
        rec["flip_follow_100"] = float(mean.loc["flip100", "flip_follow"]) if "flip100" in mean.index else math.nan
        rec["invalid_rate"] = float(mean.loc[list(set(SPLITS) & set(mean.index)), "invalid_rate"].mean())
        rec["sul_accuracy"] = float(mean.loc["sul", "context_accuracy"]) if "sul" in mean.index else math.nan
        rec["test_accuracy"] = float(mean.loc["test", "context_accuracy"]) if "test" in mean.index else math.nan
        out.append(rec)
    return out


def claim(ladder: list[dict[str, Any]]) -> dict[str, str]:
    row = {"claim": "Larger models override semantic priors with flipped in-context labels; small ones do not",
           "intuition": "ICL with flipped labels: only large models override semantic priors (Wei et al. 2023)",
           "criterion": "accuracy vs the prior at 100% flipped falls below 0.5 for the largest width and stays "
                        "above 0.5 for the smallest; flip-follow rises with width"}
    if len(ladder) < 2:
        return {**row, "ours": "fewer than two widths finished", "verdict": "not measured"}
    small, large = ladder[0], ladder[-1]
    follow = [r["flip_follow_100"] for r in ladder]
    ours = (f"prior acc at 100% flipped: d={small['d']} {small['prior_acc_flip100']:.2f}, d={large['d']} "
            f"{large['prior_acc_flip100']:.2f}; flip-follow over widths " + ", ".join(f"{x:.2f}" for x in follow))
    ok = (large["prior_acc_flip100"] < 0.5 < small["prior_acc_flip100"]) and follow[-1] > follow[0]
    return {**row, "ours": ours, "verdict": "agree" if ok else "disagree"}


def claim_sul(ladder: list[dict[str, Any]]) -> dict[str, str]:
    row = {"claim": "With semantically unrelated labels, small models lose more accuracy than large ones",
           "intuition": "semantically unrelated labels: small models lean on priors more (Wei et al. 2023)",
           "criterion": "SUL accuracy rises with width and the drop from flip0 to SUL shrinks"}
    if len(ladder) < 2:
        return {**row, "ours": "fewer than two widths finished", "verdict": "not measured"}
    drops = [r["prior_acc_flip0"] - r["sul_accuracy"] for r in ladder]
    ours = ", ".join(f"d={r['d']}: SUL {r['sul_accuracy']:.2f} (drop {dr:+.2f})" for r, dr in zip(ladder, drops))
    ok = ladder[-1]["sul_accuracy"] > ladder[0]["sul_accuracy"] and drops[-1] < drops[0]
    return {**row, "ours": ours, "verdict": "agree" if ok else "disagree"}


def figure(rows: pd.DataFrame, path: Path) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flips = rows[rows["split"].isin(SPLITS)] if not rows.empty else rows
    if flips.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for d, g in flips.groupby("d"):
        m = g.groupby("flip", as_index=False).mean(numeric_only=True)
        axes[0].plot(100 * m["flip"], m["prior_accuracy"], marker="o", label=f"d={d}")
        axes[1].plot(100 * m["flip"], m["invalid_rate"], marker="o", label=f"d={d}")
    axes[0].axhline(0.5, color="grey", ls=":", lw=1)
    axes[0].set(xlabel="% exemplar labels flipped", ylabel="accuracy vs the prior", ylim=(-0.02, 1.02),
                title="Flipped labels: accuracy against the prior")
    axes[1].set(xlabel="% exemplar labels flipped", ylabel="invalid-label rate", ylim=(-0.02, 1.02),
                title="Answers outside the label set")
    for ax in axes:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def report_section(runs: pd.DataFrame, out_dir: str | Path) -> tuple[dict, dict, list, Any]:
    """The frame's contract (see :mod:`limitlab.studies.scaling`): (results, figures, claims, render)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs, results, _ = collect(runs)
    rows = table(specs, results)
    ladder = analyze(rows)
    figures = {}
    if figure(rows, out_dir / "flipped_accuracy.png"):
        figures["accuracy"] = "flipped_accuracy.png"

    def render(page) -> None:
        if not specs:
            page.paragraph("No finished flipped-label runs in this store.", css="note")
            return
        t = specs[0].task
        page.paragraph(f"{t.k} exemplars with distinct symbols (of {t.n_symbols}), {t.n_queries} queries that repeat "
                       f"exemplar symbols; pretraining: {t.prior_fraction:.0%} of sequences labelled by the fixed "
                       f"prior, the rest by a per-sequence map ({t.alt_fraction:.0%} of those with unrelated label "
                       "tokens). At test round(p·k) exemplar labels are flipped; accuracy is against the prior, so a "
                       "model that follows the context scores 1 - p and one that keeps its prior stays at 1.")
        if "accuracy" in figures:
            page.figure(figures["accuracy"], "Accuracy against the prior (left) and invalid-label rate (right) vs "
                                             "the share of flipped exemplar labels, per width")
        page.table(ladder, caption="Per width (mean over seeds): accuracy vs the prior per flip rate, flip-follow "
                                   "at 100%, invalid-label rate, SUL and in-distribution accuracy")
        page.paragraph("The same protocol on a local Hugging Face causal LM: python -m "
                       "limitlab.studies.scaling.flipped PATH (needs the probe extra; nothing is downloaded).")

    return {"ladder": ladder}, figures, [claim(ladder), claim_sul(ladder)], render


# ---- the same protocol on a Hugging Face causal LM ---------------------------------------------------------------

POSITIVE = ("good", "great", "happy", "wonderful", "excellent", "lovely", "pleasant", "delightful", "joyful",
            "superb", "brilliant", "cheerful", "fantastic", "kind", "beautiful", "marvelous")
NEGATIVE = ("bad", "awful", "sad", "terrible", "horrible", "nasty", "unpleasant", "dreadful", "miserable",
            "poor", "ugly", "gloomy", "cruel", "disgusting", "painful", "rotten")
TEMPLATE = "Input: {x}\nOutput: {y}\n"


def flip_prompts(k: int = 8, flip: float = 0.0, n_prompts: int = 40, labels: Sequence[str] = ("positive", "negative"),
                 seed: int = 0) -> list[dict[str, Any]]:
    """Prompts of k exemplars (k/2 per class) with round(flip·k) labels flipped, and an unseen query word.

    Each item: ``prompt`` (ending in 'Output:'), ``truth`` (label index by the word's sentiment), ``labels``.
    """
    if not 0 <= flip <= 1:
        raise ValueError(f"flip={flip} is not a share; allowed: 0 … 1")
    if k < 2 or k % 2 or k // 2 >= len(POSITIVE):
        raise ValueError(f"k={k}: allowed even k from 2 to {2 * (len(POSITIVE) - 1)}")
    if len(labels) != 2:
        raise ValueError(f"labels={labels!r}: give two labels (for the positive and the negative class)")
    rng = np.random.default_rng(seed)
    words = (POSITIVE, NEGATIVE)
    items = []
    for _ in range(n_prompts):
        truth = int(rng.integers(2))
        picks = [rng.permutation(len(w))[: k // 2 + 1] for w in words]
        query = words[truth][picks[truth][-1]]  # never among the exemplars
        ex = [(words[c][i], c) for c in (0, 1) for i in picks[c][: k // 2]]
        order = rng.permutation(k)
        ex = [ex[i] for i in order]
        flipped = set(rng.permutation(k)[: round(flip * k)].tolist())
        text = "".join(TEMPLATE.format(x=x, y=labels[1 - c if i in flipped else c]) for i, (x, c) in enumerate(ex))
        items.append({"prompt": text + f"Input: {query}\nOutput:", "truth": truth, "labels": tuple(labels)})
    return items


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise ImportError("the Hugging Face probe needs transformers: pip install 'limitlab[probe]' "
                          f"(import failed: {err})") from None
    return transformers


class HFFlipProbe:
    """Scores flip prompts with a local causal LM (a folder with config, weights and tokenizer; never downloads)."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no model folder at {path}; the probe never downloads, give a local path")
        transformers = _require_transformers()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).to(device)
        self.model.eval()
        self.device = device

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def score(self, item: dict[str, Any]) -> tuple[int, bool]:
        """(index of the label with the higher total log-likelihood, whether the greedy next token starts none)."""
        import torch

        prompt = self._ids(item["prompt"])
        conts = [self._ids(item["prompt"] + " " + lab)[len(prompt):] for lab in item["labels"]]
        lls = []
        with torch.no_grad():
            for cont in conts:
                ids = torch.tensor([prompt + cont], device=self.device)
                logp = self.model(ids).logits[0, :-1].float().log_softmax(-1)  # (T-1, V)
                tail = logp[len(prompt) - 1:].gather(1, ids[0, len(prompt):, None])
                lls.append(float(tail.sum()))
            nxt = int(self.model(torch.tensor([prompt], device=self.device)).logits[0, -1].argmax())
        invalid = all(not cont or cont[0] != nxt for cont in conts)
        return int(np.argmax(lls)), invalid


def run_hf_probe(probe: HFFlipProbe, k: int = 8, n_prompts: int = 40, flips: Sequence[float] = FLIP_RATES,
                 label_sets: dict[str, Sequence[str]] | None = None, seed: int = 0) -> pd.DataFrame:
    """Accuracy vs ground truth, flip-follow and invalid-label rate per (label set, flip rate)."""
    label_sets = label_sets or {"semantic": ("positive", "negative"), "sul": ("foo", "bar")}
    rows = []
    for name, labels in label_sets.items():
        for flip in flips:
            items = flip_prompts(k, flip, n_prompts, labels, seed)
            preds = [probe.score(it) for it in items]
            acc = float(np.mean([p == it["truth"] for (p, _), it in zip(preds, items)]))
            rows.append({"labels": name, "flip": flip, "prompts": len(items), "accuracy": acc,
                         "invalid_rate": float(np.mean([inv for _, inv in preds]))})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Flipped-label ICL probe of a local Hugging Face causal LM")
    parser.add_argument("path", help="local model folder (config, weights, tokenizer)")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        df = run_hf_probe(HFFlipProbe(args.path, args.device), k=args.k, n_prompts=args.prompts)
    except (ImportError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(df.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
