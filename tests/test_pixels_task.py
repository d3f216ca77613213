"""The pixels task: the digits as levels, the closed-form independent baseline, and a trained
run used from the CLI (`rnnkit sample`), with its bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.data import handwriting as hw
from rnnkit.tasks.pixels import PixelData, Pixels, digit_levels, independent_nll


def test_levels_are_the_digits_own_values():
    d = PixelData()
    x = digit_levels(d, "test")
    pictures, _ = hw.digit_images()
    index = hw.digit_image_split(0)["test"]
    assert x.shape == (len(index), 8, 8) and x.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy((pictures[index] * 16).round().astype(np.int64)))
    assert int(x.max()) == 16 and int(x.min()) == 0
    b = digit_levels(PixelData(binarise=True), "test")
    assert torch.equal(b, (x >= 8).long())
    # the splits share no image
    assert not set(hw.digit_image_split(0)["train"]) & set(index)


def test_independent_baseline_by_hand():
    train = torch.tensor([[[0, 1]], [[0, 0]], [[1, 1]]])  # three 1 x 2 images, 2 levels
    test = torch.tensor([[[0, 1]]])
    # pixel 0 saw levels {0, 0, 1}: q(0) = (2+1)/(3+2); pixel 1 saw {1, 0, 1}: q(1) = 3/5
    expected = -(math.log(3 / 5) + math.log(3 / 5))
    assert independent_nll(train, test, 2).item() == pytest.approx(expected)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pixels") / "run"
    code = cli(["train", "pixels", "--out", str(out), "--quiet", "train.steps=30",
                "train.eval_every=15", "model.hidden=8", "model.layers=1"])  # fmt: skip
    assert code == 0
    return out


def test_trained_run_scores_and_samples(run, capsys):
    task = Pixels()
    loaded = task.load(run)
    metrics = task.score(loaded)
    assert metrics["test_bpd"] == pytest.approx(metrics["test_nll"] / 64 / math.log(2))
    # the score is the model's own NLL, summed over pixels, on the test digits
    x = digit_levels(loaded.config.data, "test")
    logits = loaded.model(x)
    by_hand = torch.nn.functional.cross_entropy(logits, x, reduction="none").sum((1, 2)).mean()
    assert metrics["test_nll"] == pytest.approx(by_hand.item(), rel=1e-5)
    drawn = task.draw(loaded, 3, seed=1)
    assert drawn.shape == (3, 8, 8) and drawn.min() >= 0 and drawn.max() <= 16
    assert np.array_equal(drawn, task.draw(loaded, 3, seed=1))
    done = task.complete(loaded, x[:2], rows=4)
    assert np.array_equal(done[:, :4], x[:2, :4].numpy())
    png = run / "s.png"
    capsys.readouterr()
    assert cli(["sample", str(run), "--images", "4", "--complete", "2", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_refuses_options_of_other_tasks(run, capsys):
    assert cli(["sample", str(run), "--prime", "abc"]) == 2
    err = capsys.readouterr().err
    assert "--prime` does not apply to a 'pixels' run" in err and "--complete" in err
    assert cli(["sample", str(run), "--temperature", "0"]) == 2
    assert "temperature must be a positive number" in capsys.readouterr().err


def test_the_page_draws_and_completes_digits_as_the_library_does(run):
    import json

    from helpers import on_the_page

    from rnnkit import load
    from rnnkit.serve import LIMITS, create_app

    model, task = load(run), Pixels()
    client = create_app(model).test_client()
    r = client.post("/api/sample", json={"n": 3, "temperature": 1.0, "seed": 2})
    assert r.status_code == 200
    assert r.get_json()["images"] == task.draw(model.loaded, 3, 1.0, 2).tolist()
    d = client.post("/api/complete", json={"n": 2, "rows": 4, "seed": 1}).get_json()
    given = digit_levels(model.config.data, "test")[:2]
    assert d["given"] == given.tolist() and d["levels"] == 17
    assert d["images"] == task.complete(model.loaded, given, 4, 1.0, 1).tolist()
    bad = client.post("/api/sample", json={"n": 1000})
    assert bad.status_code == 400
    assert bad.get_json()["field"] == "n" and bad.get_json()["limit"] == LIMITS["images"]
    assert client.post("/api/complete", json={"rows": 9}).get_json()["field"] == "rows"
    got, errors = on_the_page(
        model,
        "$('n').value = 2; $('seed').value = 5; pixels('sample')",
        {"images": "$('out').dataset.text", "cells": "document.querySelectorAll('td').length"},
    )
    assert errors == []
    assert json.loads(got["images"]) == task.draw(model.loaded, 2, 1.0, 5).tolist()
    assert got["cells"] == 2 * 64  # two 8 x 8 grids


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm", "lstm"])
def test_exported_image_model_gives_every_pixels_distribution(tmp_path, kind):
    """ONNX Runtime gives every pixel of held-out digits the model's logits (the recurrent
    kinds' loops unrolled over the 8 x 8 image), and a raster-order draw through it (one run
    per pixel, as `PixelRNN.sample`) keeps the given rows and stays in the levels."""
    ort = pytest.importorskip("onnxruntime")
    from helpers import train_run

    run = train_run("pixels", tmp_path / kind, **{"model.kind": kind, "model.hidden": 8,
                    "model.layers": 1, "train.steps": 2, "train.eval_every": 2})  # fmt: skip
    assert cli(["export", str(run)]) == 0
    session = ort.InferenceSession(str(run / "model.onnx"))
    loaded = Pixels().load(run)
    test = digit_levels(loaded.config.data, "test")[:5]
    with torch.no_grad():
        expected = loaded.model(test)
    (got,) = session.run(None, {"image": test.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    x, rng = test.numpy().copy(), np.random.default_rng(0)
    for r in range(4, 8):
        for c in range(8):
            logits = session.run(None, {"image": x})[0][:, :, r, c]  # (n, K)
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            x[:, r, c] = [rng.choice(len(q), p=q) for q in p]
    assert (x[:, :4] == test.numpy()[:, :4]).all()
    assert x.min() >= 0 and x.max() < loaded.model.levels
