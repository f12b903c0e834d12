"""Evaluate trained models and every baseline on the same prompts: squared error per prompt and in-context example.

Why in the report, from stored weights, and not inside the training run: an interval over prompts needs each
prompt's error, which the trainer's metrics (sums per index) do not keep; the baselines must see exactly the
prompts the models saw (paired comparisons); and the sweeps (nnz, α, frequency, Garg's prompt sets) are many small
evaluation sets better drawn once than carried as training splits. So the study's runs keep their weights
(``Study.save_weights``) and, for each pretraining distribution, this module

1. plans its evaluation sets (:func:`plan`): the pretraining families in distribution; Garg's out-of-distribution
   prompt sets for dense linear; ReLU-net models on linear prompts; Yadlowsky's sweeps (sparsity nnz 1..d,
   α of α·linear + (1−α)·sine, the sine frequency below, inside and above the pretraining grid). The α and
   frequency sweeps leave out the Bayes predictor of the pretraining prior: their functions lie outside that prior
   by construction, where its noiseless likelihood interpolates with a wrong model (errors of 10³ at k = 15);
2. draws each set's prompts **once** from a fixed seed (the test stream), the same for every model and baseline;
3. reads every seed's prediction of every y_i at the x_i token, and runs every baseline (:mod:`.baselines`) on
   the same prompts;
4. divides squared errors by the set's Var y (Garg's normalisation: ÷d dense and ReLU net, ÷k sparse, ÷1 tree)
   and keeps them per prompt (:class:`SetErrors`): the transformer's as (seeds, prompts, k), a baseline's as
   (prompts, k). Intervals come later, from the shared bootstraps (:mod:`limitlab.analysis.bootstrap`).

Sets whose query differs from the context (random quadrants, orthogonal or overlapping query) are scored one
index at a time: prompt i is the context before i followed by the query.

>>> [e.key for e in plan(ICLLinear(d=2, n_points=5))][:3]
['dense', 'ood:random_quadrants', 'ood:orthogonal_query']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from limitlab.nn.model import StackedTransformer
from limitlab.rng import TEST, StackRNG
from limitlab.studies.icl import baselines as bl
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import ICLTask, Prompts, draw_prompts, tokens
from limitlab.tasks.icl_linear import ICLLinear
from limitlab.tasks.icl_mixture import ICLMixture
from limitlab.tasks.icl_relu import ICLReLU
from limitlab.tasks.icl_sine import ICLSine
from limitlab.tasks.icl_tree import ICLTree

EVAL_SEED = 2022  # every evaluation set's prompts come from this seed's test stream
MODEL_CHUNK = 512  # prompts per forward pass
TRANSFORMER = "transformer"


@dataclass
class EvalSet:
    """One evaluation set: prompts of ``task`` scored by the models and by ``baselines`` (label -> predictor)."""

    key: str  # unique within a pretraining distribution: "dense", "ood:skewed", "nnz:3", "alpha:0.5", "freq:0.5"
    kind: str  # "family" | "ood" | "nnz" | "alpha" | "freq"
    task: ICLTask
    baselines: dict[str, Callable] = field(default_factory=dict)
    value: float | None = None  # the sweep's parameter


def family_of(task: ICLTask) -> str:
    """dense | sparse | relu | tree | sine | combo | mixture."""
    if isinstance(task, ICLLinear):
        return "dense" if task.sparsity is None else "sparse"
    if isinstance(task, ICLSine):
        return "sine" if task.alpha == 0 else "combo"
    if isinstance(task, ICLReLU):
        return "relu"
    if isinstance(task, ICLTree):
        return "tree"
    return "mixture"


def _bayes(task: ICLTask) -> Callable | None:
    try:
        return bl.from_task(task)
    except ValueError:  # no closed-form posterior (relu, tree, a mixture containing them)
        return None


def family_baselines(task: ICLTask, full: bool) -> dict[str, Callable]:
    """The baselines Garg / Yadlowsky compare on this family (``full`` adds the slow per-prompt sklearn models)."""
    fam = family_of(task)
    out: dict[str, Callable] = {"least squares": bl.LeastSquares()}
    if fam in ("dense", "sparse", "relu", "tree"):
        out["averaging"] = bl.Averaging()
    out["3-NN"] = bl.KNN(3)
    if fam == "sparse":
        out["Lasso α=0.01"] = bl.Lasso(0.01)
        if full:
            out["Lasso α=0.1"] = bl.Lasso(0.1)
            out["Lasso α=0.001"] = bl.Lasso(0.001)
    if fam == "relu" and full:
        out["2-layer NN (GD)"] = bl.TwoLayerNN()
    if fam == "tree" and full:
        out["greedy tree (depth 4)"] = bl.DecisionTree(4)
        out["greedy tree (no limit)"] = bl.DecisionTree(None)
        out["gradient boosting"] = bl.GradientBoosting()
    bayes = _bayes(task)
    if bayes is not None:
        out[f"Bayes ({fam} prior)"] = bayes
    return out


def _clean(task: ICLTask) -> ICLTask:
    """The evaluation version of a pretraining task: the curriculum's end (no curriculum)."""
    return task.model_copy(update={"curriculum": None})


