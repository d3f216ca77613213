"""The configs of the memory tasks: one dataclass per task, its sections addressed with dotted
keys (``model.cell=lstm``, ``data.max_len=20``). `rnnkit.config.build` constructs each nested
section from its class, so per-task defaults are subclasses (`NTMTrain`, `CopyEval`, ...), and the
data sections (`rnnkit.tasks.algorithmic_data`) carry their generators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError
from rnnkit.memory import MEMORY_INITS
from rnnkit.models.ntm import CONTROLLERS
from rnnkit.models.sequence import SequenceModelConfig
from rnnkit.models.stack import CELLS
from rnnkit.tasks.algorithmic_data import (
    AddingData,
    CopyData,
    CopyMemoryData,
    DigitsData,
    RecallData,
    RepeatCopyData,
    SortData,
)
from rnnkit.training import TrainConfig

MODELS = ("ntm", *CELLS)


@dataclass
class ModelConfig(SequenceModelConfig):
    """The NTM (cell=ntm), or a recurrent stack (`rnnkit.models.stack`) read out at each step."""

    cell: str = "ntm"  # ntm | lstm | gru | rnn
    hidden: int = 100  # controller units (ntm), or hidden units per layer
    layers: int = 1  # stacked layers (lstm | gru | rnn)
    controller: str = "lstm"  # ntm only: lstm | ff
    locations: int = 128  # ntm only: memory locations n
    word: int = 20  # ntm only: word size m
    read_heads: int = 1  # ntm only
    write_heads: int = 1  # ntm only
    shift_range: int = 1  # ntm only: shifts -r..r per step
    memory_init: str = "constant"  # ntm only: constant | learned | random
    output_clip: float = 0.0  # ntm only: clamp the heads' pre-activations to [-c, c] (0: off)


@dataclass
class LSTMModel(ModelConfig):
    cell: str = "lstm"
    hidden: int = 128


@dataclass
class CurriculumConfig:
    enabled: bool = False  # grow the sequence length as the training loss falls
    start: int = 2  # the first longest length (items for recall, delay for adding)
    grow: int = 2  # added to the longest length at each promotion
    threshold: float = 1.0  # promote when the running training loss is below this
    smoothing: float = 0.95  # running loss = smoothing * running + (1 - smoothing) * loss


@dataclass
class EvalConfig:
    batches: int = 4  # held-out batches per evaluation
    batch_size: int = 64  # sequences per held-out batch
    lengths: str = ""  # comma-separated lengths for generalisation, e.g. "20,40,60"
    seed: int = 1234  # seeds the held-out batches (different from training's)

    def length_list(self) -> list[int]:
        try:
            return [int(s) for s in self.lengths.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(
                f"config key 'eval.lengths' must be comma-separated integers, got {self.lengths!r}",
                "for example eval.lengths=20,40,60",
            ) from None


@dataclass
class NTMTrain(TrainConfig):
    steps: int = 2000
    optimizer: str = "adam"
    lr: float = 2e-3
    clip: float = 10.0  # clip the gradient norm at 10 (the paper clips each entry to [-10, 10])
    eval_every: int = 100
    checkpoint_every: int = 500


@dataclass
class RNNTrain(TrainConfig):
    steps: int = 3000
    lr: float = 1e-3
    clip: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 500


@dataclass
class AddingTrain(RNNTrain):
    steps: int = 2000
    lr: float = 1e-2  # at 1e-3 the LSTM sat on the 0.15 plateau for 3000 steps


class _Validated:
    def validate(self) -> None:
        m = self.model
        choice("model.cell", m.cell, MODELS)
        if m.cell != "ntm":
            m.validate_model()
            choice("model.head", m.head, ("step",))  # these tasks score every step
        choice("model.controller", m.controller, CONTROLLERS)
        choice("model.memory_init", m.memory_init, MEMORY_INITS)
        positive(m, "hidden", "layers", "locations", "word", "read_heads", prefix="model.")
        positive(m, "write_heads", "shift_range", prefix="model.", allow_zero=True)
        positive(self.curriculum, "start", "grow", "threshold", prefix="curriculum.")
        positive(self.eval, "batches", "batch_size", prefix="eval.")
        self.eval.length_list()
        self.data.validate()
        self.train.validate()


# build() constructs nested sections from their classes, so per-task defaults are subclasses
@dataclass
class CopyEval(EvalConfig):
    lengths: str = "10,20,30,40,50,60"


@dataclass
class RepeatCopyEval(EvalConfig):
    lengths: str = "10,15,20"


@dataclass
class RecallEval(EvalConfig):
    lengths: str = "6,8,12"


@dataclass
class CopyConfig(_Validated):
    data: CopyData = field(default_factory=CopyData)
    model: ModelConfig = field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: CopyEval = field(default_factory=CopyEval)
    train: NTMTrain = field(default_factory=NTMTrain)


@dataclass
class RepeatCopyConfig(_Validated):
    data: RepeatCopyData = field(default_factory=RepeatCopyData)
    model: ModelConfig = field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: RepeatCopyEval = field(default_factory=RepeatCopyEval)
    train: NTMTrain = field(default_factory=NTMTrain)


@dataclass
class RecallConfig(_Validated):
    data: RecallData = field(default_factory=RecallData)
    model: ModelConfig = field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: RecallEval = field(default_factory=RecallEval)
    train: NTMTrain = field(default_factory=NTMTrain)


@dataclass
class SortConfig(_Validated):
    data: SortData = field(default_factory=SortData)
    model: ModelConfig = field(default_factory=ModelConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: NTMTrain = field(default_factory=NTMTrain)


@dataclass
class AddingConfig(_Validated):
    data: AddingData = field(default_factory=AddingData)
    model: LSTMModel = field(default_factory=LSTMModel)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: AddingTrain = field(default_factory=AddingTrain)


@dataclass
class CopyMemoryConfig(_Validated):
    data: CopyMemoryData = field(default_factory=CopyMemoryData)
    model: LSTMModel = field(default_factory=LSTMModel)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: RNNTrain = field(default_factory=RNNTrain)


@dataclass
class DigitsConfig(_Validated):
    data: DigitsData = field(default_factory=DigitsData)
    model: LSTMModel = field(default_factory=LSTMModel)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: RNNTrain = field(default_factory=RNNTrain)
