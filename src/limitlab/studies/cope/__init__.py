"""CoPE study (Golovneva et al. 2024, "Contextual Position Encoding: Learning to Count What's Important").

Presets in :mod:`.study`, the paper's claims as data in :mod:`.claims`, the report's parts in :mod:`.experiments`
(rendered by the generic writer, :mod:`limitlab.report.study_report`), the protocol table in :mod:`.protocol`.

Every run keeps its weights (``save_weights=True``): the report draws a stored CoPE model's attention and position
map and never trains. A quick model is about 30 thousand parameters (~0.1 MB); the paper preset's synthetic models
(4 × 256) are ~13 MB and its LMs (6 × 384) ~45 MB each, about 2.5 GB for the whole paper preset on a GPU machine.
"""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.cope.experiments import EXPERIMENTS
from limitlab.studies.cope.protocol import protocol
from limitlab.studies.cope.study import paper, quick, repro, smoke

STUDY = Study(
    name="cope",
    question="Does contextual position encoding (CoPE) beat absolute / relative / RoPE on flip-flop, selective copy, "
             "variable counting and language modelling, in and out of distribution?",
    reproduces="Golovneva et al. 2024, 'Contextual Position Encoding' (arXiv 2405.18719)",
    presets={"smoke": smoke, "quick": quick, "repro": repro, "paper": paper},
    experiments=EXPERIMENTS,
    protocol=protocol,
    save_weights=True,
    preset_notes={
        "smoke": "8 tiny runs (every task; absolute/RoPE/CoPE), seconds on a CPU",
        "quick": "27 runs (flip-flop T=128, selective copy, 3-variable counting; 3 encodings × 3 seeds), est. 8 min "
                 "on 2 cores",
        "repro": "30 runs: byte-level stdlib LMs at T = 64 tested at 2T-4T (absolute, relative, RoPE, CoPE, "
                 "CoPE+RoPE) and the flip-flop p_max ablation (2..64); 3 seeds; about 11 min on 2 CPU cores",
        "paper": "4 layers × 256 × 4 heads, 10k-15.7k steps, 9 encodings × 3 seeds + p_max ablation + LMs; a GPU",
    },
    labels={"seed": "seed", "task": "task.name", "p_max": "model.position_options.p_max",
            "cap": "model.position_options.cap"},
    design=frozenset({"pe", "ablation", "corpus"}),  # pe: the paper's name for an encoding ('absolute' = learned)
)