def frequency_grid(task: ICLTask) -> list[float]:
    """Frequencies below, inside and above the pretraining range [freq_min, freq_max]."""
    lo, hi = task.freq_min, task.freq_max
    inside = [lo, (lo + hi) / 2, hi]
    return sorted({round(v, 4) for v in (lo / 8, lo / 4, lo / 2, *inside, hi * 1.5, hi * 2, hi * 3)})


def plan(pretrain: ICLTask, full: bool = False) -> list[EvalSet]:
    """Every evaluation set of a model pretrained on ``pretrain`` (see the module docstring)."""
    task = _clean(pretrain)
    sets: list[EvalSet] = []
    prior = _bayes(task)
    mixture = isinstance(task, ICLMixture)
    families = list(task.families) if mixture else [family_of(task)]
    components = {f: task.component(f) for f in families} if mixture else {families[0]: task}
    for fam, comp in components.items():
        base = family_baselines(comp, full)
        if mixture and prior is not None:
            base["Bayes (pretraining mixture)"] = prior
        sets.append(EvalSet(fam, "family", comp, base))
    if families == ["dense"]:
        for name, split in task.splits().items():
            if name != "test":
                base = {k: v for k, v in family_baselines(split, False).items() if not k.startswith("Bayes")}
                bayes = _bayes(split)
                if bayes is not None:
                    base["Bayes (dense prior)"] = bayes
                sets.append(EvalSet(f"ood:{name}", "ood", split, base))
    if families == ["relu"]:
        lin = ICLLinear(d=task.d, n_points=task.n_points, fmt=task.fmt)
        sets.append(EvalSet("dense", "family", lin, family_baselines(lin, False)))
    linear_like = set(families) <= {"dense", "sparse"}
    if linear_like:
        for s in range(1, task.d + 1):
            sweep = ICLLinear(d=task.d, n_points=task.n_points, fmt=task.fmt, sparsity=s)
            base = {"least squares": bl.LeastSquares(), "Lasso α=0.01": bl.Lasso(0.01),
                    "Bayes (true sparsity)": bl.from_task(sweep)}
            if prior is not None:
                base["Bayes (pretraining prior)"] = prior
            sets.append(EvalSet(f"nnz:{s}", "nnz", sweep, base, float(s)))
    if "sine" in families:
        sine = components["sine"]
        if "dense" in families:
            for a in np.round(np.linspace(0, 1, 11), 2):
                combo = sine.model_copy(update={"alpha": float(a)})
                base = {"least squares": bl.LeastSquares(), "Bayes (true α)": bl.from_task(combo)}
                sets.append(EvalSet(f"alpha:{a:g}", "alpha", combo, base, float(a)))
        for w in frequency_grid(sine):
            one = sine.model_copy(update={"freq_min": w, "freq_max": w, "n_freqs": 1})
            base = {"least squares": bl.LeastSquares(), "Bayes (true ω)": bl.from_task(one)}
            sets.append(EvalSet(f"freq:{w:g}", "freq", one, base, float(w)))
    return sets


# --- prompts, predictions, errors -------------------------------------------------------------------------------

def draw(task: ICLTask, n_prompts: int, device: str | torch.device = "cpu") -> Prompts:
    """``n_prompts`` prompts of ``task`` from the evaluation seed, without the model dim (P, …)."""
    rng = StackRNG([EVAL_SEED], stream=TEST).to(device)
    p = draw_prompts(type(task), TaskStack([task], device), rng, n_prompts, 0)

    def first(x):
        return None if x is None else x[0]

    return Prompts(first(p.xs), first(p.ys), first(p.qx), first(p.qy), first(p.scored), first(p.family))


