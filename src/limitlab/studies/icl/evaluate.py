"""Evaluate trained models and every baseline on the same prompts: error per in-context example, with bands.

Why after training, from saved weights, and not inside the training run: a bootstrap band resamples *prompts*,
so it needs each prompt's error, which the trainer's metrics (sums per index) do not keep; the baselines must
see exactly the prompts the model saw (paired comparisons); and the sweeps (nnz, α, frequency, Garg's prompt
sets) are many small evaluation sets better drawn once than carried as training splits. So the study's runs keep
their weights (``Study.save_weights``) and this module, for each pretraining distribution:

1. plans its evaluation sets (:func:`plan`): the pretraining families in distribution; Garg's out-of-distribution
   prompt sets for dense linear; ReLU-net models on linear prompts; Yadlowsky's sweeps (sparsity nnz 1..d,
   α of α·linear + (1−α)·sine, the sine frequency below, inside and above the pretraining grid);
2. draws each set's prompts **once** from a fixed seed (the test stream), the same for every model and baseline;
3. stacks the runs' seeds into one model, reads its prediction of every y_i at the x_i token, and runs every
   baseline (:mod:`.baselines`) on the same prompts;
4. divides squared errors by the set's Var y (Garg's normalisation: ÷d dense and ReLU net, ÷k sparse, ÷1 tree)
   and summarises each curve by its mean over prompts with a 90% percentile bootstrap band (Garg's 5th–95th).

The transformer's curve averages the seeds prompt by prompt (the band resamples prompts), and keeps each seed's
own mean curve too. Sets whose query differs from the context (random quadrants, orthogonal or overlapping
query) are scored one index at a time: prompt i is the context before i followed by the query.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from limitlab.nn.model import StackedTransformer
from limitlab.rng import TEST, StackRNG
from limitlab.spec import RunSpec
from limitlab.studies.icl import baselines as bl
from limitlab.tasks.base import TaskStack
from limitlab.tasks.icl_common import ICLTask, Prompts, draw_prompts, tokens
from limitlab.tasks.icl_linear import ICLLinear
from limitlab.tasks.icl_mixture import ICLMixture
from limitlab.tasks.icl_relu import ICLReLU
from limitlab.tasks.icl_sine import ICLSine
from limitlab.tasks.icl_tree import ICLTree
from limitlab.train.trainer import build_model

EVAL_SEED = 2022  # every evaluation set's prompts come from this seed's test stream
N_BOOT = 1000
CONFIDENCE = 0.90  # Garg's band: 5th to 95th percentile
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
                if prior is not None:
                    base["Bayes (pretraining prior)"] = prior
                sets.append(EvalSet(f"alpha:{a:g}", "alpha", combo, base, float(a)))
        for w in frequency_grid(sine):
            one = sine.model_copy(update={"freq_min": w, "freq_max": w, "n_freqs": 1})
            base = {"least squares": bl.LeastSquares(), "Bayes (true ω)": bl.from_task(one)}
            if prior is not None:
                base["Bayes (pretraining prior)"] = prior
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


def summarise(errors: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Mean curve over prompts with a percentile-bootstrap band: errors (P, n) -> {index, mean, low, high}.

    Prompts are resampled together (a prompt's errors at different k are correlated); NaN entries (unscored
    indices) are left out of that index's mean. Vectorised over indices (one quantile call per curve)."""
    p, n = errors.shape
    ok = ~np.isnan(errors)
    counts = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, np.nansum(errors, 0) / counts, np.nan)
        idx = np.random.default_rng(seed).integers(0, p, size=(N_BOOT, p))
        reps = np.nan_to_num(errors)[idx].sum(1) / ok[idx].sum(1)  # (N_BOOT, n)
    alpha = (1 - CONFIDENCE) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an index no prompt scores: NaN band
        low, high = np.nanquantile(reps, [alpha, 1 - alpha], axis=0)
    single = counts < 2
    low[single], high[single] = np.nan, np.nan
    return {"index": list(range(n)), "mean": mean.tolist(), "low": low.tolist(), "high": high.tolist(),
            "n_prompts": int(p)}


# --- one pretraining distribution ---------------------------------------------------------------------------------

def load_stack(specs: Sequence[RunSpec], weights: Sequence[dict], device: str | torch.device = "cpu"
               ) -> StackedTransformer:
    """The trained models of ``specs`` (one stack, same shape) with their saved weights."""
    model = build_model(specs, device)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for m, w in enumerate(weights):
            for name, p in params.items():
                if name not in w:
                    raise ValueError(f"saved weights lack parameter {name!r}; were they saved by this model?")
                p[m].copy_(w[name].to(p.device))
    return model.eval()


def evaluate_pretraining(specs: Sequence[RunSpec], weights: Sequence[dict], n_prompts: int, full: bool = False,
                         device: str | torch.device = "cpu",
                         progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Curves of the models (seeds of one pretraining distribution) and of every baseline on every set of
    :func:`plan`. One record per (set, predictor): key, kind, value, predictor, index, mean, low, high,
    n_prompts, and for the transformer ``seed_means`` (each seed's mean curve) and ``n_seeds``."""
    model = load_stack(specs, weights, device)
    pretrain = specs[0].task
    records = []
    for k, es in enumerate(plan(pretrain, full)):
        if progress is not None:
            progress(es.key)
        prompts = draw(es.task, n_prompts, device)
        norm = es.task.normaliser()
        head = {"key": es.key, "kind": es.kind, "value": es.value, "family": family_of(es.task)}
        errs = squared_errors(model_predictions(model, prompts, pretrain.fmt), prompts, norm)  # (M, P, n)
        rec = summarise(errs.mean(0), seed=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # unscored indices: NaN
            rec["seed_means"] = np.nanmean(errs, axis=1).tolist()
        records.append({**head, "predictor": TRANSFORMER, "n_seeds": len(specs), **rec})
        for label, baseline in es.baselines.items():
            err = squared_errors(baseline_predictions(baseline, prompts), prompts, norm)
            records.append({**head, "predictor": label, **summarise(err, seed=k)})
    return records
