"""The caption and video tasks end to end: tiny runs trained from the CLI, then used with
`rnnkit caption` / `rnnkit label`, and their bad input (one clear message, nothing lost)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data import images
from rnnkit.data import video as clips
from rnnkit.tasks.caption import Caption, caption_scores, make_split
from rnnkit.tasks.video import Video, accuracies


@pytest.fixture(scope="module")
def scenes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("caption") / "run"
    code = cli(["train", "caption", "--out", str(out), "--quiet", "train.steps=20",
                "train.eval_every=20", "data.n_train=200", "data.n_val=20", "data.n_test=20",
                "model.hidden=16", "model.embed=8", "model.channels=8"])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    code = cli(["train", "video", "--out", str(out), "--quiet", "train.steps=10",
                "train.eval_every=10", "data.n_train=64", "data.n_val=16", "data.n_test=16",
                "model.hidden=8", "model.channels=4", "model.features=8"])  # fmt: skip
    assert code == 0
    return out


def test_scores_by_hand():
    out = caption_scores(["a b c d", "a b"], ["a b c d", "a c"], "t")
    assert out["t_exact"] == 0.5
    assert out["t_bleu1"] == pytest.approx(100 * 5 / 6)  # 5 of 6 words right, no brevity loss


def test_trained_caption_run(scenes_run, tmp_path, capsys):
    task = Caption()
    loaded = task.load(scenes_run)
    metrics = json.loads((scenes_run / "metrics.json").read_text())
    assert {"test_exact", "test_bleu4", "novel_exact", "novel_bleu4"} <= set(metrics)
    # the same held-out images again, and scored the same
    x, refs = make_split(loaded.config.data, "test", 20)
    assert np.array_equal(x, make_split(loaded.config.data, "test", 20)[0])
    picture = tmp_path / "scene.png"
    images.save_image(picture, x[0])
    att = tmp_path / "att.png"
    capsys.readouterr()
    assert cli(["caption", str(scenes_run), str(picture), "--attention", str(att)]) == 0
    printed = capsys.readouterr().out.strip()
    # the PNG round trip is exact to 1/255, so the caption is the one of the array
    assert printed == task.caption(loaded, x[0])[0][0][0]
    assert att.read_bytes()[:4] == b"\x89PNG"
    alpha = task.attention(loaded, x[0], printed)
    assert alpha.shape == (len(printed.split()) + 1, 8, 8)
    assert torch.allclose(alpha.flatten(1).sum(1), torch.ones(len(alpha)), atol=1e-5)
    # n-best from the beam, best first
    hyps = task.caption(loaded, x[0], beam=3, n_best=3)[0]
    assert len(hyps) == 3 and hyps[0][1] >= hyps[1][1] >= hyps[2][1]


def test_caption_bad_input(scenes_run, video_run, tmp_path, capsys):
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    grey = tmp_path / "grey.png"
    images.save_image(grey, np.full((1, 32, 32), 0.5, dtype=np.float32))
    big = tmp_path / "big.png"
    images.save_image(big, np.random.default_rng(0).random((3, 64, 64)).astype(np.float32))
    wide = tmp_path / "wide.png"
    images.save_image(wide, np.random.default_rng(1).random((3, 32, 96)).astype(np.float32))
    capsys.readouterr()
    # a bad file gets its message; the good one after it is still captioned
    assert cli(["caption", str(scenes_run), str(not_image), str(big)]) == 2
    out, err = capsys.readouterr()
    assert f"cannot read {not_image} as an image" in err
    assert "resized to 32 x 32" in err and "rnnkit: note:" in err
    assert out.startswith(f"{big}: ")  # captioned (a 20-step model may say nothing)
    assert cli(["caption", str(scenes_run), str(grey)]) == 2
    assert "grey image; this model reads colour (3 channels)" in capsys.readouterr().err
    assert cli(["caption", str(scenes_run), str(wide)]) == 2
    assert "this model reads 32 x 32" in capsys.readouterr().err
    assert cli(["caption", str(video_run), str(big)]) == 2
    assert "does not apply to a 'video' run" in capsys.readouterr().err
    with pytest.raises(Exception, match=r"this model reads \(n, 3, 32, 32\)"):
        Caption().caption(Caption().load(scenes_run), np.zeros((1, 32, 32)))


def test_accuracies_by_hand():
    data = SimpleNamespace(
        labels=np.array([[1, 1, 1, 1]]), visible=np.array([[True, True, False, False]])
    )
    p = torch.zeros(1, 4, 3)
    p[0, [0, 1, 2, 3], [1, 0, 1, 2]] = 1  # right, wrong, right, wrong
    out = accuracies({"recurrent": p}, data, "t")
    assert out["t_recurrent_acc"] == 0.5
    assert out["t_recurrent_acc_visible"] == 0.5 and out["t_recurrent_acc_hidden"] == 0.5


def test_trained_video_run(video_run, tmp_path, capsys):
    task = Video()
    loaded = task.load(video_run)
    metrics = json.loads((video_run / "metrics.json").read_text())
    assert metrics["test_gain_hidden"] == pytest.approx(
        metrics["test_recurrent_acc_hidden"] - metrics["test_single_acc_hidden"]
    )
    test = clips.make_clips(2, "test", 2, 16, 32, "digit")
    path = clips.save_clip(tmp_path / "clip.npy", test.video[0])
    plot = tmp_path / "frames.png"
    capsys.readouterr()
    assert cli(["label", str(video_run), str(path), "--plot", str(plot)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["frame", "recurrent", "single"] and len(lines) == 17
    labels = task.label(loaded, test.video[0])
    assert [line.split()[1] for line in lines[1:]] == labels["recurrent"]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert cli(["label", str(video_run), str(tmp_path / "missing.gif")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_the_caption_page_takes_an_uploaded_image(scenes_run, tmp_path):
    """rnnkit serve on a caption run: an uploaded PNG gets the caption rnnkit.load gives for the
    same file; an upload over the limit or a missing file is a 4xx JSON error naming it; the page
    in headless Chromium captions a file chosen in its file input."""
    pytest.importorskip("flask")
    import io

    import rnnkit
    from rnnkit.serve import LIMITS, create_app

    model = rnnkit.load(scenes_run)
    x, _ = make_split(model.config.data, "test", 3)
    picture = tmp_path / "scene.png"
    images.save_image(picture, x[1])
    client = create_app(model).test_client()
    r = client.post("/api/caption", data={"file": (io.BytesIO(picture.read_bytes()), "s.png")})
    got = r.get_json()
    expected = model.caption(model.task.read(model.loaded, str(picture))[None], n_best=3)[0]
    assert r.status_code == 200 and got["caption"] == expected[0][0] and got["notes"] == []
    assert LIMITS["file_bytes"] == 5 * 2**20
    small = create_app(model)
    small.config["MAX_CONTENT_LENGTH"] = 1000  # the same check, without a 5 MB body
    big = io.BytesIO(b"\0" * 2000)
    r = small.test_client().post("/api/caption", data={"file": (big, "big.png")})
    assert r.status_code == 413 and r.get_json()["limit"] == 1000
    r = client.post("/api/caption", data={})
    assert r.status_code == 400 and r.get_json()["field"] == "file"
    r = client.post("/api/caption", data={"file": (io.BytesIO(b"not an image"), "x.png")})
    assert r.status_code == 422 and r.get_json()["error"]  # the reader's own message

    from helpers import on_the_page

    got, errors = on_the_page(
        model,
        "$('go').click();",
        {"shown": "$('out').dataset.text", "images": "$('out').querySelectorAll('img').length"},
        files=[picture],
    )
    assert errors == [] and got["shown"] == expected[0][0] and got["images"] == 1


def test_the_video_page_labels_each_frame_of_an_uploaded_clip(video_run, tmp_path):
    import json

    from helpers import on_the_page

    from rnnkit import load
    from rnnkit.data.video import make_clips, save_clip
    from rnnkit.serve import create_app

    model = load(video_run)
    clip = make_clips(1, "test", seed=3).video[0]  # (T, 1, 32, 32)
    path = save_clip(tmp_path / "clip.gif", clip)
    expected = model.label(model.loaded.task.read(model.loaded, str(path)))
    client = create_app(model).test_client()
    with open(path, "rb") as f:
        r = client.post("/api/label", data={"file": (f, "clip.gif")})
    assert r.status_code == 200
    assert r.get_json()["labels"] == expected and r.get_json()["frames"] == len(clip)
    assert client.post("/api/label").get_json()["field"] == "file"
    got, errors = on_the_page(model, "label()", {"labels": "$('out').dataset.text"}, files=[path])
    assert errors == [] and json.loads(got["labels"]) == expected


def test_exported_captioner_writes_the_greedy_caption(scenes_run, tmp_path, capsys):
    """ONNX Runtime runs the image encoder once and the decoder a step at a time, feeding back
    its state and its greedy word: the captions equal `caption` with beam 1, and each step's
    attention over the grid sums to 1."""
    ort = pytest.importorskip("onnxruntime")
    from helpers import onnx_greedy

    assert cli(["export", str(scenes_run), "--out", str(tmp_path / "c.onnx")]) == 0
    encoder = ort.InferenceSession(str(tmp_path / "c.encoder.onnx"))
    decoder = ort.InferenceSession(str(tmp_path / "c.decoder.onnx"))
    task = Caption()
    loaded = task.load(scenes_run)
    x, _ = make_split(loaded.config.data, "test", 5)

    def check(got, memory):  # attention over the grid's cells, summing to 1
        np.testing.assert_allclose(got["attention"].sum(1), 1.0, atol=1e-5)

    feed = {"image": x.astype(np.float32)}
    words = onnx_greedy(encoder, decoder, feed, loaded.config.decode.max_len, check)
    expected = [best[0][0] for best in task.caption(loaded, x, beam=1)]
    assert [loaded.setup.tok.decode(w) for w in words] == expected


def test_exported_labeller_streams_a_clip_frame_by_frame(video_run, tmp_path):
    """A live stream: ONNX Runtime fed one frame at a time, its state fed back, gives every
    frame the probabilities the model gives it from the whole clip, for both models."""
    ort = pytest.importorskip("onnxruntime")
    from rnnkit.tasks.video import make_split as video_split
    from rnnkit.tasks.video import predict

    assert cli(["export", str(video_run), "--out", str(tmp_path / "v.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "v.onnx"))
    loaded = Video().load(video_run)
    video = torch.as_tensor(video_split(loaded.config.data, "test", 3).video, dtype=torch.float32)
    expected = predict(loaded.model, video)
    h = np.zeros((1, 3, 8), dtype=np.float32)
    state = {"h0": h, "c0": h}
    for t in range(video.shape[1]):
        logits, single, h_n, c_n = session.run(
            None, {"frames": video[:, t : t + 1].numpy(), **state}
        )
        state = {"h0": h_n, "c0": c_n}
        probs = torch.from_numpy(logits[:, 0]).softmax(-1)
        torch.testing.assert_close(probs, expected["recurrent"][:, t], atol=1e-5, rtol=1e-4)
        probs = torch.from_numpy(single[:, 0]).softmax(-1)
        torch.testing.assert_close(probs, expected["single"][:, t], atol=1e-5, rtol=1e-4)
