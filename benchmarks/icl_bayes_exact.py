"""Is the sparse Bayes predictor exact on noiseless float32 prompts? Its error after k + 1 examples, where the
examples fix the support and the exact answer is zero, beside the old fixed jitter σ = 1e-3·τ.

    python benchmarks/icl_bayes_exact.py            # d = 5, 8, 20; 2,000 prompts each; about a minute on a CPU
"""

from __future__ import annotations

import torch

from limitlab.studies.icl.baselines.bayes import SparseBayes


def prompts(p: int, n: int, d: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noiseless k-sparse linear prompts made in float32 as the task makes them: xs (P, n, d), ys (P, n)."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(p, n, d, generator=g)
    w = torch.randn(p, d, generator=g) * (torch.rand(p, d, generator=g).argsort(-1) < k)  # k non-zero entries
    return xs, (xs @ w[:, :, None])[..., 0]


def main() -> None:
    print("| d | k | error at k+1, jitter 1e-3 | error at k+1, rounding noise | max after k+1 | prompts off >1e-3 |")
    print("|---|---|---|---|---|---|")
    for d, k in [(5, 2), (8, 3), (20, 3)]:
        xs, ys = prompts(2000, k + 3, d, k, seed=99)
        new = ((SparseBayes(k=k)(xs, ys) - ys) ** 2).double() / k  # (P, n) normalised squared error
        old = ((SparseBayes(k=k, jitter=1e-3)(xs, ys) - ys) ** 2).double() / k
        print(f"| {d} | {k} | {old[:, k + 1].mean():.4f} | {new[:, k + 1].mean():.1e} | {new[:, k + 1:].max():.1e} "
              f"| {(old[:, k + 1] > 1e-3).float().mean():.1%} → {(new[:, k + 1] > 1e-3).float().mean():.1%} |")


if __name__ == "__main__":
    main()
