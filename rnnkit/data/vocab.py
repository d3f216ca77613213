"""Vocabularies: tokens <-> ids, with every special id in one place.

    Vocabulary(tokens, specials=("pad", "bos", "eos", "unk"))
        ids 0..k-1 are the specials in the order given, then the tokens in the order given;
        .pad .bos .eos .unk .blank are their ids (None when not asked for)

Sequence-to-sequence tokenizers use the default specials (PAD=0, BOS=1, EOS=2, UNK=3, the
module constants below), a CTC model asks for ``("blank", ...)`` so that the blank is id 0, and
the character language model asks for none: its ids are exactly its sorted characters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnkit.errors import DataError

SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>", "blank": "<blank>"}
DEFAULT_SPECIALS = ("pad", "bos", "eos", "unk")
PAD, BOS, EOS, UNK = range(4)  # the ids of DEFAULT_SPECIALS


class Vocabulary:
    """Maps tokens to ids and back; the special tokens come first (see the module docstring)."""

    def __init__(self, tokens, specials=DEFAULT_SPECIALS):
        unknown = [s for s in specials if s not in SPECIAL_TOKENS]
        if unknown:
            raise ValueError(
                f"Vocabulary: unknown special {unknown[0]!r}; the specials are "
                f"{', '.join(SPECIAL_TOKENS)}"
            )
        self.specials = tuple(specials)
        reserved = [SPECIAL_TOKENS[s] for s in self.specials]
        self.tokens = reserved + [t for t in tokens if t not in reserved]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        for name, token in SPECIAL_TOKENS.items():
            setattr(self, name, self.index[token] if name in self.specials else None)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def first_plain(self) -> int:
        """The id of the first ordinary token (the number of specials)."""
        return len(self.specials)

    def ids(self, pieces) -> list[int]:
        """Token ids; a piece outside the vocabulary becomes ``unk`` (an error without one)."""
        if self.unk is not None:
            return [self.index.get(p, self.unk) for p in pieces]
        return [self.index[p] for p in self.check(pieces)]

    def check(self, pieces):
        """``pieces``, or a DataError naming those outside the vocabulary."""
        missing = list(dict.fromkeys(p for p in pieces if p not in self.index))
        if missing:
            shown = ", ".join(repr(p) for p in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise DataError(
                f"text has {len(missing)} {self.what}(s) outside the model's vocabulary: "
                f"{shown}{more}",
                f"use only {self.what}s the model was trained on ({len(self)} in its vocabulary)",
            )
        return pieces

    what = "token"  # how the messages name a token

    def pieces(self, ids) -> list[str]:
        """The token of each id (for labels); specials included."""
        return [self.tokens[i] for i in ids]

    def plain(self, ids) -> list[str]:
        """The tokens of ``ids`` without the specials."""
        first = self.first_plain
        return [self.tokens[i] for i in ids if i >= first]


class CharVocab(Vocabulary):
    """Every distinct character of a corpus, sorted, and no specials: ids 0..V-1. Saved as
    JSON ``{"chars": [...]}``."""

    what = "character"

    def __init__(self, chars: list[str]):
        super().__init__(list(chars), specials=())

    @property
    def chars(self) -> list[str]:
        return self.tokens

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(sorted(set(text)))

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, in order seen."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.index))

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.ids(text), dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"chars": self.chars}, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | Path) -> CharVocab:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), str(path))

    @classmethod
    def from_dict(cls, data, where: str = "vocabulary") -> CharVocab:
        """From ``{"chars": [...]}``, checked: distinct single characters."""
        chars = data.get("chars") if isinstance(data, dict) else None
        if (
            not isinstance(chars, list)
            or not chars
            or not all(isinstance(c, str) and len(c) == 1 for c in chars)
            or len(set(chars)) != len(chars)
        ):
            raise DataError(
                f'{where} must hold {{"chars": [distinct single characters]}}',
                "the file was changed after training; restore it, or train again",
            )
        return cls(chars)
