"""word2vec: word vectors from the contexts words occur in (Mikolov et al. 2013), trained by
gensim's reference implementation, not by rnnkit's trainer.

    skip-gram (model.sg=1):  maximise  log s(u_c . v_w) + sum_k log s(-u_k . v_w)
                             for each word w and each context word c within model.window,
                             k: model.negative words drawn from the unigram^0.75 distribution
    CBOW      (model.sg=0):  the same, with v_w replaced by the mean of the context's vectors
    frequent words are dropped at random (model.sample), the learning rate falls linearly
    from model.alpha to model.min_alpha over model.epochs passes

The corpus is the training split of a word corpus (`rnnkit.data.word_corpora`: the World
English Bible by default), each line (verse) a sentence, cut into words exactly as every word
task cuts them (`WordVocab.split`); words seen fewer than data.min_count times are removed
before the windows are taken (as gensim itself does). One worker thread and a fixed seed (and
a fixed hash for gensim's initial vectors) make a run deterministic.

A run holds, besides run.json and config.json:

    vocab.json          the WordVocab: <pad>, <s>, </s>, <unk>, then the words by frequency
    model.safetensors   the vectors as an nn.Embedding(len(vocab), d) in vocabulary order,
                        the specials' rows zero: `rnnkit.tasks.load(run).model`
    vectors.txt         the same vectors in word2vec's text format ("n d", then "word v1 .. vd",
                        exact float32), for `model.vectors=RUN/vectors.txt` of the word tasks,
                        or gensim's KeyedVectors.load_word2vec_format
    metrics.jsonl       per epoch: gensim's summed training loss, the analogy accuracy, seconds
    metrics.json        corpus and vocabulary sizes, training time (train_seconds: gensim's
                        vocabulary and epochs, not the per-epoch analogy scoring), the analogy
                        accuracy on `rnnkit.data.analogies` (top-1, 3CosAdd), per relation,
                        and the questions skipped (a word outside the vocabulary)

``rnnkit words RUN --neighbours god --analogy "king - man + woman" --map words.png`` asks it
questions; ``rnnkit evaluate RUN`` scores the analogies again from the saved vectors.
"""

from __future__ import annotations

import difflib
import re
import time
import zlib
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch
from torch import nn

from rnnkit.config import choice, positive
from rnnkit.data.analogies import questions, score_analogies
from rnnkit.data.text import BUILTIN
from rnnkit.data.vectors import format_vectors
from rnnkit.data.word_corpora import NAMED, word_corpus
from rnnkit.data.words import WordVocab
from rnnkit.errors import ConfigError, DataError, RunDirError
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole

MAX_SENTENCE = 10_000  # gensim silently cuts longer sentences; rnnkit cuts them into pieces
COMMON = ("god", "king", "water", "love", "father", "city", "gold", "sin", "night", "bread")
MAP_WORDS = (
    "king", "queen", "prince", "man", "woman", "father", "mother", "son", "daughter", "brother",
    "sister", "husband", "wife", "god", "lord", "priest", "prophet", "servant", "city", "house",
    "land", "sea", "river", "mountain", "gold", "silver", "bronze", "bread", "wine", "water",
    "oil", "sheep", "ox", "camel", "horse", "day", "night", "sun", "moon", "love", "sin", "good",
    "evil",
)  # fmt: skip


@dataclass
class Word2VecData:
    corpus: str = "bible"  # bible | pydoc | python-docs | a UTF-8 file or folder
    lower: bool = True  # lower-case every word
    min_count: int = 5  # words seen fewer times are left out (and out of the windows)
    max_size: int = 0  # at most this many words in the vocabulary, specials included (0: all)


