"""``limitlab bench --attention ...``: one attention layer's training step, CoPE against SDPA.

CoPE materialises (Tq × Tk) gates and positions and cannot use a fused attention kernel. This mode times the
forward + backward pass of one stacked attention layer (M models, batch B, width d, H heads, causal, every
position a query) for each kind and sequence length:

* ``sdpa``: RoPE, which keeps ``scaled_dot_product_attention`` with its own causal mask (the fast baseline);
* ``cope-reference``: CoPE on the explicit path (materialised logits, autograd keeps the (Tq, Tk) tensors);
* ``cope-blocked``: CoPE by :mod:`limitlab.nn.cope_kernels` (query blocks, hand-written backward).

Per cell: the median and the least of ``--repeat`` wall step times and the median CPU time of this process
(kinds interleaved round by round, so load from
other processes hits them alike); the bytes autograd keeps for the backward pass (unique storages packed by
``torch.autograd.graph.saved_tensors_hooks``, the layer's weights and input excluded) — the activation memory a
deep model holds per layer; on CUDA also the peak allocated during the step above what was allocated before it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

KINDS: dict[str, tuple[str, dict]] = {
    "sdpa": ("rope", {}),
    "cope-reference": ("cope", {"impl": "reference"}),
    "cope-blocked": ("cope", {"impl": "blocked"}),
}


def parse_kinds(text: str) -> list[str]:
    """'cope,sdpa' -> kinds; 'cope' means both CoPE implementations."""
    out: list[str] = []
    for name in (s.strip() for s in text.split(",") if s.strip()):
        names = ["cope-reference", "cope-blocked"] if name == "cope" else [name]
        for n in names:
            if n not in KINDS:
                raise ValueError(f"unknown --attention kind {name!r}; allowed: cope, {', '.join(KINDS)}")
            if n not in out:
                out.append(n)
    if not out:
        raise ValueError("--attention needs at least one kind; allowed: cope, " + ", ".join(KINDS))
    return out


def attention_layer(kind: str, n_models: int, d: int, heads: int, t: int, p_max: int, device: str):
    """A causal StackedAttention of ``kind``; CoPE's table is random so positions change the logits."""
    from limitlab.nn.attention import StackedAttention
    from limitlab.nn.model import ModelConfig

    position, options = KINDS[kind]
    if position == "cope":
        options = {**options, "p_max": p_max}
    cfg = ModelConfig(d_model=d, n_heads=heads, position=position, position_options=options, max_len=t)
    geo = cfg.geometry(n_models)
    encs = [enc(geo, opt) for enc, opt in cfg.encoding_options() if enc.scope == "attention"]
    layer = StackedAttention(n_models, d, heads, True, encs)
    gen = torch.Generator().manual_seed(0)
    for m in range(n_models):
        layer.qkv.init_model(m, gen, "torch")
        layer.out.init_model(m, gen, "torch")
        for enc in encs:
            enc.init_model(m, gen, "torch")
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("table"):
                p.normal_(0, 0.1, generator=gen)
    return layer.to(device)


def saved_bytes(layer, x: torch.Tensor) -> int:
    """Bytes of the unique storages autograd saves for backward in one forward (weights and input excluded)."""
    skip = {p.untyped_storage().data_ptr() for p in layer.parameters()} | {x.untyped_storage().data_ptr()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = layer(x)
    y.square().mean().backward()
    return sum(seen.values())


def _step(layer, x: torch.Tensor, device: str) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads) of one forward + backward."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    layer(x).square().mean().backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


