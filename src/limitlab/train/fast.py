"""The fast path of a stacked training step: how a step runs, never what it computes.

* **Model chunks (CPU).** A stack of M models can run its forward/backward in chunks of ``c`` models, each chunk
  over the chunk's slice of every stacked parameter (as leaves), and the optimizer updates each chunk right after
  its backward, while its tensors are still in cache. ``c = M`` is the plain stacked step; ``c = 1`` does
  the same work as training the models one at a time, minus the per-model sampling and Python overhead. On a
  CPU a whole stack's activations can overflow the caches where one model's do not, but where that starts
  depends on the machine (cache sizes, cores, threads, the PyTorch build) as much as on the shape, so the
  trainer does not predict ``c``: it times the candidates on this machine once per stack shape and remembers
  the fastest (:mod:`limitlab.train.chunking`), so a stack of that shape always runs the same way there and its
  float rounding is reproducible.
* **CUDA graphs.** :class:`StepGraph` captures a whole step — sampling, forward, backward, optimizer — in one
  ``torch.cuda.CUDAGraph`` after a few warm-up steps on a side stream. Sampling stays outside the graph (fed
  into static input buffers) if the task's sampler synchronises with the host.
* **torch.compile** once per stack shape: :func:`compile_model` resets dynamo before a sweep of many shapes
  would hit ``torch._dynamo.config.recompile_limit`` (default 8) and silently fall back to eager.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch.func import functional_call

from limitlab.tasks.base import Batch
from limitlab.train.optim import StackedAdam

GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture (real training steps)
_compiled_keys: set[tuple] = set()  # stack shapes compiled since dynamo's last reset


def autocast_for(device: torch.device, amp: bool, cache: bool = True) -> AbstractContextManager:
    """bf16 autocast on CUDA (``cache=False`` while capturing a CUDA graph), nothing elsewhere."""
    if device.type == "cuda" and amp:
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return nullcontext()


def compile_model(model: torch.nn.Module, key: tuple) -> Callable:
    """``torch.compile(model)`` with static shapes, keeping this process under dynamo's recompile limit.

    Each stack shape costs one cache entry; before a new shape would reach
    ``torch._dynamo.config.recompile_limit`` (default 8; past it dynamo silently runs eager), dynamo is reset.
    """
    if key not in _compiled_keys:
        config = torch._dynamo.config
        limit = getattr(config, "recompile_limit", None) or getattr(config, "cache_size_limit", 8)
        if len(_compiled_keys) >= limit - 1:
            torch._dynamo.reset()
            _compiled_keys.clear()
        _compiled_keys.add(key)
    return torch.compile(model, dynamic=False)


def train_step(model: torch.nn.Module, forward: Callable, optim: StackedAdam, batch: Batch, loss_fn: Callable,
               active: torch.Tensor, alive: torch.Tensor, step: torch.Tensor, chunk: int,
               autocast: Callable[[], AbstractContextManager]) -> torch.Tensor:
    """Forward, backward and update of every active model, ``chunk`` models at a time. Returns the losses (M,).

    ``chunk`` >= M is the plain stacked step: ``forward`` (the model, or its compiled form) over the whole stack,
    gradients in ``p.grad``. A smaller chunk gives each chunk its models' slices of the weights as leaves (so
    backward yields that chunk's gradients only) and its rows of the batch, and the optimizer updates the chunk
    at once, while its activations, gradients and moments are still in cache: the same maths.
    ``loss_fn(out, batch)`` is the task's per-model loss. ``alive`` is updated in place (a non-finite loss
    freezes the model); models outside ``active`` are not updated.
    """
    params, named = optim.params, None  # optim.params is list(model.parameters()): the named_parameters order
    n_models = model.n_models
    losses = []
    for m0 in range(0, n_models, chunk):
        sl = slice(m0, min(m0 + chunk, n_models))
        if sl == slice(0, n_models):
            for p in params:
                p.grad = None
            leaves, part, fn = params, batch, forward
        else:
            named = named or list(model.named_parameters())
            leaf_of = {name: p[sl].detach().requires_grad_() for name, p in named}
            leaves, part = list(leaf_of.values()), batch.models(sl.start, sl.stop)
            params_of = {**leaf_of, "output_mask": model.output_mask[sl]}

            def fn(inputs, positions, valid, params_of=params_of):
                return functional_call(model, params_of, (inputs, positions), {"valid": valid})
        with autocast():
            out = fn(part.inputs, part.positions, valid=part.valid)
        loss = loss_fn(out, part)  # (c,)
        alive[sl] &= torch.isfinite(loss) | ~active[sl]
        act = active[sl] & alive[sl]
        torch.where(act, loss, 0.0).sum().backward()
        optim.step_models(sl, act, step[sl], [leaf.grad for leaf in leaves])
        losses.append(loss.detach())
    return losses[0] if len(losses) == 1 else torch.cat(losses)


def sync_free(fn: Callable[[], object]) -> bool:
    """Does ``fn`` run on CUDA without synchronising with the host? (sync debug mode 'error')."""
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        return True
    except Exception:  # noqa: BLE001 - 'called a synchronizing CUDA operation' (RuntimeError) or a capture refusal
        return False
    finally:
        torch.cuda.set_sync_debug_mode(previous)
        torch.cuda.synchronize()


class StepGraph:
    """A whole training step captured in one CUDA graph; ``replay()`` runs it and returns the static losses."""

    def __init__(self, graph: torch.cuda.CUDAGraph, loss: torch.Tensor,
                 feed: Callable[[], None] | None) -> None:
        self.graph, self.loss, self.feed = graph, loss, feed

    @staticmethod
    def capture(step: Callable[[Batch | None], torch.Tensor], sample: Callable[[], Batch],
                params: list[torch.nn.Parameter]) -> StepGraph | None:
        """Capture ``step(batch)`` (``None``: the step samples its own batch). None, with a warning, if impossible.

        Nothing runs during capture (kernels are only recorded), so a failed capture leaves the training state
        as it was and the trainer carries on eagerly.
        """
        in_graph = sync_free(sample)
        feed, static = None, None
        if not in_graph:
            static = sample()

            def feed() -> None:
                fresh = sample()
                for dst, src in zip(static.tensors(), fresh.tensors()):
                    dst.copy_(src)
        for p in params:
            p.grad = None
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                loss = step(static)
        except Exception as exc:  # noqa: BLE001 - any capture failure means: train eagerly
            warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); training eagerly",
                          RuntimeWarning, stacklevel=3)
            for p in params:
                p.grad = None
            return None
        return StepGraph(graph, loss, feed)

    def replay(self) -> torch.Tensor:
        if self.feed is not None:
            self.feed()
        self.graph.replay()
        return self.loss
