"""Word-level language modelling on the World English Bible at equal training time: rnnkit's
preset (configs/wordlm.yaml, trained by `rnnkit train wordlm`) beside the plain recipe of
Zaremba et al. 2014 "small" written in torch.nn, in one run, on the same split and vocabulary.

    Zaremba small: 2 x 200 LSTM, embedding 200, dropout 0, weights U(-0.1, 0.1), SGD lr 1,
    gradient norm clipped at 5, batch 20, 35 steps of truncated BPTT, the state carried;
    lr halved every epoch after the 4th (the paper's schedule).

Each model trains for --minutes of wall-clock time (the rnnkit run evaluates validation
perplexity every train.eval_every steps, and that time counts against it), then both are scored
on the validation and test books with the state carried. With --snapshot M, both are also
scored after M minutes, inside their clocks (the same cost for both):

    python benchmarks/bench_wordlm.py --minutes 30 --snapshot 10

Run it with nothing else heavy on the machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnkit.config import build  # noqa: E402
from rnnkit.data import StreamBatches  # noqa: E402
from rnnkit.tasks import get  # noqa: E402
from rnnkit.tasks.wordlm import encode_splits, perplexity, split_batches  # noqa: E402


class ZarembaSmall(nn.Module):
    def __init__(self, vocab: int, size: int = 200, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, size)
        self.rnn = nn.LSTM(size, size, layers, batch_first=True)
        self.head = nn.Linear(size, vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, ids, state=None):
        h, state = self.rnn(self.embed(ids.long()), state)
        return self.head(h), state


def scores(model, ids: dict, config) -> dict:
    return {
        split: perplexity(model, split_batches(ids[split], config, split))
        for split in ("valid", "test")
    }


def train_zaremba(
    ids: dict, vocab_size: int, minutes: float, config, snapshot: float = 0, seed: int = 0
) -> dict:
    torch.manual_seed(seed)
    model = ZarembaSmall(vocab_size)
    batches = StreamBatches(ids["train"], 20, 35, "training split")
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    start, step, epoch, state, early = time.perf_counter(), 0, 0, None, None
    while time.perf_counter() - start < 60 * minutes:
        if snapshot and early is None and time.perf_counter() - start >= 60 * snapshot:
            early = scores(model, ids, config) | {"step": step}
        k = step % len(batches)
        if k == 0:
            epoch, state = step // len(batches) + 1, None
            for g in opt.param_groups:
                g["lr"] = 1.0 * 0.5 ** max(0, epoch - 4)
        x, y = batches[k]
        model.train()
        state = None if state is None else tuple(s.detach() for s in state)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten().long())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
    trained = time.perf_counter() - start
    return {
        "steps": step,
        "epochs": step / len(batches),
        "train_seconds": trained,
        "model": model,
        "snapshot": early,
    }


class Snapshot:
    """A trainer callback: scores the model once, when ``minutes`` of training have passed."""

    def __init__(self, ids, config, minutes: float):
        self.ids, self.config, self.minutes = ids, config, minutes
        self.start, self.result = time.perf_counter(), None

    def __call__(self, trainer, record) -> None:
        if self.result is None and time.perf_counter() - self.start >= 60 * self.minutes:
            self.result = scores(trainer.model, self.ids, self.config) | {"step": trainer.step}
            trainer.model.train()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training time of each model")
    p.add_argument("--snapshot", type=float, default=0.0, help="also score after this long")
    p.add_argument("--config", default=str(ROOT / "configs" / "wordlm.yaml"))
    p.add_argument("--out", default=None, help="where the rnnkit run goes (default: a temp dir)")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    task = get("wordlm")
    config = build(task.Config, args.config, {"train.max_minutes": args.minutes})
    vocab, ids = encode_splits(config)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}; load before: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"vocabulary {len(vocab):,}; words "
        + ", ".join(f"{k} {v.numel():,}" for k, v in ids.items())
    )

    z = train_zaremba(ids, len(vocab), args.minutes, config, args.snapshot)
    zaremba = scores(z["model"], ids, config)
    print(
        f"Zaremba small (torch.nn): {z['steps']} steps, {z['epochs']:.2f} epochs in "
        f"{z['train_seconds'] / 60:.1f} min: valid {zaremba['valid']:.1f}, test "
        f"{zaremba['test']:.1f}"
    )

    snap = Snapshot(ids, config, args.snapshot) if args.snapshot else None

    class Timed(type(task)):  # the same task, with the snapshot as a trainer callback
        name = "wordlm"

        def loop(self, *a, **k):
            loop = super().loop(*a, **k)
            if snap:  # its clock starts with training, as max_minutes's does
                loop.callbacks, snap.start = (snap,), time.perf_counter()
            return loop

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-wordlm-")) / "run"
    start = time.perf_counter()
    final = Timed().train(config, out, progress=False)
    took = time.perf_counter() - start
    print(
        f"rnnkit preset ({args.config}): {final['step']} steps in {took / 60:.1f} min (with "
        f"its evaluations): valid {final['val_ppl']:.1f}, test {final['test_ppl']:.1f}"
    )
    result = {
        "minutes": args.minutes,
        "zaremba": zaremba | {"steps": z["steps"]},
        "rnnkit": {"valid": final["val_ppl"], "test": final["test_ppl"], "step": final["step"]},
    }
    rows = [(args.minutes, zaremba, result["rnnkit"])]
    if args.snapshot:
        result["snapshot"] = {
            "minutes": args.snapshot,
            "zaremba": z["snapshot"],
            "rnnkit": snap.result,
        }
        rows.insert(0, (args.snapshot, z["snapshot"], snap.result))
    print("| minutes | Zaremba small test ppl | rnnkit preset test ppl | rnnkit lower by |")
    print("| --- | --- | --- | --- |")
    for minutes, zr, rk in rows:
        print(
            f"| {minutes:g} | {zr['test']:.1f} | {rk['test']:.1f} | "
            f"{1 - rk['test'] / zr['test']:.1%} |"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
