"""A character vocabulary: every distinct character of a corpus, in sorted order."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rnnkit.errors import DataError


class CharVocab:
    """Maps characters to ids 0..V-1 and back. Saved as JSON: ``{"chars": [...]}``."""

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, in order seen."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.index))

    def encode(self, text: str) -> torch.Tensor:
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(ch) for ch in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise DataError(
                f"text has {len(missing)} character(s) outside the model's vocabulary: "
                f"{shown}{more}",
                f"use only characters the model was trained on ({len(self)} in its vocabulary)",
            )
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"chars": self.chars}, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | Path) -> CharVocab:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["chars"])
