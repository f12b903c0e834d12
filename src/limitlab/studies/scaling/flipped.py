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

from limitlab.claims import DIFFERENCE_OF_PROPORTIONS, AtLeast, AtMost, Claim, Measure
from limitlab.report.figures import COLORS, new_figure
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.report.tables import ProtocolTable
from limitlab.spec import RunSpec
from limitlab.studies.scaling.emergence import model_config
from limitlab.studies.scaling.evals import plot_band, seed_band
from limitlab.tasks.flipped_icl import FLIP_RATES

NAME = "flipped"
SPLITS = tuple(f"flip{round(100 * p)}" for p in FLIP_RATES)
_PAPER = "Wei et al. 2023 (ICL differently)"
_UNTESTED = ("models trained here on a synthetic prior-vs-context task, not pretrained LMs; size = width at a fixed "
             "depth; the smallest and largest widths of the ladder stand for 'small' and 'large'")

OVERRIDE = Claim(
    "scaling.flipped.override", _PAPER, "Sec. 3, Fig. 1 and 3",
    "Large models override semantic priors: with all exemplar labels flipped, accuracy against the prior falls "
    "below chance",
    "accuracy against the prior at 100% flipped, largest width, per seed", AtMost(0.5, strict=True),
    untested=_UNTESTED)
KEEPS = Claim(
    "scaling.flipped.small_keeps_prior", _PAPER, "Sec. 3, Fig. 3",
    "Small models keep their semantic prior: with all exemplar labels flipped, accuracy does not fall below chance",
    "accuracy against the prior at 100% flipped, smallest width, per seed", AtLeast(0.5), untested=_UNTESTED)
BY_SIZE = Claim(
    "scaling.flipped.by_size", _PAPER, "Sec. 3, Fig. 3",
    "Overriding priors with flipped labels grows with model size",
    "paired per-seed difference of accuracy against the prior at 100% flipped, smallest − largest width",
    AtLeast(0.0, strict=True), untested=_UNTESTED)
SUL = Claim(
    "scaling.flipped.sul", _PAPER, "Sec. 4, Fig. 4",
    "With semantically unrelated labels, small models lose more accuracy than large ones",
    "paired per-seed difference of the drop (accuracy with semantic labels, 0% flipped − SUL accuracy), smallest − "
    "largest width", AtLeast(0.0, strict=True), untested=_UNTESTED)
CLAIMS = (OVERRIDE, KEEPS, BY_SIZE, SUL)


def flipped_specs(widths: Sequence[int], steps: int = 3000, batch_size: int = 64, lr: float = 3e-3,
                  seeds: int | Sequence[int] = 3, n_layers: int = 2, eval_size: int = 512,
                  **task: Any) -> list[RunSpec]:
    """A width ladder on the flipped-label ICL task; ``task`` overrides its fields (k, prior_fraction, …)."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return [RunSpec(
        study="scaling", seed=seed, task={"name": "flipped_icl", **task},
        model=model_config(d, n_layers), optim={"optimizer": "adamw", "lr": lr, "weight_decay": 0.01,
                                                "schedule": "cosine", "warmup_steps": min(100, steps // 10)},
        train={"steps": steps, "batch_size": batch_size, "eval_size": eval_size},
        tags={"experiment": NAME, "d": d, "seed": seed},
    ) for d in widths for seed in seed_list]


def smoke() -> list[RunSpec]:
    """Seconds: two widths, 3 seeds, 150 steps."""
    return flipped_specs([8, 16], steps=150, batch_size=32, eval_size=128, n_symbols=16, k=6)


def quick(seeds: int = 3) -> list[RunSpec]:
    """CPU: widths 8, 16, 32, 2 layers, 2,000 steps of batch 64, 3 seeds."""
    return flipped_specs([8, 16, 32], steps=2000, seeds=seeds)


def paper(seeds: int = 3) -> list[RunSpec]:
    """One GPU: widths 8 … 256, 4 layers, 20k steps of batch 256, 64 symbols, 16 exemplars."""
    return flipped_specs([8, 16, 32, 64, 128, 256], steps=20_000, batch_size=256, lr=1e-3, seeds=seeds, n_layers=4,
                         eval_size=2048, n_symbols=64, k=16)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, split) from the runs' final results: d, seed, flip rate (NaN for sul / test) and the
    split's metrics."""
    rows = []
    for r in runs.to_dict("records"):
        for split in (*SPLITS, "sul", "test"):
            if f"result.{split}/prior_accuracy" not in r or r[f"result.{split}/prior_accuracy"] != \
                    r[f"result.{split}/prior_accuracy"]:
                continue
            rows.append({"run_id": r["run_id"], "d": int(r["model.d_model"]), "seed": int(r["seed"]), "split": split,
                         "flip": int(split[4:]) / 100 if split.startswith("flip") else math.nan,
                         **{m: r.get(f"result.{split}/{m}", math.nan)
                            for m in ("prior_accuracy", "context_accuracy", "flip_follow", "invalid_rate")}})
    return pd.DataFrame(rows, columns=["run_id", "d", "seed", "split", "flip", "prior_accuracy", "context_accuracy",
                                       "flip_follow", "invalid_rate"])


