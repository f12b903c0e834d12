"""The exact sparse Bayes predictor on noiseless task prompts: its normalised error per index, against the former
fixed jitter σ = 1e-3·τ. After s + 1 examples (s non-zero weights) only the true support fits, so the noiseless
limit predicts every y exactly; a fixed jitter lets wrong supports with a small misfit share the posterior.

    PYTHONPATH=src python benchmarks/icl_bayes_limit.py            # d = 5, 8, 20; s = 3; 400 prompts
"""

from __future__ import annotations

import time

import numpy as np

from limitlab.studies.icl import baselines as bl
from limitlab.studies.icl.evaluate import baseline_predictions, draw, squared_errors
from limitlab.tasks.icl_linear import ICLLinear


def main(dims=(5, 8, 20), s: int = 3, prompts: int = 400) -> None:
    for d in dims:
        task = ICLLinear(d=d, n_points=8, sparsity=s)
        p = draw(task, prompts)
        for name, jitter in (("noiseless limit", None), ("jitter 1e-3", 1e-3)):
            start = time.process_time()
            err = squared_errors(baseline_predictions(bl.SparseBayes(k=s, jitter=jitter), p), p, task.normaliser())
            off = float((err[:, s + 1] > 1e-3).mean())
            print(f"d={d:2d} s={s} {name:15s} error per k: {np.array2string(err.mean(0), precision=4)}; "
                  f"prompts off by > 1e-3 at k={s + 1}: {off:.1%} ({time.process_time() - start:.1f} CPU-s)")


if __name__ == "__main__":
    main()
