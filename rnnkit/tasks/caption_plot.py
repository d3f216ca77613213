"""Pictures of a captioner, as in Xu et al. (2015, figs. 2-3): the image, then for every word
the image again with the attention alpha_t laid over it (upsampled from the grid to pixels).

    attention_figure(picture, caption, alpha)   one row of panels: the image, then each word
    report_sections(task, loaded)               attention for a few test images, and a table
                                                of test (and novel) captions beside the truth
"""

from __future__ import annotations

import html

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.viz import figure
from rnnkit.viz.report import image_html


def show(ax, picture: np.ndarray) -> None:
    """An image (C, H, W) in [0, 1] on ``ax``: grey for one channel, colour for three."""
    picture = np.asarray(picture)
    if picture.shape[0] == 1:
        ax.imshow(picture[0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(picture.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def upsample(alpha: torch.Tensor, height: int, width: int) -> np.ndarray:
    """alpha (T, H', W') -> (T, height, width), bilinear, each map scaled to a maximum of 1."""
    a = F.interpolate(alpha[:, None].float(), size=(height, width), mode="bilinear")[:, 0]
    return (a / a.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]).numpy()


def attention_figure(picture: np.ndarray, caption: str, alpha: torch.Tensor, per_row: int = 6):
    """The image and one panel per word of ``caption`` (and <end>) with alpha_t over it."""
    words = caption.split() + ["<end>"]
    _, h, w = np.asarray(picture).shape
    maps = upsample(alpha, h, w)
    panels = 1 + len(words)
    rows = -(-panels // per_row)
    cols = min(panels, per_row)
    scale = 1.6 * max(1.0, w / h / 2)
    fig = figure(scale * cols, 1.8 * rows * max(0.6, h / w) + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    show(axes[0], picture)
    axes[0].set_title("image", fontsize=9)
    for ax, word, a in zip(axes[1:], words, maps, strict=False):
        show(ax, picture)
        ax.imshow(a, cmap="magma", alpha=0.6, vmin=0, vmax=1, interpolation="bilinear")
        ax.set_title(word, fontsize=9)
    for ax in axes[panels:]:
        ax.axis("off")
    return fig


def report_sections(task, loaded, examples: int = 3):
    from rnnkit.tasks.caption import Captions, caption_all, make_split

    config, setup = loaded.config, loaded.setup
    d, dec = config.data, config.decode
    parts = ("test", "novel") if d.source == "scenes" else ("test",)
    shown = {p: Captions(*make_split(d, p, 12), setup.tok) for p in parts}

    def attention_html() -> str:
        out = []
        data = shown["test"]
        for i in range(min(examples, len(data))):
            picture = data.images[i].numpy()
            caption = task.caption(loaded, picture)[0][0][0]
            alpha = task.attention(loaded, picture, caption)
            out.append(image_html(attention_figure(picture, caption, alpha)))
        return "".join(out)

    def table_html() -> str:
        rows = []
        for part, data in shown.items():
            hyps = caption_all(loaded.model, data, dec.max_len, setup.tok, dec.beam, dec.alpha)
            for hyp, ref in zip(hyps, data.text, strict=True):
                mark = "=" if hyp == ref else "&ne;"
                rows.append(
                    f"<tr><td>{part}</td><td>{html.escape(ref)}</td><td>{mark}</td>"
                    f"<td>{html.escape(hyp)}</td></tr>"
                )
        head = "<tr><th>split</th><th>truth</th><th></th><th>caption (beam)</th></tr>"
        return f"<table>{head}{''.join(rows)}</table>"

    return [("Where the model looks for each word", attention_html),
            ("Captions of held-out images", table_html)]  # fmt: skip