@dataclass
class Word2VecModel:
    sg: int = 1  # 1: skip-gram, 0: CBOW
    vector_size: int = 100  # dimensions of a word vector
    window: int = 5  # context words on each side (gensim draws a smaller one at random)
    negative: int = 5  # negative samples per context word
    epochs: int = 5  # passes over the corpus
    sample: float = 1e-3  # frequent words are dropped above this frequency (0: never)
    alpha: float = 0.025  # initial learning rate
    min_alpha: float = 0.0001  # final learning rate


@dataclass
class Word2VecTrain:
    seed: int = 0  # gensim's initial vectors, negative samples and down-sampling
    workers: int = 1  # gensim threads; more is faster, but the vectors are no longer reproducible
    device: str = "cpu"  # where the loaded nn.Embedding lives; gensim trains on the CPU


@dataclass
class Word2VecConfig:
    data: Word2VecData = field(default_factory=Word2VecData)
    model: Word2VecModel = field(default_factory=Word2VecModel)
    train: Word2VecTrain = field(default_factory=Word2VecTrain)

    def validate(self) -> None:
        positive(self.data, "min_count", prefix="data.")
        positive(self.data, "max_size", prefix="data.", allow_zero=True)
        m = self.model
        choice("model.sg", m.sg, (0, 1))
        positive(m, "vector_size", "window", "negative", "epochs", "alpha", prefix="model.")
        positive(m, "sample", "min_alpha", prefix="model.", allow_zero=True)
        if m.min_alpha > m.alpha:
            raise ConfigError(
                f"config key 'model.min_alpha' ({m.min_alpha}) exceeds model.alpha ({m.alpha})"
            )
        positive(self.train, "workers", prefix="train.")
        positive(self.train, "seed", prefix="train.", allow_zero=True)
        choice("train.device", self.train.device, ("auto", "cpu", "cuda"))


@dataclass
class Word2VecSetup:
    vocab: WordVocab
    sentences: list[list[str]] | None = None  # the training lines' words in the vocabulary
    lines: int = 0  # non-blank training lines
    words: int = 0  # words in them
    dropped: int = 0  # of which below data.min_count (or beyond data.max_size)


def stable_hash(text: str) -> int:
    """gensim's seed for a word's initial vector: Python's hash() changes from one process to
    the next (PYTHONHASHSEED), CRC-32 does not."""
    return zlib.crc32(text.encode("utf-8"))


def read_corpus(config: Word2VecConfig, vocab: WordVocab | None = None) -> Word2VecSetup:
    """The training lines cut into words, the vocabulary fitted on them (or the run's)."""
    d = config.data
    lines = [line for line in word_corpus(d.corpus)["train"] if line.strip()]
    splitter = vocab or WordVocab(["."], d.lower)  # only its normaliser and pre-tokenizer
    tokens = [splitter.split(line) for line in lines]
    if vocab is None:
        counts = WordVocab.count([], d.lower)
        counts.update(chain.from_iterable(tokens))
        vocab = WordVocab.from_counts(counts, d.lower, d.min_count, d.max_size)
    first, sentences, words = vocab.first_plain, [], 0
    for line in tokens:
        words += len(line)
        kept = [w for w in line if vocab.index.get(w, 0) >= first]
        for start in range(0, len(kept), MAX_SENTENCE):
            sentences.append(kept[start : start + MAX_SENTENCE])
    kept = sum(map(len, sentences))
    if not kept:
        raise DataError(f"the corpus {d.corpus} has no words to train on")
    return Word2VecSetup(vocab, sentences, len(lines), words, words - kept)


def train_gensim(config: Word2VecConfig, sentences, callbacks=()):
    """gensim's Word2Vec trained on ``sentences`` (lists of words, already filtered by the
    vocabulary, so min_count=1 here keeps exactly the vocabulary's words)."""
    from gensim.models import Word2Vec

    m = config.model
    model = Word2Vec(
        vector_size=m.vector_size,
        window=m.window,
        min_count=1,
        sg=m.sg,
        negative=m.negative,
        sample=m.sample,
        alpha=m.alpha,
        min_alpha=m.min_alpha,
        epochs=m.epochs,
        seed=config.train.seed,
        workers=config.train.workers,
        hashfxn=stable_hash,
    )
    model.build_vocab(sentences)
    model.train(
        sentences,
        total_examples=model.corpus_count,
        epochs=m.epochs,
        compute_loss=True,
        callbacks=list(callbacks),
    )
    return model


