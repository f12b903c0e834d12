"""Time to think: addition written plain, reversed, or with a scratchpad, at equal compute (Nye et al. 2021;
Lee et al. 2023).

Every run of a (width, seed) gets the same number of **tokens processed** (``token_budget``); a format with longer
sequences therefore sees fewer training samples: steps = budget / (batch · sequence length). The scratchpad
writes, for each digit from the units up, both operand digits, the carry in and the sum digit, then the answer:
more tokens to think in, fewer samples. Each run is evaluated ``n_evals`` times, so exact match can be read
against training samples seen (and tokens processed) as well as against model size.

Exact match is over everything the model writes (scratchpad included), which under teacher forcing equals greedy
decoding's exact match of the whole output; so a correct answer after a wrong scratchpad counts as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from limitlab.report.figures import save_figure
from limitlab.spec import RunSpec
from limitlab.studies.scaling.emergence import ADDITION_FORMATS, addition_task, collect, model_config
from limitlab.tasks.arithmetic import ArithmeticTask

EXPERIMENT = "scratchpad"
FORMATS = tuple(ADDITION_FORMATS)  # plain, reverse, scratchpad (tags.format; the task's formats in emergence)


def scratchpad_specs(widths: Sequence[int], digits: int = 3, token_budget: int = 2_000_000, batch_size: int = 64,
                     formats: Sequence[str] = FORMATS, lr: float = 3e-3, seeds: int | Sequence[int] = 1,
                     n_layers: int = 2, n_evals: int = 8, eval_size: int = 512) -> list[RunSpec]:
    """(format × width × seed) runs with ``token_budget`` training tokens each; tags carry samples and tokens."""
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"unknown format {f!r}; allowed: {', '.join(FORMATS)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = []
    for fmt in formats:
        cfg = addition_task(digits, fmt)
        task = ArithmeticTask.model_validate({k: v for k, v in cfg.items() if k != "name"})
        steps = max(1, round(token_budget / (batch_size * task.seq_len())))
        for d in widths:
            for seed in seed_list:
                out.append(RunSpec(
                    study="scaling", seed=seed, task=cfg,
                    model=model_config(d, n_layers, max_len=max(64, task.seq_len())),
                    optim={"optimizer": "adamw", "lr": lr, "weight_decay": 0.01, "schedule": "cosine",
                           "warmup_steps": min(100, steps // 10)},
                    train={"steps": steps, "batch_size": batch_size, "eval_every": max(1, steps // n_evals),
                           "eval_size": eval_size},
                    tags={"experiment": EXPERIMENT, "format": fmt, "d": d, "seed": seed,
                          "samples": steps * batch_size, "tokens": steps * batch_size * task.seq_len()},
                ))
    return out


def smoke() -> list[RunSpec]:
    """Seconds: 2-digit addition, one width, the three formats, 30k tokens each."""
    return scratchpad_specs([16], digits=2, token_budget=30_000, batch_size=32, n_evals=2, eval_size=128)


def quick(seeds: int = 1) -> list[RunSpec]:
    """CPU: 3-digit addition, widths 16/32/64, 2M tokens per run."""
    return scratchpad_specs([16, 32, 64], digits=3, token_budget=2_000_000, seeds=seeds)


def paper(seeds: int = 3) -> list[RunSpec]:
    """One GPU: 5-digit addition, widths 32 … 384 (Lee et al.'s n_embd 384), 4 layers, 200M tokens per run."""
    return scratchpad_specs([32, 64, 128, 256, 384], digits=5, token_budget=200_000_000, batch_size=256,
                            lr=1e-3, seeds=seeds, n_layers=4, n_evals=20, eval_size=2048)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}


# ---- analysis ----------------------------------------------------------------------------------------------------

