"""Speech recognition with CTC (Graves et al. 2006; Deep Speech 2's shape, small): real
recordings as frames -> [conv front end] -> BiLSTM -> a symbol distribution per frame.

Sources (`rnnkit.data.speech`):
    fsdd          the Free Spoken Digit Dataset's 3,000 utterances (13 MFCCs per frame): one digit
    fsdd-strings  3-7 FSDD utterances of one speaker joined: unsegmented digit strings
    espeak        digit strings spoken by espeak-ng (72 voices: 6 accents x 12 variants, random
                  speed and pitch) as WAV files, read back with librosa like any recording
    vowels        Japanese Vowels (9 speakers, the UCI train/test split): who is speaking, a
                  many-to-one check (model.head=mean)
    wav           your recordings: data.transcripts names a TSV of file<TAB>text[<TAB>speaker]

Splits: ``speaker`` (default) puts the ``held_out`` speakers in the test set only (speaker
independent); ``random`` shuffles utterances, so each speaker is in every split (speaker
dependent). Validation is a share of the training speakers' utterances.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.config import choice, positive
from rnnkit.data import speech
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.recognizer import RecognizerConfig
from rnnkit.tasks.recognition import AugmentConfig, DecodeConfig, RecognitionTask
from rnnkit.training import TrainConfig

SOURCES = ("fsdd", "fsdd-strings", "espeak", "vowels", "wav")
DEFAULT_HELD_OUT = {"fsdd": "s1", "fsdd-strings": "s1", "espeak": "m7,f4"}


@dataclass
class SpeechData:
    source: str = "fsdd"  # fsdd | fsdd-strings | espeak | vowels | wav
    split: str = "speaker"  # speaker: held-out speakers are the test set | random
    held_out: str = ""  # test speakers, comma-separated ("": fsdd s1, espeak m7,f4)
    valid_share: float = 0.1  # of the training speakers' utterances, for validation
    split_seed: int = 0  # the random split, the strings and the espeak recordings
    strings: int = 6000  # fsdd-strings / espeak: training strings made (held-out: a sixth)
    min_digits: int = 3  # fsdd-strings / espeak: digits per string, at least
    max_digits: int = 7  # and at most
    transcripts: str = ""  # wav: a TSV of file<TAB>transcript[<TAB>speaker]
    features: str = "logmel"  # espeak / wav: logmel | mfcc (librosa)
    n_features: int = 40  # mel bands or cepstral coefficients
    per_input_norm: bool = True  # CMVN: each utterance standardised by its own statistics
    speaker_norm: bool = False  # CMVN over each speaker's recordings instead (test ones too)
    batch_size: int = 32  # sequences per batch (bucketed by length)

    def held_out_speakers(self) -> tuple[str, ...]:
        text = self.held_out or DEFAULT_HELD_OUT.get(self.source, "")
        return tuple(s.strip() for s in text.split(",") if s.strip())


@dataclass
class SpeechConfig:
    data: SpeechData = field(default_factory=SpeechData)
    model: RecognizerConfig = field(default_factory=lambda: RecognizerConfig(dropout=0.3))
    augment: AugmentConfig = field(
        default_factory=lambda: AugmentConfig(
            noise=0.1, time_masks=2, feature_masks=2, feature_width=2
        )
    )
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1500, lr=2e-3, schedule="cosine", eval_every=250, clip=5.0
        )
    )

    def validate(self) -> None:
        d = self.data
        choice("data.source", d.source, SOURCES)
        choice("data.split", d.split, ("speaker", "random"))
        choice("data.features", d.features, ("logmel", "mfcc"))
        positive(d, "strings", "min_digits", "max_digits", "n_features", "batch_size",
                 prefix="data.")  # fmt: skip
        if d.min_digits > d.max_digits:
            raise ConfigError(
                f"data.min_digits ({d.min_digits}) is above data.max_digits ({d.max_digits})"
            )
        if not 0 < d.valid_share < 1:
            raise ConfigError(
                f"config key 'data.valid_share' must be in (0, 1), got {d.valid_share}"
            )
        if d.source == "wav" and not d.transcripts:
            raise ConfigError(
                "data.source=wav needs data.transcripts: a TSV of file<TAB>transcript",
                "data.transcripts=path/to/transcripts.tsv",
            )
        if d.speaker_norm and d.per_input_norm:
            raise ConfigError(
                "data.speaker_norm and data.per_input_norm are two normalisations; choose one",
                "add data.per_input_norm=false",
            )
        if d.source == "vowels" and d.split != "speaker":
            raise ConfigError("data.source=vowels has its standard split; drop data.split")
        self.model.validate_recognizer()
        self.augment.validate()
        self.decode.validate()
        self.train.validate()


def _split(utterances, d: SpeechData, seed_offset: int = 0):
    if d.split == "random":
        return speech.random_split(utterances, d.split_seed + seed_offset, d.valid_share, 0.1)
    parts = speech.speaker_split(utterances, d.held_out_speakers(), ())
    rest = speech.random_split(parts["train"], d.split_seed + seed_offset, d.valid_share, 0.0)
    return {"train": rest["train"], "valid": rest["valid"], "test": parts["test"]}


class Speech(RecognitionTask):
    name = "speech"
    description = "speech recognition with CTC (built-in: spoken digits, speaker-independent)"
    Config = SpeechConfig

    def load_data(self, config: SpeechConfig):
        d, notes = config.data, []
        if d.source == "vowels":
            vowels = speech.japanese_vowels()
            train = speech.random_split(list(vowels["train"]), d.split_seed, d.valid_share, 0.0)
            parts = {"train": train["train"], "valid": train["valid"],
                     "test": list(vowels["test"])}  # fmt: skip
        elif d.source in ("fsdd", "fsdd-strings"):
            utterances = speech.fsdd()
            if d.speaker_norm:
                utterances = speech.speaker_normalise(utterances)
            parts = _split(utterances, d)
            if d.source == "fsdd-strings":
                sizes = {"train": d.strings, "valid": max(d.strings // 6, 1),
                         "test": max(d.strings // 6, 1)}  # fmt: skip
                parts = {
                    k: speech.digit_strings(
                        v, sizes[k], d.min_digits, d.max_digits, d.split_seed * 10 + i
                    )  # fmt: skip
                    for i, (k, v) in enumerate(parts.items())
                }
        elif d.source == "espeak":
            parts = _split(self._espeak(d), d)
        else:
            utterances, notes = speech.wav_corpus(d.transcripts, d.features, d.n_features)
            parts = _split(utterances, d)
        if d.split == "speaker" and d.source != "vowels":
            notes.append(f"held-out speakers: {', '.join(d.held_out_speakers())}")
        return {k: [(u.x, u.text) for u in v] for k, v in parts.items()}, notes

    def _espeak(self, d: SpeechData) -> list[speech.Utterance]:
        """The espeak corpus: WAV files cached under the downloads folder, by their recipe."""
        n = d.strings + 2 * max(d.strings // 6, 1)
        recipe = f"{n}-{d.min_digits}-{d.max_digits}-{d.split_seed}"
        key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
        folder = speech.downloads_dir().parent / "espeak" / key
        utterances = speech.espeak_corpus(
            n, d.min_digits, d.max_digits, d.split_seed, speech.espeak_voices(), folder,
            d.features, d.n_features,
        )  # fmt: skip
        for u in utterances:  # the voice variant is the speaker; the accent varies within
            u.speaker = u.speaker.rpartition("+")[2]
        return utterances

    def inputs(self, config: SpeechConfig) -> dict[str, str]:
        return {"data.transcripts": config.data.transcripts} if config.data.source == "wav" else {}

    def read_input(self, loaded, path: str) -> np.ndarray:
        d = loaded.config.data
        p = Path(path)
        if p.suffix.lower() == ".npy":
            try:
                x = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataError(
                    f"cannot read {p} as a numpy array ({e})", "save frames with np.save"
                ) from None
            if x.ndim != 2:
                raise DataError(
                    f"{p} holds an array of shape {x.shape}; expected frames (time, features)",
                    "save one utterance's frames as a 2-D array",
                )
            return x.astype(np.float32)
        if d.source in ("fsdd", "fsdd-strings", "vowels"):
            raise DataError(
                f"a {d.source!r} run reads the dataset's own frames, not audio: {p.name}",
                "give an .npy of frames, or train on data.source=espeak or wav for audio files",
            )
        x, notes = speech.audio_features(p, d.features, d.n_features)
        for note in notes:
            print(note)
        return x
