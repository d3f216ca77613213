"""Show, attend and tell (Xu et al. 2015): a convolutional encoder gives a grid of annotation
vectors, and an LSTM decoder writes the caption one word at a time, attending softly over the
grid at every word.

    a_1..a_L = CNN(image)                   annotation vectors, one per grid cell     (b, L, k)
                                            L = H' W' after `blocks` stride-2 stages; with
                                            ``coords`` each a_i ends with its cell's (x, y)
    s_0 = tanh(W_b mean_i a_i)              the decoder's first state (the bridge)    (b, h)
    e_ti = f_att(a_i, s_{t-1})              Bahdanau's additive score, as in the paper; with
                                            a Luong score (general: s_t^T W_a a_i, the
                                            default, which learned faster here) the query is
                                            s_t and the context is fed to the next step
    alpha_t = softmax(e_t)                  where the model looks for word t          (b, L)
    beta_t = sigmoid(f_beta(s_{t-1}))       the gating scalar of section 4.2.1        (b, 1)
    z_t = beta_t sum_i alpha_ti a_i         the context
    s_t = LSTM([E y_{t-1}; z_t], s_{t-1})
    p(y_t | y_<t, image) = softmax(W_o tanh(W_c [z_t; s_t]))

The decoder is `rnnkit.models.seq2seq.Seq2Seq` with this encoder plugged in, so greedy search,
beam search, sampling, teacher forcing and scheduled sampling are the ones of translation.
Training adds the doubly stochastic regularisation of eq. (14), which pushes every grid cell
to receive a total attention of about one over the caption:

    L = - sum_t log p(y_t | y_<t, image) + lambda (1/L) sum_i (1 - sum_t alpha_ti)^2

Shapes: b batch, C image channels, H x W pixels, L grid cells, k annotation size, T words.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.config import positive
from rnnkit.errors import ConfigError
from rnnkit.models.seq2seq import Memory, Seq2Seq, Seq2SeqModelConfig

__all__ = ["CaptionModelConfig", "ConvEncoder", "Captioner", "doubly_stochastic"]


@dataclass
class CaptionModelConfig(Seq2SeqModelConfig):
    attention: str = "general"  # general (Luong) | bahdanau (as in the paper) | dot | concat
    bidirectional: bool = False  # unused: the encoder is convolutional
    hidden: int = 128  # decoder LSTM units
    embed: int = 64  # word embedding size
    channels: int = 64  # convolution channels (the annotation size k, before coordinates)
    blocks: int = 2  # stride-2 stages: the grid is (H / 2^blocks) x (W / 2^blocks)
    coords: bool = True  # append each grid cell's (x, y) in [-1, 1] to its annotation
    gate: bool = True  # the gating scalar beta_t on the context
    doubly_stochastic: float = 0.0  # lambda of the attention regulariser (the paper: 1; 0: off)
    grid_dropout: float = 0.0  # dropout on the annotation vectors a_i while training

    def validate_captioner(self, prefix: str = "model.") -> None:
        self.validate_model(prefix)
        positive(self, "channels", "blocks", prefix=prefix)
        if self.attention == "none":
            raise ConfigError(
                f"{prefix}attention=none: a captioner attends over the image grid",
                f"use {prefix}attention=bahdanau (the paper's) or dot | general | concat",
            )
        if self.attention == "dot" and self.channels + 2 * self.coords != self.hidden:
            raise ConfigError(
                f"{prefix}attention=dot needs annotations as wide as the decoder state: "
                f"{prefix}channels (+2 with coords) = {self.channels + 2 * self.coords}, "
                f"{prefix}hidden = {self.hidden}",
                f"use {prefix}attention=general, or make them equal",
            )
        if not 0 <= self.grid_dropout < 1:
            raise ConfigError(
                f"config key '{prefix}grid_dropout' must be in [0, 1), got {self.grid_dropout}"
            )
        if self.doubly_stochastic < 0:
            raise ConfigError(
                f"config key '{prefix}doubly_stochastic' must be >= 0, got {self.doubly_stochastic}"
            )


class ConvEncoder(nn.Module):
    """Images (b, C, H, W) -> annotation grid (b, L, k), summary (b, k), mask (b, L).

    Each stage is conv 3x3 -> ReLU -> conv 3x3 stride 2 -> ReLU (batch norm between), so a
    32 x 32 scene with 2 stages gives an 8 x 8 grid. The signature is `Seq2Seq`'s pluggable
    encoder's: ``lengths`` is accepted and ignored (every grid cell is valid).
    """

    def __init__(
        self, in_channels: int, channels: int, blocks: int, coords: bool = True, dropout=0.0
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for _ in range(blocks):
            layers += [
                nn.Conv2d(c_in, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 3, stride=2, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
            c_in = channels
        self.net = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)  # on the features, not on the coordinates
        self.in_channels, self.blocks, self.coords = in_channels, blocks, coords
        self.memory_size = self.summary_size = channels + (2 if coords else 0)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The grid (H', W') of an H x W image: each stage halves, rounding up."""
        for _ in range(self.blocks):
            height, width = (height + 1) // 2, (width + 1) // 2
        return height, width

    def forward(self, src: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        f = self.drop(self.net(src))  # (b, k, H', W')
        b, _, rows, cols = f.shape
        if self.coords:
            y = torch.linspace(-1, 1, rows, device=f.device, dtype=f.dtype)
            x = torch.linspace(-1, 1, cols, device=f.device, dtype=f.dtype)
            yy, xx = torch.meshgrid(y, x, indexing="ij")
            f = torch.cat([f, torch.stack([xx, yy]).expand(b, 2, rows, cols)], dim=1)
        a = f.flatten(2).transpose(1, 2)  # (b, L, k): cell i = row * W' + col
        mask = torch.ones(b, a.size(1), dtype=torch.bool, device=a.device)
        return a, a.mean(dim=1), mask


class Captioner(Seq2Seq):
    """`Seq2Seq` over a `ConvEncoder`, with the gating scalar beta_t on the context."""

    def __init__(self, in_channels: int, vocab: int, config: CaptionModelConfig):
        encoder = ConvEncoder(
            in_channels, config.channels, config.blocks, config.coords, config.grid_dropout
        )
        super().__init__(0, vocab, config, encoder=encoder)
        if config.gate:
            self.f_beta = nn.Linear(config.hidden, 1)

    def attend(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        z, alpha = super().attend(query, memory)
        if self.config.gate:
            z = torch.sigmoid(self.f_beta(query)) * z  # beta_t z_t
        return z, alpha


def doubly_stochastic(alpha: Tensor, steps: Tensor) -> Tensor:
    """(1 / L) sum_i (1 - sum_t alpha_ti)^2 per caption, averaged over the batch: eq. (14)
    averaged over the L grid cells rather than summed (as the widely used PyTorch
    reimplementation does), so that lambda means the same for any grid and caption length.

    alpha (b, T, L): the attention of every step; steps (b, T): True on real words (the steps
    that predict a word or the end, not padding), whose attention alone is summed.
    """
    total = (alpha * steps.unsqueeze(-1).to(alpha.dtype)).sum(dim=1)  # (b, L)
    return ((1 - total) ** 2).mean(dim=1).mean()
