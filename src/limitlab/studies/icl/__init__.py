"""In-context regression study (Garg et al. 2022; Yadlowsky et al. 2023).

Transformers pretrained on prompts (x_1, f(x_1), …, x_n, f(x_n)) of function families — dense and sparse linear,
2-layer ReLU nets, decision trees, sinusoids and per-sequence mixtures of them (tasks ``icl_*``) — are evaluated
against least squares, Lasso, k-NN, averaging and exact Bayes-optimal predictors (:mod:`.baselines`) on the same
prompts (:mod:`.evaluate`, :mod:`.results`), with Garg's out-of-distribution prompt sets and Yadlowsky's sweeps;
the claims are data (:mod:`.claims`) judged by the report's experiments (:mod:`.report`) on the study contract.
"""

from __future__ import annotations

from limitlab.studies.base import Study
from limitlab.studies.icl.claims import protocol
from limitlab.studies.icl.report import EXPERIMENTS
from limitlab.studies.icl.study import ReportOptions, paper, quick, repro, smoke

STUDY = Study(
    name="icl",
    question="In-context regression on function classes and mixtures vs least squares, Lasso and exact Bayes",
    reproduces="Garg et al. 2022 (arXiv 2208.01066); Yadlowsky et al. 2023 (arXiv 2311.00871)",
    presets={"smoke": smoke, "quick": quick, "repro": repro, "paper": paper},
    experiments=EXPERIMENTS,
    protocol=protocol,
    preset_notes={
        "smoke": "2 runs (dense, dense+sine mixture; d = 3, 60 steps), seconds on a CPU",
        "quick": "6 runs (dense and sparse linear, d = 5, 3 seeds), minutes on a CPU",
        "repro": "12 runs (dense, sparse, dense + sine balanced and with a rare sine; d = 5, 3 seeds), ≤ 30 CPU min",
        "paper": "27 runs (Garg's 12-layer model, 500k steps, 9 pretraining distributions × 3 seeds), for a GPU",
    },
    save_weights=True,
    labels={"seed": "seed"},
    design=frozenset({"pretrain"}),
    report_options=ReportOptions,
)
