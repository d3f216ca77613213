"""The character model learns, samples reproducibly, and rebuilds from its run directory."""

import math

import pytest
import torch

from rnnkit import tasks
from rnnkit.config import build
from rnnkit.errors import DataError, RunDirError
from rnnkit.run import RunDir
from rnnkit.tasks.charlm import CharLMConfig

charlm = tasks.get("charlm")

SENTENCE = "the quick brown fox jumps over the lazy dog. "


def tiny_config(data, cell="lstm", steps=60) -> CharLMConfig:
    return build(
        CharLMConfig,
        overrides={
            "data.path": str(data),
            "data.batch_size": 4,
            "data.val_fraction": 0.1,
            "model.cell": cell,
            "model.hidden": 64,
            "model.layers": 1,
            "model.embed": 16,
            "tbptt.k1": 32,
            "train.steps": steps,
            "train.lr": 0.01,
            "train.eval_every": 0,
            "train.checkpoint_every": 0,
            "train.device": "cpu",
        },
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charlm")
    data = tmp / "fox.txt"
    data.write_text(SENTENCE * 40, encoding="utf-8")
    metrics = charlm.train(tiny_config(data), tmp / "run", progress=False)
    return tmp / "run", metrics, data


def test_overfits_a_tiny_corpus(trained):
    run, metrics, _ = trained
    # uniform guessing over the 28 characters is log2(28) = 4.8 bits per character
    assert metrics["step"] == 60
    assert metrics["val_bpc"] < 0.1, metrics
    assert math.isclose(charlm.evaluate(run)["val_bpc"], metrics["val_bpc"], rel_tol=1e-5)


def test_greedy_sampling_continues_the_memorised_text(trained):
    run, _, _ = trained
    text = charlm.sample(run, prime="the quick", length=len(SENTENCE), temperature=0)
    assert text == (SENTENCE * 2)[: len("the quick") + len(SENTENCE)]


def test_sampling_is_reproducible_with_a_seed(trained):
    run, _, _ = trained
    kw = dict(prime="the ", length=80, temperature=1.5)
    a, b = charlm.sample(run, seed=7, **kw), charlm.sample(run, seed=7, **kw)
    c = charlm.sample(run, seed=8, **kw)
    assert a == b and a != c


def test_run_directory_contents(trained):
    run, _, _ = trained
    names = {p.name for p in run.iterdir()}
    assert {
        "run.json",
        "config.json",
        "model.safetensors",
        "vocab.json",
        "metrics.jsonl",
        "metrics.json",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert RunDir(run).read_json("config.json")["model"]["hidden"] == 64
    assert len(RunDir(run).read_json("vocab.json")["chars"]) == len(set(SENTENCE))


def test_priming_with_unknown_characters_names_them(trained):
    run, _, _ = trained
    with pytest.raises(DataError, match=r"'Q', '!'"):
        charlm.sample(run, prime="Quick!")


def test_state_carried_across_windows_equals_one_pass(trained):
    run, _, _ = trained
    loaded = charlm.load(run)
    model, vocab = loaded.model, loaded.setup.vocab
    ids = vocab.encode(SENTENCE * 2).unsqueeze(0)  # (1, t)
    whole, _ = model(ids)
    first, state = model(ids[:, :37])
    second, _ = model(ids[:, 37:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_other_cells_train(tmp_path, cell):
    data = tmp_path / "fox.txt"
    data.write_text(SENTENCE * 40, encoding="utf-8")
    m = charlm.train(tiny_config(data, cell=cell, steps=40), tmp_path / "run", progress=False)
    assert m["val_bpc"] < 0.5  # from 4.8 bits at the start


def test_corpus_too_small_for_one_batch(tmp_path):
    data = tmp_path / "small.txt"
    data.write_text(SENTENCE * 2, encoding="utf-8")
    with pytest.raises(DataError, match="training split is too small"):
        charlm.train(tiny_config(data), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing written for a run that cannot start


def test_run_directory_errors(trained, tmp_path):
    run, _, _ = trained
    with pytest.raises(RunDirError, match="not found"):
        charlm.load(tmp_path / "nope")
    with pytest.raises(RunDirError, match="no run.json"):
        charlm.load(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text('{"task": "copy"}')
    with pytest.raises(RunDirError, match="holds a 'copy' run, expected 'charlm'"):
        charlm.load(foreign)
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("run.json", "config.json", "vocab.json"):
        (partial / name).write_bytes((run / name).read_bytes())
    with pytest.raises(RunDirError, match="missing model.safetensors"):
        charlm.load(partial)
    (partial / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:100])
    with pytest.raises(RunDirError, match="could not be read"):
        charlm.load(partial)
    with pytest.raises(RunDirError, match="not empty"):
        charlm.train(tiny_config(trained[2]), run, progress=False)


def test_a_planted_pickle_is_refused_and_never_runs(trained, tmp_path):
    import pickle

    run, _, _ = trained
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("run.json", "config.json", "vocab.json"):
        (victim / name).write_bytes((run / name).read_bytes())
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (victim / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(RunDirError, match="could not be read"):
        charlm.load(victim)
    assert not marker.exists()


def test_weights_that_do_not_fit_the_config(trained, tmp_path):
    import json

    run, _, _ = trained
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("run.json", "vocab.json", "model.safetensors"):
        (edited / name).write_bytes((run / name).read_bytes())
    config = json.loads((run / "config.json").read_text())
    config["model"]["hidden"] = 65
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunDirError, match="does not fit the model described by config.json"):
        charlm.load(edited)
