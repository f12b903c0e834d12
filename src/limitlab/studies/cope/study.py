"""The CoPE study's presets: RunSpecs for flip-flop, selective copy, variable counting and byte-level LM.

Every run is tagged ``{task, pe, seed, ...}`` where ``pe`` names the position encoding as the paper does:

    absolute          learned absolute positions (max_len covers the longest evaluation split)
    relative          learned relative (Shaw-style, shared across heads), uncapped: one entry per offset
    relative_capped   the same, offsets beyond ``cap`` share the last entry
    rope, nope, alibi
    cope              CoPE with p_max (tag ``p_max``)
    cope+relative     CoPE plus the relative encoding
    cope+rope         CoPE plus RoPE (the paper's code-LM hybrid)
    cope_sepkey       CoPE whose gates come from a separate key projection

Paper protocol (reference/cope.md): synthetic tasks with 4 layers, width 256, 4 heads; flip-flop 10k steps at
T = 512 (Liu's recipe: AdamW 3e-4, wd 0.1, batch 16, 50 warm-up steps); counting per RAM's run.sh (Adam 7e-5,
batch 64, ~15.7k steps); selective copy's recipe is not known (we use flip-flop's). LM: GPT-2-small on
Wikitext-103 at context 1024 with p_max 64 — here a one-GPU byte-level model on the Python standard library
(and on Wikitext when ``study.wikitext=PATH`` is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from limitlab.spec import RunSpec
from limitlab.tasks.variable_counting import OP_TOKENS

ENCODINGS: dict[str, tuple[str, dict[str, Any]]] = {  # pe tag -> (model.position, extra position options)
    "absolute": ("learned", {}),
    "relative": ("relative", {}),
    "relative_capped": ("relative", {}),
    "rope": ("rope", {}),
    "nope": ("none", {}),
    "alibi": ("alibi", {}),
    "cope": ("cope", {}),
    "cope+relative": ("cope+relative", {}),
    "cope+rope": ("cope+rope", {}),
    "cope_sepkey": ("cope", {"cope_sep_key": True}),
}
ALL_PE = tuple(p for p in ENCODINGS if p != "cope+rope")  # synthetic tasks; the LM adds cope+rope
QUICK_PE = ("absolute", "rope", "cope")


def model_config(pe: str, width: int, layers: int, heads: int, p_max: int, cap: int,
                 longest: int, **extra: Any) -> dict[str, Any]:
    """The model dict of one run: shape, and the encoding ``pe`` sized for sequences up to ``longest`` tokens."""
    if pe not in ENCODINGS:
        raise ValueError(f"unknown encoding {pe!r}; allowed: {', '.join(ENCODINGS)}")
    position, options = ENCODINGS[pe]
    options = dict(options)
    if "cope" in position:
        options["p_max"] = p_max
    if "relative" in position:
        options["rel_max_distance"] = cap if pe == "relative_capped" else longest
    return {"n_layers": layers, "d_model": width, "n_heads": heads, "position": position,
            "position_options": options, "max_len": longest, **extra}


def _longest(task: dict[str, Any]) -> int:
    from limitlab.tasks import TASKS

    fields = {k: v for k, v in task.items() if k != "name"}
    return max(t.seq_len() for t in TASKS[task["name"]](**fields).splits().values())


def specs_for(task: dict[str, Any], pes: Sequence[str], seeds: int | Sequence[int], *, width: int, layers: int,
              heads: int, steps: int, batch_size: int, optim: dict[str, Any], eval_size: int, p_max: int = 64,
              cap: int = 64, tags: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> list[RunSpec]:
    """One task × encodings × seeds."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    longest = _longest(task)
    out = []
    for pe in pes:
        cfg = model_config(pe, width, layers, heads, p_max, cap, longest, **(model or {}))
        for seed in seed_list:
            tag = {"task": task["name"], "pe": pe, "seed": seed, "p_max": p_max if "cope" in pe else None,
                   "cap": cap if pe == "relative_capped" else None, **(tags or {})}
            out.append(RunSpec(study="cope", task=task, model=cfg, seed=seed, optim=optim,
                               train={"steps": steps, "batch_size": batch_size, "eval_size": eval_size}, tags=tag))
    return out


def smoke(seeds: int = 1, steps: int = 60, corpus: str = "stdlib") -> list[RunSpec]:
    """Seconds on a CPU: every task, tiny, with absolute / RoPE / CoPE (the LM and counting with CoPE only)."""
    shape = {"width": 16, "layers": 1, "heads": 2, "steps": steps, "batch_size": 16, "eval_size": 64,
             "optim": {"lr": 3e-3}, "p_max": 8, "cap": 8}
    ff = {"name": "flip_flop", "length": 16}
    sc = {"name": "selective_copy", "vocab": 4, "n_tokens": 3, "blanks": 6, "dense_blanks": 3, "sparse_blanks": 12}
    vc = {"name": "variable_counting", "n_vars": 1, "max_statements": 6, "max_value": 5}
    lm = {"name": "text_lm", "corpus": corpus, "length": 16, "extrapolation": [2.0]}
    return (specs_for(ff, QUICK_PE, seeds, **shape) + specs_for(sc, QUICK_PE, seeds, **shape)
            + specs_for(vc, ("cope",), seeds, **shape) + specs_for(lm, ("cope",), seeds, **shape))


