"""Pictures of a recogniser: the CTC output over time against its input, as in Graves et al.
(2006, fig. 1): each symbol's probability is a narrow spike where the network emits it, and
the blank fills the frames between.

    ctc_figure(task, loaded, x)   input on top (spectrogram, pixel columns or ink), below it
                                  y^t_k for every symbol k over the output frames t (the blank
                                  dashed), on one time axis
    report_sections(task, loaded) the figure for a few test inputs and a table of test
                                  transcripts beside what the model read
"""

from __future__ import annotations

import html

import numpy as np
import torch

from rnnkit.viz import figure
from rnnkit.viz.report import image_html


@torch.no_grad()
def posteriors(loaded, x: np.ndarray) -> np.ndarray:
    """Raw frames (T, f) -> the probabilities (T', C) of every output frame."""
    model = loaded.model.eval()
    device = next(model.parameters()).device
    z = torch.from_numpy(loaded.setup.normalise(x))[None].to(device)
    logp, lengths = model(z, torch.tensor([len(x)]))
    return logp[0, : int(lengths[0])].exp().cpu().numpy()


def ctc_figure(task, loaded, x: np.ndarray, title: str = ""):
    """The input over its frames and the CTC posteriors below, on the input's time axis."""
    setup = loaded.setup
    p = posteriors(loaded, x)
    fig = figure(8.0, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.2, 1])
    task.draw_input(top, x)
    top.set_ylabel("input")
    if title:
        top.set_title(title)
    t = (np.arange(len(p)) + 0.5) * len(x) / len(p)  # output frame centres in input frames
    if setup.classes:
        for k, name in enumerate(setup.classes):
            bottom.plot(t, p[:, k], label=name)
        bottom.set_ylabel("p(class)")
    else:
        bottom.plot(t, p[:, 0], color="0.6", linestyle="--", linewidth=1, label="blank")
        colours = [f"C{i % 10}" for i in range(len(setup.alphabet))]
        for k, symbol in enumerate(setup.alphabet, 1):
            if p[:, k].max() < 0.05:
                continue
            bottom.plot(t, p[:, k], color=colours[k - 1], linewidth=1.2)
            peak = int(p[:, k].argmax())
            bottom.annotate(
                repr(symbol)[1:-1] or " ", (t[peak], p[peak, k]), ha="center", va="bottom",
                fontsize=9, color=colours[k - 1],
            )  # fmt: skip
        bottom.set_ylabel("p(symbol | frame)")
    bottom.set_ylim(0, 1.08)
    bottom.set_xlim(0, len(x))
    bottom.set_xlabel("input frame")
    return fig


def report_sections(task, loaded):
    def spikes() -> str:
        loaded.check_inputs()
        setup = task.prepare(loaded.config, loaded.run)
        raw, _ = task.load_data(loaded.config)
        from rnnkit.tasks.recognition import recognise

        parts = []
        for (x, text), (z, _) in zip(raw["test"][:3], setup.splits["test"][:3], strict=True):
            read = recognise(loaded.model, setup, [z])[0][0]
            fig = ctc_figure(task, loaded, x, f"reference {text!r}, read {read!r}")
            parts.append(image_html(fig))
        return "".join(parts)

    def examples() -> str:
        loaded.check_inputs()
        setup = task.prepare(loaded.config, loaded.run)
        from rnnkit.tasks.recognition import recognise

        test = setup.splits["test"][:40]
        found = recognise(loaded.model, setup, [x for x, _ in test], loaded.config.decode.beam,
                          loaded.config.decode)  # fmt: skip
        rows = []
        for (_, ref), (hyp, score) in zip(test, found, strict=True):
            mark = "" if ref == hyp else ' style="color:#b00"'
            rows.append(
                f"<tr><td>{html.escape(ref)}</td><td{mark}>{html.escape(hyp)}</td>"
                f"<td>{score:.2f}</td></tr>"
            )
        head = "<tr><th>reference</th><th>read (beam search)</th><th>log score</th></tr>"
        return f"<table>{head}{''.join(rows)}</table>"

    return [("CTC output over time", spikes), ("Test transcripts", examples)]
