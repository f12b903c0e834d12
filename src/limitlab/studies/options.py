"""A preset's options as a validated schema, and ``--set`` values read exactly as given.

A preset is a plain function; its signature *is* its schema. :func:`validate_options` turns the annotations into
a strict pydantic model (no lax coercion: ``"5"`` is not an int, ``true`` is not a seed count, ``"qc"`` is not a
list of tasks, ``inf`` is not a learning rate) with bounds every preset shares (integers within ±10⁹, lists of at
most 10,000 items, at most 1,000 seeds), so a bad option is refused in one line before anything is expanded.

:func:`check_read_as_given` guards the other path, spec overrides: pydantic reads ``task.bos="yes"`` as ``True``
and ``train.steps="5"`` as ``5``; an override whose value the spec does not hold exactly as written is refused.

>>> def preset(seeds: int = 3, ds: Sequence[int] = (8,)) -> list: ...
>>> validate_options(preset, "quick", {"ds": [8, 16]})
{'ds': [8, 16]}
>>> validate_options(preset, "quick", {"seeds": True})
Traceback (most recent call last):
...
ValueError: study.seeds=True: Input should be a valid integer (preset 'quick' wants int)
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

MAX_INT = 10**9
MAX_ITEMS = 10_000
MAX_SEEDS = 1_000
MAX_SHOWN = 80  # characters of a bad value quoted in an error line


@cache
def options_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """The strict pydantic model of a preset function's keyword options (from its annotations and defaults; a
    wrapper that sets ``__wrapped__`` is read through)."""
    target = inspect.unwrap(fn)
    hints = typing.get_type_hints(target.func if isinstance(target, functools.partial) else target)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        default = param.default if param.default is not inspect.Parameter.empty else ...
        fields[name] = (hints.get(name, Any), default)
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)
    return create_model(f"{getattr(fn, '__name__', 'preset')}_options", __config__=config, **fields)


def validate_options(fn: Callable[..., Any], preset: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``fn``'s schema and the shared bounds; returns the keywords to call it with."""
    model = options_model(fn)
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        allowed = ", ".join("study." + a for a in sorted(model.model_fields)) or "none"
        raise ValueError(f"unknown study option(s) {', '.join('study.' + k for k in unknown)} for preset "
                         f"{preset!r}; allowed: {allowed}")
    try:
        checked = model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else next(iter(values))
        wanted = _type_name(model.model_fields[key].annotation)
        raise ValueError(f"study.{key}={shown(values.get(key))}: {err['msg']} (preset {preset!r} wants {wanted})") \
            from None
    out = {key: getattr(checked, key) for key in values}
    for key, value in out.items():
        _check_bounds(key, value, preset)
    return out


def _check_bounds(key: str, value: Any, preset: str) -> None:
    where = f"study.{key}={shown(value)}"
    if key == "seeds":
        count = value if isinstance(value, int) else len(value)
        if count > MAX_SEEDS:
            raise ValueError(f"{where}: at most {MAX_SEEDS} seeds (preset {preset!r})")
    for item in _leaves(value):
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise ValueError(f"{where}: {item} is beyond ±{MAX_INT:.0e} (preset {preset!r})")
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > MAX_ITEMS:
        raise ValueError(f"{where}: at most {MAX_ITEMS} items (preset {preset!r})")


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def check_read_as_given(overrides: dict[str, Any], dumped: dict[str, Any]) -> None:
    """Refuse an override that the validated spec (``dumped``: its JSON dump) does not hold as written."""
    for dotted, value in overrides.items():
        node: Any = dumped
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if not _same(value, node):
            raise ValueError(f"{dotted}={shown(value)} was read as {shown(node)}; write the value as the field "
                             f"holds it (true/false, a number, a list)")


def _same(given: Any, held: Any) -> bool:
    """``given`` (from the command line) equals ``held`` (the spec's JSON), dicts compared on the given keys."""
    if isinstance(given, dict):
        return isinstance(held, dict) and all(_same(v, held.get(k)) for k, v in given.items())
    if isinstance(given, list):
        return isinstance(held, list) and len(given) == len(held) and all(map(_same, given, held))
    if isinstance(given, bool) or isinstance(held, bool):
        return given is held
    if isinstance(given, (int, float)) and isinstance(held, (int, float)):
        return float(given) == float(held)
    return given == held


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`MAX_SHOWN` characters (an error line stays one short line)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    text = text or str(annotation).replace("typing.", "").replace("collections.abc.", "")
    return text.replace("NoneType", "None")
