"""A linear model over a sentence's bag of word n-grams: the "wide" half of a wide-and-deep
classifier (Cheng et al. 2016), with the hashed n-grams of fastText (Joulin et al. 2017).

    G(w_1..w_T) = the word ids w_t (unigrams) and, for 2 <= k <= n, every k-gram
                  w_t..w_{t+k-1} of the real steps, hashed into one of ``buckets`` rows
    y = sum_{g in G} V[g]                                                          (b, o)

V is (v + buckets, o): a unigram keeps its own row (no collisions); longer n-grams share the
hashed rows. Word order enters only through the k-grams, so a sentence and its shuffle get the
same unigram score. In training, each n-gram occurrence is dropped with probability ``drop``
and the rest scaled by 1 / (1 - drop) (dropout on the bag, against memorising sentences).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

PRIME = 1_000_003  # the hash multiplier: h(a, b) = (h(a) * PRIME + b) mod buckets


def ngram_ids(ids: Tensor, lengths: Tensor, n: int, vocab: int, buckets: int):
    """ids (b, t), lengths (b,) -> (rows (b, m), real (b, m)): the row of V of every n-gram
    position, and whether it lies inside the sentence (padding and overhangs are False)."""
    b, t = ids.shape
    steps = torch.arange(t, device=ids.device)
    rows, real = [ids], steps < lengths[:, None]
    reals = [real]
    h = ids
    for k in range(2, n + 1):
        if t < k:
            break
        h = (h[:, :-1] * PRIME + ids[:, k - 1 :]) % buckets  # the k-gram starting at each step
        rows.append(vocab + h)
        reals.append(steps[: t - k + 1] + k <= lengths[:, None])
    return torch.cat(rows, 1), torch.cat(reals, 1)


class NgramBag(nn.Module):
    """(b, t) ids and (b,) lengths -> (b, o) scores, summed over the bag of 1..n-grams."""

    def __init__(self, vocab: int, outputs: int, n: int = 2, buckets: int = 1 << 18, drop=0.0):
        super().__init__()
        self.vocab, self.n, self.buckets, self.drop = vocab, n, buckets, drop
        self.V = nn.EmbeddingBag(vocab + (buckets if n > 1 else 0), outputs, mode="sum")
        nn.init.zeros_(self.V.weight)  # starts as no opinion: the deep half leads at first

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        rows, real = ngram_ids(ids, lengths.to(ids.device), self.n, self.vocab, self.buckets)
        weight = real.to(self.V.weight.dtype)
        if self.training and self.drop:
            keep = torch.rand_like(weight) >= self.drop
            weight = weight * keep / (1 - self.drop)
        return self.V(rows, per_sample_weights=weight)  # (b, o)
