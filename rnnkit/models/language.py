"""A recurrent language model: predict the next token (Karpathy's char-rnn; Mikolov 2010 for
words).

    x_t = E[w_t]                      embedding of the t-th token       (b, t, e)
    h_t = RNN(x_t, h_{t-1})           the recurrent stack               (b, t, h)
    p(w_{t+1} | w_<=t) = softmax(W drop(h_t) + b)                       (b, t, v)

The state is returned and taken back, so truncated BPTT and sampling carry it across calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rnnkit.config import positive
from rnnkit.errors import ConfigError
from rnnkit.models.stack import StackConfig, stack_from


@dataclass
class LanguageModelConfig(StackConfig):
    hidden: int = 256  # hidden units per layer
    layers: int = 2  # stacked recurrent layers
    embed: int = 64  # token embedding size

    def validate_model(self, prefix: str = "model.") -> None:
        self.validate_stack(prefix)
        positive(self, "embed", prefix=prefix)
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
        self.head = nn.Linear(c.hidden, vocab_size)

    def forward(self, ids: Tensor, state=None):
        """ids (b, t) -> logits (b, t, v) and the final state."""
        h, state = self.rnn(self.embed(ids.long()), state)  # (b, t, h); ids may be int16
        return self.head(self.drop(h)), state
