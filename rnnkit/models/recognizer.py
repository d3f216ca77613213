"""A recogniser: frames in, a distribution over symbols per output frame out (CTC), or one
class per sequence.

    x_1..x_T                      feature frames (b, T, f): log-mel, MFCC, pixel columns, pen
    z = frontend(x)               optional, Deep Speech 2 style: convolutions over (frequency,
                                  time), strided in time by s = prod(strides)        (b, T', c)
                                  T' = floor((T + 2 p - k) / s_i) + 1 per layer
    h_1..h_T' = BiLSTM(z)         the recurrent stack (rnnkit.LSTM / GRU / RNN)        (b, T', 2h)
    ctc:    log y_t = log_softmax(W h_t + b)      symbol 0 is the CTC blank          (b, T', C)
    class:  log p(c | x) = log_softmax(W pool(h) + b)   pool: last | mean | max | attention

In a padded batch the front end zeroes the frames past each length before every convolution,
so a sequence's outputs do not depend on its neighbours; ``output_lengths`` gives T'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError
from rnnkit.models.sequence import SequenceModel, SequenceModelConfig

FRONTENDS = ("none", "conv")


@dataclass
class RecognizerConfig(SequenceModelConfig):
    cell: str = "lstm"
    hidden: int = 128
    layers: int = 2
    bidirectional: bool = True
    head: str = "step"  # step: CTC over symbols | last | mean | max | attention: one class
    frontend: str = "none"  # none | conv: 2-D convolutions over (features, time)
    channels: int = 32  # conv: channels of each layer
    conv_layers: int = 1  # conv: how many
    stride: int = 2  # conv: the time stride of the first layer (later ones: 1)
    kernel: int = 5  # conv: kernel size along time and along the features

    def validate_recognizer(self, prefix: str = "model.") -> None:
        self.validate_model(prefix)
        choice(prefix + "frontend", self.frontend, FRONTENDS)
        positive(self, "channels", "conv_layers", "stride", "kernel", prefix=prefix)
        if self.kernel % 2 == 0:
            raise ConfigError(
                f"config key '{prefix}kernel' must be odd (the same padding both sides), got "
                f"{self.kernel}",
                f"use {prefix}kernel={self.kernel + 1}",
            )


class ConvFrontend(nn.Module):
    """(b, T, f) -> (b, T', c * f'): 2-D convolutions + batch norm + hardtanh (Deep Speech 2),
    the first strided by ``stride`` in time and 2 along the features."""

    def __init__(self, features: int, c: RecognizerConfig):
        super().__init__()
        layers, channels, f = [], 1, features
        self.strides, self.kernel = [], c.kernel
        for i in range(c.conv_layers):
            s_t, s_f = (c.stride, 2) if i == 0 else (1, 1)
            layers += [
                nn.Conv2d(channels, c.channels, c.kernel, (s_f, s_t), c.kernel // 2),
                nn.BatchNorm2d(c.channels),
                nn.Hardtanh(0, 20),
            ]
            channels, f = c.channels, (f + 2 * (c.kernel // 2) - c.kernel) // s_f + 1
            self.strides.append(s_t)
        self.net = nn.Sequential(*layers)
        self.size = channels * f

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Frames past each length are zeroed before every layer, so that a padded batch
        gives each sequence what it gives alone (where the convolution's own zero padding
        lies)."""
        z = x.transpose(1, 2).unsqueeze(1)  # (b, 1, f, T)
        for i, stride in enumerate(self.strides):
            if lengths is not None:
                real = torch.arange(z.shape[-1], device=z.device) < lengths.to(z.device)[:, None]
                z = z * real[:, None, None, :]
                lengths = self._after(lengths, stride)
            z = self.net[3 * i + 2](self.net[3 * i + 1](self.net[3 * i](z)))
        return z.flatten(1, 2).transpose(1, 2)  # (b, c f', T')

    def _after(self, lengths: Tensor, stride: int) -> Tensor:
        p = self.kernel // 2
        return torch.div(lengths + 2 * p - self.kernel, stride, rounding_mode="floor") + 1

    def output_lengths(self, lengths: Tensor) -> Tensor:
        for stride in self.strides:
            lengths = self._after(lengths, stride)
        return lengths


class Recognizer(nn.Module):
    """Frames (b, T, f) with lengths -> (log-probabilities (b, T', C), lengths (b,)) for the
    CTC head, or (class log-probabilities (b, C), lengths) for a pooled head."""

    def __init__(self, features: int, outputs: int, config: RecognizerConfig):
        super().__init__()
        self.config = config
        size = features
        if config.frontend == "conv":
            self.frontend = ConvFrontend(features, config)
            size = self.frontend.size
        self.body = SequenceModel(size, outputs, config)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """T' of each sequence: the frames the head sees."""
        if hasattr(self, "frontend"):
            return self.frontend.output_lengths(lengths)
        return lengths

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        lengths = lengths.cpu()
        if hasattr(self, "frontend"):
            x = self.frontend(x, lengths)
            lengths = self.frontend.output_lengths(lengths).clamp(min=1, max=x.shape[1])
        y, _ = self.body(x, lengths=lengths)
        return torch.log_softmax(y.float(), dim=-1), lengths
