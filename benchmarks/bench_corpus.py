"""Peak memory and time to the first training step of `rnnkit train charlm` as the corpus grows.

Corpora of 1, 20 and 200 MB are made by repeating the built-in text; each is trained twice in a
fresh process (the first run encodes it into the cache, the second maps the cached ids), and the
process is stopped once its first step is logged. Peak memory is the process's VmHWM (peak
resident set), polled from /proc; the 1 MB run's is the baseline that Python, torch and the
model take whatever the corpus.

python benchmarks/bench_corpus.py [--sizes 1,20,200] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnnkit.data.text import builtin_corpus


def peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def first_step(corpus: Path, root: Path, name: str) -> tuple[float, float]:
    """(seconds to the first logged step, peak MB) of a fresh `rnnkit train` process."""
    out = root / name
    cmd = [sys.executable, "-m", "rnnkit", "train", "charlm", "--quiet", "--out", str(out)]
    cmd += [f"data.path={corpus}", "train.device=cpu", "train.steps=1000"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, log = 0, out / "metrics.jsonl"
    while proc.poll() is None:
        peak = max(peak, peak_kb(proc.pid))
        if log.is_file() and log.stat().st_size > 0:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    peak = max(peak, peak_kb(proc.pid))
    if proc.poll() is not None:
        raise SystemExit(f"training ended early: {proc.stderr.read()[-2000:]}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return seconds, peak / 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1,20,200", help="corpus sizes in MB")
    p.add_argument("--out", help="append the table to this markdown file")
    args = p.parse_args()
    text = builtin_corpus()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["RNNKIT_DATA_CACHE"] = str(root / "cache")
        for mb in (int(s) for s in args.sizes.split(",")):
            corpus = root / f"corpus-{mb}.txt"
            with open(corpus, "w", encoding="utf-8") as f:
                while f.tell() < mb * 2**20:
                    f.write(text)
            size = corpus.stat().st_size / 2**20
            cold = first_step(corpus, root, f"cold-{mb}")
            warm = first_step(corpus, root, f"warm-{mb}")
            rows.append((size, *cold, *warm))
            print(
                f"{size:.0f} MB: first step {cold[0]:.1f} s / {warm[0]:.1f} s (cached), "
                f"peak {cold[1]:.0f} MB / {warm[1]:.0f} MB",
                flush=True,
            )
    base = rows[0][2]
    lines = [
        "| corpus | first step, first run | peak, first run | first step, cached | "
        "peak, cached | peak over the 1 MB run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, t1, m1, t2, m2 in rows:
        lines.append(
            f"| {size:.0f} MB | {t1:.1f} s | {m1:.0f} MB | {t2:.1f} s | {m2:.0f} MB | "
            f"{max(m1, m2) - base:+.0f} MB |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(f"\n{table}\n")


if __name__ == "__main__":
    main()
