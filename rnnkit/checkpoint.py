"""Checkpoints: the full training state as safetensors + JSON, written atomically; exact resume.

A checkpoint is a directory ``checkpoints/step-000500/`` holding

    tensors.safetensors   model parameters, optimizer moments, RNG states, carried hidden state
    state.json            step, best metric, scheduler, optimizer hyper-parameters, Python and
                          NumPy RNG states, and anything else the trainer needs to go on

It is written into ``step-000500.tmp/``, each file fsynced, then renamed into place and the parent
directory fsynced: a checkpoint directory without ``.tmp`` is always complete, and an interrupted
save (a SIGKILL included) leaves only a ``.tmp`` directory that the next save or load removes.
Nothing is ever unpickled: safetensors holds raw tensors, JSON the rest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnkit.errors import RunDirError

TENSORS, STATE = "tensors.safetensors", "state.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _name(step: int) -> str:
    return f"step-{step:07d}"


def save(
    root: Path,
    step: int,
    tensors: dict[str, torch.Tensor],
    state: dict,
    keep: set[int] = frozenset(),
) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically; return its directory.

    ``keep``: steps whose checkpoints must survive rotation (the caller decides which).
    """
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / _name(step), root / (_name(step) + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, tmp / TENSORS)
        (tmp / STATE).write_text(json.dumps(state), encoding="utf-8")
        _fsync_file(tmp / TENSORS)
        _fsync_file(tmp / STATE)
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def rotate(root: Path, keep_last: int, keep: set[int] = frozenset()) -> None:
    """Delete all but the newest ``keep_last`` checkpoints and those in ``keep``; drop .tmp."""
    for leftover in root.glob("step-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    steps = sorted(available(root))
    for step in steps[: max(0, len(steps) - keep_last)]:
        if step not in keep:
            shutil.rmtree(root / _name(step), ignore_errors=True)


def available(root: Path) -> list[int]:
    """Steps of the complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    steps = []
    for d in root.glob("step-*"):
        if d.is_dir() and not d.name.endswith(".tmp") and (d / STATE).is_file():
            steps.append(int(d.name.split("-")[1]))
    return sorted(steps)


def load(root: Path, step: int | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read checkpoint ``step`` (default: the newest complete one) without unpickling."""
    steps = available(root)
    if not steps:
        raise RunDirError(
            f"no complete checkpoint in {root}",
            "the run stopped before its first checkpoint; train it again",
        )
    path = root / _name(steps[-1] if step is None else step)
    for file in (path, path / TENSORS, path / STATE):
        if file.is_symlink():
            raise RunDirError(
                f"{file} is a symlink; rnnkit never reads a checkpoint through a link",
                "remove the link, or delete that checkpoint directory to resume from an older one",
            )
    try:
        tensors = load_file(path / TENSORS)
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
    except (SafetensorError, OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(
            f"checkpoint {path} could not be read: {err}",
            "the file is corrupted; delete that checkpoint directory to resume from an older one",
        ) from None
    return tensors, state


# ----------------------------------------------------------------------------- state <-> files


def split_state_dict(prefix: str, state: dict, tensors: dict) -> object:
    """Move every tensor of a nested ``state`` into ``tensors`` under dotted keys; return the
    JSON-able remainder, where each moved tensor is replaced by ``{"__tensor__": key}``."""
    if isinstance(state, torch.Tensor):
        tensors[prefix] = state
        return {"__tensor__": prefix}
    if isinstance(state, dict):
        return {
            "__dict__": [
                [k, split_state_dict(f"{prefix}.{k}", v, tensors)] for k, v in state.items()
            ]
        }
    if isinstance(state, tuple):
        return {
            "__tuple__": [
                split_state_dict(f"{prefix}.{i}", v, tensors) for i, v in enumerate(state)
            ]
        }
    if isinstance(state, list):
        return [split_state_dict(f"{prefix}.{i}", v, tensors) for i, v in enumerate(state)]
    return state


def join_state_dict(obj: object, tensors: dict) -> object:
    """The inverse of `split_state_dict` (dict keys keep their types: optimizer state uses ints)."""
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__tuple__" in obj:
        return tuple(join_state_dict(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: join_state_dict(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [join_state_dict(v, tensors) for v in obj]
    return obj


def rng_state(tensors: dict) -> dict:
    """Capture every random generator: torch (CPU and CUDA) into ``tensors``, the rest as JSON."""
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict, tensors: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