def weights_from(wv, vocab: WordVocab) -> torch.Tensor:
    """gensim's vectors as rows in vocabulary order (len(vocab), d); the specials' rows zero."""
    weight = torch.zeros(len(vocab), wv.vector_size)
    words = vocab.words
    missing = [w for w in words if w not in wv.key_to_index]
    if missing:
        raise DataError(f"gensim has no vector for {len(missing)} words, e.g. {missing[:5]}")
    rows = wv.vectors[[wv.key_to_index[w] for w in words]]
    weight[vocab.first_plain :] = torch.from_numpy(np.ascontiguousarray(rows))
    return weight


def keyed_vectors(vocab: WordVocab, weight: torch.Tensor):
    """gensim KeyedVectors of the vocabulary's words (specials aside) from an embedding."""
    from gensim.models import KeyedVectors

    rows = weight.detach().cpu().float().numpy()[vocab.first_plain :]
    kv = KeyedVectors(rows.shape[1])
    kv.add_vectors(vocab.words, rows)
    return kv


def analogy_metrics(kv) -> dict:
    """The analogy scores as flat metrics: analogy_accuracy, _correct, _asked, _skipped, and
    analogy_RELATION per relation."""
    result = score_analogies(kv)
    out = {f"analogy_{k}": result[k] for k in ("accuracy", "correct", "asked", "skipped")}
    for name, r in result["relations"].items():
        out[f"analogy_{name.replace(' ', '_')}"] = r["accuracy"]
    return out


def parse_analogy(text: str) -> tuple[list[str], list[str]]:
    """ "a - b + c" -> (positive [a, c], negative [b]): words joined by + and -, the first one
    positive unless it has a sign; at least two words and one positive."""
    tokens = re.findall(r"[+-]|[^\s+-]+", text)
    signs = ("+", "-")
    positive_words: list[str] = []
    negative_words: list[str] = []
    i, sign, ok = 0, "+", bool(tokens)
    if ok and tokens[0] in signs:
        sign, i = tokens[0], 1
    while ok:
        if i >= len(tokens) or tokens[i] in signs:  # a sign with no word after it
            ok = False
            break
        (positive_words if sign == "+" else negative_words).append(tokens[i])
        i += 1
        if i == len(tokens):
            break
        if tokens[i] not in signs:  # two words with no sign between them
            ok = False
            break
        sign, i = tokens[i], i + 1
    if ok and positive_words and len(positive_words) + len(negative_words) >= 2:
        return positive_words, negative_words
    raise DataError(
        f"malformed analogy {text!r}",
        'write words joined by + and -, e.g. --analogy "king - man + woman" (king is to man '
        "as ? is to woman)",
    )


