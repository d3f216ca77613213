"""The task contract: what every application declares, and train / resume / load / evaluate
written once for all of them.

A task is a subclass of `Task` in one file (under ``rnnkit/tasks/`` it is found by itself;
anywhere else, importing the file registers it). It declares:

    name, description           `rnnkit train NAME`, `rnnkit tasks`
    Config                      a dataclass of sections (data, model, ..., train: a TrainConfig)
    files                       what it saves in a run besides run.json, config.json, weights
    prepare(config, run, data)  vocabularies and data: fitted on the data for a new run, read
                                back from the run's files otherwise; data=False skips the corpus
    saved(setup)                {file name: text} for ``files``, written when a run starts
    build_model(config, setup)  the nn.Module, from the config and the vocabularies alone
    loop(config, setup, device, rank, world)
                                the TaskLoop the trainer runs: the step, metrics, carried state
    score(loaded)               the metrics of `rnnkit evaluate`
    commands                    its extra commands (`rnnkit sample`, `rnnkit translate`, ...)
    api                         its calls in Python (`rnnkit.load(RUN).generate(...)`)
    report(loaded)              its sections of `rnnkit report`
    fit_outside(model, config, setup, run, progress)
                                optional: train with another library (gensim's word2vec)
                                instead of the trainer; save the model, return the metrics

    new run:    prepare -> build_model, loop -> RunDir.create + saved files -> Trainer.fit
    resume:     RunDir.open -> config.json -> prepare(run) -> build_model, loop -> Trainer.fit
    load:       RunDir.open -> config.json -> prepare(run, data=False) -> build_model + weights
                (the best by the validation metric; ``weights="last"``, or inside
                ``using_weights("last")``, the last)
    evaluate:   load -> evaluation overrides (`evaluation_keys`) -> score

The CLI and the report know tasks only through this class.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rnnkit.config import build, to_dict
from rnnkit.data.text import file_identity
from rnnkit.errors import DataError, RnnkitError, RunDirError
from rnnkit.run import LAST, MODEL, RunDir
from rnnkit.training import TaskLoop, Trainer, distributed, resolve_device

__all__ = ["Task", "Command", "Loaded", "arg", "whole", "finite", "using_weights"]

INPUTS = "inputs.json"  # {config key: {path, size, sha256}} of the data files a run read
WEIGHTS = {"best": MODEL, "last": LAST}
_weights = contextvars.ContextVar("rnnkit_weights", default="best")


@contextlib.contextmanager
def using_weights(which: str):
    """Within the block, `Task.load` reads the run's ``which`` parameters ("best" or "last")
    unless told otherwise: how `--last` reaches every command of every task."""
    if which not in WEIGHTS:
        raise RnnkitError(f"weights must be 'best' or 'last', got {which!r}")
    token = _weights.set(which)
    try:
        yield
    finally:
        _weights.reset(token)


@dataclass(frozen=True)
class Arg:
    """One argparse argument: ``parser.add_argument(*flags, **options)``."""

    flags: tuple[str, ...]
    options: dict = field(default_factory=dict)


def arg(*flags: str, **options) -> Arg:
    return Arg(flags, options)


def whole(low: int = 0, high: int = 10**9):
    """An argparse type: an integer in [low, high], else a message that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value

    return parse


def finite(low: float = 0.0, high: float = 1e6):
    """An argparse type: a finite number in [low, high] (NaN and infinities refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be a number in [{low:g}, {high:g}], got {text}")
        return value

    return parse


@dataclass(frozen=True)
class Command:
    """An extra command of a task: ``rnnkit NAME RUN [args]``.

    ``name`` may have two words (``"inspect gradients"``: a sub-command). ``method`` names the
    task's method that runs it, ``method(args) -> exit status``, with the parsed arguments
    (``args.run`` is the run directory). A command with ``needs_run=False`` takes no run
    directory; it runs on the one task that declares it.
    """

    name: str
    help: str
    method: str
    args: tuple[Arg, ...] = ()
    needs_run: bool = True
    run_help: str = "run directory"


@dataclass
class Loaded:
    """A trained run rebuilt from its directory alone: what `Task.load` returns."""

    task: Task
    run: RunDir
    config: Any
    setup: Any  # what prepare(config, run, data=False) returned: vocabularies, tokenizers...
    model: nn.Module
    allow_changed_data: bool = False  # check_inputs only checks that the files exist
    weights: str = "best"  # which parameters: the best by the validation metric, or the last

    def check_inputs(self) -> None:
        """Call before reading the run's data files: `Task.verify_inputs`."""
        self.task.verify_inputs(self.run, self.config, self.allow_changed_data)


