"""The arithmetic study's claims, as data, written from the papers' statements before the runs.

Sources (see /work/shared/reference/arithmetic.md): Xu et al. 2024 (arXiv 2407.17963) — the abstract's two claims
and the authors' stored notebook results ([nb]); McLeish et al. 2024 (arXiv 2405.17399) for Abacus. Every claim
reads only runs that learned their training distribution (in-distribution exact match ≥ 90%, per run): a seed
whose run did not is left out, and with fewer than three seeds left the row is inconclusive.

"Outward": test digit counts above the largest training count. Per-seed values are computed over the outward
digit counts (mean, or the worst one where the paper says "at every length"); intervals are Student-t over seeds,
each seed's value averaging its own test sequences (so the interval carries both sources of noise).
"""

from __future__ import annotations

from limitlab.claims import AtLeast, AtMost, Claim, Exists, Within

XU = "Xu et al. 2024"
NB = "authors' notebooks, Test_Accuracy_Table (reference §2.6)"

APE_ZERO = Claim(
    "arithmetic.ape_zero_outward", XU, NB,
    "Learned absolute positions trained on ≤ k-digit addition score 0% exact match at every longer operand length",
    "the largest exact match over the outward digit counts (per seed)", AtMost(0.01),
    untested="the paper's mini-GPT (6 × 384) and 20-digit width; other encodings")
APE_TRUNCATED = Claim(
    "arithmetic.ape_truncated_every_length", XU, NB,
    "The same models score ~100% against the truncated target (a mod 10^k) + (b mod 10^k) at every longer length",
    "the smallest truncated-target exact match over the outward digit counts (per seed)", AtLeast(0.9),
    untested="the paper's model size and training length (ours: 2 × 64, 2,000 steps)")
APE_TRUNC_VS_TRUE = Claim(
    "arithmetic.ape_truncated_vs_true", XU, NB,
    "Beyond the training length the model computes the truncated function, not the true sum: its outputs match "
    "the truncated target more often than the true one",
    "the paired per-seed difference truncated-target − true-target exact match (mean over outward digit counts)",
    AtLeast(0.0, strict=True),
    untested="how close to 100% the truncated match is (the row above); per-sequence identity with the truncated "
             "function")
INWARD_HOLE = Claim(
    "arithmetic.inward_hole", XU, NB + ", D_ab4",
    "Inward OOD: a model trained on D_ab4 (both operands exactly 4 digits) is worse at 3 digits than in "
    "distribution (72.6% vs 100%)",
    "the paired per-seed difference in-distribution − inward exact match of learned-PE D_ab runs", AtLeast(0.1),
    untested="the size of the paper's gap (27 points); encodings other than learned (shown, not judged, in the "
             "encodings section); repro: the aligned format. Changed after the first repro run: a D_ab run counts as "
             "learned by its exact match on D_ab itself (the test split), not on the 4-digit length split",
    preset="repro")
MOD100 = Claim(
    "arithmetic.mod_divides_generalizes", XU, "abstract, claim (2); notebooks: mod 50/100 at 100% to 9 digits",
    "Modular arithmetic with p dividing 10^k (mod 100) generalizes to longer operands",
    "exact match beyond the training length of the p | 10^k runs (mean over outward digit counts, per seed)",
    AtLeast(0.9),
    untested="'regardless of the encoding' (quick: learned positions only); modular multiplication (paper preset)")
MOD100_VS_101 = Claim(
    "arithmetic.mod100_vs_mod101", XU, "abstract, claim (2)",
    "Mod 100 generalizes to longer operands while mod 101 does not: beyond the training length mod 100 is more "
    "accurate than mod 101",
    "the paired per-seed difference mod-100 − mod-101 exact match (same encoding and seed, mean over outward "
    "digit counts)", AtLeast(0.0, strict=True),
    untested="the levels (the two rows beside it); 'regardless of the encoding' (quick: learned positions only)")
MOD_RATE = Claim(
    "arithmetic.mod_truncation_rate", XU, "notebooks, count_valid_pairs (reference §2.6)",
    "When p′ = p / gcd(p, 10^k) > 1 (mod 101), accuracy beyond the training length is the truncated function's: "
    "right only where the dropped high digits contribute 0 mod p′, a rate that tends to 1/p′",
    "(exact match − the truncated function's exact rate on the test distribution) × p′, mean over outward digit "
    "counts (per seed)", Within(-0.5, 0.5),
    untested="per-sequence identity with the truncated function; each digit count apart (a mean over them)")
REL_ADD = Claim(
    "arithmetic.relative_pe_addition", XU, "abstract, claim (1)",
    "With a suitable (relative) position encoding, addition generalizes to longer operands",
    "outward exact match of the best non-absolute encoding on addition (per seed)", AtLeast(0.9),
    untested="which encoding is best (chosen on the data); the paper's own RPE (not in its released code); the "
             "paper's format (repro: the aligned format, see the encodings section)",
    preset="repro")
MUL_NOT = Claim(
    "arithmetic.multiplication_does_not", XU, "abstract, claim (1)",
    "Multiplication does not generalize to longer operands, whatever the position encoding",
    "outward exact match of the best encoding on multiplication (per seed)", AtMost(0.05),
    untested="scratchpad formats (Jelassi et al.; Cho et al. make it generalize)", preset="repro")
ADD_VS_MUL = Claim(
    "arithmetic.addition_vs_multiplication", XU, "abstract, claim (1)",
    "Length generalization works less well for multiplication than for addition",
    "the paired per-seed difference addition − multiplication outward exact match (each encoding, mean over "
    "the non-absolute encodings)", AtLeast(0.0, strict=True),
    untested="the training lengths (repro: D≤4 addition vs D≤2 multiplication; paper: D4 vs D3)", preset="repro")
REMAINDER = Claim(
    "arithmetic.remainder_scratchpad", "reference §4(c) (ours, beyond the paper)", "—",
    "A running-remainder scratchpad (r ← 10·r + d mod p) makes addition mod p with p′ > 1 generalize outward",
    "outward exact match of the remainder-format runs (mean over outward digit counts, per seed)", AtLeast(0.9),
    untested="which encoding does it (RoPE, T5 and NoPE are pooled per seed)", preset="beyond")
ABACUS = Claim(
    "arithmetic.abacus_100_digits", "McLeish et al. 2024", "abstract; Fig. 1",
    "Abacus embeddings trained on ≤ 20-digit addition reach up to 99% exact match on 100-digit addition",
    "exact match at 100 digits of an Abacus run", Exists(0.9),
    untested="their 16-layer width-1024 model and one GPU-day (ours: 8 × 512, 50k steps)", preset="beyond")