class Word2VecTask(Task):
    api = {"vectors": "vectors", "neighbours": "neighbours", "analogy": "analogy"}
    name = "word2vec"
    description = "word vectors by gensim's word2vec (skip-gram / CBOW; corpus: the Bible)"
    Config = Word2VecConfig
    files = ("vocab.json",)
    commands = (
        Command(
            "words",
            "ask a word2vec run: nearest words, analogies, a 2-D map",
            "words_command",
            (
                arg("--neighbours", nargs="+", metavar="WORD", help="print each word's nearest"),
                arg(
                    "--analogy",
                    action="append",
                    metavar="EXPR",
                    help='"king - man + woman": the words nearest to that sum (repeatable)',
                ),
                arg("--map", metavar="PNG", help="draw a 2-D PCA map of --words into this file"),
                arg("--words", nargs="+", metavar="WORD", help="the words of --map"),
                arg(
                    "--top",
                    type=whole(1, 1000),
                    help="words printed (default 10 neighbours, 5 per analogy)",
                ),
            ),
        ),
    )

    # ------------------------------------------------------------------------- the contract
    def prepare(self, config: Word2VecConfig, run=None, data: bool = True) -> Word2VecSetup:
        vocab = None
        if run is not None:
            vocab = WordVocab.from_dict(run.read_json("vocab.json"), str(run.path / "vocab.json"))
        if not data:
            return Word2VecSetup(vocab)
        return read_corpus(config, vocab)

    def inputs(self, config: Word2VecConfig) -> dict[str, str]:
        corpus = config.data.corpus
        return {} if corpus in ("", BUILTIN, *NAMED) else {"data.corpus": corpus}

    def saved(self, setup: Word2VecSetup) -> dict[str, str]:
        return {"vocab.json": setup.vocab.to_json()}

    def build_model(self, config: Word2VecConfig, setup: Word2VecSetup) -> nn.Embedding:
        vocab = setup.vocab
        return nn.Embedding(len(vocab), config.model.vector_size, padding_idx=vocab.pad)

    def loop(self, config, setup, device, rank, world):
        if world > 1:
            raise ConfigError(
                "word2vec trains in one process (gensim's threads: train.workers)",
                "run it without torchrun",
            )
        return None  # gensim trains it: fit_outside

    def summary(self, config: Word2VecConfig, setup: Word2VecSetup, model, world: int) -> str:
        m = config.model
        return (
            f"{setup.lines:,} lines, {setup.words:,} words ({setup.dropped:,} below "
            f"data.min_count={config.data.min_count}), vocabulary {len(setup.vocab.words):,} "
            f"words; {'skip-gram' if m.sg else 'CBOW'}, {m.vector_size} dimensions, window "
            f"{m.window}, {m.negative} negative, {m.epochs} epochs, "
            f"{config.train.workers} worker(s)"
        )

    def fit_outside(self, model, config: Word2VecConfig, setup: Word2VecSetup, run, progress):
        """Train with gensim, save the vectors (weights, vectors.txt) and the metrics."""
        from gensim.models.callbacks import CallbackAny2Vec

        if run.inside("metrics.json").exists():
            raise RunDirError(
                f"the word2vec run {run.path} is complete; gensim's training cannot be resumed",
                "train a new run (with more model.epochs, say)",
            )
        run.truncate_log(0)  # an interrupted attempt's epochs: gensim starts again
        epochs = config.model.epochs
        items = questions()
        spent = {"train": 0.0}

        class Epochs(CallbackAny2Vec):
            def __init__(self):
                self.epoch, self.previous, self.start = 0, 0.0, time.perf_counter()

            def on_epoch_end(self, w2v):
                spent["train"] += time.perf_counter() - self.start
                total = w2v.get_latest_training_loss()
                loss, self.previous = total - self.previous, total
                self.epoch += 1
                record = {"step": self.epoch, "loss": loss}
                record["analogy_accuracy"] = score_analogies(w2v.wv, items)["accuracy"]
                record["seconds"] = round(spent["train"], 3)
                run.log(record)
                if progress:
                    print(
                        f"epoch {record['step']}/{epochs}: loss {loss:.4g}, analogies "
                        f"{record['analogy_accuracy']:.1%} ({spent['train']:.1f} s)",
                        flush=True,
                    )
                self.start = time.perf_counter()

        w2v = train_gensim(config, setup.sentences, [Epochs()])
        with torch.no_grad():
            model.weight.copy_(weights_from(w2v.wv, setup.vocab))
        run.save_model(model)
        run.write_text("vectors.txt", vectors_text(setup.vocab, model.weight))
        metrics = {
            "corpus_lines": setup.lines,
            "corpus_words": setup.words,
            "words_below_min_count": setup.dropped,
            "vocab_words": len(setup.vocab.words),
            "train_seconds": round(spent["train"], 3),
            "epochs": epochs,
            **analogy_metrics(keyed_vectors(setup.vocab, model.weight)),
        }
        run.write_json("metrics.json", metrics)
        return metrics

    def score(self, loaded: Loaded, **options) -> dict:
        """The analogy accuracy of the saved vectors (`rnnkit.data.analogies`)."""
        return analogy_metrics(keyed_vectors(loaded.setup.vocab, loaded.model.weight))

    def report(self, loaded: Loaded, **options):
        kv = keyed_vectors(loaded.setup.vocab, loaded.model.weight)
        return [
            ("Nearest words", lambda: neighbours_html(kv, loaded.setup.vocab)),
            ("Analogies", lambda: analogies_html(kv)),
            ("Word map", lambda: map_html(kv, loaded.setup.vocab)),
        ]

    # ------------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """Word ids (b, t) -> their vectors (b, t, d); the ids are the run's vocab.json."""
        from rnnkit.export import embedding_graph

        return embedding_graph(loaded.model)

    def vectors(self, loaded: Loaded):
        """`rnnkit.load(RUN).vectors()`: the run's word vectors as gensim KeyedVectors
        (``most_similar``, analogies, ``kv["word"]``)."""
        return keyed_vectors(loaded.setup.vocab, loaded.model.weight)

    def neighbours(self, loaded: Loaded, words: list[str], top: int = 10, kv=None) -> dict:
        """`rnnkit.load(RUN).neighbours(words)`: {word: [(neighbour, cosine)], nearest first}
        for each word (as the vocabulary normalises it); one DataError names every unknown."""
        kv = kv or self.vectors(loaded)
        found = lookup(kv, loaded.setup.vocab, words)
        return {w: kv.most_similar(w, topn=top) for w in found}

    def analogy(self, loaded: Loaded, text: str, top: int = 5, kv=None) -> list:
        """`rnnkit.load(RUN).analogy("king - man + woman")`: [(word, cosine)], the words whose
        vectors are nearest to the sum, the question's own words left out."""
        kv = kv or self.vectors(loaded)
        pos, neg = parse_analogy(text)
        vocab = loaded.setup.vocab
        pos, neg = lookup(kv, vocab, pos), lookup(kv, vocab, neg)
        return kv.most_similar(positive=pos, negative=neg, topn=top)

    def words_command(self, args) -> int:
        loaded = self.load(args.run)
        vocab = loaded.setup.vocab
        kv = keyed_vectors(vocab, loaded.model.weight)
        if args.words and not args.map:
            raise DataError("--words chooses the words of --map", "add --map FILE.png")
        if not (args.neighbours or args.analogy or args.map):
            args.neighbours = common_words(kv)
        found = (
            self.neighbours(loaded, args.neighbours, args.top or 10, kv) if args.neighbours else {}
        )
        for word, near in found.items():
            print(f"nearest to {word}:")
            _print(near)
        for text in args.analogy or ():
            answers = self.analogy(loaded, text, args.top or 5, kv)
            print(" ".join(re.findall(r"[+-]|[^\s+-]+", text)) + ":")
            _print(answers)
        if args.map:
            words = lookup(kv, vocab, args.words) if args.words else map_words(kv)
            from rnnkit.viz import save_png

            print(f"wrote {save_png(word_map(kv, words), args.map)}")
        return 0


