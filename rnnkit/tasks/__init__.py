"""The task registry: each application is a module with a Config, ``train``, ``evaluate`` and,
when it generates, ``sample``. ``get(name)`` looks one up and lists the valid names otherwise."""

from __future__ import annotations

from types import ModuleType

from rnnkit.errors import ConfigError
from rnnkit.tasks import charlm

REGISTRY: dict[str, ModuleType] = {charlm.NAME: charlm}
CONFIGS = {charlm.NAME: charlm.CharLMConfig}
DESCRIPTIONS = {charlm.NAME: "character-level language model (built-in corpus: Python's docs)"}


def get(name: str) -> ModuleType:
    if name not in REGISTRY:
        raise ConfigError(f"unknown task {name!r}", "valid tasks: " + ", ".join(REGISTRY))
    return REGISTRY[name]


__all__ = ["get", "REGISTRY", "CONFIGS", "DESCRIPTIONS"]
