"""The training engine: exact resume after kill -9, atomic saves, the non-finite guard,
schedules, accumulation, clipping, early stopping, truncated BPTT and data parallelism."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.errors import ConfigError, RnnkitError, RunDirError
from rnnkit.run import RunDir
from rnnkit.training import TBPTTConfig, TrainConfig, Trainer, TruncatedBPTT, learning_rate

SENTENCE = "the quick brown fox jumps over the lazy dog. "
TRAIN = [
    "model.hidden=32",
    "model.layers=2",
    "model.embed=8",
    "model.dropout=0.2",
    "tbptt.k1=16",
    "data.batch_size=4",
    "data.val_fraction=0.1",
    "train.steps=80",
    "train.eval_every=20",
    "train.checkpoint_every=5",
    "train.keep_last=2",
    "train.schedule=cosine",
    "train.warmup=5",
]


# ----------------------------------------------------------------------------- exact resume


def _cli(*args, patch: str = "") -> subprocess.Popen:
    code = patch + "import sys; from rnnkit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _logged_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (FileNotFoundError, json.JSONDecodeError, IndexError):
        return 0


def _interrupt_at(proc: subprocess.Popen, run: Path, step: int, sig=signal.SIGKILL) -> None:
    deadline = time.time() + 120
    while proc.poll() is None and _logged_step(run) < step and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.communicate(timeout=120)


# SIGKILL the process inside its 4th checkpoint save: the files are written into step-*.tmp and
# fsynced, the directory not yet renamed into place.
KILL_IN_SAVE = """
import os, signal
from rnnkit import checkpoint
_orig, _calls = checkpoint._fsync_dir, [0]
def _fsync_dir(path):
    _calls[0] += 1
    if path.name.endswith('.tmp') and _calls[0] >= 7:
        os.kill(os.getpid(), signal.SIGKILL)
    _orig(path)
checkpoint._fsync_dir = _fsync_dir
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    f = tmp_path_factory.mktemp("engine") / "fox.txt"
    f.write_text(SENTENCE * 40, encoding="utf-8")
    return f


def test_resume_after_kills_is_bitwise_identical(tmp_path, corpus):
    data = f"data.path={corpus}"
    ref, run = tmp_path / "ref", tmp_path / "run"
    _, err = (
        proc := _cli("train", "charlm", "--quiet", "--out", str(ref), data, *TRAIN)
    ).communicate(timeout=300)
    assert proc.returncode == 0, err

    # 1. killed in the middle of a checkpoint save
    proc = _cli("train", "charlm", "--quiet", "--out", str(run), data, *TRAIN, patch=KILL_IN_SAVE)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert list((run / "checkpoints").glob("*.tmp")), "the kill did not land inside a save"
    # 2. killed at arbitrary steps, mid-epoch (an epoch here is 10 steps)
    for step in (23, 41):
        _interrupt_at(_cli("resume", str(run), "--quiet"), run, step)
        assert _logged_step(run) < 80
    # 3. a Ctrl-C: saves, and exits 130 (interrupted) rather than 0 (finished)
    proc = _cli("resume", str(run), "--quiet")
    _interrupt_at(proc, run, 57, signal.SIGINT)
    assert proc.returncode == 130
    # 4. to the end
    _, err = (proc := _cli("resume", str(run), "--quiet")).communicate(timeout=300)
    assert proc.returncode == 0, err

    a, b = load_file(ref / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the log holds each step once, with the same numbers as the uninterrupted run; its clocks
    # continue across the resumes instead of starting again
    clocks = ("train_seconds", "wall_seconds")
    logs = [RunDir(r).read_records() for r in (ref, run)]
    assert [{k: v for k, v in r.items() if k not in clocks} for r in logs[0]] == [
        {k: v for k, v in r.items() if k not in clocks} for r in logs[1]
    ]
    for clock in clocks:
        values = [r[clock] for r in logs[1]]
        assert len(values) == 80 and values == sorted(values) and values[0] > 0, clock
    assert all(r["train_seconds"] <= r["wall_seconds"] for r in logs[1])
    assert not list((run / "checkpoints").glob("*.tmp"))
    steps = checkpoint.available(run / "checkpoints")
    assert steps[-2:] == [75, 80] and len(steps) <= 3  # keep_last=2, plus the best


def test_resume_errors(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "missing")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "run.json").write_text('{"task": "nosuchtask"}')
    assert main(["resume", str(tmp_path)]) == 2
    assert "incomplete: missing config.json" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")
    assert main(["resume", str(tmp_path)]) == 2
    assert "unknown task 'nosuchtask'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- checkpoints


