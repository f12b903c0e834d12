"""The icl study's presets: which pretraining distributions, model and budget (RunSpecs), and how to evaluate them.

Paper protocol (Garg et al. 2022, official code; reference note §0): GPT-2 backbone, 12 layers, 8 heads, width 256,
learned absolute positions, Adam 1e-4 constant, batch 64, 500k steps, curriculum dims 5→20 and points 11→41
(linear, sparse) or 26→101 (ReLU net, tree), d = 20, sparse k = 3. Yadlowsky et al. 2023 use the same backbone on
mixtures (dense + sparse, dense + sine) whose weights, steps and prompt lengths the reference notes do not give;
ours are chosen below and marked so in the report's protocol table.

A pretraining distribution is named (``PRETRAIN``): ``dense``, ``sparse``, ``relu``, ``tree``, ``sine``,
``mix_dense_sparse``, ``mix_dense_sine``, or ``rare_sine_<p>`` (dense + sine with the sine family at weight p).
``tags`` carry the pretraining name and the seed. How many prompts the report evaluates each model on is a
report option (``limitlab report icl --set eval_prompts=20000``), not part of a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from limitlab.spec import RunSpec

GARG_MODEL = {"n_layers": 12, "n_heads": 8, "d_model": 256, "position": "learned", "norm": "pre",
              "activation": "gelu"}
PAPER_PRETRAIN = ("dense", "sparse", "relu", "tree", "sine", "mix_dense_sparse", "mix_dense_sine", "rare_sine_0.1",
                  "rare_sine_0.02")


def pretrain_task(name: str, d: int, n_linear: int, n_nonlinear: int, curriculum: bool, k: int = 3,
                  fmt: str = "garg", interval: int = 2000) -> dict[str, Any]:
    """The task config (a dict for RunSpec) of a named pretraining distribution."""
    def cur(kind: str) -> dict | None:
        if not curriculum:
            return None
        points = 11 if kind == "linear" else 26
        step = 2 if kind == "linear" else 5
        end = n_linear if kind == "linear" else n_nonlinear
        points = max(1, min(points, end // 2))  # Garg's start, or half the prompt for small CPU presets
        return {"dims_start": max(1, min(5, d // 2)), "dims_inc": 1, "points_start": points, "points_inc": step,
                "interval": interval}

    base_lin = {"d": d, "n_points": n_linear, "fmt": fmt, "curriculum": cur("linear")}
    base_non = {"d": d, "n_points": n_nonlinear, "fmt": fmt, "curriculum": cur("nonlinear")}
    if name == "dense":
        return {"name": "icl_linear", **base_lin}
    if name == "sparse":
        return {"name": "icl_linear", **base_lin, "sparsity": k}
    if name == "relu":
        return {"name": "icl_relu", **base_non}
    if name == "tree":
        return {"name": "icl_tree", **base_non}
    if name == "sine":
        return {"name": "icl_sine", **base_non}
    if name == "mix_dense_sparse":
        return {"name": "icl_mixture", **base_lin, "families": ["dense", "sparse"], "weights": [0.5, 0.5],
                "sparsity": k}
    if name == "mix_dense_sine":
        return {"name": "icl_mixture", **base_non, "families": ["dense", "sine"], "weights": [0.5, 0.5]}
    if name.startswith("rare_sine_"):
        try:
            p = float(name[len("rare_sine_"):])
        except ValueError:
            p = -1.0
        if not 0 < p < 1:
            raise ValueError(f"pretraining {name!r}: rare_sine_<p> needs 0 < p < 1")
        return {"name": "icl_mixture", **base_non, "families": ["dense", "sine"], "weights": [1 - p, p]}
    raise ValueError(f"unknown pretraining distribution {name!r}; allowed: dense, sparse, relu, tree, sine, "
                     "mix_dense_sparse, mix_dense_sine, rare_sine_<p>")


class ReportOptions(BaseModel):
    """``limitlab report icl --set KEY=VALUE``: how the report evaluates the trained models (not part of a run)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    eval_prompts: int = Field(1280, ge=16, le=1_000_000, description="test prompts per model and curve")
    eval_full: bool = Field(False, description="every baseline at every prompt length (slow)")


