"""Character-level language model: predict the next character of a text (Karpathy's char-rnn).

    x_t = E[c_t]                      embedding of the t-th character   (b, t, e)
    h_t = RNN(x_t, h_{t-1})           rnnkit RNN / LSTM / GRU layers    (b, t, h)
    p(c_{t+1} | c_<=t) = softmax(W h_t + b)                             (b, t, v)

Trained with truncated BPTT over streaming batches (the state is carried from one window to the
next and detached), Adam and gradient-norm clipping; measured in bits per character on a held-out
tail of the corpus; sampled with temperature, top-k and a priming string. The model is
`rnnkit.models.LanguageModel`; the inspection commands and report sections are in
`rnnkit.tasks.charlm_inspect`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.config import positive
from rnnkit.data import CharVocab, StreamBatches
from rnnkit.data.corpus import char_corpus
from rnnkit.data.text import BUILTIN
from rnnkit.decoding import check_sampling, sample_logits
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.language import LanguageModel, LanguageModelConfig
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole
from rnnkit.training import TBPTTConfig, TrainConfig, TruncatedBPTT


@dataclass
class CharLMData:
    path: str = "pydoc"  # a UTF-8 text file, or "pydoc" for Python's built-in help text
    val_fraction: float = 0.05  # tail of the corpus held out for validation
    batch_size: int = 32  # parallel streams per batch (split across processes with torchrun)


@dataclass
class CharLMConfig:
    data: CharLMData = field(default_factory=CharLMData)
    model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    tbptt: TBPTTConfig = field(default_factory=TBPTTConfig)  # k1: window, k2: gradient reach
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        d = self.data
        self.model.validate_model()
        positive(d, "batch_size", prefix="data.")
        if not 0 < d.val_fraction < 1:
            raise ConfigError(
                f"config key 'data.val_fraction' must be in (0, 1), got {d.val_fraction}"
            )
        self.tbptt.validate()
        self.train.validate()


def corpus_split(config: CharLMConfig, vocab: CharVocab | None = None):
    """(training ids, validation ids, the corpus's vocabulary): the corpus encoded once and
    memory-mapped (`rnnkit.data.corpus`), its tail held out. ``vocab``: a run's vocabulary,
    which must be the corpus's."""
    corpus_vocab, ids = char_corpus(config.data.path)
    if vocab is not None and vocab.chars != corpus_vocab.chars:
        raise DataError(
            f"the corpus {config.data.path} has other characters than the run's vocabulary",
            "use the corpus the run was trained on",
        )
    ids = torch.from_numpy(ids)  # (n,), int16 or int32, backed by the file
    cut = int(len(ids) * (1 - config.data.val_fraction))
    return ids[:cut], ids[cut:], corpus_vocab


def split(text: str, val_fraction: float) -> tuple[str, str]:
    """The head of the corpus for training, its tail for validation."""
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


@dataclass
class CharLMSetup:
    vocab: CharVocab
    train: StreamBatches | None = None  # None when loaded for inference
    val: StreamBatches | None = None
    sizes: tuple[int, int] = (0, 0)  # training and validation characters


TOO_SMALL = "lower data.batch_size or tbptt.k1 (the window), or use a larger text file"


def val_batches(ids: Tensor, config: CharLMConfig) -> StreamBatches:
    k1 = config.tbptt.k1
    streams = max(1, min(config.data.batch_size, (ids.numel() - 1) // k1))
    return StreamBatches(ids, streams, k1, "validation split", TOO_SMALL)


def bits_per_char(model, batches: StreamBatches) -> float:
    """Mean cross-entropy over every character of ``batches`` in bits, the state carried."""
    return mean_cross_entropy(model, batches) / math.log(2)


@torch.no_grad()
def mean_cross_entropy(model, batches: StreamBatches) -> float:
    """-1/N sum log p(next token) over every token of ``batches`` in nats, the state carried
    from window to window."""
    model.eval()
    device = next(model.parameters()).device
    state, nats, count = None, 0.0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device).long()
        logits, state = model(x, state)
        nats += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    return nats / count


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits.flatten(0, 1), y.flatten().long())  # (b*t, v), (b*t,)


class CharLMLoop:
    """What the trainer runs for a language model: TBPTT over this process's streams of
    ``setup.train``, scored on ``setup.val`` (the word model's loop only changes the score)."""

    metric, higher_is_better = "val_bpc", False

    def __init__(self, setup, config, device, rank=0, world=1):
        train = setup.train
        x, y = train.x[rank::world].to(device), train.y[rank::world].to(device)  # its streams
        self.tbptt = TruncatedBPTT(x, y, config.tbptt)
        self.val = setup.val

    def train_step(self, model, micro: int) -> Tensor:
        return self.tbptt.loss(model, micro % len(self.tbptt), _cross_entropy)

    def evaluate(self, model) -> dict:
        return {"val_bpc": bits_per_char(model, self.val)}

    def state_dict(self) -> dict[str, Tensor]:
        return self.tbptt.state_dict()

    def load_state_dict(self, state) -> None:
        self.tbptt.load_state_dict(state)


_INSPECT = "rnnkit.tasks.charlm_inspect"


class CharLM(Task):
    name = "charlm"
    description = "character-level language model (built-in corpus: Python's own docs)"
    Config = CharLMConfig
    api = {"generate": "sample"}
    files = ("vocab.json",)
    commands = (
        Command(
            "sample",
            "generate text from a trained language model",
            "sample_command",
            (
                arg("--prime", help="text to start from (default: a newline)"),
                arg(
                    "--length",
                    type=whole(0, 10**7),
                    help="characters (words, for a word model) to generate (default 500 / 50)",
                ),
                arg("--temperature", type=float, default=1.0, help="0 is greedy; <1 is safer"),
                arg("--top-k", type=int, default=0, help="sample among the k likeliest (0: all)"),
                arg("--seed", type=whole(0, 2**63 - 1), default=0, help="same seed, same text"),
            ),
        ),
        Command(
            "inspect gradients",
            "||dL/dh_t|| per step and layer of a language model run: PNG + JSON",
            "inspect_gradients",
            (
                arg("--out", help="output directory (default RUN/inspect)"),
                arg("--batch", type=whole(1, 4096), default=16, help="validation windows"),
            ),
        ),
        Command(
            "inspect compare",
            "train RNN, LSTM and GRU briefly and plot their gradient flow",
            "inspect_compare",
            (
                arg("out", help="new output directory"),
                arg("--steps", type=whole(1, 10**6), default=200, help="steps per cell"),
                arg("--data", default="pydoc", help="corpus (default: the built-in one)"),
            ),
            needs_run=False,
        ),
    )

    # ------------------------------------------------------------------------- the contract
    def prepare(self, config: CharLMConfig, run=None, data: bool = True) -> CharLMSetup:
        vocab = None
        if run is not None:
            vocab = CharVocab.from_dict(run.read_json("vocab.json"), str(run.path / "vocab.json"))
        if not data:
            return CharLMSetup(vocab)
        train_ids, val_ids, corpus_vocab = corpus_split(config, vocab)
        train = StreamBatches(
            train_ids, config.data.batch_size, config.tbptt.k1, "training split", TOO_SMALL
        )
        val = val_batches(val_ids, config)
        return CharLMSetup(vocab or corpus_vocab, train, val, (len(train_ids), len(val_ids)))

    def inputs(self, config: CharLMConfig) -> dict[str, str]:
        path = config.data.path
        return {} if path in ("", BUILTIN) else {"data.path": path}

    def saved(self, setup: CharLMSetup) -> dict[str, str]:
        return {"vocab.json": setup.vocab.to_json()}

    def build_model(self, config: CharLMConfig, setup: CharLMSetup) -> LanguageModel:
        return LanguageModel(len(setup.vocab), config.model)

    def loop(self, config, setup, device, rank, world) -> CharLMLoop:
        if world > config.data.batch_size:
            raise ConfigError(
                f"{world} processes need at least as many streams, got data.batch_size="
                f"{config.data.batch_size}",
                "raise data.batch_size or start fewer processes",
            )
        return CharLMLoop(setup, config, device, rank, world)

    def export_graph(self, loaded: Loaded):
        from rnnkit.export import language_model_graph

        return language_model_graph(loaded.model, len(loaded.setup.vocab))

    def score(self, loaded: Loaded, **options) -> dict:
        """Validation bits per character, on the split the run was trained with."""
        config = loaded.config
        _, val_ids, _ = corpus_split(config, loaded.setup.vocab)
        return {"val_bpc": bits_per_char(loaded.model, val_batches(val_ids, config))}

    def summary(self, config, setup: CharLMSetup, model, world: int) -> str:
        n_train, n_val = setup.sizes
        params = sum(p.numel() for p in model.parameters())
        return (
            f"{n_train:,} training and {n_val:,} validation characters, vocabulary "
            f"{len(setup.vocab)}, {params:,} parameters, {world} process(es), {model.rnn.plan()}"
        )

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.charlm_inspect import report_sections

        return report_sections(self, loaded, **options)

    # ------------------------------------------------------------------------- using a run
    @torch.no_grad()
    def sample(
        self,
        path: str | Path | Loaded,
        prime: str | None = None,
        length: int = 500,
        temperature: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
    ) -> str:
        """Feed ``prime`` through the model, then draw ``length`` characters. Same seed, same
        text. The default prime is a newline, or the vocabulary's first character."""
        check_sampling(temperature, top_k)
        if not 0 <= length <= 10**7:
            raise ConfigError(f"length must be in [0, 10000000], got {length}")
        loaded = path if isinstance(path, Loaded) else self.load(path)
        model, vocab = loaded.model, loaded.setup.vocab
        if prime is None:
            prime = "\n" if "\n" in vocab.index else vocab.chars[0]
        if not prime:
            raise DataError(
                "the priming string is empty", "give at least one character, e.g. '\\n'"
            )
        generator = torch.Generator().manual_seed(seed)
        logits, state = model(vocab.encode(prime).unsqueeze(0))  # (1, t, v)
        out: list[int] = []
        for _ in range(length):
            c = sample_logits(logits[:, -1], temperature, top_k, generator)  # (1,)
            out.append(int(c))
            logits, state = model(c.view(1, 1), state)
        return prime + vocab.decode(out)

    def sample_command(self, args) -> int:
        print(
            self.sample(
                args.run,
                args.prime,
                500 if args.length is None else args.length,
                args.temperature,
                args.top_k,
                args.seed,
            )
        )
        return 0

    def inspect_gradients(self, args) -> int:
        from rnnkit.tasks.charlm_inspect import inspect_run

        result = inspect_run(self.load(args.run), args.out, batch=args.batch)
        print(f"wrote {result['png']} and {result['json']}")
        return 0

    def inspect_compare(self, args) -> int:
        from rnnkit.tasks.charlm_inspect import compare_cells

        result = compare_cells(args.out, steps=args.steps, data=args.data, progress=True)
        print(f"wrote {result['png']} and {result['json']}")
        return 0
