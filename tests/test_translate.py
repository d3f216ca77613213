"""Tokenizers, pair sources, teacher-forcing schedules, and the translation tasks from the CLI."""

import datetime
import io
import re

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data import pairs
from rnnkit.data.tokenize import load_tokenizer, train_tokenizer
from rnnkit.errors import DataError
from rnnkit.tasks.seq2seq import TeacherForcingConfig, teacher_forcing_ratio

TEXTS = ["the cat sat.", "a dog ran, fast!", "the dog sat", "quatre-vingt-cinq mille (l'été)"]


@pytest.mark.parametrize("kind", ["char", "word", "subword"])
def test_tokenizers_round_trip_and_save(kind):
    tok = train_tokenizer(kind, TEXTS, vocab_size=60)
    for text in TEXTS:
        ids = tok.encode(text)
        assert min(ids) > 3  # no specials, no unknowns inside the training texts
        assert tok.decode(ids) == text
    again = load_tokenizer(tok.to_json())
    assert again.encode("the dog ran.") == tok.encode("the dog ran.")
    assert tok.unknown("the cat") == []
    assert tok.unknown("the éléphant") != []


def test_word_tokenizer_pieces():
    tok = train_tokenizer("word", TEXTS)
    assert tok.pieces(tok.encode("a dog, fast!")) == ["a", " dog", ",", " fast", "!"]
    assert tok.pieces(tok.encode("quatre-vingt")) == ["quatre", "-", "vingt"]
    assert tok.unknown("a big dog") == ["big"]


def test_dates_are_the_dates_they_name():
    for text, iso in pairs.dates(300, seed=3):
        d = datetime.date.fromisoformat(iso)
        assert datetime.date(1950, 1, 1) <= d <= datetime.date(2049, 12, 31)
        assert str(d.day) in text and str(d.year)[2:] in text
    assert pairs.dates(5, seed=1) == pairs.dates(5, seed=1)


def test_numbers_and_their_direction():
    from num2words import num2words

    got = pairs.numbers(50, seed=2, lang="fr", high=999)
    assert len({d for d, _ in got}) == 50
    for digits, words in got:
        assert words == num2words(int(digits), lang="fr")
    back = pairs.numbers(50, seed=2, lang="fr", high=999, to_words=False)
    assert back == [(w, d) for d, w in got]
    assert dict(pairs.numbers(1000, high=999))["4" if False else "721"] == ("sept cent vingt et un")


def test_split_never_shares_a_source():
    data = [(f"s{i % 40}", f"t{i}") for i in range(100)]
    train, val, test = pairs.split(data, 5, 10, seed=0)
    sources = [{s for s, _ in part} for part in (train, val, test)]
    assert len(sources[1]) == 5 and len(sources[2]) == 10
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert len(train) + len(val) + len(test) == 100
    with pytest.raises(DataError, match="too few"):
        pairs.split(data, 30, 30)


def test_gettext_pairs_are_real_translations():
    try:
        got = dict(pairs.gettext_pairs("fr"))
    except DataError:
        pytest.skip("no French gettext catalogues on this machine")
    assert len(got) > 1000
    assert all(s != t and "%" not in s for s, t in list(got.items())[:500])


