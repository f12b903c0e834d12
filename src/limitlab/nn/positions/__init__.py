"""Registry of position encodings: name -> class. Combine attention-level ones with '+', e.g. 'cope+rope'.

:func:`declaration` tells the planner and the spec's checks what an encoding string asks of the model.
"""

from __future__ import annotations

from limitlab.nn.positions.abacus import Abacus
from limitlab.nn.positions.absolute import LearnedAbsolute, NoPosition, Sinusoidal
from limitlab.nn.positions.base import AttnPositions, Declaration, Geometry, PositionEncoding
from limitlab.nn.positions.bias import ALiBi, T5Bias
from limitlab.nn.positions.cope import CoPE
from limitlab.nn.positions.relative import Relative
from limitlab.nn.positions.rope import RoPE

POSITIONS: dict[str, type[PositionEncoding]] = {
    "none": NoPosition,
    "learned": LearnedAbsolute,
    "sinusoidal": Sinusoidal,
    "rope": RoPE,
    "alibi": ALiBi,
    "t5": T5Bias,
    "relative": Relative,
    "cope": CoPE,
    "abacus": Abacus,
}

__all__ = ["POSITIONS", "AttnPositions", "Declaration", "Geometry", "PositionEncoding", "declaration",
           "parse_positions"]


def parse_positions(spec: str) -> list[type[PositionEncoding]]:
    """'cope+rope' -> [CoPE, RoPE]; unknown names and duplicates are refused with the allowed names."""
    names = [s.strip() for s in spec.split("+")]
    for name in names:
        if name not in POSITIONS:
            raise ValueError(f"unknown position encoding {name!r}; allowed: {', '.join(POSITIONS)} "
                             f"(combine with '+', e.g. 'cope+rope')")
    if len(set(names)) != len(names):
        raise ValueError(f"position encoding {spec!r} names one encoding twice")
    if len(names) > 1 and "none" in names:
        raise ValueError(f"position encoding {spec!r} combines 'none' with others")
    return [POSITIONS[n] for n in names]


def declaration(spec: str) -> Declaration:
    """The combined :class:`Declaration` of an encoding string: 'alibi' -> bias, 'cope+rope' -> logits, ...

    >>> declaration("learned+alibi")
    Declaration(logits=False, bias=True, length_limited=True)
    """
    out = Declaration()
    for enc in parse_positions(spec):
        out = out + enc.declaration()
    return out
