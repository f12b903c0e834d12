"""Sinusoid regression in context (Yadlowsky et al. 2023), and convex combinations α·linear + (1−α)·sine.

The paper's exact sinusoid parameterisation was not recovered (reference note §2), so this form is our choice,
made so that the Bayes-optimal predictor is exact and cheap:

    f(x) = α·wᵀx + (1 − α)·Σ_{j < d} [ a_j·sin(ω·x_j) + b_j·cos(ω·x_j) ]

    x ~ N(0, I_d);  w, a, b ~ N(0, I_d) independent;  one frequency ω per sequence, uniform on the grid
    linspace(freq_min, freq_max, n_freqs) (``frequencies()``);  y = f(x) + noise_std·ε.

So every coordinate carries a sinusoid of one shared frequency with a random amplitude and phase
(a_j sin + b_j cos = r_j sin(ω x_j + φ_j), r_j Rayleigh, φ_j uniform). ``alpha = 0`` (the default) is the pure
sinusoid family; ``alpha = 1`` is dense linear regression; in between are Yadlowsky's convex combinations.
Var y = (α² + (1−α)²)·d whatever ω is (E[sin² + cos²] = 1), which is ``scale()``, the normaliser.

Exact Bayes: given ω, y is linear in the 3d features [x, sin(ω x), cos(ω x)] with a Gaussian prior
N(0, diag(α²·I, (1−α)²·I, (1−α)²·I)), so the posterior predictive is Bayesian linear regression (noise
variance noise_std², a small jitter when it is 0), and the posterior over ω is the grid weighted by each ω's
Gaussian marginal likelihood. With the curriculum, coordinates ≥ d_cur are zeroed and so are their a_j, b_j, w_j
(no constant term leaks in through cos(0) = 1).

Example, d = 2, α = 0, ω = 1.5, a = (1, 0), b = (0, 0.5), so f(x) = sin(1.5·x_1) + 0.5·cos(1.5·x_2)::

    x        (0.2, −1.0)   (1.0, 0.5)   (−0.7, 0.3)
    y         0.331         1.363        −0.417        (predicted at each x token from the pairs before it)

Frequency sweeps (below, inside and above the pretraining range) evaluate a one-frequency task,
``freq_min = freq_max = ω, n_freqs = 1``.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from limitlab.rng import StackRNG
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import SALT_PARAMS, ICLTask


class ICLSine(ICLTask):
    """Sinusoids of one random grid frequency per sequence, optionally mixed with a linear function (α)."""

    name = "icl_sine"
    freq_min: float = Field(1.0, gt=0, description="lowest pretraining frequency ω")
    freq_max: float = Field(2.0, gt=0, description="highest pretraining frequency ω")
    n_freqs: int = Field(11, ge=1, le=10_000, description="grid points in [freq_min, freq_max]")
    alpha: float = Field(0.0, ge=0, le=1, description="weight of the linear part: α·wᵀx + (1−α)·sine")

    @model_validator(mode="after")
    def _check_freqs(self) -> ICLSine:
        if self.freq_max < self.freq_min:
            raise ValueError(f"freq_max={self.freq_max} is below freq_min={self.freq_min}")
        if self.n_freqs == 1 and self.freq_max != self.freq_min:
            raise ValueError(f"n_freqs=1 needs freq_min == freq_max, got {self.freq_min} and {self.freq_max}")
        return self

    def frequencies(self) -> list[float]:
        """The frequency grid ω is drawn from (uniformly)."""
        return torch.linspace(self.freq_min, self.freq_max, self.n_freqs, dtype=torch.float64).tolist()

    def scale(self) -> float:
        return (self.alpha ** 2 + (1 - self.alpha) ** 2) * self.d

    @classmethod
    def targets(cls, stack: TaskStack, rng: StackRNG, xs: torch.Tensor, step: int | torch.Tensor,
                dims: torch.Tensor, salt: int = SALT_PARAMS) -> torch.Tensor:
        s = stack.shared
        b, d = xs.shape[1], xs.shape[-1]
        active = (torch.arange(d, device=xs.device) < dims[:, None, None]).float()  # (M, 1, d)
        grid = torch.tensor(stack.tasks[0].frequencies(), dtype=torch.float32, device=xs.device)
        omega = grid[rng.randint((b,), s.n_freqs, step, salt)]  # (M, B)
        coef = rng.normal((b, 3, d), step, salt + 1) * active[:, :, None]  # (M, B, 3, d): w, a, b
        phase = omega[..., None, None] * xs  # (M, B, N, d)
        sine = (torch.sin(phase) * coef[:, :, None, 1] + torch.cos(phase) * coef[:, :, None, 2]).sum(-1)  # (M, B, N)
        linear = (xs * coef[:, :, None, 0]).sum(-1)  # (M, B, N)
        return s.alpha * linear + (1 - s.alpha) * sine
