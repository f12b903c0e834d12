"""Arithmetic study (Xu et al. 2024, arXiv 2407.17963): length generalization per position encoding."""

from __future__ import annotations

from limitlab.studies.arithmetic.experiments import EXPERIMENTS, protocol
from limitlab.studies.arithmetic.study import beyond, paper, quick, repro, smoke, train_name
from limitlab.studies.base import Study

STUDY = Study(
    name="arithmetic",
    question="Length generalization of addition vs multiplication, mod 100 vs mod 101, per position encoding",
    reproduces="Xu et al. 2024, 'Relating the seemingly unrelated…' (arXiv 2407.17963); Abacus (McLeish et al. 2024)",
    presets={"smoke": smoke, "quick": quick, "repro": repro, "paper": paper, "beyond": beyond},
    experiments=EXPERIMENTS,
    protocol=protocol,
    preset_notes={
        "smoke": "4 tiny runs (APE addition, mod 100, mod 101, remainder scratchpad mod 7), seconds on a CPU",
        "quick": "15 runs: APE on D≤4 addition, mod 100 and mod 101 addition, 5 seeds each (+ study.encodings: "
                 "reversed addition per encoding; study.remainder_modulus: the remainder scratchpad)",
        "repro": "33 runs, 3 seeds, aligned format: D≤4 addition with learned, RoPE, T5, NoPE, Abacus; D_ab4 "
                 "(inward) with learned and RoPE; mod 100 / 101 with learned and RoPE (study.mul_steps adds "
                 "multiplication)",
        "paper": "the paper's runs (mini-GPT) × 7 encodings × 3 seeds, for a GPU",
        "beyond": "Abacus on reversed addition (≤20 → 100 digits) and the mod-101 remainder scratchpad, for a GPU",
    },
    labels={"seed": "seed", "op": "task.op", "modulus": "task.modulus", "format": "task.format",
            "position": "model.position", "train": lambda s: train_name(s.task.train_digits, s.task.both_exact)},
    design=frozenset({"experiment"}),
)
