"""Mixtures of function families (Yadlowsky et al. 2023): the family is drawn **per sequence** with given weights.

Each sequence of a batch first draws its family j with probability ``weights[j]`` (not one family per batch,
nor round-robin: those change the gradient noise, reference note §2.1), then a function of that family as in
the family's own task. Families: ``dense`` and ``sparse`` (:mod:`icl_linear`), ``relu`` (:mod:`icl_relu`),
``tree`` (:mod:`icl_tree`), ``sine`` (:mod:`icl_sine`, α = 0). Example, families (dense, sine) with weights
(0.5, 0.5), d = 2::

    sequence   family   x_1          y_1      x_2          y_2     …
    0          dense    (0.5, 1.0)   1.7      (−1.0, 0.2)  −0.9    (w = (1.4, 1.0))
    1          sine     (0.1, −0.3)  0.8      (1.2, 0.7)   −0.2    (ω = 1.5, random a, b)

The batch carries ``groups["family"]`` (M, B); the metrics add the squared error per family, raw
(``loss_by_family``) and divided by that family's Var y (``normalized_by_family``, Garg's normalisation).
Convex combinations α·linear + (1 − α)·sine are :class:`~limitlab.tasks.icl_sine.ICLSine` with ``alpha``.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, TaskStack, group_sums
from limitlab.tasks.icl_common import SALT_FAMILY, SALT_PARAMS, ICLTask
from limitlab.tasks.icl_linear import ICLLinear
from limitlab.tasks.icl_relu import ICLReLU
from limitlab.tasks.icl_sine import ICLSine
from limitlab.tasks.icl_tree import ICLTree

FAMILIES = ("dense", "sparse", "relu", "tree", "sine")
_SHARED = ("d", "n_points", "fmt", "curriculum", "noise_std", "renormalize", "prompt_set", "x_scale", "y_scale")


class ICLMixture(ICLTask):
    """A per-sequence mixture of function families with weights."""

    name = "icl_mixture"
    families: tuple[str, ...] = Field(("dense", "sine"), min_length=1, description=f"subset of {FAMILIES}")
    weights: tuple[float, ...] = Field((0.5, 0.5), description="probability of each family (sums to 1)")
    sparsity: int = Field(3, ge=1, description="k of the sparse family")
    hidden: int = Field(100, ge=1, le=4096, description="hidden width of the relu family")
    depth: int = Field(4, ge=1, le=12, description="depth of the tree family")
    freq_min: float = Field(1.0, gt=0)
    freq_max: float = Field(2.0, gt=0)
    n_freqs: int = Field(11, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check_mixture(self) -> ICLMixture:
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown}; allowed: {', '.join(FAMILIES)}")
        if len(set(self.families)) != len(self.families):
            raise ValueError(f"families {self.families} name one family twice")
        if len(self.weights) != len(self.families):
            raise ValueError(f"{len(self.weights)} weights for {len(self.families)} families {self.families}")
        if any(w < 0 for w in self.weights) or abs(sum(self.weights) - 1) > 1e-6:
            raise ValueError(f"weights {self.weights} must be >= 0 and sum to 1")
        for name in self.families:
            self.component(name)  # validates the family's own fields (e.g. sparsity <= d)
        return self

    def component(self, family: str) -> ICLTask:
        """The single-family task of ``family`` with this mixture's shared settings."""
        shared = {k: getattr(self, k) for k in _SHARED}
        if family == "dense":
            return ICLLinear(**shared)
        if family == "sparse":
            return ICLLinear(**shared, sparsity=self.sparsity)
        if family == "relu":
            return ICLReLU(**shared, hidden=self.hidden)
        if family == "tree":
            return ICLTree(**shared, depth=self.depth)
        if family == "sine":
            return ICLSine(**shared, freq_min=self.freq_min, freq_max=self.freq_max, n_freqs=self.n_freqs)
        raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")

    def scale(self) -> float:
        return sum(w * self.component(f).scale() for f, w in zip(self.families, self.weights))

    @classmethod
    def family_index(cls, stack: TaskStack, rng: StackRNG, batch_size: int,
                     step: int | torch.Tensor) -> torch.Tensor:
        cum = torch.tensor(stack.shared.weights, device=rng.device).cumsum(0)  # (F,)
        u = rng.random((batch_size,), step, SALT_FAMILY)  # (M, B)
        return (u[..., None] >= cum[:-1]).sum(-1)  # (M, B) in [0, F)

    @classmethod
    def targets(cls, stack: TaskStack, rng: StackRNG, xs: torch.Tensor, step: int | torch.Tensor,
                dims: torch.Tensor, salt: int = SALT_PARAMS) -> torch.Tensor:
        fam = cls.family_index(stack, rng, xs.shape[1], step)  # (M, B)
        ys = torch.zeros(xs.shape[:3], device=xs.device)  # (M, B, N)
        for j, name in enumerate(stack.shared.families):
            sub = TaskStack([t.component(name) for t in stack.tasks], stack.device)
            y_j = sub.cls.targets(sub, rng, xs, step, dims, salt + 16 * (j + 1))
            ys = torch.where((fam == j)[..., None], y_j, ys)
        return ys

    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        batch = super().sample(stack, rng, batch_size, step)
        first = stack.tasks[0]
        scales = torch.tensor([first.component(f).scale() for f in first.families], device=rng.device)
        extras = {"family_scale": scales[batch.groups["family"]]}  # (M, B) Var y of each sequence's family
        return Batch(batch.inputs, batch.targets, batch.mask, batch.positions, batch.valid, batch.groups, extras)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        result = super().metrics(out, batch)
        fam = batch.groups["family"]
        size = int(fam.max()) + 1 if fam.numel() else 0
        err = (cls.pointwise_loss(out, batch) * batch.mask).sum(-1)  # (M, B)
        count = batch.mask.sum(-1).float()  # (M, B)
        counts = group_sums(count, fam, size)[0]
        result["loss_by_family"] = (group_sums(err, fam, size)[0], counts)
        result["normalized_by_family"] = (group_sums(err / batch.extras["family_scale"], fam, size)[0], counts)
        return result
