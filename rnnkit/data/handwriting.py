"""Handwriting for a CTC recogniser: unsegmented lines that a bidirectional RNN reads step by
step and transcribes, with no character positions given. Two kinds, both made from data that
installed packages ship (nothing is downloaded) and both fixed by a seed.

Offline: lines of real handwritten digits, read column by column.

    lines = make_digit_lines(1000, "train", seed=0)   [(x, label)]
    x                       (W, height) float32 in [0, 1], ink high; row t is column t of the
                            picture, top to bottom; W varies per line
    label                   "3071": 3..7 digits of DIGIT_ALPHABET
    make_digit_lines(..., return_sources=True)   [(x, label, LineSources)]: which images, where
    digit_image_split()     {"train" | "valid" | "test": image indices}, a fixed stratified
                            70/15/15 split of the 1,797 images; a split's lines use only its own
                            images, so test lines are made of held-out images
    image_columns("line.png")    (W, 16) float32 from a picture of a line of writing
    render_line(x)          (height, W), the picture again

The digits are scikit-learn's ``load_digits()``: 1,797 8x8 images (values 0..16), the test
part of UCI's "optical recognition of handwritten digits", written by 13 people. The data
names no writer, so the split holds out images, not writers: test digits are unseen images
by hands that the training images also show. Each digit of a line is scaled (bilinear,
`scipy.ndimage.zoom`) to ``digit_size`` times a random factor, set at a random height on a
canvas ``height`` pixels high, ``gap`` pixels after the previous one (a negative gap overlaps
them; overlapping ink is combined with max), with ``margin`` blank columns at either end and
optional Gaussian noise.

Online: pen trajectories of text lines, written with a Hershey vector font.

    lines = make_stroke_lines(1000, "train", seed=0)  [(seq, text)]
    seq                     (T, 3) float32 rows (dx, dy, pen_up) as in IAM-OnDB (Graves 2008):
                            the pen's move from the previous point (the first row: from the
                            origin), pen_up = 1 on the last point of each stroke
    text                    "beautiful is better": 1-3 words, characters of STROKE_ALPHABET
    strokes_to_points(seq)  [(k, 2) float64]: the absolute pen positions, stroke by stroke
    strokes_to_sequence(strokes)   the inverse
    read_strokes("pen.csv") (T, 3) float32 from a user's .npy, CSV or TSV file

The ink is the ``cursive`` font of the ``hershey-fonts`` package (Hershey's script simplex
letters, joined: a letter's exit stroke ends where the next letter's entry begins). Units are
the font's cap height (cap line to base line, 21 font units) with y up, the base line at y = 0
and the line's left edge at x = 0. Per line: the dots of i and j are written after the word
that holds them (a "delayed stroke", as people write them), strokes that end where the next
begins are joined into one pen-down stroke, each stroke is resampled at a random spacing along
its length (the pen's speed: points per unit of ink vary), then the line is slanted
(x += tan(angle) * y, angle uniform in +-``slant`` radians), scaled by a random factor and
jittered point by point with Gaussian noise.

The words are the 81 distinct words of the Zen of Python (``import this``, read from the
source of the ``this`` module without running it), lower-cased; the four contractions (aren't,
it's, you're, let's) are left out. A line is 1-3 of them drawn uniformly, so the splits share
their words (and the font's letters); what a split holds is the *line's text*: each text
belongs to one of train / valid / test by a hash of it (`text_split`, about 70/15/15), so no
test text is ever a training text. With the defaults a line has about 30 points a character.
"""

from __future__ import annotations

import ast
import codecs
import csv
import functools
import importlib.util
import io
import re
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnkit.errors import ConfigError, DataError

__all__ = [
    "SPLITS",
    "DIGIT_ALPHABET",
    "STROKE_ALPHABET",
    "LineSources",
    "digit_images",
    "digit_image_split",
    "make_digit_lines",
    "image_columns",
    "render_line",
    "zen_words",
    "text_split",
    "font_strokes",
    "make_stroke_lines",
    "strokes_to_sequence",
    "strokes_to_points",
    "read_strokes",
]

