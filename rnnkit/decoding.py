"""Choosing the next token from logits: greedy, or sampling with temperature and top-k.

Shapes: b batch, v vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.errors import ConfigError


def check_sampling(temperature: float, top_k: int) -> None:
    """Raise a ConfigError for a negative temperature or top_k."""
    if temperature < 0:
        raise ConfigError(
            f"temperature must be >= 0, got {temperature}", "0 is greedy; 1 samples as trained"
        )
    if top_k < 0:
        raise ConfigError(f"top_k must be >= 0, got {top_k}", "0 keeps the whole vocabulary")


def sample_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int = 0, generator=None
) -> Tensor:
    """Draw one token per row of ``logits`` (b, v) and return ids (b,).

    p = softmax(logits / temperature), restricted to the ``top_k`` most likely tokens when
    top_k > 0. ``temperature == 0`` is greedy decoding (argmax).
    """
    check_sampling(temperature, top_k)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (b, 1): the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
