"""A run's checkpoint put back into its slot of a stack: checked first, then copied in at this stack's sizes.

A checkpoint holds one model's slice of every stacked parameter and of the Adam moments. The stack it resumes in
may be padded differently (a larger vocabulary or more outputs among its mates), so sizes may differ; names,
numbers of dimensions and the step budget must fit (:func:`misfit`), and the state is copied into the overlapping
region with the rest zeroed (:func:`load_model_state`).
"""

from __future__ import annotations

import torch

from limitlab.train.optim import StackedAdam


def misfit(state: dict, model: torch.nn.Module, optim: StackedAdam, m: int, total: int) -> str | None:
    """Why a checkpoint ``state`` cannot resume model ``m`` (whose budget is ``total`` steps); None: it can."""
    if not ({"step", "alive", "params", "optim"} <= state.keys()) or not isinstance(state["params"], dict):
        return "keys " + ", ".join(sorted(map(str, state)))
    if not 0 <= state["step"] < total:  # a run is never checkpointed at its budget
        return f"step {state['step']} outside 0..{total - 1}"
    saved = dict(state["params"])
    for name, p in model.named_parameters():
        if name not in saved or not isinstance(saved[name], torch.Tensor) or saved[name].dim() != p.dim() - 1:
            return f"parameter {name}: {_described(saved.get(name))}, the model's has {p.dim() - 1} dims"
    for key in ("exp_avg", "exp_avg_sq"):
        tensors = state["optim"].get(key)
        if not isinstance(tensors, list) or len(tensors) != len(optim.exp_avg) or any(
                not isinstance(t, torch.Tensor) or t.dim() != x.dim() - 1 for t, x in zip(tensors, optim.exp_avg)):
            return f"optimizer moments do not match the model's {len(optim.exp_avg)} parameters"
    return None


@torch.no_grad()
def load_model_state(model: torch.nn.Module, optim: StackedAdam, m: int, state: dict) -> None:
    """Copy a checked ``state`` into model ``m``'s parameters and Adam moments (overlapping region; rest zero)."""
    for name, p in model.named_parameters():
        saved = state["params"][name]
        p[m].zero_()
        p[m][_overlap(p.shape[1:], saved.shape)].copy_(saved[_overlap(p.shape[1:], saved.shape)])
    optim.load_state_of(m, {"exp_avg": _fit(state["optim"]["exp_avg"], optim.exp_avg, m),
                            "exp_avg_sq": _fit(state["optim"]["exp_avg_sq"], optim.exp_avg_sq, m),
                            "t": state["optim"]["t"]})


def _fit(saved: list[torch.Tensor], current: list[torch.Tensor], m: int) -> list[torch.Tensor]:
    """The saved moments at this stack's sizes for model ``m``."""
    out = []
    for s, c in zip(saved, current):
        target = torch.zeros_like(c[m])
        target[_overlap(c.shape[1:], s.shape)] = s[_overlap(c.shape[1:], s.shape)]
        out.append(target)
    return out


def _overlap(a: torch.Size, b: torch.Size) -> tuple[slice, ...]:
    return tuple(slice(0, min(x, y)) for x, y in zip(a, b))


def _described(value: object) -> str:
    return f"{value.dim()} dims" if isinstance(value, torch.Tensor) else "missing" if value is None else \
        f"a {type(value).__name__}"
