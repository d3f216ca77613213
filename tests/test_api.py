"""rnnkit.load(RUN): the trained model in eval mode with the task's own calls, equal to what the
task and the command line give for the same run."""

import itertools
import json

import pytest
import torch
from helpers import train_run
from safetensors.torch import load_file

import rnnkit
from rnnkit import tasks
from rnnkit.cli import main
from rnnkit.errors import DataError, RnnkitError


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("api") / "fox.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    out = tmp_path_factory.mktemp("api") / "charlm"
    values = {"data.path": str(corpus), "model.hidden": 16, "model.layers": 1, "model.embed": 8}
    values |= {"tbptt.k1": 16, "data.batch_size": 4, "train.steps": 12, "train.eval_every": 4}
    return train_run("charlm", out, **values)


def test_generate_equals_the_task_and_the_module_is_the_best(charlm_run, capsys):
    lm = rnnkit.load(charlm_run)
    assert lm.calls == ("generate",) and "generate" in dir(lm) and "charlm" in repr(lm)
    assert isinstance(lm.module, torch.nn.Module) and not lm.module.training
    text = lm.generate("the ", length=30, temperature=0.8, seed=3)
    assert text == tasks.get("charlm").sample(charlm_run, "the ", 30, 0.8, 0, 3)
    assert main(["sample", str(charlm_run), "--prime", "the ", "--length", "30",
                            "--temperature", "0.8", "--seed", "3"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == text.strip()
    best = load_file(charlm_run / "model.safetensors")
    for key, value in lm.module.state_dict().items():
        assert torch.equal(value, best[key]), key
    last = rnnkit.load(charlm_run, weights="last")
    assert last.loaded.weights == "last"
    expected = load_file(charlm_run / "last.safetensors")
    assert all(torch.equal(v, expected[k]) for k, v in last.module.state_dict().items())


def test_wrong_calls_and_devices_say_what_there_is(charlm_run):
    lm = rnnkit.load(charlm_run)
    with pytest.raises(AttributeError, match="no call 'translate' \\(its calls: generate"):
        lm.translate("x")
    with pytest.raises(RnnkitError, match="is not a device"):
        rnnkit.load(charlm_run, device="toaster")
    with pytest.raises(RnnkitError, match="weights must be 'best' or 'last'"):
        rnnkit.load(charlm_run, weights="first")


def test_predict_of_a_memory_task_is_its_module(tmp_path):
    from rnnkit.data.algorithmic import copy as make_copy

    values = {"model.cell": "ntm", "model.hidden": 8, "model.locations": 8, "model.word": 4}
    values |= {"data.max_len": 4, "train.steps": 3, "eval.batches": 1, "eval.batch_size": 4}
    run = train_run("copy", tmp_path / "copy", **values)
    ntm = rnnkit.load(run)
    batch = make_copy(5, torch.Generator().manual_seed(0), length=4, bits=8)
    with torch.no_grad():
        expected = torch.sigmoid(ntm.module(batch.x)[0])
    torch.testing.assert_close(ntm.predict(batch.x), expected)
    torch.testing.assert_close(ntm.predict(batch.x[0]), expected[0])  # one sequence
    with pytest.raises(DataError, match="this copy model reads \\(batch, time, 9\\)"):
        ntm.predict(torch.zeros(2, 3, 7))


def test_translate_one_or_many(tmp_path):
    words = ["red", "blue", "green", "cat", "dog", "sun"]
    lines = [f"{a} {b}\t{b} {a}" for a, b in itertools.permutations(words, 2)]
    (tmp_path / "p.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    values = {"data.source": "tsv", "data.path": str(tmp_path / "p.tsv"), "data.n_val": 4}
    values |= {"data.n_test": 4, "data.src_tokenizer": "word", "data.tgt_tokenizer": "word"}
    values |= {"model.hidden": 16, "model.embed": 8, "train.steps": 20, "train.eval_every": 10}
    run = train_run("translate", tmp_path / "run", **values)
    model = rnnkit.load(run)
    task, loaded = tasks.get("translate"), tasks.load(run)
    many = model.translate(["red cat", "sun dog"])
    for text, got in zip(["red cat", "sun dog"], many, strict=True):
        alone = task.translate(loaded, text, attention=False)
        assert (got.text, got.confidence) == (alone.text, pytest.approx(alone.confidence))
    assert model.translate("red cat").text == many[0].text
    with pytest.raises(DataError, match="input 1 \\('sun unicorn'\\): the input has 1 piece"):
        model.translate(["red cat", "sun unicorn"])
    assert json.loads((run / "run.json").read_text())["task"] == "translate"


def test_a_memory_tasks_example_on_the_page_and_from_python(tmp_path):
    """rnnkit.load(RUN).example(length, seed): the task's held-out sequence for that seed, the
    model's predict on it, and an NTM's first heads' weightings (rows summing to 1); the page
    draws them."""
    from helpers import on_the_page

    from rnnkit.data.algorithmic import copy as make_copy
    from rnnkit.serve import create_app

    values = {"model.cell": "ntm", "model.hidden": 8, "model.locations": 8, "model.word": 4}
    values |= {"data.max_len": 4, "train.steps": 3, "eval.batches": 1, "eval.batch_size": 4}
    ntm = rnnkit.load(train_run("copy", tmp_path / "copy", **values))
    got = ntm.example(3, seed=5)
    batch = make_copy(1, torch.Generator().manual_seed(5), length=3, bits=8)
    assert torch.equal(torch.tensor(got["inputs"]), batch.x[0])
    expected = ntm.predict(batch.x)[0]
    torch.testing.assert_close(torch.tensor(got["outputs"]), expected)
    assert torch.tensor(got["targets"]).shape == expected.shape == (7, 8)
    assert got["mask"] == batch.mask[0].tolist()
    torch.testing.assert_close(torch.tensor(got["w_read"]).sum(1), torch.ones(7))
    client = create_app(ntm).test_client()
    assert client.post("/api/example", json={"length": 3, "seed": 5}).get_json() == got
    assert client.post("/api/example", json={"length": 5000}).get_json()["limit"] == 1000
    with pytest.raises(DataError, match="length must be in 1..1000 for copy, got 0"):
        ntm.example(0)
    seen, errors = on_the_page(
        ntm,
        "$('length').value = 3; $('seed').value = 5; example()",
        {"outputs": "$('out').dataset.text", "tables": "$('out').querySelectorAll('table').length"},
    )
    assert errors == []
    torch.testing.assert_close(torch.tensor(json.loads(seen["outputs"])), expected)
    assert seen["tables"] == 5  # inputs, targets, outputs, write and read weightings


def test_an_example_refuses_lengths_its_task_cannot_make(tmp_path):
    values = {"model.cell": "lstm", "model.hidden": 8, "train.steps": 1, "eval.batches": 1}
    values |= {"eval.batch_size": 2}
    recall = rnnkit.load(train_run("recall", tmp_path / "recall", **values))
    with pytest.raises(DataError, match="length must be in 2..1000 for recall, got 1"):
        recall.example(1)
    repeat = rnnkit.load(train_run("repeat_copy", tmp_path / "repeat", **values))
    with pytest.raises(DataError, match="steps, over the 5000 an example runs"):
        repeat.example(1000, seed=0)
    assert len(recall.example(2)["inputs"]) > 0