def vectors_text(vocab: WordVocab, weight: torch.Tensor) -> str:
    """The vocabulary's words (specials aside) and their rows in word2vec's text format."""
    return format_vectors(vocab.words, weight.detach().cpu().numpy()[vocab.first_plain :])


def _print(pairs) -> None:
    width = max((len(w) for w, _ in pairs), default=0)
    for i, (w, sim) in enumerate(pairs, 1):
        print(f"  {i:2d}. {w:<{width}}  {sim:.4f}")


def lookup(kv, vocab: WordVocab, texts: list[str]) -> list[str]:
    """Each text as the one vocabulary word it normalises to, or one DataError naming every
    word that is not there (with close spellings)."""
    words, problems = [], []
    for text in texts:
        split = vocab.split(text)
        if len(split) != 1:
            problems.append(f"{text!r} is not one word ({len(split)} words: {' '.join(split)})")
            continue
        word = split[0]
        if word not in kv.key_to_index:
            close = difflib.get_close_matches(word, vocab.words, n=4, cutoff=0.75)
            near = f" (close: {', '.join(close)})" if close else ""
            problems.append(f"{word!r}{near}")
            continue
        words.append(word)
    if problems:
        raise DataError(
            f"not in this run's vocabulary of {len(vocab.words):,} words: " + "; ".join(problems),
            "words seen fewer than data.min_count times in training have no vector",
        )
    return words


