"""Memory stays flat as the corpus grows: a training process on a 100 MB corpus peaks within
2 x the model's weights + 100 MB of the same process on a 1 MB one (slow: two fresh trainings)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnkit.data.text import builtin_corpus


def peak_mb_at_first_step(corpus: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "rnnkit", "train", "charlm", "--quiet", "--out", str(out)]
    cmd += [f"data.path={corpus}", "train.device=cpu", "train.steps=1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, log, deadline = 0, out / "metrics.jsonl", time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        if log.is_file() and log.stat().st_size > 0:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipe
    return peak / 1024


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_corpus(tmp_path):
    text = builtin_corpus()
    sizes = {}
    for mb in (1, 100):
        corpus = tmp_path / f"{mb}.txt"
        with open(corpus, "w", encoding="utf-8") as f:
            while f.tell() < mb * 2**20:
                f.write(text)
        sizes[mb] = peak_mb_at_first_step(corpus, tmp_path / f"run-{mb}")
    weights_mb = 0.9e6 * 4 / 2**20  # the default 2 x 256 LSTM
    assert sizes[100] - sizes[1] < 2 * weights_mb + 100, sizes
