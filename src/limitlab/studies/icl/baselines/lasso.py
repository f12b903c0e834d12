"""Batched Lasso on every prompt and every prefix at once: the LARS homotopy, checked by a duality gap.

For the first i examples of a prompt, Lasso minimises scikit-learn's objective (``Lasso(fit_intercept=False)``)

    (1 / (2i))·|y − Xw|² + α·|w|₁

Both solvers need the data only through the prefix's Gram matrix G = XᵀX and r = Xᵀy, cumulative sums over the
prompt, so all P·(n−1) problems (prompt × prefix length) form one batch of (d × d, d) pairs.

1. **LARS homotopy** (:func:`lasso_lars`) follows the exact piecewise-linear solution path from w = 0 at
   λ = max|r| down to λ = i·α, at most a few segments per coordinate. It is exact up to rounding however
   ill-conditioned the prefix — which matters here: with i < d examples the columns are strongly correlated
   and coordinate descent (scikit-learn's solver) needs thousands of sweeps there, or stops early and inexact.
2. **Coordinate descent** (:func:`lasso_gram`) then checks every problem's duality gap, scikit-learn's stopping
   rule (gap ≤ tol·|y|²), and sweeps the few the path left short of it, with scikit-learn's update

       w_j ← S(r_j − Σ_{l≠j} G_jl w_l, i·α) / G_jj,     S(z, t) = sign(z)·max(|z| − t, 0).

Float64 throughout; the query prediction is x_i·w; at i = 0 it is 0. A zero column stays at 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from limitlab.studies.icl.baselines.base import check_inputs, prompt_chunks


def lasso_gram(gram: torch.Tensor, rhs: torch.Tensor, yy: torch.Tensor, penalty: torch.Tensor, tol: float = 1e-8,
               max_sweeps: int = 10_000, check_every: int = 5,
               w0: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Solve min ½|y − Xw|² + penalty·|w|₁ for a batch by coordinate descent, from the Gram form.

    gram = XᵀX (B, d, d), rhs = Xᵀy (B, d), yy = yᵀy (B,), penalty (B,) -> (w (B, d), number of problems not
    converged). With penalty = i·α this is scikit-learn's Lasso objective times i. A problem stops when its
    duality gap is at most tol·yᵀy (scikit-learn's rule, in these units), which bounds its distance to the
    optimal objective; the gap is checked before the first sweep, so a warm start ``w0`` that is already
    optimal costs no sweep.
    """
    b, d = rhs.shape
    w = torch.zeros(b, d, dtype=gram.dtype, device=gram.device) if w0 is None else w0.clone()
    diag = torch.diagonal(gram, dim1=-2, dim2=-1)  # (B, d)
    dg = torch.where(diag > 0, diag, torch.ones_like(diag))
    todo = torch.arange(b, device=gram.device)
    g, r, y2, pen, w_a = gram, rhs, yy, penalty, w.clone()
    q = (g @ w_a[..., None])[..., 0]  # (B, d) = G·w
    cols = g.mT.contiguous()  # (B, d, d): cols[:, j] is column j of G
    sweeps = 0
    while todo.numel() > 0:
        done = duality_gap(r, y2, pen, w_a, q) <= tol * y2
        if bool(done.any()):
            w[todo[done]] = w_a[done]
            keep = ~done
            todo, g, r, y2, pen, dg, w_a, q, cols = (t[keep] for t in (todo, g, r, y2, pen, dg, w_a, q, cols))
        if todo.numel() == 0 or sweeps >= max_sweeps:
            break
        for _ in range(check_every):
            for j in range(d):
                z = r[:, j] - q[:, j] + g[:, j, j] * w_a[:, j]  # (B',)
                new = torch.sign(z) * (z.abs() - pen).clamp(min=0) / dg[:, j]
                new = torch.where(g[:, j, j] > 0, new, torch.zeros_like(new))
                delta = new - w_a[:, j]
                w_a[:, j] = new
                q += cols[:, j] * delta[:, None]
            sweeps += 1
    if todo.numel() > 0:
        w[todo] = w_a
    return w, int(todo.numel())


