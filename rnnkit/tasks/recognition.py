"""Recognition without alignment, written once for speech and handwriting: a recogniser reads
frames and is trained with CTC (Graves et al. 2006), or, with a pooled head, names one class.

    frames x (T, f), normalised by the training set's mean and deviation per feature
    SpecAugment-style masks and noise in training (``augment``)
    Recognizer (rnnkit.models.recognizer): [conv front end] -> BiLSTM -> log y (T', C)
    loss:    CTC  -log p(l | x) / |l|   (rnnkit.ctc.ctc_loss)   or   NLL of the class
    decode:  best path (greedy) for validation; prefix beam search, optionally with a
             character n-gram of the training transcripts as a shallow-fusion prior, for the
             test metrics and `rnnkit recognize --beam`
    metrics: CER, WER and exact match (jiwer), or accuracy for classes

A task of this family (`rnnkit.tasks.speech`, `rnnkit.tasks.handwriting`) declares its data
(`load_data`), how to read a user's file (`read_input`) and how to draw an input
(`draw_input`); the rest is here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit.config import positive
from rnnkit.data.batching import EpochBatches
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.recognizer import Recognizer
from rnnkit.tasks.base import Command, Loaded, Task, arg, finite, whole

SETUP = "recognizer.json"


@dataclass
class DecodeConfig:
    beam: int = 8  # prefix beam width of the test metrics (and the default of --beam)
    lm_order: int = 0  # n > 0: a character n-gram of the training transcripts as a prior
    lm_weight: float = 0.3  # its weight in shallow fusion
    insertion_bonus: float = 0.0  # added per emitted symbol (balances the prior's cost)

    def validate(self) -> None:
        positive(self, "beam", prefix="decode.")
        positive(self, "lm_order", "lm_weight", prefix="decode.", allow_zero=True)


@dataclass
class AugmentConfig:
    noise: float = 0.0  # Gaussian noise (std, in normalised units) added to every frame
    time_masks: int = 0  # SpecAugment: spans of frames set to zero, per sequence
    time_width: int = 8  # the longest such span
    feature_masks: int = 0  # SpecAugment: bands of features set to zero, per sequence
    feature_width: int = 4  # the widest such band
    tempo: float = 0.0  # speed perturbation: each sequence resampled in time by 1 +- this
    gain: float = 0.0  # each feature scaled by 1 + gain * N(0, 1), per sequence

    def validate(self) -> None:
        positive(self, "noise", "time_masks", "feature_masks", "gain", prefix="augment.",
                 allow_zero=True)  # fmt: skip
        if not 0 <= self.tempo < 1:
            raise ConfigError(f"config key 'augment.tempo' must be in [0, 1), got {self.tempo}")
        positive(self, "time_width", "feature_width", prefix="augment.")


@dataclass
class RecognitionSetup:
    alphabet: str  # symbol i (1..) is alphabet[i - 1]; 0 is the CTC blank ("" for classes)
    classes: tuple[str, ...]  # the pooled head's classes ("" for CTC)
    mean: np.ndarray  # (f,) of the training frames
    std: np.ndarray  # (f,)
    lm: object = None  # rnnkit.ctc.CharNgramLM, or None
    per_input: bool = False  # each input first standardised by its own mean and deviation
    splits: dict[str, list[tuple[np.ndarray, str]]] = field(default_factory=dict)  # normalised
    notes: list[str] = field(default_factory=list)

    @property
    def features(self) -> int:
        return len(self.mean)

    def to_json(self) -> str:
        return json.dumps(
            {
                "alphabet": self.alphabet,
                "classes": list(self.classes),
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "lm": self.lm.to_dict() if self.lm is not None else None,
                "per_input": self.per_input,
            }
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> RecognitionSetup:
        from rnnkit.ctc import CharNgramLM

        try:
            d = json.loads(text)
            lm = CharNgramLM.from_dict(d["lm"]) if d.get("lm") else None
            mean = np.asarray(d["mean"], dtype=np.float32)
            std = np.asarray(d["std"], dtype=np.float32)
            per_input = bool(d.get("per_input", False))
            return cls(str(d["alphabet"]), tuple(d["classes"]), mean, std, lm, per_input)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                f"{where} is not a recogniser set-up rnnkit wrote ({e})", "train again"
            ) from None

    def normalise(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.features:
            raise DataError(
                f"input frames have shape {tuple(x.shape)}, expected (time, {self.features})",
                f"give {self.features} features per frame, as in training",
            )
        if not np.isfinite(x).all():
            raise DataError("input frames contain NaN or infinity", "check the input file")
        if self.per_input:  # cepstral mean and variance normalisation, per utterance
            x = standardise(x)
        return ((x - self.mean) / self.std).astype(np.float32)

    def encode(self, text: str, where: str = "a transcript") -> list[int]:
        unknown = sorted({c for c in text if c not in self.alphabet})
        if unknown:
            raise DataError(
                f"{where} {text!r} has characters outside the alphabet: "
                f"{', '.join(map(repr, unknown))}",
                f"the alphabet is {self.alphabet!r} (the training transcripts' characters)",
            )
        return [self.alphabet.index(c) + 1 for c in text]

    def decode(self, labels) -> str:
        return "".join(self.alphabet[i - 1] for i in labels)


def standardise(x: np.ndarray) -> np.ndarray:
    """(T, f) -> each feature minus its mean over the input, over its deviation (CMVN: the
    channel and the speaker's average spectrum removed)."""
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-3)


