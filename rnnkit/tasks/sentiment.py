"""Sentiment of a sentence, many-to-one: a recurrent network reads the words (or characters)
and says positive or negative, or the rating itself.

    x_t = E[w_t]                                   word (or character) embeddings  (b, t, e)
    h_1..h_T = BiLSTM(x_1..x_T)                    the recurrent stack             (b, t, 2h)
    s = pool(h_1..h_T)    last | mean | max | attention over the real steps        (b, 2h)
    polarity:  p(y | x) = softmax(W s + b)         y in {negative, positive}       (b, 2)
    rating:    r = w . s + b                       the mean human rating, -4..4     (b,)
    polarity with model.rating_loss = lambda: both heads, and
        loss = CE + lambda * MSE(r, rating / 4)   (the graded ratings say more than their sign)

Data: the human-rated sentences shipped in the vaderSentiment 3.3.2 source distribution
(`rnnkit.data.sentiment`: movie-review snippets, tweets, Amazon reviews, New York Times),
with a fixed stratified split. At the end of training the run also fits, on the same split,
the two baselines a reviewer asks for (`rnnkit.tasks.sentiment_eval`): TF-IDF + logistic
regression, and a bag of embeddings (the mean of the model's own word vectors) + logistic
regression; and scores all of them on the built-in contrast pairs (`rnnkit.data.contrast`),
where the bag-of-words models are at chance by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.config import choice, positive
from rnnkit.data.batching import EpochBatches, pad
from rnnkit.data.tokenize import CharTokenizer, load_tokenizer
from rnnkit.data.words import WordVocab
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.sequence import POOLS, SequenceModel, SequenceModelConfig
from rnnkit.tasks.base import Command, Loaded, Task, arg
from rnnkit.training import TrainConfig

LABELS = ("negative", "positive")


@dataclass
class SentimentData:
    domain: str = "movies"  # movies | tweets | amazon | nyt (the vaderSentiment sets)
    target: str = "polarity"  # polarity (sign of the mean rating, zeros dropped) | rating
    input: str = "word"  # word | char
    lower: bool = True  # lower-case words
    min_count: int = 1  # training words seen fewer times become <unk>
    max_size: int = 0  # vocabulary limit, specials included (0: all)
    batch_size: int = 32
    split_seed: int = 0  # the fixed stratified split (80/10/10)
    also_train: str = ""  # other domains whose training splits join this one's: "tweets,amazon"


@dataclass
class SentimentModel(SequenceModelConfig):
    cell: str = "lstm"
    hidden: int = 128
    bidirectional: bool = True
    head: str = "max"  # last | mean | max | attention
    head_dropout: float = 0.5
    embed: int = 128
    input_dropout: float = 0.3  # dropout on the word vectors
    vectors: str = ""  # a word2vec / GloVe text file to start the embedding from
    freeze_vectors: bool = False
    lexicon: bool = False  # append each word's VADER lexicon valence (rnnkit.data.lexicon)
    rating_loss: float = 0.0  # polarity: weight of a second head regressing the mean rating
    ngrams: int = 0  # n > 0: a linear bag of the 1..n-grams joins the read-out (wide and deep)
    ngram_buckets: int = 262144  # hashed rows shared by the 2..n-grams
    ngram_dropout: float = 0.0  # drop each n-gram occurrence in training with this probability


@dataclass
class SentimentConfig:
    data: SentimentData = field(default_factory=SentimentData)
    model: SentimentModel = field(default_factory=SentimentModel)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1500, lr=2e-3, eval_every=100, clip=5.0)
    )

    def extra_domains(self) -> list[str]:
        return [x.strip() for x in self.data.also_train.split(",") if x.strip()]

    def validate(self) -> None:
        from rnnkit.data.sentiment import DOMAINS

        d, m = self.data, self.model
        choice("data.domain", d.domain, DOMAINS)
        choice("data.target", d.target, ("polarity", "rating"))
        choice("data.input", d.input, ("word", "char"))
        for extra in self.extra_domains():
            choice("data.also_train", extra, tuple(x for x in DOMAINS if x != d.domain))
        positive(d, "batch_size", "min_count", prefix="data.")
        positive(d, "max_size", prefix="data.", allow_zero=True)
        m.validate_model()
        choice("model.head", m.head, POOLS)
        positive(m, "embed", prefix="model.")
        positive(m, "rating_loss", "ngrams", prefix="model.", allow_zero=True)
        positive(m, "ngram_buckets", prefix="model.")
        if not 0 <= m.ngram_dropout < 1:
            raise ConfigError(
                f"config key 'model.ngram_dropout' must be in [0, 1), got {m.ngram_dropout}"
            )
        if m.ngrams and d.input != "word":
            raise ConfigError("config key 'model.ngrams' needs data.input=word", "drop it")
        if m.rating_loss and d.target != "polarity":
            raise ConfigError(
                "config key 'model.rating_loss' is for data.target=polarity (a rating target "
                "is the rating already)",
                "drop model.rating_loss",
            )
        if m.vectors and d.input != "word":
            raise ConfigError(
                "config key 'model.vectors' needs data.input=word", "drop model.vectors"
            )
        if m.freeze_vectors and not m.vectors:
            raise ConfigError(
                "config key 'model.freeze_vectors' needs model.vectors (a vector file)",
                "set model.vectors=PATH, or drop model.freeze_vectors",
            )
        self.train.validate()


@dataclass
class Split:
    """One split encoded: the texts, their ids and targets."""

    texts: list[str]
    ids: list[list[int]]
    y: np.ndarray  # (n,) int labels or float ratings
    ratings: np.ndarray  # (n,) the mean human ratings of the same sentences

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class SentimentSetup:
    vocab: WordVocab | CharTokenizer
    splits: dict[str, Split] = field(default_factory=dict)
    dropped: int = 0  # sentences with no tokens
    vectors: Tensor | None = None
    coverage: dict | None = None
    lexicon: np.ndarray | None = None  # (v, 2) features of each vocabulary entry


def make_vocab(config: SentimentConfig, texts: list[str]):
    d = config.data
    if d.input == "char":
        return CharTokenizer.train(texts)
    return WordVocab.train(texts, d.lower, d.min_count, d.max_size)


def load_vocab(data: dict, where: str):
    if isinstance(data, dict) and data.get("kind") == "words":
        return WordVocab.from_dict(data, where)
    try:
        return load_tokenizer(json.dumps(data))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where} is not a vocabulary rnnkit wrote", "train again") from None


def encode(vocab, texts: list[str]) -> list[list[int]]:
    if isinstance(vocab, WordVocab):
        return vocab.encode_batch(texts)
    return [vocab.encode(t) for t in texts]


def batch_of(split: Split, rows, device, regression: bool):
    """Padded ids (b, L), lengths (b,), targets (b,) and ratings (b,) of ``rows``."""
    rows = [int(r) for r in rows]
    x, lengths = pad([split.ids[r] for r in rows], 0)
    y = torch.as_tensor(split.y[rows], dtype=torch.float32 if regression else torch.long)
    ratings = torch.as_tensor(split.ratings[rows], dtype=torch.float32)
    return x.to(device), lengths, y.to(device), ratings.to(device)


def score_of(y: Tensor, regression: bool) -> Tensor:
    """The model's outputs (b, o) -> the rating (regression) or p(positive) (b,)."""
    return y[:, 0] if regression else torch.softmax(y[:, :2], -1)[:, 1]


