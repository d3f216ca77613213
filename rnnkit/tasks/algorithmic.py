"""Memory and long-range tasks: the NTM paper's copy, repeat copy, associative recall and priority
sort, and the adding, copy-memory and sequential-digits tests, each its own registered task.

Every task is the same machine with a different batch source (`rnnkit.data.sources`):

    batch_k  = generate(Generator(seed, rank, k))   batch k is fixed by (seed, k): exact resume
    y^       = model(x)                             NTM, or RNN / LSTM / GRU + linear (b, t, o)
    loss     = bits:  sum_{scored t, o} BCE(y^, y) / (b ln 2)    cost per sequence in bits
               mse:   mean_{scored t} (y^ - y)^2                 (adding)
               class: mean_{scored t} CE(y^, y)                   (copy memory, digits)

Evaluation uses fixed held-out batches (eval.seed), and again at each length of eval.lengths
(metrics named like ``bit_errors@40``) to measure length generalisation. The curriculum option
starts sequences at curriculum.start and lengthens them by curriculum.grow whenever the running
training loss falls below curriculum.threshold; its state is in the loop's state_dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data import sources
from rnnkit.data.algorithmic import Batch
from rnnkit.data.sources import Source
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.ntm import NTM
from rnnkit.models.sequence import SequenceModel
from rnnkit.tasks.algorithmic_config import (
    AddingConfig,
    CopyConfig,
    CopyMemoryConfig,
    DigitsConfig,
    ModelConfig,
    RecallConfig,
    RepeatCopyConfig,
    SortConfig,
)
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole

_RUNS = arg("runs", nargs="+", help="run directories of memory tasks")
_OUT = arg("--out", required=True, help="PNG file to write")
_LABELS = arg("--labels", help="comma-separated legend labels, one per run")


# ----------------------------------------------------------------------------- models
def build_model(m: ModelConfig, input_size: int, output_size: int) -> nn.Module:
    """The NTM (model.cell=ntm), or a recurrent stack with a read-out at every step."""
    if m.cell == "ntm":
        return NTM(
            input_size,
            output_size,
            hidden=m.hidden,
            locations=m.locations,
            word=m.word,
            read_heads=m.read_heads,
            write_heads=m.write_heads,
            shift_range=m.shift_range,
            controller=m.controller,
            memory_init=m.memory_init,
            output_clip=m.output_clip,
        )
    return SequenceModel(input_size, output_size, m)  # x (b, t, i) -> y (b, t, o)


# ----------------------------------------------------------------------------- losses, metrics
def loss_of(kind: str, out: Tensor, batch: Batch) -> Tensor:
    """The training loss of one batch (module docstring); out (b, t, o)."""
    x, y, mask = batch
    if kind == "bits":
        nats = F.binary_cross_entropy_with_logits(out[mask], y[mask], reduction="sum")
        return nats / (x.size(0) * math.log(2))
    if kind == "mse":
        return F.mse_loss(out[mask], y[mask])
    return F.cross_entropy(out[mask], y[mask])  # (scored, classes) against (scored,)


@torch.no_grad()
def metrics_of(kind: str, model, batches: list[Batch], source) -> dict[str, float]:
    """Held-out metrics over ``batches``: per-sequence bits and bit errors, mse, or cross-entropy
    and accuracy (on `source.answer_mask`, e.g. only the recalled symbols of copy memory)."""
    model.eval()
    sums: dict[str, float] = {}
    n_seq = n_scored = n_answers = 0
    for batch in batches:
        out, _ = model(batch.x)
        _, y, mask = batch
        b = batch.x.size(0)
        n_seq, n_scored = n_seq + b, n_scored + int(mask.sum())
        if kind == "bits":
            add = {
                "cost_bits": loss_of(kind, out, batch).item() * b,
                "bit_errors": ((out[mask] > 0).float() != y[mask]).sum().item(),
            }
        elif kind == "mse":
            add = {"mse": F.mse_loss(out[mask], y[mask], reduction="sum").item()}
        else:
            answer = source.answer_mask(batch)
            n_answers += int(answer.sum())
            add = {
                "xent": F.cross_entropy(out[mask], y[mask], reduction="sum").item(),
                "accuracy": (out[answer].argmax(-1) == y[answer]).sum().item(),
            }
        for key, value in add.items():
            sums[key] = sums.get(key, 0.0) + value
    scale = {"cost_bits": n_seq, "bit_errors": n_seq, "mse": n_scored, "xent": n_scored}
    return {k: v / scale.get(k, max(1, n_answers)) for k, v in sums.items()}


def batch_seed(seed: int, rank: int, index: int) -> int:
    """One generator seed per (seed, process, batch index): batches never repeat or collide."""
    return (seed * 1009 + rank) * 2**32 + index


def _to(batch: Batch, device) -> Batch:
    return Batch(*(t.to(device) for t in batch))


# ----------------------------------------------------------------------------- the loop
class AlgorithmicLoop:
    """What the trainer runs: a fresh generated batch per micro-step, and the curriculum."""

    def __init__(self, task: AlgorithmicTask, config, device, rank: int = 0):
        self.task, self.config, self.device, self.rank = task, config, device, rank
        self.source = task.Source(config.data)
        self.metric, self.higher_is_better = task.metric, task.higher_is_better
        self.callbacks = (self.curriculum_step,)
        c = config.curriculum
        self.cap = c.start if c.enabled else None  # the current longest length
        self.running: float | None = None
        self.held_out = self.eval_batches(None)
        self.held_out_at = {n: self.eval_batches(n) for n in config.eval.length_list()}

    def eval_batches(self, length: int | None) -> list[Batch]:
        e, data = self.config.eval, self.source
        out = []
        for i in range(e.batches):
            g = torch.Generator().manual_seed(batch_seed(e.seed, 0, i))
            batch = data.held_out(e.batch_size, g, length)
            if batch is None:  # a fixed held-out set (digits): once is enough
                return [_to(b, self.device) for b in data.held_out_set(e.batch_size)]
            out.append(_to(batch, self.device))
        return out

    def train_step(self, model, micro: int) -> Tensor:
        c = self.config
        g = torch.Generator().manual_seed(batch_seed(c.train.seed, self.rank, micro))
        batch = _to(self.source.sample(c.data.batch_size, g, cap=self.cap), self.device)
        out, _ = model(batch.x)
        return loss_of(self.source.loss, out, batch)

    def evaluate(self, model) -> dict:
        kind, data = self.source.loss, self.source
        metrics = metrics_of(kind, model, self.held_out, data)
        for n, batches in self.held_out_at.items():
            at = metrics_of(kind, model, batches, data)
            metrics |= {f"{k}@{n}": v for k, v in at.items()}
        if self.cap is not None:
            metrics["curriculum_len"] = self.cap
        return metrics

    def curriculum_step(self, trainer, record: dict) -> None:
        """Trainer callback after each step: promote to longer sequences as the loss falls."""
        c = self.config.curriculum
        if self.cap is None or "loss" not in record:
            return
        loss = record["loss"]
        self.running = (
            loss if self.running is None else c.smoothing * self.running + (1 - c.smoothing) * loss
        )
        longest = self.source.longest()
        if self.running < c.threshold and self.cap < longest:
            self.cap = min(longest, self.cap + c.grow)
            self.running = None  # judge the new length afresh

    def state_dict(self) -> dict[str, Tensor]:
        if self.cap is None:
            return {}
        running = math.nan if self.running is None else self.running
        return {
            "cap": torch.tensor(self.cap),
            "running": torch.tensor(running, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "cap" in state:
            self.cap = int(state["cap"])
            running = float(state["running"])
            self.running = None if math.isnan(running) else running


EXAMPLE_STEPS = 5000  # the longest sequence `example` runs (a page's request)


# ----------------------------------------------------------------------------- the tasks
class AlgorithmicTask(Task):
    """The shared machinery of the memory tasks; each one names its config and metric."""

    api = {"predict": "predict", "example": "example"}

    Source: type[Source]  # makes its batches from config.data (rnnkit.data.sources)
    metric: str = "cost_bits"  # the held-out metric that picks the best checkpoint
    higher_is_better: bool = False
    commands = (
        Command(
            "plot sequence",
            "an NTM run reading and writing one held-out sequence (PNG)",
            "plot_sequence",
            (
                _OUT,
                arg("--length", type=whole(1, 10**4), default=20, help="the sequence's length"),
                arg("--seed", type=whole(0, 2**63 - 1), default=0, help="which sequence"),
            ),
        ),
        Command(
            "plot lengths",
            "error against sequence length, for memory-task runs (PNG)",
            "plot_lengths",
            (
                _RUNS,
                _OUT,
                arg("--lengths", default="10,20,30,40,50,60", help="comma-separated lengths"),
                arg("--metric", default="bit_errors", help="bit_errors, cost_bits, mse, ..."),
                _LABELS,
            ),
            needs_run=False,
        ),
        Command(
            "plot gradients",
            "|dL/dx_t| against t: how far back the loss reaches, for memory-task runs (PNG)",
            "plot_gradients",
            (_RUNS, _OUT, _LABELS),
            needs_run=False,
        ),
    )

    def build_model(self, config, setup=None) -> nn.Module:
        return build_model(config.model, *self.Source(config.data).sizes())

    def export_graph(self, loaded: Loaded):
        """The NTM as two graphs, its first state ("init") and its steps with the whole state
        explicit ("step"); a recurrent stack as one graph over padded batches: inputs
        (b, t, i) and lengths -> outputs (b, t, o) before the sigmoid or softmax."""
        from rnnkit.export import ntm_graphs, sequence_model_graph

        model = loaded.model
        if isinstance(model, NTM):
            return ntm_graphs(model)
        return sequence_model_graph(model, features=self.Source(loaded.config.data).sizes()[0])

    @torch.no_grad()
    def predict(self, loaded: Loaded, x) -> Tensor:
        """The model's answer to inputs x (b, t, i) (or one (t, i)): bit probabilities for the
        bit tasks, values for mse, class probabilities for the class tasks; (b, t, o), or
        (b, o) with a per-sequence head."""
        x = torch.as_tensor(x, dtype=torch.float32, device=next(loaded.model.parameters()).device)
        one = x.dim() == 2
        x = x.unsqueeze(0) if one else x
        inputs = self.Source(loaded.config.data).sizes()[0]
        if x.dim() != 3 or x.size(-1) != inputs:
            raise DataError(
                f"inputs of shape {tuple(x.shape)}; this {self.name} model reads "
                f"(batch, time, {inputs})",
                "one row of input bits per step, the task's delimiter channels included",
            )
        out, _ = loaded.model(x)
        out = self._answer(out)
        return out[0] if one else out

    def _answer(self, out: Tensor) -> Tensor:
        """The model's raw outputs as the task reads them: bit probabilities, class
        probabilities or values."""
        kind = self.Source.loss
        return torch.sigmoid(out) if kind == "bits" else out.softmax(-1) if kind == "class" else out

    @torch.no_grad()
    def example(self, loaded: Loaded, length: int | None = None, seed: int = 0) -> dict:
        """One held-out sequence (``length`` steps of the task's own; None: its evaluation
        length) through the model: {"inputs" (t, i), "targets" (t, o), "outputs" (t, o)
        (`predict`'s), "mask" (t,) the steps scored; an NTM adds "w_write", "w_read" (t, n):
        its first heads' weightings over memory}. Class targets are one-hot rows."""
        source = self.Source(loaded.config.data)
        low = getattr(source.c, "min_len", 1)  # recall needs two items to ask about one
        if length is not None and not low <= length <= 1000:
            raise DataError(f"length must be in {low}..1000 for {self.name}, got {length}")
        batch = source.held_out(1, torch.Generator().manual_seed(seed), length)
        if batch is None:  # a fixed held-out set (digits): the seed picks one of it
            held = source.held_out_set(1)
            batch = held[seed % len(held)]
        x, y, mask = batch.x, batch.y, batch.mask
        if x.size(1) > EXAMPLE_STEPS:
            raise DataError(
                f"length {length} makes a {self.name} sequence of {x.size(1)} steps, over the "
                f"{EXAMPLE_STEPS} an example runs",
                "ask for a shorter length",
            )
        model = loaded.model
        x = x.to(next(model.parameters()).device)
        trace = model.trace(x) if isinstance(model, NTM) else None  # one run for both views
        outputs = self._answer(trace["y"] if trace else model(x)[0])[0]
        if y.dtype == torch.int64:  # classes
            y = F.one_hot(y.clamp(min=0), outputs.size(-1)).float()
        out = {"inputs": x[0], "targets": y[0] * mask[0, :, None], "outputs": outputs,
               "mask": mask[0]}  # fmt: skip
        if trace:
            out["w_write"], out["w_read"] = trace["w_write"][0, :, 0], trace["w_read"][0, :, 0]
        return {k: v.cpu().tolist() for k, v in out.items()}

    def loop(self, config, setup, device, rank, world) -> AlgorithmicLoop:
        return AlgorithmicLoop(self, config, device, rank)

    def summary(self, config, setup, model, world: int) -> str:
        params = sum(p.numel() for p in model.parameters())
        device = next(model.parameters()).device
        return f"{config.model.cell}, {params:,} parameters, on {device}"

    def score(self, loaded: Loaded, lengths: list[int] | None = None) -> dict:
        """Held-out metrics of a saved run, also at ``lengths`` (default: its eval.lengths)."""
        config = loaded.config
        if lengths is not None:
            config.eval.lengths = ",".join(map(str, lengths))
        config.curriculum.enabled = False
        return AlgorithmicLoop(self, config, torch.device("cpu")).evaluate(loaded.model)

    # ------------------------------------------------------------------------- pictures
    def plot_sequence(self, args) -> int:
        from rnnkit.tasks.algorithmic_inspect import sequence_figure

        return _save(sequence_figure(args.run, args.length, args.seed), args.out)

    def plot_lengths(self, args) -> int:
        from rnnkit.tasks import algorithmic_inspect as inspect
        from rnnkit.viz.curves import legend_labels

        lengths = _lengths(args.lengths)
        labels = legend_labels(args.runs, args.labels)
        return _save(inspect.lengths_figure_of(args.runs, lengths, args.metric, labels), args.out)

    def plot_gradients(self, args) -> int:
        from rnnkit.tasks import algorithmic_inspect as inspect
        from rnnkit.viz.curves import legend_labels

        labels = legend_labels(args.runs, args.labels)
        return _save(inspect.gradients_figure_of(args.runs, labels=labels), args.out)

    def migrate(self, config: dict) -> dict:
        """Runs saved before model.kind was renamed model.cell."""
        model = config.get("model")
        if isinstance(model, dict) and "kind" in model and "cell" not in model:
            model = dict(model)
            model["cell"] = model.pop("kind")
            config = {**config, "model": model}
        return config


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise ConfigError(
            f"--lengths must be comma-separated positive integers, got {text!r}",
            "for example --lengths 10,20,40",
        )
    return lengths


def _save(fig, out) -> int:
    from rnnkit.viz import save_png

    print(f"wrote {save_png(fig, out)}")
    return 0


class Copy(AlgorithmicTask):
    Source = sources.CopySource
    name = "copy"
    description = "NTM copy: reproduce 1-20 random 8-bit vectors"
    Config = CopyConfig


class RepeatCopy(AlgorithmicTask):
    Source = sources.RepeatCopySource
    name = "repeat_copy"
    description = "NTM repeat copy: a sequence R times, then an end marker"
    Config = RepeatCopyConfig


class Recall(AlgorithmicTask):
    Source = sources.RecallSource
    name = "recall"
    description = "NTM associative recall: the item after the queried one"
    Config = RecallConfig


class Sort(AlgorithmicTask):
    Source = sources.SortSource
    name = "sort"
    description = "NTM priority sort: the 16 of 20 vectors with the highest priorities"
    Config = SortConfig


class Adding(AlgorithmicTask):
    Source = sources.AddingSource
    name = "adding"
    description = "adding problem: the sum of two marked values (Hochreiter 1997)"
    Config = AddingConfig
    metric = "mse"


class CopyMemory(AlgorithmicTask):
    Source = sources.CopyMemorySource
    name = "copy_memory"
    description = "copy memory: recall 10 symbols after a delay (Arjovsky 2016)"
    Config = CopyMemoryConfig
    metric = "xent"


class Digits(AlgorithmicTask):
    Source = sources.DigitsSource
    name = "digits"
    description = "sequential 8x8 handwritten digits, a row or a pixel per step (scikit-learn)"
    Config = DigitsConfig
    metric, higher_is_better = "accuracy", True
