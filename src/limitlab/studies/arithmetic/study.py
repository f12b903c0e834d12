"""The arithmetic study's presets: lists of RunSpecs, one per (experiment, position encoding, seed).

An *experiment* is a task family with a training distribution, e.g. ``add/D4`` (addition, D_≤4 in the fixed
format) or ``modadd101/D4`` (addition mod 101). Tags on every run: ``experiment``, ``op``, ``modulus``,
``format``, ``position``, ``train`` (the distribution's name: D≤4, D_ab4, D45 …), ``seed``.

Paper protocol (Xu et al. 2024, as far as the reference notes recover it from the authors' code): mini-GPT
(6 layers, 6 heads, width 384), AdamW lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4, β2 = 0.99, weight
decay 0.1, gradient clip 1, batch 64, the fixed-width format (20-digit operands), test digit counts 1..9.
Unknown and chosen here: the number of steps (the paper ran "until stopped"), no dropout (the engine has none;
the paper used 0.1–0.2), data drawn afresh each step instead of 100k/500k-sample files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from limitlab.spec import RunSpec
from limitlab.tasks.arithmetic import ArithmeticTask

PAPER_POSITIONS = ("none", "learned", "rope", "alibi", "t5", "cope", "abacus")
PAPER_MODULI = (50, 51, 100, 101, 150, 151, 200, 201)
PAPER_ADD = {"D4": [4], "D_ab4": [4], "D5": [5], "D6": [6], "D45": [4, 5], "D56": [5, 6], "D67": [6, 7]}
PAPER_MUL = {"D12": [1, 2], "D2": [2], "D3": [3], "D34": [3, 4], "D234": [2, 3, 4]}


def train_name(digits: Sequence[int], both_exact: bool) -> str:
    """D4, D_ab4, D45, D≤4 (for 1..n)."""
    ds = sorted(digits)
    if len(ds) > 2 and ds == list(range(1, ds[-1] + 1)):
        body = f"≤{ds[-1]}"
    else:
        body = "".join(str(d) for d in ds) if all(d < 10 for d in ds) else "_".join(str(d) for d in ds)
    return f"D_ab{body}" if both_exact else f"D{body}"


def position_options(position: str, seq_len: int, train_max: int, test_max: int) -> dict[str, Any]:
    """Options that make an encoding cover the task's longest sequence.

    Abacus: training offsets k ∈ [0, test_max − train_max], so every digit index a test number uses is trained
    (McLeish et al. use k ≤ 100 for 20-digit training and 100-digit tests; with k ≤ 100 and 4-digit training, the
    rows 1..4 used at evaluation would see only ~4% of the training sequences).
    """
    opts: dict[str, Any] = {}
    if "cope" in position:
        opts["p_max"] = seq_len
    if "t5" in position:
        opts["t5_max_distance"] = max(128, seq_len)
    if "abacus" in position:
        opts["abacus_max_offset"] = max(test_max - train_max, 1)
        opts["abacus_max_index"] = seq_len + opts["abacus_max_offset"] + 1
    return opts


def arithmetic_spec(
    op: str = "add", digits: Sequence[int] = (1, 2, 3, 4), *, both_exact: bool = False, modulus: int | None = None,
    fmt: str = "fixed", position: str = "learned", seed: int = 0, width: int = 20,
    test_digits: Sequence[int] = tuple(range(1, 10)), n_layers: int = 6, n_heads: int = 6, d_model: int = 384,
    steps: int = 10_000, lr: float = 1e-3, batch_size: int = 64, eval_size: int = 1800, warmup: int = 100,
    weight_decay: float = 0.1, experiment: str | None = None, eval_every: int = 0,
) -> RunSpec:
    """One run with the paper's optimizer recipe; every argument is a grid coordinate of the presets."""
    task = ArithmeticTask(op=op, modulus=modulus, format=fmt, width=width, train_digits=list(digits),
                          both_exact=both_exact, test_digits=list(test_digits))
    longest = max(t.seq_len() for t in task.splits().values())
    options = position_options(position, longest, max(digits), max(test_digits))
    name = train_name(digits, both_exact)
    if experiment is None:
        kind = op if modulus is None else f"mod{op}{modulus}"
        experiment = f"{kind}/{name}" + ("" if fmt == "fixed" else f"/{fmt}")
    return RunSpec(
        study="arithmetic",
        task={"name": "arithmetic", **task.model_dump()},
        model={"n_layers": n_layers, "n_heads": n_heads, "d_model": d_model, "position": position,
               "position_options": options, "max_len": longest, "init": "gpt2"},
        optim={"optimizer": "adamw", "lr": lr, "beta2": 0.99, "weight_decay": weight_decay, "schedule": "cosine",
               "warmup_steps": warmup, "min_lr_ratio": 0.1, "grad_clip": 1.0},
        train={"steps": steps, "batch_size": batch_size, "eval_size": eval_size, "eval_every": eval_every},
        seed=seed,
        tags={"experiment": experiment, "op": op, "modulus": modulus, "format": fmt, "position": position,
              "train": name, "seed": seed},
    )


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def paper(seeds: int | Sequence[int] = 3, positions: Sequence[str] = PAPER_POSITIONS,
          moduli: Sequence[int] = PAPER_MODULI, add_steps: int = 10_000, mul_steps: int = 20_000) -> list[RunSpec]:
    """The paper's runs × every encoding × seeds (mini-GPT, fixed width 20, test 1..9 digits).

    Addition D4, D_ab4, D5, D6, D45, D56, D67; multiplication D12, D2, D3, D34, D234; modular addition on D≤4 and
    modular multiplication on D≤3 for every p in ``moduli``. Step counts are our choice (the paper's are unknown).
    """
    specs = []
    for seed in _seeds(seeds):
        for pos in positions:
            for name, digits in PAPER_ADD.items():
                specs.append(arithmetic_spec("add", digits, both_exact=name.startswith("D_ab"), position=pos,
                                             seed=seed, steps=add_steps))
            for digits in PAPER_MUL.values():
                specs.append(arithmetic_spec("mul", digits, position=pos, seed=seed, steps=mul_steps))
            for p in moduli:
                specs.append(arithmetic_spec("add", [1, 2, 3, 4], modulus=p, position=pos, seed=seed,
                                             steps=add_steps))
                specs.append(arithmetic_spec("mul", [1, 2, 3], modulus=p, position=pos, seed=seed, steps=mul_steps))
    return specs


