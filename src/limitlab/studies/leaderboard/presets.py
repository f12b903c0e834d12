"""The leaderboard's presets: every encoding on the board × every task family × seeds, at three sizes.

A preset reads the encodings from the registry when it is built (:func:`.encodings.encodings`), leaves out an
(encoding, task) pair only by a stated rule (:func:`.encodings.exclusion`), and builds each task's runs with its
own study's spec builder at the size given here (:data:`SIZES`; the arithmetic recipe in :data:`ARITHMETIC`, one
place). Every run is tagged ``{task, encoding, seed}``: ``encoding`` is ``model.position``, ``task`` the family.

* ``smoke`` — every encoding on counting and flip-flop, tiny, 2 seeds: seconds per encoding (what tests train);
* ``quick`` — every encoding × 7 tasks × 3 seeds at CPU size (the studies' quick shapes, shorter where the budget
  needs it); docs/leaderboard-results.md has its cost;
* ``paper`` — the papers' sizes (a GPU): the CoPE paper's 4 × 256 synthetic models and one-GPU byte LM, the
  arithmetic paper's mini-GPT, Garg's ICL model (100k steps, not 500k), the counting paper's recipe at d = 32.

>>> from limitlab.studies.leaderboard.encodings import encodings
>>> specs = smoke(seeds=1, tasks=("counting",), encodings=("learned", "rope"))
>>> [(s.tags["task"], s.tags["encoding"]) for s in specs]
[('counting', 'learned'), ('counting', 'rope')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from limitlab.spec import RunSpec
from limitlab.studies.leaderboard.encodings import check_names, exclusion
from limitlab.studies.leaderboard.encodings import encodings as board_encodings
from limitlab.studies.leaderboard.tasks import FAMILIES

# The arithmetic recipe, one place per preset. quick: the arithmetic study's repro recipe (4 × 64, lr 3e-3,
# 2,000 steps), the smallest measured one where RoPE and T5 learn aligned addition in distribution
# (docs/arithmetic-results.md), at operand width 8 (tested at 1–7 digits, the 60-minute budget) instead of 10.
ARITHMETIC: dict[str, dict[str, Any]] = {
    "smoke": {"n_layers": 1, "n_heads": 2, "d_model": 32, "lr": 3e-3, "steps": 40, "batch_size": 32,
              "eval_size": 90, "warmup": 10},
    "quick": {"n_layers": 4, "n_heads": 4, "d_model": 64, "lr": 3e-3, "steps": 2000, "batch_size": 64,
              "eval_size": 700, "warmup": 50, "width": 8},
    "paper": {"n_layers": 6, "n_heads": 6, "d_model": 384, "lr": 1e-3, "steps": 10_000, "batch_size": 64,
              "eval_size": 1800, "warmup": 100},
}

_CPU = {"width": 32, "layers": 2, "heads": 2, "batch_size": 32, "eval_size": 512, "optim": {"lr": 3e-3}}
_LM_OPTIM = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.1, "beta2": 0.95, "warmup_steps": 50,
             "schedule": "cosine", "grad_clip": 1.0}
_LIU = {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.999, "warmup_steps": 50,
        "schedule": "cosine", "min_lr_ratio": 0.0}
_COUNTING_CPU = {"lr": 3e-3, "batch_size": 32, "n_heads": 1, "norm": "none"}

SIZES: dict[str, dict[str, dict[str, Any]]] = {  # preset -> family -> the family builder's keyword arguments
    "smoke": {
        "counting": {"d": 8, "m": 3, "steps": 60, "eval_size": 64, "n_per_m": 4, "p_max": 16, **_COUNTING_CPU},
        "arithmetic": ARITHMETIC["smoke"],
        "flip_flop": {"task_options": {"length": 16}, "width": 16, "layers": 1, "heads": 2, "steps": 40,
                      "batch_size": 16, "eval_size": 64, "optim": {"lr": 3e-3}, "p_max": 8},
        "selective_copy": {"task_options": {"vocab": 4, "n_tokens": 3, "blanks": 6, "dense_blanks": 3,
                                            "sparse_blanks": 12}, "width": 16, "layers": 1, "heads": 2, "steps": 40,
                           "batch_size": 16, "eval_size": 64, "optim": {"lr": 3e-3}, "p_max": 8},
        "variable_counting": {"task_options": {"n_vars": 1, "max_statements": 6, "max_value": 5,
                                                "long_statements": 12}, "width": 16,
                              "layers": 1, "heads": 2, "steps": 40, "batch_size": 16, "eval_size": 64,
                              "optim": {"lr": 3e-3}, "p_max": 21},
        "icl": {"d": 3, "n_train": 6, "p_max": 8, "model": {"n_layers": 1, "n_heads": 2, "d_model": 16}, "lr": 3e-3,
                "steps": 40, "batch_size": 16, "interval": 20, "eval_size": 32},
        "lm": {"task_options": {"length": 16, "extrapolation": [2.0]}, "width": 16, "layers": 1, "heads": 2,
               "steps": 40, "batch_size": 16, "eval_size": 32, "optim": {"lr": 3e-3}, "p_max": 8},
    },
    "quick": {
        "counting": {"d": 8, "m": 6, "steps": 3000, "eval_size": 400, "n_per_m": 5, "p_max": 16, **_COUNTING_CPU},
        "arithmetic": ARITHMETIC["quick"],
        "flip_flop": {"task_options": {"length": 128}, "steps": 600, "p_max": 16, **_CPU},
        "selective_copy": {"task_options": {"vocab": 8, "n_tokens": 8, "blanks": 32, "dense_blanks": 16,
                                            "sparse_blanks": 64}, "steps": 800, "p_max": 16, **_CPU},
        "variable_counting": {"task_options": {"n_vars": 3, "max_statements": 32, "long_statements": 64},
                              "steps": 1000, "p_max": 99, **_CPU},
        "icl": {"d": 5, "n_train": 11, "p_max": 16, "model": {"n_layers": 2, "n_heads": 4, "d_model": 64},
                "lr": 1e-3, "steps": 2000, "batch_size": 64, "warmup": 100, "interval": 250, "eval_size": 128},
        "lm": {"task_options": {"length": 32, "extrapolation": [2.0, 3.0, 4.0]}, "width": 64, "layers": 2,
               "heads": 4, "steps": 600, "batch_size": 32, "eval_size": 256, "optim": _LM_OPTIM, "p_max": 8},
    },
    "paper": {
        "counting": {"d": 32, "m": 24, "steps": 100_000, "eval_size": 1600, "n_per_m": 10, "p_max": 64},
        "arithmetic": ARITHMETIC["paper"],
        "flip_flop": {"task_options": {"length": 512}, "width": 256, "layers": 4, "heads": 4, "steps": 10_000,
                      "batch_size": 16, "eval_size": 2000, "optim": _LIU, "p_max": 64},
        "selective_copy": {"task_options": {"vocab": 16, "n_tokens": 16, "blanks": 256}, "width": 256, "layers": 4,
                           "heads": 4, "steps": 10_000, "batch_size": 16, "eval_size": 2000, "optim": _LIU,
                           "p_max": 64},
        "variable_counting": {"task_options": {"n_vars": 3, "max_statements": 512, "max_tokens": 768,
                                                "long_statements": 1024},
                              "width": 256, "layers": 4, "heads": 4, "steps": 15_700, "batch_size": 64,
                              "eval_size": 2000, "optim": {"optimizer": "adam", "lr": 7e-5}, "p_max": 512,
                              "model": {"norm": "post", "activation": "relu"}},
        "icl": {"d": 20, "n_train": 41, "p_max": 64, "lr": 1e-4, "steps": 100_000, "batch_size": 64,
                "eval_size": 1280, "model": {"n_layers": 12, "n_heads": 8, "d_model": 256}},
        "lm": {"task_options": {"length": 512, "extrapolation": [2.0, 3.0, 4.0]}, "width": 384, "layers": 6,
               "heads": 6, "steps": 20_000, "batch_size": 32, "eval_size": 512, "p_max": 64,
               "optim": {**_LM_OPTIM, "lr": 6e-4, "warmup_steps": 500}},
    },
}


def excluded(task: str, position: str) -> str | None:
    """Why ``position`` is left off ``task`` (None: it is on the board); probed on the task's smoke run."""
    family = FAMILIES[task]
    try:
        probe: Any = family.build(position, [0], **SIZES["smoke"][task])[0]
    except ValueError as exc:
        probe = str(exc).split("\n")[0][:200]
    return exclusion(position, task, family.has_digits, probe)


