"""Generators yield valid sequences whose answers are known exactly; the tasks train, resume
exactly and evaluate through the registry."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rnnkit import cli, tasks
from rnnkit.config import build, to_dict
from rnnkit.data import algorithmic as gen
from rnnkit.errors import ConfigError
from rnnkit.run import RunDir
from rnnkit.tasks import algorithmic as alg
from rnnkit.training import Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def G(seed=0):
    return torch.Generator().manual_seed(seed)


def test_copy_answers_are_the_inputs():
    batch = gen.copy(16, G(), 1, 20, bits=8)
    x, y, mask = batch
    assert x.shape[-1] == 9 and y.shape[-1] == 8 and x.shape[1] == y.shape[1] == mask.shape[1]
    for k in range(16):
        n = int(x[k, :, 8].argmax())  # the delimiter
        assert 1 <= n <= 20 and x[k, :, 8].sum() == 1
        assert torch.equal(y[k][mask[k]], x[k, :n, :8])
        assert mask[k].sum() == n and mask[k, n + 1 : 2 * n + 1].all()
        assert x[k, n + 1 :].abs().sum() == 0  # nothing to see while answering
    assert set(x[..., :8].unique().tolist()) <= {0.0, 1.0}


def test_copy_fixed_length_and_reproducible():
    a, b = gen.copy(4, G(3), length=7), gen.copy(4, G(3), length=7)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert a.x.shape[1] == 15 and (a.mask.sum(1) == 7).all()
    with pytest.raises(ConfigError, match="1 <= min_len <= max_len, got 5 and 2"):
        gen.copy(2, G(), 5, 2)


def test_repeat_copy():
    x, y, mask = gen.repeat_copy(8, G(), 1, 5, 1, 4, bits=4)
    for k in range(8):
        n = int((x[k, :, 4] > 0).float().argmax())
        r = round(float(x[k, n, 4]) * 4)
        seq = x[k, :n, :4]
        scored = y[k][mask[k]]  # (r n + 1, 5)
        assert scored.shape[0] == r * n + 1
        assert torch.equal(scored[:-1, :4], seq.repeat(r, 1))
        assert scored[-1, 4] == 1 and scored[:-1, 4].sum() == 0 and scored[-1, :4].sum() == 0


def test_associative_recall():
    x, y, mask = gen.associative_recall(8, G(), 2, 6, item_len=3, bits=6)
    for k in range(8):
        item_starts = torch.nonzero(x[k, :, 6]).flatten().tolist()
        n = len(item_starts)
        items = [x[k, s + 1 : s + 4, :6] for s in item_starts]
        q0, q1 = torch.nonzero(x[k, :, 7]).flatten().tolist()
        assert q1 - q0 == 4 and q0 == n * 4
        query = x[k, q0 + 1 : q1, :6]
        q = [j for j, item in enumerate(items) if torch.equal(item, query)]
        assert len(q) == 1 and q[0] < n - 1
        assert torch.equal(y[k][mask[k]], items[q[0] + 1])


def test_priority_sort():
    x, y, mask = gen.priority_sort(4, G(), 20, 20, keep=16, bits=8)
    for k in range(4):
        priority = x[k, :20, 8]
        assert ((priority >= -1) & (priority <= 1)).all() and x[k, 20, 9] == 1
        order = sorted(range(20), key=lambda j: -float(priority[j]))[:16]
        assert torch.equal(y[k][mask[k]], x[k, order, :8])


def test_adding():
    x, y, mask = gen.adding(32, G(), length=50)
    assert x.shape == (32, 50, 2) and (mask.sum(1) == 1).all() and mask[:, -1].all()
    markers = x[..., 1]
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all()
    torch.testing.assert_close(y[:, -1, 0], (x[..., 0] * markers).sum(1))
    # predicting 1 costs Var(u1 + u2) = 1/6
    big = gen.adding(20000, G(1), length=10)
    assert abs(((big.y[:, -1, 0] - 1) ** 2).mean().item() - 1 / 6) < 0.01


def test_copy_memory():
    x, y, mask = gen.copy_memory(8, G(), length=30, symbols=10)
    assert x.shape == (8, 50, 10) and y.shape == (8, 50) and mask.all()
    ids = x.argmax(-1)
    assert torch.equal(y[:, -10:], ids[:, :10]) and (y[:, :-10] == 0).all()
    assert ((ids[:, :10] >= 1) & (ids[:, :10] <= 8)).all()
    assert (ids[:, 39] == 9).all() and (ids[:, 10:39] == 0).all() and (ids[:, 40:] == 0).all()


@pytest.mark.parametrize("mode,shape", [("row", (5, 8, 8)), ("pixel", (5, 64, 1))])
def test_digits(mode, shape):
    pytest.importorskip("sklearn")
    train, val = gen.digits_split(0.2, seed=0)
    assert len(train) + len(val) == 1797 and len(set(train.tolist()) & set(val.tolist())) == 0
    x, y, mask = gen.digits(val[:5], mode)
    images, labels = gen.load_digits()
    assert x.shape == shape and torch.equal(x.reshape(5, 64), images[val[:5]].reshape(5, 64))
    assert torch.equal(y[:, -1], labels[val[:5]]) and mask[:, -1].all() and mask.sum() == 5


# ----------------------------------------------------------------------------- tasks
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY_NTM = {"model.hidden": 8, "model.locations": 8, "model.word": 4}
TINY = {
    "train.steps": 3,
    "train.eval_every": 3,
    "train.device": "cpu",
    "eval.batches": 1,
    "eval.batch_size": 4,
    "data.batch_size": 4,
}
SHORT = {
    "copy": {"data.max_len": 4, "eval.lengths": "6"},
    "repeat_copy": {"data.max_len": 3, "data.max_repeats": 2, "eval.lengths": "4"},
    "recall": {"data.max_len": 3, "eval.lengths": "4"},
    "sort": {"data.min_len": 5, "data.max_len": 5, "data.keep": 3},
    "adding": {"data.seq_len": 10, "eval.lengths": "20"},
    "copy_memory": {"data.seq_len": 5},
    "digits": {},
}


def tiny(name, **extra):
    task = tasks.get(name)
    kind = "ntm" if name in ("copy", "repeat_copy", "recall", "sort") else "lstm"
    values = TINY | SHORT[name] | TINY_NTM | {"model.cell": kind, "model.hidden": 8} | extra
    return task, build(task.Config, overrides=values)


@pytest.mark.parametrize("name", list(SHORT))
def test_every_task_trains_and_evaluates(name, tmp_path):
    if name == "digits":
        pytest.importorskip("sklearn")
    task, config = tiny(name)
    metrics = task.train(config, tmp_path / "run", progress=False)
    assert task.metric in metrics and math.isfinite(metrics[task.metric])
    for n in config.eval.length_list():
        assert any(key.endswith(f"@{n}") for key in metrics)
    again = task.evaluate(tmp_path / "run")
    assert again[task.metric] == pytest.approx(metrics[task.metric], rel=1e-4)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["task"] == name


def test_registry_lists_the_memory_tasks():
    for name in SHORT:
        task = tasks.get(name)
        assert name == task.name and task.description and hasattr(task, "resume")


def test_cost_in_bits_is_exact():
    batch = gen.copy(3, G(), length=4, bits=8)  # 4 x 8 scored bits per sequence
    assert alg.loss_of("bits", torch.zeros_like(batch.y), batch).item() == pytest.approx(32)
    perfect = (batch.y * 2 - 1) * 50
    assert alg.loss_of("bits", perfect, batch).item() < 1e-6

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return perfect, None

    assert alg.metrics_of("bits", Oracle(), [batch], None)["bit_errors"] == 0


def test_curriculum_grows_and_round_trips():
    task, config = tiny("copy", **{"curriculum.enabled": True, "curriculum.start": 2})
    _, loop = task.build(config)
    assert loop.cap == 2 and loop.train_step
    loop.curriculum_step(None, {"loss": 5.0})  # running 5 > threshold 1: stay
    assert loop.cap == 2
    for _ in range(200):
        loop.curriculum_step(None, {"loss": 0.0})
    assert loop.cap == 4  # data.max_len
    state = loop.state_dict()
    _, fresh = task.build(config)
    fresh.load_state_dict(state)
    assert fresh.cap == 4 and fresh.running == loop.running
    sampled = loop.source.sample(8, G(), cap=2)
    assert sampled.mask.sum(1).max() <= 2


def test_interrupt_then_resume_is_exact(tmp_path):
    """Stop after 3 of 6 steps, resume: the same parameters as 6 steps straight, curriculum too."""
    values = {"train.steps": 6, "train.checkpoint_every": 3, "curriculum.enabled": True}
    values |= {"curriculum.threshold": 1e9, "curriculum.grow": 1, "curriculum.start": 1}
    task, config = tiny("copy", **values)
    task.train(config, tmp_path / "straight", progress=False)

    def stop_at_3(trainer, record):
        if trainer.step == 3:
            trainer._stop_requested = True

    model, loop = task.build(config)
    run = RunDir.create(tmp_path / "cut", "copy", to_dict(config))
    Trainer(
        model, loop, config.train, run, progress=False, callbacks=(loop.curriculum_step, stop_at_3)
    ).fit()
    task.resume(tmp_path / "cut", progress=False)
    for name in ("model.safetensors", "last.safetensors"):
        a = load_file(tmp_path / "straight" / name)
        b = load_file(tmp_path / "cut" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_trains_through_the_registry(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "adding", "--out", str(out), "--quiet", "model.cell=rnn", "data.seq_len=8"]
    args += ["train.steps=2", "eval.batches=1", "eval.batch_size=4", "model.hidden=4"]
    assert cli.main(args) == 0
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    assert "mse" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_takes_evaluation_settings_and_the_last_parameters(tmp_path, capsys):
    """`rnnkit evaluate RUN eval.lengths=... [--last]`: the settings of this evaluation only;
    a key that would change the model is refused by name; --last reads last.safetensors."""
    task, config = tiny("copy", **{"train.steps": 6, "train.eval_every": 2})
    task.train(config, tmp_path / "run", progress=False)
    run = str(tmp_path / "run")
    assert cli.main(["evaluate", run, "eval.lengths=7,9", "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"bit_errors@7", "bit_errors@9"} <= set(got) and "bit_errors@4" not in got
    loaded = task.load(run)
    loaded.config.eval.lengths = "7,9"
    assert got == task.score(loaded)  # the override is the same as changing the config
    assert json.loads((tmp_path / "run/config.json").read_text())["eval"]["lengths"] != "7,9"

    assert cli.main(["evaluate", run, "model.hidden=3"]) == 2
    err = capsys.readouterr().err
    assert "cannot change model.hidden" in err and "eval.lengths" in err

    assert cli.main(["evaluate", run, "--last", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == task.score(task.load(run, weights="last"))
    saved = json.loads((tmp_path / "run/metrics.json").read_text())
    assert last["cost_bits"] == pytest.approx(saved["last"]["cost_bits"], rel=1e-5)
    best = task.evaluate(run)
    assert best["cost_bits"] == pytest.approx(saved["cost_bits"], rel=1e-5)
    assert best["cost_bits"] <= last["cost_bits"]
    (tmp_path / "run/last.safetensors").unlink()  # a run from before the best was kept apart
    assert cli.main(["evaluate", run, "--last"]) == 2
    assert "keeps no last parameters" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override,message",
    [
        ({"model.cell": "transformer"}, "model.cell' must be one of ntm, rnn, lstm, gru"),
        ({"eval.lengths": "10,x"}, "comma-separated integers"),
        ({"data.min_len": 5, "data.max_len": 2}, "data.max_len' must be >= data.min_len"),
    ],
)
def test_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        build(tasks.get("copy").Config, overrides=override)


@pytest.mark.parametrize("name", list(SHORT))
def test_yaml_presets_load(name):
    config = build(tasks.get(name).Config, CONFIGS / f"{name}.yaml")
    assert config.train.steps > 0


@pytest.mark.slow
def test_ntm_copy_target(tmp_path):
    """The README's target: below 1 bit per sequence within 30,000 sequences (~8 min)."""
    task = tasks.get("copy")
    config = build(task.Config, CONFIGS / "copy.yaml", {"train.device": "cpu"})
    metrics = task.train(config, tmp_path / "run", progress=False)
    assert config.train.steps * config.data.batch_size <= 30000
    assert metrics["best"] < 1.0, metrics


