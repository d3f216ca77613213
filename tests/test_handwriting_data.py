"""Handwriting lines for a CTC recogniser: digit lines made of held-out images that keep each
image's pixels, pen trajectories that follow the font's strokes and decode back to them, the
user-file readers and their errors."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from HersheyFonts import HersheyFonts

from rnnkit.data.handwriting import (
    DIGIT_ALPHABET,
    SPLITS,
    STROKE_ALPHABET,
    digit_image_split,
    digit_images,
    font_strokes,
    image_columns,
    make_digit_lines,
    make_stroke_lines,
    read_strokes,
    render_line,
    strokes_to_points,
    strokes_to_sequence,
    text_split,
    zen_words,
)
from rnnkit.errors import DataError

UNSCALED = dict(digit_size=8, scale=(1.0, 1.0), noise=0.0)  # digits at their own 8x8 size


# ----------------------------------------------------------------------------- digit lines
def test_image_split_is_a_stratified_partition_of_all_digits():
    split = digit_image_split()
    _, digits = digit_images()
    every = np.concatenate([split[name] for name in SPLITS])
    assert len(every) == len(np.unique(every)) == 1797
    assert set(every.tolist()) == set(range(1797))
    assert [len(split[name]) for name in SPLITS] == [1257, 270, 270]
    for name in ("valid", "test"):  # every digit 25-29 times in 270 images (10% each)
        counts = np.bincount(digits[split[name]], minlength=10)
        assert counts.min() >= 25 and counts.max() <= 29
    again = digit_image_split()
    assert all(np.array_equal(split[n], again[n]) for n in SPLITS)


def test_digit_lines_are_fixed_by_the_seed():
    a = make_digit_lines(6, "train", seed=3, noise=0.05)
    b = make_digit_lines(6, "train", seed=3, noise=0.05)
    c = make_digit_lines(6, "train", seed=4, noise=0.05)
    assert [label for _, label in a] == [label for _, label in b]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b, strict=True))
    assert [label for _, label in a] != [label for _, label in c]


@pytest.mark.parametrize("split", SPLITS)
def test_lines_use_only_their_own_images_and_spell_them(split):
    pool = set(digit_image_split()[split].tolist())
    _, digits = digit_images()
    lengths = set()
    for x, label, src in make_digit_lines(40, split, seed=1, return_sources=True):
        assert set(src.images.tolist()) <= pool
        assert 3 <= len(label) <= 7 and len(label) == len(src.images)
        assert label == "".join(str(d) for d in digits[src.images])
        assert set(label) <= set(DIGIT_ALPHABET)
        assert x.dtype == np.float32 and x.shape[1] == 16
        assert x.min() >= 0.0 and x.max() <= 1.0
        lengths.add(len(label))
    assert lengths == {3, 4, 5, 6, 7}  # the whole range occurs in 40 lines


def test_unscaled_digits_are_copied_pixel_for_pixel():
    images, _ = digit_images()
    lines = make_digit_lines(10, "valid", seed=2, gap=(1, 3), return_sources=True, **UNSCALED)
    for x, _, src in lines:
        picture = render_line(x)
        assert np.array_equal(src.size, np.full(len(src.images), 8))
        assert src.left[0] == 1 and picture.shape[1] == src.left[-1] + 8 + 1  # 1-column margins
        assert set(np.diff(src.left).tolist()) <= {9, 10, 11}  # 8 columns + a gap of 1..3
        covered = np.zeros(picture.shape, dtype=bool)
        for index, left, top, _ in zip(*src, strict=True):
            assert 0 <= top <= 16 - 8
            assert np.array_equal(picture[top : top + 8, left : left + 8], images[index])
            covered[top : top + 8, left : left + 8] = True
        assert not picture[~covered].any()  # nothing outside the digits' boxes
    # one placement checked by hand: the first digit of the first line
    x, label, src = lines[0]
    first = digit_images()[0][src.images[0]]
    assert label[0] == str(digit_images()[1][src.images[0]])
    assert np.array_equal(x[1:9, src.top[0] : src.top[0] + 8], first.T)
    assert not x[0].any()


def test_overlapping_digits_combine_with_max():
    images, _ = digit_images()
    lines = make_digit_lines(10, "train", seed=5, gap=(-3, -3), return_sources=True, **UNSCALED)
    shared = 0
    for x, _, src in lines:
        assert set(np.diff(src.left).tolist()) == {5}  # 8 columns - 3 overlapping
        expected = np.zeros_like(render_line(x))
        for index, left, top, _ in zip(*src, strict=True):
            box = expected[top : top + 8, left : left + 8]
            shared += int(((box > 0) & (images[index] > 0)).sum())
            np.maximum(box, images[index], out=box)
        assert np.array_equal(render_line(x), expected)
    assert shared > 0  # ink did meet ink, so max (not sum, not overwrite) was tested


def test_scaled_digits_stay_on_the_canvas():
    for x, _, src in make_digit_lines(30, "test", seed=0, return_sources=True):
        assert src.size.min() >= 10 and src.size.max() <= 15  # 12 x 0.8 .. 12 x 1.25
        assert (src.top >= 0).all() and (src.top + src.size <= 16).all()
        assert x.shape[0] == src.left[-1] + src.size[-1] + 1
        assert np.allclose(x.max(), 1.0, atol=0.1)  # the darkest ink of 16 stays about 1


# ----------------------------------------------------------------------------- pictures
def _ink_box(picture: np.ndarray) -> np.ndarray:
    """``picture`` without its faint ink (which 8-bit grey could put either side of the reader's
    0.25 threshold), cropped to the rest."""
    picture = np.where(picture > 0.3, picture, 0.0)
    rows = np.flatnonzero(picture.any(axis=1))
    cols = np.flatnonzero(picture.any(axis=0))
    return picture[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@pytest.mark.parametrize("light_background", [True, False])
def test_a_saved_line_reads_back_as_its_columns(tmp_path, light_background):
    x, _ = make_digit_lines(1, "test", seed=7)[0]
    ink = _ink_box(render_line(x))
    big = np.kron(ink, np.ones((3, 3)))  # a 3x larger picture, as a scan would be
    path = tmp_path / "line.png"
    mpimg.imsave(path, 1.0 - big if light_background else big, cmap="gray", vmin=0, vmax=1)
    read = image_columns(path, height=ink.shape[0], pad=0)
    assert read.shape == ink.T.shape  # the same width after scaling to the same height
    assert np.corrcoef(read.T.ravel(), ink.ravel())[0, 1] > 0.9
    padded = image_columns(path, height=24, ink_height=ink.shape[0], pad=2)
    assert padded.shape == (ink.shape[1] + 4, 24)
    assert not padded[:2].any() and not padded[:, :4].any()  # pad columns, centring rows


def test_image_columns_refuses_blank_and_non_pictures(tmp_path):
    blank = tmp_path / "blank.png"
    mpimg.imsave(blank, np.full((20, 60), 0.9), cmap="gray", vmin=0, vmax=1)
    with pytest.raises(DataError, match="no writing"):
        image_columns(blank)
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(DataError, match="not a picture") as err:
        image_columns(text)
    assert "PNG" in err.value.hint
    with pytest.raises(DataError, match="does not exist"):
        image_columns(tmp_path / "absent.png")


# ----------------------------------------------------------------------------- strokes
def _segments_distance(points: np.ndarray, strokes: list[np.ndarray]) -> np.ndarray:
    """(n,) the distance of each point to the nearest segment (or lone point) of ``strokes``."""
    a = np.concatenate([s[:-1] if len(s) > 1 else s for s in strokes])
    b = np.concatenate([s[1:] if len(s) > 1 else s for s in strokes])
    ab = b - a
    t = np.einsum("psk,sk->ps", points[:, None] - a, ab) / np.maximum((ab**2).sum(1), 1e-12)
    nearest = a + np.clip(t, 0, 1)[..., None] * ab
    return np.linalg.norm(points[:, None] - nearest, axis=2).min(axis=1)


def test_stroke_lines_are_fixed_by_the_seed():
    a = make_stroke_lines(5, "train", seed=1)
    b = make_stroke_lines(5, "train", seed=1)
    c = make_stroke_lines(5, "train", seed=2)
    assert [t for _, t in a] == [t for _, t in b]
    assert all(np.array_equal(s, r) for (s, _), (r, _) in zip(a, b, strict=True))
    assert [t for _, t in a] != [t for _, t in c]


def test_sequences_decode_to_the_pen_positions():
    for seq, text, strokes in make_stroke_lines(8, "valid", seed=0, return_strokes=True):
        assert seq.dtype == np.float32 and seq.shape == (sum(map(len, strokes)), 3)
        rebuilt = strokes_to_points(seq)
        assert int(seq[:, 2].sum()) == len(rebuilt) == len(strokes)
        assert seq[-1, 2] == 1.0
        for got, want in zip(rebuilt, strokes, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)
        np.testing.assert_allclose(strokes_to_sequence(rebuilt), seq, atol=1e-6)
        assert text_split(text) == "valid"


def test_unslanted_points_lie_on_the_fonts_strokes():
    font = HersheyFonts()
    font.load_default_font("cursive")
    spacing = 0.05
    lines = make_stroke_lines(
        6, "train", seed=4, slant=0.0, jitter=0.0, scale=(1, 1), spacing=(spacing, spacing)
    )
    for seq, text in lines:
        # Hershey units: y down, cap line -12, base line 9; here cap heights, y up
        raw = [np.array(s, dtype=float) for s in font.strokes_for_text(text)]
        reference = [np.column_stack([s[:, 0], 9 - s[:, 1]]) / 21 for s in raw]
        ink = strokes_to_points(seq)
        points = np.concatenate(ink)
        assert _segments_distance(points, reference).max() < 1e-5
        # each written stroke starts and ends where a stroke of the font does
        font_ends = np.concatenate([s[[0, -1]] for s in reference])
        ends = np.concatenate([p[[0, -1]] for p in ink])
        assert np.linalg.norm(ends[:, None] - font_ends, axis=2).min(axis=1).max() < 1e-5
        # at most `spacing` between points along a stroke, and fewer strokes than the font's
        steps = np.concatenate([np.linalg.norm(np.diff(p, axis=0), axis=1) for p in ink])
        assert steps.max() <= spacing + 1e-5
        assert text.count(" ") + 1 <= len(ink) <= len(raw)


def test_dots_come_after_their_word_and_joined_letters_are_one_stroke():
    strokes = font_strokes("it is")
    dots = [i for i, s in enumerate(strokes) if np.ptp(s, axis=0).max() < 0.2]
    assert len(dots) == 2
    first_word = [s for s in strokes if s[:, 0].max() < 1.3]  # "it" ends before x = 1.3
    assert dots[0] == len(first_word) - 1  # the dot of "it" ends that word
    assert dots[1] == len(strokes) - 1
    font = HersheyFonts()
    font.load_default_font("cursive")
    assert len(font_strokes("minimum")) < len(list(font.strokes_for_text("minimum")))


def test_slant_shears_and_jitter_moves_points():
    kwargs = dict(scale=(1, 1), spacing=(0.05, 0.05))
    plain = make_stroke_lines(3, "test", seed=9, slant=0.0, jitter=0.0, **kwargs)
    slanted = make_stroke_lines(3, "test", seed=9, slant=0.3, jitter=0.0, **kwargs)
    for (a, text), (b, same) in zip(plain, slanted, strict=True):
        assert text == same and a.shape == b.shape
        pa, pb = np.concatenate(strokes_to_points(a)), np.concatenate(strokes_to_points(b))
        np.testing.assert_allclose(pa[:, 1], pb[:, 1], atol=1e-5)  # y kept
        shear = np.polyfit(pa[:, 1], pb[:, 0] - pa[:, 0], 1)[0]  # x moved in proportion to y
        assert 0.01 < abs(shear) <= np.tan(0.3) + 1e-4
        np.testing.assert_allclose(pb[:, 0], pa[:, 0] + shear * pa[:, 1], atol=1e-4)


def test_texts_are_zen_words_in_the_alphabet_and_splits_do_not_share_texts():
    words = zen_words()
    assert len(words) == 81 and {"beautiful", "ugly", "namespaces", "dutch"} <= set(words)
    assert all(w.isalpha() and w.islower() for w in words)
    texts = {}
    for split in SPLITS:
        texts[split] = {t for _, t in make_stroke_lines(60, split, seed=0)}
        for text in texts[split]:
            assert set(text) <= set(STROKE_ALPHABET)
            assert 1 <= len(text.split(" ")) <= 3 and set(text.split(" ")) <= set(words)
            assert text_split(text) == split
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]


# ----------------------------------------------------------------------------- pen files
def test_read_strokes_reads_npy_and_both_csv_forms(tmp_path):
    seq, _ = make_stroke_lines(1, "train", seed=0)[0]
    np.save(tmp_path / "line.npy", seq)
    np.testing.assert_array_equal(read_strokes(tmp_path / "line.npy"), seq)
    points = np.cumsum(seq[:, :2].astype(np.float64), axis=0) + [100.0, 50.0]
    rows = "\n".join(
        f"{x:.6f},{y:.6f},{int(p)}" for (x, y), p in zip(points, seq[:, 2], strict=True)
    )
    (tmp_path / "abs.csv").write_text("X,Y,pen_up\n" + rows + "\n")
    read = read_strokes(tmp_path / "abs.csv")
    assert read[0, :2].tolist() == [0.0, 0.0]  # the first point moved to the origin
    np.testing.assert_allclose(read[1:], seq[1:], atol=1e-5)
    offsets = "\n".join("\t".join(f"{v:.7f}" for v in row) for row in seq[:, [2, 0, 1]])
    (tmp_path / "rel.tsv").write_text("pen_up\tdx\tdy\n" + offsets)
    np.testing.assert_allclose(read_strokes(tmp_path / "rel.tsv"), seq, atol=1e-6)
    flipped = read_strokes(tmp_path / "rel.tsv", y_down=True)
    np.testing.assert_allclose(flipped[:, 1], -seq[:, 1], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("a.npy", np.zeros((5, 2)), "shape \\(5, 2\\)"),
        ("b.npy", np.zeros((0, 3)), "no points"),
        ("c.npy", np.array([[0, 0, 0], [1, np.nan, 1]]), "point 1 holds NaN"),
        ("d.csv", "x,z,pen_up\n1,2,0\n", "needs x, y, pen_up or dx, dy, pen_up"),
        ("e.csv", "dx,dy,pen_up\n1,2,0\n1,oops,1\n", "'oops' in column 'dy'"),
        ("f.csv", "dx,dy,pen_up\n1,2,0\n1,2,2\n", "pen_up must be 0 or 1; point 1 has 2"),
        ("g.csv", "", "is empty"),
        ("h.csv", "dx,dy,pen_up\n", "no points"),
    ],
)
def test_read_strokes_names_the_problem(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_strokes(path)
