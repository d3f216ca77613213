"""Pixel Recurrent Neural Networks (van den Oord, Kalchbrenner and Kavukcuoglu 2016) for small
grey images: one channel of K levels (scikit-learn's 8x8 digits: K = 17; binarised: K = 2).

An image x is modelled pixel by pixel in raster order (row by row, left to right in a row):

    p(x) = prod_{r, c} p(x_{r,c} | x_{<(r,c)})          x_{<(r,c)}: rows above, and left in row r
    logits (b, K, H, W) = net(x); p(x_{r,c} = k | x_{<(r,c)}) = softmax_k(logits[:, :, r, c])
    nll(x) = -sum_{r,c} log p(x_{r,c} | x_{<(r,c)})     nats per image                      (b,)

Input encoding: the network reads one float channel, x / (K - 1) in [0, 1] (`logits_from_float`
takes it directly, so gradients to input pixels can be taken, which is how the tests check
causality). Shape legend: b batch, H rows, W cols, h hidden channels, K levels, k kernel width.

kind = row_lstm, diagonal_bilstm (the paper's PixelRNNs, sections 3.1-3.3):

    z^0 = MaskA_7x7(x)                                   (b, 2h, H, W)  sees only x_{<(r,c)}
    z^l = z^{l-1} + Conv_1x1(LSTM2d(z^{l-1}))            (b, 2h, H, W)  residual, section 3.3
    LSTM2d: Row LSTM or Diagonal BiLSTM, 2h channels in, h out; residual=False drops z^{l-1} +
    logits = Conv_1x1(ReLU(Conv_1x1(ReLU(z^L))))         (b, K, H, W)   mask B: at 1x1 all ones

  Row LSTM (eq. 3), one row i at a time, all W columns at once (h_0 = c_0 = 0):

    [o, f, i, g]_i = [s, s, s, tanh](K_ss (*) h_{i-1} + K_is (*) z_i)      (b, 4h, W)
    c_i = f . c_{i-1} + i . g;   h_i = o . tanh(c_i)                       (b, h, W)

    K_is: a 1 x k convolution with mask B along the row (columns <= c), for the whole image at
    once; K_ss: an unmasked 1-D convolution of width k over the row above's state. The receptive
    field is a triangle above the pixel (plus the current row to its left).

  Diagonal BiLSTM: the map is skewed, row r shifted right by r, (b, 2h, H, W) -> (b, 2h, H, W+H-1)
  (2W-1 for a square image), so that a diagonal of the image is a column of the skewed map; then,
  one column j at a time, left to right:

    [o, f, i, g]_j = [s, s, s, tanh](K_ss (*) h_{j-1} + K_is (*) z_j)      (b, 4h, H)
    K_is: 1x1 (mask B, the identity mask for one channel); K_ss: 2x1 along the column: rows
    r-1 and r of column j-1, i.e. the pixels above and to the left in the unskewed image.

    The right-to-left direction is the same on the mirrored map (separate weights); its output
    is shifted down one row before it is added, so that (r, c) sees the rows above in full and
    never row r to its right: the layer's receptive field is the whole past, (r, c) included.
    The model misses one pixel: for c < W - 4, (r, c) does not see (r-1, W-1), which the
    mask-A 7x7 layer puts into no feature of row r-1 and reaches row r only at columns >= W-4.

kind = pixelcnn (section 3.4): MaskA_7x7, then ``layers`` residual blocks
ReLU-Conv_1x1(2h->h)-ReLU-MaskB_kxk(h->h)-ReLU-Conv_1x1(h->2h), then the same output layers.

Baselines: independent: p(x) = prod_{r,c} softmax(theta[:, r, c])[x_{r,c}], no context;
lstm: a torch.nn.LSTM over the H*W pixels in raster order, reading x_{t-1} (and a start flag at
t = 0) and predicting x_t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError

KINDS = ("row_lstm", "diagonal_bilstm", "pixelcnn", "lstm", "independent")
MASKS = ("A", "B")


@dataclass
class PixelConfig:
    kind: str = "row_lstm"  # row_lstm | diagonal_bilstm | pixelcnn | lstm | independent
    hidden: int = 32  # h: state channels of a recurrent layer (the residual stream has 2h)
    layers: int = 3  # recurrent layers (pixelcnn: residual blocks; lstm: stacked LSTM layers)
    kernel: int = 3  # odd; row_lstm: width of the 1-D kernels; pixelcnn: the k x k conv size
    residual: bool = True  # add each layer's input to its output (paper section 3.3)
    dropout: float = 0.0  # dropout on each layer's output, in [0, 1)

    def validate_pixel(self, prefix: str = "model.") -> None:
        choice(prefix + "kind", self.kind, KINDS)
        positive(self, "hidden", "layers", "kernel", prefix=prefix)
        if self.kernel % 2 == 0:
            raise ConfigError(
                f"config key '{prefix}kernel' must be odd (a centre pixel for the mask), got "
                f"{self.kernel}",
                f"use {prefix}kernel={self.kernel + 1}",
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"config key '{prefix}dropout' must be in [0, 1), got {self.dropout!r}",
                f"use {prefix}dropout=0.1, or 0 for none",
            )


def bits_per_dim(nll_nats: Tensor | float, pixels: int) -> Tensor | float:
    """Negative log-likelihood in nats per image -> bits per pixel: nats / (pixels ln 2)."""
    return nll_nats / (pixels * math.log(2))


def skew(x: Tensor) -> Tensor:
    """(b, C, H, W) -> (b, C, H, W+H-1): row r shifted right by r, zeros elsewhere.

    Padding each row with H zeros and reading the flat rows back H - 1 shorter moves row r right
    by r: its start r (W+H) lands in column r of a row of W+H-1."""
    b, C, H, W = x.shape
    flat = F.pad(x, (0, H)).flatten(2)[:, :, : H * (W + H - 1)]  # (b, C, H (W+H-1))
    return flat.reshape(b, C, H, W + H - 1)


def unskew(s: Tensor, width: int) -> Tensor:
    """(b, C, H, W+H-1) -> (b, C, H, W): the inverse of `skew`, dropping its padding."""
    b, C, H, L = s.shape
    flat = F.pad(s.flatten(2), (0, H))  # (b, C, H (L+1)) = (b, C, H (W+H))
    return flat.reshape(b, C, H, L + 1)[..., :width]


def _lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """[o, f, i, g] (b, 4h, ...) and c_{t-1} (b, h, ...) -> (h_t, c_t), the paper's eq. 3."""
    o, f, i, g = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution that sees only pixels before the centre in raster order: the rows above
    the centre row, and in the centre row the columns left of the centre (mask "A": for the first
    layer, which must not see the pixel it predicts) or up to and including it (mask "B": later
    layers, whose input at (r, c) already excludes pixel (r, c)). Kernels may be rectangular
    (Row LSTM: 1 x k); both sides must be odd. There is one colour channel, so the paper's
    masking between the R, G and B channels is not needed: the mask is spatial only."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        mask: str,
        **options,
    ):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        if mask not in MASKS or kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(
                f"MaskedConv2d: mask A or B and odd kernel sides, got {mask!r}, {kh, kw}"
            )
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), **options)
        m = torch.zeros(kh, kw)
        m[: kh // 2] = 1  # the rows above the centre
        m[kh // 2, : kw // 2 + (mask == "B")] = 1  # left of the centre (B: and the centre)
        self.register_buffer("mask", m, persistent=False)
        self.kind = mask

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class RowLSTM(nn.Module):
    """(b, i, H, W) -> (b, h, H, W): an LSTM whose step is a row. Mask-B semantics: output (r, c)
    depends on the input at (r, c) and before it in raster order only."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.K_is = MaskedConv2d(in_channels, 4 * hidden, (1, kernel), "B")
        self.K_ss = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)

    def forward(self, z: Tensor) -> Tensor:
        b, _, H, W = z.shape
        x_gates = self.K_is(z)  # (b, 4h, H, W): the input-to-state part, for every row at once
        h = c = z.new_zeros(b, self.hidden, W)
        out = []
        for i in range(H):
            h, c = _lstm_update(self.K_ss(h) + x_gates[:, :, i], c)  # (b, h, W)
            out.append(h)
        return torch.stack(out, dim=2)  # (b, h, H, W)


class DiagonalLSTM(nn.Module):
    """One direction of the Diagonal BiLSTM: (b, i, H, W) -> (b, h, H, W), scanning the diagonals
    from the top-left corner. State (r, c) depends on the input at (r', c') with r' <= r and
    c' <= c only."""

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.K_is = nn.Conv2d(in_channels, 4 * hidden, 1)  # 1x1: mask B is all ones here
        self.K_ss = nn.Conv1d(hidden, 4 * hidden, 2, bias=False)  # 2x1: rows r-1, r

    def forward(self, z: Tensor) -> Tensor:
        b, _, H, W = z.shape
        x_gates = self.K_is(skew(z))  # (b, 4h, H, W+H-1)
        h = c = z.new_zeros(b, self.hidden, H)
        out = []
        for j in range(x_gates.shape[-1]):
            s_gates = self.K_ss(F.pad(h, (1, 0)))  # (b, 4h, H): zero state above the top row
            h, c = _lstm_update(s_gates + x_gates[..., j], c)  # (b, h, H)
            out.append(h)
        return unskew(torch.stack(out, dim=3), W)  # (b, h, H, W)


class DiagonalBiLSTM(nn.Module):
    """(b, i, H, W) -> (b, h, H, W): the left-to-right `DiagonalLSTM` plus the right-to-left one
    (run on the mirrored map) shifted down one row. Mask-B semantics: output (r, c) depends on
    every input at or before (r, c) in raster order, and on nothing after it."""

    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.forward_dir = DiagonalLSTM(in_channels, hidden)
        self.backward_dir = DiagonalLSTM(in_channels, hidden)

    def forward(self, z: Tensor) -> Tensor:
        H = z.shape[2]
        back = self.backward_dir(z.flip(-1)).flip(-1)  # (b, h, H, W): sees r' <= r, c' >= c
        back = F.pad(back, (0, 0, 1, 0))[:, :, :H]  # down one row: r' < r only
        return self.forward_dir(z) + back


class RecurrentBlock(nn.Module):
    """The residual block around a recurrent layer (section 3.3): (b, 2h, H, W) -> same;
    z + Conv_1x1(drop(layer(z))), the layer reading 2h channels and returning h."""

    def __init__(self, layer: nn.Module, hidden: int, residual: bool, dropout: float):
        super().__init__()
        self.layer, self.residual = layer, residual
        self.drop = nn.Dropout(dropout)
        self.up = nn.Conv2d(hidden, 2 * hidden, 1)

    def forward(self, z: Tensor) -> Tensor:
        y = self.up(self.drop(self.layer(z)))
        return z + y if self.residual else y


class ConvBlock(nn.Module):
    """PixelCNN's residual block: (b, 2h, H, W) -> same, with a mask-B k x k convolution."""

    def __init__(self, hidden: int, kernel: int, residual: bool, dropout: float):
        super().__init__()
        self.residual = residual
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(2 * hidden, hidden, 1),
            nn.ReLU(),
            MaskedConv2d(hidden, hidden, kernel, "B"),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(hidden, 2 * hidden, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        y = self.net(z)
        return z + y if self.residual else y


class OutputLayers(nn.Module):
    """(b, 2h, H, W) -> logits (b, K, H, W): ReLU-Conv_1x1-ReLU-Conv_1x1, per pixel."""

    def __init__(self, hidden: int, levels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(2 * hidden, 2 * hidden, 1),
            nn.ReLU(),
            nn.Conv2d(2 * hidden, levels, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ConvNet2d(nn.Module):
    """The row_lstm, diagonal_bilstm and pixelcnn bodies: x (b, 1, H, W) in [0, 1] -> logits
    (b, K, H, W); a mask-A 7x7 convolution, ``layers`` residual blocks, the output layers."""

    def __init__(self, config: PixelConfig, levels: int):
        super().__init__()
        c, h = config, config.hidden
        self.first = MaskedConv2d(1, 2 * h, 7, "A")
        blocks = []
        for _ in range(c.layers):
            if c.kind == "row_lstm":
                blocks.append(RecurrentBlock(RowLSTM(2 * h, h, c.kernel), h, c.residual, c.dropout))
            elif c.kind == "diagonal_bilstm":
                blocks.append(RecurrentBlock(DiagonalBiLSTM(2 * h, h), h, c.residual, c.dropout))
            else:
                blocks.append(ConvBlock(h, c.kernel, c.residual, c.dropout))
        self.blocks = nn.Sequential(*blocks)
        self.out = OutputLayers(h, levels)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(self.first(x)))


class PixelLSTM(nn.Module):
    """The sequence baseline: x (b, 1, H, W) -> logits (b, K, H, W) from a torch.nn.LSTM over the
    H W pixels in raster order; step t reads [x_{t-1}, 0] ([0, 1] at t = 0) and predicts x_t."""

    def __init__(self, config: PixelConfig, levels: int):
        super().__init__()
        c = config
        self.rnn = nn.LSTM(
            2, c.hidden, c.layers, batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, levels)

    def forward(self, x: Tensor) -> Tensor:
        b, _, H, W = x.shape
        prev = F.pad(x.flatten(1), (1, 0))[:, :-1]  # (b, H W): x_{t-1}, 0 at t = 0
        start = torch.zeros_like(prev)
        start[:, 0] = 1
        y, _ = self.rnn(torch.stack([prev, start], dim=-1))  # (b, H W, h)
        logits = self.head(self.drop(y))  # (b, H W, K)
        return logits.transpose(1, 2).reshape(b, -1, H, W)


class IndependentPixels(nn.Module):
    """The context-free baseline: one learned categorical per pixel, logits theta (K, H, W)."""

    def __init__(self, levels: int, height: int, width: int):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(levels, height, width))

    def forward(self, x: Tensor) -> Tensor:
        return self.theta.expand(x.shape[0], -1, -1, -1)  # (b, K, H, W)


class PixelRNN(nn.Module):
    """Images (b, H, W) of levels 0..K-1 -> logits (b, K, H, W) of p(x_{r,c} | x_{<(r,c)}),
    for every `KINDS` entry; `nll` scores images, `sample` draws or completes them."""

    def __init__(self, config: PixelConfig, levels: int, height: int, width: int):
        super().__init__()
        config.validate_pixel()
        if levels < 2 or height < 1 or width < 1:
            raise ValueError(
                f"PixelRNN: needs levels >= 2 and a non-empty image, got levels={levels}, "
                f"height={height}, width={width}"
            )
        self.config, self.levels, self.height, self.width = config, levels, height, width
        if config.kind == "independent":
            self.net: nn.Module = IndependentPixels(levels, height, width)
        elif config.kind == "lstm":
            self.net = PixelLSTM(config, levels)
        else:
            self.net = ConvNet2d(config, levels)

    def logits_from_float(self, xf: Tensor) -> Tensor:
        """xf (b, H, W): the image scaled to [0, 1], x / (K - 1) -> logits (b, K, H, W)."""
        if xf.shape[1:] != (self.height, self.width):
            raise ValueError(
                f"PixelRNN: images must be {self.height}x{self.width}, got {tuple(xf.shape)}"
            )
        return self.net(xf.unsqueeze(1))

    def forward(self, x: Tensor) -> Tensor:
        """x (b, H, W) long, levels 0..K-1 -> logits (b, K, H, W)."""
        dtype = next(self.parameters()).dtype
        return self.logits_from_float(x.to(dtype) / (self.levels - 1))

    def nll(self, x: Tensor) -> Tensor:
        """x (b, H, W) -> (b,): -log p(x) in nats, the sum of the per-pixel cross-entropies."""
        return F.cross_entropy(self(x), x, reduction="none").sum(dim=(1, 2))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        given: Tensor | None = None,
        given_rows: int = 0,
        return_probs: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Draw n images (n, H, W) pixel by pixel in raster order, one forward per pixel, from
        softmax(logits / temperature). With ``given`` (n, H, W) its first ``given_rows`` rows
        are kept and the rest completed. ``return_probs`` also returns the distributions
        (n, K, H, W) drawn from (for the given rows: the model's, from the final image). The
        model is in eval mode (no dropout) while sampling."""
        H, W = self.height, self.width
        if temperature <= 0:
            raise ValueError(f"PixelRNN.sample: temperature must be > 0, got {temperature}")
        if not 0 <= given_rows <= H or (given_rows > 0 and given is None):
            raise ValueError(
                f"PixelRNN.sample: given_rows must be in 0..{H}, with ``given`` when > 0; got "
                f"{given_rows}"
            )
        device = next(self.parameters()).device
        if given is not None:
            if given.shape != (n, H, W):
                raise ValueError(f"PixelRNN.sample: given must be {(n, H, W)}, got {given.shape}")
            x = given.to(device=device, dtype=torch.long).clone()
        else:
            x = torch.zeros(n, H, W, dtype=torch.long, device=device)
        dtype = torch.promote_types(next(self.parameters()).dtype, torch.float32)
        probs = torch.zeros(n, self.levels, H, W, dtype=dtype, device=device)
        training = self.training
        self.eval()
        try:
            for r in range(given_rows, H):
                for c in range(W):
                    p = torch.softmax(self(x)[:, :, r, c].to(dtype) / temperature, dim=1)  # (n, K)
                    x[:, r, c] = torch.multinomial(p, 1, generator=generator).squeeze(1)
                    probs[:, :, r, c] = p
            if return_probs and given_rows > 0:
                p = torch.softmax(self(x)[:, :, :given_rows].to(dtype) / temperature, dim=1)
                probs[:, :, :given_rows] = p
        finally:
            self.train(training)
        return (x, probs) if return_probs else x
