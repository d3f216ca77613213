"""Word-level language model: predict the next word (Mikolov et al. 2010; Zaremba et al. 2014;
Merity et al. 2018 for the regularisers).

    x_t = E[w_t]                      embedding of the t-th word          (b, t, e)
    h_t = RNN(x_t, h_{t-1})           rnnkit LSTM / GRU layers            (b, t, h)
    p(w_{t+1} | w_<=t) = softmax(W drop(h_t) + b),  W = E when tied     (b, t, v)
    perplexity = exp( -1/N sum_t log p(w_{t+1} | w_<=t) )   over every word of a split

The corpus is one stream of word ids, ``</s>`` closing each line (verse), cut into
``data.batch_size`` parallel streams and trained by truncated BPTT with the state carried from
window to window (`rnnkit.training.TruncatedBPTT`). Words outside the vocabulary become
``<unk>`` and are predicted as ``<unk>``, as in the Penn Treebank; their share is reported.
The AWD-LSTM regularisers are the stack's own options (``model.weight_drop``,
``model.recurrent_dropout``); ``model.vectors`` starts the embedding from a word2vec / GloVe
text file (`rnnkit.data.vectors`), frozen with ``model.freeze_vectors``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.config import positive
from rnnkit.data import StreamBatches
from rnnkit.data.text import BUILTIN
from rnnkit.data.word_corpora import NAMED, word_corpus
from rnnkit.data.words import WordVocab
from rnnkit.decoding import check_sampling, sample_logits
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.language import LanguageModel, LanguageModelConfig
from rnnkit.tasks.base import Command, Loaded, Task
from rnnkit.tasks.charlm import CharLM, CharLMLoop, mean_cross_entropy
from rnnkit.training import TBPTTConfig, TrainConfig


@dataclass
class WordLMData:
    corpus: str = "bible"  # bible | pydoc | python-docs | a UTF-8 file or folder
    lower: bool = True  # lower-case every word
    min_count: int = 2  # words seen fewer times in training become <unk>
    max_size: int = 0  # at most this many words in the vocabulary, specials included (0: all)
    batch_size: int = 20  # parallel streams per batch


@dataclass
class WordLMModel(LanguageModelConfig):
    cell: str = "lstm"
    hidden: int = 200
    layers: int = 2
    embed: int = 200
    vectors: str = ""  # a word2vec / GloVe text file to start the embedding from
    freeze_vectors: bool = False  # keep those vectors fixed


@dataclass
class WordLMConfig:
    data: WordLMData = field(default_factory=WordLMData)
    model: WordLMModel = field(default_factory=WordLMModel)
    tbptt: TBPTTConfig = field(default_factory=lambda: TBPTTConfig(k1=35))
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        positive(self.data, "batch_size", "min_count", prefix="data.")
        positive(self.data, "max_size", prefix="data.", allow_zero=True)
        self.model.validate_model()
        if self.model.freeze_vectors and not self.model.vectors:
            raise ConfigError(
                "config key 'model.freeze_vectors' needs model.vectors (a vector file)",
                "set model.vectors=PATH, or drop model.freeze_vectors",
            )
        if self.model.freeze_vectors and self.model.tie:
            raise ConfigError(
                "model.freeze_vectors with model.tie would freeze the output layer too",
                "drop one of them",
            )
        self.tbptt.validate()
        self.train.validate()


@dataclass
class WordLMSetup:
    vocab: WordVocab
    train: StreamBatches | None = None
    val: StreamBatches | None = None
    splits: dict[str, Tensor] = field(default_factory=dict)  # valid / test ids (n,)
    unknown: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (unk, words)
    vectors: Tensor | None = None  # the starting embedding, when model.vectors is set
    coverage: dict | None = None


TOO_SMALL = "lower data.batch_size or tbptt.k1 (the window), or use a larger corpus"


def split_batches(ids: Tensor, config: WordLMConfig, name: str) -> StreamBatches:
    k1 = config.tbptt.k1
    streams = max(1, min(config.data.batch_size, (ids.numel() - 1) // k1))
    return StreamBatches(ids, streams, k1, f"{name} split", TOO_SMALL)


def perplexity(model, batches: StreamBatches) -> float:
    """exp(mean cross-entropy in nats) over every word of ``batches``, the state carried."""
    return math.exp(mean_cross_entropy(model, batches))


class WordLMLoop(CharLMLoop):
    """The character model's TBPTT loop, scored by validation perplexity."""

    metric, higher_is_better = "val_ppl", False

    def evaluate(self, model) -> dict:
        return {"val_ppl": perplexity(model, self.val)}


def encode_splits(config: WordLMConfig, vocab: WordVocab | None = None):
    """The corpus's lines -> id streams per split, with the vocabulary fitted on the training
    lines (or the run's). Returns (vocab, {split: ids (n,) int32})."""
    d = config.data
    lines = word_corpus(d.corpus)
    if vocab is None:
        vocab = WordVocab.train(lines["train"], d.lower, d.min_count, d.max_size)
    return vocab, {k: torch.from_numpy(vocab.encode_lines(v)) for k, v in lines.items()}


