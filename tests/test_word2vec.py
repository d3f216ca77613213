"""word2vec (gensim) as a task, the vector files and the analogy list: a planted analogy found
in a tiny synthetic corpus, vectors.txt read back exactly, the run's embedding equal to
gensim's vectors, one clear error per malformed vector file, and the CLI end to end."""

import json
import random

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.config import build
from rnnkit.data.analogies import RELATIONS, questions, score_analogies
from rnnkit.data.vectors import embedding_from_vectors, format_vectors, read_vectors
from rnnkit.data.words import WordVocab
from rnnkit.errors import DataError
from rnnkit.tasks import load
from rnnkit.tasks.word2vec import (
    Word2VecConfig,
    parse_analogy,
    read_corpus,
    train_gensim,
    weights_from,
)

PEOPLE = {
    "king": ("royal", "male", "adult"),
    "queen": ("royal", "female", "adult"),
    "prince": ("royal", "male", "young"),
    "princess": ("royal", "female", "young"),
    "man": ("common", "male", "adult"),
    "woman": ("common", "female", "adult"),
    "boy": ("common", "male", "young"),
    "girl": ("common", "female", "young"),
}
POOLS = {
    "royal": ["crown", "throne", "palace", "court", "rules"],
    "common": ["field", "plough", "village", "market", "works"],
    "male": ["he", "his", "him", "beard"],
    "female": ["she", "her", "hers", "dress"],
    "adult": ["old", "wise", "married", "strong"],
    "young": ["small", "plays", "school", "little"],
}