def _cuda_peak(layer, x: torch.Tensor, device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    layer(x).square().mean().backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def measure_attention(kinds: Sequence[str], lengths: Sequence[int], n_models: int, batch: int, d: int, heads: int,
                      p_max: int, repeat: int, device: str) -> list[dict]:
    """One row per (T, kind): step seconds (median, least), saved-for-backward bytes, CUDA peak bytes."""
    rows = []
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    for t in lengths:
        layers = {k: attention_layer(k, n_models, d, heads, t, p_max, device) for k in kinds}
        x = torch.randn(n_models, batch, t, d, device=device, requires_grad=True)
        cells = {}
        for k, layer in layers.items():
            with torch.autocast(device, dtype=dtype, enabled=device.startswith("cuda")):
                cells[k] = {"saved": saved_bytes(layer, x), "cuda_peak": _cuda_peak(layer, x, device), "times": [],
                            "cpu": []}
                _step(layer, x, device)  # warm-up
        for _ in range(max(repeat, 1)):  # round by round: every kind sees the same background load
            for k, layer in layers.items():
                with torch.autocast(device, dtype=dtype, enabled=device.startswith("cuda")):
                    wall, cpu = _step(layer, x, device)
                    cells[k]["times"].append(wall)
                    cells[k]["cpu"].append(cpu)
                layer.zero_grad(set_to_none=True)
                x.grad = None
        for k in kinds:
            c = cells[k]
            rows.append({"kind": k, "T": t, "models": n_models, "batch": batch, "d": d, "heads": heads,
                         "p_max": p_max, "dtype": str(dtype).removeprefix("torch."),
                         "median_s": statistics.median(c["times"]), "min_s": min(c["times"]), "times_s": c["times"],
                         "cpu_median_s": statistics.median(c["cpu"]), "cpu_s": c["cpu"],
                         "saved_bytes": c["saved"], "cuda_peak_bytes": c["cuda_peak"]})
        del layers
    return rows


def render_attention(report: dict) -> str:
    info = report["info"]
    rows = report["attention"]
    r0 = rows[0]
    lines = [f"device: {info['name']} ({info['device']}), torch {info['torch']}, threads {info['threads']}, "
             f"load avg {info['load_avg']} -> {info.get('load_avg_end')}",
             f"one causal attention layer, forward + backward: M={r0['models']} B={r0['batch']} d={r0['d']} "
             f"H={r0['heads']} p_max={r0['p_max']} {r0['dtype']}; median (least) of {len(r0['times_s'])} steps; "
             "saved = bytes autograd keeps for backward",
             f"{'kind':<16}{'T':>6}{'median ms':>11}{'least ms':>10}{'CPU ms':>9}{'saved MiB':>11}"
             f"{'CUDA peak MiB':>15}{'vs sdpa':>9}{'vs cope-ref':>12}{'CPU vs ref':>11}"]
    by = {(r["kind"], r["T"]): r for r in rows}
    for r in rows:
        base, ref = by.get(("sdpa", r["T"])), by.get(("cope-reference", r["T"]))
        peak = "n/a" if r["cuda_peak_bytes"] is None else f"{r['cuda_peak_bytes'] / 2**20:.1f}"
        vs_sdpa = f"{r['median_s'] / base['median_s']:.2f}x" if base and r["kind"] != "sdpa" else ""
        fast = ref and r["kind"] == "cope-blocked"
        vs_ref = f"{ref['median_s'] / r['median_s']:.2f}x" if fast else ""
        cpu_vs_ref = f"{ref['cpu_median_s'] / r['cpu_median_s']:.2f}x" if fast else ""
        lines.append(f"{r['kind']:<16}{r['T']:>6}{r['median_s'] * 1e3:>11.1f}{r['min_s'] * 1e3:>10.1f}"
                     f"{r['cpu_median_s'] * 1e3:>9.1f}{r['saved_bytes'] / 2**20:>11.1f}{peak:>15}{vs_sdpa:>9}"
                     f"{vs_ref:>12}{cpu_vs_ref:>11}")
    lines.append("vs sdpa = median step time / sdpa's (slower by); vs cope-ref = cope-reference / cope-blocked "
                 "median step time (speed-up); CPU ms = median process CPU time per step (all threads; less "
                 "sensitive to other processes' load than wall time)")
    return "\n".join(lines)
