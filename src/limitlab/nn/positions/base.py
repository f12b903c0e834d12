"""The position-encoding protocol. A new encoding is one file with a subclass plus one registry line.

An encoding acts at one or more hooks of the stacked transformer:

* ``on_input(h, inputs)``  — add to the residual stream after the token embedding (learned, sinusoidal);
  ``inputs`` are the token ids (M, B, T), or the input vectors of a linear read-in;
* ``on_qk(q, k, pos)``     — transform queries and keys (RoPE);
* ``bias(pos)``            — an additive logit bias that does not depend on q (ALiBi, T5);
* ``on_logits(q, logits, pos)`` — change the attention logits using q (relative, CoPE); the layer then
  materialises the logits instead of calling SDPA.

**Declarations.** What the planner and the spec's checks need to know is read from the class, not its name
(:meth:`PositionEncoding.declaration`): overriding ``on_logits`` sets ``needs_logits`` (the layer materialises
(M, B, H, Tq, Tk) logits); overriding ``bias`` declares a dense (M·B, H, Tq, Tk) bias; a parameter or buffer
sized by ``model.max_len`` declares a length limit (found by building the encoding on the ``meta`` device, so
it costs no memory). An encoding whose hooks keep more for the backward pass than its logits says so in
:meth:`PositionEncoding.saved_values_per_query`. '+' combinations combine declarations field by field::

    >>> from limitlab.nn.positions import declaration
    >>> declaration("learned"), declaration("cope+alibi").attention
    (Declaration(logits=False, bias=False, length_limited=True), 'logits')

Positions are explicit (:class:`AttnPositions`) so that a layer can compute attention for a few query
positions only (the read-out positions of the last layer) and get exactly the same numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class AttnPositions:
    """Query and key positions of one attention call."""

    query: torch.Tensor  # (Mq, Bq, 1, Tq) int64, Mq in {1, M}, Bq in {1, B}
    key: torch.Tensor  # (Tk,) int64

    @staticmethod
    def full(length: int, device: torch.device) -> AttnPositions:
        idx = torch.arange(length, device=device)
        return AttnPositions(idx.view(1, 1, 1, -1), idx)

    def offsets(self) -> torch.Tensor:
        """i - j for every (query i, key j): (Mq, Bq, 1, Tq, Tk)."""
        return self.query.unsqueeze(-1) - self.key

    def causal_mask(self) -> torch.Tensor:
        """True where key j may be attended from query i (j <= i): (Mq, Bq, 1, Tq, Tk)."""
        return self.offsets() >= 0


@dataclass(frozen=True)
class Geometry:
    """What an encoding needs to know about the model it lives in."""

    n_models: int
    d_model: int
    n_heads: int
    causal: bool
    max_len: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


AttentionKind = Literal["fused", "bias", "logits"]
_PROBE_LEN = 4099  # a prime max_len no other dimension of the probe geometry can equal


@dataclass(frozen=True)
class Declaration:
    """What an encoding (or a '+' combination) asks of the model, for the planner and the spec's checks.

    ``logits``: the attention layer materialises the (M, B, H, Tq, Tk) logits (an ``on_logits`` rewrite);
    ``bias``: a dense additive bias, broadcast to (M·B, H, Tq, Tk), goes into attention (a ``bias`` hook);
    ``length_limited``: a table sized by ``model.max_len``, so longer sequences are refused.
    """

    logits: bool = False
    bias: bool = False
    length_limited: bool = False

    @property
    def attention(self) -> AttentionKind:
        """'logits' (explicit path), 'bias' (SDPA with a dense bias) or 'fused' (SDPA, its own causal mask)."""
        return "logits" if self.logits else "bias" if self.bias else "fused"

    def __add__(self, other: Declaration) -> Declaration:
        return Declaration(self.logits or other.logits, self.bias or other.bias,
                           self.length_limited or other.length_limited)


class PositionEncoding(nn.Module):
    """Base class: every hook is the identity. ``Options`` lists the encoding's own settings.

    ``needs_logits`` is derived (True when the class overrides ``on_logits``); ``length_limited`` is derived
    when left None (True when a parameter or buffer is sized by ``max_len``) and may be set to override.
    """

    name: ClassVar[str]
    scope: ClassVar[str] = "attention"  # 'input': one instance per model; 'attention': one per layer
    needs_logits: ClassVar[bool] = False  # derived from an on_logits override, see __init_subclass__
    length_limited: ClassVar[bool | None] = None  # None: derived by building the encoding on 'meta'
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.on_logits is not PositionEncoding.on_logits:
            if "needs_logits" in vars(cls) and not cls.needs_logits:
                raise TypeError(f"{cls.__name__} overrides on_logits but sets needs_logits = False: the fused "
                                "attention path would never call it")
            cls.needs_logits = True

    def __init__(self, geo: Geometry, options: BaseModel) -> None:
        super().__init__()
        self.geo, self.options = geo, options

    @classmethod
    def declaration(cls) -> Declaration:
        """This class's :class:`Declaration`, read from what it overrides and builds (see the module doc)."""
        limited = cls.length_limited if cls.length_limited is not None else _sized_by_max_len(cls)
        return Declaration(cls.needs_logits, cls.bias is not PositionEncoding.bias, limited)

    @classmethod
    def saved_values_per_query(cls, geo: Geometry, options: BaseModel, n_keys: int) -> int:
        """Values (not bytes) this encoding's hooks keep for the backward pass per query, layer and model,
        beyond the logits, softmax weights and dense bias the planner already counts from the declaration.

        Default: 2·H·Tk for an ``on_logits`` rewrite (its rewritten logits and one more tensor of their size),
        else 0. Override when the hooks keep more (relative and CoPE keep q·e for every table entry, (H, P)).
        """
        return 2 * geo.n_heads * n_keys if cls.needs_logits else 0

    @classmethod
    def check(cls, geo: Geometry, options: BaseModel) -> None:
        """Raise ValueError naming the bad value when this encoding cannot be used with ``geo``."""

    def on_input(self, h: torch.Tensor, inputs: torch.Tensor | None = None) -> torch.Tensor:  # h: (M, B, T, d)
        return h

    def on_qk(self, q: torch.Tensor, k: torch.Tensor, pos: AttnPositions) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k  # q: (M, B, H, Tq, hd), k: (M, B, H, Tk, hd)

    def bias(self, pos: AttnPositions) -> torch.Tensor | None:
        return None  # broadcastable to (M, B, H, Tq, Tk)

    def on_logits(
        self, q: torch.Tensor, logits: torch.Tensor, pos: AttnPositions, x: torch.Tensor | None = None
    ) -> torch.Tensor:
        return logits  # logits: (M, B, H, Tq, Tk), masked entries are -inf; x: the layer input (M, B, Tk, d)

    def init_model(self, m: int, gen: torch.Generator, scheme: str) -> None:
        """Initialise model m's parameters, if any."""


@functools.cache
def _sized_by_max_len(cls: type[PositionEncoding]) -> bool:
    """Whether ``cls`` with default options holds a parameter or buffer with a dimension of ``max_len``."""
    try:
        options = cls.Options()
    except ValueError as exc:
        raise TypeError(f"{cls.__name__}.Options has required fields, so its length limit cannot be derived; "
                        "set length_limited = True or False on the class") from exc
    geo = Geometry(n_models=1, d_model=12, n_heads=2, causal=True, max_len=_PROBE_LEN)
    try:
        with torch.device("meta"):
            enc = cls(geo, options)
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        raise TypeError(f"{cls.__name__} cannot be built on the 'meta' device to find its length limit ({exc}); "
                        "set length_limited = True or False on the class") from exc
    return any(_PROBE_LEN in t.shape for t in (*enc.parameters(), *enc.buffers()))


def check_length(geo: Geometry, length: int, what: str) -> None:
    if length > geo.max_len:
        raise ValueError(f"sequence length {length} exceeds max_len={geo.max_len} of the {what} encoding; "
                         f"raise model.max_len")
