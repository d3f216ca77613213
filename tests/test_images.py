"""Captioned pictures: scenes whose captions follow the grammar and say what the picture shows,
held-out colour-shape pairs kept out of training, digit strips made of their split's images,
and the image reader's round trips and refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnkit.data import images
from rnnkit.data.handwriting import _resize, digit_image_split, digit_images
from rnnkit.data.images import (
    COLOURS,
    DIGIT_WORDS,
    HELD_OUT,
    SHAPES,
    SIZES,
    ImageAdjusted,
    Shape,
    caption,
    digit_glyphs,
    make_scenes,
    make_strips,
    parse_caption,
    read_image,
    save_image,
    shape_pixels,
)
from rnnkit.errors import ConfigError, DataError

OBJECT = rf"a ({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})"
GRAMMAR = re.compile(rf"{OBJECT}(?: (?:left of|above|below) {OBJECT})*")


@pytest.fixture(scope="module")
def train_scenes():
    return make_scenes(2000, "train", seed=0, return_objects=True)


# ----------------------------------------------------------------------------- scenes
def test_scenes_are_fixed_by_the_seed():
    a, ca = make_scenes(20, "train", seed=1)
    b, cb = make_scenes(20, "train", seed=1)
    c, cc = make_scenes(20, "train", seed=2)
    v, cv = make_scenes(20, "valid", seed=1)
    assert a.shape == (20, 3, 32, 32) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.array_equal(a, b) and ca == cb
    assert not np.array_equal(a, c) and ca != cc
    assert not np.array_equal(a, v) and ca != cv
    head, ch = make_scenes(5, "train", seed=1)  # the first k of n are the k scenes
    assert np.array_equal(head, a[:5]) and ch == ca[:5]


def test_held_out_pairs_never_train_and_every_novel_scene_has_one(train_scenes):
    seen = set()
    for split, scenes in (
        ("train", train_scenes),
        ("valid", make_scenes(500, "valid", 0, return_objects=True)),
        ("test", make_scenes(500, "test", 0, return_objects=True)),
    ):
        _, captions, objects = scenes
        for text, shapes in zip(captions, objects, strict=True):
            pairs = {(colour, kind) for _, colour, kind in parse_caption(text)[0]}
            assert pairs == {(o.colour, o.kind) for o in shapes}
            assert not pairs & HELD_OUT, (split, text)
            seen |= pairs if split == "train" else set()
    assert len(seen) == len(COLOURS) * len(SHAPES) - len(HELD_OUT)
    assert {c for c, _ in seen} == set(COLOURS) and {k for _, k in seen} == set(SHAPES)
    _, captions, objects = make_scenes(500, "novel", 0, return_objects=True)
    held = set()
    for text, shapes in zip(captions, objects, strict=True):
        pairs = {(colour, kind) for _, colour, kind in parse_caption(text)[0]}
        assert pairs == {(o.colour, o.kind) for o in shapes}
        assert pairs & HELD_OUT, text
        held |= pairs & HELD_OUT
    assert held == HELD_OUT
    counts = np.bincount([len(s) for s in train_scenes[2]], minlength=5)
    assert counts[0] == 0 and counts[1:].min() > 400  # 1-4 shapes, about evenly


def test_captions_follow_the_grammar_and_the_centres(train_scenes):
    _, captions, objects = train_scenes
    for text, shapes in zip(captions, objects, strict=True):
        assert GRAMMAR.fullmatch(text), text
        assert text == caption(shapes[::-1])  # the caption is a function of the shapes
        named, relations = parse_caption(text)
        assert named == [(o.size, o.colour, o.kind) for o in shapes]
        for a, b, relation in zip(shapes[:-1], shapes[1:], relations, strict=True):
            dx, dy = b.cx - a.cx, b.cy - a.cy
            assert dx >= 3, text  # left to right, plainly
            assert abs(dx - abs(dy)) >= 3, text  # no close call between the relations
            expected = "left of" if dx > abs(dy) else "above" if dy > 0 else "below"
            assert relation == expected, text
    assert {r for t in captions for r in parse_caption(t)[1]} == {"left of", "above", "below"}


def _box(o: Shape, canvas: int = 32) -> tuple[int, int, int]:
    s = shape_pixels(o.size, canvas)
    left, top = o.cx - s / 2, o.cy - s / 2
    assert left == int(left) and top == int(top)
    return int(top), int(left), s


def _nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    return names[int(np.argmin([np.abs(rgb - COLOURS[c]).max() for c in names]))]


def test_pictures_show_what_the_captions_say(train_scenes):
    pictures, _, objects = train_scenes
    widths = {"small": 7, "large": 12}
    assert {size: shape_pixels(size) for size in SIZES} == widths
    for picture, shapes in zip(pictures[:500], objects[:500], strict=True):
        ink = picture.max(axis=0) > 0
        covered = np.zeros_like(ink)
        for o in shapes:
            top, left, s = _box(o)
            assert min(top, left) >= 0 and max(top, left) + s <= 32
            box = picture[:, top : top + s, left : left + s]
            mask = ink[top : top + s, left : left + s]
            assert not covered[top : top + s, left : left + s].any()  # boxes never overlap
            covered[top : top + s, left : left + s] = True
            centre = picture[:, int(o.cy), int(o.cx)]
            assert _nearest_colour(centre) == o.colour
            assert np.abs(centre - COLOURS[o.colour]).max() <= 0.06 + 1e-6
            colours = box[:, mask]  # one colour over the whole shape
            assert np.ptp(colours, axis=1).max() == 0.0
            rows = mask.sum(axis=1)
            assert rows.max() == s and rows.min() > 0 and mask.any(axis=0).all()  # fills its box
            if o.kind == "square":
                assert mask.all()
            elif o.kind == "circle":
                assert rows[0] == rows[-1] and s // 3 <= rows[0] < s and not mask[0, 0]
            elif o.kind == "triangle":  # apex up, base down, widening
                assert rows[0] <= 2 and rows[-1] == s and (np.diff(rows) >= 0).all()
            else:  # diamond
                assert rows[0] == rows[-1] <= 2 and rows[s // 2] == s
        assert not (ink & ~covered).any()  # nothing drawn outside the shapes


def test_parse_caption_names_the_first_wrong_word():
    assert parse_caption("a small red circle left of a large blue square") == (
        [("small", "red", "circle"), ("large", "blue", "square")],
        ["left of"],
    )
    for bad, word in (
        ("a small red", "the end"),
        ("a tiny red circle", "'tiny'"),
        ("a small red circle right of a small blue square", "'right'"),
        ("a small red circle left a small blue square", "'left'"),
        ("", "the end"),
    ):
        with pytest.raises(DataError, match=re.escape(word)):
            parse_caption(bad)


def test_scene_settings_are_checked():
    for kwargs in (
        dict(split="training"),
        dict(size=16),
        dict(min_shapes=3, max_shapes=2),
        dict(max_shapes=9),
        dict(jitter=0.5),
    ):
        args = dict(n=1, split="train", seed=0) | kwargs
        with pytest.raises(ConfigError):
            make_scenes(**args)
    pictures, captions = make_scenes(50, "train", 0, size=48, max_shapes=5, min_shapes=5)
    assert pictures.shape == (50, 3, 48, 48)
    assert all(len(parse_caption(t)[0]) == 5 for t in captions)


# ----------------------------------------------------------------------------- strips
def test_strips_are_fixed_by_the_seed():
    a, ca = make_strips(10, "train", seed=0)
    b, cb = make_strips(10, "train", seed=0)
    c, cc = make_strips(10, "train", seed=1)
    assert a.shape == (10, 1, 16, 80) and a.dtype == np.float32
    assert np.array_equal(a, b) and ca == cb
    assert not np.array_equal(a, c) and ca != cc


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_strips_spell_their_split_s_digits(split):
    pictures, captions, sources = make_strips(
        200, split, seed=3, min_digits=1, max_digits=6, height=12, split_seed=2,
        return_sources=True,
    )  # fmt: skip
    assert pictures.shape == (200, 1, 12, 72)
    pool = set(digit_image_split(2)[split].tolist())
    glyphs = digit_glyphs(12)
    _, digits = digit_images()
    lengths = set()
    for picture, text, src in zip(pictures, captions, sources, strict=True):
        assert set(src.images.tolist()) <= pool
        assert text.split() == [DIGIT_WORDS[d] for d in digits[src.images]]
        lengths.add(len(src.images))
        canvas = np.zeros((12, 72), dtype=np.float32)
        for index, left in zip(src.images, src.left, strict=True):
            box = canvas[:, left : left + 12]
            np.maximum(box, glyphs[index], out=box)
        assert np.array_equal(picture[0], canvas)  # exactly these images, in these places
        assert src.left[0] <= 2 and (np.diff(src.left) - 12 >= 0).all()
        assert (np.diff(src.left) - 12 <= 3).all() and src.left[-1] + 12 <= 72
    assert lengths == set(range(1, 7))


def test_digit_glyphs_are_the_images_scaled():
    images, _ = digit_images()
    glyphs = digit_glyphs(16)
    assert glyphs.shape == (1797, 16, 16) and not glyphs.flags.writeable
    for i in (0, 100, 1796):
        assert np.array_equal(glyphs[i], _resize(images[i], 16))


def test_strip_settings_are_checked():
    with pytest.raises(ConfigError, match="test split"):
        make_strips(1, "novel", 0)
    with pytest.raises(ConfigError):
        make_strips(1, "train", 0, min_digits=3, max_digits=2)
    with pytest.raises(ConfigError):
        make_strips(1, "train", 0, height=4)


# ----------------------------------------------------------------------------- files
def test_read_image_round_trips_save_image(tmp_path):
    pictures, _ = make_scenes(2, "train", 0)
    path = save_image(tmp_path / "scene.png", pictures[0])
    back = read_image(path, (32, 32), 3)
    assert back.shape == (3, 32, 32) and back.dtype == np.float32
    assert np.abs(back - pictures[0]).max() <= 0.5 / 255 + 1e-6
    strips, _ = make_strips(1, "test", 0)
    back = read_image(save_image(tmp_path / "strip.png", strips[0]), (16, 80), 1)
    assert np.abs(back - strips[0]).max() <= 0.5 / 255 + 1e-6
    np.save(tmp_path / "scene.npy", pictures[1])
    assert np.array_equal(read_image(tmp_path / "scene.npy", (32, 32), 3), pictures[1])
    np.save(tmp_path / "hwc.npy", (pictures[1].transpose(1, 2, 0) * 255).round().astype(np.uint8))
    assert (
        np.abs(read_image(tmp_path / "hwc.npy", (32, 32), 3) - pictures[1]).max()
        <= 0.5 / 255 + 1e-6
    )


def test_read_image_refuses_what_is_not_a_picture(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    with pytest.raises(DataError, match="cannot read .*notes.png as an image"):
        read_image(text, (32, 32), 3)
    with pytest.raises(DataError, match="cannot read .* as an image: there is no such file"):
        read_image(tmp_path / "absent.png", (32, 32), 3)
    with pytest.raises(DataError, match="it is a directory"):
        read_image(tmp_path, (32, 32), 3)
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(DataError, match=r"an array of shape \(5,\)"):
        read_image(tmp_path / "flat.npy", (32, 32), 3)
    np.save(tmp_path / "big.npy", np.full((32, 32), 7.0))
    with pytest.raises(DataError, match="values from 7 to 7"):
        read_image(tmp_path / "big.npy", (32, 32), 1)
    with pytest.raises(DataError):
        save_image(tmp_path / "bad.png", np.zeros((2, 4, 4)))


def test_a_grey_picture_is_refused_by_a_colour_model(tmp_path):
    grey = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    path = save_image(tmp_path / "grey.png", grey)
    with pytest.raises(DataError, match="grey.png is a grey image; this model reads colour") as err:
        read_image(path, (32, 32), 3)
    assert err.value.hint
    rgb = save_image(tmp_path / "rgb-grey.png", np.repeat(grey, 3, axis=0))  # saved as RGB
    with pytest.raises(DataError, match="red, green and blue are equal"):
        read_image(rgb, (32, 32), 3)
    back = read_image(rgb, (32, 32), 1)  # but fine for a grey model, nothing to say
    assert np.abs(back - grey).max() <= 0.5 / 255 + 1e-6


def test_a_colour_picture_is_made_grey_for_a_grey_model(tmp_path):
    pictures, _ = make_scenes(1, "train", 0)
    path = save_image(tmp_path / "scene.png", pictures[0])
    with pytest.warns(ImageAdjusted, match="scene.png is a colour image; made grey"):
        back = read_image(path, (32, 32), 1)
    luma = np.tensordot([0.299, 0.587, 0.114], pictures[0], axes=1)
    assert back.shape == (1, 32, 32) and np.abs(back[0] - luma).max() < 1 / 255


def test_another_size_is_resized_or_refused_naming_the_size(tmp_path):
    pictures, _ = make_scenes(1, "train", 0, size=64, min_shapes=3)
    path = save_image(tmp_path / "big.png", pictures[0])
    with pytest.warns(ImageAdjusted, match="is 64 x 64 pixels; resized to 32 x 32"):
        back = read_image(path, (32, 32), 3)
    assert back.shape == (3, 32, 32) and back.max() > 0.5
    wide = save_image(tmp_path / "wide.png", pictures[0][:, :20])
    with pytest.raises(DataError, match="wide.png is 64 x 20 pixels .* reads 32 x 32") as err:
        read_image(wide, (32, 32), 3)
    assert "32 x 32" in err.value.hint
    near = save_image(tmp_path / "near.png", np.full((1, 16, 88), 0.5))  # 5.5 : 1 against 5 : 1
    with pytest.warns(ImageAdjusted, match="resized to 80 x 16"):
        assert read_image(near, (16, 80), 1).shape == (1, 16, 80)


def test_distorted_strips_keep_their_captions_and_seeds():
    bent, caps, sources = images.make_strips(20, "train", 3, distort=1.0, return_sources=True)
    again, caps2 = images.make_strips(20, "train", 3, distort=1.0)
    assert caps == caps2 and np.array_equal(bent, again)
    _, digits = digit_images()
    for text, src in zip(caps, sources, strict=True):
        assert text == " ".join(DIGIT_WORDS[d] for d in digits[src.images])
    # about half the digits are drawn as written, the others distorted
    glyphs = digit_glyphs(16)
    plain = []
    for i, src in enumerate(sources):
        for index, left in zip(src.images, src.left, strict=True):
            plain.append(np.array_equal(bent[i, 0, :, left : left + 16], glyphs[index]))
    assert 0.25 < np.mean(plain) < 0.75
    # strength 0 is the identity map, through the interpolation
    glyph = images.digit_glyphs(16)[5]
    same = images.random_affine(glyph, np.random.default_rng(0), 0.0)
    assert np.allclose(same, glyph, atol=1e-6)
