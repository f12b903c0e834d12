"""A CoPE attention map and position map for one test sample of a trained run.

The weights come from the store (the cope study keeps every run's weights; ``limitlab run cope --save-weights``
for a store made before it did). A report never trains: without weights the map is not drawn and the page says
which command keeps them. For every layer we keep the attention weights (``keep_attention=True``) and CoPE's
contextual positions p_ij (captured from the encoding while the forward runs).
"""

from __future__ import annotations

from typing import Any

import torch

from limitlab.rng import TEST, StackRNG
from limitlab.spec import RunSpec
from limitlab.tasks.base import TaskStack


@torch.no_grad()
def cope_maps(model: torch.nn.Module, spec: RunSpec, sample: int = 0) -> dict[str, Any]:
    """Attention weights and CoPE positions of every layer for test sequence ``sample`` of the run's task."""
    stack = TaskStack([spec.task])
    batch = stack.sample(StackRNG([spec.seed], stream=TEST), sample + 1, 0).models(0, 1)
    captured: list[torch.Tensor] = []
    encoders = [enc for block in model.blocks for enc in block.attn.encodings if enc.name == "cope"]
    originals = [enc.positions for enc in encoders]
    for enc, original in zip(encoders, originals):
        enc.positions = lambda gates, f=original: captured.append(f(gates)) or captured[-1]
    try:
        model.eval()
        model(batch.inputs, None, keep_attention=True, valid=batch.valid)
    finally:
        for enc in encoders:
            del enc.positions  # back to the class method
    attn = [block.attn.weights[0, sample].float() for block in model.blocks]  # each (H, T, T)
    pos = [p[0, sample].float() for p in captured]
    return {"tokens": batch.inputs[0, sample].tolist(), "attention": attn, "positions": pos,
            "scored": batch.positions[0, sample][batch.mask[0, sample]].tolist() if batch.positions is not None else []}


def map_figure(maps: dict[str, Any], labels: list[str], title: str) -> Any:
    """Last layer: attention (left) and CoPE positions p_ij (right) of each head, one row per head."""
    from limitlab.report.figures import new_figure

    attn, pos = maps["attention"][-1], maps["positions"][-1]
    heads = attn.shape[0]
    fig = new_figure(9, 3.6 * heads)
    axes = fig.subplots(heads, 2, squeeze=False)
    t = attn.shape[-1]
    ticks = list(range(t)) if t <= 64 else list(range(0, t, max(1, t // 32)))
    for h in range(heads):
        for ax, data, name, cmap in ((axes[h][0], attn[h], "attention", "viridis"),
                                     (axes[h][1], pos[h], "CoPE position p_ij", "magma")):
            masked = data.clone()
            masked[torch.triu(torch.ones(t, t, dtype=torch.bool), 1)] = float("nan")
            im = ax.imshow(masked.numpy(), cmap=cmap, aspect="auto", interpolation="nearest")
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"{title}: last layer, head {h}, {name}", fontsize=8)
            ax.set_xticks(ticks)
            ax.set_xticklabels([labels[i] for i in ticks], fontsize=5)
            ax.set_yticks(ticks)
            ax.set_yticklabels([labels[i] for i in ticks], fontsize=5)
            ax.set_xlabel("key j")
            ax.set_ylabel("query i")
    return fig
