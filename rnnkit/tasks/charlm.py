"""Character-level language model: predict the next character of a text (Karpathy's char-rnn).

    x_t = E[c_t]                      embedding of the t-th character   (b, t, e)
    h_t = RNN(x_t, h_{t-1})           rnnkit RNN / LSTM / GRU layers    (b, t, h)
    p(c_{t+1} | c_<=t) = softmax(W h_t + b)                             (b, t, v)

Trained with truncated BPTT over streaming batches (the state is carried from one window to the
next and detached), Adam and gradient-norm clipping; measured in bits per character on a held-out
tail of the corpus; sampled with temperature, top-k and a priming string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.config import build, choice, positive, to_dict
from rnnkit.data import CharVocab, StreamBatches, load_text
from rnnkit.decoding import check_sampling, sample_logits
from rnnkit.errors import ConfigError, DataError
from rnnkit.run import RunDir
from rnnkit.training import (
    TBPTTConfig,
    TrainConfig,
    Trainer,
    TruncatedBPTT,
    distributed,
    resolve_device,
)

NAME = "charlm"
DESCRIPTION = "character-level language model (built-in corpus: Python's own docs)"
CELLS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


@dataclass
class CharLMData:
    path: str = "pydoc"  # a UTF-8 text file, or "pydoc" for Python's built-in help text
    val_fraction: float = 0.05  # tail of the corpus held out for validation
    batch_size: int = 32  # parallel streams per batch (split across processes with torchrun)


@dataclass
class CharLMModel:
    cell: str = "lstm"  # rnn | lstm | gru
    layers: int = 2  # stacked recurrent layers
    hidden: int = 256  # hidden units per layer
    embed: int = 64  # character embedding size
    dropout: float = 0.0  # dropout between layers and before the output layer
    impl: str = "auto"  # auto | native | loop (see rnnkit.LSTM)


@dataclass
class CharLMConfig:
    data: CharLMData = field(default_factory=CharLMData)
    model: CharLMModel = field(default_factory=CharLMModel)
    tbptt: TBPTTConfig = field(default_factory=TBPTTConfig)  # k1: window, k2: gradient reach
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        d, m = self.data, self.model
        choice("model.cell", m.cell, tuple(CELLS))
        choice("model.impl", m.impl, ("auto", "native", "loop"))
        positive(m, "layers", "hidden", "embed", prefix="model.")
        positive(d, "batch_size", prefix="data.")
        if not 0 <= m.dropout < 1:
            raise ConfigError(f"config key 'model.dropout' must be in [0, 1), got {m.dropout}")
        if not 0 < d.val_fraction < 1:
            raise ConfigError(
                f"config key 'data.val_fraction' must be in (0, 1), got {d.val_fraction}"
            )
        self.tbptt.validate()
        self.train.validate()


class CharLM(nn.Module):
    """Embedding -> recurrent layers -> linear read-out over the vocabulary."""

    def __init__(self, vocab_size: int, config: CharLMModel):
        super().__init__()
        c = config
        self.embed = nn.Embedding(vocab_size, c.embed)
        self.rnn = CELLS[c.cell](
            c.embed,
            c.hidden,
            num_layers=c.layers,
            dropout=c.dropout if c.layers > 1 else 0.0,
            batch_first=True,
            impl=c.impl,
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, vocab_size)

    def forward(self, ids: Tensor, state=None):
        """ids (b, t) -> logits (b, t, v) and the final state."""
        h, state = self.rnn(self.embed(ids), state)  # (b, t, h)
        return self.head(self.drop(h)), state


def split(text: str, val_fraction: float) -> tuple[str, str]:
    """The head of the corpus for training, its tail for validation."""
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


Config = CharLMConfig


def _val_batches(ids: Tensor, config: CharLMConfig) -> StreamBatches:
    k1 = config.tbptt.k1
    streams = max(1, min(config.data.batch_size, (ids.numel() - 1) // k1))
    return StreamBatches(ids, streams, k1, what="validation split")


@torch.no_grad()
def bits_per_char(model: CharLM, batches: StreamBatches) -> float:
    """Mean cross-entropy over every character of ``batches`` in bits, the state carried."""
    model.eval()
    state, nats, count = None, 0.0, 0
    for x, y in batches:
        logits, state = model(x, state)
        nats += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return nats / count / math.log(2)


class CharLMLoop:
    """What the trainer runs for the character model: TBPTT over this process's streams."""

    metric, higher_is_better = "val_bpc", False

    def __init__(
        self, train: StreamBatches, val: StreamBatches, config: CharLMConfig, rank=0, world=1
    ):
        x, y = train.x[rank::world], train.y[rank::world]  # this process's share of streams
        self.tbptt = TruncatedBPTT(x, y, config.tbptt)
        self.val = val

    def train_step(self, model, micro: int) -> Tensor:
        return self.tbptt.loss(model, micro % len(self.tbptt), _cross_entropy)

    def evaluate(self, model) -> dict:
        return {"val_bpc": bits_per_char(model, self.val)}

    def state_dict(self) -> dict[str, Tensor]:
        return self.tbptt.state_dict()

    def load_state_dict(self, state) -> None:
        self.tbptt.load_state_dict(state)


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # (b*t, v) against (b*t,)