def _cpu_spec(op: str, digits: Sequence[int], *, steps: int, d_model: int, n_layers: int, eval_size: int,
              test_digits: Sequence[int], width: int, lr: float, seed: int, n_heads: int = 4, **kw) -> RunSpec:
    return arithmetic_spec(op, digits, seed=seed, width=width, test_digits=test_digits, n_layers=n_layers,
                           n_heads=n_heads, d_model=d_model, steps=steps, lr=lr, batch_size=64, eval_size=eval_size,
                           warmup=50, **kw)


def quick(seeds: int | Sequence[int] = 5, steps: int = 2000, mod_steps: int = 2000, remainder_steps: int = 2000,
          d_model: int = 64, n_layers: int = 2, remainder_modulus: int | None = None,
          encodings: Sequence[str] = (), encoding_steps: int = 4000, eval_size: int = 1800,
          mod_eval_size: int = 9000) -> list[RunSpec]:
    """CPU-sized, test digit counts 1..9 in the fixed format with operand width 10, ``seeds`` seeds of each (more
    than the three a claim needs: at this size the seeds differ a lot beyond the training length):

    * learned absolute PE on D≤4 addition (``steps``);
    * learned absolute PE on mod-100 and mod-101 addition trained on D12 (1- and 2-digit operands, ``mod_steps``):
      mod 100 should carry over to longer operands, mod 101 fall to the truncated function's accuracy (→ 1/p′).
      They are tested on ``mod_eval_size`` sequences (about 1,000 per digit count): the truncated function of
      mod 101 is right on about 1% of them, so a rate that small needs thousands of sequences to be measured;
    * (``remainder_modulus``; default None: left out) addition mod p in the running-remainder format with RoPE,
      trained on D≤4 and tested to 9 digits (the ``beyond`` preset measures the scratchpad at scale);
    * (``encodings``, default none) D≤4 addition in the reversed variable-length format, tested to 12 digits, once
      per encoding named (e.g. ``["abacus", "rope", "learned"]``, ``encoding_steps`` steps): the paper's claim (1)
      at CPU scale (at this size they do not learn the task in distribution, so the claim stays unjudged).

    Departures from the paper: a 2-layer width-64 model, lr 3e-3, 2,000 steps, operand width 10 instead of 20
    (shorter sequences; the test lengths are the paper's 1..9), modular runs trained on 1–2 digits instead of 4
    (a small model learns (a + b) mod 101 for a, b < 100 within minutes).
    """
    common = dict(d_model=d_model, n_layers=n_layers, eval_size=eval_size, test_digits=range(1, 10), width=10,
                  lr=3e-3)
    specs = []
    for seed in _seeds(seeds):
        specs.append(_cpu_spec("add", [1, 2, 3, 4], seed=seed, steps=steps, **common))
        for p in (100, 101):
            specs.append(_cpu_spec("add", [1, 2], modulus=p, seed=seed, steps=mod_steps,
                                   **{**common, "eval_size": mod_eval_size}))
        if remainder_modulus is not None:
            specs.append(_cpu_spec("add", [1, 2, 3, 4], modulus=remainder_modulus, fmt="remainder", position="rope",
                                   seed=seed, steps=remainder_steps, **common))
        for pos in encodings:
            specs.append(_cpu_spec("add", [1, 2, 3, 4], fmt="reversed", position=pos, seed=seed, steps=encoding_steps,
                                   **{**common, "test_digits": range(1, 13)}))
    return specs


