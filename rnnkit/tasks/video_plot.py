"""Pictures of a video labeller: the frames of a clip with each model's label under them, and
per-frame accuracy over the clip's time, shaded where the label is out of sight.

    filmstrip(clip, labels, truth, visible)   frames in a row, labels below each
    report_sections(task, loaded)             a test clip's filmstrip, and accuracy by frame
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.viz import figure
from rnnkit.viz.report import image_html


def filmstrip(clip: np.ndarray, labels: dict[str, list[str]], truth=None, visible=None):
    """clip (T, 1, H, W); labels {model: [label per frame]}; truth and visible optional (T,)."""
    frames = len(clip)
    fig = figure(0.9 * frames + 0.4, 1.6 + 0.25 * len(labels))
    axes = np.atleast_1d(fig.subplots(1, frames))
    for t, ax in enumerate(axes):
        ax.imshow(clip[t, 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        lines = [f"{name[:3]}: {labels[name][t]}" for name in labels]
        if truth is not None:
            lines.insert(0, f"true: {truth[t]}")
        ax.set_xlabel("\n".join(lines), fontsize=7)
        if visible is not None and not visible[t]:
            for side in ax.spines.values():
                side.set_color("red")
                side.set_linewidth(2)
        ax.set_title(str(t), fontsize=7)
    return fig


def report_sections(task, loaded):
    from rnnkit.tasks.video import make_split, predict

    d = loaded.config.data
    test = make_split(d, "test", min(200, d.n_test))
    probs = predict(loaded.model, torch.from_numpy(test.video))
    names = loaded.setup.classes

    def strip_html() -> str:
        hidden = (~test.visible).sum(1)
        i = int(hidden.argmax())  # the clip with the most frames out of sight
        labels = {n: [names[k] for k in p[i].argmax(-1).tolist()] for n, p in probs.items()}
        truth = [names[k] for k in test.labels[i]]
        fig = filmstrip(test.video[i], labels, truth, test.visible[i])
        note = "<p>Frames framed in red: the label cannot be seen in the frame alone.</p>"
        return note + image_html(fig)

    def by_frame_html() -> str:
        fig = figure(6.4, 3.2)
        ax = fig.subplots()
        labels = torch.as_tensor(test.labels)
        hidden = 1 - test.visible.mean(0)
        ax.bar(np.arange(d.frames), hidden, color="0.85", label="share of frames out of sight")
        for name, p in probs.items():
            acc = (p.argmax(-1) == labels).float().mean(0).numpy()
            ax.plot(np.arange(d.frames), acc, marker="o", label=name)
        ax.set_xlabel("frame")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        return image_html(fig)

    return [("A test clip, frame by frame", strip_html),
            ("Accuracy by frame", by_frame_html)]  # fmt: skip
