"""Encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015), from rnnkit layers.

    encoder:  h_1..h_S = BiRNN(E_src x_1..x_S)                         memory (b, S, d*h)
    bridge:   s_0 = tanh(W_b [h_fwd_S; h_bwd_1])  per decoder layer    (layers, b, h)
    decoder, Luong (dot | general | concat) with input feeding:
        s_t = RNN([E_tgt y_{t-1}; h~_{t-1}], s_{t-1})
        c_t, a_t = attention(s_t, memory)
        h~_t = tanh(W_c [c_t; s_t])
    decoder, Bahdanau (additive):
        c_t, a_t = attention(s_{t-1}, memory)
        s_t = RNN([E_tgt y_{t-1}; c_t], s_{t-1})
        h~_t = tanh(W_c [c_t; s_t])
    no attention (the baseline): s_t = RNN(E_tgt y_{t-1}, s_{t-1}); h~_t = s_t, so all the
        source reaches the decoder through s_0, the final summary vector
    p(y_t | y_<t, x) = softmax(W_o h~_t)

`encode` runs once per source batch, `decode_step` once per target step: the decoding module
(`rnnkit.decoding`) drives both for greedy search, beam search and sampling.

The encoder is pluggable: any module ``encoder(src, lengths) -> (memory states (b, S, k),
summary (b, k'), mask (b, S))`` (an image encoder for captioning, say) replaces the default
`RecurrentEncoder`; the bridge and attention size themselves from ``encoder.memory_size`` and
``encoder.summary_size``.

Shapes: b batch, S source length, T target length, h hidden, e embedding, v vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.attention import Attention
from rnnkit.config import choice, positive
from rnnkit.data.vocab import BOS, EOS, PAD, UNK
from rnnkit.errors import ConfigError
from rnnkit.models.stack import CELLS, VariantConfig, recurrent_stack

__all__ = ["Seq2Seq", "Seq2SeqModelConfig", "RecurrentEncoder", "PAD", "BOS", "EOS", "UNK"]
ATTENTIONS = ("none", "bahdanau", "dot", "general", "concat")


@dataclass
class Seq2SeqModelConfig(VariantConfig):
    cell: str = "lstm"  # rnn | lstm | gru
    embed: int = 64  # token embedding size (source and target)
    hidden: int = 128  # hidden units per direction and layer
    encoder_layers: int = 1  # stacked encoder layers
    decoder_layers: int = 1  # stacked decoder layers
    bidirectional: bool = True  # read the source both ways
    attention: str = "general"  # none | bahdanau | dot | general | concat
    input_feeding: bool = True  # Luong: feed h~_{t-1} into the next decoder step
    dropout: float = 0.1  # on embeddings and before the output layer

    def validate_model(self, prefix: str = "model.") -> None:
        choice(prefix + "cell", self.cell, tuple(CELLS))
        choice(prefix + "attention", self.attention, ATTENTIONS)
        positive(self, "embed", "hidden", "encoder_layers", "decoder_layers", prefix=prefix)
        self.validate_variants(self.cell, prefix)
        if self.attention == "dot" and self.bidirectional:
            raise ConfigError(
                f"{prefix}attention=dot needs decoder and encoder states of one size, but the "
                "bidirectional encoder's are twice as wide",
                f"use {prefix}attention=general, or {prefix}bidirectional=false",
            )


@dataclass
class DecoderState:
    """What one decoding step hands to the next: the RNN state and the attentional vector."""

    rnn: Tensor | tuple[Tensor, Tensor]  # (layers, b, h), or LSTM's (h, c)
    feed: Tensor  # h~_{t-1}: (b, h)

    def index(self, idx: Tensor) -> DecoderState:
        """Reorder or repeat the batch (beam search)."""
        rnn = (
            tuple(s.index_select(1, idx) for s in self.rnn)
            if isinstance(self.rnn, tuple)
            else self.rnn.index_select(1, idx)
        )
        return DecoderState(rnn, self.feed.index_select(0, idx))


@dataclass
class Memory:
    """The encoded source: what every decoding step attends to."""

    states: Tensor  # (b, S, d*h)
    mask: Tensor  # (b, S), True on real tokens
    keys: Tensor | None  # attention.project(states), computed once

    def index(self, idx: Tensor) -> Memory:
        keys = None if self.keys is None else self.keys.index_select(0, idx)
        return Memory(self.states.index_select(0, idx), self.mask.index_select(0, idx), keys)


class RecurrentEncoder(nn.Module):
    """Source ids (b, S) -> states h_1..h_S (b, S, d*h), the summary [h_fwd_S; h_bwd_1] of the
    last layer (b, d*h) and the padding mask (b, S), True on real tokens."""

    def __init__(self, embed: nn.Embedding, rnn: nn.Module, drop: nn.Module, config):
        super().__init__()
        self.embed, self.rnn, self.drop, self.config = embed, rnn, drop, config
        d = 2 if config.bidirectional else 1
        self.memory_size = self.summary_size = d * config.hidden

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        c = self.config
        states, final = self.rnn(self.drop(self.embed(src)), lengths=lengths)
        h_n = final[0] if isinstance(final, tuple) else final  # (layers*d, b, h)
        d = 2 if c.bidirectional else 1
        top = h_n.view(c.encoder_layers, d, -1, c.hidden)[-1]  # the last layer: (d, b, h)
        summary = torch.cat(list(top), dim=-1)  # [h_fwd_S; h_bwd_1]: (b, d*h)
        mask = torch.arange(src.size(1), device=src.device) < lengths.to(src.device)[:, None]
        return states, summary, mask


class Seq2Seq(nn.Module):
    """The encoder-decoder of the module docstring. ``encoder``: a module to use instead of
    the recurrent encoder over ``src_vocab`` (then ``src_vocab`` is ignored)."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        config: Seq2SeqModelConfig,
        encoder: nn.Module | None = None,
    ):
        super().__init__()
        c = self.config = config
        stack = dict(batch_first=True, variants=c)
        if encoder is None:  # created in this order so that a seed gives the same weights
            src_embed = nn.Embedding(src_vocab, c.embed, padding_idx=PAD)
            self.tgt_embed = nn.Embedding(tgt_vocab, c.embed, padding_idx=PAD)
            rnn = recurrent_stack(
                c.embed,
                c.cell,
                c.hidden,
                c.encoder_layers,
                bidirectional=c.bidirectional,
                dropout=c.dropout,
                **stack,
            )
            self.drop = nn.Dropout(c.dropout)
            encoder = RecurrentEncoder(src_embed, rnn, self.drop, c)
        else:
            self.tgt_embed = nn.Embedding(tgt_vocab, c.embed, padding_idx=PAD)
            self.drop = nn.Dropout(c.dropout)
        self.encoder = encoder
        self.bridge = nn.Linear(encoder.summary_size, c.decoder_layers * c.hidden)
        self.luong = c.attention in ("dot", "general", "concat")
        key_size = encoder.memory_size
        self.feed_size = c.hidden if self.luong and c.input_feeding else 0  # h~_{t-1}
        extra = key_size if c.attention == "bahdanau" else self.feed_size  # c_t, or h~_{t-1}
        self.decoder = recurrent_stack(
            c.embed + extra, c.cell, c.hidden, c.decoder_layers, dropout=c.dropout, **stack
        )
        if c.attention != "none":
            self.attention = Attention(c.attention, c.hidden, key_size)
            self.combine = nn.Linear(key_size + c.hidden, c.hidden)  # W_c [c_t; s_t]
        self.out = nn.Linear(c.hidden, tgt_vocab)
        if isinstance(encoder, RecurrentEncoder):  # runs saved before it was its own module
            self._register_load_state_dict_pre_hook(_rename_old_keys)

    # ------------------------------------------------------------------------- encoder
    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Memory, DecoderState]:
        """src (b, S) token ids, lengths (b,) -> the memory and the decoder's first state."""
        c = self.config
        states, summary, mask = self.encoder(src, lengths)
        s0 = torch.tanh(self.bridge(summary)).view(-1, c.decoder_layers, c.hidden)
        s0 = s0.transpose(0, 1).contiguous()  # (layers, b, h)
        rnn = (s0, torch.zeros_like(s0)) if c.cell == "lstm" else s0
        keys = self.attention.project(states) if c.attention != "none" else None
        feed = states.new_zeros(src.size(0), self.feed_size)
        return Memory(states, mask, keys), DecoderState(rnn, feed)

    # ------------------------------------------------------------------------- decoder
    def attend(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """The context c_t (b, k) and weights a_t (b, S) for the query (b, h)."""
        return self.attention(query, memory.states, memory.mask, memory.keys)

    def decode_step(
        self, y_prev: Tensor, state: DecoderState, memory: Memory, decoder: nn.Module | None = None
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """y_prev (b,) -> logits (b, v), the next state, attention weights (b, S) or None.
        ``decoder``: the recurrent stack to run instead of self.decoder (`rnnkit.export`
        passes torch.nn's layer with the same weights)."""
        e = self.drop(self.tgt_embed(y_prev))  # (b, e)
        a = None
        if self.config.attention == "bahdanau":
            top = (state.rnn[0] if isinstance(state.rnn, tuple) else state.rnn)[-1]  # s_{t-1}
            ctx, a = self.attend(top, memory)
            x = torch.cat([e, ctx], dim=-1)
        else:
            x = torch.cat([e, state.feed], dim=-1) if self.feed_size else e
        s, rnn = (decoder or self.decoder)(x.unsqueeze(1), state.rnn)  # (b, 1, h)
        s = s.squeeze(1)
        if self.config.attention == "none":
            h_tilde = s
        else:
            if self.luong:
                ctx, a = self.attend(s, memory)
            h_tilde = torch.tanh(self.combine(torch.cat([ctx, s], dim=-1)))  # (b, h)
        feed = h_tilde if self.feed_size else state.feed
        return self.out(self.drop(h_tilde)), DecoderState(rnn, feed), a

    def forward(
        self,
        src: Tensor,
        lengths: Tensor,
        tgt_in: Tensor,
        teacher_forcing: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Training pass: tgt_in (b, T) starts with BOS. Returns logits (b, T, v).

        With probability ``teacher_forcing`` each step reads the true previous token, otherwise
        the model's own greedy prediction (scheduled sampling, Bengio et al. 2015), per example.
        """
        return self.unroll(src, lengths, tgt_in, teacher_forcing, generator)[0]

    def unroll(
        self,
        src: Tensor,
        lengths: Tensor,
        tgt_in: Tensor,
        teacher_forcing: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """`forward`, also returning the attention weights a_t of every step: (b, T, S), or
        None without attention."""
        memory, state = self.encode(src, lengths)
        logits, weights, y = [], [], tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            step_logits, state, a = self.decode_step(y, state, memory)
            logits.append(step_logits)
            weights.append(a)
            if t + 1 < tgt_in.size(1):
                y = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    coin = torch.rand(y.shape, generator=generator, device="cpu").to(y.device)
                    own = step_logits.argmax(-1)
                    y = torch.where(coin < teacher_forcing, y, own)
        attention = None if weights[0] is None else torch.stack(weights, dim=1)
        return torch.stack(logits, dim=1), attention


def _rename_old_keys(state_dict, prefix, *args) -> None:
    """Runs saved before the encoder was its own module named it src_embed + encoder."""
    for key in list(state_dict):
        rest = key[len(prefix) :]
        if rest.startswith("src_embed."):
            state_dict[prefix + "encoder.embed." + rest[10:]] = state_dict.pop(key)
        elif rest.startswith("encoder.") and not rest.startswith(
            ("encoder.embed.", "encoder.rnn.")
        ):
            state_dict[prefix + "encoder.rnn." + rest[8:]] = state_dict.pop(key)
