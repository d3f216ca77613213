"""Per-frame video labelling, many to many: a convolutional encoder reads each frame, an RNN
carries what it saw to the frames after, and every frame gets a label.

    f_t = CNN(frame_t)                      the frame's features, the same CNN every frame (b, T, e)
    h_t = RNN(f_t, h_{t-1})                 forward in time only: frame t's label depends on
                                            frames 1..t, so it can run on a live stream  (b, T, h)
    p(y_t | frames_1..t) = softmax(W h_t)                                              (b, T, K)

Beside it, with its own weights, the baseline that has no memory: the same CNN and a hidden
layer of the same width on each frame alone,

    p(y_t | frame_t) = softmax(W' relu(V f'_t))

Both are trained in one run on the same batches (`VideoLabeller` returns both), so the gap
between them, on the frames whose label cannot be seen in the frame itself (an occluded
digit, the direction of motion), is what the recurrent memory buys.

Shapes: b batch, T frames, C channels, H x W pixels, e frame features, h hidden, K classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rnnkit.config import positive
from rnnkit.models.captioner import ConvEncoder
from rnnkit.models.stack import VariantConfig, recurrent_stack

__all__ = ["VideoModelConfig", "FrameEncoder", "VideoLabeller"]


@dataclass
class VideoModelConfig(VariantConfig):
    cell: str = "lstm"  # rnn | lstm | gru: the recurrence over frames
    hidden: int = 64  # recurrent units (and the baseline's hidden layer)
    layers: int = 1  # stacked recurrent layers
    channels: int = 16  # convolution channels of the frame encoder
    blocks: int = 2  # stride-2 convolution stages of the frame encoder
    features: int = 64  # frame feature size e
    dropout: float = 0.1  # on the frame features
    baseline: bool = True  # also train the single-frame CNN, side by side

    def validate_video(self, prefix: str = "model.") -> None:
        from rnnkit.config import choice
        from rnnkit.models.stack import CELLS

        choice(prefix + "cell", self.cell, tuple(CELLS))
        positive(self, "hidden", "layers", "channels", "blocks", "features", prefix=prefix)
        self.validate_variants(self.cell, prefix)


class FrameEncoder(nn.Module):
    """Frames (n, C, H, W) -> features (n, e): `ConvEncoder`'s grid, flattened, then linear."""

    def __init__(self, channels_in: int, size: tuple[int, int], c: VideoModelConfig):
        super().__init__()
        self.conv = ConvEncoder(channels_in, c.channels, c.blocks, coords=False)
        rows, cols = self.conv.grid(*size)
        self.proj = nn.Linear(rows * cols * c.channels, c.features)

    def forward(self, frames: Tensor) -> Tensor:
        grid, _, _ = self.conv(frames)  # (n, L, k)
        return self.proj(grid.flatten(1)).relu()


class VideoLabeller(nn.Module):
    """video (b, T, C, H, W) -> {"recurrent": logits (b, T, K), "single": logits (b, T, K)}
    ("single" only with ``config.baseline``)."""

    def __init__(self, channels: int, size: tuple[int, int], classes: int, c: VideoModelConfig):
        super().__init__()
        self.config = c
        self.encoder = FrameEncoder(channels, size, c)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = recurrent_stack(c.features, c.cell, c.hidden, c.layers, variants=c)
        self.head = nn.Linear(c.hidden, classes)
        if c.baseline:
            self.single_encoder = FrameEncoder(channels, size, c)
            self.single_head = nn.Sequential(
                nn.Dropout(c.dropout), nn.Linear(c.features, c.hidden), nn.ReLU(),
                nn.Linear(c.hidden, classes),
            )  # fmt: skip

    def frames(self, encoder: FrameEncoder, video: Tensor) -> Tensor:
        b, t = video.shape[:2]
        return encoder(video.flatten(0, 1)).view(b, t, -1)  # (b, T, e)

    def forward(self, video: Tensor) -> dict[str, Tensor]:
        f = self.drop(self.frames(self.encoder, video))
        h, _ = self.rnn(f)  # (b, T, h)
        out = {"recurrent": self.head(h)}
        if self.config.baseline:
            out["single"] = self.single_head(self.frames(self.single_encoder, video))
        return out