@pytest.mark.slow
def test_adding_lstm_target(tmp_path):
    """The README's target: an LSTM below 0.01 mean squared error at T = 100 (~3 min)."""
    task = tasks.get("adding")
    config = build(task.Config, CONFIGS / "adding.yaml", {"train.device": "cpu"})
    metrics = task.train(config, tmp_path / "run", progress=False)
    assert metrics["mse"] < 0.01, metrics


def test_plots_render(tmp_path, capsys):
    task, config = tiny("copy", **{"train.steps": 2, "train.eval_every": 1})
    task.train(config, tmp_path / "ntm", progress=False)
    task, config = tiny("adding", **{"train.steps": 2, "model.cell": "rnn"})
    task.train(config, tmp_path / "rnn", progress=False)
    jobs = [
        ["sequence", str(tmp_path / "ntm"), "--length", "5"],
        ["lengths", str(tmp_path / "ntm"), "--lengths", "2,6"],
        ["curves", str(tmp_path / "ntm"), "--metric", "cost_bits", "--log"],
        ["gradients", str(tmp_path / "rnn"), str(tmp_path / "ntm"), "--labels", "rnn,ntm"],
    ]
    for k, args in enumerate(jobs):
        out = tmp_path / f"{k}.png"
        assert cli.main(["plot", *args, "--out", str(out)]) == 0
        assert out.read_bytes()[:4] == b"\x89PNG"
    mistakes = [
        (["sequence", str(tmp_path / "rnn")], "the figure needs an NTM"),
        (["lengths", str(tmp_path / "ntm"), "--lengths", "2,x"], "--lengths must be"),
        (["gradients", str(tmp_path / "rnn"), "--labels", "a,b"], "--labels has 2 label(s)"),
        (["curves", str(tmp_path / "rnn"), "--metric", "nope"], "logged no 'nope'"),
    ]
    for args, message in mistakes:
        out = tmp_path / "bad.png"
        assert cli.main(["plot", *args, "--out", str(out)]) == 2, args
        assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name,memory", [("copy", "learned"), ("adding", "")])
