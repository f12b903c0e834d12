"""Shared machinery of the in-context regression tasks (Garg et al. 2022; Yadlowsky et al. 2023).

A prompt is n pairs (x_i, y_i = f(x_i)) with x_i ~ N(0, I_d) and one random function f per sequence, drawn
from a family (dense or sparse linear, 2-layer ReLU net, decision tree, sinusoid, a mixture of these). The
model reads the pairs as 2n vector tokens, alternating x and y, and predicts y_i at the x_i token, i.e. from
(x_1, y_1, …, x_{i-1}, y_{i-1}, x_i): every context size k = 0 … n−1 is trained in one causal pass.

Token formats (``fmt``), for d = 3 and two pairs::

    garg     (input width d):      [x11 x12 x13]  [y1 0 0]  [x21 x22 x23]  [y2 0 0]
    channel  (input width d + 1):  [0 x11 x12 x13]  [y1 0 0 0]  [0 x21 x22 x23]  [y2 0 0 0]
    read-outs at the x tokens (sequence indices 0, 2, …); target y_i

Garg's format puts y in x's first channel (no type flag); ``channel`` gives y a channel of its own
(Raventós et al.'s (d+1)-dim token). Both use a linear read-in and a scalar head.

Curriculum (Garg): dims d_cur and points n_cur grow with each model's step. Shapes never change: coordinates
≥ d_cur are zeroed, and tokens beyond 2·n_cur are marked invalid (``Batch.valid``) and not scored. At evaluation
(``step`` is an int batch index, not a per-model tensor) the curriculum's end (d, n) is used.

Prompt sets (``prompt_set``; Garg's out-of-distribution evaluation, drawn per prompt):

* ``standard``          x ~ N(0, I)
* ``random_quadrants``  the context x's share one random orthant (x ← |x|·s, one sign vector s per prompt);
  each query is a fresh, unrestricted x
* ``orthogonal_query``  query i is a fresh x projected off span(x_1 … x_{i−1}), rescaled to its own norm;
  scored only for i < d (for i ≥ d the span is everything)
* ``overlapping_query`` query i (i ≥ 1) is a copy of one earlier context x, chosen uniformly
* ``half_subspace``     x = √2·U·diag(1 … 1, 0 … 0)·z: a random d/2-dim subspace (U a random rotation per prompt)
* ``skewed``            x = c·U·diag(1, 1/2, …, 1/d)·z, c so that E|x|² = d (Garg's normalisation)

plus ``x_scale`` (x ← s·x) and ``y_scale`` (y ← s·y). A query that differs from the context (the first
three sets) needs its own prompt per index, so those sets are sampled with one scored index per sequence
(uniform over 0 … n−1): the context tokens are the prompt's, the x token at that index is the query, and the
tokens after it are invalid. :func:`draw_prompts` returns the raw prompts (for baselines and the study).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import Batch, Metric, Task, TaskStack

PromptSet = Literal["standard", "random_quadrants", "orthogonal_query", "overlapping_query", "half_subspace",
                    "skewed"]
QUERY_SETS = ("random_quadrants", "orthogonal_query", "overlapping_query")  # a query that differs from the context

# rng salts: every draw inside one step gets its own
SALT_X, SALT_QUERY, SALT_INDEX, SALT_NOISE, SALT_ROTATION, SALT_SIGNS, SALT_OVERLAP, SALT_FAMILY = range(8)
SALT_PARAMS = 16  # family parameters use SALT_PARAMS + j (a mixture offsets each family by 16)


class Curriculum(BaseModel):
    """Garg's curriculum: d_cur = min(d, dims_start + dims_inc·⌊step/interval⌋), likewise n_cur for points."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    dims_start: int = Field(5, ge=1, description="active input dims at step 0")
    dims_inc: int = Field(1, ge=0, description="dims added every `interval` steps")
    points_start: int = Field(11, ge=1, description="prompt pairs at step 0")
    points_inc: int = Field(2, ge=0, description="pairs added every `interval` steps")
    interval: int = Field(2000, ge=1, description="steps between increments")

    @classmethod
    def garg(cls, family: Literal["linear", "nonlinear"], interval: int = 2000) -> Curriculum:
        """Garg's schedule: dims 5→20 (+1), points 11→41 (+2) for linear/sparse, 26→101 (+5) for tree/ReLU-NN."""
        if family == "linear":
            return cls(dims_start=5, dims_inc=1, points_start=11, points_inc=2, interval=interval)
        return cls(dims_start=5, dims_inc=1, points_start=26, points_inc=5, interval=interval)

    def at(self, step: torch.Tensor, end_dims: int, end_points: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Active (dims, points) per model at ``step`` (M,), capped at the task's (d, n)."""
        k = torch.div(step, self.interval, rounding_mode="floor")
        dims = (self.dims_start + self.dims_inc * k).clamp(max=end_dims)
        points = (self.points_start + self.points_inc * k).clamp(max=end_points)
        return dims, points


@dataclass(frozen=True)
class Prompts:
    """Raw prompts for M models: xs (M, B, n, d), ys (M, B, n); with a separate query per index, qx and qy."""

    xs: torch.Tensor
    ys: torch.Tensor
    qx: torch.Tensor | None = None  # (M, B, n, d): query i replaces x_i when predicting y_i
    qy: torch.Tensor | None = None  # (M, B, n)
    scored: torch.Tensor | None = None  # (M, B, n) bool: indices with a defined query (orthogonal: i < d)
    family: torch.Tensor | None = None  # (M, B) int64: the family index of each sequence (mixtures)


class ICLTask(Task):
    """Base of the in-context regression tasks: fields shared by every family, tokens, curriculum, metrics.

    A family implements :meth:`targets` (f applied to given x's, with one random f per sequence) and
    :meth:`scale` (Var y under the prior: Garg's normaliser, so the zero predictor scores 1).
    """

    regression: ClassVar[bool] = True
    d: int = Field(20, ge=1, le=1024, description="input dimension")
    n_points: int = Field(41, ge=1, le=4096, description="(x, y) pairs per prompt")
    fmt: Literal["garg", "channel"] = Field("garg", description="token format (see the module docstring)")
    curriculum: Curriculum | None = Field(None, description="Garg's curriculum (training only); None = off")
    noise_std: float = Field(0.0, ge=0, description="y = f(x) + noise_std·ε")
    renormalize: bool = Field(False, description="rescale y so its variance stays scale() without noise")
    prompt_set: PromptSet = "standard"
    x_scale: float = Field(1.0, gt=0, description="x ← x_scale·x (Garg's scale-x prompt set)")
    y_scale: float = Field(1.0, gt=0, description="y ← y_scale·y (Garg's scale-y prompt set)")

    @model_validator(mode="after")
    def _check_common(self) -> ICLTask:
        cur = self.curriculum
        if cur is not None and (cur.dims_start > self.d or cur.points_start > self.n_points):
            raise ValueError(f"curriculum starts at dims={cur.dims_start}, points={cur.points_start}, beyond the "
                             f"task's d={self.d}, n_points={self.n_points}")
        if self.prompt_set in ("half_subspace", "skewed") and self.d < 2:
            raise ValueError(f"prompt_set={self.prompt_set!r} needs d >= 2, got d={self.d}")
        return self

    # --- shape --------------------------------------------------------------------------------------------
    def vocab_size(self) -> int:
        return 0

    def input_dim(self) -> int:
        return self.d if self.fmt == "garg" else self.d + 1

    def seq_len(self) -> int:
        return 2 * self.n_points

    def n_outputs(self) -> int:
        return 1

    @abstractmethod
    def scale(self) -> float:
        """Var y under the prior at the full dimension (before noise and y_scale): Garg's normaliser."""

    def normaliser(self) -> float:
        """What the study divides squared errors by: Var y of this prompt set (the zero predictor scores 1)."""
        var = self.scale() + self.noise_std ** 2
        if self.renormalize:
            var = self.scale()
        return var * self.y_scale ** 2

    # --- the family ---------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def targets(cls, stack: TaskStack, rng: StackRNG, xs: torch.Tensor, step: int | torch.Tensor,
                dims: torch.Tensor, salt: int = SALT_PARAMS) -> torch.Tensor:
        """f(xs) for one random f per sequence: xs (M, B, N, d) -> (M, B, N). ``dims`` (M,) active dims."""

    @classmethod
    def family_index(cls, stack: TaskStack, rng: StackRNG, batch_size: int,
                     step: int | torch.Tensor) -> torch.Tensor | None:
        """The family of each sequence (M, B) for a mixture; None for a single family."""
        return None

    # --- sampling -----------------------------------------------------------------------------------------
    @classmethod
    def sample(cls, stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor) -> Batch:
        dims, points = active_sizes(stack, step, rng.device)
        prompts = draw_prompts(cls, stack, rng, batch_size, step, dims)
        return to_batch(stack, trained_prefix(stack, prompts, step), points, rng, step)

    @classmethod
    def metrics(cls, out: torch.Tensor, batch: Batch) -> dict[str, Metric]:
        """The squared error ('loss') and, as a vector, the squared error per in-context example index."""
        result = super().metrics(out, batch)
        err = cls.pointwise_loss(out, batch) * batch.mask  # (M, B, n)
        result["error_by_index"] = (err.sum(1), batch.mask.sum(1).float())  # (M, n) each
        return result


