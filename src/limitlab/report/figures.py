"""Figure helpers for the reports: matplotlib ``Figure`` objects on the Agg canvas (no pyplot, no global state, no
display), a heatmap with the value in each cell, and lines with shaded confidence bands.

A report makes its figures with :func:`new_figure`, draws on the axes with these helpers or plain matplotlib, and
hands ``{file name: Figure}`` to :func:`limitlab.report.write_report`, which saves each as a PNG.

>>> import pandas as pd
>>> fig = new_figure(4, 3)
>>> ax = fig.subplots()
>>> band = pd.DataFrame({"k": [1, 2, 3], "mean": [1.0, 0.5, 0.2], "low": [0.9, 0.4, 0.1], "high": [1.1, 0.6, 0.3]})
>>> line_with_band(ax, band["k"], band["mean"], band["low"], band["high"], label="linear")
>>> len(ax.lines), len(ax.collections)
(1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLORS", "heatmap", "line_with_band", "lines_with_bands", "new_figure"]

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray"]


def new_figure(width: float, height: float, dpi: int = 110) -> Any:
    """A matplotlib Figure (Agg canvas, constrained layout) of ``width`` × ``height`` inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def heatmap(ax: Any, pivot: pd.DataFrame, title: str = "", vmin: float = 0.0, vmax: float = 1.0,
            xlabel: str | None = None, ylabel: str | None = None, annotate: bool = True, cmap: str = "viridis",
            max_annotated: int = 200) -> Any:
    """``pivot`` (index: rows, bottom to top; columns: x) as an image; NaN cells are grey. Each cell shows its value
    (2 decimals) when ``annotate`` and there are at most ``max_annotated`` cells. Returns the image (for a
    colorbar). Axis labels default to the index and column names."""
    import matplotlib

    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9")
    data = np.ma.masked_invalid(pivot.to_numpy(dtype=float))
    im = ax.imshow(data, origin="lower", aspect="auto", cmap=colormap, vmin=vmin, vmax=vmax)
    xs, ys = list(pivot.columns), list(pivot.index)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=7, rotation=90 if len(xs) > 12 else 0)
    ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=8)
    ax.set_xlabel(xlabel if xlabel is not None else str(pivot.columns.name or ""))
    ax.set_ylabel(ylabel if ylabel is not None else str(pivot.index.name or ""))
    if title:
        ax.set_title(title, fontsize=9)
    if annotate and len(xs) * len(ys) <= max_annotated:
        light = vmin + 0.6 * (vmax - vmin)
        for i in range(len(ys)):
            for j in range(len(xs)):
                v = data[i, j]
                if v is not np.ma.masked:
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if v > light else "white")
    return im


def line_with_band(ax: Any, x: Sequence[float], mean: Sequence[float], low: Sequence[float] | None = None,
                   high: Sequence[float] | None = None, label: str | None = None, color: str | None = None,
                   marker: str | None = "o", alpha: float = 0.2) -> None:
    """A line through (x, mean) and, where low and high are finite, a shaded band between them."""
    x_a, m_a = np.asarray(x, dtype=float), np.asarray(mean, dtype=float)
    (line,) = ax.plot(x_a, m_a, marker=marker, ms=3, color=color, label=label)
    if low is not None and high is not None:
        lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(x_a, np.where(ok, lo, m_a), np.where(ok, hi, m_a), color=line.get_color(), alpha=alpha,
                            lw=0)


def lines_with_bands(ax: Any, frame: pd.DataFrame, x: str, y: str = "mean", low: str | None = "low",
                     high: str | None = "high", by: str | None = None, label: str = "{}") -> None:
    """One :func:`line_with_band` per value of ``by`` (e.g. the frame of :func:`limitlab.analysis.aggregate` or
    :func:`limitlab.analysis.bootstrap_band_frame`), coloured in turn; ``label`` formats the group value."""
    parts = [(None, frame)] if by is None else list(frame.groupby(by, sort=True))
    for k, (key, g) in enumerate(parts):
        g = g.sort_values(x)
        lo = g[low] if low and low in g else None
        hi = g[high] if high and high in g else None
        name = None if key is None else label.format(key[0] if isinstance(key, tuple) else key)
        line_with_band(ax, g[x], g[y], lo, hi, label=name, color=COLORS[k % len(COLORS)])
    if by is not None and parts:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def save_figure(fig: Any, path: Any, dpi: int = 110) -> Any:
    """Lay out, write and close ``fig``; returns ``path`` (the tail every figure function shares)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