def quick(seeds: int = 3, ff_steps: int = 600, sc_steps: int = 800, pes: Sequence[str] = QUICK_PE,
          tasks: Sequence[str] = ("ff", "sc", "vc"), vc_steps: int = 1000, vc_vars: Sequence[int] = (3,),
          vc_statements: int = 32) -> list[RunSpec]:
    """Flip-flop, selective copy and variable counting at CPU size, ≥ 3 seeds, in distribution and OOD.

    Smaller than the paper (stated in the report's protocol table): 2 layers, width 32, 2 heads; Adam 3e-3, batch
    32; 512 test sequences per split.

    * flip-flop at T = 128 (not 512), 600 steps, absolute / RoPE / CoPE (p_max 16); T = 128 rather than 64 so
      the sparse split's write→read gaps are longer than the ones seen in training;
    * selective copy: 8 data tokens over 8 symbols among 32 blanks (dense 16, sparse 64; the paper: 16 among 256,
      128, 512), 800 steps, the same encodings;
    * variable counting (Table 3) with ``vc_vars`` variables and programs of at most ``vc_statements`` statements
      (the paper: 512), ``vc_steps`` steps on fresh samples, absolute / relative / CoPE (p_max above the longest
      program, as RAM's default), like the paper's table.

    docs/cope-results.md has the measurements behind these choices and the cost.
    """
    shape = {"width": 32, "layers": 2, "heads": 2, "batch_size": 32, "eval_size": 512, "optim": {"lr": 3e-3},
             "p_max": 16, "cap": 16}
    out = []
    if "ff" in tasks:
        out += specs_for({"name": "flip_flop", "length": 128}, pes, seeds, steps=ff_steps, **shape)
    if "sc" in tasks:
        out += specs_for({"name": "selective_copy", "vocab": 8, "n_tokens": 8, "blanks": 32, "dense_blanks": 16,
                          "sparse_blanks": 64}, pes, seeds, steps=sc_steps, **shape)
    if "vc" in tasks:
        for n in vc_vars:
            vc = {"name": "variable_counting", "n_vars": n, "max_statements": vc_statements}
            out += specs_for(vc, ("absolute", "relative", "cope"), seeds, steps=vc_steps,
                             **{**shape, "p_max": OP_TOKENS * vc_statements + 3})
    return out


LM_PE = ("absolute", "relative", "rope", "cope", "cope+rope")


def repro(seeds: int = 3, tasks: Sequence[str] = ("lm", "pmax"), lm_pes: Sequence[str] = LM_PE, lm_steps: int = 1000,
          context: int = 64, extrapolation: Sequence[float] = (2.0, 3.0, 4.0), lm_p_max: int = 16,
          p_max_ablation: Sequence[int] = (2, 4, 8, 16, 64), ff_steps: int = 600,
          corpus: str = "stdlib") -> list[RunSpec]:
    """CPU-sized versions of the paper's LM context extrapolation and its p_max ablation, ≥ 3 seeds.

    * ``lm``: a byte-level LM on the Python standard library (or ``corpus``, a local text or folder: see
      :mod:`limitlab.tasks.text_lm`) trained at context T = ``context`` and evaluated at
      T and at each multiple in ``extrapolation`` (2T, 3T, 4T), for absolute, relative (uncapped), RoPE, CoPE
      and CoPE+RoPE: 2 layers, width 64, 4 heads, AdamW 3e-3 (cosine, 50 warm-up steps, clip 1), batch 32,
      ``lm_steps`` steps; CoPE's p_max = ``lm_p_max`` = T/4 (the paper: 64 at T = 1024).
    * ``pmax``: the p_max ablation of CoPE on the quick preset's flip-flop (T = 128, 2 × 32, 600 steps),
      tag ``ablation='p_max'``; p_max = 16 is the quick preset's own CoPE run (same spec, same run id).

    docs/cope-results.md has the cost and the measurements.
    """
    out: list[RunSpec] = []
    if max(extrapolation, default=1.0) * context > 100_000:
        raise ValueError(f"the longest evaluation context ({max(extrapolation):g} × {context}) is over 100,000 bytes")
    if "lm" in tasks:
        lm = {"name": "text_lm", "corpus": corpus, "length": context, "extrapolation": list(extrapolation)}
        optim = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.1, "beta2": 0.95, "warmup_steps": 50,
                 "schedule": "cosine", "grad_clip": 1.0}
        out += specs_for(lm, lm_pes, seeds, width=64, layers=2, heads=4, steps=lm_steps, batch_size=32, optim=optim,
                         eval_size=256, p_max=lm_p_max, cap=lm_p_max,
                         tags={"corpus": "stdlib" if corpus == "stdlib" else "text"})
    if "pmax" in tasks:
        ff = {"name": "flip_flop", "length": 128}
        shape = {"width": 32, "layers": 2, "heads": 2, "batch_size": 32, "eval_size": 512, "optim": {"lr": 3e-3},
                 "cap": 16, "steps": ff_steps}
        for p in p_max_ablation:
            out += specs_for(ff, ("cope",), seeds, **shape, p_max=p, tags=None if p == 16 else {"ablation": "p_max"})
    return out