@torch.no_grad()
def predict(model, vocab, texts: list[str], regression: bool, batch: int = 256):
    """(predictions (n,), scores): the class and p(positive) per text, or the rating twice."""
    model.eval()
    device = next(model.parameters()).device
    ids = encode(vocab, texts)
    empty = [t for t, i in zip(texts, ids, strict=True) if not i]
    if empty:
        raise DataError(
            f"{len(empty)} text(s) have no {vocab.what}s to read, e.g. {empty[0]!r}",
            "give each text at least one word",
        )
    out = []
    order = np.argsort([len(i) for i in ids], kind="stable")  # similar lengths together
    for start in range(0, len(ids), batch):
        rows = order[start : start + batch]
        x, lengths = pad([ids[r] for r in rows], vocab.pad)
        y, _ = model(x.to(device), lengths=lengths)
        out.append(score_of(y, regression))
    scores = torch.empty(len(ids))
    scores[torch.as_tensor(order)] = torch.cat(out).float().cpu()
    scores = scores.numpy()
    return (scores, scores) if regression else ((scores > 0.5).astype(int), scores)


class SentimentLoop:
    def __init__(self, setup: SentimentSetup, config: SentimentConfig, device, rank=0, world=1):
        self.setup, self.c, self.device = setup, config, device
        self.rank, self.world = rank, world
        self.regression = config.data.target == "rating"
        self.metric, self.higher_is_better = (
            ("val_mae", False) if self.regression else ("val_accuracy", True)
        )
        train = setup.splits["train"]
        self.lengths = torch.tensor([len(i) for i in train.ids])
        self._rows = EpochBatches(
            self.lengths, config.data.batch_size, config.train.seed, rank, world
        )

    def train_step(self, model, micro: int) -> Tensor:
        split = self.setup.splits["train"]
        x, lengths, y, ratings = batch_of(split, self._rows(micro), self.device, self.regression)
        out, _ = model(x, lengths=lengths)  # (b, o)
        if self.regression:
            return F.mse_loss(out[:, 0], y)
        loss = F.cross_entropy(out[:, :2], y)
        if self.c.model.rating_loss:
            loss = loss + self.c.model.rating_loss * F.mse_loss(out[:, 2], ratings / 4)
        return loss

    def evaluate(self, model) -> dict:
        val = self.setup.splits["valid"]
        pred, _ = predict(model, self.setup.vocab, val.texts, self.regression)
        if self.regression:
            signed = val.y != 0  # the polarity of the rated sentences that have one
            agree = (pred[signed] > 0) == (val.y[signed] > 0)
            return {
                "val_mae": float(np.abs(pred - val.y).mean()),
                "val_sign_accuracy": float(agree.mean()),
            }
        return {"val_accuracy": float((pred == val.y).mean())}

    def state_dict(self) -> dict[str, Tensor]:
        return {}  # the data order is a function of the step

    def load_state_dict(self, state) -> None:
        pass