def batch_of(samples, rows, device):
    """Padded frames (b, T, f), lengths (b,) and texts of ``rows``."""
    xs = [samples[int(r)][0] for r in rows]
    lengths = torch.tensor([len(x) for x in xs], dtype=torch.long)
    out = torch.zeros(len(xs), int(lengths.max()), xs[0].shape[1])
    for i, x in enumerate(xs):
        out[i, : len(x)] = torch.from_numpy(x)
    return out.to(device), lengths, [samples[int(r)][1] for r in rows]


def perturb(samples: list, c: AugmentConfig, g: torch.Generator) -> list:
    """Speed and gain perturbation of [(frames (T, f), text)]: each sequence resampled in
    time by a factor uniform in 1 +- tempo (linear interpolation between frames), each
    feature scaled by 1 + gain * N(0, 1)."""
    if not (c.tempo or c.gain):
        return samples
    out = []
    for x, text in samples:
        if c.tempo:
            rate = 1 + c.tempo * (2 * float(torch.rand((), generator=g)) - 1)
            n = max(int(round(len(x) / rate)), 1)
            where = np.linspace(0, len(x) - 1, n)
            low = np.floor(where).astype(int)
            high = np.minimum(low + 1, len(x) - 1)
            w = (where - low)[:, None].astype(np.float32)
            x = (1 - w) * x[low] + w * x[high]
        if c.gain:
            scale = 1 + c.gain * torch.randn(x.shape[1], generator=g).numpy()
            x = x * scale.astype(np.float32)
        out.append((x.astype(np.float32), text))
    return out