PAPER_SHAPE = {"width": 256, "layers": 4, "heads": 4}
LIU_OPTIM = {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999,
             "warmup_steps": 50, "schedule": "cosine", "min_lr_ratio": 0.0}


def paper(seeds: int = 3, pes: Sequence[str] = ALL_PE, tasks: Sequence[str] = ("ff", "sc", "vc", "lm"),
          p_max_ablation: Sequence[int] = (4, 16, 64, 256), n_vars: Sequence[int] = (1, 3, 5),
          lm_steps: int = 20_000, wikitext: str | None = None) -> list[RunSpec]:
    """The paper's synthetic protocol (4 layers, width 256, 4 heads, ≥ 3 seeds) and one-GPU byte-level LMs.

    * flip-flop FFL(0.8), T = 512, 10k steps, Liu's optimiser (cosine decay to 0 stands in for his linear decay);
      every encoding, plus the p_max ablation of CoPE (tag ``ablation='p_max'``).
    * selective copy, 16 tokens over 16 symbols among 256 blanks, 10k steps, same optimiser.
    * variable counting with 1, 3, 5 variables, up to 512 statements in 768 tokens (checked, never cut): RAM's
      run.sh (Adam 7e-5, batch 64, 15.7k steps, post-norm, ReLU; CoPE p_max 512); absolute, relative, CoPE.
    * byte-level LM on the standard library (and ``wikitext``, a local path, when given), T = 512, tested at
      768, 1024, 1280: 6 layers, width 384, 6 heads, AdamW 6e-4 cosine, batch 32, ``lm_steps`` steps; CoPE p_max
      64 as the paper's LM, relative-capped at 64.
    """
    out: list[RunSpec] = []
    synth = {**PAPER_SHAPE, "eval_size": 2000, "p_max": 64, "cap": 64}
    if "ff" in tasks:
        ff = {"name": "flip_flop", "length": 512}
        out += specs_for(ff, pes, seeds, **synth, steps=10_000, batch_size=16, optim=LIU_OPTIM)
        for p in p_max_ablation:
            if p != 64:
                out += specs_for(ff, ("cope",), seeds, **{**synth, "p_max": p}, steps=10_000, batch_size=16,
                                 optim=LIU_OPTIM, tags={"ablation": "p_max"})
    if "sc" in tasks:
        sc = {"name": "selective_copy", "vocab": 16, "n_tokens": 16, "blanks": 256}
        out += specs_for(sc, pes, seeds, **synth, steps=10_000, batch_size=16, optim=LIU_OPTIM)
    if "vc" in tasks:
        ram = {"norm": "post", "activation": "relu"}
        for n in n_vars:
            vc = {"name": "variable_counting", "n_vars": n, "max_statements": 512, "max_tokens": 768}
            out += specs_for(vc, ("absolute", "relative", "cope"), seeds, **{**synth, "p_max": 512}, steps=15_700,
                             batch_size=64, optim={"optimizer": "adam", "lr": 7e-5}, model=ram)
    if "lm" in tasks:
        lm_optim = {"optimizer": "adamw", "lr": 6e-4, "weight_decay": 0.1, "beta2": 0.95, "warmup_steps": 500,
                    "schedule": "cosine", "grad_clip": 1.0}
        lm_shape = {"width": 384, "layers": 6, "heads": 6, "eval_size": 512, "p_max": 64, "cap": 64}
        lm_pes = [p for p in ("absolute", "relative", "relative_capped", "rope", "nope", "alibi", "cope",
                              "cope+relative", "cope+rope") if p in (*pes, "cope+rope")]
        corpora = ["stdlib"] + ([wikitext] if wikitext else [])
        for corpus in corpora:
            lm = {"name": "text_lm", "corpus": corpus, "length": 512}
            out += specs_for(lm, lm_pes, seeds, **lm_shape, steps=lm_steps, batch_size=32, optim=lm_optim,
                             tags={"corpus": "stdlib" if corpus == "stdlib" else "text"})
    return out
