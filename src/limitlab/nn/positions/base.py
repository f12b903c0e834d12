"""The position-encoding protocol. A new encoding is one file with a subclass plus one registry line.

An encoding acts at one or more hooks of the stacked transformer:

* ``on_input(h, inputs)``  — add to the residual stream after the token embedding (learned, sinusoidal);
  ``inputs`` are the token ids (M, B, T), or the input vectors of a linear read-in;
* ``on_qk(q, k, pos)``     — transform queries and keys (RoPE);
* ``bias(pos)``            — an additive logit bias that does not depend on q (ALiBi, T5);
* ``on_logits(q, logits, pos)`` — change the attention logits using q (relative, CoPE); setting
  ``needs_logits = True`` makes the layer materialise the logits instead of calling SDPA.

Positions are explicit (:class:`AttnPositions`) so that a layer can compute attention for a few query
positions only (the read-out positions of the last layer) and get exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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


class PositionEncoding(nn.Module):
    """Base class: every hook is the identity. ``Options`` lists the encoding's own settings."""

    name: ClassVar[str]
    scope: ClassVar[str] = "attention"  # 'input': one instance per model; 'attention': one per layer
    needs_logits: ClassVar[bool] = False
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, geo: Geometry, options: BaseModel) -> None:
        super().__init__()
        self.geo, self.options = geo, options

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


def check_length(geo: Geometry, length: int, what: str) -> None:
    if length > geo.max_len:
        raise ValueError(f"sequence length {length} exceeds max_len={geo.max_len} of the {what} encoding; "
                         f"raise model.max_len")
