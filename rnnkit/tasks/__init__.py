"""The task registry: every `Task` subclass with a name, found by itself.

Each module of this package is imported once, on first use, so a new task is one new file here
(or, outside rnnkit, any imported module that subclasses `Task`); nothing else lists tasks.

    get(name)      the task, or an error that lists the valid names
    names()        every registered name
    load(run)      a trained run rebuilt by the task named in its run.json
"""

from __future__ import annotations

import importlib
import pkgutil

from rnnkit.errors import ConfigError, RunDirError
from rnnkit.tasks.base import Command, Loaded, Task, arg, using_weights

_instances: dict[str, Task] = {}
_discovered = False


def _discover() -> None:
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _discovered = True


def names() -> list[str]:
    _discover()
    return list(Task.registry)


def get(name: str) -> Task:
    """The registered task ``name`` (one instance per class)."""
    _discover()
    cls = Task.registry.get(name)
    if cls is None:
        raise ConfigError(f"unknown task {name!r}", "valid tasks: " + ", ".join(Task.registry))
    if type(_instances.get(name)) is not cls:  # a redefinition replaces the old instance
        _instances[name] = cls()
    return _instances[name]


def all_tasks() -> list[Task]:
    return [get(name) for name in names()]


def of_run(path) -> Task:
    """The task named in the run directory's run.json (a RunDirError if it names none known)."""
    from rnnkit.run import RunDir

    name = RunDir.task_of(path)
    if name not in names():
        raise RunDirError(
            f"{path}/run.json names an unknown task {name!r}",
            "valid tasks: " + ", ".join(names()),
        )
    return get(name)


def load(path, device: str = "cpu", weights: str | None = None) -> Loaded:
    """The trained run at ``path``, rebuilt by its own task (named in its run.json), with its
    best parameters (``weights="last"``: the last step's)."""
    return of_run(path).load(path, device, weights)


__all__ = [
    "Task",
    "Command",
    "Loaded",
    "arg",
    "get",
    "names",
    "all_tasks",
    "of_run",
    "load",
    "using_weights",
]
