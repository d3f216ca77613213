"""PixelRNN on scikit-learn's 8 x 8 digits at equal training time: Row LSTM, Diagonal BiLSTM,
PixelCNN and the plain pixel-by-pixel LSTM, each trained by `rnnkit train pixels` from the
preset (configs/pixels.yaml) for the same wall-clock budget, one at a time, then scored on the
same held-out digits; the independent-pixel baseline is fitted in closed form.

Each model's cosine schedule is fitted to the budget: a probe run (a tenth of the budget)
measures its seconds per step, and its run gets 0.93 x budget / (seconds per step) steps,
evaluated five times, with train.max_minutes as a hard stop. Evaluation counts against the
budget for all of them.

    python benchmarks/bench_pixels.py --minutes 3
    python benchmarks/bench_pixels.py --minutes 3 data.binarise=true

Run it with nothing else heavy on the machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rnnkit.config import build, parse_overrides  # noqa: E402
from rnnkit.tasks import get  # noqa: E402

# the plain LSTM's width is chosen so that its parameter count is near the preset Row LSTM's
KINDS = {
    "row_lstm": [],
    "diagonal_bilstm": [],
    "pixelcnn": [],
    "lstm": ["model.hidden=96", "model.layers=2"],
}


def config_for(kind: str, extra: list[str], args, **train):
    overrides = parse_overrides([f"model.kind={kind}", *KINDS[kind], *extra])
    overrides |= {f"train.{k}": str(v) for k, v in train.items()}
    return build(get("pixels").Config, args.config, overrides)


def seconds_per_step(kind: str, extra: list[str], args, out: Path) -> float:
    """Train at a constant rate for a tenth of the budget (at least 15 s), no evaluation, and
    divide the training time by the steps it made."""
    probe = max(0.25, args.minutes / 10)
    config = config_for(kind, extra, args, steps=10**7, eval_every=0, schedule="constant",
                        warmup=0, max_minutes=probe)  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        metrics = get("pixels").train(config, out / f"{kind}-probe", progress=False)
    return 60 * probe / metrics["step"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="training time of each model")
    p.add_argument("--config", default=str(ROOT / "configs" / "pixels.yaml"))
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated model kinds")
    p.add_argument("--out", default=None, help="where the runs go (default: a temp dir)")
    p.add_argument("overrides", nargs="*", help="config overrides for every model")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-pixels-"))
    task = get("pixels")
    rows = []
    for kind in args.kinds.split(","):
        per_step = seconds_per_step(kind, args.overrides, args, out)
        steps = max(50, int(60 * args.minutes / per_step * 0.93))  # evaluation takes its share
        config = config_for(kind, args.overrides, args, steps=steps, eval_every=steps // 5,
                            max_minutes=args.minutes)  # fmt: skip
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = task.train(config, out / kind, progress=False)
        params = sum(p.numel() for p in task.load(out / kind).model.parameters())
        rows.append((kind, params, metrics, time.perf_counter() - start))
        print(f"  {kind}: {metrics['step']} steps in {rows[-1][3]:.0f} s, "
              f"test {metrics['test_nll']:.2f} nats", flush=True)  # fmt: skip
    base = rows[0][2]
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; runs in {out}\n")
    print("| model | parameters | steps | test NLL (nats / image) | bits / dim |")
    print("|---|---:|---:|---:|---:|")
    print(f"| independent pixels (closed form) | - | - | {base['test_independent_nll']:.2f} | "
          f"{base['test_independent_bpd']:.3f} |")  # fmt: skip
    for kind, params, m, _ in rows:
        print(f"| {kind} | {params:,} | {m['step']} | {m['test_nll']:.2f} | {m['test_bpd']:.3f} |")


if __name__ == "__main__":
    main()