class Sentiment(Task):
    api = {"classify": "classify"}
    name = "sentiment"
    description = "sentence sentiment, many-to-one (built-in: rated movie-review sentences)"
    Config = SentimentConfig
    files = ("vocab.json",)
    test_after_training = True
    commands = (
        Command(
            "classify",
            "the sentiment of each text (arguments, or one per line of standard input)",
            "classify_command",
            (
                arg("texts", nargs="*", help="texts to classify (default: read standard input)"),
                arg("--explain", metavar="HTML", help="write per-word attributions as HTML"),
                arg("--json", action="store_true", help="one JSON object per text"),
            ),
        ),
    )

    # ------------------------------------------------------------------------- the contract
    def prepare(self, config: SentimentConfig, run=None, data: bool = True) -> SentimentSetup:
        vocab = None
        if run is not None:
            vocab = load_vocab(run.read_json("vocab.json"), str(run.path / "vocab.json"))
        if not data:
            return SentimentSetup(vocab)
        from rnnkit.data.sentiment import sentiment_split

        d = config.data
        raw = sentiment_split(d.domain, d.target, d.split_seed, with_ratings=True)
        for extra in config.extra_domains():  # more training sentences, the same held-out ones
            more = sentiment_split(extra, d.target, d.split_seed, with_ratings=True)["train"]
            raw["train"] = tuple(
                list(a) + list(b) if isinstance(a, list) else np.concatenate([a, b])
                for a, b in zip(raw["train"], more, strict=True)
            )
        vocab = vocab or make_vocab(config, list(raw["train"][0]))
        splits, dropped = {}, 0
        for name, (texts, y, ratings) in raw.items():
            ids = encode(vocab, list(texts))
            keep = [i for i, seq in enumerate(ids) if seq]
            dropped += len(ids) - len(keep)
            splits[name] = Split(
                [texts[i] for i in keep],
                [ids[i] for i in keep],
                np.asarray(y)[keep],
                np.asarray(ratings)[keep],
            )
        setup = SentimentSetup(vocab, splits, dropped)
        if config.model.lexicon and run is None:  # a saved run has them in its weights
            from rnnkit.data.lexicon import lexicon_features

            setup.lexicon = lexicon_features(vocab.tokens)
        if config.model.vectors and run is None:
            from rnnkit.data.vectors import embedding_from_vectors

            setup.vectors, setup.coverage = embedding_from_vectors(
                vocab, config.model.vectors, config.model.embed
            )
        return setup

    def inputs(self, config: SentimentConfig) -> dict[str, str]:
        return {"model.vectors": config.model.vectors} if config.model.vectors else {}

    def saved(self, setup: SentimentSetup) -> dict[str, str]:
        return {"vocab.json": setup.vocab.to_json()}

    def build_model(self, config: SentimentConfig, setup: SentimentSetup) -> SequenceModel:
        outputs = 1 if config.data.target == "rating" else len(LABELS)
        outputs += 1 if config.data.target == "polarity" and config.model.rating_loss else 0
        vocab, m = setup.vocab, config.model
        wide = None
        if m.ngrams:
            from rnnkit.models.ngrams import NgramBag

            wide = NgramBag(len(vocab), outputs, m.ngrams, m.ngram_buckets, m.ngram_dropout)
        model = SequenceModel(
            len(vocab), outputs, m, vocab=True, embed=m.embed, padding_idx=vocab.pad,
            token_features=2 if m.lexicon else 0, wide=wide,
        )  # fmt: skip
        if setup.lexicon is not None:
            model.token_features.copy_(torch.from_numpy(setup.lexicon))
        if setup.vectors is not None:
            with torch.no_grad():
                model.embed.weight.copy_(setup.vectors)
            model.embed.weight.requires_grad_(not m.freeze_vectors)
        return model

    def loop(self, config, setup, device, rank, world) -> SentimentLoop:
        return SentimentLoop(setup, config, device, rank, world)

    def summary(self, config, setup: SentimentSetup, model, world: int) -> str:
        sizes = ", ".join(f"{len(s):,} {k}" for k, s in setup.splits.items())
        params = sum(p.numel() for p in model.parameters())
        text = f"{sizes} sentences; vocabulary {len(setup.vocab):,}; {params:,} parameters"
        if setup.dropped:
            text += f"; {setup.dropped} sentences without tokens dropped"
        if setup.coverage:
            c = setup.coverage
            text += f"; vectors cover {c['covered']:,} of {c['total']:,} words"
        return text

    def score(self, loaded: Loaded, **options) -> dict:
        """Test metrics of the model and of both baselines on the same split, and all of them
        on the contrast pairs (`rnnkit.tasks.sentiment_inspect.compare`)."""
        from rnnkit.tasks.sentiment_inspect import compare

        setup = self.prepare(loaded.config, loaded.run)
        return compare(loaded.model, setup, loaded.config)

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.sentiment_inspect import report_sections

        return report_sections(self, loaded)

    # ------------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """token ids (b, t) and lengths (b,) -> the read-out's scores (see `score_of`)."""
        from rnnkit.export import sequence_model_graph

        return sequence_model_graph(loaded.model, vocab_size=len(loaded.setup.vocab))

    def classify(self, path: str | Path | Loaded, texts: list[str]) -> list[dict]:
        """One dict per text: {"text", "label", "p_positive"} (or {"text", "rating"}), and the
        share of its words the model does not know."""
        loaded = path if isinstance(path, Loaded) else self.load(path)
        vocab, regression = loaded.setup.vocab, loaded.config.data.target == "rating"
        if not texts:
            raise DataError(
                "no text to classify", 'give a text, e.g. rnnkit classify RUN "a fine film"'
            )
        blank = [i for i, t in enumerate(texts) if not t.strip()]
        if blank:
            raise DataError(f"text {blank[0] + 1} is empty", "give each text at least one word")
        pred, scores = predict(loaded.model, vocab, texts, regression)
        out = []
        for text, p, s in zip(texts, pred, scores, strict=True):
            ids = encode(vocab, [text])[0]
            unknown = sum(i == vocab.unk for i in ids) / len(ids)
            row = {"text": text, "unknown": unknown}
            row |= (
                {"rating": float(s)}
                if regression
                else {"label": LABELS[int(p)], "p_positive": float(s)}
            )
            out.append(row)
        return out

    def classify_command(self, args) -> int:
        import sys

        texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        loaded = self.load(args.run)
        rows = self.classify(loaded, texts)
        for row in rows:
            if args.json:
                print(json.dumps(row, ensure_ascii=False))
                continue
            what = (
                f"{row['rating']:+.2f}"
                if "rating" in row
                else f"{row['label']} {row['p_positive']:.3f}"
            )
            note = f"  ({row['unknown']:.0%} unknown words)" if row["unknown"] else ""
            print(f"{what}\t{row['text']}{note}")
        if args.explain:
            from rnnkit.tasks.sentiment_inspect import attributions_html

            Path(args.explain).write_text(attributions_html(loaded, texts), encoding="utf-8")
            print(f"wrote {args.explain}")
        return 0