def toy_lines(n: int = 3000, seed: int = 0) -> list[str]:
    """Each line: a person and two words of each of its three attributes (royal or common,
    male or female, adult or young), two fillers, shuffled. king - man + woman = queen is
    planted: king and queen share the royal words, man and woman the common ones."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        who = rng.choice(sorted(PEOPLE))
        words = [who] + [rng.choice(POOLS[a]) for a in PEOPLE[who] for _ in range(2)]
        words += rng.sample(["the", "a", "and", "of", "to", "in"], 2)
        rng.shuffle(words)
        lines.append(" ".join(words))
    return lines


TINY = [
    "data.min_count=1",
    "model.vector_size=20",
    "model.window=8",
    "model.epochs=8",
    "model.sample=0",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    f = tmp_path_factory.mktemp("w2v") / "people.txt"
    f.write_text("\n".join(toy_lines()) + "\n", encoding="utf-8")
    return f


@pytest.fixture(scope="module")
def run(corpus):
    out = corpus.parent / "run"
    assert (
        main(["train", "word2vec", f"data.corpus={corpus}", *TINY, "--quiet", "--out", str(out)])
        == 0
    )
    return out


def test_the_planted_analogy_is_found(run, capsys):
    capsys.readouterr()
    argv = ["words", str(run), "--analogy", "king - man + woman", "--analogy", "girl-woman+man"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "king - man + woman:" and out[1].split()[1] == "queen"
    assert out[6] == "girl - woman + man:" and out[7].split()[1] == "boy"


def test_the_run_holds_gensims_vectors_deterministically(run, corpus):
    config = build(Word2VecConfig, overrides=dict(a.split("=") for a in TINY))
    config.data.corpus = str(corpus)
    setup = read_corpus(config)
    w2v = train_gensim(config, setup.sentences)  # a second training, in this process
    loaded = load(run)
    vocab, weight = loaded.setup.vocab, loaded.model.weight.detach()
    assert vocab.words == setup.vocab.words
    for word in vocab.words:  # row by row: the same seed gives the same vectors
        assert torch.equal(weight[vocab.index[word]], torch.tensor(w2v.wv[word]))
    assert torch.equal(weight, weights_from(w2v.wv, vocab))
    assert not weight[: vocab.first_plain].any()  # the specials' rows are zero
    words, vectors = read_vectors(run / "vectors.txt")  # exact to float32
    assert words == vocab.words
    assert np.array_equal(vectors, weight[vocab.first_plain :].numpy())


def test_words_evaluate_and_report_from_the_cli(run, tmp_path, capsys):
    capsys.readouterr()
    png = tmp_path / "map.png"
    argv = ["words", str(run), "--neighbours", "King", "--map", str(png), "--words"]
    assert main([*argv, "king", "queen", "man", "woman", "crown", "field"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "nearest to king:" and len(out) == 12 and "wrote" in out[-1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", str(run), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    final = json.loads((run / "metrics.json").read_text())
    assert scored["analogy_accuracy"] == final["analogy_accuracy"]
    assert final["vocab_words"] == 40 and final["corpus_lines"] == 2700
    assert final["analogy_asked"] + final["analogy_skipped"] == len(questions())
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    for heading in ("Nearest words", "Analogies", "Word map"):
        assert f"<h2>{heading}</h2>" in page
    assert 'class="note"' not in page


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--neighbours", "kingg", "xyz"], "'kingg' (close: king); 'xyz'"),
        (["--analogy", "king - - man"], "malformed analogy 'king - - man'"),
        (["--analogy", "king man + woman"], "malformed analogy"),
        (["--analogy", "- king"], "malformed analogy"),
        (["--words", "king", "queen"], "--words chooses the words of --map"),
    ],
)
def test_words_mistakes_are_one_clear_message(run, capsys, argv, needle):
    capsys.readouterr()
    assert main(["words", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_a_finished_run_is_not_trained_again(run, capsys):
    assert main(["resume", str(run), "--quiet"]) == 2
    assert "gensim's training cannot be resumed" in capsys.readouterr().err


def test_parse_analogy():
    assert parse_analogy("king - man + woman") == (["king", "woman"], ["man"])
    assert parse_analogy("-man+king+woman") == (["king", "woman"], ["man"])
    for bad in ("", "king", "king man", "king +", "+ - king", "- king - man"):
        with pytest.raises(DataError, match="malformed analogy"):
            parse_analogy(bad)


def test_the_analogy_list():
    asked = questions()
    assert len(asked) == 2168 and len(set(asked)) == len(asked)
    for _, a, b, c, d in asked:
        assert len({a, b, c, d}) == 4  # the answer is never one of the excluded words
    assert {"gender", "plural", "past tense"} <= set(RELATIONS)
    assert ("gender", "king", "queen", "man", "woman") in asked


def test_score_analogies_on_hand_made_vectors():
    from gensim.models import KeyedVectors

    kv = KeyedVectors(3)  # man + (queen - king) = woman exactly; boy unrelated
    kv.add_vectors(
        ["king", "queen", "man", "woman", "boy"],
        np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=np.float32),
    )
    items = [("g", "king", "queen", "man", "woman"), ("g", "king", "queen", "man", "girl")]
    result = score_analogies(kv, items, keep=1)
    assert (result["correct"], result["asked"], result["skipped"]) == (1, 1, 1)
    assert result["relations"]["g"]["examples"] == [("king", "queen", "man", "woman", "woman")]


# ----------------------------------------------------------------------------- vector files


def test_vectors_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((5, 7)) * 10.0 ** rng.integers(-6, 3, (5, 7))).astype(np.float32)
    words = ["a", "b", "Été", "c", "d"]
    path = tmp_path / "v.txt"
    path.write_text(format_vectors(words, vectors), encoding="utf-8")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "5 7"
    got_words, got = read_vectors(path)
    assert got_words == words and got.dtype == np.float32 and np.array_equal(got, vectors)
    glove = tmp_path / "glove.txt"  # the same lines without the header
    glove.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[1:]) + "\n")
    assert np.array_equal(read_vectors(glove)[1], vectors)


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "vector file is empty"),
        (b"\n  \n", "vector file is empty"),
        (b"2 3\na 1 2 3\nb 1 2\n", "line 3: expected a word and 3 values, found 2 values"),
        (b"a 1 2 3\nb 1 2 3\nc 1 2 3 4\n", "line 3: expected a word and 3 values, found 4"),
        (b"2 3\na 1 2 3\nb 1 x 3\n", "line 3: 'x' is not a number"),
        (b"a 1 2\nb 1 nan\n", "line 2: 'nan' is not a finite number"),
        (b"2 2\na 1 2\nb\xff 1 2\n", "line 3: not UTF-8 (byte 0xff"),
        (b"3 2\na 1 2\nb 1 2\n", "the header announces 3 vectors, the file holds 2"),
        (b"2 2\n", "holds no vectors"),
        (b"word\n", "line 1: a word without values"),
    ],
)
def test_read_vectors_errors_name_the_file_and_line(tmp_path, content, needle):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=None) as err:
        read_vectors(path)
    assert needle in str(err.value) and "bad.txt" in str(err.value)


def test_embedding_from_vectors_coverage(tmp_path):
    vocab = WordVocab(["the", "king", "queen", "zebra"], lower=True)
    path = tmp_path / "v.txt"
    path.write_text(
        "4 2\nthe 1 2\nKing 3 4\nking 5 6\nQueen 7 8\n", encoding="utf-8"
    )  # king: exact beats the case-folded King; queen only as Queen
    weight, coverage = embedding_from_vectors(vocab, path, dim=2)
    assert coverage == {"covered": 3, "total": 4, "fraction": 0.75}
    assert weight.shape == (len(vocab), 2) and weight.dtype == torch.float32
    assert weight[vocab.index["the"]].tolist() == [1, 2]
    assert weight[vocab.index["king"]].tolist() == [5, 6]
    assert weight[vocab.index["queen"]].tolist() == [7, 8]
    assert not weight[vocab.pad].any() and weight[vocab.index["zebra"]].abs().sum() > 0
    again, _ = embedding_from_vectors(vocab, path)  # seeded: the same random rows
    assert torch.equal(weight, again)
    zero, _ = embedding_from_vectors(vocab, path, missing="zero")
    assert not zero[vocab.index["zebra"]].any()
    cased = WordVocab(["queen"], lower=False)  # no case folding for a cased vocabulary
    assert embedding_from_vectors(cased, path)[1]["covered"] == 0
    with pytest.raises(DataError, match="have 2 dimensions, the model expects 100"):
        embedding_from_vectors(vocab, path, dim=100)


def test_exported_vectors_are_the_runs(run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(run), "--out", str(tmp_path / "w.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "w.onnx"))
    loaded = load(run)
    kv, vocab = loaded.task.vectors(loaded), loaded.setup.vocab
    words = kv.index_to_key[:6]
    ids = np.array([vocab.encode(" ".join(words))], dtype=np.int64)
    assert ids.shape == (1, 6)
    (got,) = session.run(None, {"ids": ids})
    np.testing.assert_allclose(got[0], np.stack([kv[w] for w in words]), atol=1e-6)


def test_neighbours_and_analogies_on_the_page_and_from_python(run):
    """rnnkit.load(RUN).neighbours / .analogy are gensim's most_similar over the run's vectors;
    the endpoints and the page give the same; an unknown word is one 4xx naming it."""
    from helpers import on_the_page

    import rnnkit
    from rnnkit.serve import create_app

    model = rnnkit.load(run)
    kv = model.vectors()
    assert model.neighbours(["King"], 3) == {"king": kv.most_similar("king", topn=3)}
    answers = model.analogy("king - man + woman", 2)
    assert answers == kv.most_similar(positive=["king", "woman"], negative=["man"], topn=2)
    assert answers[0][0] == "queen"
    client = create_app(model).test_client()
    r = client.post("/api/neighbours", json={"words": ["king", "queen"], "top": 4})
    assert r.status_code == 200
    got = r.get_json()["neighbours"]
    assert got["queen"] == [[w, pytest.approx(c)] for w, c in kv.most_similar("queen", topn=4)]
    bad = client.post("/api/neighbours", json={"words": ["kingg"]})
    assert bad.status_code == 422 and "'kingg' (close: king" in bad.get_json()["error"]
    assert client.post("/api/analogy", json={"text": "king -"}).status_code == 422
    assert client.post("/api/neighbours", json={"words": "king"}).get_json()["field"] == "words"
    seen, errors = on_the_page(
        model,
        "$('analogy').value = 'girl - woman + man'; $('top').value = 3; analogy()",
        {"answers": "$('out').dataset.text", "rows": "$('out').querySelectorAll('tr').length"},
    )
    assert errors == []
    expected = model.analogy("girl - woman + man", 3)
    assert [w for w, _ in json.loads(seen["answers"])] == [w for w, _ in expected]
    assert seen["rows"] == 3
