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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from limitlab.nn.model import ModelConfig, StackedTransformer
from limitlab.tasks.counting import BOS, FIRST_SYMBOL, SEP, CountingTask
from limitlab.train.metrics import evaluate

__all__ = [
    "COUNT_ATTEND_EXTRA_DIRECTIONS",
    "InversePieces",
    "coherence",
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

Query = Literal["last", "appended"]
COUNT_ATTEND_EXTRA_DIRECTIONS = 1  # the BOS-flag / z / y slot; codes use the other d - 1 directions
_DEFAULT_MARGIN = 0.1


# ----------------------------------------------------------------------------------------------------------------
# shared pieces


def histogram_capacity(d_model: int, n_heads: int = 1) -> int:
    """Symbols the histogram construction codes orthogonally: each head's hd = d/H dims hold the BOS flag and
    hd − 1 one-hot symbol directions, so capacity = H·(hd − 1) = d − H (extra directions: one per head)."""
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return d_model - n_heads


def _pow2(x: float) -> float:
    """The power of two ≥ x: a head scale that keeps the integer-valued head weights exact in float32."""
    return 2.0 ** math.ceil(math.log2(x))


def _offset(query: Query) -> int:
    return 0 if query == "last" else 1


def _task(m: int, n: int | None, query: Query) -> CountingTask:
    return CountingTask(kind="qc", m=m, n=n, bos=True, query=query)


def _blank(task: CountingTask, d_model: int, n_heads: int, n_layers: int, d_mlp: int | None,
           activation: str) -> StackedTransformer:
    """A one-model stack with every parameter zero (a zero block is the identity: no attention output, no MLP)."""
    longest = task.splits()["ood_long"].seq_len()
    cfg = ModelConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_mlp=d_mlp, activation=activation,
                      norm="none", position="none", causal=True, max_len=max(512, longest), bias=True)
    model = StackedTransformer(cfg, 1, task.vocab_size(), task.n_outputs())
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def _wire_attention(model: StackedTransformer, codes: torch.Tensor, head_of: torch.Tensor, beta: float,
                    slot: int) -> None:
    """Block 0's attention: symbol s has code ``codes[s]`` (in residual dims head·(hd−1) + 0..hd−2) in head
    ``head_of[s]``. In every head, chunk column 0 is the BOS flag; the query bias puts β√hd there, so BOS scores
    β in every head. Each head's value copies the slot; the out projection sums heads into the slot and its bias
    removes the H − 1 heads that do not own the query (they put all their mass, exactly 1, on BOS)."""
    attn = model.blocks[0].attn
    d, h_n, hd = model.cfg.d_model, attn.n_heads, attn.head_dim
    scale = beta * math.sqrt(hd)
    emb = model.embed.weight[0]
    with torch.no_grad():
        emb[BOS, slot] = 1.0
        wq, wk, wv = (attn.qkv.weight[0, :, i * d:(i + 1) * d] for i in range(3))
        for h in range(h_n):
            base = h * (hd - 1)
            rows = slice(base, base + hd - 1)
            cols = slice(h * hd + 1, (h + 1) * hd)
            wq[rows, cols] = scale * torch.eye(hd - 1)
            wk[rows, cols] = torch.eye(hd - 1)
            wk[slot, h * hd] = 1.0
            attn.qkv.bias[0, 0, h * hd] = scale  # the q bias: every query scores BOS at β
            wv[slot, h * hd] = 1.0
            attn.out.weight[0, h * hd, slot] = 1.0
        attn.out.bias[0, 0, slot] = -(h_n - 1)
        for s in range(codes.shape[0]):
            base = int(head_of[s]) * (hd - 1)
            emb[FIRST_SYMBOL + s, base:base + hd - 1] = codes[s].to(emb.dtype)


