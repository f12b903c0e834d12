"""The truncated function's exact accuracy on the test distribution: what the theory predicts a model scores.

Xu et al.'s account: a model trained on operands of at most k digits learns f(a mod 10^k, b mod 10^k). On longer
operands it is right exactly where the dropped high parts do not change the answer. For a ∘ b mod p that happens
when 10^k · (the high parts' contribution) ≡ 0 mod p, i.e. when the contribution is ≡ 0 mod p′ = p / gcd(p, 10^k)
(p / g and 10^k / g share no factor). So p′ = 1 (p divides 10^k: mod 100 with k ≥ 2) predicts 100% at every
length, and p′ > 1 predicts a rate that tends to 1/p′ as the high parts grow.

:func:`truncation_agreement` computes that rate **exactly** (counting residues, not sampling) for the test
distribution of the ``lengths`` split at digit count n: one operand exactly n digits (its high part a // 10^k
uniform on [10^(n−k−1), 10^(n−k))), the other uniform on [0, 10^n); "exactly 1 digit" is 0..9. Write a = h_a·10^k
+ l_a. Addition: right iff h_a + h_b ≡ 0 (mod p′). Multiplication: right iff h_a·h_b·10^k + h_a·l_b + l_a·h_b ≡ 0
(mod p′). Without a modulus, addition is never right beyond k digits and multiplication only when the uniform
operand is 0.

>>> [truncation_agreement("add", 101, 2, n) for n in (2, 3, 4)]          # mod 101 after training on ≤ 2 digits
[1.0, 0.0, 0.01]
>>> round(truncation_agreement("add", 101, 2, 9), 5), round(1 / 101, 5)  # → 1/p′
(0.0099, 0.0099)
>>> truncation_agreement("add", 100, 2, 7)                              # 100 divides 10²: always right
1.0
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["p_prime", "truncation_agreement"]


def p_prime(modulus: int, k: int) -> int:
    """p′ = p / gcd(p, 10^k): 1 when p divides 10^k (``p_prime(100, 2) == 1``, ``p_prime(101, 2) == 101``)."""
    return modulus // math.gcd(modulus, 10**k)


def _residues(low: int, high: int, q: int) -> list[int]:
    """How many integers in [low, high) fall in each residue class mod q."""
    def below(n: int) -> list[int]:
        return [n // q + (r < n % q) for r in range(q)]

    return [h - lo for h, lo in zip(below(high), below(low))]


def truncation_agreement(op: str, modulus: int | None, k: int, n: int) -> float:
    """The exact fraction of the ``n``-digit test distribution on which f(a mod 10^k, b mod 10^k) = f(a, b).

    ``op``: "add" or "mul"; ``modulus``: p, or None for the exact result; ``k``: the digits the truncated function
    keeps (the largest training digit count). Addition is exact (integer counts); modular multiplication sums
    residue probabilities in float64.
    """
    if op not in ("add", "mul"):
        raise ValueError(f"op must be 'add' or 'mul', got {op!r}")
    if n <= k:
        return 1.0
    if modulus is None:
        return 0.0 if op == "add" else 10.0 ** -n  # a·b = l_a·l_b beyond k digits only when the uniform one is 0
    q = p_prime(modulus, k)
    if q == 1:
        return 1.0
    ha = _residues(10 ** (n - k - 1), 10 ** (n - k), q)  # the exact-n operand's high part
    hb = _residues(0, 10 ** (n - k), q)  # the uniform operand's high part
    if op == "add":
        hits = sum(ha[r] * hb[-r % q] for r in range(q))
        return float(Fraction(hits, sum(ha) * sum(hb)))
    lo = np.array(_residues(0, 10**k, q), dtype=float) / 10**k  # l_a, l_b: uniform on [0, 10^k)
    pa, pb = np.array(ha, float) / sum(ha), np.array(hb, float) / sum(hb)
    r = np.arange(q)
    # by_factor[x, u] = P(x · l ≡ u) for a low part l: the distribution of h·l for every residue x of h
    by_factor = np.zeros((q, q))
    np.add.at(by_factor, (np.repeat(r, q), (np.outer(r, r) % q).ravel()), np.tile(lo, q))
    total = 0.0
    for x in range(q):  # x = h_a mod q; for every y = h_b mod q: P(x·l_b + y·l_a ≡ −x·y·10^k)
        need = (-x * r * 10**k) % q  # (q,) over y
        idx = (need[:, None] - r[None, :]) % q  # (y, u): y·l_a must be need − u when x·l_b = u
        q_xy = (by_factor[r[:, None], idx] * by_factor[x][None, :]).sum(1)  # (q,) over y
        total += pa[x] * float(pb @ q_xy)
    return total
