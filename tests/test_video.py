"""Moving-digit clips: fixed by the seed, made of their split's images, the digit really hidden
on the frames marked invisible and shown on the others, and direction labels that follow the
digit's motion."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data.handwriting import digit_image_split, digit_images
from rnnkit.data.images import ImageAdjusted, digit_glyphs, save_image
from rnnkit.data.video import (
    DIGIT_CLASSES,
    DIRECTIONS,
    OCCLUDER,
    VISIBLE_SHARE,
    classes,
    make_clips,
    read_clip,
    save_clip,
)
from rnnkit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def clips():
    return make_clips(300, "train", seed=0)


@pytest.fixture(scope="module")
def moving():
    return make_clips(300, "train", seed=0, label="direction")


def test_clips_are_fixed_by_the_seed(clips):
    a = make_clips(300, "train", seed=0)
    b = make_clips(300, "train", seed=1)
    head = make_clips(7, "train", seed=0)
    assert clips.video.shape == (300, 16, 1, 32, 32) and clips.video.dtype == np.float32
    assert clips.labels.shape == clips.visible.shape == (300, 16)
    assert clips.labels.dtype == np.int64 and clips.visible.dtype == bool
    assert clips.video.min() >= 0.0 and clips.video.max() <= 1.0
    assert np.array_equal(a.video, clips.video) and np.array_equal(a.labels, clips.labels)
    assert np.array_equal(a.visible, clips.visible)
    assert not np.array_equal(b.video, clips.video)
    assert np.array_equal(head.video, clips.video[:7]) and len(head) == 7


def test_splits_hold_disjoint_images(clips):
    seen = {}
    for split in ("train", "valid", "test"):
        made = clips if split == "train" else make_clips(100, split, seed=0)
        pool = set(digit_image_split(0)[split].tolist())
        assert set(made.images.tolist()) <= pool
        seen[split] = set(made.images.tolist())
    assert not seen["train"] & seen["test"] and not seen["valid"] & seen["test"]
    other = make_clips(50, "test", seed=0, split_seed=3)
    assert set(other.images.tolist()) <= set(digit_image_split(3)["test"].tolist())


def test_digit_labels_are_the_digit_on_every_frame(clips):
    _, digits = digit_images()
    assert clips.classes == DIGIT_CLASSES == classes("digit")
    assert np.array_equal(clips.digits, digits[clips.images])
    assert (clips.labels == clips.digits[:, None]).all()
    assert set(clips.digits.tolist()) == set(range(10))


def _expected_frame(clips, i: int, t: int, digit: bool = True) -> np.ndarray:
    """The frame drawn anew from the clip's record: the glyph at its place, then the block."""
    size, d = clips.video.shape[-1], clips.digit_size
    big = np.zeros((size + 2 * d, size + 2 * d), dtype=np.float32)  # room for the parts off it
    if digit:
        row, col = clips.position[i, t] + d
        big[row : row + d, col : col + d] = digit_glyphs(d)[clips.images[i]]
    frame = big[d : d + size, d : d + size].copy()
    if clips.occluded[i, t]:
        top, left, bottom, right = clips.occluder[i]
        frame[top:bottom, left:right] = OCCLUDER
    return frame


def test_invisible_frames_hide_the_digit_and_visible_ones_show_it(clips):
    size, d = 32, clips.digit_size
    glyphs = digit_glyphs(d)
    assert not clips.visible.all() and clips.visible.mean() > 0.5
    for i in range(len(clips)):
        ink = glyphs[clips.images[i]].sum()
        for t in range(16):
            frame = clips.video[i, t, 0]
            assert np.array_equal(frame, _expected_frame(clips, i, t))
            if clips.occluded[i, t]:  # the frame is what it would be without the digit
                assert not clips.visible[i, t] and clips.shown[i, t] == 0
                assert np.array_equal(frame, _expected_frame(clips, i, t, digit=False))
                continue
            # the ink on the canvas, from the digit's place alone
            row, col = clips.position[i, t]
            rows = slice(max(0, -row), max(0, min(d, size - row)))
            cols = slice(max(0, -col), max(0, min(d, size - col)))
            share = glyphs[clips.images[i]][rows, cols].sum() / ink
            assert clips.shown[i, t] == pytest.approx(share, abs=1e-5)
            assert clips.visible[i, t] == (share >= VISIBLE_SHARE)
            if not clips.visible[i, t]:  # coming in: less than half of it shows
                assert t < 16 // 4


def test_the_block_hides_a_middle_run_of_2_to_5_frames(clips):
    for i in range(len(clips)):
        run = np.flatnonzero(clips.occluded[i])
        assert 2 <= len(run) <= 5 and (np.diff(run) == 1).all()
        assert run[0] >= 4 and run[-1] <= 11
    assert {int(clips.occluded[i].sum()) for i in range(len(clips))} == {2, 3, 4, 5}
    came_in = ~clips.visible[:, 0]
    assert 0.05 < came_in.mean() < 0.5  # some digits start off the canvas


