"""Image captioning with attention (Xu et al. 2015, "Show, Attend and Tell"): one picture in,
a sentence out, looking at a different part of the picture for every word.

Sources (`rnnkit.data.images`), generated with seeds so that nothing is downloaded:
    scenes   32 x 32 colour scenes of 1-3 shapes (kind, colour, size, position) captioned with
             their relations, "a small red circle left of a large blue square"; the `novel`
             split holds scenes with (colour, shape) pairs never seen in training
             (`images.HELD_OUT`): compositional generalisation, scored on its own
    strips   2-5 of scikit-learn's real handwritten digits side by side, captioned as words
             ("three seven one"); the test strips use only held-out digit images

Training minimises the cross-entropy of the next word with teacher forcing (optionally
scheduled) plus the doubly stochastic attention penalty (`rnnkit.models.captioner`);
validation decodes greedily, the test with beam search, scored by exact caption match and
BLEU-1..4 (sacrebleu, one reference per image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import decoding
from rnnkit.config import choice, positive
from rnnkit.data import images
from rnnkit.data.batching import EpochRows, pad
from rnnkit.data.tokenize import WordTokenizer, load_tokenizer
from rnnkit.data.vocab import BOS, EOS, PAD
from rnnkit.errors import ConfigError, DataError, RunDirError
from rnnkit.models.captioner import Captioner, CaptionModelConfig, doubly_stochastic
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole
from rnnkit.tasks.seq2seq import DecodeConfig, TeacherForcingConfig, teacher_forcing_ratio
from rnnkit.training import TrainConfig

SPLITS = ("train", "valid", "test", "novel")


@dataclass
class CaptionData:
    source: str = "scenes"  # scenes (shapes and their relations) | strips (handwritten digits)
    n_train: int = 12000  # generated training images
    n_val: int = 500  # validation images
    n_test: int = 1000  # test images (and as many novel-combination scenes)
    size: int = 32  # scenes: pixels square
    min_shapes: int = 1  # scenes: shapes per scene
    max_shapes: int = 3  # scenes: and at most
    min_digits: int = 2  # strips: digits per strip
    max_digits: int = 5  # strips: and at most
    height: int = 16  # strips: pixels high (a digit is height x height)
    distort: float = 1.0  # strips, training only: random rotation, scale, shear, shift (0: none)
    seed: int = 0  # generation, and the split of the digit images
    batch_size: int = 64  # images per step


@dataclass
class CaptionConfig:
    data: CaptionData = field(default_factory=CaptionData)
    model: CaptionModelConfig = field(default_factory=CaptionModelConfig)
    teacher: TeacherForcingConfig = field(default_factory=TeacherForcingConfig)
    decode: DecodeConfig = field(
        default_factory=lambda: DecodeConfig(beam=3, alpha=0.0, max_len=30)
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=3000, lr=2e-3, schedule="cosine", warmup=100, eval_every=500, clip=5.0
        )
    )

    def validate(self) -> None:
        d = self.data
        choice("data.source", d.source, ("scenes", "strips"))
        positive(d, "n_train", "n_val", "n_test", "size", "min_shapes", "max_shapes",
                 "min_digits", "max_digits", "height", "batch_size", prefix="data.")  # fmt: skip
        for low, high in (("min_shapes", "max_shapes"), ("min_digits", "max_digits")):
            if getattr(d, low) > getattr(d, high):
                raise ConfigError(
                    f"data.{low} ({getattr(d, low)}) is above data.{high} ({getattr(d, high)})"
                )
        if d.distort < 0:
            raise ConfigError(f"config key 'data.distort' must be >= 0, got {d.distort}")
        self.model.validate_captioner()
        positive(self.decode, "beam", "max_len", prefix="decode.")
        choice(
            "teacher.schedule",
            self.teacher.schedule,
            ("constant", "linear", "exponential", "inverse_sigmoid"),
        )
        self.train.validate()


def image_shape(d: CaptionData) -> tuple[int, int, int]:
    """(channels, height, width) of the source's images."""
    if d.source == "scenes":
        return 3, d.size, d.size
    return 1, d.height, d.max_digits * d.height


