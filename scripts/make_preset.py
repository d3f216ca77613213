"""Write a task's YAML preset with every key, its value and the comment beside its field.

python scripts/make_preset.py dates train.steps=4000 > configs/dates.yaml
"""

import dataclasses
import inspect
import re
import sys
import typing

from rnnkit import tasks
from rnnkit.config import build, parse_overrides


def field_comments(cls) -> dict[str, str]:
    """``name: type = default  # comment`` lines of a dataclass and its bases."""
    comments = {}
    for klass in reversed(cls.__mro__):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for name, comment in re.findall(r"^\s+(\w+): [^#\n]+#\s*(.+)$", source, flags=re.M):
            comments[name] = comment.strip()
    return comments


def emit(config, indent: str = "") -> list[str]:
    lines, comments = [], field_comments(type(config))
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"{indent}{f.name}:")
            lines += emit(value, indent + "  ")
            continue
        text = "true" if value is True else "false" if value is False else value
        text = '""' if text == "" else text
        lines.append(f"{indent}{f.name}: {text}".ljust(34) + f"  # {comments.get(f.name, '')}")
    return lines


if __name__ == "__main__":
    task = tasks.get(sys.argv[1])
    config = build(task.Config, overrides=parse_overrides(sys.argv[2:]))
    print(f"# {task.name}: {task.description}")
    print(f"# rnnkit train {task.name} --config configs/{task.name}.yaml [section.key=value ...]")
    print("\n".join(emit(config)))
