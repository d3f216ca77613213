"""A run directory is a trust boundary. Every file of a trained run is replaced in turn by a
truncated copy, invalid JSON, JSON of the wrong structure, a symlink to a file outside the run,
a directory and an empty file; then every command that reads a run is run on it. Each ends in
exit 0 or one message with exit 2 (never a traceback), a file a command needs is named in its
message, and no byte outside the run changes.

The default run covers evaluate, sample and resume on every case; `report` and `inspect`
(which draw figures) run on every case under ``-m slow``, on a sample by default.
"""

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from rnnkit.cli import main

TEXT = "the quick brown fox jumps over the lazy dog. " * 300
TRAIN = [
    "data.batch_size=4",
    "model.hidden=16",
    "model.layers=1",
    "model.embed=8",
    "tbptt.k1=16",
    "train.steps=4",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.device=cpu",
]
# the files each command must read: corrupting one of them must end in exit 2
NEEDS = {
    "evaluate": {"run.json", "config.json", "model.safetensors", "vocab.json", "inputs.json"},
    "sample": {"run.json", "config.json", "model.safetensors", "vocab.json"},
    "resume": {"run.json", "config.json", "vocab.json", "inputs.json"},
    "report": {"run.json", "config.json"},
    "inspect": {"run.json", "config.json", "model.safetensors", "vocab.json", "inputs.json"},
}
COMMANDS = {
    "evaluate": lambda run: ["evaluate", run],
    "sample": lambda run: ["sample", run, "--length", "5"],
    "resume": lambda run: ["resume", run, "--quiet"],
    "report": lambda run: ["report", run],
    "inspect": lambda run: ["inspect", "gradients", run, "--batch", "2"],
}


def corruptions(data: bytes, outside: Path):
    yield "truncated", lambda p: p.write_bytes(data[: len(data) // 2])
    yield "invalid-json", lambda p: p.write_text("{not json")
    wrong = {"task": 3, "chars": 5, "step": "x", "data": [], "train": 4, "data.path": 1}
    for name, value in [("list", [1]), ("string", "x"), ("null", None), ("wrong-types", wrong)]:
        yield name, lambda p, v=value: p.write_text(json.dumps(v))
    yield "symlink-out", lambda p: (p.unlink(), p.symlink_to(outside))
    yield "directory", lambda p: (p.unlink(), p.mkdir())
    yield "empty", lambda p: p.write_bytes(b"")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    run = root / "base"
    assert (
        main(["train", "charlm", "--quiet", "--out", str(run), f"data.path={corpus}", *TRAIN]) == 0
    )
    return run


def cases(run: Path):
    files = sorted(
        p.relative_to(run)
        for p in run.rglob("*")
        if p.is_file() and p.name != ".lock" and "tensorboard" not in p.parts
    )
    assert {"run.json", "config.json", "model.safetensors", "vocab.json", "inputs.json"} <= {
        str(f) for f in files
    }
    return files


def check(trained: Path, tmp_path: Path, command: str, slow_sample: int | None):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    failures, k = [], 0
    for rel in cases(trained):
        for name, corrupt in corruptions((trained / rel).read_bytes(), outside):
            k += 1
            if slow_sample and k % slow_sample:
                continue
            run = tmp_path / "run"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(trained, run, symlinks=True)
            corrupt(run / rel)
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main(COMMANDS[command](str(run)))
            except BaseException as exc:  # noqa: BLE001 - a traceback is the failure sought
                failures.append(f"{rel} {name}: {type(exc).__name__}: {exc}")
                continue
            message = err.getvalue()
            where = f"{rel} {name}: exit {code}: {message.strip()[-200:]}"
            if code not in (0, 2) or "Traceback" in message:
                failures.append(where)
            elif str(rel) in NEEDS[command] and (code != 2 or rel.name not in message):
                failures.append("not refused by name: " + where)
            if outside.read_text() != "precious\n":
                failures.append("changed a file outside the run: " + where)
                outside.write_text("precious\n")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("command", ["evaluate", "sample", "resume"])
def test_every_corrupted_file(trained, tmp_path, command):
    check(trained, tmp_path, command, None)


@pytest.mark.parametrize("command", ["report", "inspect"])
def test_every_corrupted_file_drawing_sampled(trained, tmp_path, command):
    check(trained, tmp_path, command, 13)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["report", "inspect"])
def test_every_corrupted_file_drawing(trained, tmp_path, command):
    check(trained, tmp_path, command, None)