@torch.no_grad()
def model_predictions(model: StackedTransformer, prompts: Prompts, fmt: str) -> torch.Tensor:
    """Predictions (M, P, n) of every model of a stack: y_i read at the x_i token (query sets: one index at a time)."""
    m = model.n_models
    p, n = prompts.ys.shape
    out = torch.empty(m, p, n, dtype=torch.float64, device=prompts.ys.device)
    model.eval()
    for start in range(0, p, MODEL_CHUNK):
        sl = slice(start, min(p, start + MODEL_CHUNK))
        xs, ys = prompts.xs[sl], prompts.ys[sl]
        b = xs.shape[0]
        if prompts.qx is None:
            seq = tokens(xs[None], ys[None], fmt).expand(m, -1, -1, -1)  # (M, b, 2n, D)
            readout = (2 * torch.arange(n, device=xs.device)).expand(m, b, n)
            out[:, sl] = model(seq, readout)[..., 0].double()
            continue
        for i in range(n):  # context x_<i, y_<i, then the query in place of x_i
            xi = xs[:, : i + 1].clone()
            xi[:, i] = prompts.qx[sl, i]
            seq = tokens(xi[None], ys[None, :, : i + 1], fmt).expand(m, -1, -1, -1)  # (M, b, 2i+2, D)
            readout = torch.full((m, b, 1), 2 * i, device=xs.device)
            out[:, sl, i] = model(seq, readout)[..., 0, 0].double()
    return out


def baseline_predictions(baseline: Callable, prompts: Prompts) -> torch.Tensor:
    """Predictions (P, n) of a baseline in float64 (query sets: one index at a time, on the prefix before it)."""
    xs, ys = prompts.xs.double(), prompts.ys.double()
    if prompts.qx is None:
        return baseline(xs, ys).double()
    n = ys.shape[1]
    out = torch.empty_like(ys)
    for i in range(n):
        xi = xs[:, : i + 1].clone()
        xi[:, i] = prompts.qx[:, i].double()
        out[:, i] = baseline(xi, ys[:, : i + 1])[:, i].double()
    return out


def squared_errors(pred: torch.Tensor, prompts: Prompts, normaliser: float) -> np.ndarray:
    """Normalised squared errors (…, P, n) as numpy; unscored indices (orthogonal query, i ≥ d) are NaN."""
    target = (prompts.ys if prompts.qy is None else prompts.qy).double()
    err = (pred - target) ** 2 / normaliser
    if prompts.scored is not None:
        err = err.masked_fill(~prompts.scored, float("nan"))
    return err.cpu().numpy()


@dataclass
class SetErrors:
    """Normalised squared errors on one evaluation set: ``transformer`` (seeds, prompts, indices) and each
    baseline's (prompts, indices), float32; NaN at unscored indices. ``index`` names the in-context example
    counts k the columns hold (every k for families and prompt sets, the sweep's k for a sweep)."""

    key: str
    kind: str
    family: str
    value: float | None
    index: list[int]
    transformer: np.ndarray
    baselines: dict[str, np.ndarray]

    def errors(self, predictor: str) -> np.ndarray:
        """(seeds, prompts, indices): the transformer's, or a baseline's broadcast to one seed."""
        if predictor == TRANSFORMER:
            return self.transformer
        return self.baselines[predictor][None]

    def gap(self, baseline: str) -> np.ndarray:
        """Paired differences transformer − baseline, per seed, prompt and index (the same prompts)."""
        return self.transformer - self.baselines[baseline][None]


def sweep_k(task: ICLTask, kind: str) -> int:
    """The context size a sweep is read at: ⌊d/2⌋ for nnz (below d, where knowing the sparsity pays), else the
    last index."""
    return max(1, task.d // 2) if kind == "nnz" else task.n_points - 1


def evaluate_sets(models: Sequence[StackedTransformer], pretrain: ICLTask, n_prompts: int, full: bool = False,
                  device: str | torch.device = "cpu",
                  progress: Callable[[str], None] | None = None) -> list[SetErrors]:
    """Errors of the models (the seeds of one pretraining distribution, each a one-model stack) and of every
    baseline on every set of :func:`plan`, on ``n_prompts`` prompts per set."""
    out = []
    for es in plan(pretrain, full):
        if progress is not None:
            progress(es.key)
        prompts = draw(es.task, n_prompts, device)
        norm = es.task.normaliser()
        keep = [sweep_k(pretrain, es.kind)] if es.kind in ("nnz", "alpha", "freq") else list(
            range(prompts.ys.shape[1]))
        trans = np.concatenate([squared_errors(model_predictions(m.to(device), prompts, pretrain.fmt), prompts,
                                               norm)[..., keep] for m in models])  # (S, P, k)
        base = {label: squared_errors(baseline_predictions(b, prompts), prompts, norm)[..., keep]
                for label, b in es.baselines.items()}
        out.append(SetErrors(es.key, es.kind, family_of(es.task), es.value, keep, trans.astype(np.float32),
                             {k: v.astype(np.float32) for k, v in base.items()}))
    return out
