"""Batch sources of the memory tasks: a task's data settings in, batches out. The settings are
plain config dataclasses (`rnnkit.tasks.algorithmic_data`); the sources hold the generating, so
one loop runs every task and a config carries no code.

    source = CopySource(config.data)         any object with the named fields
    source.sample(b, g, cap=None)            a training batch; ``cap`` (the curriculum) bounds
                                             its length
    source.held_out(b, g, length)            a held-out batch, at the training lengths or at
                                             exactly ``length``; None for a fixed held-out set
    source.held_out_set(b)                   that fixed set, in batches (digits)
    source.sizes() -> (i, o)                 input and output features of the model
    source.longest()                         the longest training length (the curriculum's end)
    source.loss                              "bits" | "mse" | "class"
    source.answer_mask(batch)                the steps whose accuracy is reported ("class")

Every batch is drawn from the torch.Generator it is given (see `rnnkit.data.algorithmic`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.data import algorithmic as gen
from rnnkit.data.algorithmic import Batch


class Source:
    """The settings ``c`` (a config section) and what every source shares."""

    loss = "bits"

    def __init__(self, c):
        self.c = c

    def held_out_set(self, b: int) -> list[Batch]:
        raise NotImplementedError(f"{type(self).__name__} draws its held-out batches")

    def answer_mask(self, batch: Batch) -> Tensor:
        return batch.mask


class LengthSource(Source):
    """Sequences of c.min_len .. c.max_len: the curriculum caps max_len; held out at length."""

    def longest(self) -> int:
        return self.c.max_len

    def _range(self, cap: int | None) -> tuple[int, int]:
        c = self.c
        high = c.max_len if cap is None else max(c.min_len, min(cap, c.max_len))
        return c.min_len, high

    def sample(self, b: int, g: torch.Generator, cap: int | None = None) -> Batch:
        return self._make(b, g, *self._range(cap), None)

    def held_out(self, b: int, g: torch.Generator, length: int | None) -> Batch:
        return self._make(b, g, self.c.min_len, self.c.max_len, length)


class CopySource(LengthSource):
    def sizes(self) -> tuple[int, int]:
        return self.c.bits + 1, self.c.bits

    def _make(self, b, g, low, high, length):
        return gen.copy(b, g, low, high, self.c.bits, length)


class RepeatCopySource(LengthSource):
    def sizes(self) -> tuple[int, int]:
        return self.c.bits + 1, self.c.bits + 1

    def _make(self, b, g, low, high, length):
        c = self.c
        return gen.repeat_copy(b, g, low, high, c.min_repeats, c.max_repeats, c.bits, length)


class RecallSource(LengthSource):
    def sizes(self) -> tuple[int, int]:
        return self.c.bits + 2, self.c.bits

    def _make(self, b, g, low, high, length):
        return gen.associative_recall(b, g, low, high, self.c.item_len, self.c.bits, length)


class SortSource(LengthSource):
    def sizes(self) -> tuple[int, int]:
        return self.c.bits + 2, self.c.bits

    def _make(self, b, g, low, high, length):
        return gen.priority_sort(b, g, low, high, self.c.keep, self.c.bits, length)


class DelaySource(Source):
    """One length T = c.seq_len (adding, copy memory): the curriculum caps T."""

    def longest(self) -> int:
        return self.c.seq_len

    def sample(self, b: int, g: torch.Generator, cap: int | None = None) -> Batch:
        return self._make(b, g, self.c.seq_len if cap is None else min(cap, self.c.seq_len))

    def held_out(self, b: int, g: torch.Generator, length: int | None) -> Batch:
        return self._make(b, g, length or self.c.seq_len)


class AddingSource(DelaySource):
    loss = "mse"

    def sizes(self) -> tuple[int, int]:
        return 2, 1

    def _make(self, b, g, length):
        return gen.adding(b, g, length)


class CopyMemorySource(DelaySource):
    loss = "class"

    def sizes(self) -> tuple[int, int]:
        return 10, 10

    def _make(self, b, g, length):
        return gen.copy_memory(b, g, length, self.c.symbols)

    def answer_mask(self, batch: Batch) -> Tensor:
        mask = torch.zeros_like(batch.mask)
        mask[:, -self.c.symbols :] = True  # accuracy on the recalled symbols only
        return mask


class DigitsSource(Source):
    """scikit-learn's digits: a fixed split, c.mode row (8 steps of 8) or pixel (64 of 1)."""

    loss = "class"

    def sizes(self) -> tuple[int, int]:
        return (8 if self.c.mode == "row" else 1), 10

    def longest(self) -> int:
        return 0  # no lengths to grow

    def sample(self, b: int, g: torch.Generator, cap: int | None = None) -> Batch:
        train, _ = gen.digits_split(self.c.val_fraction, self.c.split_seed)
        pick = torch.randint(0, len(train), (b,), generator=g)
        return gen.digits(train[pick], self.c.mode)

    def held_out(self, b, g, length) -> None:
        return None  # the held-out split is fixed: see held_out_set

    def held_out_set(self, b: int) -> list[Batch]:
        _, val = gen.digits_split(self.c.val_fraction, self.c.split_seed)
        return [gen.digits(val[i : i + b], self.c.mode) for i in range(0, len(val), b)]