SPLITS = ("train", "valid", "test")
DIGIT_ALPHABET = "0123456789"
STROKE_ALPHABET = " abcdefghijklmnopqrstuvwxyz"
FONT = "cursive"
CAP_HEIGHT = 21.0  # font units from the cap line (-12) to the base line (9) of Hershey fonts
DOT = 4.0 / CAP_HEIGHT  # a stroke no larger than this (cap heights) is a dot, written late
SPLIT_SHARES = (70, 85)  # text_split: hash % 100 below 70 train, below 85 valid, else test


# ----------------------------------------------------------------------------- digit lines
class LineSources(NamedTuple):
    """Where the digits of a line came from and where they lie: for each digit, its index in
    `digit_images` and its box on the canvas (rows top .. top + size, columns left .. left +
    size); all (k,) int64."""

    images: np.ndarray
    left: np.ndarray
    top: np.ndarray
    size: np.ndarray


@functools.lru_cache(maxsize=1)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float32 in [0, 1], digits (1797,) int64): scikit-learn's
    ``load_digits()``, the values divided by 16."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    images.setflags(write=False)
    digits = data.target.astype(np.int64)
    digits.setflags(write=False)
    return images, digits


@functools.lru_cache(maxsize=4)
def _split_indices(seed: int) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    _, digits = digit_images()
    every = np.arange(len(digits))
    train, rest = train_test_split(every, test_size=0.3, stratify=digits, random_state=seed)
    valid, test = train_test_split(rest, test_size=0.5, stratify=digits[rest], random_state=seed)
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}


def digit_image_split(seed: int = 0) -> dict[str, np.ndarray]:
    """{"train" | "valid" | "test": sorted image indices}: a stratified 70/15/15 split of the
    1,797 digit images (1257 / 270 / 270), fixed by ``seed``."""
    return {name: part.copy() for name, part in _split_indices(seed).items()}