def curves(specs: Sequence[RunSpec], records: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (run, eval step): format, d, seed, samples and tokens seen, exact match, token accuracy."""
    rows = []
    for spec in specs:
        for rec in records.get(spec.run_id, []):
            if "test/accuracy" not in rec:
                continue
            step = rec["step"]
            rows.append({"run_id": spec.run_id, "format": spec.tags["format"], "d": spec.model.d_model,
                         "seed": spec.seed, "step": step, "samples": step * spec.train.batch_size,
                         "tokens": step * spec.train.batch_size * spec.task.seq_len(),
                         "exact_match": rec["test/accuracy"], "token_accuracy": rec["test/token_accuracy"]})
    cols = ["run_id", "format", "d", "seed", "step", "samples", "tokens", "exact_match", "token_accuracy"]
    return pd.DataFrame(rows, columns=cols).drop_duplicates(["run_id", "step"], keep="last")


def final_table(specs: Sequence[RunSpec], results: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for spec in specs:
        res = results.get(spec.run_id)
        if res:
            rows.append({"format": spec.tags["format"], "d": spec.model.d_model, "seed": spec.seed,
                         "samples": spec.tags.get("samples"), "tokens": spec.tags.get("tokens"),
                         "exact_match": res["test/accuracy"], "token_accuracy": res["test/token_accuracy"]})
    return pd.DataFrame(rows, columns=["format", "d", "seed", "samples", "tokens", "exact_match", "token_accuracy"])


def samples_to(curve: pd.DataFrame, level: float = 0.5) -> pd.DataFrame:
    """Per (format, d): the first evaluation at which mean exact match ≥ level, as training samples seen and as
    tokens processed (NaN: never reached)."""
    rows = []
    for (fmt, d), g in curve.groupby(["format", "d"]):
        m = g.groupby("step", as_index=False)[["samples", "tokens", "exact_match"]].mean().sort_values("step")
        hit = m[m["exact_match"] >= level]
        first = hit.iloc[0] if len(hit) else None
        rows.append({"format": fmt, "d": d,
                     f"samples_to_{level:g}": float(first["samples"]) if first is not None else math.nan,
                     f"tokens_to_{level:g}": float(first["tokens"]) if first is not None else math.nan})
    return pd.DataFrame(rows, columns=["format", "d", f"samples_to_{level:g}", f"tokens_to_{level:g}"])


def analyze(final: pd.DataFrame, curve: pd.DataFrame) -> dict[str, Any]:
    if final.empty:
        return {"final": [], "samples_to_half": []}
    mean = final.groupby(["format", "d"], as_index=False).agg(
        seeds=("seed", "nunique"), samples=("samples", "first"), tokens=("tokens", "first"),
        exact_match=("exact_match", "mean"), token_accuracy=("token_accuracy", "mean"))
    return {"final": mean.to_dict("records"), "samples_to_half": samples_to(curve).to_dict("records")}


def claim(analysis: dict[str, Any]) -> dict[str, str]:
    """Scratchpad vs plain at equal tokens: reaching exact match 0.5 with no more tokens, and better somewhere.

    Per width: tokens processed until exact match ≥ 0.5 (from the evaluation curve) and final exact match. Agree
    when, at every width where plain reaches 0.5, the scratchpad reaches it with no more tokens, and at some width
    the scratchpad needs ≤ 0.75× plain's tokens or ends ≥ 0.1 higher."""
    row = {"claim": "Time to think: at equal compute, writing intermediate steps (a scratchpad) beats the plain "
                    "answer",
           "intuition": "time to think: intermediate steps help (chain of thought; Nye 2021, Lee 2023)",
           "criterion": "at every width where plain reaches exact match 0.5, the scratchpad does with ≤ its tokens; "
                        "and at some width with ≤ 0.75× the tokens or a final exact match ≥ plain + 0.1"}
    final = pd.DataFrame(analysis.get("final", []))
    if final.empty or not {"plain", "scratchpad"} <= set(final["format"]):
        return {**row, "ours": "plain and scratchpad runs not both finished", "verdict": "not measured"}
    em = final.set_index(["format", "d"])["exact_match"]
    reach = pd.DataFrame(analysis.get("samples_to_half", []))
    tok = reach.set_index(["format", "d"])["tokens_to_0.5"] if not reach.empty else pd.Series(dtype=float)
    widths = sorted(set(final.loc[final["format"] == "plain", "d"]) & set(final.loc[final["format"] == "scratchpad",
                                                                                     "d"]))
    parts, never_worse, better = [], True, False
    for d in widths:
        tp, ts = tok.get(("plain", d), math.nan), tok.get(("scratchpad", d), math.nan)
        ep, es = em[("plain", d)], em[("scratchpad", d)]
        parts.append(f"d={d}: final EM plain {ep:.2f} / scratchpad {es:.2f}, tokens to EM 0.5 "
                     f"{_tokens(tp)} / {_tokens(ts)}")
        if tp == tp and not (ts == ts and ts <= tp):
            never_worse = False
        if (tp == tp and ts == ts and ts <= 0.75 * tp) or (tp != tp and ts == ts) or es >= ep + 0.1:
            better = True
    verdict = "agree" if never_worse and better else "disagree"
    return {**row, "ours": "; ".join(parts), "verdict": verdict}


def _tokens(x: float) -> str:
    return "never" if x != x else f"{x / 1e6:.2f}M"


def figure(final: pd.DataFrame, curve: pd.DataFrame, path: Path) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if final.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, fmt in enumerate(FORMATS):
        c = curve[curve["format"] == fmt]
        for j, (d, g) in enumerate(c.groupby("d")):
            m = g.groupby("samples", as_index=False)["exact_match"].mean()
            axes[0].plot(m["samples"], m["exact_match"], color=f"C{i}", alpha=0.4 + 0.6 * (j + 1) / c["d"].nunique(),
                         label=f"{fmt}, d={d}")
        f = final[final["format"] == fmt].groupby("d", as_index=False)["exact_match"].mean()
        axes[1].plot(f["d"], f["exact_match"], marker="o", color=f"C{i}", label=fmt)
    axes[0].set(xscale="log", xlabel="training samples seen", ylabel="exact match", ylim=(-0.02, 1.02),
                title="Exact match vs samples (equal tokens per run)")
    axes[1].set(xscale="log", xlabel="model width d", ylabel="exact match (end of training)", ylim=(-0.02, 1.02),
                title="Exact match vs model size at equal compute")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].legend(fontsize=8)
    return save_figure(fig, path)


