"""The data sections of the memory tasks' configs: settings and their checks only. The batches
come from the matching source in `rnnkit.data.sources` (each task names its own), so one loop
(`rnnkit.tasks.algorithmic`) runs every task.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError


class _Lengths:
    """For configs with min_len .. max_len."""

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


@dataclass
class RepeatCopyData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 1  # shortest sequence
    max_len: int = 10  # longest sequence
    min_repeats: int = 1  # fewest copies asked for
    max_repeats: int = 10  # most copies asked for (the count is fed as R / max_repeats)
    bits: int = 8  # bits per vector


@dataclass
class RecallData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 2  # fewest items
    max_len: int = 6  # most items
    item_len: int = 3  # vectors per item
    bits: int = 6  # bits per vector


@dataclass
class SortData(_Lengths):
    batch_size: int = 16  # sequences per step
    min_len: int = 20  # fewest input vectors
    max_len: int = 20  # most input vectors
    keep: int = 16  # how many of the highest-priority vectors to emit
    bits: int = 8  # bits per vector


@dataclass
class AddingData:
    batch_size: int = 50  # sequences per step
    seq_len: int = 100  # T, the sequence length

    def validate(self) -> None:
        positive(self, "batch_size", prefix="data.")
        if self.seq_len < 2:
            raise ConfigError(f"config key 'data.seq_len' must be >= 2, got {self.seq_len}")


@dataclass
class CopyMemoryData:
    batch_size: int = 32  # sequences per step
    seq_len: int = 100  # T, the delay between the symbols and the cue
    symbols: int = 10  # symbols to remember

    def validate(self) -> None:
        positive(self, "batch_size", "seq_len", "symbols", prefix="data.")


@dataclass
class DigitsData:
    batch_size: int = 64  # images per step
    mode: str = "row"  # row: 8 steps of 8 pixels | pixel: 64 steps of 1 pixel
    val_fraction: float = 0.2  # digits held out for evaluation
    split_seed: int = 0  # seeds the train / held-out split

    def validate(self) -> None:
        choice("data.mode", self.mode, ("row", "pixel"))
        positive(self, "batch_size", prefix="data.")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(
                f"config key 'data.val_fraction' must be in (0, 1), got {self.val_fraction}"
            )