def test_exported_models_run_in_onnx_runtime_as_trained(name, memory, tmp_path, capsys):
    """The NTM as its first state and its steps (the time loop in the caller, state fed back),
    a recurrent stack as one graph: ONNX Runtime gives the trained model's outputs."""
    ort = pytest.importorskip("onnxruntime")
    from rnnkit.cli import main

    extra = {"model.memory_init": memory} if memory else {}
    task, config = tiny(name, **extra)
    task.train(config, tmp_path / "run", progress=False)
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "run"), "--out", str(out)]) == 0
    loaded = tasks.load(tmp_path / "run")
    inputs = task.Source(loaded.config.data).sizes()[0]
    x = torch.rand(3, 9, inputs, generator=torch.Generator().manual_seed(0)).round()
    with torch.no_grad():
        expected = loaded.model(x)[0].numpy()
    if name == "adding":
        session = ort.InferenceSession(str(out))
        lengths = np.full(3, 9, dtype=np.int64)
        got = session.run(None, {"features": x.numpy(), "lengths": lengths})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4)
        return
    assert "m.init.onnx" in capsys.readouterr().out
    init = ort.InferenceSession(str(tmp_path / "m.init.onnx"))
    step = ort.InferenceSession(str(tmp_path / "m.step.onnx"))
    names = [i.name for i in step.get_inputs()][1:]  # the state, after x
    state = dict(zip(names, init.run(None, {"x": x[:, :1].numpy()}), strict=True))
    ys = []
    for t in range(9):
        y, *after = step.run(None, {"x": x[:, t : t + 1].numpy(), **state})
        state = dict(zip(names, after, strict=True))
        ys.append(y)
    np.testing.assert_allclose(np.concatenate(ys, axis=1), expected, atol=1e-4)
