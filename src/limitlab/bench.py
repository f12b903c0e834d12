"""``limitlab bench``: training throughput of a stack of M models vs the same models one at a time.

For every shape (or every representative stack of a study preset) and every mode — eager, and compiled
(``torch.compile``; plus a whole-step CUDA graph on CUDA) — one run measures side by side:

* ``stacked``: one :class:`~limitlab.train.trainer.StackTrainer` of M models (fast path on: CPU model chunks
  as the trainer chooses them — timed on this machine, or this machine's cached timing for the shape
  (:mod:`limitlab.train.chunking`), reported with the row as ``chunk``/``chunk_how`` —, padded narrow heads on a
  CPU, the flat-buffer optimizer, bf16 autocast on CUDA);
* ``plain``: the headline baseline — what a user would write instead: one ordinary nanoGPT-style model and one
  ``torch.optim.Adam(foreach=True)`` per run, trained one after another (:mod:`limitlab.bench_plain`; same
  parameters, FLOPs and data per model-step as the stack);
* ``vmap`` (``--vmap``): torch.func's ensemble recipe over the same plain models (:mod:`limitlab.bench_vmap`);
* ``loop``: limitlab's own trainer at M = 1, one model after another (shows limitlab's per-step bookkeeping);
* ``dense``: the ceiling of the stacked step's dense kernels alone — one layer's stacked matmuls and SDPA,
  forward + backward, times the number of layers (informative only on a CPU).

Reported: model-steps/s (summed over the stack), tokens/s (batch × T per model-step), MFU and the speed-ups
(medians of same-round ratios; :func:`measure`). In the compiled mode every side is compiled. The table is drawn by
:mod:`limitlab.bench_render`.
FLOPs convention (``limitlab.costs.train_flops_per_step``): 6·N + 12·L·T·d per token, N = non-embedding
parameters (blocks, final LayerNorm, output head; token embedding and position tables excluded), attention
counted in full (no causal discount). For MFU it is applied to the rows the loss needs, which is what the model
computes: with K read-out positions (counting: K = 1) the last layer counts its keys/values at all T positions and
everything else at the K read-outs (``model_flops_per_step``); the plain every-position count is reported too
(``flops_per_model_step``, used for projections). Peak: bf16 dense tensor-core FLOP/s from a per-device table
on CUDA; on a CPU a measured fp32 ``torch.mm`` peak, so CPU "MFU" is relative to what this CPU's sgemm reaches.

``--preset counting/paper`` plans the preset, measures a few of its stacks (spread over their cost), fits
step seconds = a + b · stack FLOPs per step, and projects the wall time of the whole preset.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence

import torch

from limitlab.bench_args import check_arguments
from limitlab.bench_device import device_info, load_average, sync
from limitlab.bench_project import fit_line, pick_stacks, project  # noqa: F401 - fit_line: part of the bench API
from limitlab.bench_render import render
from limitlab.costs import train_flops_per_step
from limitlab.nn.attention import sdpa
from limitlab.planner import DeviceProfile, plan_stacks
from limitlab.spec import RunSpec
from limitlab.train.trainer import StackTrainer, TrainOptions

# ---- specs -----------------------------------------------------------------------------------------------------

def shape_specs(d: int, m: int, models: int, batch: int, layers: int = 2, heads: int = 4) -> list[RunSpec]:
    """M counting runs of one shape, as the counting study builds them (seeds 0..M-1)."""
    from limitlab.studies.counting.study import counting_specs

    heads = heads if d % heads == 0 else 1
    return counting_specs([d], [m], ["qc"], models, steps=1_000_000, batch_size=batch, n_layers=layers,
                          n_heads=heads)


def preset_specs(name: str) -> list[RunSpec]:
    from limitlab.studies import STUDIES

    study, _, preset = name.partition("/")
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r} in --preset {name!r}; allowed: {', '.join(STUDIES)}")
    return STUDIES[study].specs(preset or "paper")


def _long(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """The same runs with a step budget that outlasts any measurement (throughput only, not results)."""
    return [s.model_copy(update={"train": s.train.model_copy(update={"steps": 10**9})}) for s in specs]


# ---- measurements ----------------------------------------------------------------------------------------------

def mode_options(mode: str, device: str) -> TrainOptions:
    if mode == "eager":
        return TrainOptions(device=device)
    if mode == "compiled":
        return TrainOptions(device=device, compile=True, cuda_graphs=device.startswith("cuda"))
    raise ValueError(f"unknown bench mode {mode!r}; allowed: eager, compiled")


def warm_up(trainer: StackTrainer, device: str, max_steps: int = 20) -> None:
    """Steps until the fast path has settled (compile, CUDA graph capture), plus one."""
    for _ in range(max_steps):
        trainer.train_step()
        if not trainer.warming_up:
            break
    trainer.train_step()
    sync(device)


def timed_steps(trainers: Sequence, steps: int, device: str) -> float:
    """Seconds per step over ``steps`` steps of each trainer, stepped in turn: a StackTrainer, or a baseline
    (PlainLoop, VmapEnsemble) whose ``step()`` trains its models once."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        for trainer in trainers:
            trainer.train_step() if isinstance(trainer, StackTrainer) else trainer.step()
    sync(device)
    return (time.perf_counter() - start) / (steps * len(trainers))