def make_split(d: CaptionData, split: str, n: int) -> tuple[np.ndarray, list[str]]:
    """``n`` images (n, C, H, W) float32 and their captions; the same for the same config."""
    seed = d.seed * 4 + SPLITS.index(split)
    if d.source == "scenes":
        return images.make_scenes(n, split, seed, d.size, d.max_shapes, d.min_shapes)
    split = "test" if split == "novel" else split
    distort = d.distort if split == "train" else 0.0
    return images.make_strips(
        n, split, seed, d.min_digits, d.max_digits, d.height, split_seed=d.seed, distort=distort
    )


class Captions:
    """Images (n, C, H, W) and captions as padded word ids (n, T+2): BOS ... EOS."""

    def __init__(self, pictures: np.ndarray, captions: list[str], tok):
        self.images = torch.from_numpy(np.ascontiguousarray(pictures, dtype=np.float32))
        self.text = list(captions)
        self.ids, _ = pad([[BOS, *tok.encode(c), EOS] for c in captions], PAD)

    def __len__(self) -> int:
        return len(self.text)

    def batch(self, rows: Tensor, device) -> tuple[Tensor, Tensor]:
        """images (b, C, H, W) and captions trimmed to the longest member (b, T')."""
        ids = self.ids[rows]
        ids = ids[:, : int((ids != PAD).sum(1).max())]
        return self.images[rows].to(device), ids.to(device)


@dataclass
class CaptionSetup:
    tok: WordTokenizer
    train: Captions | None = None
    val: Captions | None = None


@torch.no_grad()
def describe(model, pictures: Tensor, max_len: int, tok, beam: int = 1, alpha=0.0, n_best=1):
    """Captions of images (n, C, H, W): per image the n-best [(caption, score)], best first;
    greedy (score: None) when beam == 1 and n_best == 1."""
    model.eval()
    lengths = torch.ones(len(pictures), dtype=torch.long)  # unused by the image encoder
    if beam == 1 and n_best == 1:
        tokens, _ = decoding.greedy(model, pictures, lengths, max_len)
        seqs = [[(s, None)] for s in tokens.tolist()]
    else:
        seqs = decoding.beam_search(model, pictures, lengths, max_len, beam, alpha, n_best)
    return [[(tok.decode(s[: s.index(EOS)] if EOS in s else s), score) for s, score in hyps]
            for hyps in seqs]  # fmt: skip


def caption_all(model, data: Captions, max_len, tok, beam=1, alpha=0.0, batch=256) -> list[str]:
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(data), batch):
        pictures = data.images[start : start + batch].to(device)
        out += [hyps[0][0] for hyps in describe(model, pictures, max_len, tok, beam, alpha)]
    return out


def caption_scores(hyps: list[str], refs: list[str], prefix: str) -> dict:
    """Exact caption match and BLEU-1..4 (sacrebleu, one reference each)."""
    from sacrebleu.metrics import BLEU

    out = {f"{prefix}_exact": sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)}
    for n in range(1, 5):
        bleu = BLEU(max_ngram_order=n, effective_order=True)
        out[f"{prefix}_bleu{n}"] = bleu.corpus_score(hyps, [refs]).score
    return out


