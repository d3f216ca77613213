"""The command line as a user meets it: train then sample in a temporary directory, and one clear
message (exit status 2, no traceback) for each bad input."""

import json
import subprocess
import sys

import pytest

from rnnkit.cli import main

SENTENCE = "the quick brown fox jumps over the lazy dog. "
TINY = [
    "model.hidden=32",
    "model.layers=1",
    "model.embed=8",
    "tbptt.k1=16",
    "data.batch_size=4",
    "train.steps=30",
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "data.val_fraction=0.1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    f = tmp_path_factory.mktemp("cli") / "fox.txt"
    f.write_text(SENTENCE * 30, encoding="utf-8")
    return f


@pytest.fixture(scope="module")
def run(corpus):
    out = corpus.parent / "run"
    assert (
        main(["train", "charlm", "--quiet", "--out", str(out), f"data.path={corpus}", *TINY]) == 0
    )
    return out


def test_train_then_sample_and_evaluate(run, capsys):
    capsys.readouterr()
    assert main(["sample", str(run), "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first.rstrip("\n")) == 44
    assert main(["sample", str(run), "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first
    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    assert metrics["val_bpc"] == pytest.approx(saved["val_bpc"], rel=1e-5)


def test_python_dash_m_entry_point(run):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit", "sample", str(run), "--length", "5", "--prime", "dog"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("dog")


def test_tasks_lists_charlm(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "charlm" in out and "tbptt.k1" in out and "train.lr" in out


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_inputs(tmp_path, corpus, run, capsys):
    out = str(tmp_path / "r")
    _fails(
        capsys,
        ["train", "charlm", "--out", out, f"data.path={tmp_path}/missing.txt"],
        "data file not found",
        "hint:",
    )
    (tmp_path / "empty.txt").write_text("")
    _fails(capsys, ["train", "charlm", "--out", out, f"data.path={tmp_path}/empty.txt"], "empty")
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)))
    _fails(capsys, ["train", "charlm", "--out", out, f"data.path={tmp_path}/bin.dat"], "binary")
    (tmp_path / "latin.txt").write_bytes("déjà vu".encode("latin-1") * 100)
    _fails(
        capsys, ["train", "charlm", "--out", out, f"data.path={tmp_path}/latin.txt"], "not UTF-8"
    )
    _fails(
        capsys,
        ["train", "charlm", "--out", out, f"data.path={corpus}", "tbptt.k1=5000"],
        "too small",
        "lower data.batch_size or tbptt.k1",
    )
    _fails(
        capsys,
        ["train", "charlm", "--out", out, "model.hiden=3"],
        "unknown config key 'model.hiden'",
        "valid keys:",
    )
    _fails(
        capsys, ["train", "charlm", "--out", out, "train.steps=many"], "'train.steps' expects int"
    )
    _fails(capsys, ["train", "nosuchtask"], "unknown task", "charlm")
    _fails(
        capsys,
        ["sample", str(run), "--prime", "THE"],
        "outside the model's vocabulary",
        "'T', 'H', 'E'",
    )
    _fails(capsys, ["sample", str(tmp_path / "nope")], "run directory not found")
    _fails(capsys, ["sample", str(tmp_path)], "no run.json")
    _fails(capsys, ["sample", str(run), "--temperature", "-1"], "temperature must be >= 0")
    assert not (tmp_path / "r").exists()


def test_inspect_gradients_and_report(run, capsys):
    import json

    assert main(["inspect", "gradients", str(run)]) == 0
    stats = json.loads((run / "inspect" / "gradients.json").read_text())
    assert (run / "inspect" / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    assert stats  # the numbers themselves are checked in tests/test_viz.py
    assert main(["report", str(run), "--out", str(run / "r.html")]) == 0
    html = (run / "r.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    capsys.readouterr()
    _fails(capsys, ["report", str(run.parent / "missing")], "run directory not found")
