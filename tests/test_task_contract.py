"""A new task is one file: this one. It subclasses Task and nothing else changes, yet
`rnnkit tasks`, `train`, `resume`, `evaluate`, `report` and its own command all work on it."""

import json
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F

from rnnkit import tasks
from rnnkit.cli import main
from rnnkit.models import SequenceModel, SequenceModelConfig
from rnnkit.tasks import Command, Task, arg
from rnnkit.training import TrainConfig


@dataclass
class RecallFirstData:
    length: int = 6  # bits per sequence
    batch_size: int = 32


@dataclass
class RecallFirstModel(SequenceModelConfig):
    cell: str = "gru"
    hidden: int = 16
    head: str = "last"  # one answer per sequence


@dataclass
class RecallFirstConfig:
    data: RecallFirstData = field(default_factory=RecallFirstData)
    model: RecallFirstModel = field(default_factory=RecallFirstModel)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=150, lr=0.02, eval_every=50, device="cpu")
    )

    def validate(self) -> None:
        self.model.validate_model()
        self.train.validate()


def batch(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random bit sequences (n, length) and their first bit: many-to-one with a long memory."""
    bits = torch.randint(0, 2, (n, length), generator=torch.Generator().manual_seed(seed))
    return bits, bits[:, 0]


class RecallFirstLoop:
    metric, higher_is_better = "accuracy", True

    def __init__(self, config):
        self.config = config
        self.held_out = batch(256, config.data.length, seed=10**6)

    def train_step(self, model, micro: int):
        x, y = batch(self.config.data.batch_size, self.config.data.length, seed=micro)
        logits, _ = model(x)
        return F.cross_entropy(logits, y)

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        x, y = self.held_out
        return {"accuracy": (model(x)[0].argmax(-1) == y).float().mean().item()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state) -> None:
        pass


class RecallFirst(Task):
    name = "toy_recall_first"
    description = "toy: say the first bit of a random bit sequence"
    Config = RecallFirstConfig
    commands = (
        Command(
            "first-bit",
            "print the model's answer for one bit string",
            "first_bit",
            (arg("bits", help="e.g. 101100"),),
        ),
    )

    def build_model(self, config, setup):
        return SequenceModel(2, 2, config.model, vocab=True, embed=4)

    def loop(self, config, setup, device, rank, world):
        return RecallFirstLoop(config)

    def report(self, loaded, **options):
        return [("Answers", lambda: "<p>first bits, answered</p>")]

    def first_bit(self, args) -> int:
        model = self.load(args.run).model
        x = torch.tensor([[int(b) for b in args.bits]])
        print(int(model(x)[0].argmax(-1)))
        return 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    assert main(["train", "toy_recall_first", "--out", str(out), "--quiet"]) == 0
    return out


def test_the_registry_and_cli_list_it(capsys):
    assert tasks.get("toy_recall_first").description.startswith("toy")
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "toy_recall_first: toy" in out and "commands: first-bit" in out


def test_it_trains_learns_and_evaluates_from_the_run_alone(run, capsys):
    final = json.loads((run / "metrics.json").read_text())
    assert final["accuracy"] > 0.95  # chance is 0.5: the GRU carried the first bit 6 steps
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == final["accuracy"]


def test_its_own_command_and_report_section(run, capsys):
    assert main(["first-bit", str(run), "100000"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert main(["first-bit", str(run), "011111"]) == 0
    assert capsys.readouterr().out.strip() == "0"
    assert main(["report", str(run)]) == 0
    assert "<h2>Answers</h2><p>first bits, answered</p>" in (run / "report.html").read_text()


def test_resume_continues_to_more_steps(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "more"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["train"]["steps"] = 160
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["resume", str(copy), "--quiet"]) == 0
    steps = [json.loads(line)["step"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 160 and steps == sorted(steps)


def test_another_tasks_command_is_refused_by_name(run, capsys):
    assert main(["sample", str(run)]) == 2
    err = capsys.readouterr().err
    assert "`rnnkit sample` does not apply to a 'toy_recall_first' run" in err
    assert "first-bit" in err
