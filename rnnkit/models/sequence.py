"""A recurrent sequence model with an input stage and a head: the many-to-one and aligned
many-to-many architectures of the course in one module.

    x_t = E[w_t]  (input="embedding")  or  x_t = features  (input="linear": used as they come)
    h_1..h_T = RNN(x_1..x_T)                          the recurrent stack        (b, t, d*h)
    head "step":  y_t = W h_t + b   at every step      tagging, CTC (v + blank)   (b, t, o)
    head "last":  y = W h_T + b     at each sequence's last real step             (b, o)
    head "mean":  y = W mean_t h_t  over the real steps                           (b, o)

With a bidirectional stack, "last" reads [h_fwd at the last real step; h_bwd at step 0], the
two states that have seen the whole sequence. ``lengths`` (b,) marks the real steps of a
padded batch; it defaults to every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.config import choice
from rnnkit.models.stack import StackConfig, stack_from

HEADS = ("step", "last", "mean")


@dataclass
class SequenceModelConfig(StackConfig):
    head: str = "step"  # step (an output per step) | last (per sequence) | mean (per sequence)

    def validate_model(self, prefix: str = "model.") -> None:
        self.validate_stack(prefix)
        choice(prefix + "head", self.head, HEADS)


class SequenceModel(nn.Module):
    """(b, t) token ids or (b, t, i) features -> (b, t, o) per step, or (b, o) per sequence.

    Args: ``input_size`` features per step, or the vocabulary size with ``vocab=True``;
    ``output_size``; ``config`` (cell, hidden, layers, direction, variants, head); ``embed``
    the embedding size (vocab only); ``padding_idx`` the pad id, whose embedding stays zero.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        config: SequenceModelConfig,
        *,
        vocab: bool = False,
        embed: int = 0,
        padding_idx: int | None = None,
    ):
        super().__init__()
        self.config = config
        if vocab:
            self.embed = nn.Embedding(input_size, embed, padding_idx=padding_idx)
            input_size = embed
        self.rnn = stack_from(input_size, config)
        d = 2 if config.bidirectional else 1
        self.head = nn.Linear(d * config.hidden, output_size)

    def forward(self, x: Tensor, state=None, *, lengths: Tensor | None = None):
        """Returns (y, final state); y is (b, t, o) for the "step" head, else (b, o)."""
        if hasattr(self, "embed"):
            x = self.embed(x)  # (b, t, e)
        h, state = (
            self.rnn(x, state, lengths=lengths) if lengths is not None else self.rnn(x, state)
        )
        head = self.config.head
        if head == "step":
            return self.head(h), state  # (b, t, o)
        b, t = h.shape[:2]
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        lengths = lengths.to(h.device)
        if head == "mean":
            mask = (torch.arange(t, device=h.device) < lengths[:, None]).unsqueeze(-1)  # (b,t,1)
            pooled = (h * mask).sum(1) / lengths.clamp(min=1)[:, None].to(h.dtype)
            return self.head(pooled), state
        last = h[torch.arange(b, device=h.device), lengths - 1]  # (b, d*h) at the last real step
        if self.config.bidirectional:
            hidden = self.config.hidden
            last = torch.cat([last[:, :hidden], h[:, 0, hidden:]], dim=-1)
        return self.head(last), state