def _join(g: torch.Tensor, inv: torch.Tensor, n_act: torch.Tensor, sign: torch.Tensor, banned: torch.Tensor,
          mask: torch.Tensor, j: torch.Tensor, sgn: torch.Tensor, eps: float) -> tuple[torch.Tensor, ...]:
    """Where ``mask``, add coordinate j (sign ``sgn``) to the active set: bordering update of (G_AA)⁻¹.

    With u = (G_AA)⁻¹G_Aj and Schur complement c = G_jj − G_jAu, the new inverse is the old plus vvᵀ/c,
    v = u − e_j. A coordinate whose c is ~0 (a column already spanned by the active ones) is banned instead.
    """
    rows = torch.arange(len(j), device=g.device)
    onehot = F.one_hot(j, g.shape[-1]).bool()  # (B, d)
    col = g[rows, :, j] * n_act  # (B, d): G_Aj
    u = (inv @ col[..., None])[..., 0]
    g_jj = g[rows, j, j]
    schur = g_jj - (col * u).sum(-1)
    ok = mask & (schur > eps * g_jj.clamp(min=eps))
    v = u - onehot.to(u.dtype)
    inv = inv + (ok / torch.where(ok, schur, torch.ones_like(schur)))[:, None, None] * v[:, :, None] * v[:, None, :]
    add = onehot & ok[:, None]
    return (inv, n_act | add, torch.where(add, sgn[:, None], sign),
            banned | (onehot & (mask & ~ok)[:, None]))