def per_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (width, seed): accuracy vs the prior per flip rate, flip-follow at 100%, invalid rate over the
    flip splits, SUL and in-distribution accuracy, and the SUL drop."""
    out = []
    for (d, seed), g in rows.groupby(["d", "seed"]):
        by = g.set_index("split")
        rec: dict[str, Any] = {"d": int(d), "seed": int(seed)}
        for split in SPLITS:
            rec[f"prior_acc_{split}"] = float(by.loc[split, "prior_accuracy"]) if split in by.index else math.nan
        rec["flip_follow_100"] = float(by.loc["flip100", "flip_follow"]) if "flip100" in by.index else math.nan
        rec["invalid_rate"] = float(by.loc[[s for s in SPLITS if s in by.index], "invalid_rate"].mean())
        rec["sul_accuracy"] = float(by.loc["sul", "context_accuracy"]) if "sul" in by.index else math.nan
        rec["test_accuracy"] = float(by.loc["test", "context_accuracy"]) if "test" in by.index else math.nan
        rec["sul_drop"] = rec["prior_acc_flip0"] - rec["sul_accuracy"]
        out.append(rec)
    return pd.DataFrame(out)


def judge(sec: Section, seeds: pd.DataFrame) -> None:
    """The four claims: the smallest and the largest width, per seed (paired by seed for the comparisons)."""
    widths = sorted(seeds["d"].unique()) if not seeds.empty else []
    if len(widths) < 2:
        for claim in CLAIMS:
            sec.not_measured(claim, "fewer than two widths finished")
        return
    small = seeds[seeds["d"] == widths[0]].set_index("seed")
    large = seeds[seeds["d"] == widths[-1]].set_index("seed")
    sec.judge(OVERRIDE, Measure.of(large["prior_acc_flip100"], (0, 1)), note=f"largest width d={widths[-1]}")
    sec.judge(KEEPS, Measure.of(small["prior_acc_flip100"], (0, 1)), note=f"smallest width d={widths[0]}")
    sec.judge(BY_SIZE, Measure.paired(small["prior_acc_flip100"].to_dict(), large["prior_acc_flip100"].to_dict(),
                                      bounds=DIFFERENCE_OF_PROPORTIONS),
              note=f"d={widths[0]} − d={widths[-1]}")
    sec.judge(SUL, Measure.paired(small["sul_drop"].to_dict(), large["sul_drop"].to_dict(), bounds=(-2.0, 2.0)),
              note=f"d={widths[0]} − d={widths[-1]}")


def _figure(rows: pd.DataFrame, seeds: pd.DataFrame) -> Any:
    fig = new_figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    flips = rows[rows["split"].isin(SPLITS)]
    for i, (d, g) in enumerate(flips.groupby("d")):
        band = seed_band(g.assign(flip=100 * g["flip"]), [], "flip", "prior_accuracy")
        plot_band(left, band, "flip", f"d={d} ({g['seed'].nunique()} seeds)", COLORS[i % len(COLORS)])
    left.axhline(0.5, color="grey", ls=":", lw=1)
    left.set(xlabel="% exemplar labels flipped", ylabel="accuracy against the prior", ylim=(-0.02, 1.02),
             title="Flipped labels: a model that follows the context scores 1 − p")
    for i, (m, name) in enumerate((("prior_acc_flip0", "semantic labels, 0% flipped"),
                                   ("sul_accuracy", "semantically unrelated labels"))):
        plot_band(right, seed_band(seeds, [], "d", m), "d", name, COLORS[i])
    right.set(xscale="log", xlabel="width d", ylabel="accuracy", ylim=(-0.02, 1.02),
              title="Semantic vs unrelated labels (SUL), per width")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def analyze(ctx: ReportContext) -> Section:
    """The section: accuracy vs flip rate with seed bands, SUL vs width, the per-width table, four claims."""
    sec = Section(NAME, "In-context learning with flipped labels")
    runs = ctx.tagged(experiment=NAME)
    if len(runs) and "train.steps" in runs and runs["train.steps"].nunique() > 1:  # e.g. smoke and quick in one store
        longest = runs["train.steps"].max()
        sec.paragraph(f"This store holds flipped-label runs of several training budgets; the section analyses the "
                      f"longest ({longest:,} steps) and leaves {int((runs['train.steps'] != longest).sum())} other "
                      "run(s) out.", css="note")
        runs = runs[runs["train.steps"] == longest]
    rows = table(sec.uses(runs))
    if rows.empty:
        sec.paragraph("No finished flipped-label runs in this store.", css="note")
        for claim in CLAIMS:
            sec.not_measured(claim, "no finished flipped-label runs")
        return sec
    t = ctx.store.spec(str(runs["run_id"].iloc[0])).task
    sec.paragraph(f"{t.k} exemplars with distinct symbols (of {t.n_symbols}), {t.n_queries} queries that repeat "
                  f"exemplar symbols; pretraining: {t.prior_fraction:.0%} of sequences labelled by the fixed prior, "
                  f"the rest by a per-sequence map ({t.alt_fraction:.0%} of those with unrelated label tokens). At "
                  "test round(p·k) exemplar labels are flipped; accuracy is against the prior, so a model that follows "
                  "the context scores 1 − p and one that keeps its prior stays at 1. Comparisons pair the smallest "
                  "and the largest width by seed.")
    seeds = per_seed(rows)
    sec.figure("flipped_accuracy.png", _figure(rows, seeds), "Left: accuracy against the prior vs the share of "
               "flipped exemplar labels, per width (mean and 95% band over seeds). Right: accuracy with semantic "
               "labels (0% flipped) and with unrelated labels (SUL) vs width")
    mean = seeds.groupby("d", as_index=False).mean(numeric_only=True).drop(columns=["seed"])
    mean.insert(1, "seeds", seeds.groupby("d")["seed"].nunique().to_numpy())
    sec.table(mean.to_dict("records"), caption="Per width, mean over seeds: accuracy vs the prior per flip rate, "
                                               "flip-follow at 100%, invalid-label rate, SUL and in-distribution "
                                               "accuracy, SUL drop")
    sec.paragraph("The same protocol on a local Hugging Face causal LM: python -m limitlab.studies.scaling.flipped "
                  "PATH (needs the probe extra; nothing is downloaded).")
    sec.results["per_seed"] = seeds.to_dict("records")
    judge(sec, seeds)
    return sec


def protocol(ctx: ReportContext) -> list[dict[str, Any]]:
    """Wei et al. 2023 vs ours, read from the stored specs."""
    runs = ctx.tagged(experiment=NAME)
    if runs.empty:
        return []
    table = ProtocolTable(runs, group=None)
    table.add("models", None, "pretrained LMs (GPT-3, InstructGPT, PaLM 8B–540B)", "[Wei]", same=False,
              values=["transformers trained here on a prior-vs-context task"])
    table.add("exemplars", "task.k", "16 per class", "[Wei]", same=False)
    table.add("flip rates", None, "0, 25, 50, 75, 100%", "[Wei]", same=True,
              values=[f"{100 * p:g}%" for p in FLIP_RATES])
    table.add("width", "model.d_model", "—", known=False)
    return table.rows


EXPERIMENT = Experiment(NAME, "In-context learning with flipped labels", CLAIMS, analyze)


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
