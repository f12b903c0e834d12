"""Counting study (Yehudai et al. 2024, "When can transformers count to n?") on the study contract: presets
(:mod:`.study`), claims as data (:mod:`.claims`), experiments (:mod:`.experiments`, :mod:`.constructed`) and the
protocol table (:mod:`.protocol`); the generic writer renders the page."""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.counting.constructed import CONSTRUCTIONS, ReportOptions
from limitlab.studies.counting.experiments import OOD, THRESHOLD
from limitlab.studies.counting.protocol import protocol_rows
from limitlab.studies.counting.study import paper, quick, repro, smoke

STUDY = Study(
    name="counting",
    question="Can a transformer count (QC, MFC)? m_thr vs embedding size d; hand-wired constructions",
    reproduces="Yehudai et al. 2024, 'When can transformers count to n?' (arXiv 2407.15160)",
    presets={"smoke": smoke, "quick": quick, "repro": repro, "paper": paper},
    preset_notes={
        "smoke": "8 runs (QC+MFC with BOS, d 8/16 × m 3/4, 400 steps), seconds on a CPU",
        "quick": "108 runs (QC with BOS, d 4/8/16 × m 3..16; MFC, m 3..8; QC without positions at d 8; 3 seeds), "
                 "about 9 minutes on 2 CPU cores",
        "repro": "201 runs (QC and MFC with BOS, d 4/8/12/16/32/64 × m 3..min(24, 2d), MFC m 3..min(12, 2d); "
                 "3 seeds, the quick recipe), about 19 minutes on 2 quiet CPU cores (measured)",
        "paper": "720 runs (QC+MFC, 6 d × 20 m × 3 seeds, 100k steps), for a GPU",
    },
    labels={"seed": "seed", "d": "model.d_model", "m": "task.m", "task": "task.kind"},
    design=frozenset({"variant"}),
    experiments=(THRESHOLD, OOD, CONSTRUCTIONS),
    protocol=protocol_rows,
    report_options=ReportOptions,
)
