"""Planner: group RunSpecs into stacks of runs that can train in one step.

Runs share a stack when they share the model shape, the batch/eval settings and the task's stack key;
vocabularies, output classes and (for causal models) sequence lengths may differ and are padded. A stack is
capped by ``max_models`` and by an estimate of activation memory (``memory_budget`` bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

from limitlab.spec import RunSpec


def stack_key(spec: RunSpec) -> tuple:
    """Runs with equal keys can share a stack (with padding)."""
    task = spec.task
    key = (spec.model.model_dump_json(), spec.train.batch_size, spec.train.eval_every, spec.train.eval_size,
           spec.train.checkpoint_every, task.stack_key())
    if not spec.model.causal:  # right-padding is exact only when no position can see the padding
        key += (task.seq_len(),)
    return key


def activation_bytes(spec: RunSpec, seq_len: int | None = None) -> int:
    """Rough per-model activation memory of one training step (fp32 saved tensors, generous constants)."""
    m, t = spec.model, seq_len or spec.task.seq_len()
    b, d = spec.train.batch_size, m.d_model
    per_layer = b * t * (16 * d + 2 * m.mlp_width)
    explicit = any(p in m.position for p in ("cope", "relative"))
    per_layer += b * m.n_heads * t * t * (6 if explicit else 0)
    return 4 * m.n_layers * per_layer


def plan(specs: Sequence[RunSpec], max_models: int = 256, memory_budget: float = 8e9) -> list[list[RunSpec]]:
    """Stacks in a stable order (first appearance of each group); similar lengths stay together."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(stack_key(spec), []).append(spec)
    stacks: list[list[RunSpec]] = []
    for members in groups.values():
        members = sorted(members, key=lambda s: s.task.seq_len())
        current: list[RunSpec] = []
        for spec in members:
            longest = max([s.task.seq_len() for s in current] + [spec.task.seq_len()])
            cost = activation_bytes(spec, longest) * (len(current) + 1)
            if current and (len(current) >= max_models or cost > memory_budget):
                stacks.append(current)
                current = []
            current.append(spec)
        if current:
            stacks.append(current)
    return stacks