def augment(x: torch.Tensor, lengths: torch.Tensor, c: AugmentConfig, g: torch.Generator):
    """SpecAugment masks and noise on a padded batch (b, T, f), in place of a copy."""
    if not (c.noise or c.time_masks or c.feature_masks):
        return x
    x = x.clone()
    b, _, f = x.shape
    for i in range(b):
        n = int(lengths[i])
        for _ in range(c.time_masks):
            w = int(torch.randint(0, min(c.time_width, max(n // 4, 1)) + 1, (1,), generator=g))
            start = int(torch.randint(0, max(n - w, 0) + 1, (1,), generator=g))
            x[i, start : start + w] = 0
        for _ in range(c.feature_masks):
            w = int(torch.randint(0, min(c.feature_width, f) + 1, (1,), generator=g))
            start = int(torch.randint(0, f - w + 1, (1,), generator=g))
            x[i, :n, start : start + w] = 0
    if c.noise:
        x = x + c.noise * torch.randn(x.shape, generator=g).to(x.device)
    return x


@torch.no_grad()
def recognise(model, setup: RecognitionSetup, xs, beam: int = 0, decode=None, batch: int = 64):
    """Normalised frames -> [(text, score)] per input: best path with beam 0, else prefix
    beam search (with the set-up's n-gram when ``decode.lm_order``); for a class head, the
    class and its log-probability."""
    from rnnkit.ctc import beam_decode, greedy_decode

    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(x) for x in xs], kind="stable")
    out: list = [None] * len(xs)
    for start in range(0, len(xs), batch):
        rows = order[start : start + batch]
        x, lengths, _ = batch_of([(xs[r], "") for r in rows], range(len(rows)), device)
        logp, lengths = model(x, lengths)
        logp = logp.cpu()
        if setup.classes:
            best = logp.max(-1)
            for j, r in enumerate(rows):
                out[r] = (setup.classes[int(best.indices[j])], float(best.values[j]))
            continue
        if beam:
            lm = setup.lm if decode is not None and decode.lm_order else None
            found = beam_decode(
                logp, lengths, beam=beam, lm=lm,
                lm_weight=decode.lm_weight if lm is not None else 0.0,
                insertion_bonus=decode.insertion_bonus if decode is not None else 0.0,
            )  # fmt: skip
            for j, r in enumerate(rows):
                labels, score = found[j][0]
                out[r] = (setup.decode(labels), float(score))
        else:
            for j, (r, labels) in enumerate(zip(rows, greedy_decode(logp, lengths), strict=True)):
                path = logp[j, : int(lengths[j])].max(-1).values.sum()
                out[r] = (setup.decode(labels), float(path))
    return out


def scores(setup: RecognitionSetup, refs: list[str], hyps: list[str], prefix: str) -> dict:
    if setup.classes:
        right = sum(r == h for r, h in zip(refs, hyps, strict=True))
        return {f"{prefix}accuracy": right / len(refs)}
    from rnnkit.ctc import error_rates

    rates = error_rates(refs, hyps)
    return {f"{prefix}{k}": float(v) for k, v in rates.items() if k != "n"}


class RecognitionLoop:
    def __init__(self, setup: RecognitionSetup, config, device, rank=0, world=1):
        self.setup, self.c, self.device = setup, config, device
        self.rank, self.world = rank, world
        self.metric, self.higher_is_better = (
            ("val_accuracy", True) if setup.classes else ("val_cer", False)
        )
        train = setup.splits["train"]
        self.lengths = torch.tensor([len(x) for x, _ in train])
        self.targets = [self._target(text) for _, text in train]
        self._rows = EpochBatches(
            self.lengths, config.data.batch_size, config.train.seed, rank, world
        )
        self._check_lengths(config)

    def _target(self, text: str):
        if self.setup.classes:
            return self.setup.classes.index(text)
        return self.setup.encode(text, "training transcript")

    def _check_lengths(self, config) -> None:
        """Every training sample has the frames its labels need (after the front end's
        stride), else one message naming how many do not and the first of them."""
        if self.setup.classes:
            return
        from rnnkit.ctc import min_frames

        model = Recognizer(self.setup.features, len(self.setup.alphabet) + 1, config.model)
        tempo = config.augment.tempo  # the fastest speed perturbation must still fit
        shortest = torch.round(self.lengths / (1 + tempo)).long().clamp(min=1)
        out = model.output_lengths(shortest)
        short = [i for i, t in enumerate(self.targets) if int(out[i]) < min_frames(t)]
        if short:
            i = short[0]
            raise DataError(
                f"{len(short)} training sample(s) have fewer frames than their labels need: "
                f"sample {i} ({self.setup.splits['train'][i][1]!r}) has {int(out[i])} frames "
                f"after the front end but needs {min_frames(self.targets[i])}; CTC cannot align "
                "it",
                "use model.stride=1 or model.frontend=none, a smaller augment.tempo, or "
                "shorter transcripts",
            )

    def train_step(self, model, micro: int) -> torch.Tensor:
        from rnnkit.ctc import ctc_loss

        rows = self._rows(micro)
        g = torch.Generator().manual_seed(self.c.train.seed * 7_919 + micro)
        train = self.setup.splits["train"]
        samples = perturb([train[int(r)] for r in rows], self.c.augment, g)
        x, lengths, _ = batch_of(samples, range(len(samples)), self.device)
        x = augment(x, lengths, self.c.augment, g)
        logp, out_lengths = model(x, lengths)
        targets = [self.targets[int(r)] for r in rows]
        if self.setup.classes:
            return F.nll_loss(logp, torch.tensor(targets, device=logp.device))
        return ctc_loss(logp, out_lengths, targets)

    def evaluate(self, model) -> dict:
        valid = self.setup.splits["valid"]
        found = recognise(model, self.setup, [x for x, _ in valid])
        return scores(self.setup, [t for _, t in valid], [h for h, _ in found], "val_")

    def state_dict(self):
        return {}  # the data order is a function of the step

    def load_state_dict(self, state) -> None:
        pass


class RecognitionTask(Task):
    """The shared part of `speech` and `handwriting` (module docstring)."""

    api = {"recognize": "recognize"}

    files = (SETUP,)
    test_after_training = True
    commands = (
        Command(
            "recognize",
            "transcribe files with a trained recogniser (speech: WAV or .npy frames; "
            "handwriting: PNG or .npy columns, or a stroke file)",
            "recognize_command",
            (
                arg("files", nargs="+", help="inputs to transcribe"),
                arg("--beam", type=whole(0, 1000), help="prefix beam width (0: best path)"),
                arg("--lm-weight", type=finite(0, 100), help="weight of the n-gram prior"),
                arg("--plot", metavar="PNG", help="draw the CTC output over the first input"),
                arg("--json", action="store_true", help="one JSON object per file"),
            ),
        ),
    )

    # ----------------------------------------------------------------------- task specifics
    def load_data(self, config) -> tuple[dict[str, list[tuple[np.ndarray, str]]], list[str]]:
        """The raw (unnormalised) splits {train, valid, test}: [(frames (T, f), text)]."""
        raise NotImplementedError

    def alphabet_of(self, config, train_texts: list[str]) -> str:
        """The output symbols: by default the training transcripts' characters, sorted."""
        return "".join(sorted(set("".join(train_texts))))

    def read_input(self, loaded: Loaded, path: str) -> np.ndarray:
        """A user's file -> raw frames (T, f)."""
        raise NotImplementedError

    def draw_input(self, ax, x: np.ndarray) -> None:
        ax.imshow(x.T, aspect="auto", origin="lower", cmap="magma")

    # ----------------------------------------------------------------------- the contract
    def prepare(self, config, run=None, data: bool = True) -> RecognitionSetup:
        setup = None
        if run is not None:
            setup = RecognitionSetup.from_json(run.read_text(SETUP), str(run.path / SETUP))
        if not data:
            return setup
        raw, notes = self.load_data(config)
        if setup is None:
            setup = self._fit_setup(config, raw)
        setup.notes = notes
        for name, samples in raw.items():
            if not samples:
                raise DataError(f"the {name} split is empty", "give more data, or change the split")
            setup.splits[name] = [(setup.normalise(x), text) for x, text in samples]
            if not setup.classes:  # a transcript with unknown characters is named here
                for i, (_, text) in enumerate(samples):
                    setup.encode(text, f"{name} transcript {i}")
        return setup

    def _fit_setup(self, config, raw) -> RecognitionSetup:
        per_input = bool(getattr(config.data, "per_input_norm", False))
        frames = np.concatenate([standardise(x) if per_input else x for x, _ in raw["train"]])
        mean, std = frames.mean(0), frames.std(0)
        std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        texts = [t for _, t in raw["train"]]
        if config.model.head != "step":
            classes = tuple(sorted(set(texts), key=lambda s: (len(s), s)))
            return RecognitionSetup("", classes, mean.astype(np.float32), std, None, per_input)
        alphabet = self.alphabet_of(config, texts)
        setup = RecognitionSetup(alphabet, (), mean.astype(np.float32), std, None, per_input)
        if config.decode.lm_order:
            from rnnkit.ctc import CharNgramLM

            ids = [setup.encode(t, "training transcript") for t in texts]
            setup.lm = CharNgramLM.train(ids, len(alphabet) + 1, config.decode.lm_order)
        return setup

    def saved(self, setup: RecognitionSetup) -> dict[str, str]:
        return {SETUP: setup.to_json()}

    def build_model(self, config, setup: RecognitionSetup) -> Recognizer:
        outputs = len(setup.classes) if setup.classes else len(setup.alphabet) + 1
        return Recognizer(setup.features, outputs, config.model)

    def loop(self, config, setup, device, rank, world) -> RecognitionLoop:
        return RecognitionLoop(setup, config, device, rank, world)

    def summary(self, config, setup: RecognitionSetup, model, world: int) -> str:
        sizes = ", ".join(f"{len(s):,} {k}" for k, s in setup.splits.items())
        params = sum(p.numel() for p in model.parameters())
        what = f"{len(setup.classes)} classes" if setup.classes else f"alphabet {setup.alphabet!r}"
        text = f"{sizes}; {setup.features} features per frame; {what}; {params:,} parameters"
        return "; ".join([text, *setup.notes[:3]])

    def score(self, loaded: Loaded, **options) -> dict:
        """Validation and test metrics: best path, and prefix beam search (with the n-gram
        prior when the config has one)."""
        setup = self.prepare(loaded.config, loaded.run)
        out = {}
        for name in ("valid", "test"):
            samples = setup.splits[name]
            refs, xs = [t for _, t in samples], [x for x, _ in samples]
            found = recognise(loaded.model, setup, xs)
            out |= scores(setup, refs, [h for h, _ in found], f"{name}_")
            if not setup.classes and loaded.config.decode.beam > 1:
                found = recognise(loaded.model, setup, xs, loaded.config.decode.beam,
                                  loaded.config.decode)  # fmt: skip
                out |= scores(setup, refs, [h for h, _ in found], f"{name}_beam_")
        return out

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.recognition_plot import report_sections

        return report_sections(self, loaded)

    # ----------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """Standardised frames (b, T, f) and lengths (b,) -> CTC log-probabilities (b, T', C)
        and each sequence's T'; decoding (greedy or beam) is the caller's."""
        from rnnkit.export import recognizer_graph

        return recognizer_graph(loaded.model, loaded.setup.features)

    def recognize(
        self, path: str | Path | Loaded, inputs: list, beam: int | None = None, lm_weight=None
    ) -> list[dict]:
        """Transcribe raw inputs (file paths, or frame arrays (T, f)): one dict per input
        with "text" and "score" (the log-probability of the best path or beam prefix, with
        the prior's share when there is one)."""
        loaded = path if isinstance(path, Loaded) else self.load(path)
        if not inputs:
            raise DataError("nothing to recognise", "give at least one file")
        setup, config = loaded.setup, loaded.config
        decode = DecodeConfig(**vars(config.decode))
        if lm_weight is not None:
            decode.lm_weight = lm_weight
        beam = config.decode.beam if beam is None else beam
        raw = [x if isinstance(x, np.ndarray) else self.read_input(loaded, str(x)) for x in inputs]
        xs = [setup.normalise(np.asarray(x, dtype=np.float32)) for x in raw]
        found = recognise(loaded.model, setup, xs, 0 if beam <= 1 else beam, decode)
        return [
            {"input": str(i) if not isinstance(i, np.ndarray) else "array", "text": t, "score": s}
            for i, (t, s) in zip(inputs, found, strict=True)
        ]

    def recognize_command(self, args) -> int:
        loaded = self.load(args.run)
        if args.lm_weight is not None and loaded.setup.lm is None:
            raise ConfigError(
                "--lm-weight needs a run trained with decode.lm_order > 0 (it has no n-gram)",
                "drop --lm-weight",
            )
        rows = self.recognize(loaded, args.files, args.beam, args.lm_weight)
        for row in rows:
            print(json.dumps(row) if args.json else f"{row['text']}\t{row['input']}")
        if args.plot:
            from rnnkit.tasks.recognition_plot import ctc_figure
            from rnnkit.viz import save_png

            x = self.read_input(loaded, args.files[0])
            save_png(ctc_figure(self, loaded, x, title=rows[0]["text"]), args.plot)
            print(f"wrote {args.plot}")
        return 0
