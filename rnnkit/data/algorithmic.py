"""Generated sequence tasks that test memory: the NTM paper's (Graves et al. 2014, section 4) and
the classic long-range tests for recurrent cells. Every generator draws from a torch.Generator,
so (seed, step) fixes a batch exactly, and returns a `Batch` whose answers are known exactly.

Shape legend: b batch, t time (the longest sequence of the batch), i input channels, o outputs.

    Batch.x     (b, t, i) float inputs, zero after a sequence ends
    Batch.y     (b, t, o) float targets (bits, values), or (b, t) int64 class indices
    Batch.mask  (b, t) bool: the steps whose outputs are scored

    copy              L random 8-bit vectors, a delimiter, then reproduce them       (sec. 4.1)
    repeat_copy       L vectors, then the repeat count R; emit them R times, then an end marker
    associative_recall items of 3 vectors between delimiters, a query item; emit the next item
    priority_sort     20 vectors with priorities in [-1, 1]; emit the 16 highest, highest first
    adding            values in [0, 1] with two marked; emit their sum at the end (Hochreiter 1997)
    copy_memory       10 symbols, T blanks, a cue; reproduce the symbols (Arjovsky et al. 2016)
    digits            scikit-learn's 8x8 handwritten digits, one row or one pixel per step
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from rnnkit.errors import ConfigError, DataError


class Batch(NamedTuple):
    x: Tensor  # (b, t, i)
    y: Tensor  # (b, t, o) float, or (b, t) int64 classes
    mask: Tensor  # (b, t) bool


def _lengths(b: int, g: torch.Generator, low: int, high: int, fixed: int | None) -> list[int]:
    if fixed is not None:
        return [fixed] * b
    if not 1 <= low <= high:
        raise ConfigError(f"expected 1 <= min_len <= max_len, got {low} and {high}")
    return torch.randint(low, high + 1, (b,), generator=g).tolist()


def _bits(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randint(0, 2, shape, generator=g).float()


def copy(
    b: int, g: torch.Generator, min_len=1, max_len=20, bits=8, length: int | None = None
) -> Batch:
    """x: L vectors on channels 0..bits-1, then the delimiter (channel `bits`) at step L; y: the
    same L vectors at steps L+1 .. 2L. i = bits + 1, o = bits, t = 2 max(L) + 1."""
    lens = _lengths(b, g, min_len, max_len, length)
    t = 2 * max(lens) + 1
    x, y = torch.zeros(b, t, bits + 1), torch.zeros(b, t, bits)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for k, n in enumerate(lens):
        seq = _bits(g, n, bits)
        x[k, :n, :bits] = seq
        x[k, n, bits] = 1.0
        y[k, n + 1 : 2 * n + 1] = seq
        mask[k, n + 1 : 2 * n + 1] = True
    return Batch(x, y, mask)


def repeat_copy(
    b: int,
    g: torch.Generator,
    min_len=1,
    max_len=10,
    min_repeats=1,
    max_repeats=10,
    bits=8,
    length: int | None = None,
) -> Batch:
    """x: L vectors, then at step L the repeat count R / max_repeats on channel `bits` (it is
    also the delimiter); y: the L vectors R times, then the end marker on output channel `bits`.
    i = o = bits + 1, a sequence lasts L + 1 + R L + 1 steps."""
    lens = _lengths(b, g, min_len, max_len, length)
    reps = torch.randint(min_repeats, max_repeats + 1, (b,), generator=g).tolist()
    t = max(n + 2 + r * n for n, r in zip(lens, reps, strict=True))
    x, y = torch.zeros(b, t, bits + 1), torch.zeros(b, t, bits + 1)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for k, (n, r) in enumerate(zip(lens, reps, strict=True)):
        seq = _bits(g, n, bits)
        x[k, :n, :bits] = seq
        x[k, n, bits] = r / max_repeats
        y[k, n + 1 : n + 1 + r * n, :bits] = seq.repeat(r, 1)  # (r n, bits)
        y[k, n + 1 + r * n, bits] = 1.0
        mask[k, n + 1 : n + 2 + r * n] = True
    return Batch(x, y, mask)


def _distinct_items(g: torch.Generator, n: int, item_len: int, bits: int) -> Tensor:
    while True:  # 2^18 possible items: a repeat is rare, but it would make the answer ambiguous
        items = _bits(g, n, item_len, bits)
        if len(torch.unique(items.flatten(1), dim=0)) == n:
            return items


def associative_recall(
    b: int,
    g: torch.Generator,
    min_len=2,
    max_len=6,
    item_len=3,
    bits=6,
    length: int | None = None,
) -> Batch:
    """L items of `item_len` vectors, each after an item delimiter (channel `bits`); then a query
    delimiter (channel bits+1), a copy of item q < L-1, the query delimiter again; y: item q+1.
    i = bits + 2, o = bits; L is the number of items (at least 2)."""
    lens = _lengths(b, g, max(2, min_len), max(2, max_len), length)
    step = item_len + 1
    t = max(lens) * step + 2 + 2 * item_len
    x, y = torch.zeros(b, t, bits + 2), torch.zeros(b, t, bits)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for k, n in enumerate(lens):
        items = _distinct_items(g, n, item_len, bits)  # (n, item_len, bits)
        for j in range(n):
            x[k, j * step, bits] = 1.0
            x[k, j * step + 1 : (j + 1) * step, :bits] = items[j]
        q = int(torch.randint(0, n - 1, (1,), generator=g))
        start = n * step  # query delimiter, the query, the delimiter, then the answer
        x[k, start, bits + 1] = 1.0
        x[k, start + 1 : start + 1 + item_len, :bits] = items[q]
        x[k, start + 1 + item_len, bits + 1] = 1.0
        answer = start + 2 + item_len
        y[k, answer : answer + item_len] = items[q + 1]
        mask[k, answer : answer + item_len] = True
    return Batch(x, y, mask)


def priority_sort(
    b: int, g: torch.Generator, min_len=20, max_len=20, keep=16, bits=8, length: int | None = None
) -> Batch:
    """L vectors, each with a priority drawn from U[-1, 1] on channel `bits`, then a delimiter
    (channel bits+1); y: the min(keep, L) highest-priority vectors, highest first.
    i = bits + 2, o = bits."""
    lens = _lengths(b, g, min_len, max_len, length)
    t = max(n + 1 + min(keep, n) for n in lens)
    x, y = torch.zeros(b, t, bits + 2), torch.zeros(b, t, bits)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for k, n in enumerate(lens):
        seq = _bits(g, n, bits)
        priority = torch.rand(n, generator=g) * 2 - 1
        x[k, :n, :bits], x[k, :n, bits], x[k, n, bits + 1] = seq, priority, 1.0
        m = min(keep, n)
        order = torch.argsort(priority, descending=True)[:m]
        y[k, n + 1 : n + 1 + m] = seq[order]
        mask[k, n + 1 : n + 1 + m] = True
    return Batch(x, y, mask)


def adding(b: int, g: torch.Generator, length=100) -> Batch:
    """x_t = (value in U[0, 1], marker); one marker in each half of the sequence; the target at
    the last step is the sum of the two marked values. i = 2, o = 1, t = length. Predicting
    the mean 1 always gives an error of Var(u1 + u2) = 2/12 = 0.167."""
    if length < 2:
        raise ConfigError(f"adding: the sequence length must be >= 2, got {length}")
    values = torch.rand(b, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (b,), generator=g)
    second = torch.randint(half, length, (b,), generator=g)
    markers = torch.zeros(b, length)
    rows = torch.arange(b)
    markers[rows, first] = markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (b, t, 2)
    y = torch.zeros(b, length, 1)
    y[:, -1, 0] = values[rows, first] + values[rows, second]
    mask = torch.zeros(b, length, dtype=torch.bool)
    mask[:, -1] = True
    return Batch(x, y, mask)


BLANK, CUE = 0, 9  # copy-memory alphabet: 0 blank, 1..8 data symbols, 9 the cue to recall


def copy_memory(b: int, g: torch.Generator, length=100, symbols=10) -> Batch:
    """`symbols` data symbols from 1..8, length - 1 blanks, the cue 9, `symbols` blanks (one-hot,
    i = 10); y (b, t) int64: blank everywhere but the last `symbols` steps, which hold the data.
    t = length + 2 symbols. Every step is scored; the memoryless baseline (blanks, then a
    uniform guess) costs symbols log(8) / t nats per step (Arjovsky et al. 2016)."""
    if length < 1:
        raise ConfigError(f"copy_memory: the delay must be >= 1, got {length}")
    data = torch.randint(1, 9, (b, symbols), generator=g)
    t = length + 2 * symbols
    ids = torch.full((b, t), BLANK, dtype=torch.long)
    ids[:, :symbols] = data
    ids[:, symbols + length - 1] = CUE
    y = torch.full((b, t), BLANK, dtype=torch.long)
    y[:, -symbols:] = data
    x = torch.nn.functional.one_hot(ids, 10).float()  # (b, t, 10)
    return Batch(x, y, torch.ones(b, t, dtype=torch.bool))


@lru_cache(maxsize=1)
def load_digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 real 8x8 handwritten digits (UCI, bundled with the package):
    images (1797, 8, 8) scaled to [0, 1], labels (1797,) int64."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DataError(
            "the digits task needs scikit-learn's bundled handwritten digits",
            "pip install scikit-learn",
        ) from None
    data = sk_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0
    return images, torch.tensor(data.target, dtype=torch.long)


def digits_split(val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices of the training and held-out digits, a fixed permutation drawn from ``seed``."""
    n = len(load_digits()[1])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = n - int(n * val_fraction)
    return order[:cut], order[cut:]


def digits(index: Tensor, mode="row") -> Batch:
    """The digits at ``index`` read one row (t = 8, i = 8) or one pixel (t = 64, i = 1) per
    step; y (b, t) int64 holds the label, scored at the last step only."""
    images, labels = load_digits()
    x = images[index]  # (b, 8, 8)
    if mode == "pixel":
        x = x.reshape(len(index), 64, 1)  # (b, 64, 1), row-major scan
    elif mode != "row":
        raise ConfigError(f"digits: mode must be row or pixel; got {mode!r}")
    b, t = x.shape[:2]
    y = labels[index].unsqueeze(1).expand(b, t).clone()  # (b, t)
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask[:, -1] = True
    return Batch(x, y, mask)