REPRO_ENCODINGS = ("learned", "rope", "t5", "none", "abacus")


def repro(seeds: int | Sequence[int] = 3, encodings: Sequence[str] = REPRO_ENCODINGS,
          inward_encodings: Sequence[str] = ("learned", "rope"),
          mod_encodings: Sequence[str] = ("learned", "rope"), steps: int = 2000, mul_steps: int = 0,
          d_model: int = 64, n_layers: int = 4, lr: float = 3e-3) -> list[RunSpec]:
    """Claims (1) and (2) of Xu et al. at CPU scale, every number least significant digit first (``aligned``):
    digit i of a, b and the answer sit at fixed distances, so a relative encoding sees the same offsets at every
    length, and a longer operand is more non-zero digits in the same sequence.

    * addition trained on D≤4 (operand width 10), tested at 1..9 digits (outward: 5..9), per encoding in
      ``encodings``;
    * addition trained on D_ab4 (both operands exactly 4 digits), tested at 1..9 (inward: 1..3), per encoding in
      ``inward_encodings`` (learned positions, the paper's, and RoPE: T5 and Abacus did not learn D_ab4 in 2,000
      steps at this size, docs/arithmetic-results.md);
    * addition mod 100 and mod 101 trained on D12, tested at 1..9 digits on 9,000 sequences (the truncated
      function of mod 101 is right on ~1% of them), per encoding in ``mod_encodings``;
    * (``mul_steps`` > 0; default 0: left out) multiplication trained on D≤2 (operand width 7), tested at 1..4
      digits, per encoding in ``encodings``. At this model size it does not reach 90% in distribution within a
      CPU budget (docs/arithmetic-results.md), so its claims need a GPU preset or a long run.

    Every run: ``n_layers`` × ``d_model``, 4 heads, AdamW ``lr`` (β2 0.99, weight decay 0.1, 50 warm-up steps,
    cosine to lr/10, clip 1), batch 64, ``steps`` steps. Abacus trains with random index offsets up to (largest
    test − largest training) digits (:func:`position_options`).
    """
    common = dict(n_layers=n_layers, d_model=d_model, lr=lr, eval_size=1800)
    specs = []
    for seed in _seeds(seeds):
        add = dict(fmt="aligned", seed=seed, width=10, test_digits=range(1, 10), steps=steps, **common)
        for pos in encodings:
            specs.append(_cpu_spec("add", [1, 2, 3, 4], position=pos, **add))
        for pos in inward_encodings:
            specs.append(_cpu_spec("add", [4], both_exact=True, position=pos, **add))
        for pos in mod_encodings:
            for p in (100, 101):
                specs.append(_cpu_spec("add", [1, 2], modulus=p, position=pos, **{**add, "eval_size": 9000}))
        for pos in encodings if mul_steps > 0 else ():
            specs.append(_cpu_spec("mul", [1, 2], fmt="aligned", position=pos, seed=seed, width=7,
                                   test_digits=range(1, 5), steps=mul_steps, **common))
    return specs


