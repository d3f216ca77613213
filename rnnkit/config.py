"""Typed configs: dataclass defaults, an optional YAML file, then ``key=value`` overrides.

Precedence, lowest first: the dataclass defaults, the file, the command line. Unknown keys and
values of the wrong type are errors that list what is valid, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

from rnnkit.errors import ConfigError

_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def _coerce(name: str, value, kind):
    """Convert ``value`` (a string from the command line, or a YAML scalar) to ``kind``."""
    if value is None or isinstance(value, list | tuple | dict | set):
        raise ConfigError(
            f"config key {name!r} expects one {kind.__name__} value, got {value!r}",
            f"give a single value, for example {_example(name, kind)}",
        )
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in _TRUE | _FALSE:
                return str(value).lower() in _TRUE
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(
                    f"config key {name!r} must be a finite number, got {value!r}",
                    f"for example {_example(name, kind)}",
                )
            return number
        if kind is str:
            return str(value)
    except ValueError:
        pass
    else:
        raise ConfigError(f"config key {name!r} has an unsupported type {kind}")
    raise ConfigError(
        f"config key {name!r} expects {kind.__name__}, got {value!r}",
        f"for example {_example(name, kind)}",
    )


def _example(name: str, kind) -> str:
    return {bool: f"{name}=true", int: f"{name}=3", float: f"{name}=0.001"}.get(
        kind, f"{name}=text"
    )


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["lr=3e-3", "cell=gru"]`` -> ``{"lr": "3e-3", "cell": "gru"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"expected key=value, got {item!r}", "for example `steps=500 cell=gru`"
            )
        out[key.strip()] = value
    return out


def leaf_keys(cls, prefix: str = "") -> dict[str, type]:
    """Every settable key of a (nested) config dataclass, dotted, with its type."""
    keys: dict[str, type] = {}
    for name, kind in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(kind):
            keys |= leaf_keys(kind, f"{prefix}{name}.")
        else:
            keys[prefix + name] = kind
    return keys


def _flatten(mapping: dict, prefix: str = "", where: str = "config") -> dict:
    if not isinstance(mapping, dict):
        what = f"section {prefix[:-1]!r}" if prefix else "the config"
        raise ConfigError(
            f"{where}: {what} must be a mapping of key: value, got {type(mapping).__name__}"
        )
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + str(key)] = value
    return flat


def _apply(config, values: dict, prefix: str = ""):
    """``config`` with the dotted ``values`` applied; sections keep their parent's defaults."""
    changes = {}
    for f in dataclasses.fields(config):
        current = getattr(config, f.name)
        if dataclasses.is_dataclass(current):
            changes[f.name] = _apply(current, values, f"{prefix}{f.name}.")
        elif prefix + f.name in values:
            changes[f.name] = values[prefix + f.name]
    return dataclasses.replace(config, **changes)


def build(cls, file: str | Path | None = None, overrides: dict | None = None, where="command line"):
    """Make a ``cls`` instance from defaults, then ``file`` (YAML), then ``overrides``.

    Nested dataclasses are addressed with dotted keys (``train.lr=3e-3``), in YAML as nested
    mappings. Every value is converted to its field's type; unknown keys are errors, and so are
    non-finite numbers. ``where`` names the overrides' origin in the messages.
    """
    keys = leaf_keys(cls)
    values: dict = {}
    layers = []
    if file is not None:
        layers.append((str(file), _flatten(_read_yaml(file), where=str(file))))
    layers.append((where, _flatten(overrides or {}, where=where)))
    for where, layer in layers:
        for key, value in layer.items():
            if key not in keys:
                section = key.rpartition(".")[0]
                near = [k for k in keys if k.startswith(section + ".")] if section else []
                raise ConfigError(
                    f"unknown config key {key!r} ({where})",
                    "valid keys: " + ", ".join(near or keys),
                )
            try:
                values[key] = _coerce(key, value, keys[key])
            except ConfigError as err:
                raise ConfigError(f"{err.message} ({where})", err.hint) from None
    config = _apply(cls(), values)
    check = getattr(config, "validate", None)
    if check:
        check()
    return config


def _read_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text: {err.reason}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    return data


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def choice(name: str, value, options) -> None:
    """Raise a ConfigError unless ``value`` is one of ``options``."""
    if value not in options:
        raise ConfigError(
            f"config key {name!r} must be one of {', '.join(map(str, options))}; got {value!r}"
        )


def positive(config, *names: str, allow_zero: bool = False, prefix: str = "") -> None:
    """Raise a ConfigError unless each named field is > 0 (or >= 0 with ``allow_zero``)."""
    for name in names:
        value = getattr(config, name)
        if value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(f"config key {prefix + name!r} must be {bound}, got {value!r}")