class CaptionLoop:
    metric, higher_is_better = "val_exact", True

    def __init__(self, setup: CaptionSetup, config: CaptionConfig, device, rank=0, world=1):
        self.setup, self.c, self.device = setup, config, device
        n, b = len(setup.train), config.data.batch_size
        self._rows = EpochRows(n, b, config.train.seed, rank, world)

    def train_step(self, model, micro: int) -> Tensor:
        pictures, ids = self.setup.train.batch(self._rows(micro), self.device)
        ratio = teacher_forcing_ratio(self.c.teacher, micro, self.c.train.steps)
        g = torch.Generator().manual_seed(micro)
        logits, alpha = model.unroll(pictures, None, ids[:, :-1], ratio, g)  # (b, T, v)
        target = ids[:, 1:]
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD)
        lam = self.c.model.doubly_stochastic
        if lam:
            loss = loss + lam * doubly_stochastic(alpha, target != PAD)
        return loss

    def evaluate(self, model) -> dict:
        c = self.c
        hyps = caption_all(model, self.setup.val, c.decode.max_len, self.setup.tok)
        return {"val_exact": caption_scores(hyps, self.setup.val.text, "val")["val_exact"]}

    def state_dict(self) -> dict[str, Tensor]:
        return {}  # the data order is a function of the step

    def load_state_dict(self, state) -> None:
        pass


