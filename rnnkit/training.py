"""One readable training loop for every task.

    for step in steps:
        lr        = schedule(step)                         warm-up, then constant/cosine/step
        loss      = task.train_step(model, micro) / k       for each of k accumulated micro-batches
        backward  (through the DistributedDataParallel wrapper when several processes train)
        clip      by norm or by value; the gradient norm is logged every step
        guard     a non-finite loss or gradient skips the step; too many in a row stop the run
        optimizer step
        evaluate  every eval_every steps: log, keep the best, early stopping, reduce-on-plateau
        save      every checkpoint_every steps: the full state, atomically (rnnkit.checkpoint)

The run keeps the best parameters by the loop's validation metric as model.safetensors (what
`evaluate`, `sample`, `translate`, ... use) and the last ones as last.safetensors; the test
metrics at the end are those of the best. Every logged record carries ``train_seconds`` (time
in training steps, evaluation and saving excluded) and ``wall_seconds``, both counted across
resumes from the checkpoint's values.

The task supplies a `TaskLoop`: ``train_step(model, micro) -> loss`` owns its batches and any
state carried across them (truncated BPTT), ``evaluate(model) -> metrics``, and
``state_dict()/load_state_dict()`` for what it carries, so that a resumed run continues exactly.
The trainer knows nothing else about the task.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rnnkit import checkpoint
from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError, RnnkitError, RunDirError
from rnnkit.run import LAST, RunDir


@dataclass
class TrainConfig:
    steps: int = 2000  # optimizer steps
    optimizer: str = "adam"  # adam | adamw | amsgrad | sgd
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.0  # L2 (adam, sgd) or decoupled (adamw) weight decay
    momentum: float = 0.9  # sgd only
    schedule: str = "constant"  # constant | cosine | step | plateau
    schedule_clock: str = "steps"  # steps | time: cosine progress = train_seconds / max_minutes
    warmup: int = 0  # steps of linear warm-up from 0 to lr
    min_lr: float = 0.0  # the floor of cosine and plateau
    step_size: int = 1000  # step schedule: multiply lr by gamma every step_size steps
    gamma: float = 0.5  # decay factor of the step and plateau schedules
    patience: int = 2  # plateau: evaluations without improvement before lr *= gamma
    clip: float = 1.0  # gradient clipping threshold (0 disables; the norm is still logged)
    clip_mode: str = "norm"  # norm (rescale the whole gradient) | value (clamp each entry)
    accumulate: int = 1  # micro-batches accumulated into one optimizer step
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (CUDA only, with a grad scaler)
    eval_every: int = 250  # evaluate every N steps, and at the end
    early_stop: int = 0  # stop after N evaluations without improvement (0: never)
    checkpoint_every: int = 250  # save the full training state every N steps, and at the end
    keep_last: int = 2  # checkpoints kept besides the best one
    max_bad_steps: int = 10  # non-finite steps in a row that stop the run
    seed: int = 0  # seeds initialisation, dropout and data order
    max_minutes: float = 0.0  # stop after this much training time (0: no limit), as at `steps`;
    # training time is train_seconds: the steps alone, evaluation and saving excluded
    device: str = "auto"  # auto | cpu | cuda

    def validate(self, prefix: str = "train.") -> None:
        choice(prefix + "optimizer", self.optimizer, ("adam", "adamw", "amsgrad", "sgd"))
        choice(prefix + "schedule", self.schedule, ("constant", "cosine", "step", "plateau"))
        choice(prefix + "schedule_clock", self.schedule_clock, ("steps", "time"))
        choice(prefix + "clip_mode", self.clip_mode, ("norm", "value"))
        choice(prefix + "precision", self.precision, ("fp32", "bf16", "fp16"))
        choice(prefix + "device", self.device, ("auto", "cpu", "cuda"))
        positive(self, "steps", "lr", "accumulate", "step_size", "keep_last", prefix=prefix)
        positive(self, "max_bad_steps", "gamma", prefix=prefix)
        positive(
            self,
            "max_minutes",
            "warmup",
            "clip",
            "eval_every",
            "early_stop",
            "checkpoint_every",
            "weight_decay",
            "min_lr",
            "patience",
            prefix=prefix,
            allow_zero=True,
        )
        if self.schedule_clock == "time" and not (self.max_minutes and self.schedule == "cosine"):
            raise ConfigError(
                f"config key '{prefix}schedule_clock' = time needs {prefix}schedule=cosine and "
                f"{prefix}max_minutes > 0, got schedule={self.schedule}, "
                f"max_minutes={self.max_minutes:g}",
                f"set {prefix}max_minutes (the decay ends there), or {prefix}schedule_clock=steps",
            )


@dataclass
class TBPTTConfig:
    k1: int = 100  # steps between parameter updates: the length of each new window
    k2: int = 0  # steps gradients flow back through the recurrence (0: same as k1)

    def validate(self, prefix: str = "tbptt.") -> None:
        positive(self, "k1", prefix=prefix)
        positive(self, "k2", prefix=prefix, allow_zero=True)


class TaskLoop(Protocol):
    metric: str  # the evaluation metric that decides the best model and early stopping
    higher_is_better: bool

    def train_step(self, model: nn.Module, micro: int) -> Tensor: ...
    def evaluate(self, model: nn.Module) -> dict: ...
    def state_dict(self) -> dict[str, Tensor]: ...
    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda, but torch sees no CUDA device", "use device=cpu or auto")
    return torch.device(name)


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """adam, adamw (decoupled weight decay), amsgrad (Adam with the running maximum of the
    second moment, Reddi et al. 2018: its step cannot grow when gradients shrink near a
    solution; on NTM copy it did not stop the relapses, see README), or sgd with momentum."""
    c = config
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=c.lr, weight_decay=c.weight_decay, amsgrad=c.optimizer == "amsgrad")


def learning_rate(
    c: TrainConfig, step: int, plateau_scale: float = 1.0, seconds: float = 0.0
) -> float:
    """The learning rate of optimizer step ``step`` (0-based), ``seconds`` of training done.

    warm-up:  lr * (step + 1) / warmup                        for step < warmup
    cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2  p = progress after warm-up
    step:     lr * gamma ** (step // step_size)
    plateau:  lr * plateau_scale (decayed by gamma on a plateau), at least min_lr

    With ``schedule_clock = time`` the cosine's progress is p = seconds / (60 max_minutes): the
    decay ends when the time does, however many steps that is (for comparisons at equal time;
    the learning rate then depends on the machine's speed, so such a run is not bit-for-bit
    repeatable), and the warm-up scales it for the first ``warmup`` steps.
    """
    if c.schedule == "cosine" and c.schedule_clock == "time":
        p = min(1.0, seconds / (60 * c.max_minutes))
        lr = c.min_lr + (c.lr - c.min_lr) * (1 + math.cos(math.pi * p)) / 2
        return lr * min(1.0, (step + 1) / c.warmup) if c.warmup else lr
    if step < c.warmup:
        return c.lr * (step + 1) / c.warmup
    if c.schedule == "cosine":
        p = (step - c.warmup) / max(1, c.steps - c.warmup)
        return c.min_lr + (c.lr - c.min_lr) * (1 + math.cos(math.pi * p)) / 2
    if c.schedule == "step":
        return c.lr * c.gamma ** (step // c.step_size)
    if c.schedule == "plateau":
        return max(c.min_lr, c.lr * plateau_scale)
    return c.lr


class Trainer:
    """Runs a `TaskLoop` under a `TrainConfig`, writing into a `RunDir` (rank 0 only)."""

    def __init__(
        self,
        model: nn.Module,
        loop: TaskLoop,
        config: TrainConfig,
        run: RunDir | None = None,
        *,
        progress: bool = True,
        callbacks: tuple = (),
    ):
        self.model, self.loop, self.config, self.callbacks = model, loop, config, callbacks
        self.rank, self.world = distributed()
        self.run_dir = run  # every rank reads checkpoints from it; only rank 0 writes
        self.run = run if self.rank == 0 else None
        self.progress = progress and self.rank == 0
        self.device = next(model.parameters()).device
        self.optimizer = make_optimizer(config, model.parameters())
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision=fp16 needs a CUDA device", "use bf16 or fp32")
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.ddp = self._wrap(model)
        # counters that a checkpoint carries
        self.step, self.best, self.best_step = 0, None, 0
        self.evals_without_gain, self.plateau_scale, self.skipped = 0, 1.0, 0
        self.train_seconds, self.wall_seconds = 0.0, 0.0  # across resumes
        self.metrics: dict = {}  # the last evaluation
        self.best_metrics: dict = {}  # the evaluation of the best parameters
        self._stop_requested = False

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # ------------------------------------------------------------------------- the loop
    def fit(self, resume: bool = False, final=None) -> dict:
        """Train to ``config.steps`` (from the newest checkpoint with ``resume``); return the
        metrics. ``final(model) -> dict``: metrics added at the end, before metrics.json is
        written (a test-set evaluation, say); rank 0 only."""
        c = self.config
        if resume:
            self.restore()
        tb = self._tensorboard()
        bar = tqdm(
            total=c.steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            mininterval=1.0,
            dynamic_ncols=True,
        )
        first, bad_in_row = self.step, 0
        trained_before, self._wall_start = self.train_seconds, self.wall_seconds
        self._session_start = time.perf_counter()
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        try:
            while self.step < c.steps and not self._stop_requested:
                lr = learning_rate(c, self.step, self.plateau_scale, self.train_seconds)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                began = time.perf_counter()
                loss, grad_norm = self._forward_backward()
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    self.skipped, bad_in_row = self.skipped + 1, bad_in_row + 1
                    self._log({"step": self.step + 1, "skipped": "non-finite", "loss": loss})
                    if bad_in_row >= c.max_bad_steps:
                        saved = self.run_dir is not None and checkpoint.available(
                            self.checkpoint_dir_of(self.run_dir)
                        )
                        raise RnnkitError(
                            f"training stopped: {bad_in_row} steps in a row had a non-finite "
                            f"loss or gradient (the last at step {self.step + 1}); "
                            + (
                                "the last good checkpoint is intact"
                                if saved
                                else "no checkpoint had been saved yet"
                            ),
                            "lower train.lr, or clip gradients (train.clip=1.0)",
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1  # the batch is consumed, the parameters are unchanged
                    continue
                bad_in_row = 0
                self._optimizer_step()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.train_seconds += time.perf_counter() - began
                self.step += 1
                record = {"step": self.step, "loss": loss, "grad_norm": grad_norm, "lr": lr}
                rate = (self.step - first) / max(1e-9, self.train_seconds - trained_before)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", steps_s=f"{rate:.2f}", refresh=False)
                improved = False
                out_of_time = c.max_minutes and self.train_seconds >= 60 * c.max_minutes
                last = self.step == c.steps or out_of_time
                if (c.eval_every and self.step % c.eval_every == 0) or last:
                    metrics, improved = self._evaluate(bar)
                    record |= metrics
                self._log(record | self._clock(), tb)
                for cb in self.callbacks:
                    cb(self, record)
                if improved or (c.checkpoint_every and self.step % c.checkpoint_every == 0):
                    self.save_checkpoint()
                if out_of_time:
                    if self.progress:
                        bar.write(f"time limit: {c.max_minutes:g} minutes of training")
                    self.metrics["stopped"] = "time limit"
                    break
                if self._should_stop_early():
                    if self.progress:
                        bar.write(f"early stop: no gain in {c.early_stop} evaluations")
                    break
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
            if tb is not None:
                tb.close()
        self.save_checkpoint()
        metrics = self.final_metrics()
        if self.run is not None:
            self.run.save_model(self.model, LAST)
            if self.best is None:  # no evaluation yet (interrupted early): the last is all
                self.run.save_model(self.model)
            else:  # the best parameters, for the test metrics and every later use
                self.run.load_model(self.model)
            if final is not None:
                metrics |= final(self.model)
            self.run.write_json("metrics.json", metrics)
        return metrics

    def final_metrics(self) -> dict:
        """The evaluation of the best parameters, which the run keeps as its model (the last
        evaluation under "last"), with the step counts and clocks."""
        out = dict(self.best_metrics or self.metrics)
        out |= {"step": self.step, "best": self.best, "best_step": self.best_step}
        out |= {"weights": "best" if self.best is not None else "last"} | self._clock()
        out |= {"last": self.metrics, "skipped_steps": self.skipped}
        if self._stop_requested:
            out["interrupted"] = True
        if "stopped" in self.metrics:
            out["stopped"] = self.metrics["stopped"]
        return out

    def _clock(self) -> dict:
        """Elapsed seconds so far: training steps alone, and wall time (both across resumes)."""
        wall = self._wall_start + time.perf_counter() - self._session_start
        self.wall_seconds = max(wall, self.train_seconds)
        return {
            "train_seconds": round(self.train_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
        }

    def _forward_backward(self) -> tuple[float, float]:
        c = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for j in range(c.accumulate):
            last = j == c.accumulate - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else self.ddp.no_sync()
            with sync, self._autocast():
                loss = self.loop.train_step(self.ddp, self.step * c.accumulate + j)
            scaled = loss / c.accumulate
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss.item() / c.accumulate
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params]).item()
        if c.clip > 0 and math.isfinite(grad_norm):
            if c.clip_mode == "norm":
                torch.nn.utils.clip_grads_with_norm_(params, c.clip, torch.tensor(grad_norm))
            else:
                torch.nn.utils.clip_grad_value_(params, c.clip)
        return total, grad_norm

    def _optimizer_step(self) -> None:
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def _autocast(self):
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _evaluate(self, bar) -> tuple[dict, bool]:
        with torch.no_grad():
            metrics = self.loop.evaluate(self.model)
        self.model.train()
        value = metrics[self.loop.metric]
        better = self.best is None or (
            value > self.best if self.loop.higher_is_better else value < self.best
        )
        if better:
            self.best, self.best_step, self.evals_without_gain = value, self.step, 0
        else:
            self.evals_without_gain += 1
            c = self.config
            if c.schedule == "plateau" and self.evals_without_gain % max(1, c.patience) == 0:
                self.plateau_scale *= c.gamma
        self.metrics = {"step": self.step, **metrics}
        if better:
            self.best_metrics = dict(self.metrics)
            if self.run is not None:  # the run's model is the best so far
                self.run.save_model(self.model)
        text = "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
        )
        if self.progress:
            bar.write(f"eval  step {self.step}  {text}" + ("  (best)" if better else ""))
        return metrics, better

    def _should_stop_early(self) -> bool:
        return bool(self.config.early_stop) and self.evals_without_gain >= self.config.early_stop

    def _on_interrupt(self, signum, frame) -> None:
        if self._stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._stop_requested = True

    # ------------------------------------------------------------------------- logging
    def _tensorboard(self):
        if self.run is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.run.path / "tensorboard"))

    def _log(self, record: dict, tb=None) -> None:
        if self.run is None:
            return
        self.run.log(record)
        if tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    tb.add_scalar(key, value, record["step"])

    # ------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self):
        return self.run.inside("checkpoints") if self.run is not None else None

    @staticmethod
    def checkpoint_dir_of(run: RunDir):
        return run.path / "checkpoints"

    def save_checkpoint(self) -> None:
        """Save the full state at ``self.step`` (once per step) and rotate old checkpoints."""
        if self.run is None or self.step in checkpoint.available(self.checkpoint_dir):
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"loop.{k}": v for k, v in self.loop.state_dict().items()}
        state = {
            "step": self.step,
            "best": self.best,
            "best_step": self.best_step,
            "evals_without_gain": self.evals_without_gain,
            "plateau_scale": self.plateau_scale,
            "skipped": self.skipped,
            "metrics": self.metrics,
            "best_metrics": self.best_metrics,
            "train_seconds": self.train_seconds,
            "wall_seconds": self._clock()["wall_seconds"],
            "optimizer": checkpoint.split_state_dict("optim", self.optimizer.state_dict(), tensors),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "rng": checkpoint.rng_state(tensors),
        }
        checkpoint.save(self.checkpoint_dir, self.step, tensors, state)
        checkpoint.rotate(self.checkpoint_dir, self.config.keep_last, keep={self.best_step})

    def restore(self) -> None:
        """Continue from the newest complete checkpoint of ``run``."""
        if self.run_dir is None:
            raise RnnkitError("resume needs the run directory")
        root = self.run_dir.path / "checkpoints"
        if not checkpoint.available(root):  # killed before the first save: start over, exactly
            if self.run is not None:
                self.run.truncate_log(0)
            return
        tensors, state = checkpoint.load(self.run_dir.inside("checkpoints"))
        try:
            self._restore_from(tensors, state)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            newest = root / f"step-{checkpoint.available(root)[-1]:07d}"
            raise RunDirError(
                f"checkpoint {newest} does not fit this run ({type(err).__name__}: {err})",
                "it is corrupted or from another run; delete that directory to resume from an "
                "older checkpoint",
            ) from None
        if self.run is not None:
            self.run.truncate_log(self.step)

    def _restore_from(self, tensors: dict, state: dict) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"state.json holds a {type(state).__name__}, not an object")

        def part(prefix):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        self.loop.load_state_dict(part("loop."))
        self.optimizer.load_state_dict(checkpoint.join_state_dict(state["optimizer"], tensors))
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"], tensors)
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        self.evals_without_gain = state["evals_without_gain"]
        self.plateau_scale, self.skipped = state["plateau_scale"], state["skipped"]
        self.metrics = state["metrics"]
        self.best_metrics = state.get("best_metrics", {})  # absent in older checkpoints
        self.train_seconds = state.get("train_seconds", 0.0)
        self.wall_seconds = state.get("wall_seconds", 0.0)
        counts = (self.step, self.best_step, self.evals_without_gain, self.skipped)
        if not all(isinstance(n, int) and n >= 0 for n in counts):
            raise TypeError("its step counters are not counts")
        clocks = (self.train_seconds, self.wall_seconds)
        if not all(isinstance(s, int | float) and s >= 0 for s in clocks):
            raise TypeError("its clocks are not durations")
        if not isinstance(self.metrics, dict) or not isinstance(self.best_metrics, dict):
            raise TypeError("its metrics are not an object")


class TruncatedBPTT:
    """Truncated backpropagation through time over b parallel streams, as a training mode.

    Each update consumes k1 new steps of every stream and lets gradients flow back at most k2
    steps through the recurrence (Williams and Peng 1990). The state is carried from update to
    update, detached, so no gradient crosses the truncation point:

      k2 == k1   run the new window from the carried state
      k2 >  k1   re-run the k2 - k1 steps before the window as context (its loss not counted),
                 so gradients of the new steps reach k2 steps back
      k2 <  k1   run the window in chunks of k2, detaching the state between chunks

    x, y: (b, n) input and target streams. ``loss(model, k, loss_fn)`` is the loss of window k
    (k = 0 restarts the streams); ``model(x, state) -> (out, state)``,
    ``loss_fn(out (b, t, ...), y (b, t)) -> mean loss``.
    """

    def __init__(self, x: Tensor, y: Tensor, config: TBPTTConfig):
        self.x, self.y = x, y
        self.k1, self.k2 = config.k1, config.k2 or config.k1
        self.state = None  # the detached state at the start of the next window's context
        if len(self) == 0:
            raise ConfigError(
                f"tbptt.k1={self.k1} is longer than the training streams ({x.size(1)} steps)",
                "lower tbptt.k1 or the batch size",
            )

    def __len__(self) -> int:
        return self.x.size(1) // self.k1

    def loss(self, model, k: int, loss_fn) -> Tensor:
        if k == 0:
            self.state = None
        end = (k + 1) * self.k1
        begin = end - self.k1  # the new steps, whose loss counts
        if self.k2 >= self.k1:
            start = max(0, end - self.k2)  # context starts where the carried state was taken
            mid = end - (self.k2 - self.k1)  # where the next window's context starts
            bounds, keep_at = [start, max(start, mid), end], max(start, mid)
        else:
            start = begin
            bounds = list(range(begin, end, self.k2)) + [end]
            keep_at = end
        outs, state, carried = [], self.state, None
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b == a:
                continue
            if self.k2 < self.k1:
                state = _detach(state)
            out, state = model(self.x[:, a:b], state)
            outs.append(out)
            if b == keep_at:
                carried = _detach(state)
        if keep_at == start:  # the first windows: no context yet
            carried = None
        self.state = carried
        out = torch.cat(outs, dim=1)[:, begin - start :]  # (b, k1, ...)
        return loss_fn(out, self.y[:, begin:end])

    def state_dict(self) -> dict[str, Tensor]:
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"carry.{i}": t for i, t in enumerate(parts)} | {
            "carry.tuple": torch.tensor(isinstance(self.state, tuple))
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:
            self.state = None
            return
        parts = tuple(state[f"carry.{i}"] for i in range(len(state) - 1))
        self.state = parts if bool(state["carry.tuple"]) else parts[0]


def _detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
