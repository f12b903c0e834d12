"""Which encodings stand on the board, how each is sized for a task, and which tasks it cannot take (and why).

The list is read from the registry (:data:`limitlab.nn.positions.POSITIONS`) when a preset is built, so a new
encoding file plus its registry line is on the board with no other change, followed by the paper-relevant '+'
combinations (:data:`COMBINATIONS`)::

    none, learned, sinusoidal, rope, alibi, t5, relative, cope, abacus, ..., cope+rope, cope+relative

**Sizing.** An encoding's options are set by name where the encoding has that option (:func:`options_for`):
``p_max`` (CoPE: the task's p_max), ``rel_max_distance`` (relative: uncapped, the longest sequence), and
``t5_max_distance`` (T5: at least the longest sequence). Any other encoding keeps its defaults.

**Exclusions, by rule** (:func:`exclusion`), each with the reason the report prints:

1. an encoding whose options name digit tokens (a field containing ``digit``, as Abacus's
   ``abacus_first_digit``) reads the task's digits and is used only on a task that writes digits (arithmetic);
2. an encoding the engine refuses for the task: a one-model copy of the task's smallest run is built and run
   forward on two sequences; an error (Abacus on the linear read-in of in-context regression: "abacus needs token
   ids") leaves the encoding out with that error as its reason.

>>> encodings({"none": object, "rope": object}, ("rope+none",))
['none', 'rope', 'rope+none']
>>> sorted(options_for("cope+relative", longest=40, p_max=16).items())
[('p_max', 16), ('rel_max_distance', 40)]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

COMBINATIONS = ("cope+rope", "cope+relative")  # CoPE's code-LM and Wikitext hybrids (Golovneva et al. 2024)


def encodings(registry: Mapping[str, Any] | None = None, combinations: Sequence[str] = COMBINATIONS) -> list[str]:
    """Every registered encoding (registry order), then ``combinations``: the board's rows."""
    if registry is None:
        from limitlab.nn.positions import POSITIONS as registry
    return [*registry, *(c for c in combinations if c not in registry)]


def check_names(names: Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    """``names`` if every one is in ``allowed``; else a ValueError in one line naming the first bad one."""
    for name in names:
        if name not in allowed:
            raise ValueError(f"unknown {what} {name!r}; allowed: {', '.join(allowed)}")
    if not names:
        raise ValueError(f"no {what} chosen; allowed: {', '.join(allowed)}")
    return list(names)


def options_for(position: str, longest: int, p_max: int) -> dict[str, Any]:
    """Options that size ``position`` for sequences up to ``longest`` tokens (only those its encodings have)."""
    from limitlab.nn.positions import parse_positions

    fields = {f for enc in parse_positions(position) for f in enc.Options.model_fields}
    wanted = {"p_max": p_max, "rel_max_distance": longest, "t5_max_distance": max(128, longest)}
    return {k: v for k, v in wanted.items() if k in fields}


def reads_digits(position: str) -> bool:
    """Whether an encoding of ``position`` reads digit tokens (an option whose name contains 'digit')."""
    from limitlab.nn.positions import parse_positions

    return any("digit" in f for enc in parse_positions(position) for f in enc.Options.model_fields)


def exclusion(position: str, task: str, has_digits: bool, probe_spec: Any) -> str | None:
    """Why ``position`` is left off ``task`` (None: it stands on the board). ``probe_spec``: the task's smallest
    run with this encoding (a RunSpec), or the error text its builder raised."""
    if reads_digits(position) and not has_digits:
        return f"{position} reads digit tokens (its options name them); {task} writes no digits"
    if isinstance(probe_spec, str):
        return f"the task's run cannot be built with {position}: {probe_spec}"
    error = _probe(probe_spec.model_dump_json())
    return None if error is None else f"the engine refuses {position} on {task}: {error}"


@functools.lru_cache(maxsize=512)
def _probe(spec_json: str) -> str | None:
    """Build a one-model copy of the run and run it forward on two sequences; the error's text, or None."""
    import torch

    from limitlab.rng import StackRNG
    from limitlab.spec import RunSpec
    from limitlab.tasks.base import TaskStack
    from limitlab.train.trainer import build_model

    try:
        spec = RunSpec.model_validate_json(spec_json)
        stack = TaskStack([spec.task])
        with torch.no_grad():
            model = build_model([spec], "cpu", stack)
            batch = stack.sample(StackRNG([spec.seed]), 2, 0)
            model(batch.inputs, batch.positions, valid=batch.valid)
    except (ValueError, RuntimeError, TypeError, NotImplementedError) as exc:
        return str(exc).split("\n")[0][:200]
    return None
