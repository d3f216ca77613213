"""Sequence to sequence with attention: dates, numbers to words, and real sentence pairs.

Three registered tasks share this module and differ only in their defaults:

    dates      "5 mars 2024" -> "2024-03-05"                      characters -> characters
    numbers    4721 -> "quatre mille sept cent vingt et un"       characters -> words
    translate  English -> French UI messages (gettext), or your TSV   subwords -> subwords

Training minimises the cross-entropy of the next target token with teacher forcing, optionally
scheduled (Bengio et al. 2015); evaluation decodes greedily (validation) or with beam search
(test) and reports exact match, BLEU and chrF (sacrebleu).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import decoding
from rnnkit.config import build, choice, positive, to_dict
from rnnkit.data import pairs as pair_sources
from rnnkit.data.tokenize import KINDS as TOKENIZERS
from rnnkit.data.tokenize import load_tokenizer, train_tokenizer
from rnnkit.errors import ConfigError, DataError
from rnnkit.run import RunDir
from rnnkit.seq2seq import BOS, EOS, PAD, Seq2Seq, Seq2SeqModelConfig
from rnnkit.training import TrainConfig, Trainer, distributed, resolve_device


@dataclass
class PairData:
    source: str = "dates"  # dates | numbers | gettext | tsv
    path: str = ""  # the TSV file (source=tsv)
    lang: str = "fr"  # numbers: num2words language; gettext: target language (fr, de, es...)
    to_words: bool = True  # numbers: digits -> words (false: words -> digits)
    n: int = 40000  # pairs to generate (dates, numbers)
    n_val: int = 500  # validation pairs (distinct sources)
    n_test: int = 1000  # test pairs (distinct sources)
    src_tokenizer: str = "char"  # char | word | subword
    tgt_tokenizer: str = "char"  # char | word | subword
    vocab_size: int = 2000  # subword and word vocabularies (0: every word)
    max_len: int = 60  # pairs with a side longer than this many tokens are dropped
    batch_size: int = 64  # pairs per step
    seed: int = 0  # generation and split


@dataclass
class TeacherForcingConfig:
    schedule: str = "constant"  # constant | linear | exponential | inverse_sigmoid
    start: float = 1.0  # the ratio of true previous tokens at step 0
    end: float = 1.0  # linear: the ratio at the last step; the others: the floor
    decay: float = 0.999  # exponential: ratio = start * decay ** step
    k: float = 500.0  # inverse_sigmoid: ratio = k / (k + exp(step / k))


@dataclass
class DecodeConfig:
    beam: int = 5  # beam size for test evaluation and `rnnkit translate`
    alpha: float = 0.6  # GNMT length penalty exponent (0: none)
    max_len: int = 80  # the longest output, in tokens


@dataclass
class Seq2SeqConfig:
    data: PairData = field(default_factory=PairData)
    model: Seq2SeqModelConfig = field(default_factory=Seq2SeqModelConfig)
    teacher: TeacherForcingConfig = field(default_factory=TeacherForcingConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, eval_every=500))

    def validate(self) -> None:
        d, m, t = self.data, self.model, self.teacher
        choice("data.source", d.source, ("dates", "numbers", "gettext", "tsv"))
        choice("data.src_tokenizer", d.src_tokenizer, tuple(TOKENIZERS))
        choice("data.tgt_tokenizer", d.tgt_tokenizer, tuple(TOKENIZERS))
        choice("model.cell", m.cell, ("rnn", "lstm", "gru"))
        choice("model.attention", m.attention, ("none", "bahdanau", "dot", "general", "concat"))
        choice(
            "teacher.schedule", t.schedule, ("constant", "linear", "exponential", "inverse_sigmoid")
        )
        positive(d, "n", "batch_size", "max_len", "n_test", "n_val", prefix="data.")
        positive(m, "embed", "hidden", "encoder_layers", "decoder_layers", prefix="model.")
        positive(self.decode, "beam", "max_len", prefix="decode.")
        if d.source == "tsv" and not d.path:
            raise ConfigError("data.source=tsv needs data.path=FILE (source<TAB>target lines)")
        if m.attention == "dot" and m.bidirectional:
            raise ConfigError(
                "model.attention=dot needs decoder and encoder states of one size, but the "
                "bidirectional encoder's are twice as wide",
                "use model.attention=general, or model.bidirectional=false",
            )
        self.train.validate()


def teacher_forcing_ratio(c: TeacherForcingConfig, step: int, steps: int) -> float:
    """The probability of feeding the true previous token at training step ``step``."""
    if c.schedule == "linear":
        return c.start + (c.end - c.start) * min(1.0, step / max(1, steps))
    if c.schedule == "exponential":
        return max(c.end, c.start * c.decay**step)
    if c.schedule == "inverse_sigmoid":
        return max(c.end, c.k / (c.k + math.exp(min(step / c.k, 700))))
    return c.start


# ----------------------------------------------------------------------------- data


def load_pairs(d: PairData) -> list[tuple[str, str]]:
    if d.source == "dates":
        return pair_sources.dates(d.n, d.seed)
    if d.source == "numbers":
        return pair_sources.numbers(d.n, d.seed, d.lang, to_words=d.to_words)
    if d.source == "gettext":
        return pair_sources.gettext_pairs(d.lang)
    return pair_sources.tsv(d.path)


class Encoded:
    """Pairs as padded id tensors: src (n, S), src_len (n,), tgt (n, T+2) with BOS ... EOS."""

    def __init__(self, pairs, src_tok, tgt_tok, max_len: int | None = None):
        kept = []
        for s, t in pairs:
            si, ti = src_tok.encode(s), tgt_tok.encode(t)
            if si and ti and (max_len is None or (len(si) <= max_len and len(ti) <= max_len)):
                kept.append((s, t, si, ti))
        if not kept:
            raise DataError("no pair is left after tokenizing", "raise data.max_len")
        self.text = [(s, t) for s, t, _, _ in kept]
        S = max(len(si) for _, _, si, _ in kept)
        T = max(len(ti) for _, _, _, ti in kept) + 2
        self.src = torch.full((len(kept), S), PAD, dtype=torch.long)
        self.tgt = torch.full((len(kept), T), PAD, dtype=torch.long)
        self.src_len = torch.tensor([len(si) for _, _, si, _ in kept])
        for i, (_, _, si, ti) in enumerate(kept):
            self.src[i, : len(si)] = torch.tensor(si)
            self.tgt[i, : len(ti) + 2] = torch.tensor([BOS, *ti, EOS])

    def __len__(self) -> int:
        return len(self.text)

    def batch(self, rows: Tensor, device) -> tuple[Tensor, Tensor, Tensor]:
        """Trimmed to the longest member: src (b, S'), src_len (b,), tgt (b, T')."""
        lengths = self.src_len[rows]
        src = self.src[rows, : int(lengths.max())]
        tgt = self.tgt[rows]
        tgt = tgt[:, : int((tgt != PAD).sum(1).max())]
        return src.to(device), lengths, tgt.to(device)


# ----------------------------------------------------------------------------- training


class Seq2SeqLoop:
    metric, higher_is_better = "val_exact", True

    def __init__(
        self,
        train: Encoded,
        val: Encoded,
        tgt_tok,
        config: Seq2SeqConfig,
        device,
        rank: int = 0,
        world: int = 1,
    ):
        self.train, self.val, self.tgt_tok, self.c = train, val, tgt_tok, config
        self.device, self.rank, self.world = device, rank, world
        self.per_epoch = max(1, len(train) // config.data.batch_size)

    def _rows(self, micro: int) -> Tensor:
        """Batch ``micro``: a slice of a permutation drawn afresh, and seeded, every epoch."""
        epoch, i = divmod(micro, self.per_epoch)
        g = torch.Generator().manual_seed(self.c.train.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.train), generator=g)
        b = self.c.data.batch_size
        return perm[i * b : (i + 1) * b][self.rank :: self.world]

    def train_step(self, model, micro: int) -> Tensor:
        src, lengths, tgt = self.train.batch(self._rows(micro), self.device)
        ratio = teacher_forcing_ratio(self.c.teacher, micro, self.c.train.steps)
        g = torch.Generator().manual_seed(micro)
        logits = model(src, lengths, tgt[:, :-1], ratio, g)  # (b, T-1, v)
        return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)

    def evaluate(self, model) -> dict:
        hyps = translate_encoded(model, self.val, self.c.decode.max_len, self.tgt_tok, beam=1)
        refs = [t for _, t in self.val.text]
        return {"val_exact": sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)}

    def state_dict(self) -> dict[str, Tensor]:
        return {}  # the data order is a function of the step

    def load_state_dict(self, state) -> None:
        pass


def translate_encoded(
    model, data: Encoded, max_len: int, tgt_tok, beam: int = 1, alpha: float = 0.0, batch: int = 256
) -> list[str]:
    """Decode every source of ``data`` (greedy when beam == 1) and detokenize."""
    model.eval()
    out: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(data), batch):
        rows = torch.arange(start, min(start + batch, len(data)))
        src, lengths, _ = data.batch(rows, device)
        if beam == 1:
            tokens, _ = decoding.greedy(model, src, lengths, max_len)
            seqs = tokens.tolist()
        else:
            seqs = [
                h[0][0] for h in decoding.beam_search(model, src, lengths, max_len, beam, alpha)
            ]
        out += [tgt_tok.decode(s[: s.index(EOS)] if EOS in s else s) for s in seqs]
    return out


def _splits(config: Seq2SeqConfig):
    """(train, val, test) pairs: the same for a given config, at training and afterwards."""
    d = config.data
    return pair_sources.split(load_pairs(d), d.n_val, d.n_test, d.seed)


def _model_and_loop(config, src_tok, tgt_tok, train_p, val_p, rank, world):
    device = resolve_device(config.train.device)
    train = Encoded(train_p, src_tok, tgt_tok, config.data.max_len)
    val = Encoded(val_p, src_tok, tgt_tok)
    torch.manual_seed(config.train.seed)
    model = Seq2Seq(len(src_tok), len(tgt_tok), config.model).to(device)
    return model, Seq2SeqLoop(train, val, tgt_tok, config, device, rank, world)


def _task_train(name: str, config: Seq2SeqConfig, out, progress: bool = True) -> dict:
    rank, world = distributed()
    d = config.data
    train_p, val_p, test_p = _splits(config)
    src_tok = train_tokenizer(d.src_tokenizer, [s for s, _ in train_p], d.vocab_size)
    tgt_tok = train_tokenizer(d.tgt_tokenizer, [t for _, t in train_p], d.vocab_size)
    model, loop = _model_and_loop(config, src_tok, tgt_tok, train_p, val_p, rank, world)
    run = None
    if rank == 0:
        run = RunDir.create(out, name, to_dict(config))
        run.write_text("src_tokenizer.json", src_tok.to_json())
        run.write_text("tgt_tokenizer.json", tgt_tok.to_json())
        if progress:
            params = sum(p.numel() for p in model.parameters())
            print(
                f"{name}: {len(loop.train):,} training, {len(loop.val):,} validation, "
                f"{len(test_p):,} test pairs; vocabularies {len(src_tok)} -> {len(tgt_tok)}; "
                f"{params:,} parameters; attention {config.model.attention}"
            )
    if world > 1:
        torch.distributed.barrier()
        run = run or RunDir(out)
    return _fit_and_test(model, loop, config, run, rank, progress, resume=False)


def _task_resume(name: str, path, progress: bool = True) -> dict:
    run = RunDir.open(path, name, need=("src_tokenizer.json", "tgt_tokenizer.json"))
    config = build(Seq2SeqConfig, overrides=run.read_json("config.json"))
    rank, world = distributed()
    src_tok, tgt_tok = _tokenizers(run)
    train_p, val_p, _ = _splits(config)
    model, loop = _model_and_loop(config, src_tok, tgt_tok, train_p, val_p, rank, world)
    return _fit_and_test(model, loop, config, run, rank, progress, resume=True)


def _fit_and_test(model, loop, config, run, rank, progress, resume) -> dict:
    metrics = Trainer(model, loop, config.train, run, progress=progress).fit(resume=resume)
    if rank == 0:
        metrics |= evaluate(run.path)
        run.write_json("metrics.json", metrics)
    return metrics


# ----------------------------------------------------------------------------- using a run


def _tokenizers(run: RunDir):
    read = (run.path / "src_tokenizer.json", run.path / "tgt_tokenizer.json")
    return tuple(load_tokenizer(p.read_text(encoding="utf-8")) for p in read)


def load(path, device: str = "cpu"):
    """(model, src_tokenizer, tgt_tokenizer, config) rebuilt from a run directory alone."""
    run = RunDir.open(
        path, None, need=("model.safetensors", "src_tokenizer.json", "tgt_tokenizer.json")
    )
    if run.task not in NAMES:
        raise ConfigError(
            f"run {path} is a {run.task!r} run, not a translation task",
            f"use a run of {', '.join(NAMES)}",
        )
    config = build(Seq2SeqConfig, overrides=run.read_json("config.json"))
    src_tok, tgt_tok = _tokenizers(run)
    model = run.load_model(Seq2Seq(len(src_tok), len(tgt_tok), config.model))
    return model.to(device).eval(), src_tok, tgt_tok, config


def evaluate(path) -> dict:
    """Test-set exact match, BLEU and chrF with beam search, on the split made at training."""
    import sacrebleu

    model, src_tok, tgt_tok, config = load(path)
    test = Encoded(_splits(config)[2], src_tok, tgt_tok)
    hyps = translate_encoded(
        model, test, config.decode.max_len, tgt_tok, config.decode.beam, config.decode.alpha
    )
    refs = [t for _, t in test.text]
    return {
        "test_exact": sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs),
        "test_bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
        "test_chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
        "test_pairs": len(refs),
    }


def translate(path, text: str, beam: int | None = None, n_best: int = 1, model_etc=None):
    """Translate one input. Returns the n-best [(translation, score)], the attention map of the
    best (output tokens x input tokens; None without attention) and its (input, output) token
    labels. ``model_etc``: what `load` returned, to translate many inputs with one load."""
    model, src_tok, tgt_tok, config = model_etc or load(path)
    if not text.strip():
        raise DataError("the input is empty", "give some text to translate")
    unknown = src_tok.unknown(text)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        raise DataError(
            f"the input has {len(unknown)} piece(s) the model never saw: {shown}",
            "use only characters or words of the training data",
        )
    ids = src_tok.encode(text)
    if len(ids) > config.data.max_len:
        raise DataError(
            f"the input has {len(ids)} tokens, but this model was trained on inputs of at most "
            f"{config.data.max_len}",
            "split it into shorter pieces",
        )
    src = torch.tensor([ids])
    lengths = torch.tensor([len(ids)])
    beam = beam or config.decode.beam
    hyps = decoding.beam_search(
        model,
        src,
        lengths,
        config.decode.max_len,
        beam,
        config.decode.alpha,
        n_best=min(n_best, beam),
    )[0]
    out = [(tgt_tok.decode([t for t in seq if t != EOS]), score) for seq, score in hyps]
    best = torch.tensor([hyps[0][0]])
    attention = None
    if config.model.attention != "none":  # re-run the best with teacher forcing to read a_t
        memory, state = model.encode(src, lengths)
        rows, y = [], torch.tensor([BOS])
        with torch.no_grad():
            for t in range(best.size(1)):
                _, state, a = model.decode_step(y, state, memory)
                rows.append(a[0])
                y = best[:, t]
        attention = torch.stack(rows)  # (T, S)
    return out, attention, (src_tok.pieces(ids), tgt_tok.pieces(hyps[0][0]))


def plot_attention(attention: Tensor, src_tokens: list[str], tgt_tokens: list[str], path):
    """Save an attention heat map (output tokens down, input tokens across) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(0.35 * len(src_tokens) + 2, 0.35 * len(tgt_tokens) + 1.5))
    ax.imshow(attention.numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens)
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------- registration


