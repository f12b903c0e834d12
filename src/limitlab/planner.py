"""Planner: group a study's RunSpecs into stacks of runs that train in one step, under a memory budget.

Runs may share a stack when they share the model shape, the batch/eval settings and the task's stack key
(:func:`stack_key`). Inside such a group, vocabularies and output classes always pad (unused embedding rows,
masked logits: nearly free), and sequence lengths pad for causal models (right-padding is exact there). Whether
a *length* should be padded is a cost question, answered by a two-term model of a training step::

    step seconds(stack) ≈ overhead + M · (flops / flops_per_s + traffic / bytes_per_s)   (one model, padded T)

where traffic is about three passes over the saved activations (small models are often memory-bound). Padding a
short run into a long stack buys one less step overhead and costs the padded work. For every group
the planner sorts the runs by length and picks the split into consecutive stacks that minimises the summed cost
(an exact O(k²) dynamic programme over the k distinct lengths), where a stack larger than the memory budget or
``max_models`` is cut into equal chunks that each pay the overhead. Memory is *estimated*, before anything is
allocated (:func:`limitlab.costs.model_bytes`): weights, gradients and Adam moments, saved activations of a
training step, and the peak of one evaluation batch at the longest evaluation split. Parameters, FLOPs and memory
are counted in :mod:`limitlab.costs` (from the real model and the encodings' declarations).

>>> stacks = plan_stacks(specs, device="cuda")                     # doctest: +SKIP
>>> [(len(s.specs), s.seq_len, f"{s.memory / 1e9:.1f} GB") for s in stacks]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from limitlab.costs import activation_bytes, model_bytes, train_flops_per_step
from limitlab.spec import RunSpec

# ---- device profiles ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceProfile:
    """What the planner assumes about a device. Only the plan's speed depends on these, never its results.

    ``step_overhead_s`` is the fixed cost of one step of any stack (kernel launches, Python); ``flops_per_s``
    the sustained training throughput at tiny-model shapes (far below the device's peak); ``bytes_per_s`` the
    memory bandwidth that activation traffic sees. ``limitlab bench`` fits the first two to measured stacks.
    """

    name: str
    memory_bytes: float
    step_overhead_s: float
    flops_per_s: float
    bytes_per_s: float

    def step_seconds(self, spec: RunSpec, n_models: int, seq_len: int, n_outputs: int | None = None) -> float:
        """Estimated wall time of one step of a stack of ``n_models`` runs shaped like ``spec`` at ``seq_len``."""
        per_model = (train_flops_per_step(spec, seq_len, n_outputs) / self.flops_per_s
                     + 3 * activation_bytes(spec, seq_len) / self.bytes_per_s)
        return self.step_overhead_s + n_models * per_model

    def with_memory(self, memory_bytes: float) -> DeviceProfile:
        return DeviceProfile(self.name, memory_bytes, self.step_overhead_s, self.flops_per_s, self.bytes_per_s)

    @staticmethod
    def for_device(device: str | None = None, memory_budget: float | None = None) -> DeviceProfile:
        """A profile for ``device`` ('cpu', 'cuda', 'cuda:1'; None: CUDA when available); memory is queried now."""
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            memory = memory_budget if memory_budget is not None else _cuda_free_bytes(device)
            return DeviceProfile(device, memory, step_overhead_s=3e-3, flops_per_s=5e13, bytes_per_s=1.5e12)
        memory = memory_budget if memory_budget is not None else _host_available_bytes()
        return DeviceProfile(device, memory, step_overhead_s=5e-3, flops_per_s=2e10, bytes_per_s=1e10)


def _cuda_free_bytes(device: str) -> float:
    """80% of the free memory of ``device`` now; a cautious 32 GB when this process sees no GPU (Ray driver)."""
    override = os.environ.get("LIMITLAB_GPU_MEMORY")
    if override:
        return float(override)
    try:
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(torch.device(device))
            return 0.8 * free
    except (RuntimeError, AssertionError):
        pass
    return 32e9


def _host_available_bytes() -> float:
    """Half of the host's available memory (other processes share it), at most 16 GB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return min(0.5 * int(line.split()[1]) * 1024, 16e9)
    except OSError:
        pass
    return 8e9


# ---- planning ----------------------------------------------------------------------------------------------------

def stack_key(spec: RunSpec) -> tuple:
    """Runs with equal keys can share a stack (with padding)."""
    task = spec.task
    key = (spec.model.model_dump_json(), spec.train.batch_size, spec.train.eval_every, spec.train.eval_size,
           spec.train.checkpoint_every, task.stack_key())
    if not spec.model.causal:  # right-padding is exact only when no position can see the padding
        key += (task.seq_len(),)
    return key


@dataclass
class Stack:
    """One planned stack: its runs and the padded shapes, memory and cost it was planned with."""

    specs: list[RunSpec]
    seq_len: int  # padded training length
    eval_len: int  # padded length of the longest evaluation split
    vocab: int
    n_outputs: int
    steps: int  # steps the stack takes (its longest budget)
    memory: float  # estimated bytes on the device
    flops_per_step: float  # model FLOPs of one step of the whole stack (padded shapes)
    real_flops_per_step: float  # the same without padding
    cost_s: float = 0.0  # estimated wall seconds under the profile
    notes: list[str] = field(default_factory=list)

    @property
    def padding_waste(self) -> float:
        """Fraction of the stack's FLOPs spent on padding."""
        return 1.0 - self.real_flops_per_step / self.flops_per_step if self.flops_per_step else 0.0


@dataclass(frozen=True)
class _Shape:
    seq_len: int
    eval_len: int
    vocab: int
    n_outputs: int
    steps: int


def _shape(spec: RunSpec) -> _Shape:
    task = spec.task
    return _Shape(task.seq_len(), max(s.seq_len() for s in task.splits().values()), task.vocab_size(),
                  max(s.n_outputs() for s in task.splits().values()), spec.train.steps)


def make_stack(specs: Sequence[RunSpec], profile: DeviceProfile, eval_batch_size: int = 256) -> Stack:
    """The padded shapes, memory and cost of training ``specs`` as one stack (in this order) under ``profile``."""
    return _make_stack(list(specs), [_shape(s) for s in specs], profile, eval_batch_size)


def _make_stack(specs: list[RunSpec], shapes: list[_Shape], profile: DeviceProfile, eval_batch_size: int) -> Stack:
    t = max(s.seq_len for s in shapes)
    te = max(s.eval_len for s in shapes)
    v = max(s.vocab for s in shapes)
    c = max(s.n_outputs for s in shapes)
    steps = max(s.steps for s in shapes)
    first = specs[0]
    per_model = model_bytes(first, t, te, v, c, eval_batch_size)
    flops = len(specs) * train_flops_per_step(first, t, c)
    real = sum(train_flops_per_step(s, sh.seq_len, sh.n_outputs) for s, sh in zip(specs, shapes))
    cost = steps * profile.step_seconds(first, len(specs), t, c)
    return Stack(list(specs), t, te, v, c, steps, len(specs) * per_model, flops, real, cost)


def plan_stacks(specs: Sequence[RunSpec], max_models: int = 256, memory_budget: float | None = None,
                device: str | None = None, profile: DeviceProfile | None = None,
                eval_batch_size: int = 256) -> list[Stack]:
    """Stacks for ``specs``, in a stable order (groups by first appearance, then by length); see the module doc.

    Raises ValueError when a single run does not fit ``memory_budget``.
    """
    if max_models < 1:
        raise ValueError(f"max_models must be >= 1, got {max_models}")
    profile = profile or DeviceProfile.for_device(device, memory_budget)
    if memory_budget is not None:
        profile = profile.with_memory(memory_budget)
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in unique_specs(specs):
        groups.setdefault(stack_key(spec), []).append(spec)
    stacks: list[Stack] = []
    for members in groups.values():
        stacks.extend(_plan_group(members, max_models, profile, eval_batch_size))
    return stacks


def unique_specs(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """First occurrence of each run id (a run listed twice trains once)."""
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        seen.setdefault(spec.run_id, spec)
    return list(seen.values())


def plan(specs: Sequence[RunSpec], max_models: int = 256, memory_budget: float | None = None,
         device: str | None = None, profile: DeviceProfile | None = None,
         eval_batch_size: int = 256) -> list[list[RunSpec]]:
    """The runs of each stack of :func:`plan_stacks` (what executors consume)."""
    return [s.specs for s in plan_stacks(specs, max_models, memory_budget, device, profile, eval_batch_size)]


def _plan_group(members: list[RunSpec], max_models: int, profile: DeviceProfile, eval_batch_size: int) -> list[Stack]:
    """Optimal split of one group into consecutive length ranges (dynamic programme over distinct lengths)."""
    shaped = sorted(((s, _shape(s)) for s in members), key=lambda x: (x[1].seq_len, x[1].eval_len, x[1].n_outputs))
    # buckets of equal padded-relevant shape keep the programme small (seeds share a shape)
    buckets: list[list[tuple[RunSpec, _Shape]]] = []
    for item in shaped:
        if buckets and (buckets[-1][0][1].seq_len, buckets[-1][0][1].eval_len) == (item[1].seq_len, item[1].eval_len):
            buckets[-1].append(item)
        else:
            buckets.append([item])
    k = len(buckets)
    first = members[0]

    def capacity(t: int, te: int, v: int, c: int) -> int:
        per_model = model_bytes(first, t, te, v, c, eval_batch_size)
        cap = int(profile.memory_bytes // per_model)
        if cap < 1:
            raise ValueError(
                f"one run of {first.task.describe()} with d_model={first.model.d_model} at length {t} needs "
                f"about {per_model / 1e9:.2f} GB, more than the memory budget of {profile.memory_bytes / 1e9:.2f} GB "
                f"on {profile.name}; lower train.eval_size / the eval batch, or use a larger device")
        return min(cap, max_models)

    def segment(i: int, j: int) -> tuple[float, int]:
        """Cost and chunk count of buckets i..j-1 as one padded range."""
        items = [x for b in buckets[i:j] for x in b]
        t = max(x[1].seq_len for x in items)
        te = max(x[1].eval_len for x in items)
        v = max(x[1].vocab for x in items)
        c = max(x[1].n_outputs for x in items)
        steps = max(x[1].steps for x in items)
        chunks = math.ceil(len(items) / capacity(t, te, v, c))
        work = profile.step_seconds(first, len(items), t, c) - profile.step_overhead_s
        return steps * (chunks * profile.step_overhead_s + work), chunks

    best = [0.0] + [math.inf] * k
    cut = [0] * (k + 1)
    for j in range(1, k + 1):
        for i in range(j):
            cost = best[i] + segment(i, j)[0]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    ranges = []
    j = k
    while j > 0:
        ranges.append((cut[j], j))
        j = cut[j]
    stacks = []
    for i, j in reversed(ranges):
        items = [x for b in buckets[i:j] for x in b]
        chunks = segment(i, j)[1]
        size, extra = divmod(len(items), chunks)
        start = 0
        for c in range(chunks):  # equal chunks (sizes differ by at most one), shortest lengths first
            end = start + size + (1 if c < extra else 0)
            part = items[start:end]
            stacks.append(_make_stack([x[0] for x in part], [x[1] for x in part], profile, eval_batch_size))
            start = end
    return stacks


def describe(stacks: Sequence[Stack]) -> str:
    """A short human table of a plan."""
    lines = [f"{'runs':>5} {'T':>6} {'V':>5} {'C':>5} {'steps':>8} {'GB':>7} {'waste':>6}"]
    for s in stacks:
        lines.append(f"{len(s.specs):>5} {s.seq_len:>6} {s.vocab:>5} {s.n_outputs:>5} {s.steps:>8} "
                     f"{s.memory / 1e9:>7.2f} {s.padding_waste:>6.1%}")
    return "\n".join(lines)