def smoke(seeds: int | Sequence[int] = 1, steps: int = 40) -> list[RunSpec]:
    """Seconds on a CPU: the quick preset's experiments on a 1-layer width-32 model, test 1..6 digits."""
    common = dict(steps=steps, d_model=32, n_layers=1, eval_size=120, test_digits=range(1, 7), width=6, lr=3e-3)
    specs = []
    for seed in _seeds(seeds):
        specs.append(_cpu_spec("add", [1, 2, 3], seed=seed, **common))
        for p in (100, 101):
            specs.append(_cpu_spec("add", [1, 2, 3], modulus=p, seed=seed, **common))
        specs.append(_cpu_spec("add", [1, 2], modulus=7, fmt="remainder", position="rope", seed=seed, **common))
    return specs


def beyond(seeds: int | Sequence[int] = 3, steps: int = 50_000, remainder_steps: int = 20_000) -> list[RunSpec]:
    """For a GPU. (a) McLeish et al.'s setting at our scale: reversed addition with Abacus (+ NoPE attention), and
    RoPE / learned for comparison, trained on 1..20 digits, tested at 1..20 and 25, 30, …, 100 digits (their
    model: 16 layers, width 1024, one GPU-day; ours: 8 layers, width 512, ``steps`` steps). (b) mod 101 with the
    running-remainder scratchpad, trained on ≤ 8 digits, tested to 30, with RoPE, T5 and NoPE attention, beside the
    fixed-width format trained the same way.
    """
    test = [*range(1, 21), *range(25, 101, 5)]
    specs = []
    for seed in _seeds(seeds):
        for pos in ("abacus", "rope", "learned"):
            specs.append(arithmetic_spec("add", range(1, 21), fmt="reversed", position=pos, seed=seed,
                                         test_digits=test, n_layers=8, n_heads=8, d_model=512, steps=steps,
                                         lr=1e-4 * 3, batch_size=64, eval_size=3600, experiment="add/D≤20/reversed"))
        for pos in ("rope", "t5", "none"):
            specs.append(arithmetic_spec("add", range(1, 9), modulus=101, fmt="remainder", position=pos, seed=seed,
                                         test_digits=range(1, 31), n_layers=4, n_heads=4, d_model=256,
                                         steps=remainder_steps, eval_size=3000))
        specs.append(arithmetic_spec("add", range(1, 9), modulus=101, fmt="fixed", width=30, position="learned",
                                     seed=seed, test_digits=range(1, 31), n_layers=4, n_heads=4, d_model=256,
                                     steps=remainder_steps, eval_size=3000))
    return specs
