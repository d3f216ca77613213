"""Per-frame video labelling (many to many): clips of real handwritten digits moving over a
canvas, a label for every frame, and a recurrent model against the same CNN without memory.

Clips (`rnnkit.data.video.make_clips`): one of scikit-learn's digits bounces around a 32 x 32
canvas, enters from outside it and is hidden behind an occluder for a few frames.
    label=digit      every frame's label is the digit; on the frames where it is out of sight
                     only a model that remembers the earlier frames can know it
    label=direction  the direction the digit moves; no single frame shows motion

The model (`rnnkit.models.video.VideoLabeller`) trains the recurrent labeller and the
single-frame baseline side by side on the same batches; evaluation reports per-frame accuracy
of both, over all frames and over the frames whose label is not visible in the frame alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.config import choice, positive
from rnnkit.data import video as clips
from rnnkit.data.batching import EpochRows
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.video import VideoLabeller, VideoModelConfig
from rnnkit.tasks.base import Command, Loaded, Task, arg
from rnnkit.training import TrainConfig

SPLITS = ("train", "valid", "test")
MODELS = ("recurrent", "single")


@dataclass
class VideoData:
    label: str = "digit"  # digit (identity, also while hidden) | direction (of motion)
    n_train: int = 4000  # generated training clips
    n_val: int = 300  # validation clips
    n_test: int = 1000  # test clips
    frames: int = 16  # frames per clip
    size: int = 32  # canvas pixels square
    seed: int = 0  # generation, and the split of the digit images
    batch_size: int = 16  # clips per step


@dataclass
class VideoConfig:
    data: VideoData = field(default_factory=VideoData)
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1500, lr=2e-3, schedule="cosine", warmup=50, eval_every=250, clip=5.0
        )
    )

    def validate(self) -> None:
        d = self.data
        choice("data.label", d.label, ("digit", "direction"))
        positive(d, "n_train", "n_val", "n_test", "frames", "size", "batch_size", prefix="data.")
        if d.size < 16:
            raise ConfigError(f"data.size must be at least 16 pixels, got {d.size}")
        self.model.validate_video()
        self.train.validate()


def make_split(d: VideoData, split: str, n: int) -> clips.Clips:
    seed = d.seed * 3 + SPLITS.index(split)
    return clips.make_clips(n, split, seed, d.frames, d.size, d.label, split_seed=d.seed)


@dataclass
class VideoSetup:
    classes: tuple[str, ...]
    train: clips.Clips | None = None
    val: clips.Clips | None = None


@torch.no_grad()
def predict(model, video: Tensor, batch: int = 64) -> dict[str, Tensor]:
    """Per-frame class probabilities of each model: {name: (n, T, K)}."""
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, len(video), batch):
        out = model(video[start : start + batch].to(device))
        for name, logits in out.items():
            parts.setdefault(name, []).append(logits.softmax(-1).cpu())
    return {name: torch.cat(p) for name, p in parts.items()}


def accuracies(probs: dict[str, Tensor], data: clips.Clips, prefix: str) -> dict:
    """Per-frame accuracy of each model over all frames, the frames whose label is visible in
    the frame alone, and the frames whose label is not."""
    labels = torch.as_tensor(data.labels)
    visible = torch.as_tensor(data.visible)
    out = {}
    for name, p in probs.items():
        right = (p.argmax(-1) == labels).float()
        out[f"{prefix}_{name}_acc"] = right.mean().item()
        if visible.any():
            out[f"{prefix}_{name}_acc_visible"] = right[visible].mean().item()
        if (~visible).any():
            out[f"{prefix}_{name}_acc_hidden"] = right[~visible].mean().item()
    return out


class VideoLoop:
    metric, higher_is_better = "val_recurrent_acc", True

    def __init__(self, setup: VideoSetup, config: VideoConfig, device, rank=0, world=1):
        self.setup, self.c, self.device = setup, config, device
        self.rank, self.world = rank, world
        self.video = torch.from_numpy(setup.train.video)
        self.labels = torch.from_numpy(setup.train.labels)
        n, b = len(self.video), config.data.batch_size
        self._rows = EpochRows(n, b, config.train.seed, rank, world)

    def train_step(self, model, micro: int) -> Tensor:
        rows = self._rows(micro)
        video, labels = self.video[rows].to(self.device), self.labels[rows].to(self.device)
        out = model(video)
        # the two models share no weights, so the sum trains each on its own loss
        return sum(F.cross_entropy(z.flatten(0, 1), labels.flatten()) for z in out.values())

    def evaluate(self, model) -> dict:
        val = self.setup.val
        return accuracies(predict(model, torch.from_numpy(val.video)), val, "val")

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state) -> None:
        pass


class Video(Task):
    api = {"label": "label"}
    name = "video"
    description = "per-frame video labelling (built-in: moving, occluded handwritten digits)"
    Config = VideoConfig
    test_after_training = True
    commands = (
        Command(
            "label",
            "label every frame of a clip (.npy (T, H, W) in [0, 1], or an animated GIF)",
            "label_command",
            (
                arg("clip", help="the clip file"),
                arg("--plot", metavar="PNG", help="draw the frames with their labels"),
            ),
        ),
    )

    def prepare(self, config: VideoConfig, run=None, data: bool = True) -> VideoSetup:
        d = config.data
        if not data:
            return VideoSetup(clips.classes(d.label))
        train = make_split(d, "train", d.n_train)
        return VideoSetup(train.classes, train, make_split(d, "valid", d.n_val))

    def build_model(self, config: VideoConfig, setup: VideoSetup) -> VideoLabeller:
        d = config.data
        return VideoLabeller(1, (d.size, d.size), len(setup.classes), config.model)

    def loop(self, config, setup: VideoSetup, device, rank, world) -> VideoLoop:
        return VideoLoop(setup, config, device, rank, world)

    def summary(self, config: VideoConfig, setup: VideoSetup, model, world: int) -> str:
        d = config.data
        params = {
            name: sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))
            for name, prefix in (
                ("recurrent", ("encoder", "rnn", "head")),
                ("single", ("single_",)),
            )  # fmt: skip
        }
        hidden = 1 - float(np.mean(setup.train.visible))
        return (
            f"{len(setup.train.video):,} training clips of {d.frames} frames, "
            f"{hidden:.0%} of frames with the label out of sight; "
            f"{params['recurrent']:,} parameters (recurrent), {params['single']:,} (single frame)"
        )

    def score(self, loaded: Loaded, **options) -> dict:
        d = loaded.config.data
        test = make_split(d, "test", d.n_test)
        out = accuracies(predict(loaded.model, torch.from_numpy(test.video)), test, "test")
        if "test_single_acc_hidden" in out:  # what memory buys where the frame shows nothing
            gain = out["test_recurrent_acc_hidden"] - out["test_single_acc_hidden"]
            out["test_gain_hidden"] = gain
        out["test_clips"] = len(test.video)
        return out

    # ------------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """Frames (b, t, 1, H, W) and the recurrent state -> per-frame logits of the recurrent
        model (and of the single-frame baseline) and the next state: a live stream is fed a
        frame at a time."""
        from rnnkit.export import video_graph

        size = loaded.config.data.size
        return video_graph(loaded.model, (1, size, size))

    def read(self, loaded: Loaded, path: str) -> np.ndarray:
        """A clip file as (T, 1, H, W) float32 in [0, 1] (see `rnnkit.data.video.read_clip`)."""
        size = loaded.config.data.size
        return clips.read_clip(path, (size, size))

    def label(self, loaded: Loaded, clip: np.ndarray) -> dict[str, list[str]]:
        """Per-frame labels of a clip (T, 1, H, W) by each model: {name: [class per frame]}."""
        x = torch.as_tensor(np.asarray(clip, dtype=np.float32))
        size = loaded.config.data.size
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, size, size):
            raise DataError(
                f"a clip of shape {tuple(x.shape)}; this model reads (frames, 1, {size}, {size})",
                "read files with Video.read, which converts and resizes",
            )
        probs = predict(loaded.model, x[None])
        names = loaded.setup.classes
        return {name: [names[k] for k in p[0].argmax(-1).tolist()] for name, p in probs.items()}

    def label_command(self, args) -> int:
        import sys

        from rnnkit.tasks.video_plot import filmstrip
        from rnnkit.viz import save_png

        loaded = self.load(args.run)
        try:
            clip = self.read(loaded, args.clip)
        except DataError as err:
            hint = f" ({err.hint})" if err.hint else ""
            print(f"rnnkit: error: {err.message}{hint}", file=sys.stderr)
            return 2
        labels = self.label(loaded, clip)
        width = max(len(n) for n in loaded.setup.classes)
        print("frame  " + "  ".join(f"{name:>{max(width, len(name))}}" for name in labels))
        for t in range(len(clip)):
            row = "  ".join(f"{labels[n][t]:>{max(width, len(n))}}" for n in labels)
            print(f"{t:>5}  {row}")
        if args.plot:
            out = save_png(filmstrip(clip, labels), Path(args.plot))
            print(f"frames: {out}", file=sys.stderr)
        return 0

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.video_plot import report_sections

        return report_sections(self, loaded)