def _tensors():
    return {"w": torch.arange(6.0).view(2, 3), "rng": torch.get_rng_state()}


def test_exception_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, 1, _tensors(), {"step": 1})

    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_fsync_dir", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, 2, {"w": torch.zeros(2)}, {"step": 2})
    assert checkpoint.available(tmp_path) == [1]
    assert not list(tmp_path.glob("*.tmp"))
    tensors, state = checkpoint.load(tmp_path)
    assert state == {"step": 1} and torch.equal(tensors["w"], _tensors()["w"])


def test_corrupted_and_malicious_checkpoints_are_refused(tmp_path):
    import pickle

    checkpoint.save(tmp_path, 3, _tensors(), {"step": 3})
    f = tmp_path / "step-0000003" / checkpoint.TENSORS
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(RunDirError, match="could not be read"):
        checkpoint.load(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    f.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(RunDirError, match="could not be read"):
        checkpoint.load(tmp_path)
    assert not marker.exists()
    with pytest.raises(RunDirError, match="no complete checkpoint"):
        checkpoint.load(tmp_path / "empty")


def test_optimizer_state_round_trips_through_safetensors_and_json():
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors = {}
    meta = json.loads(json.dumps(checkpoint.split_state_dict("o", opt.state_dict(), tensors)))
    back = checkpoint.join_state_dict(meta, tensors)
    want = opt.state_dict()
    assert back["param_groups"] == want["param_groups"]  # tuples stay tuples (betas)
    for i, s in want["state"].items():
        for k, v in s.items():
            assert torch.equal(back["state"][i][k], v)


# ----------------------------------------------------------------------------- the loop


class ToyLoop:
    """Linear regression in batches of 8; ``nan_at`` poisons the loss of those micro-steps."""

    metric, higher_is_better = "val", False

    def __init__(self, nan_at=(), metric_values=None):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5])
        self.nan_at, self.metric_values, self.evals = set(nan_at), metric_values, 0

    def train_step(self, model, micro):
        i = micro % 8
        xb, yb = self.x[i * 8 : (i + 1) * 8], self.y[i * 8 : (i + 1) * 8]
        loss = ((model(xb).squeeze(-1) - yb) ** 2).mean()
        return loss * float("nan") if micro in self.nan_at else loss

    def evaluate(self, model):
        self.evals += 1
        if self.metric_values is not None:
            return {"val": self.metric_values[self.evals - 1]}
        return {"val": ((model(self.x).squeeze(-1) - self.y) ** 2).mean().item()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _trainer(tmp_path, loop, **kw):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    config = TrainConfig(**({"steps": 10, "lr": 0.05, "device": "cpu", "clip": 0.0} | kw))
    run = RunDir.create(tmp_path / "run", "toy", {}) if tmp_path else None
    return Trainer(model, loop, config, run, progress=False), model


def test_non_finite_steps_are_skipped_counted_and_logged(tmp_path):
    trainer, model = _trainer(tmp_path, ToyLoop(nan_at={3, 4}), eval_every=5, lr=0.3)
    start = ToyLoop().evaluate(model)["val"]
    metrics = trainer.fit()
    assert trainer.skipped == 2 and all(torch.isfinite(p).all() for p in model.parameters())
    records = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("skipped")] == [4, 5]
    assert json.loads((tmp_path / "run/metrics.json").read_text())["skipped_steps"] == 2
    assert metrics["val"] < 0.7 * start  # the 8 good steps still trained


def test_repeated_non_finite_steps_stop_with_the_last_good_checkpoint(tmp_path):
    trainer, _ = _trainer(
        tmp_path, ToyLoop(nan_at=set(range(5, 100))), checkpoint_every=2, max_bad_steps=3
    )
    with pytest.raises(RnnkitError, match="3 steps in a row had a non-finite"):
        trainer.fit()
    root = tmp_path / "run/checkpoints"
    assert checkpoint.available(root)[-1] == 4
    tensors, state = checkpoint.load(root)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in tensors.values())


def test_learning_rate_schedules_hand_worked():
    c = TrainConfig(steps=110, lr=1.0, warmup=10, min_lr=0.1, schedule="cosine")
    assert learning_rate(c, 0) == pytest.approx(0.1) and learning_rate(c, 9) == pytest.approx(1)
    assert learning_rate(c, 10) == pytest.approx(1.0)
    assert learning_rate(c, 60) == pytest.approx(0.55)  # half-way: (1 + 0.1) / 2
    assert learning_rate(c, 110) == pytest.approx(0.1)
    s = TrainConfig(lr=1.0, schedule="step", step_size=30, gamma=0.5)
    assert [learning_rate(s, t) for t in (0, 29, 30, 61)] == [1.0, 1.0, 0.5, 0.25]
    p = TrainConfig(lr=1.0, schedule="plateau", min_lr=0.2)
    assert learning_rate(p, 5, plateau_scale=0.5) == 0.5
    assert learning_rate(p, 5, plateau_scale=0.01) == 0.2


