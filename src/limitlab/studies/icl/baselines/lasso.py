"""Batched Lasso: coordinate descent on every prompt and every prefix at once.

For the first i examples of a prompt, Lasso minimises scikit-learn's objective (``Lasso(fit_intercept=False)``)

    (1 / (2i))·|y − Xw|² + α·|w|₁

Coordinate descent needs the data only through the prefix's Gram matrix G = XᵀX and r = Xᵀy, which are
cumulative sums over the prompt. So all P·(n−1) problems (prompt × prefix length) are one batch of
(d × d, d) pairs, and a sweep updates coordinate j of every problem together:

    w_j ← S(r_j − Σ_{l≠j} G_jl w_l, i·α) / G_jj,     S(z, t) = sign(z)·max(|z| − t, 0)

(the same update as scikit-learn's, written for G and r). Sweeps repeat until a problem's duality gap is at most
``tol``·|y|² — scikit-learn's stopping rule, with its default tol = 1e-4 — and converged problems drop out of
the batch. A coordinate whose column is all zero in the prefix stays 0. Float64 throughout; the query
prediction is x_i·w.

Coordinate descent is slow on the underdetermined prefixes (i < d: the columns are strongly correlated), for
scikit-learn as here: a tight tol can take thousands of sweeps there, and a loose one leaves those prefixes'
solutions inexact (within the gap, not within a distance of w).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from limitlab.studies.icl.baselines.base import check_inputs, prompt_chunks


def lasso_gram(gram: torch.Tensor, rhs: torch.Tensor, yy: torch.Tensor, penalty: torch.Tensor, tol: float = 1e-8,
               max_sweeps: int = 10_000, check_every: int = 5) -> tuple[torch.Tensor, int]:
    """Solve min ½|y − Xw|² + penalty·|w|₁ for a batch by coordinate descent, from the Gram form.

    gram = XᵀX (B, d, d), rhs = Xᵀy (B, d), yy = yᵀy (B,), penalty (B,) -> (w (B, d), number of problems not
    converged). With penalty = i·α this is scikit-learn's Lasso objective times i. A problem stops when its
    duality gap is at most tol·yᵀy (scikit-learn's rule, in these units), which bounds its distance to the
    optimal objective.
    """
    b, d = rhs.shape
    w = torch.zeros(b, d, dtype=gram.dtype, device=gram.device)
    diag = torch.diagonal(gram, dim1=-2, dim2=-1)  # (B, d)
    dg = torch.where(diag > 0, diag, torch.ones_like(diag))
    todo = torch.arange(b, device=gram.device)
    g, r, y2, pen, w_a, q = gram, rhs, yy, penalty, w.clone(), torch.zeros_like(w)  # q = G·w
    cols = g.mT.contiguous()  # (B, d, d): cols[:, j] is column j of G
    sweeps = 0
    while todo.numel() > 0 and sweeps < max_sweeps:
        for _ in range(check_every):
            for j in range(d):
                z = r[:, j] - q[:, j] + g[:, j, j] * w_a[:, j]  # (B',)
                new = torch.sign(z) * (z.abs() - pen).clamp(min=0) / dg[:, j]
                new = torch.where(g[:, j, j] > 0, new, torch.zeros_like(new))
                delta = new - w_a[:, j]
                w_a[:, j] = new
                q += cols[:, j] * delta[:, None]
            sweeps += 1
        done = duality_gap(r, y2, pen, w_a, q) <= tol * y2
        if bool(done.any()):
            w[todo[done]] = w_a[done]
            keep = ~done
            todo, g, r, y2, pen, dg, w_a, q, cols = (t[keep] for t in (todo, g, r, y2, pen, dg, w_a, q, cols))
    if todo.numel() > 0:
        w[todo] = w_a
    return w, int(todo.numel())


def duality_gap(rhs: torch.Tensor, yy: torch.Tensor, penalty: torch.Tensor, w: torch.Tensor,
                gw: torch.Tensor) -> torch.Tensor:
    """Primal − dual objective of ½|y − Xw|² + penalty·|w|₁ at w (B,), from r = Xᵀy, yᵀy and Gw.

    The dual point is the residual ρ = y − Xw scaled into the feasible set |Xᵀθ|_∞ ≤ penalty.
    """
    rw = (rhs * w).sum(-1)
    res2 = (yy - 2 * rw + (w * gw).sum(-1)).clamp(min=0)  # |ρ|²
    corr = (rhs - gw).abs().amax(-1)  # |Xᵀρ|_∞
    s = torch.where(corr > penalty, penalty / corr.clamp(min=1e-300), torch.ones_like(corr))
    primal = 0.5 * res2 + penalty * w.abs().sum(-1)
    dual = s * (yy - rw) - 0.5 * s ** 2 * res2
    return primal - dual


@dataclass(frozen=True)
class Lasso:
    """Lasso with scikit-learn's scaling (1/(2i))|y − Xw|² + α|w|₁ per prefix; batched coordinate descent.

    ``tol``: stop at duality gap ≤ tol·|y|² (scikit-learn's rule and default); ``max_sweeps`` as Garg's
    max_iter. After a call, a RuntimeWarning says how many problems hit ``max_sweeps`` unconverged.
    """

    alpha: float = 0.01
    tol: float = 1e-4
    max_sweeps: int = 100_000

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"Lasso alpha={self.alpha} must be > 0 (alpha -> 0 is LeastSquares)")

    @property
    def name(self) -> str:
        return f"lasso_{self.alpha:g}"

    def __call__(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        check_inputs(xs, ys)
        p, n, d = xs.shape
        out = torch.zeros(p, n, dtype=torch.float64, device=xs.device)
        if n < 2:
            return out.to(ys.dtype)
        stuck = 0
        for sl in prompt_chunks(p, bytes_per_prompt=8 * n * (3 * d * d + 4 * d)):
            x, y = xs[sl].double(), ys[sl].double()  # (p', n, d), (p', n)
            gram = torch.cumsum(x[..., :, None] * x[..., None, :], dim=1)[:, :-1]  # (p', n-1, d, d): first i+1 rows
            rhs = torch.cumsum(x * y[..., None], dim=1)[:, :-1]  # (p', n-1, d)
            count = torch.arange(1, n, dtype=torch.float64, device=xs.device)  # prefix sizes 1..n-1
            yy = torch.cumsum(y ** 2, dim=1)[:, :-1]  # (p', n-1)
            pen = (self.alpha * count).expand(x.shape[0], n - 1)
            w, left = lasso_gram(gram.flatten(0, 1), rhs.flatten(0, 1), yy.flatten(), pen.flatten(), self.tol,
                                 self.max_sweeps)
            stuck += left
            out[sl, 1:] = (w.view(x.shape[0], n - 1, d) * x[:, 1:]).sum(-1)
        if stuck:
            warnings.warn(f"Lasso(alpha={self.alpha:g}): {stuck} prefix problems did not converge in "
                          f"{self.max_sweeps} sweeps", RuntimeWarning, stacklevel=2)
        return out.to(ys.dtype)
