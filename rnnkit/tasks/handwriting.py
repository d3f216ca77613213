"""Unsegmented handwriting recognition with CTC (Graves et al. 2009): a bidirectional LSTM
reads a whole line and writes its text, with no segmentation into characters.

Sources (`rnnkit.data.handwriting`):
    lines     offline: 3-7 of scikit-learn's real 8x8 handwritten digits side by side, scaled,
              with random gaps and overlaps, read column by column (x_t: one pixel column);
              the test lines use only held-out digit images
    strokes   online, as in IAM-OnDB: pen trajectories of 1-3 words of the Zen of Python
              written in a Hershey script font with random slant, size, jitter and pen speed,
              x_t = (dx, dy, pen_up); a test line's text is never a training line's text
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.config import choice, positive
from rnnkit.data import handwriting as hw
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.recognizer import RecognizerConfig
from rnnkit.tasks.recognition import AugmentConfig, DecodeConfig, RecognitionTask
from rnnkit.training import TrainConfig


@dataclass
class HandwritingData:
    source: str = "lines"  # lines (offline digit lines) | strokes (online pen trajectories)
    train_lines: int = 8000  # generated training lines
    eval_lines: int = 600  # generated validation and test lines, each
    min_digits: int = 3  # lines: digits per line
    max_digits: int = 7  # lines: and at most
    height: int = 16  # lines: pixels per column
    min_words: int = 1  # strokes: words per line
    max_words: int = 3  # strokes: and at most
    font: str = "cursive"  # strokes: a Hershey font with every letter (cursive, scripts, ...)
    slant: float = 0.3  # strokes: the largest slant, radians either way
    split_seed: int = 0  # the digit images' split and the generated lines
    batch_size: int = 32  # lines per batch (bucketed by length)


@dataclass
class HandwritingConfig:
    data: HandwritingData = field(default_factory=HandwritingData)
    model: RecognizerConfig = field(default_factory=lambda: RecognizerConfig(dropout=0.2))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=2000, lr=2e-3, schedule="cosine", eval_every=500, clip=5.0
        )
    )

    def validate(self) -> None:
        d = self.data
        choice("data.source", d.source, ("lines", "strokes"))
        positive(d, "train_lines", "eval_lines", "min_digits", "max_digits", "height",
                 "min_words", "max_words", "batch_size", prefix="data.")  # fmt: skip
        for low, high in (("min_digits", "max_digits"), ("min_words", "max_words")):
            if getattr(d, low) > getattr(d, high):
                raise ConfigError(
                    f"data.{low} ({getattr(d, low)}) is above data.{high} ({getattr(d, high)})"
                )
        if not 0 <= d.slant < 1.5:
            raise ConfigError(f"config key 'data.slant' must be in [0, 1.5) radians, got {d.slant}")
        if self.model.head != "step":
            raise ConfigError(
                "handwriting reads text with CTC: model.head must be step", "drop model.head"
            )
        self.model.validate_recognizer()
        self.augment.validate()
        self.decode.validate()
        self.train.validate()


class Handwriting(RecognitionTask):
    name = "handwriting"
    description = "handwriting recognition with CTC (built-in: lines of real handwritten digits)"
    Config = HandwritingConfig

    def load_data(self, config: HandwritingConfig):
        d = config.data
        sizes = {"train": d.train_lines, "valid": d.eval_lines, "test": d.eval_lines}
        out = {}
        for i, (split, n) in enumerate(sizes.items()):
            seed = d.split_seed * 3 + i
            if d.source == "lines":
                out[split] = hw.make_digit_lines(
                    n,
                    split,
                    seed,
                    d.min_digits,
                    d.max_digits,
                    d.height,
                    round(0.75 * d.height),
                    split_seed=d.split_seed,
                )
            else:
                out[split] = hw.make_stroke_lines(
                    n, split, seed, (d.min_words, d.max_words), d.font, d.slant
                )
        return out, []

    def alphabet_of(self, config: HandwritingConfig, train_texts) -> str:
        return hw.DIGIT_ALPHABET if config.data.source == "lines" else hw.STROKE_ALPHABET

    def read_input(self, loaded, path: str) -> np.ndarray:
        d, p = loaded.config.data, Path(path)
        suffix = p.suffix.lower()
        if suffix == ".npy" and d.source == "lines":
            try:
                x = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataError(
                    f"cannot read {p} as a numpy array ({e})", "save with np.save"
                ) from None
            if x.ndim != 2 or x.shape[1] != d.height:
                raise DataError(
                    f"{p} holds an array of shape {x.shape}; expected columns (width, {d.height})",
                    "save the line's pixel columns as a 2-D array, values in [0, 1]",
                )
            return x.astype(np.float32)
        if d.source == "lines":
            return hw.image_columns(p, d.height, ink_height=12)
        if suffix in (".png", ".jpg", ".jpeg", ".gif", ".bmp"):
            raise DataError(
                f"a strokes run reads pen trajectories, not pictures: {p.name}",
                "give an .npy (T, 3) of dx, dy, pen_up or a CSV with x,y,pen_up columns",
            )
        return hw.read_strokes(p)

    def draw_input(self, ax, x: np.ndarray) -> None:
        if x.shape[1] == 3:  # the pen: its height over time, a line per stroke
            ink = hw.strokes_to_points(x)
            t = 0
            for stroke in ink:
                ax.plot(np.arange(t, t + len(stroke)), stroke[:, 1], color="k", linewidth=1)
                t += len(stroke)
            return
        ax.imshow(x.T, aspect="auto", cmap="gray_r", interpolation="nearest",
                  extent=(0, len(x), x.shape[1], 0))  # fmt: skip
