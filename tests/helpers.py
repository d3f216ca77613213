"""Shared by several test files (the tests folder is on sys.path under pytest)."""

from rnnkit import tasks
from rnnkit.config import build


def train_run(name: str, out, **overrides):
    """Train task ``name`` into the run directory ``out`` with dotted ``overrides``; ``out``."""
    task = tasks.get(name)
    task.train(build(task.Config, overrides=overrides), out, progress=False)
    return out