class _Task:
    """One registered name over this module, with its own defaults."""

    def __init__(self, name: str, description: str, config_cls):
        self.NAME, self.DESCRIPTION, self.Config = name, description, config_cls

    def train(self, config, out, progress=True):
        return _task_train(self.NAME, config, out, progress)

    def resume(self, path, progress=True):
        return _task_resume(self.NAME, path, progress)

    evaluate = staticmethod(evaluate)
    translate = staticmethod(translate)


@dataclass
class DatesConfig(Seq2SeqConfig):
    pass  # PairData's defaults are the dates task's


@dataclass
class NumbersData(PairData):
    source: str = "numbers"
    tgt_tokenizer: str = "word"  # whole number words: "quatre", "mille", "-", "vingt"
    n: int = 60000


@dataclass
class NumbersConfig(Seq2SeqConfig):
    data: NumbersData = field(default_factory=NumbersData)


@dataclass
class TranslateData(PairData):
    source: str = "gettext"
    src_tokenizer: str = "subword"
    tgt_tokenizer: str = "subword"
    max_len: int = 30


@dataclass
class TranslateConfig(Seq2SeqConfig):
    data: TranslateData = field(default_factory=TranslateData)


TASKS = [
    _Task("dates", "date normalisation in 5 languages: '5 mars 2024' -> '2024-03-05'", DatesConfig),
    _Task(
        "numbers",
        "numbers to words with num2words: 4721 -> 'quatre mille sept cent...'",
        NumbersConfig,
    ),
    _Task(
        "translate", "English -> French (gettext catalogues) or your own TSV pairs", TranslateConfig
    ),
]
NAMES = tuple(t.NAME for t in TASKS)


