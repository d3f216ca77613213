"""Words in, words out: the word vocabulary every word task shares (language model, word2vec,
sentiment), built on the `tokenizers` library.

    text  --normalise (NFKC, optionally lower-case)-->  --split: \\w+ | [^\\w\\s]+-->  words
    words --WordLevel lookup-->  ids        (a word outside the vocabulary -> <unk>, counted)

    WordVocab.train(texts, lower=True, min_count=1, max_size=0)
        keeps the words seen at least ``min_count`` times, the ``max_size`` most frequent
        (0: all), after the specials <pad>=0, <s>=1, </s>=2, <unk>=3; ties are broken
        alphabetically so that the same texts give the same ids

Saved in a run as JSON (``{"kind": "words", "lower": ..., "words": [...]}``), and read back to
the same ids. Decoding joins words with single spaces (the original spacing is not kept, as in
the Penn Treebank); ``</s>`` ends a line.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from rnnkit.data.vocab import DEFAULT_SPECIALS, Vocabulary
from rnnkit.errors import DataError

_HINT = "the file was changed after training; restore it, or train again"


def _pipeline(lower: bool):
    """The tokenizers normaliser and pre-tokenizer: the one definition of a word."""
    from tokenizers import normalizers, pre_tokenizers

    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lower else [])
    return normalizers.Sequence(steps), pre_tokenizers.Whitespace()


class WordVocab(Vocabulary):
    """Words <-> ids; unknown words map to ``unk`` (never an error)."""

    what = "word"
    kind = "words"

    def __init__(self, words: list[str], lower: bool = True):
        super().__init__(list(words), DEFAULT_SPECIALS)
        self.lower = bool(lower)
        from tokenizers import Tokenizer, models

        tok = Tokenizer(models.WordLevel(dict(self.index), unk_token=self.tokens[self.unk]))
        tok.normalizer, tok.pre_tokenizer = _pipeline(self.lower)
        self._tok = tok

    # ------------------------------------------------------------------------- building
    @classmethod
    def count(cls, texts, lower: bool = True) -> Counter:
        """How often each word occurs in ``texts`` (an iterable of strings)."""
        normalizer, pre = _pipeline(lower)
        counts: Counter = Counter()
        for text in texts:
            counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
        return counts

    @classmethod
    def train(cls, texts, lower: bool = True, min_count: int = 1, max_size: int = 0) -> WordVocab:
        """The vocabulary of ``texts``: words seen ``min_count`` times or more, at most
        ``max_size`` entries in all (specials included; 0: no limit)."""
        if min_count < 1:
            raise DataError(f"min_count must be at least 1, got {min_count}")
        counts = cls.count(texts, lower)
        return cls.from_counts(counts, lower, min_count, max_size)

    @classmethod
    def from_counts(
        cls, counts: Counter, lower: bool = True, min_count: int = 1, max_size: int = 0
    ) -> WordVocab:
        ranked = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_size:
            room = max_size - len(DEFAULT_SPECIALS)
            if room < 1:
                raise DataError(
                    f"max_size must leave room beyond the {len(DEFAULT_SPECIALS)} specials, "
                    f"got {max_size}"
                )
            ranked = ranked[:room]
        if not ranked:
            raise DataError(
                "no word occurs often enough to enter the vocabulary",
                f"lower min_count (now {min_count}) or give more text",
            )
        return cls(ranked, lower)

    # ------------------------------------------------------------------------- using
    @property
    def words(self) -> list[str]:
        return self.tokens[self.first_plain :]

    def split(self, text: str) -> list[str]:
        """The words of ``text`` after normalisation (lower-cased if the vocabulary is)."""
        normalizer, pre = self._tok.normalizer, self._tok.pre_tokenizer
        return [w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))]

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def encode_lines(self, lines, eos: bool = True) -> np.ndarray:
        """One id stream for a corpus: each line's words, then ``</s>`` (Mikolov's and the
        Penn Treebank's convention); blank lines are skipped. int32, shape (n,)."""
        lines = [line for line in lines if line.strip()]
        parts = []
        for ids in self.encode_batch(lines):
            parts.append(np.asarray(ids + ([self.eos] if eos else []), dtype=np.int32))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def unknown(self, text: str) -> list[str]:
        """The distinct words of ``text`` outside the vocabulary, in order seen."""
        return list(dict.fromkeys(w for w in self.split(text) if w not in self.index))

    def coverage(self, ids) -> tuple[int, int]:
        """(unknown, total): how many of ``ids`` are ``<unk>``."""
        ids = np.asarray(ids)
        return int((ids == self.unk).sum()), int(ids.size)

    def decode(self, ids) -> str:
        """Words joined by spaces; ``</s>`` becomes a line break; other specials dropped."""
        out, line = [], []
        for i in ids:
            i = int(i)
            if i == self.eos:
                out.append(" ".join(line))
                line = []
            elif i >= self.first_plain or i == self.unk:
                line.append(self.tokens[i])
        out.append(" ".join(line))
        return "\n".join(out).strip("\n")

    # ------------------------------------------------------------------------- saving
    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "lower": self.lower, "words": self.words}, ensure_ascii=False
        )

    @classmethod
    def from_dict(cls, data, where: str = "vocabulary") -> WordVocab:
        """From the dict `to_json` wrote, checked: distinct non-empty words."""
        words = data.get("words") if isinstance(data, dict) else None
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w for w in words)
            or len(set(words)) != len(words)
            or not isinstance(data.get("lower", True), bool)
        ):
            raise DataError(
                f'{where} must hold {{"kind": "words", "lower": true|false, "words": '
                "[distinct words]}",
                _HINT,
            )
        return cls(words, data.get("lower", True))
