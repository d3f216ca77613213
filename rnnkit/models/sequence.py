"""A recurrent sequence model with an input stage and a head: the many-to-one and aligned
many-to-many architectures of the course in one module.

    x_t = E[w_t]  (input="embedding")  or  x_t = features  (input="linear": used as they come)
    h_1..h_T = RNN(x_1..x_T)                          the recurrent stack        (b, t, d*h)
    head "step":  y_t = W h_t + b   at every step      tagging, CTC (v + blank)   (b, t, o)
    head "last":  y = W h_T + b     at each sequence's last real step             (b, o)
    head "mean":  y = W mean_t h_t  over the real steps                           (b, o)
    head "max":   y = W max_t h_t   elementwise, over the real steps              (b, o)
    head "attention":  e_t = v . tanh(A h_t + a),  alpha = softmax_t(e_t) over the real steps,
                  y = W sum_t alpha_t h_t    (Yang et al. 2016's attention pooling)   (b, o)

A pooled head may add a ``wide`` part, any module (ids (b, t), lengths (b,)) -> (b, o) whose
scores join the read-out: y = W pool(h) + b + wide(w_1..w_T) (a wide-and-deep model; the
n-gram bag of `rnnkit.models.ngrams`, say).

With a bidirectional stack, "last" reads [h_fwd at the last real step; h_bwd at step 0], the
two states that have seen the whole sequence. ``lengths`` (b,) marks the real steps of a
padded batch; it defaults to every step, and padding never reaches a pooled head.
``input_dropout`` drops units of x_t; ``head_dropout`` units of the pooled vector before W.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.config import choice
from rnnkit.errors import ConfigError
from rnnkit.models.stack import StackConfig, stack_from

HEADS = ("step", "last", "mean", "max", "attention")
POOLS = HEADS[1:]  # the heads that give one output per sequence


@dataclass
class SequenceModelConfig(StackConfig):
    head: str = "step"  # step (an output per step) | per sequence: last | mean | max | attention
    head_dropout: float = 0.0  # dropout on the pooled vector before the read-out
    input_dropout: float = 0.0  # dropout on x_t (the embeddings, or the features)

    def validate_model(self, prefix: str = "model.") -> None:
        self.validate_stack(prefix)
        choice(prefix + "head", self.head, HEADS)
        for name in ("head_dropout", "input_dropout"):
            rate = getattr(self, name)
            if not 0 <= rate < 1:
                raise ConfigError(f"config key '{prefix}{name}' must be in [0, 1), got {rate}")


class SequenceModel(nn.Module):
    """(b, t) token ids or (b, t, i) features -> (b, t, o) per step, or (b, o) per sequence.

    Args: ``input_size`` features per step, or the vocabulary size with ``vocab=True``;
    ``output_size``; ``config`` (cell, hidden, layers, direction, variants, head); ``embed``
    the embedding size (vocab only); ``padding_idx`` the pad id, whose embedding stays zero;
    ``token_features`` k fixed features per token (a lexicon's, say) appended to E[w_t]:
    x_t = [E[w_t]; F[w_t]], with F the ``token_features`` buffer (v, k) filled by the caller.
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
        token_features: int = 0,
        wide: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config
        if vocab:
            self.embed = nn.Embedding(input_size, embed, padding_idx=padding_idx)
            if token_features:  # fixed per-token features F (v, k), saved with the weights
                self.register_buffer("token_features", torch.zeros(input_size, token_features))
            input_size = embed + token_features
        self.rnn = stack_from(input_size, config)
        d = 2 if config.bidirectional else 1
        if config.head == "attention":
            self.attend = nn.Sequential(
                nn.Linear(d * config.hidden, d * config.hidden),
                nn.Tanh(),
                nn.Linear(d * config.hidden, 1, bias=False),
            )  # e_t = v . tanh(A h_t + a)
        if getattr(config, "input_dropout", 0.0):
            self.in_drop = nn.Dropout(config.input_dropout)
        if getattr(config, "head_dropout", 0.0):
            self.drop = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(d * config.hidden, output_size)
        if wide is not None:
            if config.head == "step" or not vocab:
                raise ConfigError("a wide part needs token ids and a pooled head")
            self.wide = wide

    def forward(
        self,
        x: Tensor,
        state=None,
        *,
        lengths: Tensor | None = None,
        return_weights: bool = False,
    ):
        """Returns (y, final state); y is (b, t, o) for the "step" head, else (b, o). With
        ``return_weights`` (attention head): (y, state, alpha (b, t)), alpha 0 on padding."""
        if hasattr(self, "embed"):
            ids = x
            x = self.embed(ids)  # (b, t, e)
            if hasattr(self, "in_drop"):
                x = self.in_drop(x)
            if hasattr(self, "token_features"):
                x = torch.cat([x, self.token_features[ids]], dim=-1)  # (b, t, e + k)
        elif hasattr(self, "in_drop"):
            x = self.in_drop(x)
        h, state = (
            self.rnn(x, state, lengths=lengths) if lengths is not None else self.rnn(x, state)
        )
        head = self.config.head
        if head == "step":
            return self.head(h), state  # (b, t, o)
        pooled, alpha = self.pool(h, lengths)
        if hasattr(self, "drop"):
            pooled = self.drop(pooled)
        y = self.head(pooled)
        if hasattr(self, "wide"):
            b, t = ids.shape
            full = torch.full((b,), t, dtype=torch.long)
            y = y + self.wide(ids, full if lengths is None else lengths)
        return (y, state, alpha) if return_weights else (y, state)

    def pool(self, h: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """h (b, t, d*h) -> one vector per sequence (b, d*h) by the configured head, and the
        attention weights (b, t) where the head has them."""
        head = self.config.head
        b, t = h.shape[:2]
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        lengths = lengths.to(h.device)
        real = torch.arange(t, device=h.device) < lengths[:, None]  # (b, t)
        if head == "mean":
            pooled = (h * real.unsqueeze(-1)).sum(1) / lengths.clamp(min=1)[:, None].to(h.dtype)
            return pooled, None
        if head == "max":
            return h.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(1), None
        if head == "attention":
            e = self.attend(h).squeeze(-1).masked_fill(~real, float("-inf"))  # (b, t)
            alpha = torch.softmax(e, dim=1)
            return torch.einsum("bt,btd->bd", alpha, h), alpha
        last = h[torch.arange(b, device=h.device), lengths - 1]  # (b, d*h) at the last real step
        if self.config.bidirectional:
            hidden = self.config.hidden
            last = torch.cat([last[:, :hidden], h[:, 0, hidden:]], dim=-1)
        return last, None