class Caption(Task):
    api = {"caption": "caption"}  # rnnkit.load(RUN).caption(images)
    name = "caption"
    description = "image captioning with attention (built-in: scenes of shapes, digit strips)"
    Config = CaptionConfig
    files = ("vocab.json",)
    test_after_training = True
    commands = (
        Command(
            "caption",
            "describe images in words (PNG/JPEG, or .npy (C, H, W) in [0, 1])",
            "caption_command",
            (
                arg("images", nargs="+", help="image files"),
                arg("--beam", type=whole(1, 100), help="beam size (default: the run's)"),
                arg("--n-best", type=whole(1, 100), default=1, help="captions per image"),
                arg(
                    "--attention",
                    metavar="PNG",
                    help="draw where the model looked for each word (one file per image: "
                    "att.png, att-2.png, ...)",
                ),  # fmt: skip
            ),
        ),
    )

    def prepare(self, config: CaptionConfig, run=None, data: bool = True) -> CaptionSetup:
        d = config.data
        if run is not None:
            tok = load_tokenizer(run.read_text("vocab.json"))
            if not isinstance(tok, WordTokenizer):
                raise RunDirError(f"{run.path / 'vocab.json'} is not a word vocabulary")
            setup = CaptionSetup(tok)
            if not data:
                return setup
            train = make_split(d, "train", d.n_train)
        else:
            train = make_split(d, "train", d.n_train)
            setup = CaptionSetup(WordTokenizer.train(train[1]))
        setup.train = Captions(*train, setup.tok)
        setup.val = Captions(*make_split(d, "valid", d.n_val), setup.tok)
        return setup

    def saved(self, setup: CaptionSetup) -> dict[str, str]:
        return {"vocab.json": setup.tok.to_json()}

    def build_model(self, config: CaptionConfig, setup: CaptionSetup) -> Captioner:
        return Captioner(image_shape(config.data)[0], len(setup.tok), config.model)

    def loop(self, config, setup: CaptionSetup, device, rank, world) -> CaptionLoop:
        return CaptionLoop(setup, config, device, rank, world)

    def summary(self, config: CaptionConfig, setup: CaptionSetup, model, world: int) -> str:
        c, h, w = image_shape(config.data)
        rows, cols = model.encoder.grid(h, w)
        params = sum(p.numel() for p in model.parameters())
        return (
            f"{len(setup.train):,} training, {len(setup.val):,} validation images "
            f"({c} x {h} x {w}); attention over a {rows} x {cols} grid; "
            f"{len(setup.tok)} words; {params:,} parameters"
        )

    def score(self, loaded: Loaded, **options) -> dict:
        """Exact match and BLEU-1..4 on the test images with beam search (and greedy exact),
        and for scenes the same on the novel (colour, shape) combinations."""
        config, setup, model = loaded.config, loaded.setup, loaded.model
        d, dec = config.data, config.decode
        out: dict = {}
        parts = ("test", "novel") if d.source == "scenes" else ("test",)
        for part in parts:
            data = Captions(*make_split(d, part, d.n_test), setup.tok)
            hyps = caption_all(model, data, dec.max_len, setup.tok, dec.beam, dec.alpha)
            out |= caption_scores(hyps, data.text, part)
            greedy = caption_all(model, data, dec.max_len, setup.tok)
            out[f"{part}_exact_greedy"] = caption_scores(greedy, data.text, part)[f"{part}_exact"]
            out[f"{part}_images"] = len(data)
        return out

    # ------------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """Two graphs, as translation's: the encoder (images (b, C, H, W) -> the annotation
        grid as the memory, and the decoder's first state) and one decoder step (previous
        word, state, memory -> logits, next state, attention over the grid); the search
        (greedy or beam) is the caller's."""
        from rnnkit.export import seq2seq_graphs

        shape = image_shape(loaded.config.data)
        return seq2seq_graphs(loaded.model, 0, len(loaded.setup.tok), image=shape)

    def read(self, loaded: Loaded, path: str) -> np.ndarray:
        """One image file as the model's input (C, H, W) in [0, 1]; resized or converted (and
        said) where it can be, refused with the expected shape named where it cannot."""
        c, h, w = image_shape(loaded.config.data)
        return images.read_image(path, (h, w), c)

    def caption(self, loaded: Loaded, pictures, beam: int | None = None, n_best: int = 1):
        """Captions of images (n, C, H, W) or (C, H, W): per image the n-best
        [(caption, score)], best first (score: the beam's log-probability)."""
        x = torch.as_tensor(np.asarray(pictures, dtype=np.float32))
        expected = image_shape(loaded.config.data)
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise DataError(
                f"images of shape {tuple(x.shape)}; this model reads (n, {expected[0]}, "
                f"{expected[1]}, {expected[2]})",
                "read files with Caption.read, which resizes and converts",
            )
        beam = beam or loaded.config.decode.beam
        if n_best > beam:
            raise ConfigError(
                f"--n-best {n_best} asks for more captions than the beam keeps ({beam})",
                f"raise --beam to at least {n_best}",
            )
        d = loaded.config.decode
        return describe(loaded.model, x, d.max_len, loaded.setup.tok, beam, d.alpha, n_best)

    @torch.no_grad()
    def attention(self, loaded: Loaded, picture: np.ndarray, caption: str) -> Tensor:
        """alpha (T, H', W'): where the model looked for each word of ``caption`` (and the end),
        read by feeding the caption back with teacher forcing."""
        model, tok = loaded.model, loaded.setup.tok
        ids = torch.tensor([[BOS, *tok.encode(caption), EOS]])
        x = torch.as_tensor(picture, dtype=torch.float32).unsqueeze(0)
        _, alpha = model.unroll(x, None, ids[:, :-1])
        rows, cols = model.encoder.grid(*x.shape[2:])
        return alpha[0].view(-1, rows, cols)

    def caption_command(self, args) -> int:
        import sys

        from rnnkit.tasks.caption_plot import attention_figure
        from rnnkit.viz import save_png

        loaded = self.load(args.run)
        status = 0
        for k, path in enumerate(args.images):
            try:
                picture = self.read(loaded, path)
            except DataError as err:
                hint = f" ({err.hint})" if err.hint else ""
                print(f"rnnkit: error: {err.message}{hint}", file=sys.stderr)
                status = 2
                continue
            hyps = self.caption(loaded, picture, args.beam, args.n_best)[0]
            name = f"{path}: " if len(args.images) > 1 else ""
            for text, score in hyps:
                shown = text if score is None or args.n_best == 1 else f"{score:.3f}\t{text}"
                print(f"{name}{shown}")
            if args.attention:
                out = Path(args.attention)
                if k:
                    out = out.with_name(f"{out.stem}-{k + 1}{out.suffix}")
                alpha = self.attention(loaded, picture, hyps[0][0])
                save_png(attention_figure(picture, hyps[0][0], alpha), out)
                print(f"attention: {out}", file=sys.stderr)
        return status

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.caption_plot import report_sections

        return report_sections(self, loaded)
