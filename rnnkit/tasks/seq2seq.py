"""Sequence to sequence with attention: dates, numbers to words, and real sentence pairs.

Three registered tasks share this module and differ only in their defaults:

    dates      "5 mars 2024" -> "2024-03-05"                      characters -> characters
    numbers    4721 -> "quatre mille sept cent vingt et un"       characters -> words
    translate  English -> French UI messages (gettext), English -> Spanish Bible verses
               (data.source=bible), or your TSV                   subwords -> subwords

Training minimises the cross-entropy of the next target token with teacher forcing, optionally
scheduled (Bengio et al. 2015); evaluation decodes greedily (validation) or with beam search
(test) and reports exact match, BLEU and chrF (sacrebleu).

Every output carries a confidence, the geometric mean of its tokens' probabilities,

    confidence(Y | X) = exp( log p(Y | X) / |Y| )        |Y| counts EOS

calibrated at the end of training on the validation pairs (`rnnkit.tasks.seq2seq_confidence`):
calibration.json holds accuracy by confidence and the threshold below which `translate` warns.
A task may also check its outputs (`check_output`): the dates task refuses 2020-02-31.

The Bible pairs (`rnnkit.data.bible.verse_pairs`: World English Bible -> Reina-Valera 1909,
Debian sword-text-web and sword-text-sparv) are split by whole books, not by pairs: training
on the training books, validation and test on up to data.n_val / data.n_test verses (a seeded
sample, in order) of the held-out books of `rnnkit.data.bible.SPLIT`, so the test BLEU and
chrF are on books the model never saw.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import decoding
from rnnkit.config import choice, positive
from rnnkit.data import bible
from rnnkit.data import pairs as pair_sources
from rnnkit.data.batching import EpochRows, pad
from rnnkit.data.tokenize import KINDS as TOKENIZERS
from rnnkit.data.tokenize import load_tokenizer, train_tokenizer
from rnnkit.data.vocab import BOS, EOS, PAD
from rnnkit.errors import ConfigError, DataError, RnnkitError, RunDirError
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqModelConfig
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole
from rnnkit.tasks.seq2seq_confidence import CALIBRATION, Translation, calibrate, confidence
from rnnkit.training import TrainConfig


@dataclass
class PairData:
    source: str = "dates"  # dates | numbers | gettext | bible | tsv
    path: str = ""  # the TSV file (source=tsv)
    lang: str = "fr"  # numbers: num2words language; gettext: target language (fr, de, es...)
    to_words: bool = True  # numbers: digits -> words (false: words -> digits)
    n: int = 40000  # pairs to generate (dates, numbers)
    n_val: int = 500  # validation pairs (distinct sources)
    n_test: int = 1000  # test pairs (distinct sources)
    src_tokenizer: str = "char"  # char | word | subword
    tgt_tokenizer: str = "char"  # char | word | subword
    vocab_size: int = 2000  # subword and word vocabularies (0: every word)
    max_len: int = 60  # training pairs with a side longer than this many tokens are dropped
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
    beam: int = 5  # beam size for test evaluation and decoding (translate, caption)
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
        d, t = self.data, self.teacher
        choice("data.source", d.source, ("dates", "numbers", "gettext", "bible", "tsv"))
        choice("data.src_tokenizer", d.src_tokenizer, tuple(TOKENIZERS))
        choice("data.tgt_tokenizer", d.tgt_tokenizer, tuple(TOKENIZERS))
        self.model.validate_model()
        choice(
            "teacher.schedule", t.schedule, ("constant", "linear", "exponential", "inverse_sigmoid")
        )
        positive(d, "n", "batch_size", "max_len", "n_test", "n_val", prefix="data.")
        positive(self.decode, "beam", "max_len", prefix="decode.")
        if d.source == "tsv" and not d.path:
            raise ConfigError("data.source=tsv needs data.path=FILE (source<TAB>target lines)")
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
        return pair_sources.dates(d.n, d.seed, day_first=getattr(d, "day_first", True))
    if d.source == "numbers":
        return pair_sources.numbers(d.n, d.seed, d.lang, to_words=d.to_words)
    if d.source == "gettext":
        return pair_sources.gettext_pairs(d.lang)
    if d.source == "bible":
        return [(en, es) for _, en, es in bible.verse_pairs("WEB", "SpaRV")]
    return pair_sources.tsv(d.path)


def bible_splits(d: PairData):
    """(train, val, test) Bible verse pairs by book (`rnnkit.data.bible.SPLIT`): every pair of
    the training books; up to ``n_val`` / ``n_test`` pairs of the held-out books, drawn with
    ``seed`` and kept in canonical order."""
    parts: dict[str, list[tuple[str, str]]] = {"train": [], "valid": [], "test": []}
    for ref, en, es in bible.verse_pairs("WEB", "SpaRV"):
        parts[bible.split_of(ref.rpartition(" ")[0])].append((en, es))
    rng = random.Random(d.seed)

    def sample(pairs, n):
        return [pairs[i] for i in sorted(rng.sample(range(len(pairs)), min(n, len(pairs))))]

    return parts["train"], sample(parts["valid"], d.n_val), sample(parts["test"], d.n_test)


class Encoded:
    """Pairs as padded id tensors: src (n, S), src_len (n,), tgt (n, T+2) with BOS ... EOS."""

    def __init__(self, pairs, src_tok, tgt_tok, max_len: int | None = None):
        kept, self.too_long = [], 0  # too_long: pairs dropped for a side over max_len
        for s, t in pairs:
            si, ti = src_tok.encode(s), tgt_tok.encode(t)
            if max_len is not None and (len(si) > max_len or len(ti) > max_len):
                self.too_long += 1
            elif si and ti:
                kept.append((s, t, si, ti))
        if not kept:
            raise DataError("no pair is left after tokenizing", "raise data.max_len")
        self.text = [(s, t) for s, t, _, _ in kept]
        self.src, self.src_len = pad([si for _, _, si, _ in kept], PAD)  # (n, S), (n,)
        self.tgt, _ = pad([[BOS, *ti, EOS] for _, _, _, ti in kept], PAD)  # (n, T+2)

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
        self._rows = EpochRows(len(train), config.data.batch_size, config.train.seed, rank, world)

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
    if d.source == "bible":
        return bible_splits(d)
    return pair_sources.split(load_pairs(d), d.n_val, d.n_test, d.seed)


# ----------------------------------------------------------------------------- the tasks


@dataclass
class Seq2SeqSetup:
    src_tok: object  # tokenizers of rnnkit.data.tokenize
    tgt_tok: object
    train: Encoded | None = None  # None when loaded for inference
    val: Encoded | None = None
    n_test: int = 0


def _read_tokenizer(run, name: str):
    text = run.read_text(name)
    try:
        return load_tokenizer(text)
    except Exception as err:  # noqa: BLE001 - any malformed content, from json or tokenizers
        raise RunDirError(
            f"{run.path / name} is not a tokenizer rnnkit wrote ({type(err).__name__}: {err})",
            "the file was changed after training; restore it, or train again",
        ) from None


class Seq2SeqTask(Task):
    """The shared machinery of the three sequence-to-sequence tasks; each differs in defaults."""

    api = {"translate": "translate_texts"}

    files = ("src_tokenizer.json", "tgt_tokenizer.json")
    splits = ("val", "test")  # `rnnkit evaluate RUN split=val`: index + 1 in _splits
    kind_of_input = "like the training inputs"  # in the low-confidence note: "may not be ..."
    test_after_training = True  # the final metrics hold the test split's
    commands = (
        Command(
            "translate",
            "translate text with a sequence-to-sequence run",
            "translate_command",
            (
                arg("text", nargs="?", help="the input (default: each line of standard input)"),
                arg("--beam", type=whole(1, 1000), help="beam size (default: the run's)"),
                arg("--n-best", type=whole(1, 1000), default=1, help="print this many, <= beam"),
                arg("--attention", metavar="PNG", help="save the attention map of the best"),
                arg(
                    "--confidence",
                    action="store_true",
                    help="print each output's confidence (0-1) before it, tab-separated",
                ),
            ),
            run_help="run directory of a dates, numbers or translate task",
        ),
        Command(
            "plot calibration",
            "accuracy by confidence on the validation inputs, with the warning threshold",
            "plot_calibration",
            (arg("--out", required=True, metavar="PNG", help="the PNG file to write"),),
        ),
    )

    def check_output(self, text: str) -> str | None:
        """What is wrong with an output (shown instead of it), or None; default: nothing."""
        return None

    def after_training(self, loaded: Loaded) -> dict:
        """Calibrate the confidence on the validation pairs (beam search, as `translate`
        decodes) and write calibration.json; its threshold and ECE join the final metrics."""
        val = _splits(loaded.config)[1]
        results = self.translate_many(loaded, [src for src, _ in val])
        kept = [
            (r, tgt) for r, (_, tgt) in zip(results, val, strict=True) if isinstance(r, Translation)
        ]
        cal = calibrate([r.confidence for r, _ in kept], [r.text == tgt for r, tgt in kept])
        loaded.run.write_json(CALIBRATION, cal)
        return {"val_confidence_threshold": cal["threshold"], "val_ece": cal["ece"]}

    def calibration(self, loaded: Loaded) -> dict | None:
        """The run's calibration.json (None for a run trained before it was written)."""
        if not (loaded.run.path / CALIBRATION).exists():
            return None
        cal = loaded.run.read_json(CALIBRATION, dict)
        if not isinstance(cal.get("threshold"), int | float) or not isinstance(
            cal.get("bins"), list
        ):
            raise RunDirError(
                f"{loaded.run.path / CALIBRATION} has no threshold and bins",
                "the file was changed after training; delete it (no warnings) or train again",
            )
        return cal

    def report(self, loaded: Loaded, **options):
        """The calibration of the confidence on validation, when the run has one."""
        from rnnkit.tasks.seq2seq_confidence import calibration_figure
        from rnnkit.viz.report import image_html

        cal = self.calibration(loaded)
        if cal is None:
            return []
        return [("Confidence on validation", lambda: image_html(calibration_figure(cal)))]

    def plot_calibration(self, args) -> int:
        from rnnkit.tasks.seq2seq_confidence import calibration_figure
        from rnnkit.viz import save_png

        loaded = self.load(args.run)
        cal = self.calibration(loaded)
        if cal is None:
            raise RunDirError(
                f"run {args.run} has no {CALIBRATION} (trained before rnnkit calibrated)",
                "train it again to get one",
            )
        print(f"wrote {save_png(calibration_figure(cal), args.out)}")
        return 0

    def prepare(self, config: Seq2SeqConfig, run=None, data: bool = True) -> Seq2SeqSetup:
        d = config.data
        if run is not None:
            src_tok, tgt_tok = (_read_tokenizer(run, name) for name in self.files)
            if not data:
                return Seq2SeqSetup(src_tok, tgt_tok)
        train_p, val_p, test_p = _splits(config)
        if run is None:
            src_tok = train_tokenizer(d.src_tokenizer, [s for s, _ in train_p], d.vocab_size)
            tgt_tok = train_tokenizer(d.tgt_tokenizer, [t for _, t in train_p], d.vocab_size)
        train = Encoded(train_p, src_tok, tgt_tok, d.max_len)
        val = Encoded(val_p, src_tok, tgt_tok)
        return Seq2SeqSetup(src_tok, tgt_tok, train, val, len(test_p))

    def inputs(self, config: Seq2SeqConfig) -> dict[str, str]:
        return {"data.path": config.data.path} if config.data.source == "tsv" else {}

    def saved(self, setup: Seq2SeqSetup) -> dict[str, str]:
        return {
            "src_tokenizer.json": setup.src_tok.to_json(),
            "tgt_tokenizer.json": setup.tgt_tok.to_json(),
        }

    def build_model(self, config: Seq2SeqConfig, setup: Seq2SeqSetup) -> Seq2Seq:
        return Seq2Seq(len(setup.src_tok), len(setup.tgt_tok), config.model)

    def loop(self, config, setup: Seq2SeqSetup, device, rank, world) -> Seq2SeqLoop:
        return Seq2SeqLoop(setup.train, setup.val, setup.tgt_tok, config, device, rank, world)

    def summary(self, config, setup: Seq2SeqSetup, model, world: int) -> str:
        params = sum(p.numel() for p in model.parameters())
        dropped = setup.train.too_long
        too_long = f" ({dropped:,} longer than data.max_len={config.data.max_len} dropped)"
        return (
            f"{len(setup.train):,} training{too_long if dropped else ''}, "
            f"{len(setup.val):,} validation, "
            f"{setup.n_test:,} test pairs; vocabularies {len(setup.src_tok)} -> "
            f"{len(setup.tgt_tok)}; {params:,} parameters; attention {config.model.attention}"
        )

    def score(self, loaded: Loaded, split: str = "test", **options) -> dict:
        """Exact match, BLEU and chrF with beam search on the test (or ``split="val"``)
        pairs of the split made at training."""
        import sacrebleu

        model, config, setup = loaded.model, loaded.config, loaded.setup
        test = Encoded(_splits(config)[self.splits.index(split) + 1], setup.src_tok, setup.tgt_tok)
        d = config.decode
        hyps = translate_encoded(model, test, d.max_len, setup.tgt_tok, d.beam, d.alpha)
        refs = [t for _, t in test.text]
        return {
            f"{split}_exact": sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs),
            f"{split}_bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            f"{split}_chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            f"{split}_pairs": len(refs),
        }

    # ------------------------------------------------------------------------- using a run
    def translate(
        self, loaded: Loaded, text: str, beam: int | None = None, n_best: int = 1, attention=True
    ) -> Translation:
        """Translate one input: a `Translation` (the best output, its confidence and whether it
        is below the run's threshold, the task's check of it, the n-best list, the attention
        map of the best when asked for, and its token labels)."""
        out = self.translate_many(loaded, [text], beam, n_best, attention)[0]
        if isinstance(out, RnnkitError):
            raise out
        return out

    def export_graph(self, loaded: Loaded):
        """Two graphs: the encoder (source ids and lengths -> memory and the decoder's first
        state) and one decoder step (previous token, state, memory -> logits, next state,
        attention); the search (greedy or beam) is the caller's."""
        from rnnkit.export import seq2seq_graphs

        setup = loaded.setup
        return seq2seq_graphs(loaded.model, len(setup.src_tok), len(setup.tgt_tok))

    def translate_texts(
        self,
        loaded: Loaded,
        texts: str | list[str],
        beam: int | None = None,
        n_best: int = 1,
        attention: bool = False,
    ):
        """`rnnkit.load(RUN).translate(...)`: a `Translation` for one text, a list of them for
        a list (decoded in batches); the first input that cannot be translated raises its
        error, naming its position."""
        if isinstance(texts, str):
            return self.translate(loaded, texts, beam, n_best, attention)
        results = self.translate_many(loaded, list(texts), beam, n_best, attention)
        for i, r in enumerate(results):
            if isinstance(r, RnnkitError):
                raise type(r)(f"input {i} ({texts[i][:40]!r}): {r.message}", r.hint)
        return results

    def translate_many(
        self,
        loaded: Loaded,
        texts: list[str],
        beam: int | None = None,
        n_best: int = 1,
        attention: bool = False,
        batch: int = 64,
    ) -> list:
        """Translate many inputs, ``batch`` at a time through one beam search each. Returns
        per input what `translate` does, or the DataError that input got (the others go on)."""
        config = loaded.config
        cal = self.calibration(loaded)
        threshold = cal["threshold"] if cal else None
        beam = beam or config.decode.beam
        if n_best > beam:
            raise ConfigError(
                f"--n-best {n_best} asks for more hypotheses than the beam keeps ({beam})",
                f"raise --beam to at least {n_best}, or ask for fewer",
            )
        results: list = [None] * len(texts)
        ready = []
        for i, text in enumerate(texts):
            try:
                ready.append((i, self._source_ids(loaded, text)))
            except DataError as err:
                results[i] = err
        for start in range(0, len(ready), batch):
            chunk = ready[start : start + batch]
            src, lengths = pad([ids for _, ids in chunk], PAD)
            hyps = decoding.beam_search(
                loaded.model, src, lengths, config.decode.max_len, beam, config.decode.alpha, n_best
            )
            for (i, ids), best in zip(chunk, hyps, strict=True):
                results[i] = self._result(loaded, ids, best, attention, threshold)
        return results

    def _source_ids(self, loaded: Loaded, text: str) -> list[int]:
        src_tok, config = loaded.setup.src_tok, loaded.config
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
                f"the input has {len(ids)} tokens, but this model was trained on inputs of at "
                f"most {config.data.max_len}",
                "split it into shorter pieces",
            )
        return ids

    @torch.no_grad()
    def _result(self, loaded: Loaded, ids: list[int], hyps, attention: bool, threshold=None):
        model, tgt_tok, alpha = loaded.model, loaded.setup.tgt_tok, loaded.config.decode.alpha
        n_best = [
            (
                tgt_tok.decode([t for t in seq if t != EOS]),
                score,
                confidence(score, len(seq), alpha),
            )
            for seq, score in hyps
        ]
        text, _, sure = n_best[0]
        out = Translation(
            text,
            sure,
            low_confidence=threshold is not None and sure < threshold,
            problem=self.check_output(text),
            n_best=n_best,
            labels=(loaded.setup.src_tok.pieces(ids), tgt_tok.pieces(hyps[0][0])),
        )
        if not attention or loaded.config.model.attention == "none":
            return out
        # re-run the best with teacher forcing to read its attention weights a_t
        src, best = torch.tensor([ids]), torch.tensor([hyps[0][0]])
        memory, state = model.encode(src, torch.tensor([len(ids)]))
        rows, y = [], torch.tensor([BOS])
        for t in range(best.size(1)):
            _, state, a = model.decode_step(y, state, memory)
            rows.append(a[0])
            y = best[:, t]
        out.attention = torch.stack(rows)  # (T, S)
        return out

    def translate_command(self, args) -> int:
        """One input from the command line, or each line of standard input, decoded in
        batches; a bad line gets its message and the others go on."""
        import sys

        from rnnkit.viz.attention import plot_attention

        loaded = self.load(args.run)
        lines = [args.text] if args.text is not None else sys.stdin.read().splitlines()
        draw = bool(args.attention)
        cal = self.calibration(loaded)
        status = 0
        for line, result in zip(
            lines, self.translate_many(loaded, lines, args.beam, args.n_best, draw), strict=True
        ):
            if isinstance(result, RnnkitError):
                hint = f" ({result.hint})" if result.hint else ""
                print(f"rnnkit: error: {result.message}{hint}", file=sys.stderr)
                status = 2
                continue
            if result.problem:  # the task's check: never print an impossible answer as one
                print(f"rnnkit: error: {line!r}: {result.problem}", file=sys.stderr)
                status = 2
                continue
            for text, score, sure in result.n_best[: args.n_best]:
                columns = ([f"{sure:.3f}"] if args.confidence else []) + (
                    [f"{score:.3f}"] if args.n_best > 1 else []
                )
                print("\t".join([*columns, text]))
            if result.low_confidence:
                print(
                    f"rnnkit: note: {line!r} -> {result.text!r}: low confidence "
                    f"{result.confidence:.3f}, below {cal['threshold']:.3f} (under it fall 1% of "
                    f"the validation outputs that were right); the input may not be "
                    f"{self.kind_of_input}",
                    file=sys.stderr,
                )
            if draw and result.attention is not None:
                plot_attention(result.attention, *result.labels, args.attention)
        return status

    def accuracy_by_length(self, path, max_len: int | None = None) -> dict[int, tuple[int, int]]:
        """Greedy exact match on a run's test split, by source length in tokens:
        ``{length: (correct, total)}``. Test sources longer than training's data.max_len count."""
        loaded = self.load(path)
        config, setup = loaded.config, loaded.setup
        test = Encoded(_splits(config)[2], setup.src_tok, setup.tgt_tok, max_len)
        hyps = translate_encoded(loaded.model, test, config.decode.max_len, setup.tgt_tok)
        table: dict[int, list[int]] = {}
        for hyp, (_, ref), n in zip(hyps, test.text, test.src_len.tolist(), strict=True):
            cell = table.setdefault(n, [0, 0])
            cell[0] += hyp == ref
            cell[1] += 1
        return {n: (c, t) for n, (c, t) in sorted(table.items())}


