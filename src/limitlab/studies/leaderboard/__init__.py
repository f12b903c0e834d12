"""The position-encoding leaderboard: every registered encoding on every task family, in and out of distribution.

Each paper compares a few encodings on its own tasks; the board ranks every encoding of the registry on counting,
addition length generalisation, flip-flop, selective copy, variable counting, in-context regression at longer
prompts and byte-level LM context extrapolation, with seeds and intervals. Presets in :mod:`.presets` (tasks in
:mod:`.tasks`, encodings and exclusions in :mod:`.encodings`), the ranking in :mod:`.ranking`, the papers' own
orderings in :mod:`.papers`, the page in :mod:`.report`.
"""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.leaderboard.presets import paper, quick, smoke
from limitlab.studies.leaderboard.report import EXPERIMENTS, ReportOptions

STUDY = Study(
    name="leaderboard",
    question="Which position encoding generalises best across tasks, in and out of distribution?",
    reproduces="the encoding comparisons of Golovneva et al. 2024 (CoPE), Kazemnejad et al. 2023, McLeish et al. "
               "2024 (Abacus) and Xu et al. 2024, on one board",
    presets={"smoke": smoke, "quick": quick, "paper": paper},
    experiments=EXPERIMENTS,
    report_options=ReportOptions,
    preset_notes={
        "smoke": "every encoding on counting and flip-flop, tiny, 2 seeds: seconds per encoding on a CPU",
        "quick": "every encoding × 7 tasks × 3 seeds at CPU size (213 runs), about 48 minutes on 2 quiet CPU cores",
        "paper": "the papers' sizes (CoPE 4 × 256, mini-GPT, Garg's ICL model, byte LM 6 × 384): a GPU",
    },
    labels={"seed": "seed", "encoding": "model.position"},
    design=frozenset({"task"}),
)
