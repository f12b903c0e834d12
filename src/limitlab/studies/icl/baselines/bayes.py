"""Exact Bayes-optimal predictors: the posterior mean of y_i under the task's own generative model.

Every family here is, given a discrete latent z (a support, a frequency, a family), *linear-Gaussian*:

    y = φ_z(x)ᵀ·b + σ·ε,    b ~ N(0, diag(τ_z²)),    z ~ prior π

For one z, Bayesian linear regression run along the prompt gives, at each index i, the predictive
N(μ_i, v_i) of y_i from the first i examples (rank-one covariance updates, float64). The chain rule turns the
predictive densities of the earlier examples into the marginal likelihood of the prefix,

    log p(y_<i | x_<i, z) = Σ_{j<i} log N(y_j; μ_j, v_j),

so the posterior over z at index i is π_z·p(y_<i | z) normalised, and the Bayes prediction is
Σ_z p(z | prefix)·μ_i(z). That one scan serves every predictor below:

* :class:`DenseBayes`  — w ~ N(0, τ²I): one z; the ridge solution with α = σ²/τ².
* :class:`SparseBayes` — w has exactly k non-zero coordinates on a uniform random support, entries N(0, τ²):
  z = the support, all C(d, k) enumerated (φ = x restricted to it).
* :class:`SineGridBayes` — the ``icl_sine`` task: f = α·wᵀx + (1−α)·Σ_j a_j sin(ω x_j) + b_j cos(ω x_j),
  w, a, b ~ N(0, τ²I), ω uniform on a grid: z = ω, φ = [x, sin(ωx), cos(ωx)] with prior variances
  (α²τ², (1−α)²τ², (1−α)²τ²). Amplitudes and phases are integrated exactly; ω is summed over its grid.
* :class:`MixtureBayes` — families drawn per sequence with weights: z = the family, each family's own
  posterior mean and marginal likelihood combined the same way.

**Noiseless tasks** (σ = 0) have a degenerate likelihood: once a support has seen more examples than it has
coefficients, the data either lie exactly in its span or have probability zero. The data the predictors see are
float32, so "exactly" means "up to float32 rounding", and the right model of noiseless float32 data is the
noiseless one observed with float32 rounding error. The predictors use that noise, per example and latent, from
the standard bound on a float32 dot product |fl(φᵀb) − φᵀb| ≤ p·u·Σ_j |φ_j b_j| (u = 2⁻²⁴; two more units for
a final scaling and the sine's own rounding):

    σ_i(z) = (p + 2) · u · Σ_j |φ_z(x_i)_j · b̂_j(z)|    (+ a floor of 1e-3·u·τ·‖φ‖ so that σ > 0)

with b̂(z) the latent's posterior mean before example i — exact for the true latent once the examples fix it.
The true latent's rounding residual then costs it at most O(1) in log-likelihood, and a wrong support keeps weight
only if its misfit is within that rounding bound (tested against a 50-digit evaluation of the same posterior at
d = 20, k = 3, and against the exact answer: zero error once k + 1 examples fix the support, on every prompt).
A fixed ``jitter`` (σ = jitter·τ) is still accepted, for comparisons with a brute-force formula at a chosen σ.
``from_task`` builds the Bayes predictor of an ``icl_*`` task config.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from limitlab.studies.icl.baselines.base import check_inputs, prompt_chunks

Features = Callable[[torch.Tensor], torch.Tensor]  # x (P, d) -> φ (P, S, p) for every latent z


NoiseVar = float | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # σ², or (φ, b̂) (P, S, p) -> σ² (P, S)
UNIT_ROUNDOFF = 2.0 ** -24  # float32
FLOOR = 1e-3  # σ ≥ FLOOR·u·τ·‖φ‖: below anything float32 data resolve, so that σ > 0


def rounding_noise(w_std: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """σ² of noiseless float32 data per prompt and latent, from φ (P, S, p) and the posterior mean b̂ (P, S, p):
    σ = (p + 2)·u·Σ|φ_j b̂_j|, floored (see the module docstring).

    >>> phi, b = torch.ones(1, 1, 4, dtype=torch.float64), torch.full((1, 1, 4), 0.5, dtype=torch.float64)
    >>> rounding_noise(1.0)(phi, b).sqrt().item() / UNIT_ROUNDOFF    # (4 + 2)·(4·0.5) = 12, plus a tiny floor
    12.00000...
    """
    def noise(phi: torch.Tensor, mean_b: torch.Tensor) -> torch.Tensor:
        bound = (phi.shape[-1] + 2) * UNIT_ROUNDOFF * (phi * mean_b).abs().sum(-1)  # (P, S)
        floor = FLOOR * UNIT_ROUNDOFF * w_std * phi.norm(dim=-1)  # (P, S)
        return bound ** 2 + floor ** 2

    return noise


def gaussian_scan(features: Features, prior_var: torch.Tensor, log_prior: torch.Tensor, noise_var: NoiseVar,
                  xs: torch.Tensor, ys: torch.Tensor, with_posterior: bool = False):
    """Bayes over a discrete latent z of linear-Gaussian models, along every prompt at once.

    features maps x_i (P, d) to φ_z(x_i) for all S latents (P, S, p); prior_var (S, p) is the prior variance of
    b per latent; log_prior (S,) the log prior of z; noise_var the noise variance σ² (a number, or a function of
    φ and the posterior mean of b giving σ² per prompt and latent, (P, S)). Returns (mean (P, n), log_evidence
    (P, n)) and, with ``with_posterior``, p(z | prefix) (P, n, S). mean[:, i] is E[y_i | x_≤i, y_<i];
    log_evidence[:, i] is log p(y_<i | x_<i) with z summed out (0 at i = 0). Float64.
    """
    p_, n, _ = xs.shape
    x, y = xs.double(), ys.double()
    s, p = prior_var.shape
    sd = prior_var.double().clamp(min=0).sqrt()  # (S, p): b = sd ⊙ c with c ~ N(0, I)
    prior_rows = torch.eye(p, dtype=torch.float64, device=xs.device).expand(p_, s, p, p)  # c ~ N(0, I)
    rows = torch.zeros(p_, s, 0, p, dtype=torch.float64, device=xs.device)  # the examples' whitened rows
    rhs = torch.zeros(p_, s, 0, dtype=torch.float64, device=xs.device)
    mean_c = torch.zeros(p_, s, p, dtype=torch.float64, device=xs.device)  # posterior mean of c per z
    root = torch.eye(p, dtype=torch.float64, device=xs.device).expand(p_, s, p, p)  # R with RᵀR = posterior precision
    log_ev = torch.zeros(p_, s, dtype=torch.float64, device=xs.device)  # log p(y_<i | x_<i, z)
    out_mean = torch.zeros(p_, n, dtype=torch.float64, device=xs.device)
    out_ev = torch.zeros(p_, n, dtype=torch.float64, device=xs.device)
    post = torch.zeros(p_, n, s, dtype=torch.float64, device=xs.device) if with_posterior else None
    for i in range(n):
        phi = features(x[:, i])  # (P, S, p)
        phi_c = phi * sd  # (P, S, p): the features of c
        mu = (phi_c * mean_c).sum(-1)  # (P, S) predictive mean of y_i per z
        noise = noise_var(phi, sd * mean_c) if callable(noise_var) else noise_var  # σ², a number or (P, S)
        half = torch.linalg.solve_triangular(root.mT, phi_c[..., None], upper=False)[..., 0]  # R⁻ᵀφ (P, S, p)
        var = (half ** 2).sum(-1) + noise  # (P, S) predictive variance: φᵀ(RᵀR)⁻¹φ + σ²
        joint = log_prior + log_ev  # (P, S): log π_z + log p(y_<i | z)
        out_ev[:, i] = torch.logsumexp(joint, dim=-1)
        weight = torch.softmax(joint, dim=-1)  # (P, S) = p(z | prefix)
        out_mean[:, i] = (weight * mu).sum(-1)
        if post is not None:
            post[:, i] = weight
        resid = y[:, i, None] - mu  # (P, S)
        log_ev = log_ev - 0.5 * (torch.log(2 * math.pi * var) + resid ** 2 / var)
        scale = torch.as_tensor(noise, dtype=torch.float64, device=xs.device).sqrt().expand(p_, s)  # σ (P, S)
        # the posterior of c from the whitened rows [φ_j/σ_j; I] c = [y_j/σ_j; 0] by least squares (QR): unlike the
        # Kalman covariance update, it stays exact when σ is at float32-rounding level and the data fix b; the
        # large rows go first, which keeps Householder QR accurate on the small prior rows
        rows = torch.cat([rows, (phi_c / scale[..., None])[..., None, :]], dim=-2)  # (P, S, i + 1, p)
        rhs = torch.cat([rhs, (y[:, i, None] / scale)[..., None]], dim=-1)  # (P, S, i + 1)
        q, root = torch.linalg.qr(torch.cat([rows, prior_rows], dim=-2))  # (P, S, i + 1 + p, p), (P, S, p, p)
        target = torch.cat([rhs, torch.zeros_like(rhs[..., :1]).expand(p_, s, p)], dim=-1)  # (P, S, i + 1 + p)
        mean_c = torch.linalg.solve_triangular(root, (q.mT @ target[..., None]), upper=True)[..., 0]
    return (out_mean, out_ev, post) if with_posterior else (out_mean, out_ev)


def _noise_var(noise_std: float, w_std: float, jitter: float | None) -> NoiseVar:
    """σ² of the likelihood: the task's noise; for noiseless data a fixed jitter if given, else rounding level."""
    if noise_std > 0:
        return noise_std ** 2
    return (jitter * w_std) ** 2 if jitter is not None else rounding_noise(w_std)


