"""Counting study (Yehudai et al. 2024, "When can transformers count to n?")."""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.counting.study import paper, quick, smoke


def _report(store, out_dir):
    from limitlab.studies.counting.report import write_report

    return write_report(store, out_dir)


STUDY = Study(
    name="counting",
    question="Can a transformer count (QC, MFC)? m_thr vs embedding size d; hand-wired constructions",
    reproduces="Yehudai et al. 2024, 'When can transformers count to n?' (arXiv 2407.15160)",
    presets={"smoke": smoke, "quick": quick, "paper": paper},
    report=_report,
    preset_notes={
        "smoke": "8 runs (QC+MFC with BOS, d 8/16 × m 3/4, 400 steps), seconds on a CPU",
        "quick": "54 runs (QC with BOS, d 4/8/16 × m 3..16 × 3 seeds), minutes on a CPU",
        "paper": "720 runs (QC+MFC, 6 d × 20 m × 3 seeds, 100k steps), for a GPU",
    },
    labels={"seed": "seed", "d": "model.d_model", "m": "task.m", "task": "task.kind"},
    design=frozenset({"variant"}),
)
