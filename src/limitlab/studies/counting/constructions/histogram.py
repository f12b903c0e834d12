"""The histogram constructions (d ≥ m): QC with one layer (§3.1) and MFC with a second, max-selecting layer (§3.3).

Both read the count off the BOS attention mass z with the zero-hidden-width rounding decoder
ℓ_k(z) = a·(2t_k − t_k²·z) (see the package docstring).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from limitlab.nn.model import StackedTransformer
from limitlab.studies.counting.constructions.wiring import (
    Query,
    blank_model,
    coherence,
    histogram_capacity,
    pow2_at_least,
    qc_task,
    query_offset,
    unit_codes,
    wire_attention,
)
from limitlab.tasks.counting import CountingTask

__all__ = ["histogram_model", "mfc_histogram_model"]


def _tangent_head(model: StackedTransformer, slot: int, a: float, t: torch.Tensor) -> None:
    """The rounding decoder on residual coordinate ``slot``: class k scores a·(2t_k − t_k²·z); ``t`` (classes,)."""
    with torch.no_grad():
        model.head.weight[0, slot] = (-a * t * t).float()
        model.head.bias[0, 0] = (2 * a * t).float()


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
    task = qc_task(m, n, query)
    n = task.length
    cap = histogram_capacity(d_model, n_heads)
    if cap < 1:
        raise ValueError(f"d_model={d_model} with {n_heads} heads leaves no symbol direction")
    hd = d_model // n_heads
    model = blank_model(task, d_model, n_heads, n_layers, d_mlp, "relu")
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
    wire_attention(model, codes, head_of, beta, slot)
    o = query_offset(query)
    a = logit_scale if logit_scale is not None else pow2_at_least(20.0 * (n + 1 + o))
    _tangent_head(model, slot, a, torch.arange(task.classes, dtype=torch.float64) + 1 + o)
    model.construction_info = {"beta": beta, "extra_dims": n_heads, "capacity": cap, "mlp_width": 0,  # type: ignore[assignment]
                               "coherence": coherence(codes) if m > cap else 0.0}
    return model, task


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
    model = blank_model(task, d_model, 1, 2, None, "relu")
    if m <= cap:
        codes = torch.eye(d_model - 1, dtype=torch.float64)[torch.arange(m)]
    elif overflow == "cyclic":
        codes = torch.eye(d_model - 1, dtype=torch.float64)[torch.arange(m) % cap]
    elif overflow == "random":
        codes = torch.cat([unit_codes(m, cap, "random", seed), torch.zeros(m, 1, dtype=torch.float64)], 1)
    else:
        raise ValueError(f"unknown overflow {overflow!r}")
    flag, chosen = d_model - 1, d_model - 2
    wire_attention(model, codes, torch.zeros(m, dtype=torch.long), beta, flag)
    attn, d = model.blocks[1].attn, d_model
    a = logit_scale if logit_scale is not None else pow2_at_least(20.0 * (n + 1))
    with torch.no_grad():
        attn.qkv.bias[0, 0, 0] = gamma * math.sqrt(d)  # constant query
        attn.qkv.weight[0, flag, d] = -1.0  # key = -slot
        attn.qkv.weight[0, flag, 2 * d] = 1.0  # value = slot
        attn.out.weight[0, 0, chosen] = 1.0
    _tangent_head(model, chosen, a, torch.arange(task.classes, dtype=torch.float64) + 1)
    model.construction_info = {"beta": beta, "gamma": gamma, "extra_dims": 2, "capacity": cap,  # type: ignore[assignment]
                               "mlp_width": 0, "coherence": coherence(codes) if m > cap else 0.0}
    return model, task
