"""Tokenizers for sequence-to-sequence tasks: characters, words, or BPE subwords.

Every tokenizer maps text to ids with the default specials of `rnnkit.data.vocab` (PAD=0,
BOS=1, EOS=2, UNK=3) and is saved in the run directory as JSON (subwords through the
`tokenizers` library's own format).
"""

from __future__ import annotations

import json
import re
from collections import Counter

from rnnkit.data.vocab import DEFAULT_SPECIALS, SPECIAL_TOKENS, UNK, Vocabulary

SPECIALS = [SPECIAL_TOKENS[s] for s in DEFAULT_SPECIALS]
# words and single punctuation marks, each with the space before it if any, so that joining the
# pieces gives the text back: "quatre-vingt mille" -> "quatre", "-", "vingt", " mille"
_WORD = re.compile(r" ?\w+| ?[^\w\s]", re.UNICODE)


class _Vocabulary(Vocabulary):
    kind = ""

    def __init__(self, tokens: list[str]):
        super().__init__(tokens, DEFAULT_SPECIALS)

    def encode(self, text: str) -> list[int]:
        return self.ids(self.split(text))

    def unknown(self, text: str) -> list[str]:
        """The distinct pieces of ``text`` outside the vocabulary."""
        return list(dict.fromkeys(p.strip() or p for p in self.split(text) if p not in self.index))

    def to_json(self) -> str:
        tokens = self.tokens[self.first_plain :]
        return json.dumps({"kind": self.kind, "tokens": tokens}, ensure_ascii=False)


class CharTokenizer(_Vocabulary):
    kind = "char"

    @classmethod
    def train(cls, texts, vocab_size: int = 0) -> CharTokenizer:
        return cls(sorted({ch for text in texts for ch in text}))

    def split(self, text: str) -> list[str]:
        return list(text)

    def decode(self, ids) -> str:
        return "".join(self.plain(ids))


class WordTokenizer(_Vocabulary):
    """Words and punctuation marks with their leading space; the ``vocab_size`` most frequent
    are kept (0: all). Decoding joins the pieces, so it inverts encoding exactly."""

    kind = "word"

    @classmethod
    def train(cls, texts, vocab_size: int = 0) -> WordTokenizer:
        counts = Counter(p for text in texts for p in cls.split(cls, text))
        keep = counts.most_common(vocab_size - len(SPECIALS) if vocab_size else None)
        return cls(sorted(t for t, _ in keep))

    def split(self, text: str) -> list[str]:
        return _WORD.findall(" ".join(text.split()))  # runs of whitespace count as one space

    def decode(self, ids) -> str:
        return "".join(self.plain(ids)).strip()


class SubwordTokenizer:
    """Byte-pair encoding (Sennrich et al. 2016) trained with the `tokenizers` library."""

    kind = "subword"

    def __init__(self, tok):
        self.tok = tok

    @classmethod
    def train(cls, texts, vocab_size: int = 1000) -> SubwordTokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size or 1000, special_tokens=SPECIALS, show_progress=False
        )
        tok.train_from_iterator(list(texts), trainer)
        return cls(tok)

    def __len__(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def unknown(self, text: str) -> list[str]:
        pieces = self.tok.encode(text, add_special_tokens=False)
        return (
            [
                ch
                for ch in dict.fromkeys(text)
                if not ch.isspace()
                and "<unk>" in self.tok.encode(ch, add_special_tokens=False).tokens
            ]
            if UNK in pieces.ids
            else []
        )

    def decode(self, ids) -> str:
        return self.tok.decode([i for i in ids if i >= len(SPECIALS)])

    def pieces(self, ids) -> list[str]:
        return [self.tok.id_to_token(i) for i in ids]

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "tokenizer": json.loads(self.tok.to_str())})


KINDS = {"char": CharTokenizer, "word": WordTokenizer, "subword": SubwordTokenizer}


def train_tokenizer(kind: str, texts, vocab_size: int = 0):
    return KINDS[kind].train(texts, vocab_size)


def load_tokenizer(text: str):
    data = json.loads(text)
    if data["kind"] == "subword":
        from tokenizers import Tokenizer

        return SubwordTokenizer(Tokenizer.from_str(json.dumps(data["tokenizer"])))
    return KINDS[data["kind"]](data["tokens"])
