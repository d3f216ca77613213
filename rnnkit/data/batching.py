"""Streaming batches for truncated backpropagation through time.

The token sequence is cut into b parallel streams laid side by side; window k of every stream
follows window k - 1 directly, so the hidden state at the end of one batch is the right initial
state for the next (carried, and detached so that gradients stop at the window's edge).

    ids:     a b c d e f g h i j k l m n o p q r ...      n tokens
    streams: row 0: a b c d e f | row 1: g h i j k l | ...   (b, n // b)
    window k: x = streams[:, k*t : (k+1)*t], y = the same shifted by one token
"""

from __future__ import annotations

import torch

from rnnkit.errors import DataError


class StreamBatches:
    """Consecutive (x, y) windows of shape (b, t) over b parallel streams of ``ids``."""

    def __init__(
        self,
        ids: torch.Tensor,
        batch_size: int,
        seq_len: int,
        what: str = "corpus",
        hint: str = "lower batch_size or seq_len, or use a larger text file",
    ):
        per_stream = (ids.numel() - 1) // batch_size  # each stream needs one extra target
        if per_stream < seq_len:
            need = batch_size * seq_len + 1
            raise DataError(
                f"the {what} is too small: {ids.numel():,} characters, but batch_size="
                f"{batch_size} x seq_len={seq_len} needs at least {need:,}",
                hint,
            )
        n = per_stream * batch_size
        self.x = ids[:n].view(batch_size, per_stream)  # (b, n/b)
        self.y = ids[1 : n + 1].view(batch_size, per_stream)  # (b, n/b), shifted by one
        self.seq_len = seq_len

    def __len__(self) -> int:
        return self.x.size(1) // self.seq_len

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        s = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return self.x[:, s], self.y[:, s]  # (b, t), (b, t)

    def __iter__(self):
        return (self[k] for k in range(len(self)))


# ----------------------------------------------------------------------------- padded batches


def pad(sequences, pad_id: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists of different lengths as one (n, L) tensor filled with ``pad_id`` after each
    sequence, and their lengths (n,). L is the longest (or ``length``, at least that)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = max([length or 0, *lengths.tolist(), 0])
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out, lengths


def bucket_batches(
    lengths, batch_size: int, generator: torch.Generator, bucket: int = 50
) -> list[torch.Tensor]:
    """Row indices in batches of similar lengths, so little of a padded batch is padding.

    The rows are shuffled, cut into groups of ``bucket`` batches, sorted by length inside each
    group and cut into batches; the batches are shuffled again. Every row appears exactly once;
    the same generator state gives the same batches (exact resume).
    """
    lengths = torch.as_tensor(lengths)
    order = torch.randperm(len(lengths), generator=generator)
    span = batch_size * bucket
    batches = []
    for start in range(0, len(order), span):
        group = order[start : start + span]
        group = group[torch.sort(lengths[group], stable=True).indices]  # short to long
        batches += list(group.split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in shuffle.tolist()]


class EpochBatches:
    """Batch ``micro`` of a training run: `bucket_batches` of ``lengths``, drawn afresh every
    epoch from a generator seeded by ``seed`` and the epoch, so the batch is a function of the
    step alone (exact resume); each rank of ``world`` takes its share of the rows."""

    def __init__(self, lengths, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.lengths, self.batch_size, self.seed = torch.as_tensor(lengths), batch_size, seed
        self.rank, self.world = rank, world
        self.per_epoch = len(bucket_batches(self.lengths, batch_size, torch.Generator()))
        self._epoch, self._batches = -1, []

    def __call__(self, micro: int) -> torch.Tensor:
        epoch, i = divmod(micro, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch = epoch
            self._batches = bucket_batches(self.lengths, self.batch_size, g)
        return self._batches[i][self.rank :: self.world]


class EpochRows:
    """Batch ``micro`` of a training run over ``n`` items of one size: a slice of a permutation
    drawn afresh every epoch from a generator seeded by ``seed`` and the epoch, so the batch is
    a function of the step alone (exact resume); the last partial slice of an epoch is dropped,
    and each rank of ``world`` takes its share of the rows."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.per_epoch = max(1, n // batch_size)

    def __call__(self, micro: int) -> torch.Tensor:
        epoch, i = divmod(micro, self.per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        b = self.batch_size
        return perm[i * b : (i + 1) * b][self.rank :: self.world]