def test_cosine_on_the_time_clock_ends_with_the_time_limit():
    c = TrainConfig(lr=1.0, min_lr=0.1, schedule="cosine", schedule_clock="time", max_minutes=2)
    assert learning_rate(c, 10**6, seconds=0.0) == pytest.approx(1.0)  # steps do not count
    assert learning_rate(c, 3, seconds=60.0) == pytest.approx(0.55)  # half the time
    assert learning_rate(c, 3, seconds=500.0) == pytest.approx(0.1)  # past the end: the floor
    w = TrainConfig(**{**c.__dict__, "warmup": 4})
    assert learning_rate(w, 1, seconds=60.0) == pytest.approx(0.55 * 2 / 4)  # warm-up scales
    for bad in ({"max_minutes": 0}, {"schedule": "constant"}):
        with pytest.raises(ConfigError, match="schedule_clock.*max_minutes"):
            TrainConfig(**{**c.__dict__, **bad}).validate()


def test_gradient_accumulation_equals_the_whole_batch():
    class Halves(ToyLoop):  # micro-step j of step s: half of the 16-row batch s
        def train_step(self, model, micro):
            return super().train_step(model, micro)

    class Whole(ToyLoop):  # the same 16 rows at once
        def train_step(self, model, micro):
            xb, yb = self.x[micro * 16 : (micro + 1) * 16], self.y[micro * 16 : (micro + 1) * 16]
            return ((model(xb).squeeze(-1) - yb) ** 2).mean()

    a, model_a = _trainer(None, Halves(), steps=3, accumulate=2, optimizer="sgd", momentum=0.0)
    b, model_b = _trainer(None, Whole(), steps=3, accumulate=1, optimizer="sgd", momentum=0.0)
    a.fit(), b.fit()
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_clipping_by_value_and_by_norm():
    for mode in ("value", "norm"):
        trainer, model = _trainer(
            None,
            ToyLoop(),
            steps=1,
            optimizer="sgd",
            momentum=0.0,
            lr=1.0,
            clip=0.01,
            clip_mode=mode,
        )
        before = [p.detach().clone() for p in model.parameters()]
        trainer.fit()
        change = torch.cat(
            [(b - p.detach()).flatten() for b, p in zip(before, model.parameters(), strict=True)]
        )
        if mode == "value":
            assert change.abs().max().item() == pytest.approx(0.01)
        else:
            assert change.norm().item() == pytest.approx(0.01, rel=1e-5)


def test_early_stopping_and_reduce_on_plateau():
    values = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]
    trainer, _ = _trainer(
        None,
        ToyLoop(metric_values=values),
        steps=100,
        eval_every=2,
        early_stop=3,
        schedule="plateau",
        patience=1,
        gamma=0.5,
    )
    metrics = trainer.fit()
    assert trainer.step == 10 and metrics["best"] == 0.5 and metrics["best_step"] == 4
    assert trainer.plateau_scale == 0.125


def test_the_best_parameters_are_kept_and_tested_when_the_metric_gets_worse(tmp_path):
    """metric 1.0, 0.2 (best, step 4), then worse: model.safetensors and the test metrics are
    the step-4 parameters, last.safetensors the step-8 ones."""
    trainer, model = _trainer(
        tmp_path, ToyLoop(metric_values=[1.0, 0.2, 0.5, 0.9]), steps=8, eval_every=2
    )
    snapshots = {}
    trainer.callbacks = (lambda t, record: snapshots.update({t.step: model.weight.clone()}),)
    tested = []
    metrics = trainer.fit(final=lambda m: tested.append(m.weight.clone()) or {"test": 1.0})
    best, last = (
        load_file(tmp_path / "run/model.safetensors"),
        load_file(tmp_path / "run/last.safetensors"),
    )
    assert torch.equal(best["weight"], snapshots[4]) and torch.equal(last["weight"], snapshots[8])
    assert not torch.equal(snapshots[4], snapshots[8])
    assert torch.equal(tested[0], snapshots[4])  # the test metrics are of the best
    saved = json.loads((tmp_path / "run/metrics.json").read_text())
    assert saved == metrics
    assert (saved["val"], saved["best"], saved["best_step"], saved["weights"]) == (
        0.2,
        0.2,
        4,
        "best",
    )
    assert saved["step"] == 8 and saved["last"] == {"step": 8, "val": 0.9} and saved["test"] == 1.0


