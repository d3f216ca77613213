"""Character language models at equal training time, on Python's built-in documentation: what a
user would pick instead of rnnkit, trained one at a time on the same split, scored the same way.

    rnnkit   the `charlm` preset (configs/charlm.yaml, trained by `rnnkit train charlm`), with
             its cosine decay fitted to the budget (train.schedule_clock=time)
    charrnn  Karpathy's char-rnn recipe in plain torch.nn: 2 x 128 LSTM on one-hot characters,
             50 streams x 50 steps, the state carried, Adam 2e-3, gradient norm clipped at 5
    gpt      a small GPT in plain torch.nn with nanoGPT's CPU settings for characters (4 layers,
             4 heads, 128 wide, block 64, batch 12, no dropout, AdamW (0.9, 0.99) with weight
             decay 0.1, clip 1, 100 warm-up steps), its learning rate raised to 3e-3 and its
             cosine decay (to lr / 10) fitted to the budget

Split: the last 10% of the corpus is validation (data.val_fraction=0.1), the rest is training.
Score: validation bits per character over every character of the split, each predicted once:
the recurrent models read the split as one stream with the state carried from window to window;
the GPT sees each character with the block-size window before it (a sliding window, stride 1).
Only training steps count against the budget (rnnkit's periodic evaluations do not: it runs
with train.eval_every=0, so it evaluates once, at the end).

    python benchmarks/bench_charlm.py --seconds 180 600
    python benchmarks/bench_charlm.py --seconds 180 --only rnnkit model.cell=gru ...

Run it with nothing else heavy on the machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import math
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

from rnnkit.config import build, parse_overrides  # noqa: E402
from rnnkit.data import StreamBatches  # noqa: E402
from rnnkit.tasks import get  # noqa: E402
from rnnkit.tasks.charlm import corpus_split  # noqa: E402

VAL_FRACTION = 0.1


# ----------------------------------------------------------------------------- one evaluation


@torch.no_grad()
def recurrent_bpc(model: nn.Module, val: torch.Tensor, window: int = 1000) -> float:
    """Bits per character of ``model(ids (1, t), state) -> (logits, state)`` over ``val`` read
    as one stream: character i + 1 predicted from characters 0..i, the state carried."""
    model.eval()
    state, nats = None, 0.0
    for s in range(0, val.numel() - 1, window):
        x = val[s : s + window].long()
        y = val[s + 1 : s + 1 + window].long()
        x = x[: y.numel()]
        logits, state = model(x[None], state)
        nats += F.cross_entropy(logits[0], y, reduction="sum").item()
    return nats / (val.numel() - 1) / math.log(2)


@torch.no_grad()
def gpt_bpc(model: GPT, val: torch.Tensor, batch: int = 256) -> float:
    """Bits per character of the GPT over ``val``, character i + 1 predicted from the (at most
    block) characters before it: the same characters as `recurrent_bpc`."""
    model.eval()
    block, ids, nats = model.block, val.long(), 0.0
    head = ids[: min(block, ids.numel() - 1)][None]  # the first block: causal, one pass
    logits = model(head)[0]
    nats += F.cross_entropy(logits, ids[1 : head.size(1) + 1], reduction="sum").item()
    ends = torch.arange(block + 1, ids.numel() + 1)  # window ids[e - 1 - block : e - 1] -> ids[e-1]
    for s in range(0, ends.numel(), batch):
        e = ends[s : s + batch]
        windows = torch.stack([ids[k - 1 - block : k - 1] for k in e.tolist()])  # (n, block)
        last = model(windows)[:, -1]  # (n, v): the prediction after each whole window
        nats += F.cross_entropy(last, ids[e - 1], reduction="sum").item()
    return nats / (val.numel() - 1) / math.log(2)


# ----------------------------------------------------------------------------- char-rnn


class CharRNN(nn.Module):
    """Karpathy's char-rnn: one-hot characters -> 2 x 128 LSTM -> softmax."""

    def __init__(self, vocab: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.LSTM(vocab, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        h, state = self.rnn(F.one_hot(ids.long(), self.vocab).float(), state)
        return self.head(h), state


def train_charrnn(train: torch.Tensor, vocab: int, seconds: float, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = CharRNN(vocab)
    batches = StreamBatches(train, 50, 50, "training split")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    clock, step, state = 0.0, 0, None
    while clock < seconds:
        began = time.perf_counter()
        k = step % len(batches)
        state = None if k == 0 or state is None else tuple(s.detach() for s in state)
        x, y = batches[k]
        model.train()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten().long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        clock += time.perf_counter() - began
    return {"model": model, "steps": step, "chars": step * 50 * 50, "train_seconds": clock}


# ----------------------------------------------------------------------------- a small GPT


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)) (nanoGPT's, bias off)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.ln2 = nn.LayerNorm(width, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width, bias=False),
            nn.GELU(),
            nn.Linear(4 * width, width, bias=False),
        )

    def forward(self, x):  # (b, t, c)
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (b, heads, t, c/heads)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, block: int = 64, layers: int = 4, heads: int = 4, width=128):
        super().__init__()
        self.block = block
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(block, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(width, bias=False)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied, as nanoGPT
        self.apply(self._init)
        for name, p in self.named_parameters():  # nanoGPT's scaled init of the residual outputs
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, ids):  # (b, t) -> (b, t, v)
        t = ids.size(1)
        x = self.tok(ids) + self.pos(torch.arange(t))
        return self.head(self.ln(self.blocks(x)))


