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
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.config import choice, positive, to_dict
from rnnkit.data import CharVocab, StreamBatches, load_text
from rnnkit.decoding import check_sampling, sample_logits
from rnnkit.errors import ConfigError, DataError
from rnnkit.run import RunDir
from rnnkit.training import fit

NAME = "charlm"
CELLS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


@dataclass
class CharLMConfig:
    data: str = "pydoc"  # a UTF-8 text file, or "pydoc" for Python's built-in help text
    cell: str = "lstm"  # rnn | lstm | gru
    layers: int = 2  # stacked recurrent layers
    hidden: int = 256  # hidden units per layer
    embed: int = 64  # character embedding size
    dropout: float = 0.0  # dropout between layers and before the output layer
    impl: str = "auto"  # auto | native | loop (see rnnkit.LSTM)
    seq_len: int = 100  # truncated-BPTT window: characters per training sequence
    batch_size: int = 32  # parallel streams per batch
    steps: int = 2000  # optimizer steps
    lr: float = 2e-3  # Adam learning rate
    clip: float = 1.0  # gradient-norm clipping threshold (0 disables)
    val_fraction: float = 0.05  # tail of the corpus held out for validation
    eval_every: int = 250  # evaluate and save every N steps (0: only at the end)
    seed: int = 0  # seeds parameters and dropout
    device: str = "auto"  # auto | cpu | cuda

    def validate(self) -> None:
        choice("cell", self.cell, tuple(CELLS))
        choice("impl", self.impl, ("auto", "native", "loop"))
        choice("device", self.device, ("auto", "cpu", "cuda"))
        positive(self, "layers", "hidden", "embed", "seq_len", "batch_size", "steps", "lr")
        positive(self, "clip", "eval_every", allow_zero=True)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"config key 'dropout' must be in [0, 1), got {self.dropout}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(
                f"config key 'val_fraction' must be in (0, 1), got {self.val_fraction}"
            )


class CharLM(nn.Module):
    """Embedding -> recurrent layers -> linear read-out over the vocabulary."""

    def __init__(self, vocab_size: int, config: CharLMConfig):
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


def _detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda, but torch sees no CUDA device", "use device=cpu or auto")
    return torch.device(name)


def split(text: str, val_fraction: float) -> tuple[str, str]:
    """The head of the corpus for training, its tail for validation."""
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


def _val_batches(ids: Tensor, config: CharLMConfig) -> StreamBatches:
    streams = max(1, min(config.batch_size, (ids.numel() - 1) // config.seq_len))
    return StreamBatches(ids, streams, config.seq_len, what="validation split")


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


def train(config: CharLMConfig, out: str | Path, progress: bool = True) -> dict:
    """Train a character model into the run directory ``out``; return the final metrics."""
    text = load_text(config.data)
    train_text, val_text = split(text, config.val_fraction)
    vocab = CharVocab.from_text(text)
    device = _device(config.device)
    train_batches = StreamBatches(
        vocab.encode(train_text).to(device), config.batch_size, config.seq_len, "training split"
    )
    val_batches = _val_batches(vocab.encode(val_text).to(device), config)

    torch.manual_seed(config.seed)
    model = CharLM(len(vocab), config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = RunDir.create(out, NAME, to_dict(config))
    run.write_text("vocab.json", vocab.to_json())
    if progress:
        print(
            f"charlm: {len(train_text):,} training and {len(val_text):,} validation characters, "
            f"vocabulary {len(vocab)}, {sum(p.numel() for p in model.parameters()):,} "
            f"parameters, {model.rnn.plan()}"
        )

    state = None

    def train_step(step: int) -> Tensor:
        nonlocal state
        k = step % len(train_batches)
        if k == 0:
            state = None  # back at the start of the streams
        x, y = train_batches[k]
        logits, state = model(x, _detach(state))
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    return fit(
        model,
        train_step,
        lambda: {"val_bpc": bits_per_char(model, val_batches)},
        optimizer,
        steps=config.steps,
        clip=config.clip,
        eval_every=config.eval_every,
        run=run,
        progress=progress,
        units_per_step=config.batch_size * config.seq_len,
        unit="char",
    )


def load(path: str | Path, device: str = "cpu") -> tuple[CharLM, CharVocab, CharLMConfig]:
    """Rebuild the model, vocabulary and config from a run directory alone."""
    run = RunDir.open(path, NAME, need=("model.safetensors", "vocab.json"))
    from rnnkit.config import build

    config = build(CharLMConfig, overrides=run.read_json("config.json"))
    vocab = CharVocab.load(run.path / "vocab.json")
    model = run.load_model(CharLM(len(vocab), config))
    return model.to(device).eval(), vocab, config


def evaluate(path: str | Path) -> dict:
    """Validation bits per character of a saved run, on the split it was trained with."""
    model, vocab, config = load(path)
    _, val_text = split(load_text(config.data), config.val_fraction)
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
