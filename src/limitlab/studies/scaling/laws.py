"""Experiment 1, scaling laws that predict: a ladder of model sizes × token budgets on two corpora.

* ``markov`` — a random sparse Markov language (:class:`~limitlab.tasks.markov_lm.MarkovLMTask`) whose entropy
  rate H is known in closed form, so the fitted irreducible loss E can be checked against the truth. ``quick``
  uses order 1 (64 symbols, 8 successors each): tried first, an order-2 language (16 symbols, 4 successors) was
  learned in a jump — every run below ~10^10 FLOPs sat at 2.4–2.7 nats, the larger ones fell to ~0.9 once
  attention found the previous token — so the cheap runs could not predict the expensive ones (the held-out
  run's loss was over-predicted by 134%). Order 1 needs no attention circuit and is learned gradually.
* ``stdlib`` — byte-level Python standard-library source without its test packages
  (:class:`~limitlab.tasks.text_lm.TextLMTask`, :data:`STDLIB`: one file in 20 held out, evaluated at T only).

Every (size, budget) cell is its own run with a warmup + cosine schedule ending at its own budget (Hoffmann et
al.: never reuse intermediate checkpoints of a longer run). The budgets of one size share a stack (runs may
differ in steps), so a ladder costs one stack per size. Each spec's tags carry what the fits need:

    corpus ("markov-order<k>" or "stdlib"), size (index in the ladder), n_layers, d_model, n_params (all
    parameters, embeddings included — Pearce & Song 2024 show non-embedding counts bias small-scale exponents),
    n_params_nonembedding (Kaplan's N: without the token embedding and the position table), steps,
    tokens D = steps · batch · scored tokens per sequence, flops C (below), entropy_floor (markov: H in nats)

Training compute by limitlab's one convention (:mod:`limitlab.costs`, as the planner and ``limitlab bench``):
C = (6·N + 12·n_layers·T·d_model)·D, N without the token embedding and the position table (lookups, no FLOPs),
with the output head. Runs tagged before this convention was shared used 6·N'·D + 6·n_layers·T·d_model·D with
N' = N + the position table; their stored tags keep those numbers.

The claims are declared below (:data:`CLAIMS`); the analysis and the report section are in :mod:`.laws_report`.
"""

from __future__ import annotations

from collections.abc import Sequence

from limitlab.claims import AtLeast, Claim, Predicts, Within
from limitlab.costs import counts, train_flops_per_token
from limitlab.nn.model import ModelConfig
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.spec import RunSpec
from limitlab.tasks.markov_lm import MarkovLMTask
from limitlab.tasks.text_lm import TextLMTask

Size = tuple[int, int, int]  # (n_layers, d_model, n_heads)

# quick: ~0.6k .. 60k parameters (embeddings included) on the Markov language
QUICK_SIZES: tuple[Size, ...] = ((1, 4, 1), (1, 8, 1), (1, 12, 1), (1, 16, 2), (2, 16, 2), (2, 24, 2), (2, 32, 4),
                                 (2, 48, 4))
PAPER_SIZES: tuple[Size, ...] = ((2, 32, 4), (2, 48, 4), (2, 64, 4), (3, 96, 4), (4, 128, 4), (4, 192, 6),
                                 (6, 256, 8), (6, 384, 8), (8, 512, 8), (10, 640, 10))
MARKOV = {"symbols": 64, "order": 1, "branching": 8, "concentration": 0.5}  # quick and smoke
PAPER_MARKOV = {"symbols": 64, "order": 2, "branching": 8, "concentration": 0.5}
CORPORA = ("markov", "stdlib")
STDLIB = {"corpus": "stdlib", "skip_dirs": ["test", "tests", "idle_test"], "heldout_every": 20, "extrapolation": []}


def task_for(corpus: str, length: int, markov: dict | None = None) -> dict:
    if corpus == "markov":
        return {"name": "markov_lm", "length": length, **(markov or MARKOV)}
    if corpus == "stdlib":
        return {"name": "text_lm", "length": length, **STDLIB}
    raise ValueError(f"unknown corpus {corpus!r}; allowed: {', '.join(CORPORA)}")




