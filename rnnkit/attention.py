"""Attention over a memory of encoder states: Bahdanau (additive) and Luong (dot, general, concat).

For a query s (the decoder state) and memory h_1..h_S (the encoder outputs):

    e_j = score(s, h_j)
    a_j = exp(e_j) / sum_k exp(e_k)        over the valid (unpadded) positions only
    c   = sum_j a_j h_j                    the context vector

    bahdanau (additive):  score = v^T tanh(W_q s + W_k h_j)       Bahdanau et al. 2015, eq. 6
    dot:                  score = s^T h_j                          Luong et al. 2015, eq. 8
    general:              score = s^T W_a h_j
    concat:               score = v^T tanh(W_a [s; h_j])

Shapes: b batch, S memory length, q query features, k key (memory) features, a attention units.
The key side (W_k h_j, W_a h_j) is computed once per sequence by `project`, not once per step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

KINDS = ("bahdanau", "dot", "general", "concat")


class Attention(nn.Module):
    """``attention(query, memory, mask) -> (context (b, k), weights (b, S))``."""

    def __init__(self, kind: str, query_size: int, key_size: int, units: int | None = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Attention: kind must be one of {KINDS}, got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError(
                f"Attention: dot scores need query and key of one size, got query_size="
                f"{query_size} and key_size={key_size} (hint: use 'general' to map between them)"
            )
        self.kind = kind
        units = units or query_size
        if kind == "bahdanau":
            self.W_q = nn.Linear(query_size, units, bias=False)
            self.W_k = nn.Linear(key_size, units)
            self.v = nn.Linear(units, 1, bias=False)
        elif kind == "general":
            self.W_a = nn.Linear(key_size, query_size, bias=False)  # W_a h_j, ready for s^T
        elif kind == "concat":
            # W_a [s; h_j] = W_q s + W_k h_j: split so the key half is computed once
            self.W_q = nn.Linear(query_size, units, bias=False)
            self.W_k = nn.Linear(key_size, units)
            self.v = nn.Linear(units, 1, bias=False)

    def project(self, memory: Tensor) -> Tensor:
        """The per-sequence part of the score: memory (b, S, k) -> (b, S, a or q or k)."""
        if self.kind in ("bahdanau", "concat"):
            return self.W_k(memory)
        if self.kind == "general":
            return self.W_a(memory)
        return memory

    def forward(
        self, query: Tensor, memory: Tensor, mask: Tensor | None = None, keys: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """query (b, q); memory (b, S, k); mask (b, S), True where valid; keys = project(memory)."""
        keys = self.project(memory) if keys is None else keys
        if self.kind in ("bahdanau", "concat"):
            e = self.v(torch.tanh(self.W_q(query).unsqueeze(1) + keys)).squeeze(-1)  # (b, S)
        else:
            e = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)  # s^T h_j or s^T W_a h_j: (b, S)
        if mask is not None:
            e = e.masked_fill(~mask, float("-inf"))
        a = torch.softmax(e, dim=-1)  # (b, S); exactly 0 on padding
        c = torch.bmm(a.unsqueeze(1), memory).squeeze(1)  # (b, k)
        return c, a