def active_sizes(stack: TaskStack, step: int | torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(dims, points) per model (M,): the curriculum's value in training (``step`` a tensor), else (d, n)."""
    m = len(stack)
    d, n = stack.shared.d, stack.shared.n_points
    cur = stack.shared.curriculum
    if cur is None or not isinstance(step, torch.Tensor):
        return (torch.full((m,), d, dtype=torch.int64, device=device),
                torch.full((m,), n, dtype=torch.int64, device=device))
    return cur.at(step.to(device), d, n)


def fixed_training_points(stack: TaskStack, step: int | torch.Tensor) -> int | None:
    """In training, the pairs per prompt of a curriculum that never adds points; None for any other case."""
    cur = stack.shared.curriculum
    if cur is None or cur.points_inc or not isinstance(step, torch.Tensor):
        return None
    return cur.points_start


def trained_prefix(stack: TaskStack, p: Prompts, step: int | torch.Tensor) -> Prompts:
    """Training prompts cut to the pairs a fixed-length curriculum uses (others unchanged).

    A curriculum that never adds points (``points_inc = 0``) trains on the first ``points_start`` of the
    task's n pairs for the whole run; evaluation uses all n (the longer prompts are then out of distribution).
    The pairs past ``points_start`` would be invalid tokens, which no real token attends to (``Batch.valid``), so
    dropping them trains the same model on a shorter shape that still never changes from step to step:

        task n = 6, points_start = 3:   x1 y1 x2 y2 x3 y3 | x4 y4 x5 y5 x6 y6   (full shape, right half invalid)
        training batch:                 x1 y1 x2 y2 x3 y3                       (2·3 tokens, all valid)

    A growing curriculum keeps the full shape, so that a step's shape is fixed (CUDA graphs capture it).
    """
    k = fixed_training_points(stack, step)
    if k is None or k >= p.ys.shape[-1]:
        return p

    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[:, :, :k]  # keep the first k pairs of (M, B, n, ...)
    return Prompts(cut(p.xs), cut(p.ys), cut(p.qx), cut(p.qy), cut(p.scored), p.family)


def draw_prompts(cls: type[ICLTask], stack: TaskStack, rng: StackRNG, batch_size: int, step: int | torch.Tensor,
                 dims: torch.Tensor | None = None) -> Prompts:
    """Raw prompts of ``stack``'s prompt set for the family ``cls`` (see the module docstring)."""
    dev = rng.device
    s = stack.shared
    d, n, kind = s.d, s.n_points, s.prompt_set
    if dims is None:
        dims = torch.full((len(stack),), d, dtype=torch.int64, device=dev)
    active = torch.arange(d, device=dev) < dims[:, None, None, None]  # (M, 1, 1, d)
    xs = draw_x(rng, batch_size, n, d, step, kind)  # (M, B, n, d)
    qx = scored = None
    if kind == "random_quadrants":
        signs = torch.where(rng.random((batch_size, 1, d), step, SALT_SIGNS) < 0.5, -1.0, 1.0)  # (M, B, 1, d)
        xs = xs.abs() * signs
        qx = rng.normal((batch_size, n, d), step, SALT_QUERY)
    elif kind == "orthogonal_query":
        qx, scored = orthogonal_queries(xs * active, rng.normal((batch_size, n, d), step, SALT_QUERY) * active)
        scored = scored & (torch.arange(n, device=dev) < dims[:, None, None])
    elif kind == "overlapping_query":
        pick = rng.random((batch_size, n), step, SALT_OVERLAP)  # (M, B, n)
        i = torch.arange(n, device=dev)
        j = (pick * i).long()  # (M, B, n) uniform in [0, i); index 0 keeps x_0 itself
        qx = xs.gather(2, j[..., None].expand(-1, -1, -1, d))
    xs = xs * active * s.x_scale
    if qx is not None:
        qx = qx * active * s.x_scale
        both = cls.targets(stack, rng, torch.cat([xs, qx], dim=2), step, dims)  # (M, B, 2n)
        ys, qy = both[..., :n], both[..., n:]
    else:
        ys, qy = cls.targets(stack, rng, xs, step, dims), None
    ys, qy = (None if y is None else finish_y(stack, rng, y, step, salt) for y, salt in
              ((ys, SALT_NOISE), (qy, SALT_NOISE + 64)))
    return Prompts(xs, ys, qx, qy, scored, cls.family_index(stack, rng, batch_size, step))


def draw_x(rng: StackRNG, batch_size: int, n: int, d: int, step: int | torch.Tensor, kind: str) -> torch.Tensor:
    """x's of one prompt set before the query handling: (M, B, n, d)."""
    z = rng.normal((batch_size, n, d), step, SALT_X)
    if kind not in ("half_subspace", "skewed"):
        return z
    if kind == "half_subspace":
        eig = (torch.arange(d, device=z.device) < d // 2).float()
    else:
        eig = 1.0 / torch.arange(1, d + 1, device=z.device, dtype=torch.float32)
    eig = eig * math.sqrt(d / float((eig ** 2).sum()))  # E|x|² = d
    u = random_rotation(rng, batch_size, d, step)  # (M, B, d, d)
    transform = u @ torch.diag_embed(eig.expand(*u.shape[:2], d)) @ u.transpose(-1, -2)  # (M, B, d, d)
    return z @ transform


def random_rotation(rng: StackRNG, batch_size: int, d: int, step: int | torch.Tensor) -> torch.Tensor:
    """A Haar-random orthogonal matrix per sequence (QR of a Gaussian, signs fixed): (M, B, d, d)."""
    g = rng.normal((batch_size, d, d), step, SALT_ROTATION).double()
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.float()


def orthogonal_queries(xs: torch.Tensor, fresh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Query i = ``fresh[i]`` projected off span(xs[:i]) and rescaled to |fresh[i]| -> ((M, B, n, d), scored)."""
    n, d = xs.shape[-2], xs.shape[-1]
    q, _ = torch.linalg.qr(xs.double().transpose(-1, -2))  # (M, B, d, r): column j spans x_j off x_<j
    r = q.shape[-1]
    coef = fresh.double() @ q  # (M, B, n, r)
    earlier = torch.arange(r, device=xs.device) < torch.arange(n, device=xs.device)[:, None]  # (n, r): j < i
    ortho = fresh.double() - (coef * earlier) @ q.transpose(-1, -2)  # (M, B, n, d)
    norm = ortho.norm(dim=-1, keepdim=True)
    scored = (torch.arange(n, device=xs.device) < d).expand(*xs.shape[:2], n) & (norm[..., 0] > 1e-6)
    out = ortho * fresh.double().norm(dim=-1, keepdim=True) / norm.clamp(min=1e-12)
    return torch.where(scored[..., None], out, fresh.double()).float(), scored


def finish_y(stack: TaskStack, rng: StackRNG, y: torch.Tensor, step: int | torch.Tensor, salt: int) -> torch.Tensor:
    """Add noise, renormalise, apply y_scale: (M, B, N) -> (M, B, N)."""
    s = stack.shared
    if s.noise_std > 0:
        y = y + s.noise_std * rng.normal(tuple(y.shape[1:]), step, salt)
        if s.renormalize:
            base = stack.tasks[0].scale()
            y = y * math.sqrt(base / (base + s.noise_std ** 2))
    return y * s.y_scale


def tokens(xs: torch.Tensor, ys: torch.Tensor, fmt: str) -> torch.Tensor:
    """Interleave x and y tokens: xs (M, B, n, d), ys (M, B, n) -> (M, B, 2n, d or d + 1)."""
    if fmt == "channel":
        xt = torch.cat([torch.zeros_like(xs[..., :1]), xs], dim=-1)  # (M, B, n, d+1)
    else:
        xt = xs
    yt = torch.zeros_like(xt)
    yt[..., 0] = ys
    return torch.stack([xt, yt], dim=3).flatten(2, 3)  # (M, B, 2n, D)


def to_batch(stack: TaskStack, p: Prompts, points: torch.Tensor, rng: StackRNG, step: int | torch.Tensor) -> Batch:
    """The model's batch for raw prompts; ``points`` (M,) pairs in use (the curriculum's n_cur)."""
    m, b, n = p.ys.shape
    dev = p.ys.device
    fmt = stack.shared.fmt
    index = torch.arange(n, device=dev)
    readout = (2 * index).expand(m, b, n).contiguous()  # (M, B, n) x-token positions
    in_use = index < points[:, None, None]  # (M, 1, n)
    groups = {} if p.family is None else {"family": p.family}
    if p.qx is None:
        mask = in_use.expand(m, b, n)
        valid = None  # no curriculum, evaluation, or a fixed-length curriculum's prefix: every token is real
        fixed = fixed_training_points(stack, step)
        if stack.shared.curriculum is not None and isinstance(step, torch.Tensor) and (fixed is None or fixed < n):
            valid = (torch.arange(2 * n, device=dev) < 2 * points[:, None, None]).expand(m, b, 2 * n)
        return Batch(tokens(p.xs, p.ys, fmt), p.ys, mask, readout, valid, groups)
    # one scored index per sequence: the query replaces x at that index; later tokens are invalid
    pick = rng.random((b,), step, SALT_INDEX)  # (M, B)
    at = (pick * points[:, None]).long().clamp(max=n - 1)  # (M, B) uniform over the points in use
    here = index == at[..., None]  # (M, B, n)
    xs = torch.where(here[..., None], p.qx, p.xs)
    targets = torch.where(here, p.qy, p.ys)
    mask = here & in_use
    if p.scored is not None:
        mask = mask & p.scored
    valid = torch.arange(2 * n, device=dev) <= 2 * at[..., None]  # (M, B, 2n)
    return Batch(tokens(xs, p.ys, fmt), targets, mask, readout, valid, groups)