def _build(config: CharLMConfig, rank: int, world: int):
    text = load_text(config.data.path)
    train_text, val_text = split(text, config.data.val_fraction)
    vocab = CharVocab.from_text(text)
    device = resolve_device(config.train.device)
    if world > config.data.batch_size:
        raise ConfigError(
            f"{world} processes need at least as many streams, got data.batch_size="
            f"{config.data.batch_size}",
            "raise data.batch_size or start fewer processes",
        )
    train_ids = vocab.encode(train_text).to(device)
    train_batches = StreamBatches(
        train_ids, config.data.batch_size, config.tbptt.k1, "training split"
    )
    val_batches = _val_batches(vocab.encode(val_text).to(device), config)
    torch.manual_seed(config.train.seed)
    model = CharLM(len(vocab), config.model).to(device)
    loop = CharLMLoop(train_batches, val_batches, config, rank, world)
    return model, loop, vocab, (len(train_text), len(val_text))


def train(config: CharLMConfig, out: str | Path, progress: bool = True) -> dict:
    """Train a character model into the run directory ``out``; return the final metrics."""
    rank, world = distributed()
    model, loop, vocab, (n_train, n_val) = _build(config, rank, world)
    run = None
    if rank == 0:
        run = RunDir.create(out, NAME, to_dict(config))
        run.write_text("vocab.json", vocab.to_json())
    if world > 1:
        torch.distributed.barrier()  # the run directory exists before any rank reads it
        run = run or RunDir(out)
    if progress and rank == 0:
        params = sum(p.numel() for p in model.parameters())
        print(
            f"charlm: {n_train:,} training and {n_val:,} validation characters, vocabulary "
            f"{len(vocab)}, {params:,} parameters, {world} process(es), {model.rnn.plan()}"
        )
    return Trainer(model, loop, config.train, run, progress=progress).fit()


def resume(path: str | Path, progress: bool = True) -> dict:
    """Continue an interrupted run from its newest complete checkpoint, exactly."""
    run = RunDir.open(path, NAME, need=("vocab.json",))
    config = build(CharLMConfig, overrides=run.read_json("config.json"))
    rank, world = distributed()
    model, loop, _, _ = _build(config, rank, world)
    return Trainer(model, loop, config.train, run, progress=progress).fit(resume=True)


def load(path: str | Path, device: str = "cpu") -> tuple[CharLM, CharVocab, CharLMConfig]:
    """Rebuild the model, vocabulary and config from a run directory alone."""
    run = RunDir.open(path, NAME, need=("model.safetensors", "vocab.json"))
    config = build(CharLMConfig, overrides=run.read_json("config.json"))
    vocab = CharVocab.load(run.path / "vocab.json")
    model = run.load_model(CharLM(len(vocab), config.model))
    return model.to(device).eval(), vocab, config


def evaluate(path: str | Path) -> dict:
    """Validation bits per character of a saved run, on the split it was trained with."""
    model, vocab, config = load(path)
    _, val_text = split(load_text(config.data.path), config.data.val_fraction)
    return {"val_bpc": bits_per_char(model, _val_batches(vocab.encode(val_text), config))}


@torch.no_grad()
def sample(
    path: str | Path,
    prime: str | None = None,
    length: int = 500,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
) -> str:
    """Feed ``prime`` through the model, then draw ``length`` characters. Same seed, same text.

    The default prime is a newline, or the vocabulary's first character if it has no newline.
    """
    check_sampling(temperature, top_k)
    if length < 0:
        raise ConfigError(f"length must be >= 0, got {length}")
    model, vocab, _ = load(path)
    if prime is None:
        prime = "\n" if "\n" in vocab.index else vocab.chars[0]
    if not prime:
        raise DataError("the priming string is empty", "give at least one character, e.g. '\\n'")
    generator = torch.Generator().manual_seed(seed)
    logits, state = model(vocab.encode(prime).unsqueeze(0))  # (1, t, v)
    out: list[int] = []
    for _ in range(length):
        c = sample_logits(logits[:, -1], temperature, top_k, generator)  # (1,)
        out.append(int(c))
        logits, state = model(c.view(1, 1), state)
    return prime + vocab.decode(out)