def report_section(runs: pd.DataFrame, out_dir: str | Path) -> tuple[dict, dict, list, Any]:
    """The frame's contract (see :mod:`limitlab.studies.scaling`): (results, figures, claims, render)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs, results, records = collect(runs)
    final, curve = final_table(specs, results), curves(specs, records)
    analysis = analyze(final, curve)
    figures = {}
    if figure(final, curve, out_dir / "scratchpad_exact_match.png"):
        figures["exact_match"] = "scratchpad_exact_match.png"

    def render(page) -> None:
        if not specs:
            page.paragraph("No finished scratchpad runs in this store.", css="note")
            return
        page.paragraph(f"{specs[0].task.width}-digit addition; every run processes the same number of training "
                       f"tokens ({specs[0].tags.get('tokens'):,} for the first), so longer formats see fewer "
                       "samples. Exact match covers everything the model writes (scratchpad included).")
        if "exact_match" in figures:
            page.figure(figures["exact_match"], "Exact match vs samples seen (left) and vs width (right), per format")
        page.table(analysis["final"], caption="End of training, mean over seeds")
        page.table(analysis["samples_to_half"], caption="First evaluation with exact match ≥ 0.5: training samples "
                                                        "seen and tokens processed (— never; evaluations every "
                                                        "1/8 of the budget in quick)")

    return analysis, figures, [claim(analysis)], render
