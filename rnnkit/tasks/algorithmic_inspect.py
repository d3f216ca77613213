"""The memory tasks' pictures, gathered from run directories alone and drawn by
`rnnkit.viz.memory` (the commands of `rnnkit plot`; `rnnkit plot curves` is every task's):

    rnnkit plot sequence RUN --out fig.png [--length 30]       an NTM reading and writing
    rnnkit plot lengths RUN [RUN ...] --lengths 10,20,40 --out f.png
    rnnkit plot gradients RUN [RUN ...] --out f.png            |dL/dx_t| against t
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit import tasks
from rnnkit.errors import RnnkitError
from rnnkit.models.ntm import NTM
from rnnkit.run import RunDir
from rnnkit.tasks.algorithmic import loss_of
from rnnkit.tasks.base import Loaded
from rnnkit.viz.curves import run_label
from rnnkit.viz.memory import input_gradient_figure, lengths_figure, ntm_sequence_figure

__all__ = ["sequence_figure", "length_errors", "lengths_figure_of", "gradients_figure_of"]


def _load(path) -> Loaded:
    loaded = tasks.load(path)
    if not hasattr(loaded.task, "Source"):
        raise RnnkitError(
            f"{path} holds a {loaded.task.name!r} run; this picture needs a memory task's run",
            "use a run of copy, repeat_copy, recall, sort, adding, copy_memory or digits",
        )
    return loaded


def sequence_figure(path, length: int = 20, seed: int = 0, labels=None):
    """One held-out sequence through a trained NTM: what it saw, did, and where it looked."""
    loaded = _load(path)
    model, config = loaded.model, loaded.config
    if not isinstance(model, NTM):
        raise RnnkitError(f"{path} holds a {config.model.cell} model; the figure needs an NTM")
    g = torch.Generator().manual_seed(seed)
    batch = loaded.task.Source(config.data).held_out(1, g, length)
    trace = model.trace(batch.x)
    panels = [
        ("inputs", batch.x[0].T),
        ("targets", (batch.y[0] * batch.mask[0, :, None]).T),
        ("outputs", (torch.sigmoid(trace["y"][0]) * batch.mask[0, :, None]).T),
        ("write weighting (head 1)", trace["w_write"][0, :, 0].T),
        ("read weighting (head 1)", trace["w_read"][0, :, 0].T),
    ]
    title = f"{loaded.task.name}, length {length}: {run_label(path, labels)}"
    return ntm_sequence_figure(panels, title)


def length_errors(path, lengths: list[int]) -> dict[int, dict]:
    """Held-out metrics at each length (a run's own task and config)."""
    metrics = _load(path).task.evaluate(path, lengths=lengths)
    return {
        n: {k.rpartition("@")[0]: v for k, v in metrics.items() if k.endswith(f"@{n}")}
        for n in lengths
    }


def lengths_figure_of(paths: list, lengths: list[int], metric: str = "bit_errors", labels=None):
    series = {}
    for path in paths:
        errors = length_errors(path, lengths)
        series[run_label(path, labels)] = [errors[n][metric] for n in lengths]
    trained = RunDir(paths[0]).read_json("config.json")["data"].get("max_len")
    return lengths_figure(series, lengths, metric, trained)


def input_gradient_norms(model, batch, kind: str) -> np.ndarray:
    """|dL/dx_t| averaged over the batch, for t = 1..T: (T,)."""
    model.eval()
    x = batch.x.clone().requires_grad_(True)
    out, _ = model(x)
    loss_of(kind, out, batch._replace(x=x)).backward()
    return x.grad.norm(dim=-1).mean(0).numpy()  # (b, t, i) -> (t,)


def gradients_figure_of(paths: list, seed: int = 0, labels=None):
    series = {}
    for path in paths:
        loaded = _load(path)
        source = loaded.task.Source(loaded.config.data)
        batch = source.held_out(64, torch.Generator().manual_seed(seed), None)
        series[run_label(path, labels)] = input_gradient_norms(loaded.model, batch, source.loss)
    return input_gradient_figure(series)
