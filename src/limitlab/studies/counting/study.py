"""The counting study: QC and MFC accuracy over embedding size d × vocabulary m, and the threshold m_thr.

Paper protocol (Yehudai et al. 2024, as far as the reference notes know it): 2 layers, 4 heads,
d ∈ {8, 16, 32, 64, 96, 128}, 20 vocabulary sizes 5..150, n = 10·m tokens, Adam lr 1e-4, batch 16,
100k steps, 1,600 test sequences. Unknown in the paper and chosen here: causal decoder, learned absolute
positions, pre-LN, GELU MLP of width 4d, the query is the last token, a linear head over count classes read at
the last position. Variants (``study.variants``): ``base``; ``no_ln`` (no LayerNorm); ``bos`` (a BOS sink);
``bos_nope`` (a BOS sink and no position embedding: the model that can in principle count at 2·n tokens, the
contrast for the length-generalisation claim — learned position rows beyond n are never trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from limitlab.spec import RunSpec

PAPER_DS = (8, 16, 32, 64, 96, 128)
PAPER_MS = tuple(int(round(x)) for x in np.linspace(5, 150, 20))  # 5, 13, 20, ..., 150
VARIANTS = {"base": {}, "no_ln": {"model": {"norm": "none"}}, "bos": {"task": {"bos": True}},
            "bos_nope": {"task": {"bos": True}, "model": {"position": "none"}}}


def counting_specs(
    ds: Sequence[int], ms: Sequence[int], tasks: Sequence[str] = ("qc", "mfc"), seeds: int | Sequence[int] = 3,
    variants: Sequence[str] = ("base",), steps: int = 100_000, lr: float = 1e-4, batch_size: int = 16,
    eval_size: int = 1600, n_per_m: int = 10, n_layers: int = 2, n_heads: int = 4, norm: str = "pre",
    position: str = "learned", causal: bool = True, ood: bool = True, eval_every: int = 0,
) -> list[RunSpec]:
    """The (task × variant × d × m × seed) grid as RunSpecs; ``tags`` carry the grid coordinates."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown counting variant {v!r}; allowed: {', '.join(VARIANTS)}")
    longest = max(ms) * n_per_m * (2 if ood else 1) + 3
    specs = []
    for kind in tasks:
        for variant in variants:
            extra = VARIANTS[variant]
            for d in ds:
                for m in ms:
                    for seed in seed_list:
                        task = {"name": "counting", "kind": kind, "m": m, "n": n_per_m * m, **extra.get("task", {})}
                        model = {"n_layers": n_layers, "n_heads": n_heads, "d_model": d, "norm": norm,
                                 "position": position, "causal": causal, "max_len": longest, **extra.get("model", {})}
                        specs.append(RunSpec(
                            study="counting", task=task, model=model, seed=seed,
                            optim={"optimizer": "adam", "lr": lr},
                            train={"steps": steps, "batch_size": batch_size, "eval_size": eval_size,
                                   "eval_every": eval_every},
                            tags={"task": kind, "variant": variant, "d": d, "m": m, "seed": seed},
                        ))
    return specs


def paper(seeds: int | Sequence[int] = 3, variants: Sequence[str] = ("base",), tasks: Sequence[str] = ("qc", "mfc"),
          ds: Sequence[int] = PAPER_DS, ms: Sequence[int] = PAPER_MS, steps: int = 100_000) -> list[RunSpec]:
    """The paper's grid: 6 d × 20 m × 2 tasks × seeds (720 runs at 3 seeds), 100k steps each."""
    return counting_specs(ds, ms, tasks, seeds, variants, steps=steps)