def train_gpt(train: torch.Tensor, vocab: int, seconds: float, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = GPT(vocab)
    block, batch, lr, warmup = model.block, 12, 3e-3, 100
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.99),
    )
    ids = train.long()
    gen = torch.Generator().manual_seed(seed)
    clock, step = 0.0, 0
    while clock < seconds:
        began = time.perf_counter()
        p = min(1.0, clock / seconds)  # the cosine over the budget, to lr / 10
        rate = lr / 10 + (lr - lr / 10) * (1 + math.cos(math.pi * p)) / 2
        rate *= min(1.0, (step + 1) / warmup)
        for g in opt.param_groups:
            g["lr"] = rate
        starts = torch.randint(ids.numel() - block - 1, (batch,), generator=gen)
        x = torch.stack([ids[s : s + block] for s in starts.tolist()])
        y = torch.stack([ids[s + 1 : s + 1 + block] for s in starts.tolist()])
        model.train()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        clock += time.perf_counter() - began
    return {"model": model, "steps": step, "chars": step * batch * block, "train_seconds": clock}


# ----------------------------------------------------------------------------- rnnkit's preset


def train_rnnkit(seconds: float, overrides: dict, out: Path) -> dict:
    task = get("charlm")
    keys = {
        "data.val_fraction": VAL_FRACTION,
        "train.max_minutes": seconds / 60,
        "train.steps": 10**7,  # the time limit stops it
        "train.schedule_clock": "time",
        "train.eval_every": 0,
        "train.checkpoint_every": 0,
    }
    config = build(task.Config, ROOT / "configs" / "charlm.yaml", keys | overrides)
    final = task.train(config, out, progress=False)
    loaded = task.load(out)
    chars = final["step"] * config.data.batch_size * config.tbptt.k1
    return {
        "model": loaded.model,
        "steps": final["step"],
        "chars": chars,
        "train_seconds": final["train_seconds"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[180.0, 600.0])
    p.add_argument("--only", default="rnnkit,charrnn,gpt", help="comma-separated models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="key=value for rnnkit's preset")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    overrides = parse_overrides(args.overrides)
    unknown = set(args.only.split(",")) - {"rnnkit", "charrnn", "gpt"}
    if unknown:
        p.error(f"--only takes rnnkit, charrnn, gpt; got {', '.join(sorted(unknown))}")
    task = get("charlm")
    config = build(task.Config, ROOT / "configs" / "charlm.yaml", {"data.val_fraction": 0.1})
    train, val, vocab = corpus_split(config)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}; load before: {os.getloadavg()[0]:.2f}"
    )
    print(
        f"corpus: {len(vocab)} characters; training {train.numel():,}, validation {val.numel():,}"
    )
    if overrides:
        print("rnnkit preset with " + " ".join(f"{k}={v}" for k, v in overrides.items()))
    results = []
    for seconds in args.seconds:
        for name in args.only.split(","):
            if name == "rnnkit":
                out = Path(tempfile.mkdtemp(prefix="bench-charlm-")) / "run"
                r = train_rnnkit(seconds, overrides | {"train.seed": args.seed}, out)
                bpc = recurrent_bpc(r["model"], val)
            elif name == "charrnn":
                r = train_charrnn(train, len(vocab), seconds, args.seed)
                bpc = recurrent_bpc(r["model"], val)
            else:
                r = train_gpt(train, len(vocab), seconds, args.seed)
                bpc = gpt_bpc(r["model"], val)
            row = {
                "seconds": seconds,
                "model": name,
                "val_bpc": round(bpc, 4),
                "steps": r["steps"],
                "chars_seen": r["chars"],
                "train_seconds": round(r["train_seconds"], 1),
                "load": round(os.getloadavg()[0], 2),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    print("| budget (s) | model | validation bpc | steps | characters seen |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['seconds']:g} | {r['model']} | {r['val_bpc']:.3f} | {r['steps']:,} | "
            f"{r['chars_seen']:,} |"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