def make_digit_lines(
    n: int,
    split: str,
    seed: int,
    min_digits: int = 3,
    max_digits: int = 7,
    height: int = 16,
    digit_size: int = 12,
    scale: tuple[float, float] = (0.8, 1.25),
    gap: tuple[int, int] = (-2, 3),
    margin: int = 1,
    noise: float = 0.0,
    split_seed: int = 0,
    return_sources: bool = False,
) -> list[tuple]:
    """``n`` lines of handwritten digits from the images of ``split`` (`digit_image_split` with
    ``split_seed``): [(x (W, height) float32, label)], or [(x, label, LineSources)] with
    ``return_sources``. A line holds ``min_digits``..``max_digits`` digits (uniform), each
    ``digit_size`` x a factor uniform in ``scale`` pixels square (at most ``height``), at a
    uniform height on the canvas, ``gap`` (integers, both ends included) columns after the
    previous digit. The same arguments give the same lines."""
    _check_split(split)
    if not 1 <= min_digits <= max_digits:
        raise ConfigError(f"expected 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    if height < 1 or digit_size < 1 or margin < 0 or noise < 0:
        raise ConfigError(
            f"height and digit_size must be >= 1, margin and noise >= 0; got height={height}, "
            f"digit_size={digit_size}, margin={margin}, noise={noise}"
        )
    if not 0 < scale[0] <= scale[1] or gap[0] > gap[1]:
        raise ConfigError(f"scale needs 0 < low <= high and gap low <= high; got {scale}, {gap}")
    images, digits = digit_images()
    pool = _split_indices(split_seed)[split]
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    lines = []
    for _ in range(n):
        k = int(rng.integers(min_digits, max_digits + 1))
        chosen = rng.choice(pool, size=k)
        sizes = np.clip(np.rint(digit_size * rng.uniform(*scale, size=k)), 1, height)
        tops = np.array([rng.integers(0, height - s + 1) for s in sizes])
        gaps = rng.integers(gap[0], gap[1] + 1, size=k - 1)
        sources = _place(chosen, sizes.astype(np.int64), tops, gaps, margin)
        x = _draw(images, sources, height, margin)
        if noise:
            x = np.clip(x + rng.normal(0.0, noise, size=x.shape), 0.0, 1.0).astype(np.float32)
        label = "".join(str(d) for d in digits[chosen])
        lines.append((x, label, sources) if return_sources else (x, label))
    return lines


def _place(chosen, sizes, tops, gaps, margin: int) -> LineSources:
    """The boxes of digits ``sizes`` wide, ``gaps`` apart; a gap never puts a digit's left edge
    at or before the previous digit's (overlap at most size - 1 columns)."""
    left = [margin]
    for size, g in zip(sizes[:-1], gaps, strict=True):
        left.append(left[-1] + size + max(int(g), 1 - int(size)))
    as_int = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    return LineSources(as_int(chosen), as_int(left), as_int(tops), as_int(sizes))


def _draw(images: np.ndarray, sources: LineSources, height: int, margin: int) -> np.ndarray:
    """(W, height) float32: the digits of ``sources`` drawn, overlaps combined with max."""
    width = int(sources.left[-1] + sources.size[-1] + margin)
    canvas = np.zeros((height, width), dtype=np.float32)
    for index, left, top, size in zip(*sources, strict=True):
        glyph = _resize(images[index], int(size))
        box = canvas[top : top + size, left : left + size]
        np.maximum(box, glyph, out=box)
    return np.ascontiguousarray(canvas.T)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32: ``image`` scaled bilinearly, corners aligned, values in [0, 1]."""
    if image.shape == (size, size):
        return image
    from scipy.ndimage import zoom

    factors = (size / image.shape[0], size / image.shape[1])
    out = zoom(image, factors, order=1, grid_mode=False)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def render_line(x: np.ndarray) -> np.ndarray:
    """(height, W): the picture of a line ``x`` (W, height), for imshow."""
    return np.asarray(x).T


def image_columns(
    path: str | Path, height: int = 16, ink_height: int | None = None, pad: int = 1
) -> np.ndarray:
    """(W, height) float32 in [0, 1], ink high: a picture of one line of writing (PNG, JPEG or
    anything Pillow reads), read as the recogniser reads `make_digit_lines` lines. The picture is
    made grey (transparency laid on white); a light background (median above 0.5) is inverted,
    so dark-on-light and light-on-dark writing both work; the background level is subtracted
    and the darkest ink set to 1. The picture is cropped to the ink's bounding box (pixels above
    0.25), scaled so the ink is ``ink_height`` rows tall (default ``height``; the digits of
    `make_digit_lines` are 10-15 of 16 rows), centred in ``height`` rows, with ``pad`` blank
    columns at either end. W = width * ink_height / ink rows, rounded, + 2 * pad."""
    ink_height = height if ink_height is None else ink_height
    if not 1 <= ink_height <= height:
        raise ConfigError(f"expected 1 <= ink_height <= height, got {ink_height} and {height}")
    grey = _read_grey(Path(path))
    if np.median(grey) > 0.5:
        grey = 1.0 - grey
    ink = grey - np.median(grey)
    if ink.max() < 0.1:
        raise DataError(
            f"{path} shows no writing: every pixel is within 10% of the background grey",
            "give a picture of a line of writing, dark ink on a light background or the reverse",
        )
    ink = np.clip(ink / ink.max(), 0.0, 1.0)
    rows = np.flatnonzero((ink > 0.25).any(axis=1))
    cols = np.flatnonzero((ink > 0.25).any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    width = max(1, round(ink.shape[1] * ink_height / ink.shape[0]))
    scaled = _resize_picture(ink, ink_height, width)
    top = (height - ink_height) // 2
    canvas = np.zeros((height, width + 2 * pad), dtype=np.float32)
    canvas[top : top + ink_height, pad : pad + width] = scaled
    return np.ascontiguousarray(canvas.T)


def _read_grey(path: Path) -> np.ndarray:
    """(rows, cols) float32 in [0, 1]: the picture at ``path`` in grey, white = 1."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        raise DataError("reading pictures needs Pillow", "pip install pillow") from None
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"the picture {path} {what}", "give the path of a PNG or JPEG file")
    try:
        with Image.open(path) as picture:
            picture.load()
            if "A" in picture.getbands() or "transparency" in picture.info:
                white = Image.new("RGBA", picture.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(white, picture.convert("RGBA"))
            grey = np.asarray(picture.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(
            f"{path} is not a picture Pillow can read ({type(err).__name__}: {err})",
            "save the line of writing as PNG or JPEG",
        ) from None
    if grey.ndim != 2 or grey.size == 0:
        raise DataError(f"{path} holds no pixels", "save the line of writing as PNG or JPEG")
    return grey


def _resize_picture(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) float32: ``image`` resized with Pillow's bilinear filter (antialiased when
    shrinking)."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
    resized = picture.resize((cols, rows), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# ----------------------------------------------------------------------------- stroke lines
@functools.lru_cache(maxsize=1)
def zen_words() -> tuple[str, ...]:
    """The 81 distinct lower-case words of the Zen of Python, sorted; contractions left out."""
    spec = importlib.util.find_spec("this")
    source = Path(spec.origin).read_text(encoding="utf-8")
    coded = next(
        node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "s"
    )
    zen = codecs.decode(coded, "rot13")
    tokens = re.findall(r"[A-Za-z]+(?:'[A-Za-z]+)*", zen)
    return tuple(sorted({t.lower() for t in tokens if t.isalpha()}))


def text_split(text: str) -> str:
    """The split ("train", "valid" or "test") that the line ``text`` belongs to: fixed by the
    CRC-32 of the text, about 70/15/15 over all texts."""
    share = zlib.crc32(text.encode("utf-8")) % 100
    return SPLITS[int(share >= SPLIT_SHARES[0]) + int(share >= SPLIT_SHARES[1])]


@functools.lru_cache(maxsize=4)
def _font(name: str):
    from HersheyFonts import HersheyFonts

    font = HersheyFonts()
    if name not in font.default_font_names:
        raise ConfigError(
            f"unknown Hershey font {name!r}",
            f"choose one of {', '.join(font.default_font_names)}; cursive and scripts write "
            "joined lower-case letters",
        )
    font.load_default_font(name)
    absent = [c for c in STROKE_ALPHABET if c not in font.all_glyphs]
    if absent:
        raise ConfigError(f"the Hershey font {name!r} lacks the characters {''.join(absent)!r}")
    return font


def font_strokes(text: str, font: str = FONT) -> list[np.ndarray]:
    """[(k, 2) float64]: the strokes of ``text`` in ``font``, in cap heights (y up, base line
    at 0, the line's left edge at x = 0), dots written after their word and strokes that end
    where the next begins joined. This is the ink that `make_stroke_lines` resamples."""
    bad = sorted(set(text) - set(STROKE_ALPHABET))
    if bad:
        raise ConfigError(f"{text!r} holds characters outside STROKE_ALPHABET: {bad}")
    glyphs = _font(font).all_glyphs
    base, strokes, late, x = _font(font).render_options["base_line"], [], [], 0.0
    for char in text:
        glyph = glyphs[char]
        if char == " ":
            strokes, late = strokes + late, []
        for stroke in glyph.strokes:
            xy = np.array(stroke, dtype=np.float64).reshape(-1, 2)
            xy = np.column_stack([x + xy[:, 0] - glyph.left_offset, base - xy[:, 1]])
            xy /= CAP_HEIGHT
            small = np.ptp(xy, axis=0).max() <= DOT
            (late if small else strokes).append(xy)
        x += glyph.char_width
    return _join(strokes + late)


def _join(strokes: list[np.ndarray]) -> list[np.ndarray]:
    """``strokes`` with each stroke that starts where the previous one ends appended to it."""
    joined = []
    for stroke in strokes:
        if joined and np.allclose(joined[-1][-1], stroke[0]):
            joined[-1] = np.concatenate([joined[-1], stroke[1:]])
        else:
            joined.append(stroke)
    return joined


def _resample(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """(m, 2): points along ``stroke`` at equal arc-length steps of at most ``spacing``, both
    ends kept; a stroke of no length becomes its first point."""
    steps = np.hypot(*np.diff(stroke, axis=0).T)
    length = float(steps.sum())
    if length == 0.0:
        return stroke[:1].copy()
    along = np.concatenate([[0.0], np.cumsum(steps)])
    at = np.linspace(0.0, length, int(np.ceil(length / spacing)) + 1)
    keep = np.concatenate([[True], steps > 0])  # np.interp needs increasing abscissae
    return np.column_stack([np.interp(at, along[keep], stroke[keep, i]) for i in (0, 1)])


def make_stroke_lines(
    n: int,
    split: str,
    seed: int,
    words: tuple[int, int] = (1, 3),
    font: str = FONT,
    slant: float = 0.3,
    scale: tuple[float, float] = (0.8, 1.25),
    jitter: float = 0.01,
    spacing: tuple[float, float] = (0.04, 0.1),
    return_strokes: bool = False,
) -> list[tuple]:
    """``n`` pen trajectories of text lines of ``split`` (`text_split`): [(seq (T, 3) float32,
    text)], or [(seq, text, strokes)] with ``return_strokes``, strokes the [(k, 2) float64]
    pen positions that seq encodes. A line holds ``words`` (both ends included) Zen words,
    drawn uniformly until the text is one of ``split``'s; its `font_strokes` are resampled at a
    spacing uniform in ``spacing`` cap heights (a new one per stroke), slanted by an angle
    uniform in +-``slant`` radians, scaled by a factor uniform in ``scale`` and jittered by
    Gaussian noise of sd ``jitter`` cap heights. The same arguments give the same lines."""
    _check_split(split)
    if not 1 <= words[0] <= words[1]:
        raise ConfigError(f"expected 1 <= fewest <= most words, got {words}")
    if not 0 < spacing[0] <= spacing[1] or not 0 < scale[0] <= scale[1]:
        raise ConfigError(f"spacing and scale need 0 < low <= high; got {spacing}, {scale}")
    if slant < 0 or jitter < 0:
        raise ConfigError(f"slant and jitter must be >= 0, got {slant} and {jitter}")
    vocab = zen_words()
    rng = np.random.default_rng([seed, SPLITS.index(split), 1])
    lines = []
    for _ in range(n):
        text = _draw_text(rng, vocab, words, split)
        strokes = [_resample(s, rng.uniform(*spacing)) for s in font_strokes(text, font)]
        shear, size = np.tan(rng.uniform(-slant, slant)), rng.uniform(*scale)
        strokes = [
            size * np.column_stack([s[:, 0] + shear * s[:, 1], s[:, 1]])
            + rng.normal(0.0, jitter, size=s.shape)
            for s in strokes
        ]
        seq = strokes_to_sequence(strokes)
        lines.append((seq, text, strokes) if return_strokes else (seq, text))
    return lines


def _draw_text(rng: np.random.Generator, vocab, words: tuple[int, int], split: str) -> str:
    while True:
        k = int(rng.integers(words[0], words[1] + 1))
        text = " ".join(vocab[i] for i in rng.integers(0, len(vocab), size=k))
        if text_split(text) == split:
            return text


def strokes_to_sequence(strokes: list[np.ndarray]) -> np.ndarray:
    """(T, 3) float32 rows (dx, dy, pen_up) of the pen positions ``strokes`` [(k, 2)]: each
    point's offset from the previous one (the first point's from the origin), pen_up = 1 on
    each stroke's last point. T = the number of points."""
    points = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes])
    ends = np.cumsum([len(s) for s in strokes]) - 1
    seq = np.zeros((len(points), 3), dtype=np.float64)
    seq[:, :2] = np.diff(points, axis=0, prepend=np.zeros((1, 2)))
    seq[ends, 2] = 1.0
    return seq.astype(np.float32)


def strokes_to_points(seq: np.ndarray) -> list[np.ndarray]:
    """[(k, 2) float64]: the absolute pen positions of ``seq`` (T, 3), split after each pen-up
    (a last stroke without one is kept). For drawing: plot each stroke as one line."""
    seq = np.asarray(seq, dtype=np.float64)
    points = np.cumsum(seq[:, :2], axis=0)
    ends = np.flatnonzero(seq[:, 2] > 0.5) + 1
    return [part for part in np.split(points, ends) if len(part)]


def read_strokes(path: str | Path, y_down: bool = False) -> np.ndarray:
    """(T, 3) float32 rows (dx, dy, pen_up) from a user's file of pen data:

    - ``.npy``: a (T, 3) array of (dx, dy, pen_up), as `make_stroke_lines` writes them;
    - CSV (or TSV: a header with tabs) whose header names the columns ``x, y, pen_up``
      (absolute positions: differenced, the first point moved to the origin) or ``dx, dy,
      pen_up`` (offsets, kept); the names in any case, other columns ignored.

    pen_up must be 0 or 1; the last point always ends a stroke (its pen_up is set to 1).
    ``y_down``: the file's y grows downwards (screen and tablet coordinates); it is flipped to
    the y-up of `make_stroke_lines`. Coordinates are not rescaled: the generated lines are in
    cap heights (a capital letter is about 1 high)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"the pen data file {path} {what}", _strokes_hint())
    seq = _read_npy(path) if path.suffix.lower() == ".npy" else _read_table(path)
    if not np.isfinite(seq).all():
        row = int(np.flatnonzero(~np.isfinite(seq).all(axis=1))[0])
        raise DataError(f"{path}: point {row} holds NaN or infinity: {seq[row].tolist()}")
    pen = seq[:, 2]
    if not np.isin(pen, (0.0, 1.0)).all():
        row = int(np.flatnonzero(~np.isin(pen, (0.0, 1.0)))[0])
        raise DataError(
            f"{path}: pen_up must be 0 or 1; point {row} has {pen[row]:g}",
            "pen_up is 1 on the last point of each stroke, 0 elsewhere",
        )
    seq = seq.copy()
    seq[-1, 2] = 1.0
    if y_down:
        seq[:, 1] = -seq[:, 1]
    return seq.astype(np.float32)


def _read_npy(path: Path) -> np.ndarray:
    try:
        seq = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npy array: {err}", _strokes_hint()) from None
    if seq.ndim != 2 or seq.shape[1] != 3 or not np.issubdtype(seq.dtype, np.number):
        raise DataError(
            f"{path} holds a {seq.dtype} array of shape {seq.shape}; (T, 3) numbers expected",
            _strokes_hint(),
        )
    if not len(seq):
        raise DataError(f"{path} holds no points (shape {seq.shape})", _strokes_hint())
    return seq.astype(np.float64)


def _read_table(path: Path) -> np.ndarray:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text", _strokes_hint()) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"the pen data file {path} is empty", _strokes_hint())
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [name.strip().lower() for name in rows[0]]
    forms = (("x", "y", "pen_up"), ("dx", "dy", "pen_up"))
    names = next((form for form in forms if set(form) <= set(header)), None)
    if names is None:
        raise DataError(
            f"{path}: the header names the columns {rows[0]}; it needs x, y, pen_up or dx, dy, "
            "pen_up",
            _strokes_hint(),
        )
    if len(rows) < 2:
        raise DataError(f"{path} has a header line but no points", _strokes_hint())
    at = [header.index(name) for name in names]
    values = np.empty((len(rows) - 1, 3))
    for i, row in enumerate(rows[1:]):
        for j, k in enumerate(at):
            cell = row[k].strip() if k < len(row) else ""
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: point {i + 1} (line {i + 2}): {cell!r} in column {names[j]!r} is "
                    "not a number",
                    _strokes_hint(),
                ) from None
    if names[0] == "x":  # absolute positions
        values[:, :2] = np.diff(values[:, :2], axis=0, prepend=values[:1, :2])
    return values


def _strokes_hint() -> str:
    return (
        "pen data is a .npy (T, 3) array of (dx, dy, pen_up) or a CSV/TSV file with a header "
        "line x,y,pen_up (absolute positions) or dx,dy,pen_up (offsets), one point a line"
    )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
