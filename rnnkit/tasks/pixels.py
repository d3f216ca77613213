"""PixelRNN (van den Oord et al. 2016): a generative model of images, one pixel at a time,

    p(x) = prod_i p(x_i | x_1..x_{i-1})        pixels in raster order, each a K-way softmax

on scikit-learn's 1,797 real 8 x 8 handwritten digits: 17 grey levels (K = 17, the data's own
values 0..16), or binarised (K = 2, ink where the level is at least 8). Models
(`rnnkit.models.pixelrnn`): Row LSTM, Diagonal BiLSTM, PixelCNN, and two baselines, a plain
pixel-by-pixel LSTM and independent pixels.

Reported on held-out digits (the stratified split of `rnnkit.data.handwriting`): negative
log-likelihood in nats per image, -log p(x), and in bits per dimension, -log2 p(x) / 64. The
test also fits the independent-pixel baseline in closed form on the training digits (each
pixel's level frequencies, add-one smoothed) and scores it on the same images.

`rnnkit sample RUN` draws new digits and completes held-out digits from their top half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.config import positive
from rnnkit.data import handwriting as hw
from rnnkit.data.batching import EpochRows
from rnnkit.errors import ConfigError
from rnnkit.models.pixelrnn import PixelConfig, PixelRNN, bits_per_dim
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole
from rnnkit.training import TrainConfig

SIDE = 8  # scikit-learn's digits are 8 x 8


@dataclass
class PixelData:
    binarise: bool = False  # two levels (ink: level >= 8 of 16) instead of 17 grey levels
    split_seed: int = 0  # the stratified train / valid / test split of the 1,797 digits
    batch_size: int = 32  # images per step


@dataclass
class PixelTaskConfig:
    data: PixelData = field(default_factory=PixelData)
    model: PixelConfig = field(default_factory=PixelConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, lr=2e-3, schedule="cosine", warmup=100, eval_every=250, clip=1.0
        )
    )

    def validate(self) -> None:
        positive(self.data, "batch_size", prefix="data.")
        self.model.validate_pixel()
        self.train.validate()


def levels(d: PixelData) -> int:
    return 2 if d.binarise else 17


def digit_levels(d: PixelData, split: str) -> Tensor:
    """The digits of ``split`` as levels: (n, 8, 8) int64 in [0, K)."""
    pictures, _ = hw.digit_images()
    grey = np.rint(pictures[hw.digit_image_split(d.split_seed)[split]] * 16).astype(np.int64)
    return torch.from_numpy((grey >= 8).astype(np.int64) if d.binarise else grey)


def independent_nll(train: Tensor, test: Tensor, k: int) -> Tensor:
    """The independent-pixel baseline: p(x) = prod_i q_i(x_i), q_i the add-one smoothed level
    frequencies of pixel i in ``train``; returns -log p(x) per test image (n,), in nats."""
    counts = F.one_hot(train, k).sum(0).double() + 1  # (H, W, K)
    log_q = (counts / counts.sum(-1, keepdim=True)).log()
    picked = log_q.unsqueeze(0).expand(len(test), -1, -1, -1).gather(-1, test.unsqueeze(-1))
    return -picked.squeeze(-1).flatten(1).sum(1)


@torch.no_grad()
def mean_nll(model, x: Tensor, batch: int = 256) -> float:
    """The mean -log p(x) over images, in nats."""
    model.eval()
    device = next(model.parameters()).device
    total = sum(model.nll(x[i : i + batch].to(device)).double().sum().item()
                for i in range(0, len(x), batch))  # fmt: skip
    return total / len(x)


@dataclass
class PixelSetup:
    train: Tensor | None = None  # (n, 8, 8) levels
    val: Tensor | None = None


class PixelLoop:
    metric, higher_is_better = "val_nll", False

    def __init__(self, setup: PixelSetup, config: PixelTaskConfig, device, rank=0, world=1):
        self.setup, self.c, self.device = setup, config, device
        n, b = len(setup.train), config.data.batch_size
        self._rows = EpochRows(n, b, config.train.seed, rank, world)

    def train_step(self, model, micro: int) -> Tensor:
        x = self.setup.train[self._rows(micro)].to(self.device)
        return model.nll(x).mean() / (SIDE * SIDE)  # nats per pixel: a scale-free step size

    def evaluate(self, model) -> dict:
        nll = mean_nll(model, self.setup.val)
        return {"val_nll": nll, "val_bpd": bits_per_dim(nll, SIDE * SIDE)}

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state) -> None:
        pass


class Pixels(Task):
    api = {"sample": "draw", "complete": "complete"}
    name = "pixels"
    description = "PixelRNN: generate images pixel by pixel (built-in: 8x8 handwritten digits)"
    Config = PixelTaskConfig
    test_after_training = True
    commands = (
        Command(
            "sample",
            "draw new images from a trained image model, and complete held-out ones",
            "sample_command",
            (
                arg("--images", type=whole(1, 400), default=16, help="new images to draw"),
                arg(
                    "--complete",
                    type=whole(0, 100),
                    default=8,
                    help="held-out images to complete from their top half (0: none)",
                ),
                arg("--out", metavar="PNG", help="picture of the grid (default RUN/samples.png)"),
                arg("--temperature", type=float, default=1.0, help="<1 is safer"),
                arg("--seed", type=whole(0, 2**63 - 1), default=0, help="same seed, same images"),
            ),
        ),
    )

    def prepare(self, config: PixelTaskConfig, run=None, data: bool = True) -> PixelSetup:
        if not data:
            return PixelSetup()
        d = config.data
        return PixelSetup(digit_levels(d, "train"), digit_levels(d, "valid"))

    def build_model(self, config: PixelTaskConfig, setup: PixelSetup) -> PixelRNN:
        return PixelRNN(config.model, levels(config.data), SIDE, SIDE)

    def loop(self, config, setup: PixelSetup, device, rank, world) -> PixelLoop:
        return PixelLoop(setup, config, device, rank, world)

    def summary(self, config: PixelTaskConfig, setup: PixelSetup, model, world: int) -> str:
        params = sum(p.numel() for p in model.parameters())
        return (
            f"{len(setup.train):,} training, {len(setup.val):,} validation digits, "
            f"{levels(config.data)} levels; {config.model.kind}, {params:,} parameters"
        )

    def score(self, loaded: Loaded, **options) -> dict:
        d = loaded.config.data
        test = digit_levels(d, "test")
        nll = mean_nll(loaded.model, test)
        base = independent_nll(digit_levels(d, "train"), test, levels(d)).mean().item()
        return {
            "test_nll": nll,
            "test_bpd": bits_per_dim(nll, SIDE * SIDE),
            "test_independent_nll": base,
            "test_independent_bpd": bits_per_dim(base, SIDE * SIDE),
            "test_images": len(test),
        }

    # ------------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """Images (b, 8, 8) of levels -> every pixel's logits given the pixels before it; a
        caller draws an image with one run per pixel, as `PixelRNN.sample` does."""
        from rnnkit.export import pixel_graph

        return pixel_graph(loaded.model)

    def draw(
        self, loaded: Loaded, n: int = 16, temperature: float = 1.0, seed: int = 0
    ) -> np.ndarray:
        """``n`` new images (n, 8, 8) of levels, drawn pixel by pixel."""
        _check_temperature(temperature)
        g = torch.Generator().manual_seed(seed)
        return loaded.model.sample(n, generator=g, temperature=temperature).numpy()

    def complete(
        self, loaded: Loaded, given: Tensor, rows: int = SIDE // 2, temperature=1.0, seed=0
    ) -> np.ndarray:
        """Images (n, 8, 8) of levels with their first ``rows`` rows kept and the rest drawn."""
        _check_temperature(temperature)
        g = torch.Generator().manual_seed(seed)
        given = torch.as_tensor(given, dtype=torch.long)
        return loaded.model.sample(
            len(given), generator=g, temperature=temperature, given=given, given_rows=rows
        ).numpy()

    def sample_command(self, args) -> int:
        import sys

        from rnnkit.tasks.pixels_plot import samples_figure
        from rnnkit.viz import save_png

        loaded = self.load(args.run)
        k = levels(loaded.config.data)
        drawn = self.draw(loaded, args.images, args.temperature, args.seed)
        held_out = digit_levels(loaded.config.data, "test")[: args.complete]
        done = self.complete(loaded, held_out, SIDE // 2, args.temperature, args.seed)
        fig = samples_figure(drawn, k, held_out.numpy(), done)
        out = save_png(fig, Path(args.out) if args.out else loaded.run.path / "samples.png")
        print(f"{len(drawn)} samples and {len(done)} completions: {out}", file=sys.stderr)
        return 0

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.pixels_plot import report_sections

        return report_sections(self, loaded)


def _check_temperature(t: float) -> None:
    if not (math.isfinite(t) and t > 0):
        raise ConfigError(f"temperature must be a positive number, got {t}", "1 samples as trained")
