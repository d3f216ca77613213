"""Pictures with captions, for an attention captioner: coloured shapes and their relations,
and strips of real handwritten digits. Both are made here from a seed (nothing is
downloaded); the same arguments give the same pictures and captions.

Scenes: 1-5 (default 1-4) coloured shapes on black, captioned with what they are and where.

    pictures, captions = make_scenes(1000, "train", seed=0)
    pictures                (n, 3, size, size) float32 in [0, 1], RGB, black background
    captions                ["a small red circle left of a large blue square", ...]
    make_scenes(..., return_objects=True)   also [[Shape(kind, colour, size, cx, cy)]]

A shape is one of SHAPES, COLOURS and SIZES. A small shape fills a box of 7/32 of the canvas
side (7 pixels at 32 x 32), a large one 12/32 (12 pixels); boxes sit on whole pixels, fully
inside the canvas, at least one blank pixel apart, so shapes never touch. Each shape's colour
is its COLOURS value with every channel moved by up to +-``jitter`` (uniform), the same over
the shape; the edges are hard (no antialiasing), so every pixel of a shape has its colour.

The caption is a function of the picture (grammar, words lower case, single spaces):

    caption   := object (relation object)*
    object    := "a" size colour shape          size in SIZES, colour in COLOURS, shape in SHAPES
    relation  := "left of" | "above" | "below"

The objects are named left to right by the x of their centres. A relation says where an
object lies from the *next* one: with dx = x_next - x and dy = y_next - y (pixels, y grows
downwards, so dx > 0), it is "left of" when dx > |dy| (the horizontal gap dominates), else
"above" when dy > 0 and "below" when dy < 0. Positions are drawn (by rejection) so that no
caption is a close call: every two shapes of a scene have |dx| >= 3 pixels (the order is
plain), and each shape and the next have |dx - |dy|| >= 3 pixels (so is the relation; both
scale with ``size`` / 32).
For example

    a large green square
    a small white diamond left of a large red circle
    a large yellow triangle above a small blue square below a small red diamond

(the last: the triangle is above the square, the square below the diamond, and the three
are ordered left to right). Relations link neighbours only; "right of" never occurs.

Compositional generalisation: the (colour, shape) pairs of HELD_OUT never occur in
"train", "valid" or "test" scenes, whose shapes are drawn uniformly from the other 16 pairs;
each of those splits is its own random stream. Every colour and every shape still occurs in
training, with other partners. A "novel" scene holds at least one held-out pair (one shape,
at a random place in the caption, drawn uniformly from HELD_OUT; the others from all 20).

Strips: 2-5 real handwritten digits side by side, captioned as words.

    pictures, captions = make_strips(1000, "train", seed=0)
    pictures                (n, 1, height, max_digits * height) float32 in [0, 1], ink high
    captions                ["three seven one", ...]  (DIGIT_WORDS)

The digits are scikit-learn's 1,797 8x8 images (`rnnkit.data.handwriting.digit_images`), each
scaled (bilinear) to ``height`` x ``height``; a strip draws from the images of its split of
`digit_image_split` (``split_seed``) only, so test strips are made of held-out images. The
canvas is fixed (max_digits * height wide); the digits are laid left to right from the left
edge, the first 0-2 pixels in, each next one 0-3 pixels after the previous (as the room
allows); the space after the last digit stays blank.

Files: `read_image` reads a PNG/JPEG (or .npy) picture as a model's input (channels, H, W),
converting a colour picture for a grey model and resizing a picture of another size (and
saying so with an `ImageAdjusted` warning), refusing what it cannot use; `save_image` writes
a picture (C, H, W) as a PNG. `fit_picture` is the fitting step alone, returning its notes
instead of warning (`rnnkit.data.video.read_clip` fits every frame of a clip with it).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnkit.data.handwriting import (
    LineSources,
    _resize_picture,
    _split_indices,
    digit_images,
)
from rnnkit.errors import ConfigError, DataError, Note

__all__ = [
    "SHAPES",
    "COLOURS",
    "SIZES",
    "RELATIONS",
    "HELD_OUT",
    "SCENE_SPLITS",
    "DIGIT_WORDS",
    "ASPECT_TOLERANCE",
    "Shape",
    "ImageAdjusted",
    "shape_pixels",
    "make_scenes",
    "caption",
    "parse_caption",
    "digit_glyphs",
    "make_strips",
    "read_image",
    "save_image",
    "fit_picture",
    "pil_array",
    "unit_pixels",
]

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.15),
    "blue": (0.15, 0.30, 1.00),
    "yellow": (0.95, 0.90, 0.10),
    "white": (0.95, 0.95, 0.95),
}
SIZES = ("small", "large")
SIZE_FRACTION = {"small": 7 / 32, "large": 12 / 32}  # of the canvas side
RELATIONS = ("left of", "above", "below")
HELD_OUT = frozenset(
    {("red", "square"), ("green", "triangle"), ("blue", "circle"), ("yellow", "diamond")}
)
SCENE_SPLITS = ("train", "valid", "test", "novel")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ASPECT_TOLERANCE = 1.25  # read_image resizes when width/height is within this factor
SPLITS = ("train", "valid", "test")

_GAP = 1  # blank pixels at least between two shapes' boxes
_SEPARATION = 3 / 32  # of the side: the least |dx| and ||dx| - |dy|| between shape centres
_CANDIDATES = 32  # positions tried at once for a shape
_TRIES = 500  # layouts tried for a scene before giving up (5 shapes take 5 on average)


class Shape(NamedTuple):
    """One shape of a scene: ``kind`` in SHAPES, ``colour`` in COLOURS, ``size`` in SIZES and
    its centre (``cx``, ``cy``) in pixels from the top-left corner of the canvas (x to the
    right, y down); its box is `shape_pixels` wide, so it covers columns cx - s/2 .. cx + s/2."""

    kind: str
    colour: str
    size: str
    cx: float
    cy: float


class ImageAdjusted(Note):
    """`read_image` changed the picture to fit the model: made it grey, or resized it."""


# ----------------------------------------------------------------------------- scenes
def shape_pixels(size: str, canvas: int = 32) -> int:
    """The side in pixels of the box of a ``size`` ("small" or "large") shape on a ``canvas``
    pixels square (7 and 12 at 32)."""
    return max(3, round(SIZE_FRACTION[size] * canvas))


@functools.lru_cache(maxsize=64)
def _template(kind: str, s: int) -> np.ndarray:
    """(s, s) bool: the pixels of a ``kind`` shape in an s x s box, tested at pixel centres."""
    u = (np.arange(s) + 0.5) / s - 0.5  # -0.5 .. 0.5 across the box
    x, y = u[None, :], u[:, None]
    eps = 1e-9
    if kind == "circle":
        mask = x**2 + y**2 <= 0.25 + eps
    elif kind == "square":
        mask = np.ones((s, s), dtype=bool)
    elif kind == "triangle":  # apex at the top, base along the bottom
        mask = np.abs(x) <= (y + 0.5) / 2 + 0.5 / s + eps  # half a pixel more: a tip to see
    elif kind == "diamond":
        mask = np.abs(x) + np.abs(y) <= 0.5 + eps
    else:  # pragma: no cover - SHAPES is fixed
        raise ValueError(kind)
    mask = np.broadcast_to(mask, (s, s)).copy()
    mask.setflags(write=False)
    return mask


def make_scenes(
    n: int,
    split: str,
    seed: int,
    size: int = 32,
    max_shapes: int = 4,
    min_shapes: int = 1,
    jitter: float = 0.06,
    return_objects: bool = False,
) -> tuple:
    """``n`` scenes of ``split`` ("train", "valid", "test" or "novel"): (pictures (n, 3, size,
    size) float32 in [0, 1], captions [str]), and with ``return_objects`` a third item, per
    scene the [Shape] it shows, left to right (the caption's order). A scene holds
    ``min_shapes``..``max_shapes`` shapes (uniform; at most 5), each of a uniform kind-colour
    pair (see the module's docstring for the splits), a uniform size, and a uniform position
    among those that keep the shapes apart and plainly placed; a layout that finds no room is
    drawn again, sizes too, so crowded scenes hold fewer large shapes (with 4 shapes about a
    third are large, with 5 a sixth). The same arguments give the same scenes, and the first
    k of n scenes are the k scenes of the same call with n = k."""
    if split not in SCENE_SPLITS:
        raise ConfigError(
            f"unknown split {split!r} for scenes", f"choose one of {', '.join(SCENE_SPLITS)}"
        )
    if n < 0:
        raise ConfigError(f"the number of scenes must be >= 0, got {n}")
    if size < 24:
        raise ConfigError(
            f"scenes need size >= 24 pixels, got {size}",
            "below that a small shape is under 5 pixels and the kinds look alike",
        )
    if not 1 <= min_shapes <= max_shapes:
        raise ConfigError(f"expected 1 <= min_shapes <= max_shapes, got {min_shapes}, {max_shapes}")
    if max_shapes > 5:
        raise ConfigError(
            f"at most 5 shapes fit a scene with room between them, got max_shapes={max_shapes}",
            "shapes scale with the canvas, so a larger size makes no more room",
        )
    if not 0 <= jitter <= 0.2:
        raise ConfigError(f"jitter must be within 0..0.2 (colours stay apart), got {jitter}")
    pairs = [(c, k) for c in COLOURS for k in SHAPES]
    allowed = [p for p in pairs if p not in HELD_OUT]
    held = sorted(HELD_OUT)
    rng = np.random.default_rng([seed, SCENE_SPLITS.index(split), 3])
    pictures = np.zeros((n, 3, size, size), dtype=np.float32)
    captions, scenes = [], []
    for i in range(n):
        count = int(rng.integers(min_shapes, max_shapes + 1))
        if split == "novel":
            chosen = [pairs[j] for j in rng.integers(0, len(pairs), size=count)]
            chosen[int(rng.integers(0, count))] = held[int(rng.integers(0, len(held)))]
        else:
            chosen = [allowed[j] for j in rng.integers(0, len(allowed), size=count)]
        sizes, boxes = _layout(rng, count, size)
        tints = np.clip(
            np.array([COLOURS[c] for c, _ in chosen])
            + rng.uniform(-jitter, jitter, size=(count, 3)),
            0.0,
            1.0,
        )
        objects = []
        for (colour, kind), word, (left, top), tint in zip(
            chosen, sizes, boxes, tints, strict=True
        ):
            s = shape_pixels(word, size)
            region = pictures[i, :, top : top + s, left : left + s]
            region[:, _template(kind, s)] = tint[:, None]
            objects.append(Shape(kind, colour, word, left + s / 2, top + s / 2))
        objects.sort(key=lambda o: o.cx)
        captions.append(caption(objects))
        scenes.append(objects)
    return (pictures, captions, scenes) if return_objects else (pictures, captions)


def _layout(rng: np.random.Generator, count: int, size: int) -> tuple[list[str], list]:
    """Sizes and box corners (left, top) of ``count`` shapes on a ``size`` canvas: every two
    boxes `_GAP` apart, every two centres `_SEPARATION` apart in x, and each shape plainly
    related to its neighbours in x. Shapes are placed one by one, each at the first good one
    of `_CANDIDATES` random corners (its neighbours then are its neighbours in the end: a
    shape placed later between them would be closer); a layout with no good corner for some
    shape is drawn again, sizes too."""
    least = _SEPARATION * size
    for _ in range(_TRIES):
        words = [SIZES[j] for j in rng.integers(0, len(SIZES), size=count)]
        cx, cy, half, boxes = np.zeros(count), np.zeros(count), np.zeros(count), []
        for i, word in enumerate(words):
            s = shape_pixels(word, size)
            corner = rng.integers(0, size - s + 1, size=(_CANDIDATES, 2))
            x, y = corner[:, 0] + s / 2, corner[:, 1] + s / 2
            if i:
                dx = x[:, None] - cx[None, :i]  # (candidates, placed)
                dy = np.abs(y[:, None] - cy[None, :i])
                apart = s / 2 + half[None, :i] + _GAP
                fine = ((np.abs(dx) >= apart) | (dy >= apart)) & (np.abs(dx) >= least)
                rows = np.arange(_CANDIDATES)
                for side in (np.where(dx > 0, dx, np.inf), np.where(dx < 0, -dx, np.inf)):
                    near = side.argmin(axis=1)  # the neighbour on this side, if any
                    plain = np.abs(side[rows, near] - dy[rows, near]) >= least
                    fine[rows, near] &= plain | np.isinf(side[rows, near])
                ok = np.flatnonzero(fine.all(axis=1))
                if not len(ok):
                    break
                corner, x, y = corner[ok[0]], x[ok[0]], y[ok[0]]
            else:
                corner, x, y = corner[0], x[0], y[0]
            cx[i], cy[i], half[i] = x, y, s / 2
            boxes.append((int(corner[0]), int(corner[1])))
        else:
            return words, boxes
    raise ConfigError(
        f"could not lay out {count} shapes apart on a {size} x {size} canvas in {_TRIES} tries",
        "lower max_shapes or raise size",
    )


def _relation(a: Shape, b: Shape) -> str:
    """Where ``a`` lies from ``b``, its right-hand neighbour: see the module's docstring."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if dx > abs(dy):
        return "left of"
    return "above" if dy > 0 else "below"


def caption(objects: list[Shape]) -> str:
    """The caption of a scene holding ``objects`` (in any order): they are sorted left to right
    by centre x and joined by their relations (the grammar in the module's docstring)."""
    if not objects:
        raise ConfigError("a caption needs at least one shape")
    ordered = sorted(objects, key=lambda o: o.cx)
    words = [f"a {ordered[0].size} {ordered[0].colour} {ordered[0].kind}"]
    for a, b in itertools.pairwise(ordered):
        words.append(f"{_relation(a, b)} a {b.size} {b.colour} {b.kind}")
    return " ".join(words)


def parse_caption(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """([(size, colour, shape)] left to right, [relation] between neighbours) of a caption of
    the scene grammar; a DataError naming the first word that breaks it. For scoring
    generated captions (which pairs they name) and for tests."""
    words, objects, relations, at = text.split(), [], [], 0
    hint = "a caption is: a <size> <colour> <shape> (<relation> a <size> <colour> <shape>)*"

    def fail(expected: str):
        got = repr(words[at]) if at < len(words) else "the end"
        raise DataError(f"caption {text!r}: word {at + 1} is {got}; expected {expected}", hint)

    while True:
        for options in (("a",), SIZES, tuple(COLOURS), SHAPES):
            if at >= len(words) or words[at] not in options:
                fail(" or ".join(repr(o) for o in options))
            at += 1
        objects.append(tuple(words[at - 3 : at]))
        if at == len(words):
            return objects, relations
        if words[at] in ("above", "below"):
            relations.append(words[at])
            at += 1
        elif words[at : at + 2] == ["left", "of"]:
            relations.append("left of")
            at += 2
        else:
            fail("the end or a relation ('left of', 'above', 'below')")


# ----------------------------------------------------------------------------- digit strips
@functools.lru_cache(maxsize=4)
def digit_glyphs(size: int) -> np.ndarray:
    """(1797, size, size) float32 in [0, 1]: `digit_images` scaled bilinearly (corners aligned)
    to ``size`` pixels square; read-only, cached."""
    if size < 1:
        raise ConfigError(f"a digit needs size >= 1 pixel, got {size}")
    from scipy.ndimage import zoom

    images, _ = digit_images()  # one call for all: the same numbers as `_resize` image by image
    glyphs = zoom(images, (1, size / 8, size / 8), order=1, grid_mode=False)
    glyphs = np.clip(glyphs, 0.0, 1.0).astype(np.float32)
    glyphs.setflags(write=False)
    return glyphs


def random_affine(glyph: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A square glyph (s, s) through a random affine map about its centre, bilinear, the same
    size: rotation up to 12 degrees, scale 1 +- 0.12, shear up to 0.2 and a shift up to s/16
    pixels either way, each times ``strength`` (uniform)."""
    from scipy.ndimage import affine_transform

    s = glyph.shape[0]
    u = rng.uniform(-1, 1, size=5) * strength
    angle, scale, shear = np.deg2rad(12) * u[0], 1 + 0.12 * u[1], 0.2 * u[2]
    c, si = np.cos(angle), np.sin(angle)
    forward = np.array([[c, -si], [si, c]]) @ np.array([[1, shear], [0, 1]]) * scale
    inverse = np.linalg.inv(forward)  # affine_transform maps output pixels to input pixels
    centre = np.array([(s - 1) / 2, (s - 1) / 2])
    shift = u[3:5] * s / 16
    offset = centre - inverse @ (centre + shift)
    out = affine_transform(glyph, inverse, offset=offset, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def make_strips(
    n: int,
    split: str,
    seed: int,
    min_digits: int = 2,
    max_digits: int = 5,
    height: int = 16,
    split_seed: int = 0,
    return_sources: bool = False,
    distort: float = 0.0,
) -> tuple:
    """``n`` strips of ``split`` ("train", "valid" or "test"): (pictures (n, 1, height,
    max_digits * height) float32 in [0, 1], ink high; captions ["three seven one"]), and with
    ``return_sources`` a third item, per strip the `LineSources` of its digits (image indices
    into `digit_images`, boxes: top 0, size ``height``). A strip holds ``min_digits``..
    ``max_digits`` digits (uniform), each a uniform image of ``split`` of `digit_image_split`
    (``split_seed``). The same arguments give the same strips.

    ``distort`` > 0 (augmentation, for training strips): each digit, with probability 1/2, is
    drawn through a random affine map about its centre, `random_affine` with that strength."""
    if split not in SPLITS:
        hint = "the held-out digits are the test split" if split == "novel" else None
        raise ConfigError(
            f"unknown split {split!r} for strips; choose one of {', '.join(SPLITS)}", hint
        )
    if n < 0:
        raise ConfigError(f"the number of strips must be >= 0, got {n}")
    if not 1 <= min_digits <= max_digits:
        raise ConfigError(f"expected 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if height < 8:
        raise ConfigError(
            f"strips need height >= 8 pixels, got {height}", "the digits are 8x8 images"
        )
    glyphs = digit_glyphs(height)
    _, digits = digit_images()
    pool = _split_indices(split_seed)[split]
    width = max_digits * height
    rng = np.random.default_rng([seed, SPLITS.index(split), 4])
    pictures = np.zeros((n, 1, height, width), dtype=np.float32)
    captions, sources = [], []
    for i in range(n):
        k = int(rng.integers(min_digits, max_digits + 1))
        chosen = rng.choice(pool, size=k)
        left, at = [], int(rng.integers(0, min(2, width - k * height) + 1))
        for j, index in enumerate(chosen):
            if j:  # a gap of 0-3 pixels, as far as the digits still to come leave room
                at += int(rng.integers(0, min(3, width - at - (k - j) * height) + 1))
            box = pictures[i, 0, :, at : at + height]
            glyph = glyphs[index]
            if distort and rng.random() < 0.5:  # half the digits stay as written
                glyph = random_affine(glyph, rng, distort)
            np.maximum(box, glyph, out=box)
            left.append(at)
            at += height
        captions.append(" ".join(DIGIT_WORDS[d] for d in digits[chosen]))
        sources.append(
            LineSources(
                np.asarray(chosen, dtype=np.int64),
                np.asarray(left, dtype=np.int64),
                np.zeros(k, dtype=np.int64),
                np.full(k, height, dtype=np.int64),
            )
        )
    return (pictures, captions, sources) if return_sources else (pictures, captions)


# ----------------------------------------------------------------------------- files
def read_image(path: str | Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """(channels, H, W) float32 in [0, 1]: the picture at ``path`` as the input of a model that
    reads ``channels`` (1: grey, 3: RGB) x ``size`` (H, W) pixels. Reads what Pillow reads
    (PNG, JPEG, ...) and .npy arrays ((H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4;
    uint8 0..255 or floats in 0..1). Transparent parts are laid on black, the background of
    the generated pictures; nothing is inverted.

    Adjusted, with an `ImageAdjusted` warning saying what was done: a colour picture for a
    grey model is made grey (luma 0.299 R + 0.587 G + 0.114 B); a picture of another size is
    resized (bilinear) when its width/height is within `ASPECT_TOLERANCE` of the model's.
    Refused, with a DataError: a path that is not a file or not a picture; a grey picture
    (one channel, or R = G = B throughout) for a colour model; a picture of another shape
    (the message names the size the model reads)."""
    rows, cols = _check_input(size, channels)
    path = Path(path)
    if not path.is_file():
        what = "it is a directory" if path.is_dir() else "there is no such file"
        raise DataError(f"cannot read {path} as an image: {what}", _image_hint())
    picture = _read_npy(path) if path.suffix.lower() == ".npy" else _read_picture(path)
    out, notes = fit_picture(picture, str(path), (rows, cols), channels)
    for note in notes:
        warnings.warn(note, ImageAdjusted, stacklevel=2)
    return out


def _check_input(size: tuple[int, int], channels: int) -> tuple[int, int]:
    if channels not in (1, 3):
        raise ConfigError(f"a model reads 1 (grey) or 3 (RGB) channels, not {channels}")
    rows, cols = (int(v) for v in size)
    if rows < 1 or cols < 1:
        raise ConfigError(f"the image size (H, W) must be positive, got {size}")
    return rows, cols


def fit_picture(
    picture: np.ndarray, name: str, size: tuple[int, int], channels: int
) -> tuple[np.ndarray, list[str]]:
    """((channels, H, W) float32, notes): a picture (rows, cols, 1 or 3) in [0, 1] made what a
    model of ``channels`` x ``size`` (H, W) reads, as `read_image` does (``name`` names it in
    the messages); the notes say what was changed, a DataError what cannot be. For readers of
    other files (frames of a clip) that warn once for many pictures."""
    rows, cols = _check_input(size, channels)
    notes = []
    grey = picture.shape[2] == 1 or _all_grey(picture)
    if channels == 3 and grey:
        how = "" if picture.shape[2] == 1 else " (its red, green and blue are equal throughout)"
        raise DataError(
            f"{name} is a grey image{how}; this model reads colour (3 channels)",
            "give it a colour picture: the colours are part of what it describes",
        )
    if channels == 1 and not grey:
        notes.append(f"{name} is a colour image; made grey for this model, which reads 1 channel")
    if channels == 1:
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        picture = picture[:, :, :1] if grey else (picture[:, :, :3] @ luma)[:, :, None]
    else:
        picture = picture[:, :, :3]
    h, w = picture.shape[:2]
    if (h, w) != (rows, cols):
        ratio = (w / h) / (cols / rows)
        if max(ratio, 1 / ratio) > ASPECT_TOLERANCE:
            raise DataError(
                f"{name} is {w} x {h} pixels (width x height); this model reads {cols} x {rows}, "
                f"and the shapes differ too much to resize (width/height {w / h:.2f} against "
                f"{cols / rows:.2f})",
                f"crop the picture to {cols}:{rows} or resize it to {cols} x {rows} pixels",
            )
        notes.append(f"{name} is {w} x {h} pixels; resized to {cols} x {rows}, the size this "
                     "model reads")  # fmt: skip
        picture = np.stack(
            [_resize_picture(picture[:, :, c], rows, cols) for c in range(picture.shape[2])],
            axis=2,
        )
    return np.ascontiguousarray(picture.transpose(2, 0, 1), dtype=np.float32), notes


def _all_grey(picture: np.ndarray) -> bool:
    """Whether an (H, W, 3+) picture's red, green and blue agree everywhere (within 2/255)."""
    rgb = picture[:, :, :3]
    return bool(np.ptp(rgb, axis=2).max() <= 2 / 255)


def _read_picture(path: Path) -> np.ndarray:
    """(H, W, 1 or 3) float32 in [0, 1]: a picture Pillow reads; transparency on black."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        raise DataError("reading pictures needs Pillow", "pip install pillow") from None
    try:
        with Image.open(path) as picture:
            picture.load()
            out = pil_array(picture)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(
            f"cannot read {path} as an image: {type(err).__name__}: {err}", _image_hint()
        ) from None
    if out.size == 0:
        raise DataError(f"cannot read {path} as an image: it holds no pixels", _image_hint())
    return out


def pil_array(picture) -> np.ndarray:
    """(H, W, 1 or 3) float32 in [0, 1]: a loaded Pillow image (one frame), grey modes as one
    channel, the rest as RGB; transparency laid on black; 16- and 32-bit grey scaled by the
    range its values fit (0..1, 0..255 or 0..65535)."""
    from PIL import Image

    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(picture, dtype=np.float32)
        top = 1.0 if values.max() <= 1.0 else 255.0 if values.max() <= 255 else 65535.0
        return np.clip(values / top, 0.0, 1.0)[:, :, None]
    if "A" in picture.getbands() or "transparency" in picture.info:
        picture = picture.convert("RGBA")
        black = Image.new("RGBA", picture.size, (0, 0, 0, 255))
        picture = Image.alpha_composite(black, picture)
    one = set(picture.getbands()) - {"A"} in ({"L"}, {"1"})
    out = np.asarray(picture.convert("L" if one else "RGB"), dtype=np.float32) / 255.0
    return out[:, :, None] if out.ndim == 2 else out


def _read_npy(path: Path) -> np.ndarray:
    """(H, W, 1 or 3) float32 in [0, 1] from a .npy array; alpha laid on black."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"cannot read {path} as an image: {err}", _image_hint()) from None
    shape = array.shape
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # (C, H, W)
    elif array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise DataError(
            f"cannot read {path} as an image: an array of shape {shape}",
            "a .npy image is (H, W), (H, W, C) or (C, H, W) with C = 1, 3 or 4",
        )
    return unit_pixels(array, f"cannot read {path} as an image")


def unit_pixels(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` (..., C) as float32 in [0, 1]: uint8 divided by 255, bool and other numbers
    kept (they must lie in 0..1); a fourth channel (alpha) laid on black. A DataError starting
    with ``what`` otherwise."""
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == bool or np.issubdtype(array.dtype, np.number):
        array = array.astype(np.float32)
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise DataError(
                f"{what}: values from {np.nanmin(array):g} to {np.nanmax(array):g} (or NaN)",
                "pixels are floats in 0..1 or uint8 0..255",
            )
    else:
        raise DataError(f"{what}: a {array.dtype} array", "pixels are floats in 0..1 or uint8")
    if array.shape[-1] == 4:
        array = array[..., :3] * array[..., 3:]
    return array


def _image_hint() -> str:
    return "give a PNG or JPEG picture, or a .npy array (C, H, W) in [0, 1]"


def save_image(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (C, H, W) with C = 1 or 3, or (H, W), values in [0, 1] (clipped), as an
    8-bit PNG at ``path`` (grey for one channel, RGB for three); returns the path."""
    from PIL import Image

    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 3) or 0 in array.shape:
        raise DataError(
            f"cannot save an array of shape {np.shape(array)} as an image",
            "give (C, H, W) with C = 1 or 3, or (H, W)",
        )
    if not np.isfinite(array).all():
        raise DataError("cannot save an image holding NaN or infinity")
    pixels = np.rint(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)
    path = Path(path)
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path, "PNG")
    return path
