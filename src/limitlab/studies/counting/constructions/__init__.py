"""Hand-wired counting transformers (counting.md §3): ordinary ``StackedTransformer`` models with SET weights.

The QC constructions are one-layer, one-working-head, no-LayerNorm, no-position causal decoders over the QC task with a
BOS token (``CountingTask(kind="qc", bos=True)``). Everything happens at the read-out (last) position. Let c be
the count of the query token q and t = c + 1 + o, where o = 0 for ``query="last"`` (q is the last sequence token
and is one of its own c copies) and o = 1 for ``query="appended"`` (q follows a separator and sees itself once
more). Symbol codes live in "code" directions of the residual stream; one extra direction, the *slot* (the last
coordinate), is 1 on BOS and 0 on every other token.

**Attention.** ``q = β√hd·(code(x) + e_slot)`` (the e_slot part is a query bias) and ``k = x``, so after the
1/√hd scaling the read-out scores BOS at exactly β, each copy of q at β, and any other symbol s at β·code(q)·code(s).
The value copies the slot, so the head writes the BOS attention mass into the slot::

    z = 1 / (t + I),   I = Σ_{s≠q} c_s·exp(-β(1 - code(q)·code(s)))   (interference; 0 for orthogonal codes)

Example, ``query="last"``: ``BOS a c a b c a`` with q = a (c = 3, t = 4) and orthogonal codes: the read-out
puts weight 1/4 on BOS and on each of the three a's, so z = 1/4.

**Decoders.** Both recover c = round(1/z − 1 − o) and differ in where the inverse 1/z is computed:

* :func:`histogram_model` (§3.1, d ≥ m): one-hot codes and a **zero-hidden-width** head. Class k gets the
  line ℓ_k(z) = a·(2t_k − t_k²·z), t_k = k + 1 + o: the tangent of a/z at z = 1/t_k. Since
  ℓ_k(z) = a/z − a·z·(1/z − t_k)², argmax_k ℓ_k(z) = the t_k nearest to 1/z, i.e. the count rounded (consecutive
  lines cross where 1/z is a half-integer). E.g. z = 1/4, o = 0: ℓ_2 = a·(2·3 − 9/4) = 3.75a,
  ℓ_3 = a·(2·4 − 16/4) = 4a, ℓ_4 = a·(2·5 − 25/4) = 3.75a -> class 3. The margin between neighbours is a/t
  against logits of size ≈ a·t; with a a power of two the weights are exact in float32 for t < 4096, and
  float32 decodes every count up to ≥ 4000 (measured; it fails from ≈ 5200 at n = 6000, float64 does not).
* :func:`count_attend_model` (§3.2, d < m): random unit codes in d − 1 dims, β large enough that I stays
  tiny, and the model's own **MLP inverts z**: a continuous piecewise-linear y(z) ≈ 1/z − 1 − o with one ReLU
  unit per linear piece (see :func:`mlp_width_needed`); the head then only rounds the scalar y
  (ℓ_k = a·(k·y − k²/2) up to centring). The MLP width bounds the largest count decoded exactly.

:func:`mfc_histogram_model` adds a second layer that selects the smallest z over positions (§3.3) for MFC.

Precision: evaluation runs in float32. Ties between BOS and copies are exact (same arithmetic), z = 1/(c+1) is
correctly rounded, and both decoders keep a margin; ``.double()`` models also work with ``evaluate()``.

Modules: :mod:`.wiring` (shared pieces: capacity, blank model, attention wiring, codes), :mod:`.histogram`
(§3.1 and the MFC model, §3.3), :mod:`.count_attend` (§3.2 and the piecewise-linear inverse), :mod:`.grid`
(evaluation helpers).
"""

from __future__ import annotations

from limitlab.studies.counting.constructions.count_attend import (
    COUNT_ATTEND_EXTRA_DIRECTIONS,
    InversePieces,
    count_attend_model,
    inverse_pieces,
    max_exact_count,
    mlp_width_needed,
)
from limitlab.studies.counting.constructions.grid import construction_cell, construction_grid, count_sweep
from limitlab.studies.counting.constructions.histogram import histogram_model, mfc_histogram_model
from limitlab.studies.counting.constructions.wiring import coherence, histogram_capacity, unit_codes

__all__ = [
    "COUNT_ATTEND_EXTRA_DIRECTIONS",
    "InversePieces",
    "coherence",
    "construction_cell",
    "construction_grid",
    "count_attend_model",
    "count_sweep",
    "histogram_capacity",
    "histogram_model",
    "inverse_pieces",
    "max_exact_count",
    "mfc_histogram_model",
    "mlp_width_needed",
    "unit_codes",
]
