"""The run directory as a trust boundary: no write through a planted link, one writer per run,
the data a run names is the data it was trained on, and bad settings stop before any file is
made."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from rnnkit.cli import main

TRAIN = [
    "data.batch_size=4",
    "model.hidden=16",
    "model.layers=1",
    "model.embed=8",
    "tbptt.k1=16",
    "train.steps=4",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.device=cpu",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("boundary")
    corpus = root / "corpus.txt"
    corpus.write_text("a stitch in time saves nine. " * 400)
    run = root / "run"
    assert (
        main(["train", "charlm", "--quiet", "--out", str(run), f"data.path={corpus}", *TRAIN]) == 0
    )
    return run, corpus


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    return copy


def test_no_write_through_a_planted_link(run, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / "report.html").symlink_to(victim)
    assert main(["report", str(run)]) == 2
    assert "report.html is a symlink" in capsys.readouterr().err
    (run / "inspect").symlink_to(tmp_path, target_is_directory=True)
    assert main(["inspect", "gradients", str(run), "--batch", "2"]) == 2
    assert "inspect is a symlink" in capsys.readouterr().err
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    assert main(["resume", str(run), "--quiet"]) == 2
    assert "metrics.jsonl is a symlink" in capsys.readouterr().err
    assert victim.read_text() == "precious\n" and not list(tmp_path.glob("gradients.*"))


def test_a_second_process_on_a_run_is_refused(run, capsys):
    """A real second process holds the run's lock; resume here is refused by its pid."""
    holder = textwrap.dedent(
        f"""
        import sys, time
        from rnnkit.run import RunDir
        with RunDir({str(run)!r}).lock():
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        before = (run / "metrics.jsonl").read_bytes()
        assert main(["resume", str(run), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"process {proc.pid} is training it" in err
        assert (run / "metrics.jsonl").read_bytes() == before  # nothing written
    finally:
        proc.communicate("\n", timeout=30)
    assert main(["resume", str(run), "--quiet"]) == 0  # released: the next one goes


def test_the_run_reads_only_the_data_it_was_trained_on(run, trained, tmp_path, capsys):
    corpus = trained[1]
    record = json.loads((run / "inputs.json").read_text())["data.path"]
    assert record["path"] == str(corpus.resolve()) and record["size"] == corpus.stat().st_size
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["path"] == str(corpus.resolve())  # absolute: works from anywhere

    other = tmp_path / "secret.txt"
    other.write_text("the mice sit in the vast attic. " * 50)
    config["data"]["path"] = str(other)
    (run / "config.json").write_text(json.dumps(config))
    for command in (["evaluate", str(run)], ["resume", str(run), "--quiet"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"names data.path={other}" in err and "--allow-changed-data" in err
    assert main(["evaluate", str(run), "--allow-changed-data", "--json"]) == 0
    capsys.readouterr()

    config["data"]["path"] = str(corpus)
    (run / "config.json").write_text(json.dumps(config))
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    backup = corpus.read_bytes()
    try:
        corpus.write_bytes(backup.replace(b"nine", b"ten!"))
        assert main(["evaluate", str(changed)]) == 2
        assert "changed since training" in capsys.readouterr().err
    finally:
        corpus.write_bytes(backup)
    assert main(["evaluate", str(changed)]) == 0


@pytest.mark.parametrize(
    "setting, message",
    [
        ("train.lr=nan", "must be a finite number"),
        ("train.lr=inf", "must be a finite number"),
        ("model.dropout=-inf", "must be a finite number"),
    ],
)
def test_non_finite_settings_stop_before_anything_is_made(tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    assert main(["train", "charlm", "--out", str(out), setting]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_an_unusable_out_or_corpus_is_refused_before_reading(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["train", "charlm", "--out", str(a_file)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would hang
    assert main(["train", "charlm", "--out", str(tmp_path / "r"), f"data.path={fifo}"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert main(["train", "charlm", "--out", str(tmp_path / "r"), "data.path=/dev/zero"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_run_config_error_names_the_file(run, capsys):
    config = json.loads((run / "config.json").read_text())
    config["train"]["lr"] = "fast"
    (run / "config.json").write_text(json.dumps(config))
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "'train.lr' expects float" in err and "config.json" in err
    assert "command line" not in err