class _ScanBayes(ABC):
    """Shared call path: a family defined by its features, prior variances and latent prior."""

    @abstractmethod
    def _model(self, d: int, device: torch.device) -> tuple[Features, torch.Tensor, torch.Tensor]:
        """(features, prior variances, log prior of each latent) of the family at input width ``d``."""

    def _noise(self) -> NoiseVar:
        return _noise_var(self.noise_std, self.w_std, self.jitter)

    def evidence(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(posterior-mean prediction (P, n), log p(y_<i | x_<i) (P, n)), both float64."""
        check_inputs(xs, ys)
        p, n, d = xs.shape
        feats, prior_var, log_prior = self._model(d, xs.device)
        s, q = prior_var.shape
        means, evs = [], []
        for sl in prompt_chunks(p, bytes_per_prompt=8 * s * (3 * (q + n) * q + 8 * q) + 16 * n):
            m, e = gaussian_scan(feats, prior_var, log_prior, self._noise(), xs[sl], ys[sl])
            means.append(m)
            evs.append(e)
        return torch.cat(means), torch.cat(evs)

    def posterior(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """p(latent | prefix) at every index: (P, n, S) (supports, frequencies); small inputs only."""
        check_inputs(xs, ys)
        feats, prior_var, log_prior = self._model(xs.shape[-1], xs.device)
        return gaussian_scan(feats, prior_var, log_prior, self._noise(), xs, ys, with_posterior=True)[2]

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return self.evidence(xs, ys)[0].to(ys.dtype)


@dataclass(frozen=True)
class DenseBayes(_ScanBayes):
    """Posterior mean for dense linear regression: w ~ N(0, w_std²·I), y = x·w + N(0, noise_std²).

    Equals Ridge(alpha = noise_std²/w_std²); with noise_std = 0 it uses the float32 rounding noise (or σ =
    jitter·w_std when ``jitter`` is given) and is minimum-norm least squares to float32 precision.
    """

    noise_std: float = 0.0
    w_std: float = 1.0
    jitter: float | None = None

    @property
    def name(self) -> str:
        return "bayes_dense"

    def _model(self, d, device):
        prior_var = torch.full((1, d), self.w_std ** 2, dtype=torch.float64, device=device)
        return (lambda x: x[:, None, :]), prior_var, torch.zeros(1, dtype=torch.float64, device=device)


@dataclass(frozen=True)
class SparseBayes(_ScanBayes):
    """Posterior mean for k-sparse linear regression with known k, by enumerating all C(d, k) supports.

    Prior: the support is uniform over the k-subsets of the d coordinates (of the first ``active`` ones if set,
    as under Garg's curriculum); its entries are N(0, w_std²), the rest 0; y = x·w + N(0, noise_std²)
    (noiseless: float32 rounding noise, or σ = jitter·w_std when ``jitter`` is given). Cost grows with C(d, k):
    1,140 supports for d = 20, k = 3.
    """

    k: int = 3
    noise_std: float = 0.0
    w_std: float = 1.0
    jitter: float | None = None
    active: int | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"SparseBayes k={self.k} must be >= 1")

    @property
    def name(self) -> str:
        return f"bayes_sparse_{self.k}"

    def _model(self, d, device):
        dims = d if self.active is None else self.active
        if not self.k <= dims <= d:
            raise ValueError(f"SparseBayes k={self.k} needs k <= active dims ({dims}) <= d ({d})")
        supports = torch.tensor(list(itertools.combinations(range(dims), self.k)), device=device)  # (S, k)
        prior_var = torch.full(supports.shape, self.w_std ** 2, dtype=torch.float64, device=device)
        log_prior = torch.full((len(supports),), -math.log(len(supports)), dtype=torch.float64, device=device)
        return (lambda x: x[:, supports]), prior_var, log_prior


@dataclass(frozen=True)
class SineGridBayes(_ScanBayes):
    """Posterior mean for the ``icl_sine`` family (see the module docstring), ω uniform on ``freqs``.

    f(x) = α·wᵀx + (1−α)·Σ_j [a_j sin(ω x_j) + b_j cos(ω x_j)], w, a, b ~ N(0, w_std²·I),
    y = f(x) + N(0, noise_std²) (noiseless: float32 rounding noise, or σ = jitter·w_std). ``freq_weights``: the
    prior over the grid (default uniform). A continuous frequency prior is approximated by a fine grid with
    quadrature weights.
    """

    freqs: tuple[float, ...] = (1.0, 1.5, 2.0)
    alpha: float = 0.0
    noise_std: float = 0.0
    w_std: float = 1.0
    jitter: float | None = None
    freq_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.freqs:
            raise ValueError("SineGridBayes needs at least one frequency in freqs")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"SineGridBayes alpha={self.alpha} must be in [0, 1]")
        if self.freq_weights is not None and (len(self.freq_weights) != len(self.freqs)
                                              or min(self.freq_weights) < 0 or sum(self.freq_weights) <= 0):
            raise ValueError(f"freq_weights {self.freq_weights} must be {len(self.freqs)} non-negative numbers")

    @property
    def name(self) -> str:
        return "bayes_sine" if self.alpha == 0 else f"bayes_sine_alpha_{self.alpha:g}"

    def _model(self, d, device):
        omega = torch.tensor(self.freqs, dtype=torch.float64, device=device)  # (F,)
        parts = [part for part, scale in (("lin", self.alpha), ("sin", 1 - self.alpha)) if scale > 0]
        var = {"lin": [self.alpha ** 2] * d, "sin": [(1 - self.alpha) ** 2] * (2 * d)}
        prior = torch.tensor(sum((var[k] for k in parts), []), dtype=torch.float64, device=device) * self.w_std ** 2
        prior_var = prior.expand(len(self.freqs), -1)  # (F, p)
        weights = torch.ones_like(omega) if self.freq_weights is None else torch.tensor(
            self.freq_weights, dtype=torch.float64, device=device)
        log_prior = torch.log(weights / weights.sum())

        def features(x: torch.Tensor) -> torch.Tensor:  # (P, d) -> (P, F, p)
            out = []
            if "lin" in parts:
                out.append(x[:, None, :].expand(-1, len(omega), -1))
            if "sin" in parts:
                phase = omega[:, None] * x[:, None, :]  # (P, F, d)
                out += [torch.sin(phase), torch.cos(phase)]
            return torch.cat(out, dim=-1)

        return features, prior_var, log_prior


@dataclass(frozen=True)
class MixtureBayes:
    """Posterior mean for a per-sequence mixture of families: Σ_f p(f | prefix)·E_f[y_i | prefix].

    ``families``: Bayes predictors with an ``evidence`` method (DenseBayes, SparseBayes, SineGridBayes, or a
    nested MixtureBayes), each stating its own prior; ``weights``: the mixture's family probabilities.
    p(f | prefix) ∝ weight_f · p_f(y_<i | x_<i), each family's exact marginal likelihood.
    """

    families: tuple = field(default_factory=lambda: (DenseBayes(), SineGridBayes()))
    weights: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if len(self.families) != len(self.weights) or not self.families:
            raise ValueError(f"MixtureBayes needs one weight per family, got {len(self.weights)} weights for "
                             f"{len(self.families)} families")
        if min(self.weights) < 0 or abs(sum(self.weights) - 1) > 1e-6:
            raise ValueError(f"MixtureBayes weights {self.weights} must be >= 0 and sum to 1")

    @property
    def name(self) -> str:
        return "bayes_mixture"

    def _joint(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pieces = [fam.evidence(xs, ys) for fam in self.families]
        means = torch.stack([m for m, _ in pieces], dim=-1)  # (P, n, F)
        prior = torch.tensor(self.weights, dtype=torch.float64, device=xs.device)
        joint = torch.stack([e for _, e in pieces], dim=-1) + torch.log(prior)  # (P, n, F)
        return means, joint

    def evidence(self, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(posterior-mean prediction (P, n), log p(y_<i | x_<i) (P, n)), both float64."""
        means, joint = self._joint(xs, ys)
        return (torch.softmax(joint, -1) * means).sum(-1), torch.logsumexp(joint, -1)

    def family_posterior(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """p(family | x_<i, y_<i) at every index: (P, n, F)."""
        return torch.softmax(self._joint(xs, ys)[1], -1)

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return self.evidence(xs, ys)[0].to(ys.dtype)


def from_task(task, jitter: float | None = None) -> DenseBayes | SparseBayes | SineGridBayes | MixtureBayes:
    """The exact Bayes predictor of an ``icl_linear`` / ``icl_sine`` / ``icl_mixture`` task config.

    Follows the task's noise_std, renormalize and y_scale (they rescale the prior and the noise). Families
    without a closed-form posterior (relu, tree) raise ValueError.
    """
    noise = float(getattr(task, "noise_std", 0.0))
    scale = float(getattr(task, "y_scale", 1.0))
    if getattr(task, "renormalize", False) and noise > 0:
        base = task.scale()
        scale *= math.sqrt(base / (base + noise ** 2))
    kw = {"noise_std": noise * scale, "w_std": scale, "jitter": jitter}
    name = getattr(task, "name", type(task).__name__)

    def family(kind: str, src) -> DenseBayes | SparseBayes | SineGridBayes:
        if kind == "dense":
            return DenseBayes(**kw)
        if kind == "sparse":
            return SparseBayes(k=src.sparsity, **kw)
        if kind == "sine":
            return SineGridBayes(freqs=tuple(_grid(src)), alpha=float(getattr(src, "alpha", 0.0)), **kw)
        raise ValueError(f"no exact Bayes predictor for family {kind!r}; allowed: dense, sparse, sine")

    if name == "icl_linear":
        return family("dense" if task.sparsity is None else "sparse", task)
    if name == "icl_sine":
        return family("sine", task)
    if name == "icl_mixture":
        fams = tuple(family(f, task) for f, w in zip(task.families, task.weights))
        return MixtureBayes(families=fams, weights=tuple(float(w) for w in task.weights))
    raise ValueError(f"no exact Bayes predictor for task {name!r}; allowed: icl_linear, icl_sine, icl_mixture")


def _grid(task) -> Sequence[float]:
    if hasattr(task, "frequencies"):
        return task.frequencies()
    return torch.linspace(task.freq_min, task.freq_max, task.n_freqs, dtype=torch.float64).tolist()
