"""The run directory: everything needed to rebuild a trained model, and nothing pickled.

run.json           {"task": ..., "rnnkit": version, "format": 1}
config.json        the resolved task config
model.safetensors  the model's parameters: the best by the validation metric
last.safetensors   the parameters at the end of training
vocab.json         (or another task file) written by the task through `write_text`
metrics.jsonl      one JSON object per logged step or evaluation
metrics.json       the final metrics
.lock              held (advisory flock) by the one process training the run

A run directory may come from someone else, so it is a trust boundary: every write into it goes
through `inside`, which refuses a symlink anywhere below the run directory (a link could point
writes at any file), and a second `train` / `resume` on a run that one holds is refused with the
holder's process id.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnkit.errors import RunDirError

FORMAT = 1
MODEL = "model.safetensors"  # the best parameters by the validation metric
LAST = "last.safetensors"  # the parameters at the last step


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """A run directory being written (``RunDir.create``) or read back (``RunDir.open``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # writing -----------------------------------------------------------------------------
    @classmethod
    def check_new(cls, path: str | Path) -> None:
        """Raise RunDirError unless ``path`` can become a new run directory (cheap: run it
        before any large read)."""
        path = Path(path)
        hint = "choose another --out, or delete the old run first"
        if path.is_symlink() and not path.exists():
            raise RunDirError(f"--out {path} is a dangling symlink", hint)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"--out {path} exists and is not a directory", hint)
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(f"run directory already exists and is not empty: {path}", hint)
        parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot create {path}: {parent} is not a writable directory", hint)

    @classmethod
    def create(cls, path: str | Path, task: str, config: dict) -> RunDir:
        from rnnkit import __version__

        run = cls(path)
        cls.check_new(path)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_json("run.json", {"task": task, "rnnkit": __version__, "format": FORMAT})
        run.write_json("config.json", config)
        run.write_text("metrics.jsonl", "")
        return run

    def inside(self, name: str | Path) -> Path:
        """``self.path / name``: a RunDirError if it, or a directory between it and the run
        directory, is a symlink, or if it would leave the run directory."""
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise RunDirError(f"{name} is not a path inside the run directory {self.path}")
        step = self.path
        for part in rel.parts:
            step = step / part
            if step.is_symlink():
                raise RunDirError(
                    f"{step} is a symlink; rnnkit never reads or writes through a link in a "
                    "run directory",
                    f"remove the link (it points to {os.readlink(step)})",
                )
        return step

    def write_json(self, name: str, obj) -> None:
        self.write_text(name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def write_text(self, name: str, text: str) -> None:
        atomic_write_bytes(self.inside(name), text.encode("utf-8"))

    def log(self, record: dict) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        fd = os.open(self.inside("metrics.jsonl"), flags, 0o644)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    @contextlib.contextmanager
    def lock(self):
        """Hold the run for one writer: a second process gets a RunDirError naming this one."""
        fd = os.open(self.inside(".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                raise RunDirError(
                    f"run {self.path} is in use: process {holder} is training it",
                    "wait for that process to finish (or stop it), then resume",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            yield self
        finally:
            os.close(fd)  # closing releases the lock

    def truncate_log(self, step: int) -> None:
        """Drop the log records after ``step`` (a resumed run logs them again)."""
        path = self.inside("metrics.jsonl")
        if not path.exists():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                break
            at = record.get("step", 0) if isinstance(record, dict) else None
            if isinstance(at, int) and at <= step:
                kept.append(line)
        atomic_write_bytes(path, ("\n".join(kept) + "\n" if kept else "").encode("utf-8"))

    def save_model(self, model: torch.nn.Module, name: str = MODEL) -> None:
        tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        target = self.inside(name)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # reading -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, task: str | None = None, need=(MODEL,)) -> RunDir:
        """Check that ``path`` is a complete run of ``task``; raise RunDirError otherwise."""
        run = cls(path)
        name = run.task  # checks the directory and its run.json
        if task is not None and name != task:
            raise RunDirError(
                f"run directory {run.path} holds a {name!r} run, expected {task!r}",
                f"use a run trained with `rnnkit train {task}`",
            )
        missing = [n for n in ("config.json", *need) if not (run.path / n).exists()]
        if missing:
            raise RunDirError(
                f"run directory {run.path} is incomplete: missing {', '.join(missing)}",
                "the training may have been interrupted before its first save; train again",
            )
        return run

    @classmethod
    def task_of(cls, path: str | Path) -> str:
        """The task named in a run directory's run.json (the rest may still be missing)."""
        return cls(path).task

    @property
    def task(self) -> str:
        """The task named in run.json (a RunDirError for a missing or malformed one)."""
        hint = "pass the directory that `rnnkit train` wrote (its --out)"
        if not self.path.is_dir():
            raise RunDirError(f"run directory not found: {self.path}", hint)
        if not (self.path / "run.json").exists() and not (self.path / "run.json").is_symlink():
            raise RunDirError(f"not an rnnkit run directory (no run.json): {self.path}", hint)
        name = self.read_json("run.json", dict).get("task")
        if not isinstance(name, str) or not name:
            raise RunDirError(
                f"{self.path / 'run.json'} names no task (its 'task' is {name!r})",
                "the file was changed after training; restore it, or train again",
            )
        return name

    def file(self, name: str | Path) -> Path:
        """A file of the run, for reading: a RunDirError if it is missing, a symlink (a run
        from elsewhere could point it anywhere) or not a regular file."""
        path = self.inside(name)
        if not path.exists():
            raise RunDirError(
                f"{path} is missing",
                "the run is incomplete or was changed after training; train again",
            )
        if not path.is_file():
            raise RunDirError(f"{path} is not a regular file", "restore it, or train again")
        return path

    def read_text(self, name: str | Path) -> str:
        path = self.file(name)
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise RunDirError(f"{path} is not UTF-8 text: {err.reason}") from None

    def read_json(self, name: str | Path, kind: type | None = None):
        """The JSON content of a run file; ``kind`` (dict or list): the type it must have."""
        path = self.file(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunDirError(
                f"{path} is not valid JSON: {err}",
                "the file is truncated or was changed after training; restore it, or train again",
            ) from None
        if kind is not None and not isinstance(data, kind):
            raise RunDirError(
                f"{path} must hold a JSON {'object' if kind is dict else 'array'}, got "
                f"{type(data).__name__}",
                "the file was changed after training; restore it, or train again",
            )
        return data

    def read_records(self, name: str = "metrics.jsonl") -> list[dict]:
        """The records of a log, a JSON object with an integer "step" a line; other lines (one a
        kill cut short, or a changed file's) are skipped. A missing log is empty."""
        if not (self.path / name).exists() and not (self.path / name).is_symlink():
            return []
        records = []
        for line in self.read_text(name).splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and type(record.get("step")) is int:
                records.append(record)
        return records

    def load_model(self, model: torch.nn.Module, name: str = MODEL) -> torch.nn.Module:
        """``model`` with the parameters of ``name`` (the best, or LAST)."""
        if name == LAST and not (self.path / LAST).exists():
            raise RunDirError(
                f"run {self.path} keeps no last parameters ({LAST} is missing)",
                "runs trained before rnnkit kept the best apart, and tasks trained outside the "
                "loop (word2vec, statistical forecasts), keep one set: drop --last",
            )
        try:
            tensors = load_file(self.file(name))
        except (SafetensorError, OSError) as err:
            raise RunDirError(
                f"{self.path / name} could not be read: {err}",
                "the file is truncated or corrupted; train again",
            ) from None
        try:
            mismatch = model.load_state_dict(tensors, strict=False)
        except RuntimeError as err:  # a tensor of another shape
            raise RunDirError(
                f"{self.path / name} does not fit the model described by config.json: "
                + str(err).splitlines()[-1].strip(),
                "config.json or the weights were changed after training",
            ) from None
        if mismatch.missing_keys or mismatch.unexpected_keys:
            raise RunDirError(
                f"{self.path / name} does not fit the model in config.json: "
                f"missing {mismatch.missing_keys}, unexpected {mismatch.unexpected_keys}"
            )
        return model