def unit_codes(m: int, dim: int, kind: Literal["random", "optimized", "onehot", "cyclic"] = "random",
               seed: int = 0, steps: int = 400) -> torch.Tensor:
    """(m, dim) unit codes. 'onehot' needs m ≤ dim; 'cyclic' = one-hot of s mod dim (symbols collide);
    'random' = i.i.d. Gaussian directions (coherence ~ √(2 log m / dim)); 'optimized' = random, then ``steps``
    of projected gradient descent on a soft maximum of the pairwise cosines (lower coherence, hence a smaller β)."""
    if kind == "onehot":
        if m > dim:
            raise ValueError(f"{m} one-hot codes do not fit in {dim} dims")
        return torch.eye(dim, dtype=torch.float64)[:m]
    if kind == "cyclic":
        return torch.eye(dim, dtype=torch.float64)[torch.arange(m) % dim]
    if kind not in ("random", "optimized"):
        raise ValueError(f"unknown code kind {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(m, dim, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    if kind == "optimized" and m > 1:  # projected gradient descent on the sphere, L = logsumexp(κ·cos)/κ
        eye, kappa = torch.eye(m, dtype=torch.bool), 30.0
        for _ in range(steps):
            w = torch.softmax((kappa * (u @ u.T)).masked_fill(eye, -math.inf).flatten(), 0).view(m, m)
            grad = (w + w.T) @ u
            grad = grad - (grad * u).sum(1, keepdim=True) * u
            u = u - 0.03 * m * grad
            u = u / u.norm(dim=1, keepdim=True)
    return u / u.norm(dim=1, keepdim=True)


def coherence(codes: torch.Tensor) -> float:
    """max_{s≠t} code_s·code_t (signed: anti-aligned codes do not interfere); 0 for a single code."""
    if codes.shape[0] < 2:
        return 0.0
    g = codes @ codes.T
    return float(g.masked_fill(torch.eye(len(codes), dtype=torch.bool), -math.inf).max())


# ----------------------------------------------------------------------------------------------------------------
# histogram (d ≥ m)


def histogram_model(
    d_model: int,
    m: int,
    n: int | None = None,
    n_heads: int = 1,
    beta: float = 30.0,
    overflow: Literal["cyclic", "random"] = "cyclic",
    query: Query = "last",
    n_layers: int = 1,
    d_mlp: int | None = None,
    logit_scale: float | None = None,
    seed: int = 0,
) -> tuple[StackedTransformer, CountingTask]:
    """The §3.1 histogram construction: exact QC whenever ``m <= histogram_capacity(d_model, n_heads)``.

    Extra directions: one per head (``n_heads``), so m ≤ d − 1 with one head. Symbol s gets a one-hot
    direction in the q/k chunk of head s // (hd − 1); the residual's last coordinate is the BOS flag and, at the
    read-out, holds z = 1/(c + 1 + o) (BOS mass; other symbols score 0 so the only error is
    (n − c)·e^{−β} ≈ 1e−13·n at β = 30, far below float32 resolution). The head is the zero-hidden-width
    rounding decoder ℓ_k(z) = a·(2t_k − t_k²z), t_k = k + 1 + o (see the module docstring), a = ``logit_scale``
    (default: the power of two ≥ 20·(n + 1 + o), a logit margin ≥ 20 at every count). Example: d=8, m=7, n=70
    is exact. ``model.construction_info`` records beta, extra_dims, capacity.

    When m exceeds the capacity the model still builds, and breaks in one of two documented ways:
    ``overflow="cyclic"`` — symbol s reuses direction s mod capacity, so colliding symbols are counted together
    (accuracy ≈ the share of queries whose direction no other present symbol shares); ``overflow="random"`` —
    random unit codes (seeded by ``seed``) with the fixed β, so non-orthogonal symbols leak attention mass
    (interference I above). MLP and later layers (``n_layers`` > 1) are zero, i.e. the identity.
    """
    task = _task(m, n, query)
    n = task.length
    cap = histogram_capacity(d_model, n_heads)
    if cap < 1:
        raise ValueError(f"d_model={d_model} with {n_heads} heads leaves no symbol direction")
    hd = d_model // n_heads
    model = _blank(task, d_model, n_heads, n_layers, d_mlp, "relu")
    if m <= cap:
        head_of, codes = torch.arange(m) // (hd - 1), torch.eye(hd - 1, dtype=torch.float64)[torch.arange(m) % (hd - 1)]
    elif overflow == "cyclic":
        slot_of = torch.arange(m) % cap
        head_of, codes = slot_of // (hd - 1), torch.eye(hd - 1, dtype=torch.float64)[slot_of % (hd - 1)]
    elif overflow == "random":
        head_of, codes = torch.arange(m) % n_heads, unit_codes(m, hd - 1, "random", seed)
    else:
        raise ValueError(f"unknown overflow {overflow!r}")
    slot = d_model - 1
    _wire_attention(model, codes, head_of, beta, slot)
    o = _offset(query)
    a = logit_scale if logit_scale is not None else _pow2(20.0 * (n + 1 + o))
    t = torch.arange(task.classes, dtype=torch.float64) + 1 + o
    with torch.no_grad():
        model.head.weight[0, slot] = (-a * t * t).float()
        model.head.bias[0, 0] = (2 * a * t).float()
    model.construction_info = {"beta": beta, "extra_dims": n_heads, "capacity": cap, "mlp_width": 0,  # type: ignore[assignment]
                               "coherence": coherence(codes) if m > cap else 0.0}
    return model, task


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
    return inverse_pieces(n + 1 + _offset(query), 0.5 - margin).pieces


def max_exact_count(width: int, margin: float = _DEFAULT_MARGIN, query: Query = "last") -> int:
    """Largest count c such that every count ≤ c is inside the band with ``width`` pieces (inverse of
    :func:`mlp_width_needed`: ``max_exact_count(mlp_width_needed(n)) >= n``)."""
    return inverse_pieces(None, 0.5 - margin, max_pieces=width).t_reach - 1 - _offset(query)


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
    task = _task(m, n, query)
    n = task.length
    o = _offset(query)
    pieces = inverse_pieces(n + 1 + o, 0.5 - margin, max_pieces=mlp_width)
    width = mlp_width if mlp_width is not None else pieces.pieces
    if width < 1:
        raise ValueError("mlp_width must be >= 1")
    code = unit_codes(m, d_model - 1, codes, seed)
    rho = coherence(code)
    if beta is None:
        beta = min(1e4, math.log(2 * n / (margin / 4)) / max(1.0 - rho, 1e-12))
    model = _blank(task, d_model, 1, n_layers, width, activation)
    slot = d_model - 1
    _wire_attention(model, code, torch.zeros(m, dtype=torch.long), beta, slot)

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
        a = logit_scale if logit_scale is not None else _pow2(20.0 / margin)
        k = torch.arange(task.classes, dtype=torch.float64) - k0
        model.head.weight[0, slot] = (a * k).float()
        model.head.bias[0, 0] = (-a * k * k / 2).float()
    model.construction_info = {"beta": beta, "coherence": rho, "mlp_width": width, "pieces": p,
                               "extra_dims": COUNT_ATTEND_EXTRA_DIRECTIONS,
                               "max_exact_count": max_exact_count(p, margin, query)}  # type: ignore[assignment]
    return model, task


# ----------------------------------------------------------------------------------------------------------------
# MFC (two layers, §3.3)


def mfc_histogram_model(
    d_model: int,
    m: int,
    n: int | None = None,
    beta: float = 30.0,
    gamma: float = 2.0**20,
    overflow: Literal["cyclic", "random"] = "cyclic",
    logit_scale: float | None = None,
    seed: int = 0,
) -> tuple[StackedTransformer, CountingTask]:
    """MFC = layer-1 histogram at every position + a layer-2 max-selection head; exact for m ≤ d − 2.

    Extra directions: 2 (the BOS-flag/z slot, d − 1, and the selected-count slot, d − 2). Layer 1 is the
    histogram head of :func:`histogram_model`; under the causal mask position i gets z_i = 1/(p_i + 1), p_i =
    occurrences of x_i among x_1..x_i. The last occurrence of each symbol has p_i = its total count, so
    max_i p_i = the MFC answer, i.e. min_i z_i. Layer 2's one head scores key j at −γ·(slot_j) (BOS's slot is
    1 + 1 = 2, never selected) and copies the slot value, so it returns z_min up to e^{−γ·gap}; ties are equal
    values. The gap between 1/(c+1) and 1/(c+2) is ≈ 1/c², so selection is sharp for max counts up to
    ≈ √(γ/20) (≈ 230 at the default γ = 2²⁰; scores stay far inside float32 resolution). The head is the
    rounding decoder of :func:`histogram_model` on the second slot. Example: BOS a b a c -> z = 1/2, 1/2, 1/3,
    1/2 at the four symbols, min 1/3 -> 2. For m > d − 2, ``overflow`` as in :func:`histogram_model`.
    """
    task = CountingTask(kind="mfc", m=m, n=n, bos=True)
    n = task.length
    cap = d_model - 2
    if cap < 1:
        raise ValueError("mfc_histogram_model needs d_model >= 3")
    model = _blank(task, d_model, 1, 2, None, "relu")
    if m <= cap:
        codes = torch.eye(d_model - 1, dtype=torch.float64)[torch.arange(m)]
    elif overflow == "cyclic":
        codes = torch.eye(d_model - 1, dtype=torch.float64)[torch.arange(m) % cap]
    elif overflow == "random":
        codes = torch.cat([unit_codes(m, cap, "random", seed), torch.zeros(m, 1, dtype=torch.float64)], 1)
    else:
        raise ValueError(f"unknown overflow {overflow!r}")
    flag, chosen = d_model - 1, d_model - 2
    _wire_attention(model, codes, torch.zeros(m, dtype=torch.long), beta, flag)
    attn, d = model.blocks[1].attn, d_model
    a = logit_scale if logit_scale is not None else _pow2(20.0 * (n + 1))
    t = torch.arange(task.classes, dtype=torch.float64) + 1
    with torch.no_grad():
        attn.qkv.bias[0, 0, 0] = gamma * math.sqrt(d)  # constant query
        attn.qkv.weight[0, flag, d] = -1.0  # key = -slot
        attn.qkv.weight[0, flag, 2 * d] = 1.0  # value = slot
        attn.out.weight[0, 0, chosen] = 1.0
        model.head.weight[0, chosen] = (-a * t * t).float()
        model.head.bias[0, 0] = (2 * a * t).float()
    model.construction_info = {"beta": beta, "gamma": gamma, "extra_dims": 2, "capacity": cap,  # type: ignore[assignment]
                               "mlp_width": 0, "coherence": coherence(codes) if m > cap else 0.0}
    return model, task


# ----------------------------------------------------------------------------------------------------------------
# evaluation helpers


@torch.no_grad()
def count_sweep(model: StackedTransformer, task: CountingTask, counts: Sequence[int] | None = None,
                per_count: int = 2, seed: int = 0, batch_size: int = 128) -> dict[int, float]:
    """Accuracy at each prescribed count (default every count the head can output, 1..n or 0..n).

    i.i.d. test data only reach counts ≈ n/m ± a few, so this checks the whole range: per count c, build
    ``per_count`` sequences (seeded) with exactly c copies of a random query among uniformly drawn other
    symbols, in the task's format, and read out as ``evaluate`` does. Not a substitute for :func:`evaluate`,
    which remains the accuracy of record.
    """
    n, m, o = task.length, task.m, _offset(task.query)
    if counts is None:
        counts = range(1 - o, min(n, task.classes - 1) + 1)
    counts = [int(c) for c in counts]
    if any(not 1 - o <= c <= n for c in counts):
        raise ValueError(f"counts must lie in {1 - o}..{n}")
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    rows, targets = [], []
    for c in counts:
        for _ in range(per_count):
            q = int(torch.randint(m, (1,), generator=gen))
            other = torch.randint(m - 1, (n,), generator=gen)
            seq = other + (other >= q).long()  # uniform over symbols != q
            if o == 0:
                pos = torch.randperm(n - 1, generator=gen)[: c - 1]
                seq[n - 1] = q
            else:
                pos = torch.randperm(n, generator=gen)[:c]
            seq[pos] = q
            parts = [torch.tensor([BOS]), seq + FIRST_SYMBOL]
            if o:
                parts.append(torch.tensor([SEP, q + FIRST_SYMBOL]))
            rows.append(torch.cat(parts))
            targets.append(min(c, task.classes - 1))
    inputs, target = torch.stack(rows).to(device), torch.tensor(targets, device=device)
    correct = torch.empty(len(rows), dtype=torch.bool, device=device)
    for i in range(0, len(rows), batch_size):
        x = inputs[i:i + batch_size][None]
        readout = torch.full((1, x.shape[1], 1), x.shape[2] - 1, device=device)
        correct[i:i + batch_size] = model(x, readout)[0, :, 0].argmax(-1) == target[i:i + batch_size]
    per = correct.view(len(counts), per_count).float().mean(1).tolist()
    return dict(zip(counts, per))


def construction_grid(
    ds: Sequence[int],
    ms: Sequence[int],
    kind: Literal["histogram", "count_attend", "mfc"] = "histogram",
    n_sequences: int = 400,
    n_factor: int = 10,
    seed: int = 0,
    batch_size: int = 256,
    splits: Sequence[str] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Build the construction for every (d, m) with n = n_factor·m and evaluate it with ``evaluate()``.

    ``kind``: "histogram" / "count_attend" (QC) or "mfc" (:func:`mfc_histogram_model`). Rows: ``{kind, d, m,
    n, accuracy (test split), <split>_accuracy, <split>_loss, exact_regime, extra_dims, beta, mlp_width,
    coherence}``. ``exact_regime`` is m ≤ capacity (histogram: d − n_heads, mfc: d − 2) or "width covers n"
    (count_attend; interference is budgeted by β). ``options`` go to the builder (e.g. ``n_heads``, ``beta``,
    ``overflow``, ``mlp_width``, ``codes``). ``splits`` default: all of the task's splits (test, ood_long).
    """
    rows = []
    for d in ds:
        for m in ms:
            n = n_factor * m
            builders = {"histogram": histogram_model, "count_attend": count_attend_model, "mfc": mfc_histogram_model}
            if kind not in builders:
                raise ValueError(f"unknown construction {kind!r}; one of {sorted(builders)}")
            model, task = builders[kind](d, m, n, seed=seed, **options)
            info = dict(model.construction_info)  # type: ignore[arg-type]
            if kind == "count_attend":
                info["exact_regime"] = info["max_exact_count"] >= task.length
            else:
                info["exact_regime"] = m <= info["capacity"]
            res = evaluate(model, [task], [seed], n_sequences, batch_size, splits)
            row: dict[str, Any] = {"kind": kind, "d": d, "m": m, "n": task.length}
            for split, metrics in res.items():
                row[f"{split}_accuracy"] = metrics["accuracy"][0]
                row[f"{split}_loss"] = metrics["loss"][0]
            row["accuracy"] = row.get("test_accuracy", next(iter(res.values()))["accuracy"][0])
            rows.append(row | info)
    return rows