def test_the_digit_stays_on_the_canvas_once_in(moving):
    wall = 32 - moving.digit_size
    for i in range(len(moving)):
        inside = ((moving.position[i] >= 0) & (moving.position[i] <= wall)).all(axis=1)
        first = int(np.argmax(inside))
        assert inside[first:].all() and first <= 4


def test_direction_labels_follow_the_motion(moving, clips):
    assert moving.classes == DIRECTIONS == classes("direction")
    assert not moving.visible.any()  # one frame never shows motion
    assert np.array_equal(moving.video, clips.video)  # the same clips, other labels
    assert set(moving.labels.ravel().tolist()) == {0, 1, 2, 3}
    axis = {"left": (1, -1), "right": (1, 1), "up": (0, -1), "down": (0, 1)}
    flips = 0
    for i in range(len(moving)):
        step = np.diff(moving.position[i], axis=0)
        for t in range(1, 16):
            before, now = DIRECTIONS[moving.labels[i, t - 1]], DIRECTIONS[moving.labels[i, t]]
            assert axis[before][0] == axis[now][0]  # the main axis never changes
            if before == now:  # no bounce on the main axis: it moved that way
                a, sign = axis[now]
                assert np.sign(step[t - 1, a]) == sign
                assert abs(step[t - 1, a]) >= abs(step[t - 1, 1 - a])
            else:
                flips += 1
    assert flips > 50


def test_clip_settings_are_checked():
    for kwargs in (
        dict(split="novel"),
        dict(label="colour"),
        dict(split_seed=0, label="Digit"),
        dict(frames=4),
        dict(digit_size=30),
        dict(n=-1),
    ):
        with pytest.raises(ConfigError):
            make_clips(**(dict(n=1, split="train", seed=0) | kwargs))
    small = make_clips(3, "valid", seed=0, frames=8, size=24, digit_size=12)
    assert small.video.shape == (3, 8, 1, 24, 24)


# ----------------------------------------------------------------------------- files
def test_read_clip_round_trips_npy_gif_and_frame_directories(clips, tmp_path):
    clip = clips.video[0]
    back = read_clip(save_clip(tmp_path / "clip.npy", clip), (32, 32))
    assert back.dtype == np.float32 and np.array_equal(back, clip)
    back = read_clip(save_clip(tmp_path / "clip.gif", clip), (32, 32))
    assert back.shape == (16, 1, 32, 32) and np.abs(back - clip).max() <= 0.5 / 255 + 1e-6
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, frame in enumerate(clip):
        save_image(frames / f"{t:03d}.png", frame)
    (frames / "notes.txt").write_text("not a frame")
    assert np.abs(read_clip(frames, (32, 32)) - clip).max() <= 0.5 / 255 + 1e-6
    np.save(tmp_path / "thw.npy", (clip[:, 0] * 255).round().astype(np.uint8))
    assert np.abs(read_clip(tmp_path / "thw.npy", (32, 32)) - clip).max() <= 0.5 / 255 + 1e-6


def test_read_clip_fits_frames_and_says_so_once(clips, tmp_path):
    colour = np.stack([clips.video[1, :, 0] * w for w in (1.0, 0.5, 0.2)], axis=-1)  # (T, H, W, 3)
    np.save(tmp_path / "colour.npy", colour)
    with pytest.warns(ImageAdjusted, match="colour image; made grey") as said:
        back = read_clip(tmp_path / "colour.npy", (32, 32))
    assert len(said) == 1 and back.shape == (16, 1, 32, 32)
    big = np.repeat(np.repeat(clips.video[2], 2, axis=2), 2, axis=3)  # (T, 1, 64, 64)
    with pytest.warns(ImageAdjusted, match="64 x 64 pixels; resized to 32 x 32") as said:
        assert read_clip(save_clip(tmp_path / "big.npy", big), (32, 32)).shape == (16, 1, 32, 32)
    assert len(said) == 1


def test_read_clip_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(DataError, match="cannot read .*absent.gif as a clip: there is no such"):
        read_clip(tmp_path / "absent.gif", (32, 32))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no pictures"):
        read_clip(tmp_path / "empty", (32, 32))
    (tmp_path / "text.gif").write_text("not a clip")
    with pytest.raises(DataError, match="cannot read .*text.gif as a clip"):
        read_clip(tmp_path / "text.gif", (32, 32))
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    with pytest.raises(DataError, match=r"an array of shape \(4, 5\)"):
        read_clip(tmp_path / "flat.npy", (32, 32))
    np.save(tmp_path / "wide.npy", np.zeros((4, 32, 64)))
    with pytest.raises(DataError, match="64 x 32 pixels .* reads 32 x 32"):
        read_clip(tmp_path / "wide.npy", (32, 32))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    save_image(mixed / "0.png", np.zeros((1, 32, 32)))
    save_image(mixed / "1.png", np.zeros((1, 30, 30)))
    with pytest.raises(DataError, match="frame 0 is 32 x 32 pixels, frame 1 30 x 30"):
        read_clip(mixed, (32, 32))
