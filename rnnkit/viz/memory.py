"""Pictures of the memory tasks, drawn from arrays (the task gathers them from its runs):

ntm_sequence_figure   the NTM paper's figure for one sequence (Graves et al. 2014, fig. 6):
                      inputs, targets, outputs, and the write and read weightings over time
lengths_figure        error against sequence length, for runs trained on shorter sequences
input_gradient_figure |dL/dx_t| against t: how much the loss at the end still feels step t
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from rnnkit.viz import figure

__all__ = ["ntm_sequence_figure", "lengths_figure", "input_gradient_figure"]


def ntm_sequence_figure(panels: list[tuple[str, Tensor]], title: str) -> Figure:
    """``panels``: [(title, image (rows, t))]; those whose title ends with ")" are memory
    weightings (locations, t), shown only over the locations the heads visited (sum > 0.1)."""
    t = panels[0][1].size(1)
    memory = [image for name, image in panels if name.endswith(")")]
    used = torch.stack(memory).sum(0).amax(1) > 0.1 if memory else torch.zeros(0)  # (n,)
    rows = torch.nonzero(used).flatten()
    n = memory[0].size(0) if memory else 0
    lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, n)
    heights = [40 if name.endswith(")") else image.size(0) for name, image in panels]
    fig = figure(max(6.0, t * 0.12), 8.5)
    axes = fig.subplots(len(panels), 1, sharex=True, height_ratios=heights)
    for ax, (name, image) in zip(axes, panels, strict=True):
        if name.endswith(")"):
            image = image[lo:hi]  # the memory rows the heads visited
            ax.set_ylabel(f"locations {lo}-{hi - 1}", fontsize=8)
        ax.imshow(image.numpy(), aspect="auto", cmap="gray_r", interpolation="nearest", vmin=0)
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_yticks([])
    axes[-1].set_xlabel("time step")
    fig.suptitle(title, fontsize=10)
    return fig


def lengths_figure(
    series: dict[str, list[float]], lengths: list[int], metric: str, trained: int | None = None
) -> Figure:
    """``series``: {label: metric at each of ``lengths``}; ``trained``: the longest trained."""
    fig = figure(6.0, 4.0)
    ax = fig.subplots()
    for label, values in series.items():
        ax.plot(lengths, values, "o-", label=label)
    if trained:
        ax.axvline(trained, color="gray", ls=":", label=f"longest trained ({trained})")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(f"{metric} per sequence")
    ax.legend(fontsize=8)
    return fig


def input_gradient_figure(series: dict[str, np.ndarray]) -> Figure:
    """``series``: {label: |dL/dx_t| for t = 1..T}, on a log scale."""
    fig = figure(6.0, 4.0)
    ax = fig.subplots()
    for label, norms in series.items():
        ax.semilogy(np.arange(1, len(norms) + 1), norms, label=label)
    ax.set_xlabel("input step t (the loss is at the last step)")
    ax.set_ylabel("|dL / dx_t|")
    ax.legend(fontsize=8)
    return fig