def test_clocks_are_logged_monotone_and_evaluation_is_not_training_time(tmp_path):
    class SlowEval(ToyLoop):
        def evaluate(self, model):
            time.sleep(0.05)
            return super().evaluate(model)

    trainer, _ = _trainer(tmp_path, SlowEval(), steps=6, eval_every=2)
    metrics = trainer.fit()
    records = RunDir(tmp_path / "run").read_records()
    train = [r["train_seconds"] for r in records]
    wall = [r["wall_seconds"] for r in records]
    assert train == sorted(train) and wall == sorted(wall) and len(train) == 6
    assert wall[-1] - train[-1] >= 0.14  # three evaluations of 50 ms: wall time, not training
    assert metrics["train_seconds"] == pytest.approx(train[-1], abs=1e-3)


def test_max_minutes_counts_the_training_time_carried_by_a_resume(tmp_path):
    trainer, _ = _trainer(tmp_path, ToyLoop(), steps=10**6, eval_every=0, max_minutes=0.5)
    trainer.train_seconds = 30.0  # as restored from a checkpoint: the budget is spent
    metrics = trainer.fit()
    assert trainer.step == 1 and metrics["stopped"] == "time limit"
    assert metrics["train_seconds"] > 30.0 and metrics["wall_seconds"] >= metrics["train_seconds"]


# ----------------------------------------------------------------------------- truncated BPTT


def _tbptt_case(k1, k2, n=24):
    torch.manual_seed(0)
    rnn = nn.RNN(1, 3, batch_first=True).double()
    x = torch.randn(2, n, 1, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(2, n)
    return rnn, x, y, TruncatedBPTT(x, y, TBPTTConfig(k1=k1, k2=k2))


@pytest.mark.parametrize(("k1", "k2"), [(4, 4), (6, 2), (4, 10), (3, 5)])
def test_tbptt_forward_equals_one_pass_and_gradients_reach_k2_steps(k1, k2):
    rnn, x, y, tbptt = _tbptt_case(k1, k2)
    full, _ = rnn(x)
    seen = []

    def loss_fn(out, target):
        seen.append(out)
        return out.sum()

    for k in range(len(tbptt)):
        x.grad = None
        tbptt.loss(rnn, k, loss_fn).backward()
        end = (k + 1) * k1
        reach = x.grad.abs().sum(dim=(0, 2)) > 0  # which inputs the window's loss reaches
        first = reach.nonzero().min().item()
        if k2 >= k1:
            assert first == max(0, end - k2)  # exactly k2 steps back from the window's end
        else:
            assert first == end - k1  # chunks of k2: the window's start, nothing before
            chunk_starts = range(end - k1, end, k2)
            assert reach[end - k1 : end].all() and len(list(chunk_starts)) == -(-k1 // k2)
        assert not reach[end:].any()
    torch.testing.assert_close(torch.cat(seen, 1), full[:, : len(tbptt) * k1])


def test_tbptt_gradient_stops_at_chunk_edges():
    # k1=6, k2=2: the loss of the last chunk does not reach the chunk before it
    rnn, x, y, tbptt = _tbptt_case(6, 2)
    tbptt.loss(rnn, 0, lambda out, t: out[:, 4:].sum()).backward()
    reach = x.grad.abs().sum(dim=(0, 2)) > 0
    assert reach.tolist()[:6] == [False, False, False, False, True, True]


# ----------------------------------------------------------------------------- two processes


def test_two_process_gloo_run_ends_with_equal_parameters(tmp_path, corpus):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    worker = Path(__file__).with_name("ddp_worker.py")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(worker),
            str(tmp_path),
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(tmp_path / "rank0.st"), load_file(tmp_path / "rank1.st")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    start = load_file(tmp_path / "run" / "checkpoints" / "step-0000003" / "tensors.safetensors")
    assert not torch.equal(start["model.head.weight"], a["head.weight"])  # it trained on
    assert checkpoint.available(tmp_path / "run" / "checkpoints")[-1] == 6
    assert math.isfinite(json.loads((tmp_path / "run" / "metrics.json").read_text())["val_bpc"])


def test_bf16_autocast_trains_on_cpu():
    trainer, model = _trainer(None, ToyLoop(), steps=30, lr=0.1, precision="bf16")
    start = ToyLoop().evaluate(model)["val"]
    trainer.fit()
    assert ToyLoop().evaluate(model)["val"] < 0.5 * start
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _ = _trainer(tmp_path, ToyLoop(), steps=6, eval_every=3)
    trainer.fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("loss")]
    logged = [
        json.loads(x)["loss"] for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert losses == pytest.approx(logged) and len(events.Scalars("val")) == 2