def common_words(kv, n: int = 10) -> list[str]:
    """The report's and the command's default words: `COMMON` where the run knows them, else
    frequent words of three letters or more (past the 20 most frequent)."""
    found = [w for w in COMMON if w in kv.key_to_index]
    if len(found) >= n // 2:
        return found[:n]
    frequent = [w for w in kv.index_to_key[20:] if len(w) >= 3 and w.isalpha()]
    return (found + frequent)[:n]


def map_words(kv) -> list[str]:
    found = [w for w in MAP_WORDS if w in kv.key_to_index]
    if len(found) >= 12:
        return found
    frequent = [w for w in kv.index_to_key[20:] if len(w) >= 3 and w.isalpha()]
    return list(dict.fromkeys(found + frequent))[:40]


def word_map(kv, words: list[str]):
    """A scatter of ``words`` on the first two principal components of their unit vectors."""
    from sklearn.decomposition import PCA

    from rnnkit.viz import figure

    words = list(dict.fromkeys(words))
    if len(words) < 3:
        raise DataError(f"a map needs at least 3 distinct words, got {len(words)}")
    points = PCA(n_components=2).fit_transform(
        np.stack([kv.get_vector(w, norm=True) for w in words])
    )
    fig = figure(8, 6.5)
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], s=12, color="C0")
    for (x, y), w in zip(points, words, strict=True):
        ax.annotate(w, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=9)
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_title(f"{len(words)} words, PCA of their unit vectors", fontsize=10)
    ax.grid(True, alpha=0.3)
    return fig


def neighbours_html(kv, vocab: WordVocab) -> str:
    from rnnkit.viz.report import table_html

    rows = {
        w: ", ".join(f"{n} {s:.2f}" for n, s in kv.most_similar(w, topn=8))
        for w in common_words(kv)
    }
    return "<p>the 8 nearest words by cosine similarity</p>" + table_html(rows)


def analogies_html(kv) -> str:
    import html

    from rnnkit.viz.report import table_html

    result = score_analogies(kv, keep=3)
    rows = {"all": f"{result['accuracy']:.1%} of {result['asked']:,} ({result['skipped']} skipped)"}
    examples = []
    for name, r in result["relations"].items():
        rows[name] = f"{r['accuracy']:.1%} of {r['asked']:,} ({r['skipped']} skipped)"
        for a, b, c, d, answer in r["examples"]:
            mark = "right" if answer == d else f"wrong, expected {d}"
            examples.append(f"{b} - {a} + {c} = {answer} ({mark})")
    intro = (
        "<p>top-1 accuracy on <code>rnnkit.data.analogies</code>: a:b :: c:d is right when "
        "the word nearest to b - a + c (a, b, c excluded) is d</p>"
    )
    listing = "<pre>" + html.escape("\n".join(examples)) + "</pre>" if examples else ""
    return intro + table_html(rows) + listing


def map_html(kv, vocab: WordVocab) -> str:
    from rnnkit.viz.report import image_html

    return image_html(word_map(kv, map_words(kv)))