def board(size: str, seeds: int | Sequence[int], tasks: Sequence[str],
          encodings: Sequence[str] | None) -> list[RunSpec]:
    """Every (task, encoding on the board, seed) run at ``size``, tagged and filed under the leaderboard study."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("no seeds chosen; give study.seeds as a count >= 1 or a list")
    everyone = board_encodings()
    chosen = check_names(list(encodings) if encodings is not None else everyone, everyone, "encoding")
    out = []
    for task in check_names(list(tasks), list(FAMILIES), "task"):
        for position in chosen:
            if excluded(task, position) is not None:
                continue
            for spec in FAMILIES[task].build(position, seed_list, **SIZES[size][task]):
                tags = {"task": task, "encoding": position, "seed": spec.seed}
                out.append(spec.model_copy(update={"study": "leaderboard", "tags": tags}))
    return out


def smoke(seeds: int | Sequence[int] = 2, tasks: Sequence[str] = ("counting", "flip_flop"),
          encodings: Sequence[str] | None = None) -> list[RunSpec]:
    """Seconds on a CPU per encoding: every encoding on counting and flip-flop, tiny, 2 seeds."""
    return board("smoke", seeds, tasks, encodings)


def quick(seeds: int | Sequence[int] = 3, tasks: Sequence[str] = tuple(FAMILIES),
          encodings: Sequence[str] | None = None) -> list[RunSpec]:
    """Every encoding × every task × 3 seeds at CPU size (the studies' quick shapes; see the module doc)."""
    return board("quick", seeds, tasks, encodings)


def paper(seeds: int | Sequence[int] = 3, tasks: Sequence[str] = tuple(FAMILIES),
          encodings: Sequence[str] | None = None) -> list[RunSpec]:
    """Every encoding × every task × 3 seeds at the papers' sizes: a GPU job."""
    return board("paper", seeds, tasks, encodings)
