"""The shared word vocabulary, the word corpora and the word-level language model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.cli import main
from rnnkit.data.word_corpora import tail_split, word_corpus
from rnnkit.data.words import WordVocab
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.language import LanguageModel, LanguageModelConfig
from rnnkit.tasks import get

TEXTS = ["The cat sat on the mat.", "The dog, the cat!", "A cat and a dog."]


def test_words_lower_case_min_count_and_max_size():
    v = WordVocab.train(TEXTS, lower=True, min_count=2)
    # ranked by count, ties alphabetically, after the four specials
    assert v.tokens == ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", ".", "a", "dog"]
    assert WordVocab.train(TEXTS, max_size=6).words == ["the", "cat"]
    cased = WordVocab.train(TEXTS, lower=False)
    assert "The" in cased.index and "the" in cased.index


def test_unknown_words_map_to_unk_and_are_counted():
    v = WordVocab.train(TEXTS)
    ids = v.encode("The COW sat on a zebra")
    assert ids == [v.index["the"], v.unk, v.index["sat"], v.index["on"], v.index["a"], v.unk]
    assert v.unknown("the cow and the zebra") == ["cow", "zebra"]
    assert v.coverage(ids) == (2, 6)


def test_round_trip_of_known_words_and_lines():
    v = WordVocab.train(TEXTS)
    ids = v.encode_lines(["the cat sat", "", "a dog ."])  # the blank line is skipped
    assert ids.dtype == np.int32 and int((ids == v.eos).sum()) == 2
    assert v.decode(ids) == "the cat sat\na dog ."
    assert v.split("The dog, the cat!") == ["the", "dog", ",", "the", "cat", "!"]


def test_vocabulary_saved_and_reloaded_identically():
    v = WordVocab.train(TEXTS, lower=False)
    w = WordVocab.from_dict(json.loads(v.to_json()))
    assert w.tokens == v.tokens and w.lower is False
    assert w.encode("The dog zebra") == v.encode("The dog zebra")


@pytest.mark.parametrize(
    "data", [{"words": []}, {"words": ["a", "a"]}, {"words": ["a", ""]}, ["a"], {"lower": 1}]
)
def test_a_changed_vocabulary_file_is_refused(data):
    with pytest.raises(DataError, match="distinct words"):
        WordVocab.from_dict(data, "vocab.json")


def test_nothing_frequent_enough_is_a_clear_error():
    with pytest.raises(DataError, match="min_count"):
        WordVocab.train(["one two"], min_count=5)


def test_tail_split_and_folder_corpus(tmp_path):
    parts = tail_split([str(i) for i in range(100)])
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [90, 5, 5]
    (tmp_path / "b.txt").write_text("\n".join(f"b line {i}" for i in range(60)), "utf-8")
    (tmp_path / "a.md").write_text("\n".join(f"a line {i}" for i in range(60)), "utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    split = word_corpus(str(tmp_path))
    assert split["train"][0] == "a line 0" and split["test"][-1] == "b line 59"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no text files"):
        word_corpus(str(tmp_path / "empty"))


def test_a_non_utf8_corpus_is_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9\n" * 100)
    with pytest.raises(DataError, match="not UTF-8"):
        word_corpus(str(bad))


# ----------------------------------------------------------------------------- the model


def test_tied_read_out_is_the_embedding():
    config = LanguageModelConfig(hidden=8, embed=8, layers=1, tie=True)
    model = LanguageModel(20, config)
    assert not hasattr(model, "head")
    h = torch.randn(2, 3, 8)
    assert torch.equal(model.eval().read_out(h), h @ model.embed.weight.T + model.bias)
    names = dict(model.named_parameters())
    assert "embed.weight" in names and not any(n.startswith("head") for n in names)
    with pytest.raises(ConfigError, match="embed == model.hidden"):
        LanguageModelConfig(hidden=8, embed=4, tie=True).validate_model()


def corpus(tmp_path):
    lines = [f"the {a} {b} the {c} ." for a in "abcde" for b in "fghij" for c in "klmno"] * 4
    path = tmp_path / "words.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_perplexity_is_exp_of_the_mean_loss_computed_independently(tmp_path):
    task = get("wordlm")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "wordlm",
                f"data.corpus={corpus(tmp_path)}",
                "model.hidden=16",
                "model.embed=16",
                "model.tie=true",
                "data.batch_size=4",
                "tbptt.k1=10",
                "train.steps=30",
                "train.eval_every=30",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    loaded = task.load(out)
    metrics = task.score(loaded)
    # independently: the whole validation stream, 4 streams of windows of 10, state carried
    from rnnkit.tasks.wordlm import encode_splits

    _, ids = encode_splits(loaded.config, loaded.setup.vocab)
    val = ids["valid"].long()
    n = (val.numel() - 1) // 4 // 10 * 10
    x = val[: 4 * ((val.numel() - 1) // 4)].view(4, -1)[:, :n]
    y = val[1 : 1 + 4 * ((val.numel() - 1) // 4)].view(4, -1)[:, :n]
    with torch.no_grad():
        logits, _ = loaded.model(x)  # one pass over the whole window = carried state
    nll = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert metrics["val_ppl"] == pytest.approx(math.exp(nll.item()), rel=1e-4)
    assert 0 <= metrics["test_unk_fraction"] < 1


def test_word_run_trains_samples_and_evaluates_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "wordlm", f"data.corpus={corpus(tmp_path)}", "model.hidden=16",
            "model.embed=8", "model.layers=1", "data.batch_size=4", "tbptt.k1=10",
            "train.steps=60", "train.eval_every=30", "train.lr=0.01", "--out", str(out),
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_ppl"] < 25  # from a vocabulary of 26: it learned the pattern
    capsys.readouterr()
    assert main(["sample", str(out), "--prime", "the zebra", "--length", "12"]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("the <unk>") and len(text.split()) + text.count("\n") >= 13
    assert main(["evaluate", str(out), "--json"]) == 0
    assert "test_ppl" in json.loads(capsys.readouterr().out)
    assert main(["sample", str(out), "--prime", "!!!?"]) == 0  # punctuation is words too
    assert main(["sample", str(out), "--prime", "   "]) == 2
    assert "no words" in capsys.readouterr().err


def test_pretrained_vectors_start_the_embedding_and_can_be_frozen(tmp_path, capsys):
    from rnnkit.config import build
    from rnnkit.data.vectors import format_vectors

    path = corpus(tmp_path)
    words = ["the", "a", "k", "zebra"]  # "zebra" is not in the corpus
    table = np.arange(32, dtype=np.float32).reshape(4, 8) / 10
    vectors = tmp_path / "vectors.txt"
    vectors.write_text(format_vectors(words, table), encoding="utf-8")
    task = get("wordlm")
    overrides = {
        "data.corpus": str(path),
        "model.hidden": 8,
        "model.embed": 8,
        "model.layers": 1,
        "model.vectors": str(vectors),
        "model.freeze_vectors": True,
        "data.batch_size": 4,
        "tbptt.k1": 10,
        "train.steps": 3,
        "train.eval_every": 3,
    }
    config = build(task.Config, overrides=overrides)
    setup = task.prepare(config)
    assert setup.coverage["covered"] == 3  # the, a, k
    model = task.build_model(config, setup)
    for w, row in zip(words[:3], table[:3], strict=True):
        assert torch.equal(model.embed.weight[setup.vocab.index[w]], torch.from_numpy(row))
    assert not model.embed.weight.requires_grad
    out = tmp_path / "run"
    task.train(config, out, progress=True)
    assert "vectors cover 3 of" in capsys.readouterr().out
    loaded = task.load(out)  # the weights come from the run, not from the vector file
    vectors.unlink()
    assert torch.equal(loaded.model.embed.weight[setup.vocab.index["the"]], torch.tensor(table[0]))
    vectors.write_text(format_vectors(words, table), encoding="utf-8")
    small = build(task.Config, overrides=overrides | {"model.embed": 4, "model.hidden": 4})
    with pytest.raises(DataError, match="dimension|expects"):
        task.build_model(small, task.prepare(small))


def test_the_python_docs_corpus_or_the_command_that_installs_it():
    from rnnkit.data.word_corpora import PYTHON_DOCS, word_corpus

    if not PYTHON_DOCS.is_dir():
        with pytest.raises(DataError, match="apt-get install python3.11-doc"):
            word_corpus("python-docs")
        pytest.skip("python3.11-doc is not installed: only its message was checked")
    split = word_corpus("python-docs")
    words = {k: sum(len(line.split()) for line in v) for k, v in split.items()}
    assert words["train"] > 500_000 and words["valid"] > 10_000 and words["test"] > 10_000
    assert any("def " in line for line in split["train"])  # reST with code in it
