"""The data sections of the memory tasks' configs: each one knows its generator, its sizes and
its loss, so one loop (`rnnkit.tasks.algorithmic`) runs every task.

    sample(b, g, cap=None)      a training batch; ``cap`` (the curriculum) bounds its length
    held_out(b, g, length)      a held-out batch, at the training lengths or exactly ``length``
    sizes() -> (i, o)           input and output features of the model
    longest()                   the longest training length (where the curriculum stops)
    loss                        "bits" | "mse" | "class"
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.config import choice, positive
from rnnkit.data import algorithmic as gen
from rnnkit.data.algorithmic import Batch
from rnnkit.errors import ConfigError


class _Lengths:
    """For configs with min_len .. max_len: the curriculum caps max_len; held out at length."""

    loss = "bits"  # a class attribute, not a config key

    def longest(self) -> int:
        return self.max_len

    def _range(self, cap: int | None) -> tuple[int, int]:
        high = self.max_len if cap is None else max(self.min_len, min(cap, self.max_len))
        return self.min_len, high

    def sample(self, b: int, g: torch.Generator, cap: int | None = None) -> Batch:
        return self._make(b, g, *self._range(cap), None)

    def held_out(self, b: int, g: torch.Generator, length: int | None) -> Batch:
        return self._make(b, g, self.min_len, self.max_len, length)

    def validate(self) -> None:
        positive(self, "batch_size", "min_len", "bits", prefix="data.")
        if self.max_len < self.min_len:
            raise ConfigError(
                f"config key 'data.max_len' must be >= data.min_len ({self.min_len}), "
                f"got {self.max_len}"
            )


@dataclass
class CopyData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 1  # shortest sequence to copy
    max_len: int = 20  # longest sequence to copy
    bits: int = 8  # bits per vector

    def sizes(self) -> tuple[int, int]:
        return self.bits + 1, self.bits

    def _make(self, b, g, low, high, length):
        return gen.copy(b, g, low, high, self.bits, length)


@dataclass
class RepeatCopyData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 1  # shortest sequence
    max_len: int = 10  # longest sequence
    min_repeats: int = 1  # fewest copies asked for
    max_repeats: int = 10  # most copies asked for (the count is fed as R / max_repeats)
    bits: int = 8  # bits per vector

    def sizes(self) -> tuple[int, int]:
        return self.bits + 1, self.bits + 1

    def _make(self, b, g, low, high, length):
        reps = (self.min_repeats, self.max_repeats)
        return gen.repeat_copy(b, g, low, high, *reps, self.bits, length)


@dataclass
class RecallData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 2  # fewest items
    max_len: int = 6  # most items
    item_len: int = 3  # vectors per item
    bits: int = 6  # bits per vector

    def sizes(self) -> tuple[int, int]:
        return self.bits + 2, self.bits

    def _make(self, b, g, low, high, length):
        return gen.associative_recall(b, g, low, high, self.item_len, self.bits, length)


@dataclass
class SortData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 20  # fewest input vectors
    max_len: int = 20  # most input vectors
    keep: int = 16  # how many of the highest-priority vectors to emit
    bits: int = 8  # bits per vector

    def sizes(self) -> tuple[int, int]:
        return self.bits + 2, self.bits

    def _make(self, b, g, low, high, length):
        return gen.priority_sort(b, g, low, high, self.keep, self.bits, length)


class _Delay:
    """For configs with one length T (adding, copy memory): the curriculum caps T."""

    def longest(self) -> int:
        return self.seq_len

    def sample(self, b: int, g: torch.Generator, cap: int | None = None) -> Batch:
        return self._make(b, g, self.seq_len if cap is None else min(cap, self.seq_len))

    def held_out(self, b: int, g: torch.Generator, length: int | None) -> Batch:
        return self._make(b, g, length or self.seq_len)

    def answer_mask(self, batch: Batch) -> Tensor:
        return batch.mask


@dataclass
class AddingData(_Delay):
    batch_size: int = 50  # sequences per step
    seq_len: int = 100  # T, the sequence length
    loss = "mse"

    def sizes(self) -> tuple[int, int]:
        return 2, 1

    def _make(self, b, g, length):
        return gen.adding(b, g, length)

    def validate(self) -> None:
        positive(self, "batch_size", prefix="data.")
        if self.seq_len < 2:
            raise ConfigError(f"config key 'data.seq_len' must be >= 2, got {self.seq_len}")


@dataclass
class CopyMemoryData(_Delay):
    batch_size: int = 32  # sequences per step
    seq_len: int = 100  # T, the delay between the symbols and the cue
    symbols: int = 10  # symbols to remember
    loss = "class"

    def sizes(self) -> tuple[int, int]:
        return 10, 10

    def _make(self, b, g, length):
        return gen.copy_memory(b, g, length, self.symbols)

    def answer_mask(self, batch: Batch) -> Tensor:
        mask = torch.zeros_like(batch.mask)
        mask[:, -self.symbols :] = True  # accuracy on the recalled symbols only
        return mask

    def validate(self) -> None:
        positive(self, "batch_size", "seq_len", "symbols", prefix="data.")


@dataclass
class DigitsData:
    batch_size: int = 64  # images per step
    mode: str = "row"  # row: 8 steps of 8 pixels | pixel: 64 steps of 1 pixel
    val_fraction: float = 0.2  # digits held out for evaluation
    split_seed: int = 0  # seeds the train / held-out split
    loss = "class"

    def sizes(self) -> tuple[int, int]:
        return (8 if self.mode == "row" else 1), 10

    def longest(self) -> int:
        return 0  # no lengths to grow

    def sample(self, b: int, g: torch.Generator, cap: int | None = None) -> Batch:
        train, _ = gen.digits_split(self.val_fraction, self.split_seed)
        pick = torch.randint(0, len(train), (b,), generator=g)
        return gen.digits(train[pick], self.mode)

    def held_out(self, b, g, length) -> None:
        return None  # the held-out split is fixed: see held_out_set

    def held_out_set(self, b: int) -> list[Batch]:
        _, val = gen.digits_split(self.val_fraction, self.split_seed)
        return [gen.digits(val[i : i + b], self.mode) for i in range(0, len(val), b)]

    def answer_mask(self, batch: Batch) -> Tensor:
        return batch.mask

    def validate(self) -> None:
        choice("data.mode", self.mode, ("row", "pixel"))
        positive(self, "batch_size", prefix="data.")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(
                f"config key 'data.val_fraction' must be in (0, 1), got {self.val_fraction}"
            )