class WordLM(Task):
    name = "wordlm"
    description = "word-level language model (built-in corpus: the World English Bible)"
    Config = WordLMConfig
    api = {"generate": "sample"}
    files = ("vocab.json",)
    test_after_training = True
    commands = (
        Command(
            "sample",
            "generate text from a trained language model",
            "sample_command",
            CharLM.commands[0].args,  # the same options as the character model's sample
        ),
    )

    def prepare(self, config: WordLMConfig, run=None, data: bool = True) -> WordLMSetup:
        vocab = None
        if run is not None:
            vocab = WordVocab.from_dict(run.read_json("vocab.json"), str(run.path / "vocab.json"))
        if not data:
            return WordLMSetup(vocab)
        vocab, ids = encode_splits(config, vocab)
        unknown = {k: vocab.coverage(v.numpy()) for k, v in ids.items()}
        train = StreamBatches(
            ids["train"], config.data.batch_size, config.tbptt.k1, "training split", TOO_SMALL
        )
        val = split_batches(ids["valid"], config, "validation")
        setup = WordLMSetup(
            vocab, train, val, {"valid": ids["valid"], "test": ids["test"]}, unknown
        )
        if config.model.vectors and run is None:  # a new run starts from them; a saved run has
            from rnnkit.data.vectors import embedding_from_vectors  # its own weights

            setup.vectors, setup.coverage = embedding_from_vectors(
                vocab, config.model.vectors, config.model.embed
            )
        return setup

    def inputs(self, config: WordLMConfig) -> dict[str, str]:
        out = {}
        if config.data.corpus not in ("", BUILTIN, *NAMED):
            out["data.corpus"] = config.data.corpus
        if config.model.vectors:
            out["model.vectors"] = config.model.vectors
        return out

    def saved(self, setup: WordLMSetup) -> dict[str, str]:
        return {"vocab.json": setup.vocab.to_json()}

    def build_model(self, config: WordLMConfig, setup: WordLMSetup) -> LanguageModel:
        model = LanguageModel(len(setup.vocab), config.model)
        if setup.vectors is not None:
            with torch.no_grad():
                model.embed.weight.copy_(setup.vectors)
            model.embed.weight.requires_grad_(not config.model.freeze_vectors)
        return model

    def loop(self, config, setup, device, rank, world) -> WordLMLoop:
        if world > config.data.batch_size:
            raise ConfigError(
                f"{world} processes need at least as many streams, got data.batch_size="
                f"{config.data.batch_size}",
                "raise data.batch_size or start fewer processes",
            )
        return WordLMLoop(setup, config, device, rank, world)

    def export_graph(self, loaded: Loaded):
        from rnnkit.export import language_model_graph

        return language_model_graph(loaded.model, len(loaded.setup.vocab))

    def score(self, loaded: Loaded, **options) -> dict:
        """Validation and test perplexity, and the share of <unk> words in each."""
        config, vocab = loaded.config, loaded.setup.vocab
        _, ids = encode_splits(config, vocab)
        out = {}
        for split, name in (("valid", "val"), ("test", "test")):
            out[f"{name}_ppl"] = perplexity(loaded.model, split_batches(ids[split], config, split))
            unk, total = vocab.coverage(ids[split].numpy())
            out[f"{name}_unk_fraction"] = unk / max(total, 1)
        return out

    def summary(self, config, setup: WordLMSetup, model, world: int) -> str:
        params = sum(p.numel() for p in model.parameters())
        words = {k: f"{n:,}" for k, (_, n) in setup.unknown.items()}
        unk = {k: f"{u / max(n, 1):.1%}" for k, (u, n) in setup.unknown.items()}
        text = (
            f"{words['train']} training, {words['valid']} validation and {words['test']} test "
            f"words (<unk>: {unk['train']}, {unk['valid']}, {unk['test']}), vocabulary "
            f"{len(setup.vocab):,}, {params:,} parameters, {model.rnn.plan()}"
        )
        if setup.coverage:
            c = setup.coverage
            text += f"; vectors cover {c['covered']:,} of {c['total']:,} words"
        return text

    # ------------------------------------------------------------------------- using a run
    @torch.no_grad()
    def sample(
        self,
        path: str | Path | Loaded,
        prime: str | None = None,
        length: int = 50,
        temperature: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
    ) -> str:
        """Feed the words of ``prime`` through the model, then draw ``length`` words (a line
        ends at ``</s>``). Same seed, same text."""
        check_sampling(temperature, top_k)
        if not 0 <= length <= 10**6:
            raise ConfigError(f"length must be in [0, 1000000], got {length}")
        loaded = path if isinstance(path, Loaded) else self.load(path)
        model, vocab = loaded.model, loaded.setup.vocab
        ids = [vocab.eos] + (vocab.encode(prime) if prime else [])
        if prime is not None and len(ids) == 1:
            raise DataError(
                f"the priming text {prime!r} has no words", "give at least one word, or no prime"
            )
        generator = torch.Generator().manual_seed(seed)
        logits, state = model(torch.tensor([ids]))  # (1, t, v)
        out: list[int] = []
        for _ in range(length):
            w = sample_logits(logits[:, -1], temperature, top_k, generator)  # (1,)
            out.append(int(w))
            logits, state = model(w.view(1, 1), state)
        return vocab.decode(np.array(ids[1:] + out))

    def sample_command(self, args) -> int:
        length = 50 if args.length is None else args.length
        print(self.sample(args.run, args.prime, length, args.temperature, args.top_k, args.seed))
        return 0