def _plain_sides(specs: Sequence[RunSpec], loop_models: int, device: str, compiled: bool, vmap: bool):
    """The plain-PyTorch baselines for ``specs``: (plain loop over the first ``loop_models`` runs, or None when
    0; vmap ensemble of all, or None), both None where they do not cover the shape."""
    from limitlab.bench_plain import PlainLoop, check_supported
    from limitlab.bench_vmap import VmapEnsemble

    try:
        check_supported(specs[0])
    except ValueError:
        return None, None
    plain = PlainLoop(specs[:loop_models], device, compile=compiled) if loop_models else None
    return plain, VmapEnsemble(specs, device, compile=compiled) if vmap else None


def dense_ceiling(spec: RunSpec, n_models: int, seq_len: int, device: str, seconds: float) -> float:
    """Seconds per stacked step of the dense kernels alone (matmuls + SDPA, forward + backward).

    Counts what the model executes: L-1 full layers, and a last layer whose keys/values cover every position
    but whose queries, output projection and MLP cover the read-out positions only (when the task has them).
    ``n_models`` is the stack's chunk on a CPU (the trainer's working set), the whole stack elsewhere.
    """
    m, b, t = spec.model, spec.train.batch_size, seq_len
    d, w, h = m.d_model, m.mlp_width, m.n_heads
    k = _readouts(spec)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    kw = {"device": device, "dtype": dtype}

    def leaf(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, **kw) / math.sqrt(shape[-2])).requires_grad_()

    x = torch.randn(n_models, b * t, d, **kw, requires_grad=True)
    w_qkv, w_out, w_up, w_down = leaf(n_models, d, 3 * d), leaf(n_models, d, d), leaf(n_models, d, w), leaf(
        n_models, w, d)

    def heads(z: torch.Tensor, rows: int) -> torch.Tensor:  # (M, B·rows, d) -> (M·B, H, rows, hd)
        return z.reshape(n_models * b, rows, h, d // h).transpose(1, 2)

    def layer(rows: int) -> torch.Tensor:
        q, kk, v = torch.bmm(x, w_qkv).split(d, -1)  # (M, B·T, d) each
        if rows < t:  # last layer: queries at the read-out rows only
            q = q.reshape(n_models, b, t, d)[:, :, -rows:].reshape(n_models, b * rows, d)
        y = sdpa(heads(q, rows), heads(kk, t), heads(v, t), is_causal=m.causal and rows == t)  # as the model
        y = torch.bmm(y.transpose(1, 2).reshape(n_models, b * rows, d), w_out)
        return torch.bmm(torch.bmm(y, w_up), w_down)

    def step() -> None:
        outs = [layer(t) for _ in range(m.n_layers - 1)] + [layer(k)]
        sum(o.sum() for o in outs).backward()

    step()
    sync(device)
    reps, start = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - start < seconds / 2:
        step()
        reps += 1
        sync(device)
    return (time.perf_counter() - start) / reps


def _readouts(spec: RunSpec) -> int:
    """Read-out positions per sequence of a task (the whole sequence when it has none)."""
    from limitlab.rng import StackRNG
    from limitlab.tasks.base import TaskStack

    batch = TaskStack([spec.task]).sample(StackRNG([0]), 1, 0)
    return spec.task.seq_len() if batch.positions is None else batch.positions.shape[-1]


def _rates(seconds_per_model_step: float, row: dict, peak: float | None) -> dict:
    rate = 1.0 / seconds_per_model_step
    return {"model_steps_per_s": rate, "tokens_per_s": rate * row["batch"] * row["T"],
            "mfu": rate * row["model_flops_per_step"] / peak if peak else None}


def paired_ratios(baseline: Sequence[float], ours: Sequence[float]) -> list[float]:
    """Round-by-round speed ratios (baseline seconds / our seconds): sides timed back to back in one round
    share that moment's load, so the spread of these ratios is the measurement's noise.

    >>> paired_ratios([2.0, 2.2], [1.0, 1.0])
    [2.0, 2.2]
    """
    return [b / o for b, o in zip(baseline, ours)]


def _ratio(out: dict, name: str, baseline: Sequence[float], ours: Sequence[float]) -> list[float]:
    """Sets ``out[name]`` (best round / best round) and ``out[name + '_median']`` (median of the paired
    same-round ratios); returns the paired ratios."""
    paired = paired_ratios(baseline, ours)
    out[name], out[f"{name}_median"] = min(baseline) / min(ours), statistics.median(paired)
    return paired


def measure(specs: Sequence[RunSpec], modes: Sequence[str], device: str, seconds: float, loop: bool,
            loop_models: int, repeat: int, peak: float | None, vmap: bool = False) -> dict:
    """One row: every mode's stacked and loop throughput for the runs ``specs`` (one stack), plus the ceiling.

    Stacked, loop and plain are timed in alternating rounds (``repeat`` each, about ``seconds`` in all per side)
    of equal work — a loop round trains as many model-steps as a stacked round — so load from other processes
    hits every side alike. Each side keeps its best round (its throughput), and every round's time is kept
    (``round_seconds``). Each speed ratio is given twice: best round / best round (``speedup_vs_plain``, ...) and
    the median of the paired ratios of the sides timed in the same round (``speedup_vs_plain_median``, ...), which
    is what the table shows: on a machine whose speed drifts, a lucky round of one side moves the first, not the
    second. ``vs_plain_by_round`` lists the paired ratios; their spread is the noise.
    """
    specs = _long(specs)
    first, n = specs[0], len(specs)
    t, c = max(s.task.seq_len() for s in specs), max(s.task.n_outputs() for s in specs)
    k = _readouts(first)
    row: dict = {"d": first.model.d_model, "T": t, "models": n, "batch": first.train.batch_size,
                 "layers": first.model.n_layers, "readouts": k,
                 "flops_per_model_step": train_flops_per_step(first, t, c),
                 "model_flops_per_step": train_flops_per_step(first, t, c, readouts=k), "modes": {}}
    chunk = n
    for mode in modes:
        options = mode_options(mode, device)
        stack = StackTrainer(specs, None, options)
        singles = [StackTrainer([s], None, options) for s in specs[:min(loop_models, n)]] if loop else []
        plain, ensemble = _plain_sides(specs, min(loop_models, n) if loop else 0, device, mode == "compiled", vmap)
        for trainer in [stack, *singles]:
            warm_up(trainer, device)
        warm = 2 if mode == "eager" else 5  # as warm_up gives a trainer; compile and CUDA-graph warm-up need more
        for side in [s for s in (plain, ensemble) if s is not None]:
            for _ in range(warm):
                side.step()
        rounds = max(repeat, 1)
        first_step = timed_steps([stack], 1, device)
        steps = max(1, math.ceil(seconds / rounds / first_step))  # stacked steps per round
        loop_steps = math.ceil(n * steps / max(len(singles), 1))  # the same model-steps for the loops
        times: dict[str, list[float]] = {"stacked": [], "loop": [], "plain": [], "vmap": []}  # s per model-step
        for _ in range(rounds):  # alternate, equal work per round: background load hits every side alike
            times["stacked"].append(timed_steps([stack], steps, device) / n)
            if singles:
                times["loop"].append(timed_steps(singles, loop_steps, device))
            if plain is not None:
                times["plain"].append(timed_steps([plain], loop_steps, device) / len(plain.models))
            if ensemble is not None:
                times["vmap"].append(timed_steps([ensemble], steps, device) / n)
        best = {side: min(t) for side, t in times.items() if t}
        chunk = stack.chunk
        out = {"stacked": _rates(best["stacked"], row, peak), "chunk": chunk, "chunk_how": stack.chunk_how,
               "chunk_seconds": stack.chunk_choice.seconds,  # each candidate's best step (when measured)
               "round_seconds": {side: t for side, t in times.items() if t}}
        if plain is not None:
            out["plain"] = _rates(best["plain"], row, peak)
            out["vs_plain_by_round"] = _ratio(out, "speedup_vs_plain", times["plain"], times["stacked"])
            if singles:
                _ratio(out, "own_loop_vs_plain", times["plain"], times["loop"])
        if ensemble is not None:
            out["vmap"] = _rates(best["vmap"], row, peak)
            out["vs_vmap_by_round"] = _ratio(out, "speedup_vs_vmap", times["vmap"], times["stacked"])
        if singles:
            out["loop"] = _rates(best["loop"], row, peak)
            _ratio(out, "speedup", times["loop"], times["stacked"])
        row["modes"][mode] = out
        del stack, singles, plain, ensemble
    part = chunk if device == "cpu" else n
    dense = dense_ceiling(first, part, t, device, seconds) / part
    row["dense"] = _rates(dense, row, peak)
    return row


# ---- entry point -----------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> dict:
    check_arguments(args)  # every value before any work
    torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    if getattr(args, "attention", None):
        return run_attention(args, device)
    modes = (["eager", "compiled"] if device.startswith("cuda") else ["eager"]) if args.modes == "auto" \
        else [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        mode_options(mode, device)
    info = device_info(device, args.peak_flops)
    peak = info["peak_flops"]
    report: dict = {"info": info, "modes": modes, "rows": [],
                    "notes": [] if "compiled" in modes or device.startswith("cuda") else
                    ["compiled mode skipped on CPU by default (inductor compiles ~30 s per shape); --modes "
                     "eager,compiled measures it"]}
    common = {"modes": modes, "device": device, "seconds": args.seconds, "loop": not args.no_loop,
              "loop_models": args.loop_models, "repeat": args.repeat, "peak": peak}
    if args.preset:
        specs = preset_specs(args.preset)
        stacks = plan_stacks(specs, device=device, profile=DeviceProfile.for_device(device))
        cap = args.preset_max_models or (len(specs) if device.startswith("cuda") else 8)
        for stack in pick_stacks(stacks, args.preset_stacks):
            row = measure(stack.specs[-cap:], **common)  # the longest runs: the stack's padded length (no vmap:
            # its plain models would not skip the padding)
            row["preset_stack_models"] = len(stack.specs)
            first = stack.specs[0]  # a stack is one model shape: one encoding, one task kind
            row["labels"] = {"task": first.task.name, "position": first.model.position,
                             "tags": {k: v for k, v in first.tags.items() if k != "seed"}}
            report["rows"].append(row)
        seeds = len({s.seed for s in specs})
        report["preset"] = {"name": args.preset, "runs": len(specs), "stacks": len(stacks), "seeds": seeds,
                            "model_steps": sum(s.train.steps for s in specs),
                            "projections": [project(stacks, report["rows"], mode) for mode in modes]}
    else:
        for d in args.d:
            for m in args.m:
                specs = shape_specs(d, m, args.models, args.batch, args.layers, args.heads)
                report["rows"].append(measure(specs, **common, vmap=args.vmap))
    report["info"]["load_avg_end"] = load_average()
    return report


def run_attention(args: argparse.Namespace, device: str) -> dict:
    """The --attention mode: one layer's step time and memory per kind and length."""
    from limitlab.bench_attention import measure_attention, parse_kinds

    kinds = parse_kinds(args.attention)
    for t in args.T:
        if t < 1:
            raise ValueError(f"--T {t}: sequence lengths must be >= 1")
    info = device_info(device, args.peak_flops)
    rows = measure_attention(kinds, args.T, args.attn_models, args.attn_batch, args.attn_d, args.heads,
                             args.p_max, args.repeat, device)
    info["load_avg_end"] = load_average()
    return {"info": info, "attention": rows}


def main(args: argparse.Namespace) -> None:
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