@dataclass
class DatesData(PairData):  # PairData's defaults are the dates task's
    day_first: bool = True  # numeric dates are day first (05/03/2024 = 5 March); false: US order


@dataclass
class DatesConfig(Seq2SeqConfig):
    data: DatesData = field(default_factory=DatesData)


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


def valid_date(text: str) -> str | None:
    """Why ``text`` is not an ISO date YYYY-MM-DD of the calendar, or None when it is one:
    "2020-02-31 is not a valid date: February 2020 has 29 days"."""
    import calendar

    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if not m:
        return f"{text!r} is not a date of the form YYYY-MM-DD"
    year, month, day = map(int, m.groups())
    if not 1 <= month <= 12:
        return f"{text} is not a valid date: there is no month {month}"
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        name = calendar.month_name[month] if day else ""
        why = f"{name} {year} has {days} days" if day else "there is no day 0"
        return f"{text} is not a valid date: {why}"
    return None


class Dates(Seq2SeqTask):
    name = "dates"
    description = "date normalisation in 5 languages: '5 mars 2024' -> '2024-03-05'"
    Config = DatesConfig
    kind_of_input = "a date"

    def check_output(self, text: str) -> str | None:
        return valid_date(text)

    def score(self, loaded: Loaded, **options) -> dict:
        """The test split's metrics, and beam-search exact match on two more held-out sets of
        dates never in training: the CLDR written and numeric formats ("original") and the
        typed forms ("added"); the share of those outputs and of non-dates (words and
        sentences of the model's characters, `rnnkit.data.pairs.non_dates`) that `translate`
        flags (low confidence, or not a date of the calendar)."""
        out = super().score(loaded, **options)
        d = loaded.config.data
        if d.source != "dates" or options.get("split", "test") != "test":
            return out
        seen = {src for src, _ in _splits(loaded.config)[0]}
        kinds = pair_sources.DATE_KINDS
        sets = {
            "original": {k: kinds[k] for k in ("written", "numeric")},
            "added": {"typed": 1.0},
        }
        for offset, (part, share) in enumerate(sets.items(), 1):
            pairs = pair_sources.dates(2 * d.n_test, d.seed + offset, day_first=d.day_first,
                                       kinds=share)  # fmt: skip
            pairs = [(s, t) for s, t in pairs if s not in seen][: d.n_test]
            results = self.translate_many(loaded, [s for s, _ in pairs])
            right = [
                isinstance(r, Translation) and r.text == t
                for r, (_, t) in zip(results, pairs, strict=True)
            ]
            out[f"{part}_exact"] = sum(right) / len(right)
            out[f"{part}_pairs"] = len(right)
            flagged = [
                not isinstance(r, Translation) or r.low_confidence or bool(r.problem)
                for r in results
            ]
            out[f"{part}_flagged"] = sum(flagged) / len(flagged)  # false alarms, when right
        if self.calibration(loaded) is None:
            return out
        src_tok = loaded.setup.src_tok
        texts = pair_sources.non_dates(
            d.n_test,
            d.seed,
            keep=lambda t: not src_tok.unknown(t) and len(src_tok.encode(t)) <= d.max_len,
        )
        results = self.translate_many(loaded, texts)
        flagged = [
            not isinstance(r, Translation) or r.low_confidence or bool(r.problem) for r in results
        ]
        out["non_dates_flagged"] = sum(flagged) / len(flagged)
        out["non_dates"] = len(flagged)
        return out


class Numbers(Seq2SeqTask):
    name = "numbers"
    description = "numbers to words with num2words: 4721 -> 'quatre mille sept cent...'"
    Config = NumbersConfig


class Translate(Seq2SeqTask):
    name = "translate"
    description = "English -> French (gettext), English -> Spanish (Bible verses) or your TSV"
    Config = TranslateConfig
