"""A recurrent language model: predict the next token (Karpathy's char-rnn; Mikolov 2010 for
words).

    x_t = E[w_t]                      embedding of the t-th token       (b, t, e)
    h_t = RNN(x_t, h_{t-1})           the recurrent stack               (b, t, h)
    p(w_{t+1} | w_<=t) = softmax(W drop(h_t) + b)                       (b, t, v)

With ``tie`` the read-out is the embedding itself, W = E (Press and Wolf 2017; Inan et al.
2017): fewer parameters and a better model for words; it needs embed == hidden.

The state is returned and taken back, so truncated BPTT and sampling carry it across calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import positive
from rnnkit.errors import ConfigError
from rnnkit.models.stack import StackConfig, stack_from


@dataclass
class LanguageModelConfig(StackConfig):
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # stacked recurrent layers
    embed: int = 64  # token embedding size
    tie: bool = False  # the read-out reuses the embedding (Press and Wolf 2017); embed == hidden

    def validate_model(self, prefix: str = "model.") -> None:
        self.validate_stack(prefix)
        positive(self, "embed", prefix=prefix)
        if self.tie and self.embed != self.hidden:
            raise ConfigError(
                f"config key '{prefix}tie' needs {prefix}embed == {prefix}hidden, got "
                f"embed={self.embed}, hidden={self.hidden}",
                f"set {prefix}embed={self.hidden}, or {prefix}tie=false",
            )
        if self.bidirectional:
            raise ConfigError(
                f"config key '{prefix}bidirectional' must be false for a language model: "
                "a backward pass would read the token it is asked to predict"
            )


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> linear read-out over the vocabulary."""

    def __init__(self, vocab_size: int, config: LanguageModelConfig):
        super().__init__()
        c = config
        self.embed = nn.Embedding(vocab_size, c.embed)
        self.rnn = stack_from(c.embed, c)
        self.drop = nn.Dropout(c.dropout)
        if c.tie:  # W = E: only the bias is new
            self.bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.head = nn.Linear(c.hidden, vocab_size)

    def read_out(self, h: Tensor) -> Tensor:
        """h (b, t, h) -> logits (b, t, v)."""
        if hasattr(self, "head"):
            return self.head(self.drop(h))
        return F.linear(self.drop(h), self.embed.weight, self.bias)

    def forward(self, ids: Tensor, state=None):
        """ids (b, t) -> logits (b, t, v) and the final state."""
        h, state = self.rnn(self.embed(ids.long()), state)  # (b, t, h); ids may be int16
        return self.read_out(h), state
