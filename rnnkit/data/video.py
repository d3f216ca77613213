"""Short grey videos of one real handwritten digit moving about, labelled frame by frame, for
a recurrent labeller set beside a single-frame one: some labels cannot be seen in the frame
they belong to, and only a model that remembers earlier frames can give them.

    clips = make_clips(1000, "train", seed=0)
    clips.video             (n, frames, 1, size, size) float32 in [0, 1], ink high, black ground
    clips.labels            (n, frames) int64, indices into clips.classes
    clips.visible           (n, frames) bool: whether the frame alone shows what its label needs
    clips.classes           ("0", ..., "9") or ("left", "right", "up", "down")

Each clip shows one of scikit-learn's 8x8 digit images (`rnnkit.data.handwriting`), drawn
from the images of ``split`` of `digit_image_split` (``split_seed``) only, so the splits hold
disjoint images; it is scaled (bilinear) to ``digit_size`` pixels square and moves at a
constant velocity: along one axis (uniform: across or up-down, either way) at 1.5-3 pixels a
frame, along the other at most half that. It bounces off the canvas's edges (the velocity
component flips and the step is mirrored), so it stays on the canvas once it is in; in half
of the clips it starts partly or wholly outside, behind the edge it moves away from, and is
wholly in by frame ``frames // 4``. Frames are drawn at the digit's position rounded to whole
pixels (`Clips.position`).

Once a clip, for a run of 2-5 frames (at most frames - 2 * (frames // 4)) starting no earlier
than frame ``frames // 4`` and ending no later than ``frames // 4`` frames from the end, a grey
block (value OCCLUDER) hides the digit: it covers the boxes of all the digit's positions
during the run, one pixel more all round (clipped to the canvas), and is drawn over the digit,
so those frames show the block and nothing of the digit.

Labels (``label``):

    "digit"       the digit's class on every frame; a frame is *visible* when at least
                  VISIBLE_SHARE of the digit's ink is on the canvas and not behind the block
                  (`Clips.shown`), so the frames of the run and those before the digit has
                  come in are not
    "direction"   where the digit is moving, by the sign of the larger velocity component,
                  after any bounce on the way into the frame (frame 0: the first velocity);
                  a bounce on that axis flips it. No frame is *visible*: one picture never
                  shows motion, so `visible` is False throughout

The same arguments give the same clips; `classes` (label) names the classes without making
any.

Files: `read_clip` reads a clip (.npy, an animated GIF or a directory of frames) as a model's
input (T, 1, H, W), fitting each frame as `rnnkit.data.images.read_image` fits a picture;
`save_clip` writes one (.npy or .gif).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.handwriting import SPLITS, _split_indices, digit_images
from rnnkit.data.images import (
    ImageAdjusted,
    _read_picture,
    digit_glyphs,
    fit_picture,
    pil_array,
    unit_pixels,
)
from rnnkit.errors import ConfigError, DataError

__all__ = [
    "LABELS",
    "DIGIT_CLASSES",
    "DIRECTIONS",
    "OCCLUDER",
    "VISIBLE_SHARE",
    "Clips",
    "classes",
    "make_clips",
    "read_clip",
    "save_clip",
]

LABELS = ("digit", "direction")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
DIRECTIONS = ("left", "right", "up", "down")
OCCLUDER = 0.5  # the grey of the block that hides the digit
VISIBLE_SHARE = 0.5  # of the digit's ink shown, for a frame to be visible (label "digit")
SPEED = (1.5, 3.0)  # pixels a frame along the main axis; the other at most half that
ENTER = 0.5  # the share of clips whose digit starts (partly) outside the canvas


def classes(label: str) -> tuple[str, ...]:
    """The class names of ``label`` ("digit": "0".."9"; "direction": DIRECTIONS), what
    `make_clips` puts in `Clips.classes`."""
    if label not in LABELS:
        raise ConfigError(
            f"unknown label {label!r} for clips", f"choose one of {', '.join(LABELS)}"
        )
    return DIGIT_CLASSES if label == "digit" else DIRECTIONS


@dataclass(frozen=True)
class Clips:
    """``n`` clips of ``frames`` frames (see the module's docstring). Besides what a model
    reads, how each was made:

    images      (n,) int64: the digit's image, an index into `digit_images`
    digits      (n,) int64: its class 0..9
    position    (n, frames, 2) int64: (row, column) of the top-left corner of the digit's
                ``digit_size``-square box in each frame (partly off the canvas while it
                comes in)
    occluded    (n, frames) bool: the block is drawn in the frame
    occluder    (n, 4) int64: the block's box (top, left, bottom, right), rows top..bottom-1
                and columns left..right-1
    shown       (n, frames) float32: the share of the digit's ink on the canvas and not
                behind the block"""

    video: np.ndarray
    labels: np.ndarray
    visible: np.ndarray
    classes: tuple[str, ...]
    images: np.ndarray
    digits: np.ndarray
    position: np.ndarray
    occluded: np.ndarray
    occluder: np.ndarray
    shown: np.ndarray
    digit_size: int

    def __len__(self) -> int:
        return len(self.video)


def make_clips(
    n: int,
    split: str,
    seed: int,
    frames: int = 16,
    size: int = 32,
    label: str = "digit",
    split_seed: int = 0,
    digit_size: int = 13,
) -> Clips:
    """``n`` clips of ``split`` ("train", "valid" or "test"): video (n, frames, 1, size, size)
    float32, labels (n, frames) int64 by ``label`` ("digit" or "direction"), visible (n,
    frames) bool, and how they were made (`Clips`). The same arguments give the same clips,
    and the first k of n clips are those of the same call with n = k."""
    if split not in SPLITS:
        raise ConfigError(
            f"unknown split {split!r} for clips", f"choose one of {', '.join(SPLITS)}"
        )
    names = classes(label)
    if n < 0:
        raise ConfigError(f"the number of clips must be >= 0, got {n}")
    if frames < 8:
        raise ConfigError(
            f"clips need frames >= 8, got {frames}",
            "the digit comes in, is hidden for 2-5 frames mid-clip and shows again",
        )
    if not 8 <= digit_size <= size - 4:
        raise ConfigError(
            f"expected 8 <= digit_size <= size - 4, got digit_size={digit_size}, size={size}",
            "the digit needs room to move",
        )
    glyphs = digit_glyphs(digit_size)
    _, classes_of = digit_images()
    pool = _split_indices(split_seed)[split]
    rng = np.random.default_rng([seed, SPLITS.index(split), 5])
    d, wall, quarter = digit_size, size - digit_size, frames // 4
    video = np.zeros((n, frames, 1, size, size), dtype=np.float32)
    chosen = np.zeros(n, dtype=np.int64)
    position = np.zeros((n, frames, 2), dtype=np.int64)
    direction = np.zeros((n, frames), dtype=np.int64)
    occluded = np.zeros((n, frames), dtype=bool)
    occluder = np.zeros((n, 4), dtype=np.int64)
    shown = np.zeros((n, frames), dtype=np.float32)
    for i in range(n):
        chosen[i] = rng.choice(pool)
        glyph = glyphs[chosen[i]]
        axis, sign = int(rng.integers(0, 2)), float(rng.choice((-1.0, 1.0)))
        speed = rng.uniform(*SPEED)
        velocity = np.empty(2)
        velocity[axis] = sign * speed
        velocity[1 - axis] = rng.uniform(-0.5, 0.5) * speed
        place = rng.uniform(0, wall, size=2)
        if rng.random() < ENTER:  # behind the edge it moves away from
            away = rng.uniform(0.3, 1.0) * min(d, quarter * speed)
            place[axis] = -away if sign > 0 else wall + away
        run = int(rng.integers(2, min(5, frames - 2 * quarter) + 1))
        start = int(rng.integers(quarter, frames - quarter - run + 1))
        occluded[i, start : start + run] = True
        position[i], direction[i] = _track(place, velocity, axis, wall, frames)
        corners = position[i, start : start + run]
        top, left = corners.min(axis=0) - 1
        bottom, right = corners.max(axis=0) + d + 1
        occluder[i] = np.clip([top, left, bottom, right], 0, size)
        ink = float(glyph.sum())
        for t in range(frames):
            frame = video[i, t, 0]
            on = _paste(frame, glyph, *position[i, t])
            if occluded[i, t]:
                top, left, bottom, right = occluder[i]
                frame[top:bottom, left:right] = OCCLUDER
            else:
                shown[i, t] = on / ink if ink else 0.0
    digits = classes_of[chosen].astype(np.int64)
    if label == "digit":
        labels = np.repeat(digits[:, None], frames, axis=1)
        visible = shown >= VISIBLE_SHARE
    else:
        labels, visible = direction, np.zeros((n, frames), dtype=bool)
    return Clips(
        video, labels, visible, names, chosen, digits, position, occluded, occluder, shown, d
    )


def _track(place: np.ndarray, velocity: np.ndarray, axis: int, wall: float, frames: int):
    """(corners (frames, 2) int64, directions (frames,) int64): the rounded top-left corner
    of the digit's box in each frame, starting at ``place`` and moving by ``velocity`` a frame,
    mirrored at 0 and ``wall`` along each axis once it is wholly in along it; and the index in
    DIRECTIONS of the sign of velocity[axis] after each frame's step."""
    p, v = place.astype(np.float64).copy(), velocity.astype(np.float64).copy()
    inside = (p >= 0) & (p <= wall)
    corners = np.zeros((frames, 2), dtype=np.int64)
    directions = np.zeros(frames, dtype=np.int64)
    for t in range(frames):
        if t:
            p += v
            inside |= (p >= 0) & (p <= wall)
            for a in (0, 1):
                if inside[a] and p[a] < 0:
                    p[a], v[a] = -p[a], -v[a]
                elif inside[a] and p[a] > wall:
                    p[a], v[a] = 2 * wall - p[a], -v[a]
        corners[t] = np.rint(p)
        if axis == 1:
            directions[t] = DIRECTIONS.index("right" if v[1] > 0 else "left")
        else:
            directions[t] = DIRECTIONS.index("down" if v[0] > 0 else "up")
    return corners, directions


def _paste(frame: np.ndarray, glyph: np.ndarray, row: int, col: int) -> float:
    """Draw ``glyph`` with its top-left corner at (row, col) of ``frame``, clipped to it;
    returns the ink drawn."""
    d, size = glyph.shape[0], frame.shape[0]
    r0, r1, c0, c1 = max(row, 0), min(row + d, size), max(col, 0), min(col + d, frame.shape[1])
    if r1 <= r0 or c1 <= c0:
        return 0.0
    part = glyph[r0 - row : r1 - row, c0 - col : c1 - col]
    frame[r0:r1, c0:c1] = part
    return float(part.sum())


# ----------------------------------------------------------------------------- files
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_clip(path: str | Path, size: tuple[int, int], channels: int = 1) -> np.ndarray:
    """(T, channels, H, W) float32 in [0, 1]: a clip as the input of a model that reads frames
    of ``channels`` x ``size`` (H, W) pixels, from

    - a .npy array (T, H, W), (T, C, H, W) or (T, H, W, C), C in 1, 3, 4; uint8 0..255 or
      floats in 0..1 (as `save_clip` writes);
    - an animated picture Pillow reads frame by frame (GIF, APNG, multi-page TIFF), a frame
      shown k times as long as the shortest taken k times (GIF writers merge repeats);
    - a directory of pictures (FRAME_SUFFIXES), one frame each, in the order of their names.

    Every frame is fitted as `rnnkit.data.images.read_image` fits a picture: made grey or
    resized with an `ImageAdjusted` warning (once for the clip), refused with a DataError
    where it cannot be; the frames must share one size."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise DataError(
                f"cannot read {path} as a clip: the directory holds no pictures",
                f"put one picture a frame in it ({', '.join(FRAME_SUFFIXES)}), named in order",
            )
        frames = [_read_picture(p) for p in files]
    elif not path.is_file():
        raise DataError(f"cannot read {path} as a clip: there is no such file", _clip_hint())
    elif path.suffix.lower() == ".npy":
        frames = list(_npy_frames(path))
    else:
        frames = _animation(path)
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) > 1:
        first = frames[0].shape[:2]
        k = next(i for i, f in enumerate(frames) if f.shape[:2] != first)
        raise DataError(
            f"cannot read {path} as a clip: frame 0 is {first[1]} x {first[0]} pixels, frame {k} "
            f"{frames[k].shape[1]} x {frames[k].shape[0]}",
            "all frames of a clip have one size",
        )
    out, notes = [], []
    for frame in frames:
        fitted, said = fit_picture(frame, str(path), size, channels)
        out.append(fitted)
        notes += [note for note in said if note not in notes]
    for note in notes:
        warnings.warn(note, ImageAdjusted, stacklevel=2)
    return np.stack(out)


def _npy_frames(path: Path) -> np.ndarray:
    """(T, H, W, 1 or 3) float32 in [0, 1] from a .npy clip."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read {path} as a clip: {err}", _clip_hint()) from None
    shape = array.shape
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[3] not in (1, 3, 4):
        array = array.transpose(0, 2, 3, 1)  # (T, C, H, W)
    if array.ndim != 4 or array.shape[3] not in (1, 3, 4) or 0 in array.shape:
        raise DataError(f"cannot read {path} as a clip: an array of shape {shape}", _clip_hint())
    return unit_pixels(array, f"cannot read {path} as a clip")


