"""The other baseline ``limitlab bench --vmap`` compares the stack against: PyTorch's own model-ensembling recipe.

``torch.func.stack_module_state`` stacks M ordinary models' parameters, ``functional_call`` runs one model from
them, and ``vmap`` maps that over the model dimension, so one call trains all M — the recipe of PyTorch's
"model ensembling" tutorial, applied to :class:`~limitlab.bench_plain.PlainGPT`. One ``torch.optim.Adam`` updates
the stacked parameters (Adam is element-wise, so this is M independent Adams at one learning rate). With
``compile=True`` the vmapped loss is ``torch.compile``-d (``mode="reduce-overhead"``, i.e. CUDA graphs, on CUDA).

It does the work of :class:`~limitlab.bench_plain.PlainLoop` on the same models and batches:

>>> from limitlab.bench import shape_specs
>>> from limitlab.bench_plain import PlainLoop
>>> specs = shape_specs(8, 3, 2, 4)
>>> loop = PlainLoop(specs)
>>> ensemble = VmapEnsemble(specs, models=loop.models)
>>> batch = ensemble.batch()
>>> ours = ensemble.losses(batch)
>>> theirs = torch.stack([loop.loss(i, loop.batch(i)) for i in range(2)])
>>> torch.allclose(ours, theirs, atol=1e-6)
True
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from limitlab.bench_plain import PlainGPT
from limitlab.rng import TRAIN, StackRNG
from limitlab.spec import RunSpec
from limitlab.tasks.base import Batch, TaskStack
from limitlab.train.fast import autocast_for


class VmapEnsemble:
    """M PlainGPTs trained by one vmapped step; ``step()`` trains every model once."""

    def __init__(self, specs: Sequence[RunSpec], device: str = "cpu", compile: bool = False,
                 models: Sequence[PlainGPT] | None = None) -> None:
        self.specs, self.device = list(specs), torch.device(device)
        models = list(models) if models is not None else [PlainGPT(s) for s in self.specs]
        self.models = models
        params, buffers = stack_module_state([m.to(self.device) for m in models])  # name -> (M, ...) leaves
        self.params, self.buffers = params, buffers
        self.base = copy.deepcopy(models[0]).to("meta")  # the structure; weights come from params
        self.optim = torch.optim.Adam(params.values(), lr=self.specs[0].optim.lr, foreach=True)
        self.task_stack = TaskStack([s.task for s in self.specs], self.device)
        self.rng = StackRNG([s.seed for s in self.specs], stream=TRAIN).to(self.device)
        self.steps = 0
        losses = vmap(self._one)
        if compile:
            losses = torch.compile(losses, mode="reduce-overhead" if self.device.type == "cuda" else None)
        self._losses = losses

    def _one(self, params: dict, buffers: dict, tokens: torch.Tensor, rows: torch.Tensor,
             targets: torch.Tensor) -> torch.Tensor:
        """One model's mean cross-entropy: tokens (B, T), rows and targets (B, K)."""
        with autocast_for(self.device, amp=True):  # bf16 on CUDA, as the stack; nothing elsewhere
            logits = functional_call(self.base, (params, buffers), (tokens, rows))  # (B, K, C)
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    def batch(self) -> Batch:
        """This step's batch for every model (the same data PlainLoop and the stack see)."""
        return self.task_stack.sample(self.rng, self.specs[0].train.batch_size, self.steps)

    def losses(self, batch: Batch) -> torch.Tensor:
        """(M,) losses of every model on ``batch``."""
        with warnings.catch_warnings():  # CPU SDPA has no batching rule: vmap loops over the models inside, and
            warnings.filterwarnings("ignore", message=".*batching rule.*")  # says so at every call
            return self._losses(self.params, self.buffers, batch.inputs, batch.positions, batch.targets)

    def step(self) -> None:
        loss = self.losses(self.batch())
        self.optim.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.optim.step()
        self.steps += 1
