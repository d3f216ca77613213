"""The task registry. A task is a module (or any object) with

    NAME         the name used on the command line
    DESCRIPTION  one line for `rnnkit tasks`
    Config       its config dataclass (nested sections allowed)
    train(config, out, progress=True) -> metrics     writes the run directory `out`
    resume(run, progress=True) -> metrics            continues from the newest checkpoint
    evaluate(run) -> metrics
    sample(run, ...) / translate(run, text) ...      optional, for generative tasks

``get(name)`` looks one up and lists the valid names otherwise.
"""

from __future__ import annotations

from rnnkit.errors import ConfigError
from rnnkit.tasks import algorithmic, charlm, translate

_TASKS = [charlm, *translate.TASKS, *algorithmic.TASKS]

REGISTRY = {task.NAME: task for task in _TASKS}


def get(name: str):
    if name not in REGISTRY:
        raise ConfigError(f"unknown task {name!r}", "valid tasks: " + ", ".join(REGISTRY))
    return REGISTRY[name]


__all__ = ["get", "REGISTRY"]