def _animation(path: Path) -> list[np.ndarray]:
    """[(H, W, 1 or 3)]: the frames of a picture Pillow reads (one for a still). A frame shown
    k times as long as the shortest is repeated k times (rounded): GIF writers, Pillow's
    among them, merge repeated frames into one of a longer duration."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            frames, durations = [], []
            for frame in ImageSequence.Iterator(picture):
                frames.append(pil_array(frame.copy()))
                durations.append(float(frame.info.get("duration") or 0))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(
            f"cannot read {path} as a clip: {type(err).__name__}: {err}", _clip_hint()
        ) from None
    if min(durations) <= 0:
        return frames
    repeats = [max(1, round(d / min(durations))) for d in durations]
    return [frame for frame, k in zip(frames, repeats, strict=True) for _ in range(k)]


def _clip_hint() -> str:
    return (
        "give a .npy array (T, H, W) or (T, C, H, W) in [0, 1], an animated GIF, or a "
        "directory of PNG frames named in order"
    )


def save_clip(path: str | Path, clip: np.ndarray, fps: float = 8.0) -> Path:
    """Write ``clip`` (T, 1, H, W) or (T, H, W), values in [0, 1], to ``path``: a .npy array
    (float32, exactly) or, for a .gif, an animation of 8-bit grey frames at ``fps``, looping;
    returns the path."""
    clip = np.asarray(clip, dtype=np.float32)
    if clip.ndim == 4 and clip.shape[1] == 1:
        clip = clip[:, 0]
    if clip.ndim != 3 or 0 in clip.shape or not np.isfinite(clip).all():
        raise DataError(
            f"cannot save an array of shape {np.shape(clip)} as a clip (or it holds NaN)",
            "give (T, 1, H, W) or (T, H, W) in [0, 1]",
        )
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, clip)
        return path
    if path.suffix.lower() != ".gif":
        raise ConfigError(f"save_clip writes .npy or .gif, not {path.name}")
    from PIL import Image

    pixels = np.rint(np.clip(clip, 0.0, 1.0) * 255).astype(np.uint8)
    frames = [Image.fromarray(frame) for frame in pixels]
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0
    )
    return path