def test_tsv_errors(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("hello\tbonjour\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected 'source<TAB>target'"):
        pairs.tsv(f)


def test_teacher_forcing_schedules_hand_worked():
    c = TeacherForcingConfig(schedule="linear", start=1.0, end=0.5)
    assert [teacher_forcing_ratio(c, s, 100) for s in (0, 50, 100, 200)] == [1, 0.75, 0.5, 0.5]
    e = TeacherForcingConfig(schedule="exponential", start=1.0, end=0.2, decay=0.5)
    assert [teacher_forcing_ratio(e, s, 100) for s in (0, 1, 2, 10)] == [1, 0.5, 0.25, 0.2]
    k = TeacherForcingConfig(schedule="inverse_sigmoid", k=10.0, end=0.0)
    assert teacher_forcing_ratio(k, 0, 100) == pytest.approx(10 / 11)
    assert teacher_forcing_ratio(k, 30, 100) == pytest.approx(10 / (10 + 2.718281828**3))


# ----------------------------------------------------------------------------- the CLI

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "moon", "tree", "fish", "bird"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A reversal task from a TSV file: 'red cat' -> 'cat red'."""
    import itertools

    tmp = tmp_path_factory.mktemp("translate")
    lines = [f"{a} {b}\t{b} {a}" for a, b in itertools.permutations(WORDS, 2)]
    (tmp / "pairs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp / "run"
    args = [
        "train",
        "translate",
        "--quiet",
        "--out",
        str(out),
        "data.source=tsv",
        f"data.path={tmp / 'pairs.tsv'}",
        "data.src_tokenizer=word",
        "data.tgt_tokenizer=word",
        "data.n_val=10",
        "data.n_test=10",
        "data.batch_size=16",
        "data.max_len=4",
        "model.hidden=32",
        "model.embed=16",
        "train.steps=150",
        "train.lr=0.01",
        "train.eval_every=75",
        "train.checkpoint_every=0",
        "decode.beam=3",
    ]
    assert main(args) == 0
    return out


def test_train_then_translate_from_the_command_line(run, capsys):
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_exact"] >= 0.8, metrics  # held-out word pairs, reversed
    assert 0 <= metrics["test_chrf"] <= 100 and metrics["test_pairs"] == 10
    capsys.readouterr()
    assert main(["translate", str(run), "fish moon", "--attention", str(run / "a.png")]) == 0
    assert capsys.readouterr().out.strip() == "moon fish"
    assert (run / "a.png").stat().st_size > 1000
    assert main(["translate", str(run), "red tree", "--n-best", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and re.match(r"-?\d+\.\d+\ttree red", lines[0])


def test_translate_lines_from_stdin_with_bad_ones(run, capsys, monkeypatch):
    lines = ["sun bird", "", "sun unicorn", " ".join(WORDS), "cat dog"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["translate", str(run)]) == 2
    out, err = capsys.readouterr()
    assert out.split("\n")[:2] == ["bird sun", "dog cat"]
    assert "the input is empty" in err
    assert "never saw: 'unicorn'" in err
    assert "has 10 tokens, but this model was trained on inputs of at most 4" in err
    assert "Traceback" not in err


def test_translate_needs_a_translation_run(tmp_path, capsys):
    (tmp_path / "run.json").write_text('{"task": "charlm"}')
    assert main(["translate", str(tmp_path), "x"]) == 2
    err = capsys.readouterr().err
    assert "does not apply to a 'charlm' run" in err and "sample" in err


def test_accuracy_by_length_counts_every_test_pair(run, tmp_path):
    from rnnkit import tasks
    from rnnkit.viz.attention import plot_length_study

    table = tasks.get("translate").accuracy_by_length(run)
    assert sum(t for _, t in table.values()) == 10  # data.n_test
    assert set(table) == {2}  # every source is two words
    png = plot_length_study({"a": table}, 4, tmp_path / "len.png")
    assert png.stat().st_size > 1000


def test_batched_translation_equals_one_at_a_time(run, capsys):
    """`rnnkit translate` decodes standard input in batches: the same hypotheses and scores as
    decoding each line alone, attention only when asked, and n-best beyond the beam refused."""
    from rnnkit import tasks
    from rnnkit.errors import ConfigError

    task = tasks.get("translate")
    loaded = task.load(run)
    lines = [f"{a} {b}" for a, b in zip(WORDS, WORDS[3:] + WORDS[:3], strict=True)]
    together = task.translate_many(loaded, lines, n_best=2)
    for line, result in zip(lines, together, strict=True):
        alone = task.translate(loaded, line, n_best=2, attention=False)
        assert [h for h, _, _ in result.n_best] == [h for h, _, _ in alone.n_best]
        assert [s for _, s, _ in result.n_best] == pytest.approx(
            [s for _, s, _ in alone.n_best], abs=1e-5
        )
        assert result.text == result.n_best[0][0] and result.confidence == result.n_best[0][2]
        assert result.attention is None and [p.strip() for p in result.labels[0]] == line.split()
    best = task.translate(loaded, lines[0], attention=True)
    attention = best.attention
    assert attention.shape == (len(best.text.split()) + 1, 2)  # output tokens + EOS, by inputs
    torch.testing.assert_close(attention.sum(-1), torch.ones(attention.size(0)))
    with pytest.raises(ConfigError, match="--n-best 4 asks for more hypotheses than the beam"):
        task.translate_many(loaded, lines, beam=3, n_best=4)
    assert main(["translate", str(run), "red cat", "--n-best", "0"]) == 2  # argparse's usage
    assert "--n-best: must be in [1, 1000], got 0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Bible verse pairs


def _bible_or_skip():
    from rnnkit.data import bible

    try:
        return bible.verse_pairs()
    except DataError as err:
        pytest.skip(f"the Bible modules are not installed: {err.hint}")  # names the apt-get


def test_bible_pairs_validate_and_test_on_held_out_books():
    from rnnkit.data import bible
    from rnnkit.tasks.seq2seq import PairData, bible_splits

    books_of: dict[str, set[str]] = {}  # a few verses recur word for word in several books
    for ref, en, _ in _bible_or_skip():
        books_of.setdefault(en, set()).add(ref.rpartition(" ")[0])
    d = PairData(source="bible", n_val=40, n_test=60, seed=1)
    train, val, test = bible_splits(d)
    assert len(val) == 40 and len(test) == 60 and len(train) > 20_000
    for part, got in (("valid", val), ("test", test), ("train", train)):
        assert all(part in {bible.split_of(b) for b in books_of[en]} for en, _ in got), part
    assert bible_splits(d) == (train, val, test)  # the same split at training and afterwards


def test_translate_bible_runs_and_scores_held_out_books(tmp_path, capsys):
    import json

    _bible_or_skip()
    out = tmp_path / "run"
    args = ["train", "translate", "--out", str(out), "data.source=bible", "data.max_len=40"]
    args += ["data.n_val=8", "data.n_test=8", "data.vocab_size=300", "model.hidden=16"]
    args += ["model.embed=8", "train.steps=2", "train.eval_every=2", "train.checkpoint_every=0"]
    args += ["decode.beam=2", "decode.max_len=8"]
    assert main(args) == 0
    assert re.search(r"\d[\d,]* longer than data.max_len=40 dropped", capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_pairs"] == 8 and 0 <= metrics["test_chrf"] <= 100
    assert "test_bleu" in metrics


# ----------------------------------------------------------------------------- confidence


def test_confidence_is_the_length_normalised_log_probability(run):
    """The confidence of each n-best output equals exp(mean log p(y_t | y_<t, x)) computed
    independently, by teacher-forcing the output through the model, EOS included."""
    import math

    from rnnkit import decoding, tasks
    from rnnkit.data.vocab import BOS

    task = tasks.get("translate")
    loaded = task.load(run)
    model, src_tok, d = loaded.model, loaded.setup.src_tok, loaded.config.decode
    for line in ("red cat", "moon fish", "sun tree"):
        result = task.translate(loaded, line, beam=3, n_best=3, attention=False)
        src = torch.tensor([src_tok.encode(line)])
        lengths = torch.tensor([src.size(1)])
        hyps = decoding.beam_search(model, src, lengths, d.max_len, 3, d.alpha, 3)[0]
        assert len(hyps) == len(result.n_best) == 3
        for (ids, _), (_, _, sure) in zip(hyps, result.n_best, strict=True):
            memory, state = model.encode(src, lengths)
            y, logp = torch.tensor([BOS]), 0.0
            with torch.no_grad():
                for token in ids:  # EOS is the last token of a finished hypothesis
                    logits, state, _ = model.decode_step(y, state, memory)
                    logp += torch.log_softmax(logits.double(), -1)[0, token].item()
                    y = torch.tensor([token])
            assert sure == pytest.approx(math.exp(logp / len(ids)), rel=1e-5)


def test_calibration_hand_worked():
    from rnnkit.tasks.seq2seq_confidence import calibrate

    conf = [0.95, 0.92, 0.91, 0.55, 0.52, 0.15]
    right = [True, True, False, True, False, False]
    cal = calibrate(conf, right, quantile=0.0, bins=10)
    assert cal["threshold"] == 0.52 + 0.03  # the least confident right output: 0.55
    assert [(b["lo"], b["n"], b["accuracy"]) for b in cal["bins"]] == [
        (0.1, 1, 0.0),
        (0.5, 2, 0.5),
        (0.9, 3, 2 / 3),
    ]
    ece = (1 * 0.15 + 2 * abs(0.5 - 0.535) + 3 * abs(2 / 3 - (0.95 + 0.92 + 0.91) / 3)) / 6
    assert cal["ece"] == pytest.approx(ece)
    assert cal["share_below"] == 2 / 6 and cal["accuracy_below"] == 0.0
    assert calibrate(conf, right, quantile=0.5)["threshold"] == 0.92  # the middle right one


def test_training_writes_the_calibration_and_translate_warns_below_it(run, tmp_path, capsys):
    import json
    import shutil

    cal = json.loads((run / "calibration.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < cal["threshold"] <= 1 and cal["n"] == 10 and cal["bins"]
    assert metrics["val_confidence_threshold"] == cal["threshold"]
    assert main(["translate", str(run), "fish moon", "--confidence"]) == 0
    out, err = capsys.readouterr()
    sure, text = out.strip().split("\t")
    assert text == "moon fish" and float(sure) >= cal["threshold"] and "low confidence" not in err

    strict = tmp_path / "strict"
    shutil.copytree(run, strict)
    (strict / "calibration.json").write_text(json.dumps(cal | {"threshold": 1.01}))
    assert main(["translate", str(strict), "fish moon"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "moon fish"  # still printed, with a note on standard error
    assert "'fish moon' -> 'moon fish': low confidence" in err and "below 1.010" in err
    assert main(["plot", "calibration", str(strict), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert main(["report", str(strict)]) == 0
    assert "Confidence on validation" in (strict / "report.html").read_text()


def test_an_output_the_task_refuses_is_not_printed(run, capsys, monkeypatch):
    from rnnkit import tasks

    task = tasks.get("translate")
    monkeypatch.setattr(type(task), "check_output", lambda self, text: f"{text} is no good")
    assert main(["translate", str(run), "fish moon"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "'fish moon': moon fish is no good" in err


# ----------------------------------------------------------------------------- dates


def test_the_calendar_check():
    from rnnkit.tasks.seq2seq import valid_date

    assert "February 2020 has 29 days" in valid_date("2020-02-31")
    assert "February 2023 has 28 days" in valid_date("2023-02-29")
    assert valid_date("2024-02-29") is None and valid_date("2000-02-29") is None
    assert "February 1900 has 28 days" in valid_date("1900-02-29")  # not a leap year
    assert "no month 13" in valid_date("2024-13-01") and "no day 0" in valid_date("2024-01-00")
    assert "not a date of the form YYYY-MM-DD" in valid_date("hello")


def test_typed_dates_and_the_day_month_order():
    d = datetime.date(2024, 3, 5)
    typed = {p: pairs.typed_date(d, p) for p in pairs.TYPED_FORMATS}
    assert typed["{y}/{mm}/{dd}"] == "2024/03/05" and typed["{y}.{mm}.{dd}"] == "2024.03.05"
    assert typed["{ord} of {Month} {y}"] == "5th of March 2024"
    assert typed["{Weekday} {ord} of {Month} {y}"] == "Tuesday 5th of March 2024"
    assert typed["{dd}-{mm}-{yy}"] == "05-03-24"
    assert pairs.typed_date(d, "{dd}/{mm}/{y}", day_first=False) == "03/05/2024"
    assert pairs.typed_date(d, "{y}/{mm}/{dd}", day_first=False) == "2024/03/05"  # ISO: fixed
    assert [pairs.ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"
    ]  # fmt: skip
    numeric = pairs.dates(200, seed=4, kinds={"numeric": 1.0})
    us = pairs.dates(200, seed=4, day_first=False, kinds={"numeric": 1.0})
    for (eu, iso), (am, iso2) in zip(numeric, us, strict=True):
        y, m, day = map(int, iso.split("-"))
        first, second = re.split(r"[/.]", eu)[:2]
        assert iso == iso2 and (int(first), int(second)) == (day, m)
        assert tuple(map(int, re.split(r"[/.]", am)[:2])) == (m, day)
        year = re.split(r"[/.]", eu)[2]
        assert int(year) == (y if len(year) == 4 else y % 100)
    for text, iso in pairs.dates(300, seed=5, kinds={"typed": 1.0}):
        d = datetime.date.fromisoformat(iso)
        assert str(d.day) in text and f"{d.year % 100:02d}" in text
    assert len(set(pairs.non_dates(50, seed=0))) == 50
    assert not any(re.search(r"\d", t) for t in pairs.non_dates(50, seed=0))


def test_evaluate_on_another_split_and_beam(run, capsys):
    import json

    assert main(["evaluate", str(run), "split=val", "decode.beam=1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(got) == {"val_exact", "val_bleu", "val_chrf", "val_pairs"} and got["val_pairs"] == 10
    metrics = json.loads((run / "metrics.json").read_text())
    assert got["val_exact"] == pytest.approx(metrics["val_exact"])  # greedy, as in training
    assert main(["evaluate", str(run), "split=train"]) == 2
    assert (
        "split=train: a 'translate' run is evaluated on one of val, test" in capsys.readouterr().err
    )


def test_exported_encoder_and_decoder_step_translate_as_the_model_does(run, tmp_path, capsys):
    """ONNX Runtime runs the encoder once and the decoder a step at a time, feeding back its
    state and its greedy choice: the words equal `translate` with beam 1, and the attention
    rows sum to 1 over the real source tokens only."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    from helpers import onnx_greedy

    from rnnkit import tasks

    out = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "m.encoder.onnx" in printed and "m.decoder.onnx" in printed
    encoder = ort.InferenceSession(str(tmp_path / "m.encoder.onnx"))
    decoder = ort.InferenceSession(str(tmp_path / "m.decoder.onnx"))
    loaded = tasks.load(run)
    texts = [f"{a} {b}" for a, b in zip(WORDS, WORDS[1:], strict=False)][:4] + [WORDS[0]]
    src_tok, tgt_tok = loaded.setup.src_tok, loaded.setup.tgt_tok
    ids = [src_tok.encode(t) for t in texts]
    width = max(map(len, ids))
    src = np.array([i + [0] * (width - len(i)) for i in ids], dtype=np.int64)
    lengths = np.array([len(i) for i in ids], dtype=np.int64)

    def check(got, memory):  # attention over the real source tokens only, summing to 1
        np.testing.assert_allclose((got["attention"] * memory["mask"]).sum(1), 1.0, atol=1e-5)
        assert (got["attention"][~memory["mask"]] == 0).all()

    feed = {"src": src, "lengths": lengths}
    words = onnx_greedy(encoder, decoder, feed, loaded.config.data.max_len + 2, check)
    expected = [t.text for t in loaded.task.translate_texts(loaded, texts, beam=1)]
    assert [tgt_tok.decode(w) for w in words] == expected