# ----------------------------------------------------------------------------- length study


def accuracy_by_length(path, max_len: int | None = None) -> dict[int, tuple[int, int]]:
    """Greedy exact match on a run's test split, by source length in tokens:
    ``{length: (correct, total)}``. Test sources longer than training's data.max_len count."""
    model, src_tok, tgt_tok, config = load(path)
    test = Encoded(_splits(config)[2], src_tok, tgt_tok, max_len)
    hyps = translate_encoded(model, test, config.decode.max_len, tgt_tok)
    table: dict[int, list[int]] = {}
    for hyp, (_, ref), n in zip(hyps, test.text, test.src_len.tolist(), strict=True):
        cell = table.setdefault(n, [0, 0])
        cell[0] += hyp == ref
        cell[1] += 1
    return {n: (c, t) for n, (c, t) in sorted(table.items())}


def plot_length_study(tables: dict[str, dict[int, tuple[int, int]]], trained_up_to: int, path):
    """Exact match against source length for each labelled run; the untrained lengths shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, table in tables.items():
        lengths = list(table)
        ax.plot(lengths, [c / t for c, t in table.values()], marker="o", label=label)
    ax.axvspan(
        trained_up_to + 0.5,
        max(max(t) for t in tables.values()) + 0.5,
        color="0.9",
        label="longer than any training source",
    )
    ax.set_xlabel("source length (tokens)")
    ax.set_ylabel("exact match")
    ax.set_ylim(0, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
