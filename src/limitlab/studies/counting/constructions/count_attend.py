"""CountAttend (§3.2, d < m): near-orthogonal codes, a large β, and an MLP that inverts the BOS attention mass z.

The MLP is a continuous piecewise-linear y(z) ≈ 1/z − 1 − o with one ReLU unit per linear piece
(:func:`inverse_pieces`); its width bounds the largest count decoded exactly (:func:`mlp_width_needed`,
:func:`max_exact_count`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from limitlab.nn.model import StackedTransformer
from limitlab.studies.counting.constructions.wiring import (
    Query,
    blank_model,
    coherence,
    pow2_at_least,
    qc_task,
    query_offset,
    unit_codes,
    wire_attention,
)
from limitlab.tasks.counting import CountingTask

__all__ = ["COUNT_ATTEND_EXTRA_DIRECTIONS", "InversePieces", "count_attend_model", "inverse_pieces",
           "max_exact_count", "mlp_width_needed"]

COUNT_ATTEND_EXTRA_DIRECTIONS = 1  # the BOS-flag / z / y slot; codes use the other d - 1 directions
_DEFAULT_MARGIN = 0.1


# ----------------------------------------------------------------------------------------------------------------
# the piecewise-linear inverse of z = 1/t


@dataclass(frozen=True)
class InversePieces:
    """A continuous piecewise-linear y(z) through the points (1/τ_i, τ_i − 1 − o − h), i = 0..P.

    In t = 1/z the chord of t between knots A < B overshoots by e(t) = (t − A)(B − t)/t ∈ [0, (√B − √A)²];
    shifting it down by h = ``half_width`` keeps |y − c| ≤ h at every count c whose t lies in a piece with
    max e ≤ 2h. Outside [τ_0, τ_P] the first/last pieces extend linearly (below the curve, so a count past the
    reach decodes too small — that is how a too-narrow MLP fails).
    """

    knots: tuple[float, ...]  # τ_0 < τ_1 < … < τ_P (t-space)
    half_width: float

    @property
    def pieces(self) -> int:
        return len(self.knots) - 1

    @property
    def t_reach(self) -> int:
        """Largest integer t inside the tolerance band."""
        return math.floor(self.knots[-1] + 1e-9)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """The interpolant of t = 1/z at the points ``t`` (float64), before the shift: y = this − 1 − o − h."""
        k = torch.tensor(self.knots, dtype=torch.float64)
        t = t.to(torch.float64)
        i = (torch.searchsorted(k, t) - 1).clamp(0, self.pieces - 1)
        a, b = k[i], k[i + 1]
        return a + b - a * b / t  # the chord of t through (1/a, a), (1/b, b), as a function of z = 1/t


def inverse_pieces(t_max: float | None, half_width: float, max_pieces: int | None = None,
                   t_min: float = 2.0) -> InversePieces:
    """Greedy knots: from τ_i, take the largest τ_{i+1} such that every integer t in (τ_i, τ_{i+1}) has
    (t − τ_i)(τ_{i+1} − t)/t ≤ 2·half_width; stop once τ ≥ t_max or after ``max_pieces``. Each piece spans
    ≈ √(2·half_width) in √t, so P ≈ (√t_max − √2)/√(2·half_width) (≈ √n for half_width → 1/2)."""
    if not 0 < half_width <= 0.5:
        raise ValueError(f"half_width must be in (0, 0.5], got {half_width}")
    if t_max is None and max_pieces is None:
        raise ValueError("give t_max or max_pieces")
    w = 2 * half_width
    knots = [float(t_min)]
    while len(knots) == 1 or ((t_max is None or knots[-1] < t_max)
                              and (max_pieces is None or len(knots) - 1 < max_pieces)):
        a, b, t = knots[-1], math.inf, math.floor(knots[-1]) + 1
        while t < b:
            b = min(b, t + w * t / (t - a))
            t += 1
        knots.append(b)
    return InversePieces(tuple(knots), half_width)


def mlp_width_needed(n: int, margin: float = _DEFAULT_MARGIN, query: Query = "last") -> int:
    """Smallest MLP width (ReLU units = linear pieces) with which :func:`count_attend_model` decodes every count
    1..n (0..n for ``query="appended"``) inside the band |y − c| ≤ 1/2 − ``margin``.

    The margin absorbs attention interference and float32 rounding; ``margin → 0`` gives the bare minimum of this
    construction (≈ √n; e.g. n=100 → 9, n=1000 → 31), the default 0.1 a bit more (n=100 → 10, n=1000 → 34).
    Monotone in n.
    """
    return inverse_pieces(n + 1 + query_offset(query), 0.5 - margin).pieces


def max_exact_count(width: int, margin: float = _DEFAULT_MARGIN, query: Query = "last") -> int:
    """Largest count c such that every count ≤ c is inside the band with ``width`` pieces (inverse of
    :func:`mlp_width_needed`: ``max_exact_count(mlp_width_needed(n)) >= n``)."""
    return inverse_pieces(None, 0.5 - margin, max_pieces=width).t_reach - 1 - query_offset(query)


# ----------------------------------------------------------------------------------------------------------------
# CountAttend (d < m)


def count_attend_model(
    d_model: int,
    m: int,
    n: int | None = None,
    mlp_width: int | None = None,
    beta: float | None = None,
    seed: int = 0,
    codes: Literal["random", "optimized", "onehot"] = "random",
    margin: float = _DEFAULT_MARGIN,
    activation: Literal["relu", "gelu"] = "relu",
    query: Query = "last",
    n_layers: int = 1,
    logit_scale: float | None = None,
) -> tuple[StackedTransformer, CountingTask]:
    """The §3.2 CountAttend construction for d < m: near-orthogonal codes + an MLP inverse of z.

    Extra directions: 1 (the slot: BOS flag -> z -> y); the m codes are unit vectors in the other d − 1 dims
    (``codes``: seeded Gaussian, or 'optimized' for lower coherence ρ). With ρ = max code_s·code_t, the
    interference obeys I ≤ (#other tokens)·e^{−β(1−ρ)}; ``beta=None`` picks β = ln(2n / (margin/4)) / (1 − ρ), so
    I ≤ margin/4 even on the 2n-token OOD split (capped at 10⁴: with ρ → 1 codes are indistinguishable).

    The MLP (width ``mlp_width``, default :func:`mlp_width_needed` ``(n, margin)``) computes
    y(z) = const + s_1·ReLU(1 − z) + Σ_i Δs_i·ReLU(ζ_i − z), the :func:`inverse_pieces` interpolant with kinks at
    ζ_i = 1/τ_i; slope s_i = τ_{i−1}τ_i per piece. ReLU(1 − z) = 1 − z is the linear part (z ≤ 1/2). With GELU
    each unit runs as GELU(K·u)/K with K large, which equals ReLU(u) to far below the margin. The MLP writes
    y − K0 − z into the slot (K0 = mid count, for float32 headroom) and the head rounds: ℓ_k = a·((k−K0)·v −
    (k−K0)²/2), argmax = round(v + K0). A width below the need keeps the first ``mlp_width`` pieces, so counts
    up to :func:`max_exact_count` ``(mlp_width)`` are exact and larger ones decode too small.

    Example: ``count_attend_model(16, 40, 400)`` (d=16 < m=40; width 21) is exact on the test split.
    """
    if d_model < 2:
        raise ValueError("count_attend needs d_model >= 2 (one code dim + the slot)")
    task = qc_task(m, n, query)
    n = task.length
    o = query_offset(query)
    pieces = inverse_pieces(n + 1 + o, 0.5 - margin, max_pieces=mlp_width)
    width = mlp_width if mlp_width is not None else pieces.pieces
    if width < 1:
        raise ValueError("mlp_width must be >= 1")
    code = unit_codes(m, d_model - 1, codes, seed)
    rho = coherence(code)
    if beta is None:
        beta = min(1e4, math.log(2 * n / (margin / 4)) / max(1.0 - rho, 1e-12))
    model = blank_model(task, d_model, 1, n_layers, width, activation)
    slot = d_model - 1
    wire_attention(model, code, torch.zeros(m, dtype=torch.long), beta, slot)

    # MLP: units i = 0..P-1; unit 0 = ReLU(1 - z) (linear), unit i>0 = ReLU(ζ_i - z) with ζ_i = 1/τ_i.
    tau = torch.tensor(pieces.knots, dtype=torch.float64)
    h = pieces.half_width
    slopes = tau[:-1] * tau[1:]  # dy/d(-z) on piece i (between ζ_{i} and ζ_{i+1})
    kink = torch.cat([torch.ones(1, dtype=torch.float64), 1 / tau[1:-1]])  # activation points
    coef = torch.cat([slopes[:1], slopes[1:] - slopes[:-1]])
    k0 = (1 - o + n) // 2  # centre of the count range
    y0 = tau[0] - 1 - o - h  # y at z = ζ_0 = 1/τ_0
    const = y0 - slopes[0] * (1 - 1 / tau[0])  # y = const + s_1·(1 - z) + Σ_{i≥1} Δs_i·ReLU(ζ_i - z) on z ≤ ζ_0
    coef = coef.clone()
    coef[0] += 1.0  # the slot already holds z: output y - K0 - z, and -z = (1 - z) - 1
    const = const - 1.0 - k0
    gain = 1.0
    if activation == "gelu":
        gain = float(50.0 * coef.abs().max() / margin)
    up, down = model.blocks[0].mlp.up, model.blocks[0].mlp.down
    p = pieces.pieces
    with torch.no_grad():
        up.weight[0, slot, :p] = -gain
        up.bias[0, 0, :p] = (gain * kink).float()
        down.weight[0, :p, slot] = (coef / gain).float()
        down.bias[0, 0, slot] = float(const)
        a = logit_scale if logit_scale is not None else pow2_at_least(20.0 / margin)
        k = torch.arange(task.classes, dtype=torch.float64) - k0
        model.head.weight[0, slot] = (a * k).float()
        model.head.bias[0, 0] = (-a * k * k / 2).float()
    model.construction_info = {"beta": beta, "coherence": rho, "mlp_width": width, "pieces": p,
                               "extra_dims": COUNT_ATTEND_EXTRA_DIRECTIONS,
                               "max_exact_count": max_exact_count(p, margin, query)}  # type: ignore[assignment]
    return model, task
