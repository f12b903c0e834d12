"""``limitlab bench``'s table: one line per shape and mode, from the report :func:`limitlab.bench.run` returns."""

from __future__ import annotations

from collections.abc import Sequence


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def _span(ratios: Sequence[float] | None) -> str:
    """'0.95-1.02': the lowest and highest round-by-round ratio."""
    return "n/a" if not ratios else f"{min(ratios):.2f}-{max(ratios):.2f}"


def _chunk(out: dict) -> str:
    """'4 (measured)': models per chunk and how the trainer chose them (older reports: the number only)."""
    how = out.get("chunk_how")
    return f"{out['chunk']}" + (f" ({how})" if how else "")


def render(report: dict) -> str:
    if "attention" in report:
        from limitlab.bench_attention import render_attention

        return render_attention(report)
    info = report["info"]
    with_vmap = any("vmap" in out for r in report["rows"] for out in r["modes"].values())
    lines = [f"device: {info['name']} ({info['device']}), torch {info['torch']}, threads {info['threads']}, "
             f"load avg {info['load_avg']} -> {info.get('load_avg_end')}",
             f"CPU: {info.get('cpu', 'n/a')}; caches (one core's view): {info.get('caches', 'n/a')}",
             "ratios are medians over the alternating rounds of the sides' same-round ratios (the JSON also has "
             "best round / best round); vs plain = stacked / a plain PyTorch loop (one nanoGPT-style model + "
             "torch.optim.Adam per run); (rounds) = its lowest-highest paired ratio (noise); "
             "speedup = stacked / limitlab at M = 1; M=1/plain = limitlab at M = 1 / the plain loop"
             + ("; vs vmap = stacked / torch.func's vmap ensemble of the plain models" if with_vmap else "")
             + "; chunk = models per chunk of the stacked step (how: measured now, cached from an earlier measurement "
               "on this machine, option, or whole stack)",
             f"peak for MFU: {_fmt(info['peak_flops'])} FLOP/s ({info['peak_source']}); "
             f"MFU FLOPs = 6·N_nonembed + 12·L·T·d per token, last layer at the read-outs only"]
    head = (f"{'mode':<9}{'d':>4}{'T':>6}{'M':>5} {'stacked m-steps/s':>17}{'plain m-steps/s':>16}{'vs plain':>9}"
            f"{'(rounds)':>12}" + (f"{'vmap m-steps/s':>15}{'vs vmap':>8}" if with_vmap else "") +
            f"{'loop m-steps/s':>15}{'speedup':>8}{'M=1/plain':>10}"
            f"{'stacked tok/s':>14}{'MFU':>9}{'loop MFU':>9}{'dense ceil':>11}  {'chunk (how)':<16}")
    lines.append(head)
    for r in report["rows"]:
        for mode, out in r["modes"].items():
            st, lp, pl = out["stacked"], out.get("loop"), out.get("plain")
            lines.append(
                f"{mode:<9}{r['d']:>4}{r['T']:>6}{r['models']:>5} {st['model_steps_per_s']:>17.1f}"
                f"{_fmt(pl and pl['model_steps_per_s'], '.1f'):>16}{_fmt(out.get('speedup_vs_plain_median'), '.2f'):>9}"
                f"{_span(out.get('vs_plain_by_round')):>12}"
                + (f"{_fmt(out.get('vmap', {}).get('model_steps_per_s'), '.1f'):>15}"
                   f"{_fmt(out.get('speedup_vs_vmap_median'), '.2f'):>8}" if with_vmap else "") +
                f"{_fmt(lp and lp['model_steps_per_s'], '.1f'):>15}{_fmt(out.get('speedup_median'), '.2f'):>8}"
                f"{_fmt(out.get('own_loop_vs_plain_median'), '.2f'):>10}"
                f"{st['tokens_per_s']:>14.3g}{_fmt(st['mfu'], '.2%'):>9}{_fmt(lp and lp['mfu'], '.2%'):>9}"
                f"{r['dense']['model_steps_per_s']:>11.1f}  {_chunk(out):<16}")
    preset = report.get("preset")
    if preset:
        lines.append(f"preset {preset['name']}: {preset['runs']} runs, {preset['model_steps']:.3g} model-steps, "
                     f"{preset['stacks']} stacks, {preset['seeds']} seed(s)")
        for p in preset["projections"]:
            loop = f", one at a time {p['loop_hours']:.3g} h" if "loop_hours" in p else ""
            lines.append(f"  projected ({p['mode']}): stacked {p['stacked_hours']:.3g} h "
                         f"({p['stacked_hours'] * 60 / preset['seeds']:.3g} min per seed){loop}; "
                         f"fit: step s = {p['fit_overhead_s']:.3g} + {p['fit_s_per_flop']:.3g} × FLOPs")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
