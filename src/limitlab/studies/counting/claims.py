"""The counting study's claims as data (:mod:`limitlab.claims`), written from the paper's statements (reference:
counting.md) before the runs. Source tags as in counting.md: [V] checked in a source, [B] from a news article
about the paper only, [R] recalled, unverified, [A] our own analysis.

Thresholds and where they come from:

* **m_thr/d ∈ [2/3, 3/2].** The v3 abstract puts a sharp phase transition at d ≥ m, with a "strict performance
  drop at the theoretical threshold" — the histogram construction needs d ≥ m (d ≥ m + 1 with a BOS direction) —
  so the trained 80% threshold should sit at m ≈ d: m_thr/d ≈ 1. The tolerance is one step of the quick m grid
  (3, 4, 6, 8, 12, 16: neighbours differ by a factor up to 1.5), the resolution at which m_thr is measured.
* **Linear in d**: the line must be clearly better supported (AICc lower by ≥ 2, the usual mark) than a constant,
  √d, log d and a parabola (:class:`limitlab.claims.BestShape`) — not merely rise.
* **Sharp**: accuracy falls from 0.8 to 0.5 within a factor 2 in m. The paper gives no number; 2 is ours.
* **Catastrophic OOD**: a learned model keeps at most half its test accuracy at 2·n tokens. The paper gives no
  number; 0.5 is ours.
* **Which preset decides.** The shape, m_thr/d and MFC ≤ QC rows name the ``repro`` preset (five d from 4 to 32,
  QC and MFC); a report judges them on whatever runs its store holds (quick's three d decide them too, less
  sharply). Keep one preset per store: quick and repro train most of the same (task, d, m, seed) cells under
  different run ids.
* **Constructions**: exact means accuracy 1.0 on every evaluated cell of the regime (no seeds: hand-wired).
"""

from __future__ import annotations

from limitlab.claims import AtLeast, AtMost, BestShape, Claim, Within

PAPER = "Yehudai et al. 2024"
RIVALS = ("constant", "sqrt", "log", "quadratic")
LINEAR_UNTESTED = ("the slope (the paper reports none; ours is in the table); a power law c·d^k (its exponent is "
                   "shown, not tested: over a 4× range of d it mimics a line with an intercept); censored m_thr "
                   "(left out); AICc treats the per-seed points as independent with equal noise, so there is no "
                   "interval over seeds; the quick preset's 3 values of d cannot tell d^1.5 from a line (the repro "
                   "preset has 6, d = 4 … 64); convergence at every d (at 3,000 steps the larger d are not; d = 64 "
                   "barely trains)")


def _linear(task: str) -> Claim:
    return Claim(
        f"counting.mthr_linear_{task}", PAPER, "Figure mthr.png [B] news article",
        f"the threshold vocabulary m_thr of {task.upper()} grows ~linearly with the embedding size d",
        "AICc(closest rival) − AICc(line), fitted to the per-seed uncensored m_thr",
        BestShape("linear", RIVALS), untested=LINEAR_UNTESTED, preset="repro")


def _at_d(task: str) -> Claim:
    return Claim(
        f"counting.threshold_at_d_{task}", PAPER, "v3 abstract [V]",
        f"{task.upper()} accuracy drops sharply at the theoretical threshold d ≈ m (the histogram needs d ≥ m)",
        "m_thr / d (per seed, mean over the d with an uncensored m_thr)", Within(2 / 3, 3 / 2),
        untested="d at which m_thr is censored (left out); the other claims' shape and sharpness; the exact "
                 "threshold with BOS (d ≥ m + 1) is inside the tolerance at d ≥ 4", preset="repro")


MTHR_LINEAR_QC, MTHR_LINEAR_MFC = _linear("qc"), _linear("mfc")
AT_D_QC, AT_D_MFC = _at_d("qc"), _at_d("mfc")

SHARP = Claim(
    "counting.transition_sharp", PAPER, "v3 abstract [V]",
    "the phase transition is sharp (a strict performance drop)",
    "factor in m over which QC accuracy falls from 0.8 to 0.5 (per seed, mean over d where both are on the grid)",
    AtMost(2.0), untested="curves whose 0.5 crossing lies beyond the m grid (left out); the factor 2 is ours, the "
                          "paper gives no number")

MFC_LE_QC = Claim(
    "counting.mfc_le_qc", "counting.md §6 [A]", "our expectation from §3.3",
    "MFC is no easier than QC: m_thr(MFC) ≤ m_thr(QC) at the same d",
    "m_thr(QC) − m_thr(MFC), paired per (d, seed), mean over d per seed", AtLeast(0.0),
    untested="pairs where either threshold is censored (counted and left out); a strict gap", preset="repro")

OOD_LONG = Claim(
    "counting.ood_long", PAPER, "v3 abstract [V]",
    "catastrophic OOD failure when scaling the context length",
    "share of test accuracy kept at 2·n tokens by the no-position (NoPE) models that learned (test ≥ 0.8), "
    "per seed", AtMost(0.5),
    untested="learned-position models: their failure at 2·n is guaranteed by the set-up (position rows beyond n "
             "are never trained) and is shown, not judged; counts never seen in training are classes the head "
             "never learned, for every model; OOD in the vocabulary size is not measured; 0.5 is ours")

HISTOGRAM_QC = Claim(
    "counting.histogram_qc", PAPER, "v3 abstract [V]; construction [R]",
    "d ≥ m suffices: a transformer can perfectly maintain token counts (QC)",
    "the worst test and ood_long accuracy of the hand-wired histogram model over the evaluated cells with "
    "m ≤ d − 1 (one direction is the BOS flag)", AtLeast(1.0), min_seeds=1,
    untested="learnability (the weights are set, not trained); cells outside the regime (shown)")

HISTOGRAM_MFC = Claim(
    "counting.histogram_mfc", PAPER, "v3 abstract [V]; construction §3.3 [A]",
    "d ≥ m suffices for the most-frequent count too (histogram + a max-selection layer)",
    "the worst test and ood_long accuracy of the hand-wired histogram + max model over the evaluated cells "
    "with m ≤ d − 2", AtLeast(1.0), min_seeds=1,
    untested="learnability (the weights are set, not trained); cells outside the regime (shown)")

COUNT_ATTEND = Claim(
    "counting.count_attend", "counting.md §3.2 [A]", "our simulation",
    "m > d is still expressible exactly by a hand-wired model: the barrier is learnability, not expressivity",
    "the worst test accuracy of the hand-wired CountAttend model over the evaluated QC cells with m ≥ d",
    AtLeast(1.0), min_seeds=1,
    untested="the paper's claim that such weights must scale polynomially (β and the MLP width are shown)")
