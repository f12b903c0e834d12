"""Figures of the multitask section: per-subtask loss curves over steps (one panel per size, first seed) and the
final per-subtask loss against model size. Files ``multitask_curves.png`` and ``multitask_by_size.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from limitlab.studies.scaling.laws_figures import new_figure


def write_figures(runs: list[dict[str, Any]], out: Path) -> dict[str, str]:
    import matplotlib

    out.mkdir(parents=True, exist_ok=True)
    sizes = sorted({r["size"] for r in runs})
    first = {s: min((r for r in runs if r["size"] == s), key=lambda r: r["seed"]) for s in sizes}
    K = len(runs[0]["subtasks"])
    cmap = matplotlib.colormaps["plasma"]
    colours = [cmap(j / max(K - 1, 1) * 0.85) for j in range(K)]
    figures = {}

    fig = new_figure(3.2 * len(sizes) + 1, 3.4)
    axes = fig.subplots(1, len(sizes), squeeze=False, sharey=True)[0]
    for ax, s in zip(axes, sizes):
        r = first[s]
        c = r["_curves"]
        for j in range(K):
            if f"loss_{j}" in c:
                ax.plot(c["step"], c[f"loss_{j}"], color=colours[j], lw=1, label=f"subtask {j}")
        ax.plot(c["step"], c["loss"], color="black", lw=2.2, label="overall (mixture)")
        ax.set(title=f"N = {r['n_params']:,}", xlabel="step")
    axes[0].set_ylabel("test loss (nats)")
    axes[-1].legend(fontsize=7)
    fig.savefig(out / "multitask_curves.png")
    figures["curves"] = "multitask_curves.png"

    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    ns = [first[s]["n_params"] for s in sizes]
    for j in range(K):
        ys = [np.mean([x["subtasks"][j].get("final_loss", np.nan) for x in runs if x["size"] == s]) for s in sizes]
        ax.plot(ns, ys, "o-", color=colours[j], lw=1, label=f"subtask {j}")
    ax.plot(ns, [np.mean([x["final_loss"] for x in runs if x["size"] == s]) for s in sizes], "s-", color="black",
            lw=2, label="overall")
    ax.set(xscale="log", xlabel="N (parameters)", ylabel="final test loss (nats)", title="loss vs model size")
    ax.legend(fontsize=7)
    fig.savefig(out / "multitask_by_size.png")
    figures["by_size"] = "multitask_by_size.png"
    return figures