def icl_specs(pretrain: Sequence[str], seeds: int | Sequence[int], d: int, n_linear: int, n_nonlinear: int,
              model: dict[str, Any], lr: float, steps: int, batch_size: int, curriculum: bool, k: int = 3,
              fmt: str = "garg", warmup: int = 0, interval: int = 2000, eval_size: int = 256,
              grad_clip: float | None = None, schedule: str = "constant", eval_every: int = 0) -> list[RunSpec]:
    """(pretraining distribution × seed) RunSpecs; ``eval_size`` is the trainer's own test set per split, evaluated
    every ``eval_every`` steps (0: at the end) for the report's error-against-steps figure."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    specs = []
    for name in pretrain:
        task = pretrain_task(name, d, n_linear, n_nonlinear, curriculum, k, fmt, interval)
        for seed in seed_list:
            specs.append(RunSpec(
                study="icl", task=task, model={**model, "max_len": 2 * task["n_points"]}, seed=seed,
                optim={"optimizer": "adam", "lr": lr, "warmup_steps": warmup, "grad_clip": grad_clip,
                       "schedule": schedule},
                train={"steps": steps, "batch_size": batch_size, "eval_size": eval_size, "eval_every": eval_every},
                tags={"pretrain": name, "seed": seed},
            ))
    return specs


def paper(seeds: int | Sequence[int] = 3, pretrain: Sequence[str] = PAPER_PRETRAIN, steps: int = 500_000,
          fmt: str = "garg") -> list[RunSpec]:
    """Garg's standard model and schedule on every pretraining distribution (27 runs at 3 seeds); a GPU job."""
    return icl_specs(pretrain, seeds, d=20, n_linear=41, n_nonlinear=101, model=GARG_MODEL, lr=1e-4, steps=steps,
                     batch_size=64, curriculum=True, fmt=fmt)


def quick(seeds: int | Sequence[int] = 3, pretrain: Sequence[str] = ("dense", "sparse"), steps: int = 4000,
          d: int = 5, fmt: str = "garg") -> list[RunSpec]:
    """Dense and sparse (k = 2) linear regression at d = 5, sized for a few CPU minutes.

    Departures from Garg, sized for the 10-minute CPU budget: d = 5, 11 points, a 2-layer, 4-head, width-64
    model, Adam 1e-3 with 100 warmup steps, 4,000 steps, a curriculum compressed to 750 steps (dims 2→5, points
    5→11). What was tried while choosing it, and what it measures, is in docs/icl-results.md.
    """
    return icl_specs(pretrain, seeds, d=d, n_linear=2 * d + 1, n_nonlinear=4 * d + 1,
                     model={"n_layers": 2, "n_heads": 4, "d_model": 64, "position": "learned"}, lr=1e-3, steps=steps,
                     batch_size=64, curriculum=True, k=2, fmt=fmt, warmup=100, interval=250, eval_size=128)


REPRO_PRETRAIN = ("dense", "sparse", "mix_dense_sine", "rare_sine_0.1")


def repro(seeds: int | Sequence[int] = 3, pretrain: Sequence[str] = REPRO_PRETRAIN, steps: int = 6000, d: int = 5,
          layers: int = 4, width: int = 32, lr: float = 1e-3) -> list[RunSpec]:
    """Garg's and Yadlowsky's claims on a CPU in half an hour: every claim except the nonlinear families, d = 5.

    Dense, sparse (2 of 5 weights), a balanced dense + sine mixture and the same mixture with a rare sine family
    (weight 0.1), 3 seeds each; a ``layers``-layer, 4-head, width-``width`` model, Adam ``lr`` constant after 100
    warmup steps, batch 64, ``steps`` steps, Garg's curriculum compressed to 750 steps; linear prompts of 2d + 1 =
    11 pairs, sine prompts of 3d + 1 = 16 (as many as the sine family's 3d parameters). Every run keeps its test
    error per index every ``steps``/12 steps for the report's error-against-steps figure. How the recipe was
    chosen (depth, width, schedule, token format, steps), by measurement, is in docs/icl-results.md.
    """
    return icl_specs(pretrain, seeds, d=d, n_linear=2 * d + 1, n_nonlinear=3 * d + 1,
                     model={"n_layers": layers, "n_heads": 4, "d_model": width, "position": "learned"}, lr=lr,
                     steps=steps, batch_size=64, curriculum=True, k=2, warmup=100, interval=250, eval_size=256,
                     eval_every=max(1, steps // 12))


def smoke(seeds: int | Sequence[int] = 1, pretrain: Sequence[str] = ("dense", "mix_dense_sine"),
          steps: int = 60) -> list[RunSpec]:
    """Seconds on a CPU: a tiny model on dense linear and on a dense + sine mixture (d = 3)."""
    return icl_specs(pretrain, seeds, d=3, n_linear=6, n_nonlinear=8,
                     model={"n_layers": 1, "n_heads": 2, "d_model": 16, "position": "learned"}, lr=3e-3,
                     steps=steps, batch_size=16, curriculum=True, k=2, interval=20, eval_size=32)