class Task:
    """The base of every task (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type]
    files: ClassVar[tuple[str, ...]] = ()
    commands: ClassVar[tuple[Command, ...]] = ()
    # the calls of `rnnkit.load(RUN)` ({call: method}); each method takes the Loaded run first
    api: ClassVar[dict[str, str]] = {}
    # config keys `rnnkit evaluate RUN key=value` may change: settings of the evaluation alone
    # (a dotted prefix ending in "." takes a whole section)
    evaluation_keys: ClassVar[tuple[str, ...]] = ("eval.", "decode.", "data.batch_size")
    # the held-out splits `score(loaded, split=...)` takes (`rnnkit evaluate RUN split=val`);
    # empty: the task scores one fixed set
    splits: ClassVar[tuple[str, ...]] = ()
    test_after_training: ClassVar[bool] = False  # add score() to the final metrics.json

    registry: ClassVar[dict[str, type[Task]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):  # a concrete task; a later definition replaces
            Task.registry[cls.name] = cls

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # ------------------------------------------------------------------------- declared
    def prepare(self, config, run: RunDir | None = None, data: bool = True) -> Any:
        """Vocabularies and data (see the module docstring). Default: nothing."""
        return None

    def saved(self, setup) -> dict[str, str]:
        """The task's files of a new run, ``{name: text}``, one per name in ``files``."""
        return {}

    def build_model(self, config, setup) -> nn.Module:
        raise NotImplementedError

    def loop(self, config, setup, device: torch.device, rank: int, world: int) -> TaskLoop:
        raise NotImplementedError

    def score(self, loaded: Loaded, **options) -> dict:
        """The metrics of `rnnkit evaluate`; default: the loop's held-out evaluation."""
        setup = self.prepare(loaded.config, loaded.run)
        return self.loop(loaded.config, setup, _device_of(loaded.model), 0, 1).evaluate(
            loaded.model
        )

    def after_training(self, loaded: Loaded) -> dict:
        """Run once at the end of training, with the best parameters, before the test metrics
        (rank 0): write what using the run needs besides the weights (seq2seq: its confidence
        calibration); return metrics for metrics.json. Default: nothing."""
        return {}

    def export_graph(self, loaded: Loaded):
        """What `rnnkit export` writes: a `rnnkit.export.Graph` of the model with its state as
        plain tensors. Default: the task has no export yet."""
        from rnnkit.export import ExportError

        raise ExportError(
            f"`rnnkit export` is not available for a {self.name!r} run yet",
            "use rnnkit.load(RUN).module in Python",
        )

    def summary(self, config, setup, model: nn.Module, world: int) -> str:
        """One line printed when training starts."""
        params = sum(p.numel() for p in model.parameters())
        return f"{params:,} parameters, {world} process(es)"

    def report(self, loaded: Loaded, **options) -> list[tuple[str, Callable[[], str]]]:
        """The task's sections of `rnnkit report`: [(heading, draw() -> HTML)]."""
        return []

    def inputs(self, config) -> dict[str, str]:
        """The user's data files this config makes the task read, ``{dotted key: path}``; a
        run records each one (`inputs.json`) and checks it before reading it again."""
        return {}

    def migrate(self, config: dict) -> dict:
        """A saved config.json brought up to date (renamed keys); default: as it is."""
        return config

    # ------------------------------------------------------------------------- written once
    def train(self, config, out: str | Path, progress: bool = True) -> dict:
        """Train into the new run directory ``out``; return the final metrics."""
        rank, world = distributed()
        if rank == 0:
            RunDir.check_new(out)  # before any large read
        setup = self.prepare(config)
        model, loop = self.build(config, setup, rank, world)
        run = None
        if rank == 0:
            read = {key: file_identity(path) for key, path in self.inputs(config).items()}
            for key, identity in read.items():  # absolute: the run works from any directory
                section, _, name = key.rpartition(".")
                setattr(attrgetter(section)(config) if section else config, name, identity["path"])
            run = RunDir.create(out, self.name, to_dict(config))
            if read:
                run.write_json(INPUTS, read)
            for name, text in self.saved(setup).items():
                run.write_text(name, text)
            if progress:
                print(f"{self.name}: {self.summary(config, setup, model, world)}")
        if world > 1:
            torch.distributed.barrier()  # the run directory exists before any rank reads it
            run = run or RunDir(out)
        return self._fit(model, loop, config, run, setup, progress, resume=False)

    def resume(
        self, path: str | Path, progress: bool = True, allow_changed_data: bool = False
    ) -> dict:
        """Continue an interrupted run from its newest complete checkpoint, exactly."""
        run = self.open_run(path, need=self.files)
        config = self.config_of(run)
        self.verify_inputs(run, config, allow_changed_data)
        rank, world = distributed()
        setup = self.prepare(config, run)
        model, loop = self.build(config, setup, rank, world)
        return self._fit(model, loop, config, run, setup, progress, resume=True)

    def load(self, path: str | Path, device: str = "cpu", weights: str | None = None) -> Loaded:
        """The trained model, config and vocabularies, rebuilt from a run directory alone;
        ``weights``: "best" (by the validation metric; the default) or "last"."""
        weights = weights or _weights.get()
        if weights not in WEIGHTS:
            raise RnnkitError(f"weights must be 'best' or 'last', got {weights!r}")
        run = self.open_run(path, need=(MODEL, *self.files))
        config = self.config_of(run)
        setup = self.prepare(config, run, data=False)
        model = run.load_model(self.build_model(config, setup), WEIGHTS[weights])
        return Loaded(self, run, config, setup, model.to(device).eval(), weights=weights)

    def evaluate(
        self,
        path: str | Path,
        allow_changed_data: bool = False,
        overrides: dict | None = None,
        weights: str | None = None,
        **options,
    ) -> dict:
        """The metrics of a saved run (`score`), on the data it was trained with (checked
        against what the run recorded, unless ``allow_changed_data``). ``overrides``:
        {dotted key: value} of evaluation settings (`evaluation_keys`: lengths, beam, batch
        size ...) applied to the run's config for this evaluation only."""
        loaded = self.load(path, weights=weights)
        overrides = dict(overrides or {})
        if "split" in overrides:
            split = str(overrides.pop("split"))
            if split not in self.splits:
                raise RnnkitError(
                    f"split={split}: a {self.name!r} run is evaluated on "
                    + (f"one of {', '.join(self.splits)}" if self.splits else "one fixed set"),
                    f"use split={self.splits[0]}" if self.splits else "drop split=",
                )
            options["split"] = split
        if overrides:
            loaded.config = self.evaluation_config(loaded.run, overrides)
        loaded.allow_changed_data = allow_changed_data
        loaded.check_inputs()
        return self.score(loaded, **options)

    def evaluation_config(self, run: RunDir, overrides: dict):
        """The run's config with ``overrides`` of evaluation settings; an error naming the
        keys that would change the model or its data instead."""
        from rnnkit.config import leaf_keys

        allowed = [
            k
            for k in leaf_keys(self.Config)
            if any(k == e or (e.endswith(".") and k.startswith(e)) for e in self.evaluation_keys)
        ]
        wrong = [k for k in overrides if k not in allowed]
        if wrong:
            takes = allowed + (["split"] if self.splits else [])
            raise RnnkitError(
                f"`rnnkit evaluate` cannot change {', '.join(wrong)} of a {self.name!r} run: "
                "only evaluation settings, not the model or its training data",
                f"keys it takes: {', '.join(takes) or 'none'}",
            )
        saved = self.migrate(run.read_json("config.json", dict))
        return build(self.Config, overrides=saved | overrides, where="rnnkit evaluate")

    def verify_inputs(self, run: RunDir, config, allow_changed: bool = False) -> None:
        """Raise unless every data file the config names is the one the run was trained on
        (same absolute path, size and SHA-256), so that a run directory from elsewhere cannot
        make rnnkit read some other file. ``allow_changed``: only check that each is a file."""
        expected = self.inputs(config)
        if not expected or allow_changed:
            return
        hint = "pass --allow-changed-data to read it anyway"
        if not (run.path / INPUTS).is_file():
            raise RunDirError(
                f"run {run.path} does not record the data it was trained on (no {INPUTS}), "
                f"so rnnkit will not read {', '.join(map(str, expected.values()))}",
                hint,
            )
        recorded = run.read_json(INPUTS)
        for key, path in expected.items():
            entry = recorded.get(key) if isinstance(recorded, dict) else None
            if not isinstance(entry, dict) or not {"path", "size", "sha256"} <= set(entry):
                raise RunDirError(f"{run.path / INPUTS} has no valid record of {key}", hint)
            where = Path(path).expanduser().resolve()
            if str(where) != entry["path"]:
                raise RunDirError(
                    f"{run.path / 'config.json'} names {key}={path}, but the run was trained "
                    f"on {entry['path']}",
                    hint,
                )
            if not (where.is_file() or where.is_dir()):
                raise DataError(f"the data this run was trained on is gone: {where}", hint)
            now = file_identity(where)
            if (now["size"], now["sha256"]) != (entry["size"], entry["sha256"]):
                raise DataError(
                    f"{where} changed since training: {now['size']:,} bytes, SHA-256 "
                    f"{now['sha256'][:12]}..., expected {entry['size']:,} bytes, "
                    f"{entry['sha256'][:12]}...",
                    hint,
                )

    def open_run(self, path: str | Path, need=(MODEL,)) -> RunDir:
        return RunDir.open(path, self.name, need=need)

    def config_of(self, run: RunDir):
        saved = run.read_json("config.json")
        if not isinstance(saved, dict):
            raise RunDirError(
                f"{run.path / 'config.json'} must hold a mapping of sections, got "
                f"{type(saved).__name__}",
                "the file was changed after training; restore it, or train again",
            )
        where = str(run.path / "config.json")
        return build(self.Config, overrides=self.migrate(saved), where=where)

    def command(self, name: str) -> Command:
        """The task's command ``name``, or an error that lists the ones it has."""
        for c in self.commands:
            if c.name == name:
                return c
        have = ", ".join(c.name for c in self.commands) or "none"
        raise RnnkitError(
            f"`rnnkit {name}` does not apply to a {self.name!r} run (its task's commands: {have})",
            "see `rnnkit tasks` for what each task offers",
        )

    def build(self, config, setup=None, rank: int = 0, world: int = 1):
        """The model (seeded by train.seed, on train.device) and the loop for ``config``;
        ``setup``: what `prepare` returned (default: prepare(config) now)."""
        if setup is None:
            setup = self.prepare(config)
        device = resolve_device(config.train.device)
        torch.manual_seed(config.train.seed)
        model = self.build_model(config, setup).to(device)
        return model, self.loop(config, setup, device, rank, world)

    def _fit(self, model, loop, config, run, setup, progress: bool, resume: bool) -> dict:
        if run is not None and hasattr(self, "fit_outside"):
            with run.lock():
                return self.fit_outside(model, config, setup, run, progress)

        def final(model):
            loaded = Loaded(self, run, config, setup, model)
            out = self.after_training(loaded)
            return out | self.score(loaded) if self.test_after_training else out

        callbacks = tuple(getattr(loop, "callbacks", ()))
        trainer = Trainer(model, loop, config.train, run, progress=progress, callbacks=callbacks)
        with run.lock() if run is not None and trainer.rank == 0 else contextlib.nullcontext():
            return trainer.fit(resume=resume, final=final)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
