"""How long does scoring every prefix of every prompt take: batched baselines vs a per-prompt scikit-learn loop?

For each case (P prompts, n examples, dimension d) this draws k-sparse linear prompts (x ~ N(0, I), k = min(3, d)
non-zero weights N(0, 1), noiseless, float64) and times

* the batched baselines of :mod:`limitlab.studies.icl.baselines` on all P prompts (best of ``--rounds``;
  "timing 2": the same again, on the reference's prompts, right after the reference — the speed-up uses it), and
* the references Garg et al.'s evaluation uses, one scikit-learn fit per prompt and prefix (P·(n−1) fits):
  ``LinearRegression(fit_intercept=False)`` and ``Lasso(alpha, fit_intercept=False, max_iter=100000)`` with
  scikit-learn's default tol (1e-4), timed once (they take long), on the first ``--sk-prompts`` prompts
  (default: all) — the batched pair is timed on those same prompts.

and checks that each batched baseline equals its reference: the largest |difference| of the predictions, and for
Lasso the difference of the mean squared error (scikit-learn's default tol stops early on the underdetermined
prefixes, i < d, while the batched path is exact, so single predictions may differ there). Benchmarks are not
tests: run by hand, e.g.

    python benchmarks/icl_baselines.py --case 128 11 5 --case 1280 41 20 --json > benchmarks/results/icl_baselines.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from limitlab.studies.icl import baselines as bl


def sparse_prompts(p: int, n: int, d: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(p, n, d, generator=g, dtype=torch.float64)
    w = torch.randn(p, d, generator=g, dtype=torch.float64) * (torch.rand(p, d, generator=g).argsort(-1) < k)
    return xs, (xs * w[:, None]).sum(-1)


def best_of(fn, rounds: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        if out.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_case(p: int, n: int, d: int, alpha: float, rounds: int, sk_prompts: int | None, nn: bool,
             device: str = "cpu") -> dict:
    k = min(3, d)
    xs, ys = (t.to(device) for t in sparse_prompts(p, n, d, k))
    load0 = os.getloadavg()[0]
    batched = {"least squares": bl.LeastSquares(), "ridge α=0.1": bl.Ridge(0.1), "averaging": bl.Averaging(),
               "3-NN": bl.KNN(3), f"Lasso α={alpha:g}": bl.Lasso(alpha), "Bayes dense (ridge α=1e-6)": bl.DenseBayes(),
               f"Bayes sparse k={k} ({len(list(__import__('itertools').combinations(range(d), k)))} supports)":
                   bl.SparseBayes(k=k)}
    if nn:
        batched["2-layer NN by Adam (100 steps)"] = bl.TwoLayerNN()
    rows, preds = [], {}
    for name, model in batched.items():
        sec, out = best_of(lambda model=model: model(xs, ys), rounds)
        preds[name] = out
        mse = ((out - ys) ** 2)[:, 1:].mean().item() / k
        rows.append({"baseline": name, "batched_s": sec, "mse_norm": mse})
    q = p if sk_prompts is None else min(p, sk_prompts)
    refs = {"least squares": bl.SklearnLeastSquares(), f"Lasso α={alpha:g}": bl.SklearnLasso(alpha)}
    for name, ref in refs.items():
        start = time.perf_counter()
        want = ref(xs[:q], ys[:q])
        sk_sec = time.perf_counter() - start
        sec, got = best_of(lambda name=name: batched[name](xs[:q], ys[:q]), rounds)
        row = next(r for r in rows if r["baseline"] == name)
        err_got = ((got - ys[:q]) ** 2)[:, 1:].mean().item() / k
        err_want = ((want - ys[:q]) ** 2)[:, 1:].mean().item() / k
        row.update({"ref_prompts": q, "batched_same_prompts_s": sec, "sklearn_loop_s": sk_sec,
                    "speedup": sk_sec / sec, "max_abs_diff": (got - want).abs().max().item(),
                    "max_abs_diff_i_gt_d": (got - want)[:, d + 1:].abs().max().item() if n > d + 1 else None,
                    "mse_norm_batched": err_got, "mse_norm_sklearn": err_want,
                    "frac_within_1e-6": ((got - want).abs() <= 1e-6).double().mean().item()})
    return {"P": p, "n": n, "d": d, "k": k, "alpha": alpha, "threads": torch.get_num_threads(), "device": device,
            "load_start": load0, "load_end": os.getloadavg()[0], "rows": rows}


def print_table(res: dict) -> None:
    print(f"\nP={res['P']} n={res['n']} d={res['d']} (k={res['k']} sparse, noiseless), {res.get('device', 'cpu')}, "
          f"torch threads "
          f"{res['threads']}, load {res['load_start']:.1f} -> {res['load_end']:.1f}")
    print("| baseline | batched s (timing 2) | normalised MSE | sklearn loop s (prompts) | speed-up vs timing 2 | "
          "max abs diff (all i; i > d) | normalised MSE on those prompts: batched / sklearn |")
    print("|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        ref = (f"{r['sklearn_loop_s']:.1f} ({r['ref_prompts']}) | {r['speedup']:.1f}× | {r['max_abs_diff']:.1e}; "
               f"{r['max_abs_diff_i_gt_d'] or 0:.1e} | {r['mse_norm_batched']:.4f} / {r['mse_norm_sklearn']:.4f}"
               if "sklearn_loop_s" in r else "— | — | — | —")
        two = f" ({r['batched_same_prompts_s']:.3f})" if "sklearn_loop_s" in r else ""
        print(f"| {r['baseline']} | {r['batched_s']:.3f}{two} | {r['mse_norm']:.4f} | {ref} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", nargs=3, type=int, action="append", metavar=("P", "N", "D"),
                    help="prompts, examples per prompt, dimension (repeatable); default 128 11 5 and 1280 41 20")
    ap.add_argument("--alpha", type=float, default=0.01, help="Lasso alpha (Garg's plots use 0.01)")
    ap.add_argument("--rounds", type=int, default=2, help="batched timings keep the best of this many rounds")
    ap.add_argument("--sk-prompts", type=int, default=None, help="run the scikit-learn loops on this many prompts")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--nn", action="store_true", help="also time the stacked 2-layer networks (slow on a CPU)")
    ap.add_argument("--device", default="cpu", help="where the batched baselines run (scikit-learn: on the CPU)")
    ap.add_argument("--json", action="store_true", help="print one JSON line per case instead of a table")
    ap.add_argument("--render", metavar="JSONL", help="print the tables of a saved --json output and exit")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            for line in f:
                print_table(json.loads(line))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = args.case or [[128, 11, 5], [1280, 41, 20]]
    for p, n, d in cases:
        res = run_case(p, n, d, args.alpha, args.rounds, args.sk_prompts, args.nn, args.device)
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            print_table(res)


if __name__ == "__main__":
    main()
