"""CoPE study (Golovneva et al. 2024, "Contextual Position Encoding: Learning to Count What's Important")."""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.cope.study import paper, quick, smoke


def _report(store, out_dir):
    from limitlab.studies.cope.report import write_cope_report

    return write_cope_report(store, out_dir)


STUDY = Study(
    name="cope",
    question="Does contextual position encoding (CoPE) beat absolute / relative / RoPE on flip-flop, selective copy, "
             "variable counting and language modelling, in and out of distribution?",
    reproduces="Golovneva et al. 2024, 'Contextual Position Encoding' (arXiv 2405.18719)",
    presets={"smoke": smoke, "quick": quick, "paper": paper},
    report=_report,
    preset_notes={
        "smoke": "8 tiny runs (every task; absolute/RoPE/CoPE), seconds on a CPU",
        "quick": "18 runs (flip-flop T=128 and selective copy, absolute/RoPE/CoPE × 3 seeds), ~430 CPU-s (est. 7 min)",
        "paper": "4 layers × 256 × 4 heads, 10k-15.7k steps, 9 encodings × 3 seeds + p_max ablation + LMs; a GPU",
    },
    labels={"seed": "seed", "task": "task.name", "p_max": "model.position_options.p_max",
            "cap": "model.position_options.cap"},
    design=frozenset({"pe", "ablation", "corpus"}),  # pe: the paper's name for an encoding ('absolute' = learned)
)