def quick(seeds: int | Sequence[int] = 3, variants: Sequence[str] = ("bos",), tasks: Sequence[str] = ("qc", "mfc"),
          ds: Sequence[int] = (4, 8, 16), ms: Sequence[int] = (3, 4, 6, 8, 12, 16), steps: int = 3000,
          mfc_ms: Sequence[int] = (3, 4, 6, 8), nope_ds: Sequence[int] = (8,)) -> list[RunSpec]:
    """A CPU-sized grid that shows m_thr rising with d, for QC (over ``ms``) and MFC (over ``mfc_ms``: MFC is
    expected to fail no later than QC, so its grid stops two steps earlier; m_thr(MFC) > 8 reads as censored),
    plus the NoPE contrast for length generalisation (variant ``bos_nope``, QC only, at ``nope_ds``;
    ``study.nope_ds=[]`` leaves it out).

    Departures from the paper, chosen so that the models learn within minutes on a CPU: a BOS token, n = 5·m,
    Adam 3e-3, batch 32, one head, no LayerNorm, 3,000 steps, 400 test sequences. Measured while choosing
    (QC, 3,000 steps, one seed): at d = 8, m = 6, 4 heads and lr 1e-3 reached 44%, one head and lr 3e-3 90%;
    without BOS, d = 32 learned no better than d = 16 at m ≤ 8 (0.77 vs 0.82 at m = 8), with BOS accuracy
    rose with d at every m in {8, 12, 16} (m = 8: 0.54, 0.77, 0.85 for d = 8, 16, 32); lr 1e-2 diverged at d ≥ 16.
    On the grid d ∈ {8, 16, 32}, m ∈ {4 … 24} (2 seeds, BOS) the 80% crossing sat at m ≈ 7.5 for both d = 16 and
    d = 32: at 3,000 steps the larger models had not converged, so the CPU grid uses d ∈ {4, 8, 16} instead.
    """
    recipe = {"steps": steps, "lr": 3e-3, "batch_size": 32, "eval_size": 400, "n_per_m": 5, "n_heads": 1,
              "norm": "none"}
    specs = []
    for task in tasks:
        specs += counting_specs(ds, mfc_ms if task == "mfc" else ms, (task,), seeds, variants, **recipe)
    if nope_ds and "qc" in tasks and "bos_nope" not in variants:
        specs += counting_specs(nope_ds, ms, ("qc",), seeds, ("bos_nope",), **recipe)
    return specs


def repro(seeds: int | Sequence[int] = 3, variants: Sequence[str] = ("bos",), tasks: Sequence[str] = ("qc", "mfc"),
          ds: Sequence[int] = (4, 8, 12, 16, 32, 64), ms: Sequence[int] = (3, 4, 6, 8, 12, 16, 24),
          mfc_ms: Sequence[int] = (3, 4, 6, 8, 12), span: float = 2.0, steps: int = 3000) -> list[RunSpec]:
    """The quick recipe over six embedding sizes d = 4 … 64, for QC and MFC: enough values of d to tell a line
    from a concave curve, and m_thr(MFC) against m_thr(QC) at each of them.

    Same recipe as :func:`quick` (BOS, n = 5·m, 1 head, no LayerNorm, Adam 3e-3, batch 32, 3,000 steps, 400 test
    sequences); the position table is sized by each d's largest m, so only where that matches quick's (d = 8) are
    the runs quick's own (same run ids). At each d the m grid
    stops at ``span``·d (m > 2d is far past the threshold d ≈ m the paper puts it at, and the long sequences
    are the cost); a curve still above 80% there is right-censored, never extrapolated. No NoPE runs (quick has
    them). The step count is what fits 30 minutes on 2 CPU cores, not convergence: the larger d are still learning
    at 3,000 steps, which biases m_thr down at large d. docs/counting-results.md has the cost and the probe.

    >>> sorted({s.task.m for s in repro(seeds=1, tasks=("qc",), ds=(4,))})
    [3, 4, 6, 8]
    """
    recipe = {"steps": steps, "lr": 3e-3, "batch_size": 32, "eval_size": 400, "n_per_m": 5, "n_heads": 1,
              "norm": "none"}
    specs = []
    for task in tasks:
        grid = mfc_ms if task == "mfc" else ms
        for d in ds:
            specs += counting_specs((d,), [m for m in grid if m <= span * d], (task,), seeds, variants, **recipe)
    return specs


def smoke(seeds: int | Sequence[int] = 1, variants: Sequence[str] = ("bos",), tasks: Sequence[str] = ("qc", "mfc"),
          ds: Sequence[int] = (8, 16), ms: Sequence[int] = (3, 4), steps: int = 400) -> list[RunSpec]:
    """Seconds on a CPU: the whole pipeline on a tiny grid, trained well past chance (the quick recipe, n = 4·m)."""
    return counting_specs(ds, ms, tasks, seeds, variants, steps=steps, lr=3e-3, batch_size=32, eval_size=200,
                          n_per_m=4, n_heads=1, norm="none")
