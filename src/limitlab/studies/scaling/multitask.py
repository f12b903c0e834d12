"""Experiment 2, multitask next-token prediction: multitask sparse parity (Michaud et al. 2023).

Wei's intuition: next-token prediction is massively multitask; the overall loss falls smoothly with scale while
single tasks are learned abruptly. Here K parity subtasks with power-law frequencies
(:class:`~limitlab.tasks.sparse_parity.SparseParityTask`) train a ladder of model sizes, evaluated every
``eval_every`` steps on the training mixture (``test`` split: the overall loss) and on a uniform mixture
(``uniform`` split: ``loss_by_subtask`` and ``accuracy_by_subtask``, as many test sequences per subtask).

What the report measures (:func:`analyze`):

* **learning step** of each (size, subtask): the first evaluation at which the subtask's accuracy reaches
  ``LEARNED`` (90%); censored (``None``) when it never does.
* **abruptness**, two measures per loss curve (each subtask, and the overall loss): the 10%→90% width of its drop
  as a fraction of the run's length, and the largest share of its drop made between two consecutive evaluations.
  Michaud's picture: subtasks narrow with a large one-interval share, the overall loss wide with a small one.
* **order**: Spearman's ρ between a subtask's frequency rank and its learning step (or the smallest size that
  learns it) — positive when frequent subtasks are learned first.
"""

from __future__ import annotations

from collections.abc import Sequence

from limitlab.claims import AtLeast, AtMost, Claim
from limitlab.costs import param_counts
from limitlab.nn.model import ModelConfig
from limitlab.report.sections import Experiment, ReportContext, Section
from limitlab.spec import RunSpec
from limitlab.tasks.sparse_parity import SparseParityTask

Size = tuple[int, int, int]  # (n_layers, d_model, n_heads)
QUICK_SIZES: tuple[Size, ...] = ((1, 16, 2), (2, 32, 4), (2, 64, 4))
SMOKE_SIZES: tuple[Size, ...] = ((1, 8, 1), (2, 16, 2))
PAPER_SIZES: tuple[Size, ...] = ((2, 32, 4), (2, 64, 4), (3, 96, 4), (4, 128, 4), (4, 192, 6), (6, 256, 8))


