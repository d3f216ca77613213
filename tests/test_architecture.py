"""The import rules of ARCHITECTURE.md: every module's rnnkit imports (at any depth of the
file, function-level imports included) stay inside what its part may use."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1] / "rnnkit"
BLOCKS = {
    "errors", "config", "checks", "variants", "bptt", "extension", "cells", "layers", "fused",
    "fused_cpu", "scan", "mingru", "attention", "memory", "decoding",
    "ctc",
}  # fmt: skip
ENGINE = {"training", "checkpoint", "run"}
UPPER = {"data", "models", "viz", "tasks", "cli", "api", "serve", "export"}


def forbidden(part: str, target: str) -> bool:
    """Whether a module of ``part`` may not import rnnkit.``target`` (dotted, e.g. tasks.base)."""
    top = target.split(".")[0]
    if top == "cli":
        return part != "__main__"
    if part == "reference":
        return top != "reference"
    if part in BLOCKS:
        return top in UPPER | ENGINE
    if part == "data":
        return top in UPPER - {"data"} | ENGINE
    if part == "models":
        return top in {"viz", "tasks"} | ENGINE or (top == "data" and target != "data.vocab")
    if part in ENGINE:
        return top in UPPER
    if part == "viz":
        return top == "tasks" and target not in ("tasks", "tasks.base")
    if part == "tasks":
        return top in {"api", "serve"}
    if part in ("api", "serve"):
        return False  # cli is refused above
    if part == "export":
        return top in {"tasks", "api", "serve"}
    return False


def imports(path: Path) -> set[str]:
    """rnnkit modules imported by the file, as dotted names below rnnkit."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("rnnkit."):
                found.add(name[len("rnnkit.") :])
    return found


def part_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return rel.parts[0] if rel.parts[0] != "__init__" else "__init__"


def test_every_module_keeps_to_its_part():
    broken = []
    for path in sorted(ROOT.rglob("*.py")):
        part = part_of(path)
        for target in imports(path):
            where = ROOT / Path(*target.split("."))
            # "from rnnkit.data.vocab import PAD" also names data.vocab.PAD: judge the module
            module = target if where.is_dir() or where.with_suffix(".py").exists() else None
            module = module or target.rpartition(".")[0]
            if forbidden(part, module):
                broken.append(f"{path.relative_to(ROOT.parent)} imports rnnkit.{module}")
    assert not broken, "\n".join(broken)


def test_the_rules_catch_a_breach():
    assert forbidden("layers", "tasks.charlm")
    assert forbidden("models", "training")
    assert forbidden("models", "data.tokenize") and not forbidden("models", "data.vocab")
    assert forbidden("viz", "tasks.charlm") and not forbidden("viz", "tasks")
    assert forbidden("training", "models.seq2seq")
    assert forbidden("tasks", "cli") and not forbidden("__main__", "cli")
    assert forbidden("reference", "cells")
