"""CPU: is a narrow attention head faster padded with zero columns to 16 dims? (the rule of ``nn.attention.sdpa``)

For each head dim hd and length T this times forward + backward of one causal
``F.scaled_dot_product_attention`` on (B·H, T, hd) — as given, and zero-padded to 16 dims with the scale kept at
1/√hd (the same logits, the same kept outputs) — interleaved round by round, best round kept. Prints
milliseconds and the speed-up of padding; ``limitlab.nn.attention.cpu_head_pad`` pads exactly where this was
measured faster. Benchmarks are not tests: run by hand,

    python benchmarks/cpu_attention_heads.py --T 50 100 200 300 500 1000 --hd 1 2 4 8 12
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
from torch.nn import functional as F

from limitlab.nn.attention import CPU_HEAD_DIM, cpu_head_pad


def best_ms(fns: dict[str, callable], rounds: int, reps: int) -> dict[str, float]:
    best = {k: math.inf for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            best[key] = min(best[key], (time.perf_counter() - start) / reps * 1e3)
    return best


def variants(rows: int, t: int, hd: int) -> dict[str, callable]:
    q, k, v = (torch.randn(rows, 4, t, hd, requires_grad=True) for _ in range(3))  # (B, H=4, T, hd)
    grad = torch.randn(rows, 4, t, hd)

    def as_given() -> None:
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)

    def padded() -> None:
        wide = [F.pad(z, (0, CPU_HEAD_DIM - hd)) for z in (q, k, v)]  # (B, H, T, 16)
        F.scaled_dot_product_attention(*wide, is_causal=True, scale=hd ** -0.5)[..., :hd].backward(grad)
    return {"as given": as_given, "padded": padded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[50, 100, 200, 300, 500, 1000])
    parser.add_argument("--hd", type=int, nargs="+", default=[1, 2, 4, 8, 12])
    parser.add_argument("--batch", type=int, default=16, help="sequences per call (heads: 4)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for t in args.T:
        for hd in [h for h in args.hd if h < CPU_HEAD_DIM]:
            ms = best_ms(variants(args.batch, t, hd), args.rounds, reps=max(1, 2000 // t))
            row = {"T": t, "hd": hd, "threads": args.threads, "ms": ms, "rule_pads": cpu_head_pad(hd, t) > 0,
                   "padding_speedup": ms["as given"] / ms["padded"], "load_avg": os.getloadavg()[0]}
            rows.append(row)
            if not args.json:
                print(f"T={t:<5} hd={hd:<3} as given {ms['as given']:8.2f} ms  padded {ms['padded']:8.2f} ms  "
                      f"padding {row['padding_speedup']:.2f}x  rule pads: {row['rule_pads']}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