def laws_specs(corpus: str, sizes: Sequence[Size], steps: Sequence[int], seeds: int | Sequence[int] = 1,
               batch_size: int = 32, length: int = 32, lr: float = 1e-2, warmup_frac: float = 0.05,
               eval_size: int = 512, eval_every: int = 0, markov: dict | None = None) -> list[RunSpec]:
    """The (size × budget × seed) ladder of one corpus as RunSpecs; tags as in the module docstring."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if len(set(steps)) != len(steps) or min(steps) < 1:
        raise ValueError(f"steps must be distinct positive budgets, got {list(steps)}")
    task = task_for(corpus, length, markov)
    task_obj = (MarkovLMTask if corpus == "markov" else TextLMTask).model_validate(
        {k: v for k, v in task.items() if k != "name"})
    scored = task_obj.scored_tokens
    floor = task_obj.entropy_rate() if corpus == "markov" else None
    label = f"markov-order{task_obj.order}" if corpus == "markov" else corpus  # languages never mix in one fit
    specs = []
    for i, (n_layers, d, heads) in enumerate(sizes):
        model = ModelConfig(n_layers=n_layers, d_model=d, n_heads=heads, max_len=length, position="learned")
        for budget in steps:
            tokens = budget * batch_size * scored
            for seed in seed_list:
                spec = RunSpec(
                    study="scaling", task=task, model=model, seed=seed,
                    optim={"optimizer": "adamw", "lr": lr, "beta2": 0.99, "schedule": "cosine",
                           "warmup_steps": max(1, int(warmup_frac * budget)), "min_lr_ratio": 0.1, "grad_clip": 1.0},
                    train={"steps": budget, "batch_size": batch_size, "eval_size": eval_size, "eval_every": eval_every})
                n = counts(spec)
                specs.append(spec.model_copy(update={"tags": {
                    "experiment": "laws", "corpus": label, "size": i, "n_layers": n_layers, "d_model": d,
                    "n_params": n.total, "n_params_nonembedding": n.nonembedding, "steps": budget, "tokens": tokens,
                    "flops": train_flops_per_token(spec) * tokens, "entropy_floor": floor, "seed": seed}}))
    return specs


def smoke(steps: Sequence[int] = (20, 60)) -> list[RunSpec]:
    """Seconds on a CPU: 3 tiny sizes × 2 budgets on the Markov language, 2 sizes × 1 budget on stdlib."""
    specs = laws_specs("markov", QUICK_SIZES[1:7:2], steps, eval_size=128, batch_size=16)
    return specs + laws_specs("stdlib", QUICK_SIZES[1:4:2], steps[:1], eval_size=128, batch_size=16)


def quick(steps: Sequence[int] = (20, 60, 180, 540), stdlib_steps: Sequence[int] = (20, 60, 180, 540),
          corpora: Sequence[str] = CORPORA, seeds: int = 3) -> list[RunSpec]:
    """8 sizes (1k–80k parameters) × 4 budgets (27× apart) × 3 seeds per corpus, batch 32 × 32 tokens, AdamW 1e-2
    cosine. Each seed trains the whole ladder, so every fit can be repeated per seed (the claims' intervals).

    The 20-step budget costs ~4% of the ladder and puts more cells below 1/100 of the largest run's compute: with
    budgets (60, 180, 540) only 4 stdlib cells were that cheap, too few for the 5-parameter L(N, D)."""
    specs: list[RunSpec] = []
    for corpus in corpora:
        specs += laws_specs(corpus, QUICK_SIZES, steps if corpus == "markov" else stdlib_steps, seeds)
    return specs


def paper(steps: Sequence[int] = (2000, 6000, 18000, 54000), corpora: Sequence[str] = CORPORA,
          seeds: int = 1) -> list[RunSpec]:
    """For one GPU: 10 sizes (~40k–50M parameters) × 4 budgets (27× apart), batch 64 × 256 tokens, AdamW 3e-3."""
    specs: list[RunSpec] = []
    for corpus in corpora:
        specs += laws_specs(corpus, PAPER_SIZES, steps, seeds, batch_size=64, length=256, lr=3e-3, eval_size=2048,
                            markov=PAPER_MARKOV)
    return specs


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}

# ---- claims: written from the papers' statements before the runs ---------------------------------------------------

KAPLAN, HOFFMANN, GPT4 = "Kaplan et al. 2020", "Hoffmann et al. 2022 (Chinchilla)", "OpenAI 2023 (GPT-4 report)"
HOLDOUT = ("the run with the most compute, predicted from each seed's runs with ≥ 100× less compute (C ≤ C_max/100)"
           "; 95% t-interval of the mean over seeds")


def _claims(corpus: str, label: str) -> tuple[Claim, ...]:
    """The claims of one corpus (``label``: the ``tags.corpus`` value its runs carry)."""
    rows = [
        Claim(f"scaling.laws.{corpus}_power_law", KAPLAN, "Section 3, Figure 1",
              f"[{label}] loss on the compute frontier follows a power law in compute, L(C) = E + A·C^(−α), better "
              "than the obvious alternatives",
              "held-out log-loss error of the best alternative (log-linear a − b·log C, or exponential "
              "E + A·exp(−k·C/C_fit)) minus that of the power law, each fitted on a seed's frontier cells with "
              "C ≤ C_max/100 and scored (RMS relative error) on its frontier cells above; paired over seeds",
              AtLeast(0.0, strict=True),
              preset="laws-quick",
              untested="the exponent's value (Kaplan's α_C ≈ 0.05 belongs to WebText2), other alternatives "
                       "(e.g. a broken power law), non-frontier cells"),
        Claim(f"scaling.laws.{corpus}_predict_lc", GPT4, "Section 3.1, Figure 1",
              f"[{label}] the final loss of the largest run is predicted by L(C) = a·C^b + c fitted on runs with "
              "far less compute",
              f"relative error (measured − predicted)/measured of frontier L(C): {HOLDOUT}", Predicts(0.05),
              preset="laws-quick",
              untested="GPT-4's 1,000–10,000× extrapolation (ours is ≥ 100×); capabilities (HumanEval pass rate)"),
        Claim(f"scaling.laws.{corpus}_predict_lnd", HOFFMANN, "Section 3.3 (Approach 3)",
              f"[{label}] L(N, D) = E + A/N^α + B/D^β fitted on small runs predicts the loss of a larger one",
              f"relative error (measured − predicted)/measured of L(N, D): {HOLDOUT}", Predicts(0.05),
              preset="laws-quick",
              untested="Hoffmann's 400-run scale; prediction at a size × data combination inside the ladder"),
        Claim(f"scaling.laws.{corpus}_n_opt", HOFFMANN, "Table 2, Section 3.3",
              f"[{label}] compute-optimal model size grows as N_opt ∝ C^a with a ≈ 0.5 (Kaplan: 0.73)",
              "a = β/(α+β) of L(N, D) fitted on all of a seed's cells, mean over seeds",
              Within(0.4, 0.6), preset="laws-quick",
              untested="IsoFLOP profiles (Approaches 1–2); the window [0.4, 0.6] separates 0.5 from Kaplan's 0.73, "
                       "an interval holding both is inconclusive"),
    ]
    if corpus == "markov":
        rows.append(Claim(
            "scaling.laws.markov_floor", HOFFMANN, "Section 3.3 (the E term)",
            f"[{label}] the fitted irreducible loss E of L(N, D) is the data's entropy (here the language's "
            "entropy rate H, known in closed form)",
            "(E − H)/H with E from L(N, D) fitted on all of a seed's cells, mean over seeds", Within(-0.05, 0.05),
            preset="laws-quick",
            untested="natural text (its entropy is unknown); E from L(C)"))
    return tuple(rows)


CLAIMS: dict[str, tuple[Claim, ...]] = {"markov": _claims("markov", "markov-order1"), "stdlib": _claims("stdlib",
                                                                                                      "stdlib")}


def protocol(ctx: ReportContext) -> list[dict]:
    """Paper vs ours for the runs of this store (values read from their specs)."""
    from limitlab.report.tables import ProtocolTable

    runs = ctx.tagged(experiment="laws")
    if runs.empty:
        return []
    t = ProtocolTable(runs, group="tags.corpus")
    t.add("parameters N (all, embeddings included)", None, "70M–16B (Hoffmann)", same=False,
          values=[f"{runs['tags.n_params'].min():,.0f}–{runs['tags.n_params'].max():,.0f}"],
          note="Pearce & Song 2024: count embeddings at small scale")
    t.add("runs per (size, budget) cell", None, "1", same=False, values=[runs.groupby(["tags.corpus", "tags.size",
          "tags.steps"]).size().max()], note="seeds replicate the ladder: intervals over seeds")
    t.add("schedule", "optim.schedule", "cosine to the run's own budget (Hoffmann)", same=True)
    t.add("fit", None, "Huber δ = 1e-3 on log L, summed; LSE; L-BFGS multi-start (Besiroglu)", same=True,
          values=["same"])
    t.add("held-out compute ratio", None, "1,000–10,000× (GPT-4 report)", same=False, values=["≥ 100×"])
    return t.rows


def _analyze(ctx: ReportContext) -> Section:
    from limitlab.studies.scaling.laws_report import analyze

    return analyze(ctx)


EXPERIMENT = Experiment("laws", "Scaling laws that predict", tuple(c for rows in CLAIMS.values() for c in rows),
                        _analyze)