def multitask_specs(sizes: Sequence[Size], steps: int, task: dict, seeds: int | Sequence[int] = 1,
                    batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 0.01, eval_every: int = 100,
                    eval_size: int = 512) -> list[RunSpec]:
    """One run per (size, seed) of the multitask sparse-parity mixture, evaluated every ``eval_every`` steps."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    t = SparseParityTask.model_validate(task)
    specs = []
    for i, (n_layers, d, heads) in enumerate(sizes):
        model = ModelConfig(n_layers=n_layers, d_model=d, n_heads=heads, max_len=t.seq_len(), position="learned")
        n_params = param_counts(model, t.vocab_size(), t.n_outputs()).total  # embeddings included
        for seed in seed_list:
            specs.append(RunSpec(
                study="scaling", task={"name": "sparse_parity", **task}, model=model, seed=seed,
                optim={"optimizer": "adamw", "lr": lr, "weight_decay": weight_decay, "beta2": 0.98,
                       "schedule": "cosine", "warmup_steps": max(1, steps // 30)},
                train={"steps": steps, "batch_size": batch_size, "eval_every": eval_every, "eval_size": eval_size},
                tags={"experiment": "multitask", "size": i, "n_layers": n_layers, "d_model": d, "n_params": n_params,
                      "subtasks": t.subtasks, "zipf": t.zipf, "frequencies": t.frequencies().tolist(), "seed": seed},
            ))
    return specs


# Chosen by trial (lr 3e-3, measured on a loaded 2-core machine): with n = 12, k = 3, K = 4 (2,000 steps) a
# d = 16 model learned nothing and d = 32, 64 learned subtasks 0 and 1 together in one jump, so the overall loss
# jumped too; n = 8, k = 2, K = 8 (1,500 steps) learned in frequency order but its total loss was a sum of a few
# jumps; n = 10, k = 2, K = 32, Zipf 1.4, batch 128, 3,000 steps: d = 16 / 32 / 64 learned 2 / 6 / 9 of the 32
# (the rare ones see too few examples); hence Zipf 1.0 (rarest subtask 0.8% of the data, not 0.3%) and 4,000
# steps (below). n = 10 bits give 45 distinct 2-bit subsets, enough for 32 subtasks.
QUICK_TASK = {"n_bits": 10, "k": 2, "subtasks": 32, "zipf": 1.0, "control": "token"}


def smoke(steps: int = 60) -> list[RunSpec]:
    """Seconds: two tiny sizes, 3 subtasks, evaluated every 20 steps."""
    task = {"n_bits": 6, "k": 2, "subtasks": 3, "zipf": 1.4, "control": "token"}
    return multitask_specs(SMOKE_SIZES, steps, task, eval_every=20, eval_size=96, batch_size=32)


def quick(steps: int = 4000, seeds: int = 3, sizes: Sequence[Size] = QUICK_SIZES) -> list[RunSpec]:
    """A CPU-sized mixture (see QUICK_TASK: 32 subtasks, frequencies ∝ (i+1)^−1) over 3 sizes × 3 seeds (each seed
    trains the whole ladder: the claims' intervals are over seeds), batch 128, evaluated every 100 steps on 2,048
    sequences per split (64 per subtask on the uniform split)."""
    return multitask_specs(sizes, steps, QUICK_TASK, seeds, batch_size=128, eval_size=2048)


def paper(steps: int = 50_000, seeds: int = 3) -> list[RunSpec]:
    """Michaud-like: n = 100 bits, k = 3, 100 subtasks (one-hot control), 6 sizes, batch 512, for one GPU."""
    task = {"n_bits": 100, "k": 3, "subtasks": 100, "zipf": 1.4, "control": "onehot"}
    return multitask_specs(PAPER_SIZES, steps, task, seeds, batch_size=512, lr=1e-3, eval_every=1000,
                           eval_size=4096)


PRESETS = {"smoke": smoke, "quick": quick, "paper": paper}

# ---- claims: written from the paper's statements before the runs ---------------------------------------------------

MICHAUD = "Michaud et al. 2023 (quantization model)"
ABRUPT_SHARE = 1.5  # subtasks' largest one-interval share of their drop, as a multiple of the overall loss's
ABRUPT_WIDTH = 0.5  # subtasks' 10→90% drop width, as a fraction of the overall loss's
ORDER_RHO = 0.5  # Spearman ρ between frequency rank and learning step (or size) that counts as "in order"
UNTESTED = "the quanta model's link between the Zipf exponent and the loss's power-law exponent; natural text"
CLAIMS = (
    Claim("scaling.multitask.abrupt_share", MICHAUD, "Section 4, Figure 3",
          "each subtask's loss drops abruptly while the mean loss over the mixture falls smoothly",
          "per seed: median over its runs' subtask loss curves of the largest share of the total drop made between "
          "two consecutive evaluations, divided by the same median for the overall loss curves",
          AtLeast(ABRUPT_SHARE, strict=True), preset="multitask-quick", untested=UNTESTED),
    Claim("scaling.multitask.abrupt_width", MICHAUD, "Section 4, Figure 3",
          "each subtask is learned in a short window of training, the mean loss over a long one",
          "per seed: median 10→90% drop width of the subtask loss curves divided by the median width of the "
          "overall loss curves", AtMost(ABRUPT_WIDTH, strict=True), preset="multitask-quick", untested=UNTESTED),
    Claim("scaling.multitask.order_steps", MICHAUD, "Section 4, Figure 4",
          "more frequent subtasks are learned earlier in training",
          "per seed: Spearman ρ between a subtask's frequency rank and the step at which the largest model's "
          "accuracy on it first reaches 90% (never: ranked last)", AtLeast(ORDER_RHO, strict=True),
          preset="multitask-quick", untested=UNTESTED),
    Claim("scaling.multitask.order_size", MICHAUD, "Section 4, Figure 4",
          "more frequent subtasks are learned by smaller models",
          "per seed: Spearman ρ between a subtask's frequency rank and the smallest model whose final accuracy on it "
          "reaches 90% (none: ranked last)", AtLeast(ORDER_RHO, strict=True), preset="multitask-quick",
          untested=UNTESTED),
)


def protocol(ctx: ReportContext) -> list[dict]:
    """Paper vs ours for the runs of this store (values read from their specs)."""
    from limitlab.report.tables import ProtocolTable

    runs = ctx.tagged(experiment="multitask")
    if runs.empty:
        return []
    t = ProtocolTable(runs, group=None)
    t.add("task", None, "multitask sparse parity (Michaud)", same=True, values=["multitask sparse parity"])
    for item, column in (("bits n", "task.n_bits"), ("parity size k", "task.k"), ("subtasks", "task.subtasks"),
                         ("Zipf exponent of the subtask frequencies", "task.zipf"), ("steps", "train.steps")):
        t.add(item, column, "see the paper", known=False)
    t.add("seeds per size", None, "—", known=False, values=[runs.groupby("tags.size").size().max()])
    return t.rows


def _analyze(ctx: ReportContext) -> Section:
    from limitlab.studies.scaling.multitask_report import analyze

    return analyze(ctx)


EXPERIMENT = Experiment("multitask", "Multitask next-token prediction (multitask sparse parity)", CLAIMS, _analyze)