def lasso_lars(gram: torch.Tensor, rhs: torch.Tensor, penalty: torch.Tensor, max_steps: int | None = None,
               eps: float = 1e-12) -> torch.Tensor:
    """The Lasso solution at ``penalty`` by the LARS homotopy (exact up to rounding), batched: (B, d).

    Start at λ = max|r| with w = 0 and follow the piecewise-linear solution path w(λ) down to the penalty.
    On a segment the active set A and its signs s are fixed and dw/d(−λ) = (G_AA)⁻¹ s_A; the segment ends when
    an inactive correlation |r_j − (Gw)_j| reaches λ (j joins) or an active w_j reaches 0 (j leaves). The
    inverse of G_AA is kept by rank-one bordering updates, so a step is element-wise work on (B, d, d).
    Each problem stops at its own penalty; finished problems drop out of the batch.
    """
    b, d = rhs.shape
    dt, dev = gram.dtype, gram.device
    max_steps = 8 * d + 8 if max_steps is None else max_steps
    w = torch.zeros(b, d, dtype=dt, device=dev)
    lam = rhs.abs().amax(-1)  # (B,)
    todo = torch.nonzero(lam > penalty).flatten()
    g, r, pen, lam = gram[todo], rhs[todo], penalty[todo], lam[todo]
    n_act = torch.zeros(len(todo), d, dtype=torch.bool, device=dev)
    sign = torch.zeros(len(todo), d, dtype=dt, device=dev)
    inv = torch.zeros(len(todo), d, d, dtype=dt, device=dev)  # (G_AA)⁻¹ embedded in d × d
    banned = torch.zeros(len(todo), d, dtype=torch.bool, device=dev)  # cannot join (degenerate column)
    left = torch.zeros(len(todo), d, dtype=dt, device=dev)  # sign of a coordinate that left in the last step
    wa = torch.zeros(len(todo), d, dtype=dt, device=dev)
    rows = torch.arange(len(todo), device=dev)

    first = r.abs().argmax(-1)
    inv, n_act, sign, banned = _join(g, inv, n_act, sign, banned, torch.ones_like(lam, dtype=torch.bool), first,
                                     torch.sign(r[rows, first]), eps)
    for _ in range(max_steps):
        if len(todo) == 0:
            break
        rows = torch.arange(len(todo), device=dev)
        corr = r - (g @ wa[..., None])[..., 0]  # (B', d): correlations with the residual
        delta = (inv @ sign[..., None])[..., 0]  # (B', d): dw per unit decrease of λ (0 off A)
        a = (g @ delta[..., None])[..., 0]  # (B', d)
        big = torch.full_like(corr, float("inf"))
        tiny = eps * lam[:, None]
        g1 = (lam[:, None] - corr) / (1 - a)
        g2 = (lam[:, None] + corr) / (1 + a)
        free = ~n_act & ~banned
        g1 = torch.where(free & (g1 > tiny) & (left <= 0), g1, big)  # a leaver does not re-enter with its sign
        g2 = torch.where(free & (g2 > tiny) & (left >= 0), g2, big)
        gj = torch.minimum(g1, g2)
        gd = torch.where(n_act & (delta != 0), -wa / delta, big)
        gd = torch.where(gd > tiny, gd, big)
        join_g, join_j = gj.min(-1)
        drop_g, drop_j = gd.min(-1)
        end_g = lam - pen
        step = torch.minimum(torch.minimum(join_g, drop_g), end_g)  # (B',)
        wa = wa + step[:, None] * delta
        lam = lam - step
        finished = step >= end_g
        dropping = ~finished & (drop_g <= join_g)
        joining = ~finished & ~dropping
        # leave: remove drop_j from the inverse (Schur complement), zero it, remember its sign for one step
        out = F.one_hot(drop_j, d).bool() & dropping[:, None]  # (B', d)
        c_j = inv[rows, :, drop_j]  # (B', d)
        piv = torch.where(dropping, inv[rows, drop_j, drop_j], torch.ones_like(lam))
        inv = inv - (dropping / piv)[:, None, None] * c_j[:, :, None] * c_j[:, None, :]
        wa = wa.masked_fill(out, 0.0)
        left = torch.where(out, sign, torch.zeros_like(sign))
        sign = sign.masked_fill(out, 0.0)
        n_act = n_act & ~out
        new_sign = torch.sign(corr[rows, join_j] - step * a[rows, join_j])
        inv, n_act, sign, banned = _join(g, inv, n_act, sign, banned, joining, join_j, new_sign, eps)
        if bool(finished.any()):
            w[todo[finished]] = wa[finished]
            keep = ~finished
            todo, g, r, pen, lam, n_act, sign, inv, banned, left, wa = (
                t[keep] for t in (todo, g, r, pen, lam, n_act, sign, inv, banned, left, wa))
    if len(todo):
        w[todo] = wa  # not at the penalty yet: the caller's coordinate descent finishes these
    return w


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
    """Lasso with scikit-learn's scaling (1/(2i))|y − Xw|² + α|w|₁ per prefix: batched LARS, then a gap check.

    ``tol``: a problem is solved when its duality gap is ≤ tol·|y|² (scikit-learn's rule; its default tol is
    1e-4, the path usually reaches ~1e-12). Problems above it get coordinate-descent sweeps, at most
    ``max_sweeps``; after a call, a RuntimeWarning says how many were left unconverged.
    """

    alpha: float = 0.01
    tol: float = 1e-8
    max_sweeps: int = 10_000

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
            g, r, yy, pen = gram.flatten(0, 1), rhs.flatten(0, 1), yy.flatten(), pen.flatten()
            w, left = lasso_gram(g, r, yy, pen, self.tol, self.max_sweeps, w0=lasso_lars(g, r, pen))
            stuck += left
            out[sl, 1:] = (w.view(x.shape[0], n - 1, d) * x[:, 1:]).sum(-1)
        if stuck:
            warnings.warn(f"Lasso(alpha={self.alpha:g}): {stuck} prefix problems did not converge in "
                          f"{self.max_sweeps} sweeps", RuntimeWarning, stacklevel=2)
        return out.to(ys.dtype)
