"""Checkpoints and weights as bytes that can hold tensors and plain numbers only, never code.

A store may be shared (a cluster filesystem, a copied folder), so what limitlab reads back from it must not be
able to run anything: both files are `safetensors <https://huggingface.co/docs/safetensors>`_ — a JSON header
naming each tensor's dtype, shape and byte range, then the raw bytes — and the few plain numbers a checkpoint
needs besides its tensors sit in that header's metadata as one JSON object. Nothing is unpickled. Decoding checks
the layout (names, kinds of values, float tensors) and raises :class:`FormatError` with one line saying what is
wrong; whether the tensors fit a run's model is checked by the trainer (checkpoints) and the exporters (weights).

A checkpoint (one model of a stack, one file)::

    params/<parameter name>    that model's slice of every stacked parameter, e.g. params/blocks.0.attn.qkv.weight
    optim/exp_avg/<i>          Adam's first moment of parameter i (the optimizer's parameter order)
    optim/exp_avg_sq/<i>       Adam's second moment of parameter i
    metadata "limitlab"        {"kind": "checkpoint", "version": 1, "step": 120, "alive": true,
                                "final_loss": 0.41, "t": 120.0}

Weights are ``<parameter name>`` tensors with metadata ``{"kind": "weights", "version": 1}``.

>>> state = {"step": 3, "alive": True, "final_loss": 0.5, "params": {"w": torch.ones(2)},
...          "optim": {"exp_avg": [torch.zeros(2)], "exp_avg_sq": [torch.zeros(2)], "t": 3.0}}
>>> decode_checkpoint(encode_checkpoint(state))["optim"]["t"]
3.0
"""

from __future__ import annotations

import json
from typing import Any

import safetensors
import safetensors.torch
import torch

VERSION = 1
_KEY = "limitlab"  # the metadata entry that holds the JSON object
_MOMENTS = ("exp_avg", "exp_avg_sq")


class FormatError(ValueError):
    """Bytes that are not a limitlab checkpoint or weights file; the one-line message says why."""


def encode_checkpoint(state: dict[str, Any]) -> bytes:
    """A trainer checkpoint state ({"step", "alive", "final_loss", "params", "optim"}) as safetensors bytes."""
    tensors = {f"params/{name}": t for name, t in state["params"].items()}
    for key in _MOMENTS:
        tensors.update({f"optim/{key}/{i}": t for i, t in enumerate(state["optim"][key])})
    meta = {"step": int(state["step"]), "alive": bool(state["alive"]),
            "final_loss": float(state.get("final_loss", float("nan"))), "t": float(state["optim"]["t"])}
    return _encode(tensors, "checkpoint", meta)


def decode_checkpoint(data: bytes) -> dict[str, Any]:
    """The state :func:`encode_checkpoint` wrote; :class:`FormatError` if ``data`` is anything else."""
    tensors, meta = _decode(data, "checkpoint")
    for key, kind in (("step", int), ("alive", bool), ("final_loss", float), ("t", float)):
        if not _is(meta.get(key), kind):
            want = "a number" if kind is float else kind.__name__
            raise FormatError(f"metadata {key} is {meta.get(key)!r}, not {want}")
    if meta["step"] < 0 or not meta["t"] >= 0:
        raise FormatError(f"metadata step {meta['step']} or t {meta['t']} is negative")
    params = {name[len("params/"):]: t for name, t in tensors.items() if name.startswith("params/")}
    moments = {key: _numbered(tensors, f"optim/{key}/") for key in _MOMENTS}
    extra = len(tensors) - len(params) - sum(len(v) for v in moments.values())
    if not params or extra:
        raise FormatError("no params/ tensors" if not params else f"{extra} tensor(s) that are neither params/ nor "
                          "optim/ moments")
    first, second = moments["exp_avg"], moments["exp_avg_sq"]
    if [t.shape for t in first] != [t.shape for t in second]:
        raise FormatError("optim/exp_avg and optim/exp_avg_sq differ in number or shapes")
    return {"step": meta["step"], "alive": meta["alive"], "final_loss": float(meta["final_loss"]),
            "params": params, "optim": {"exp_avg": first, "exp_avg_sq": second, "t": float(meta["t"])}}


def encode_weights(weights: dict[str, torch.Tensor]) -> bytes:
    """One model's parameters ({name: tensor}) as safetensors bytes."""
    return _encode(dict(weights), "weights", {})


def decode_weights(data: bytes) -> dict[str, torch.Tensor]:
    """The parameters :func:`encode_weights` wrote; :class:`FormatError` if ``data`` is anything else."""
    tensors, _ = _decode(data, "weights")
    if not tensors:
        raise FormatError("no tensors")
    return tensors


def check_tensors(tensors: Any, what: str) -> dict[str, torch.Tensor]:
    """``tensors`` if it is a non-empty {str: floating-point tensor}, else :class:`FormatError` naming ``what``."""
    if not isinstance(tensors, dict) or not tensors:
        raise FormatError(f"{what} is a {type(tensors).__name__}, not a mapping of parameter names to tensors")
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor) or not t.is_floating_point():
            kind = f"a {t.dtype} tensor" if isinstance(t, torch.Tensor) else f"a {type(t).__name__}"
            raise FormatError(f"{what}: {name!r} is {kind}, not a floating-point tensor")
    return tensors


def _encode(tensors: dict[str, torch.Tensor], kind: str, meta: dict[str, Any]) -> bytes:
    packed = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    return safetensors.torch.save(packed, metadata={_KEY: json.dumps({"kind": kind, "version": VERSION, **meta})})


def _decode(data: bytes, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata object) of a limitlab safetensors blob of ``kind``."""
    try:
        tensors = safetensors.torch.load(data)  # parses and bounds-checks the header; never runs code
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8:8 + size]).get("__metadata__", {}).get(_KEY, "null"))
    except (safetensors.SafetensorError, ValueError, AttributeError, TypeError) as exc:
        raise FormatError(f"not a safetensors file ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})"
                          ) from None
    if not isinstance(meta, dict) or meta.get("kind") != kind or not _is(meta.get("version"), int) \
            or meta["version"] != VERSION:
        found = f"{meta.get('kind')!r} version {meta.get('version')!r}" if isinstance(meta, dict) else repr(meta)
        raise FormatError(f"not a limitlab {kind} (its metadata says {found}; this limitlab writes version {VERSION})")
    return check_tensors(tensors, kind) if tensors else {}, meta


def _is(value: Any, kind: type) -> bool:
    """Whether a JSON value is of ``kind`` (bool, int, or float meaning any number), booleans counted apart."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, int if kind is int else (int, float))


def _numbered(tensors: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
    """The tensors named prefix0, prefix1, ... in order; a gap or a name that is not a number is refused."""
    found = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    if sorted(found) != sorted(str(i) for i in range(len(found))):
        raise FormatError(f"{prefix}* tensors are not numbered 0..{len(found) - 1}")
    return [found[str(i)] for i in range(len(found))]
