"""A trained run in your own Python: ``rnnkit.load(RUN)``.

    lm = rnnkit.load("runs/demo")                       # eval mode, on the device asked for
    lm.generate("The ", length=200, temperature=0.8)    # the task's own calls ...
    lm.module                                           # ... and the plain torch.nn.Module

    rnnkit.load("runs/dates").translate(["5 mars 2024", "2024/03/05"])   # [Translation, ...]
    rnnkit.load("runs/sentiment").classify(["a gem of a film"])          # [{"label", ...}]
    rnnkit.load("runs/air").forecast(horizon=12)

Each task names its calls in ``Task.api`` ({call: method of the task}); the method gets the
loaded run first, then the caller's arguments. `Model` only binds the two, so a call is the
same function as the command line's (same seed, same output).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from rnnkit import tasks
from rnnkit.errors import RnnkitError
from rnnkit.tasks.base import Loaded


class Model:
    """A trained run, ready for inference: ``module`` (the torch.nn.Module, in eval mode),
    ``config``, ``task``, ``run`` (the directory) and the task's calls (``calls``)."""

    def __init__(self, loaded: Loaded):
        self.loaded = loaded

    @property
    def module(self) -> nn.Module:
        return self.loaded.model

    @property
    def config(self):
        return self.loaded.config

    @property
    def task(self) -> tasks.Task:
        return self.loaded.task

    @property
    def run(self) -> Path:
        return self.loaded.run.path

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def calls(self) -> tuple[str, ...]:
        return tuple(self.task.api)

    def __getattr__(self, name: str):
        api = type(self.loaded.task).api  # type(): no recursion through __getattr__
        if name in api:
            method = getattr(self.loaded.task, api[name])
            bound = functools.partial(method, self.loaded)
            functools.update_wrapper(bound, method)
            return bound
        have = ", ".join(api) or "none"
        raise AttributeError(
            f"a {self.loaded.task.name!r} model has no call {name!r} (its calls: {have}; "
            "the torch.nn.Module is .module)"
        )

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.calls))

    def __repr__(self) -> str:
        return (
            f"<rnnkit.Model {self.task.name} from {self.run} on {self.device}, "
            f"{self.loaded.weights} parameters; calls: {', '.join(self.calls) or 'none'}>"
        )


def load(run: str | Path, device: str = "cpu", weights: str = "best") -> Model:
    """The trained run at ``run`` for inference: its best parameters (``weights="last"``: the
    last step's) on ``device`` ("cpu", "cuda", "cuda:1", "auto"), in eval mode."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as err:
        raise RnnkitError(
            f"device {device!r} is not a device: {err}", "use cpu, cuda or auto"
        ) from None
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RnnkitError(f"device {device!r}, but torch sees no CUDA device", "use cpu or auto")
    return Model(tasks.load(run, device, weights))
