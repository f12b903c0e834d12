"""Closed-form baselines of Garg et al. 2022: zero, least squares, ridge, averaging and k nearest neighbours.

Each fits the first i examples of a prompt and predicts at the query x_i, for every i (see :mod:`.base`).

* least squares — the minimum-norm solution w = X⁺y of the prefix, so it also answers when i < d (there it
  interpolates the i points with the smallest |w|, the noiseless Bayes posterior mean for w ~ N(0, I)). Float64;
  singular values below ``rcond``·σ_max are dropped, with ``rcond`` from the *input* dtype by default (float32
  data is only rank-deficient up to float32 rounding, e.g. Garg's half-subspace prompts).
* ridge — w = (XᵀX + αI)⁻¹Xᵀy (scikit-learn's ``Ridge(fit_intercept=False)`` objective |y − Xw|² + α|w|²).
* averaging — w = mean_j y_j·x_j (Garg's "averaging" estimator; unbiased for w when x ~ N(0, I)).
* k-NN — the mean y of the k nearest earlier x's (Euclidean, uniform weights; fewer while i < k).

Example, d = 1, two examples before the query::

    prefix        (x=1, y=2)  (x=2, y=4)     query x = 3
    least squares w = 2                      prediction 6
    averaging     w = (2·1 + 4·2)/2 = 5      prediction 15
    1-NN          nearest is x=2             prediction 4
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from limitlab.studies.icl.baselines.base import check_inputs, exclusive_cumsum


@dataclass(frozen=True)
class Zero:
    """Predicts 0 everywhere: Garg's "zero estimator", whose normalised error is 1 by construction."""

    @property
    def name(self) -> str:
        return "zero"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        return torch.zeros_like(ys)


def min_norm_solve(x: torch.Tensor, y: torch.Tensor, rcond: float) -> torch.Tensor:
    """Minimum-norm least squares for a batch: x (P, i, d), y (P, i) -> w (P, d), float64.

    CPU: LAPACK ``gelsd`` (SVD, min-norm; ``gelsy`` missed an exactly repeated column in a test). CUDA's batched
    lstsq only handles full rank, so there the pseudo-inverse (SVD) is used instead.
    """
    x, y = x.double(), y.double()
    if x.device.type == "cpu":
        return torch.linalg.lstsq(x, y[..., None], rcond=rcond, driver="gelsd").solution[..., 0]
    return (torch.linalg.pinv(x, rtol=rcond) @ y[..., None])[..., 0]


@dataclass(frozen=True)
class LeastSquares:
    """Minimum-norm least squares on each prefix (float64; a loop over the n prefix lengths, prompts batched).

    ``rcond``: relative singular-value cut-off; None = eps of the input dtype × max(i, d) (LAPACK's default
    rule at the precision the data was made in).
    """

    rcond: float | None = None

    @property
    def name(self) -> str:
        return "least_squares"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        p, n, d = xs.shape
        eps = torch.finfo(xs.dtype).eps
        out = torch.zeros(p, n, dtype=torch.float64, device=xs.device)
        for i in range(1, n):
            rcond = self.rcond if self.rcond is not None else eps * max(i, d)
            w = min_norm_solve(xs[:, :i], ys[:, :i], rcond)  # (P, d)
            out[:, i] = (xs[:, i].double() * w).sum(-1)
        return out.to(ys.dtype)


@dataclass(frozen=True)
class Ridge:
    """Ridge regression, min |y − Xw|² + α|w|² on each prefix (float64, Cholesky of XᵀX + αI per prefix).

    With α = σ²/τ² this is the Bayes posterior mean for w ~ N(0, τ²I) and noise N(0, σ²).
    """

    alpha: float = 0.1

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"Ridge alpha={self.alpha} must be > 0 (alpha -> 0 is LeastSquares)")

    @property
    def name(self) -> str:
        return f"ridge_{self.alpha:g}"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        p, n, d = xs.shape
        x, y = xs.double(), ys.double()
        gram = self.alpha * torch.eye(d, dtype=torch.float64, device=xs.device).expand(p, d, d).clone()  # (P, d, d)
        rhs = torch.zeros(p, d, dtype=torch.float64, device=xs.device)  # (P, d): Xᵀy of the prefix
        out = torch.zeros(p, n, dtype=torch.float64, device=xs.device)
        for i in range(n):
            if i > 0:
                chol = torch.linalg.cholesky(gram)
                z = torch.linalg.solve_triangular(chol, rhs[..., None], upper=False)
                w = torch.linalg.solve_triangular(chol.mT, z, upper=True)[..., 0]  # (P, d)
                out[:, i] = (x[:, i] * w).sum(-1)
            gram += x[:, i, :, None] * x[:, i, None, :]
            rhs += x[:, i] * y[:, i, None]
        return out.to(ys.dtype)


@dataclass(frozen=True)
class Averaging:
    """w = (1/i)·Σ_{j<i} y_j x_j, predict x_i·w (all prefixes at once by a cumulative sum)."""

    @property
    def name(self) -> str:
        return "averaging"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        x, y = xs.double(), ys.double()
        n = xs.shape[1]
        sums = exclusive_cumsum(x * y[..., None], dim=1)  # (P, n, d): Σ_{j<i} y_j x_j
        count = torch.arange(n, dtype=torch.float64, device=xs.device).clamp(min=1)[:, None]  # (n, 1)
        return ((sums / count) * x).sum(-1).to(ys.dtype)


@dataclass(frozen=True)
class KNN:
    """Mean y of the k nearest earlier examples to the query (Euclidean, uniform weights, Garg's 3-NN).

    While i < k all i earlier examples are used; with none, 0. All prefixes at once from the (n, n) distances.
    """

    k: int = 3

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"KNN k={self.k} must be >= 1")

    @property
    def name(self) -> str:
        return f"knn_{self.k}"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        p, n, _ = xs.shape
        x = xs.double()
        dist = torch.cdist(x, x)  # (P, n, n): query i, example j
        later = torch.ones(n, n, dtype=torch.bool, device=xs.device).triu()  # j >= i is not a context example
        dist = dist.masked_fill(later, float("inf"))
        k = min(self.k, n)
        near_d, near_j = dist.topk(k, dim=-1, largest=False)  # (P, n, k)
        near_y = ys.double()[:, None, :].expand(p, n, n).gather(-1, near_j)  # (P, n, k)
        use = torch.isfinite(near_d)  # fewer than k earlier examples
        total = (near_y * use).sum(-1)
        return (total / use.sum(-1).clamp(min=1)).to(ys.dtype)
