"""Pictures of an image model: a grid of new samples, held-out digits completed from their top
half (as in van den Oord et al. 2016, fig. 1), and where the held-out likelihood is lost.

    samples_figure(drawn, k, given, completed)   samples, then originals above completions
    report_sections(task, loaded)                the figure, and the mean -log p(x_i | x_<i)
                                                 of every pixel position on the test digits
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.viz import figure
from rnnkit.viz.report import image_html


def _tile(ax, images: np.ndarray, k: int, per_row: int, title: str) -> None:
    n = len(images)
    rows = -(-n // per_row)
    side = images.shape[-1]
    canvas = np.full((rows * (side + 1) + 1, per_row * (side + 1) + 1), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, per_row)
        top, left = 1 + r * (side + 1), 1 + c * (side + 1)
        canvas[top : top + side, left : left + side] = image / (k - 1)
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def samples_figure(drawn: np.ndarray, k: int, given=None, completed=None, per_row: int = 8):
    """drawn (n, 8, 8) levels in [0, k); given / completed (m, 8, 8): the held-out digits and
    their completions from the top half."""
    panels = 1 + (given is not None and len(given) > 0)
    rows = max(-(-len(drawn) // per_row) / per_row, 2 / len(given) if panels == 2 else 0)
    fig = figure(4.2 * panels, 0.6 + 4.0 * rows)  # rows: the taller grid's height / width
    axes = np.atleast_1d(fig.subplots(1, panels))
    _tile(axes[0], drawn, k, per_row, "new samples")
    if panels == 2:
        m = len(given)
        both = np.concatenate([given, completed])  # originals on top, completions below
        _tile(axes[1], both, k, m, "held out (top row), completed from its top half (below)")
    return fig


@torch.no_grad()
def nll_by_pixel(model, x: torch.Tensor) -> np.ndarray:
    """The mean -log p(x_i | x_<i) of every pixel position over images (n, H, W): (H, W)."""
    model.eval()
    logits = model(x)  # (n, K, H, W)
    return F.cross_entropy(logits, x, reduction="none").mean(0).numpy()


def report_sections(task, loaded):
    from rnnkit.tasks.pixels import digit_levels, levels

    d = loaded.config.data
    k = levels(d)

    def samples_html() -> str:
        drawn = task.draw(loaded, 24)
        given = digit_levels(d, "test")[:8]
        done = task.complete(loaded, given)
        return image_html(samples_figure(drawn, k, given.numpy(), done))

    def nll_html() -> str:
        per_pixel = nll_by_pixel(loaded.model, digit_levels(d, "test"))
        fig = figure(3.6, 3.2)
        ax = fig.subplots()
        shown = ax.imshow(per_pixel, cmap="viridis", interpolation="nearest")
        fig.colorbar(shown, ax=ax, label="nats")
        ax.set_title("-log p(x_i | x_<i) by position, test digits", fontsize=9)
        return image_html(fig)

    return [("Samples and completions", samples_html), ("Where the likelihood goes", nll_html)]
