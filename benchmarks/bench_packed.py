"""Variable-length batches on the CPU: forward + backward of a bidirectional 2-layer LSTM / GRU
over a padded batch with lengths, torch.nn (packed, its ATen kernel) beside rnnkit with
``impl="auto"`` (which picks the fused path for a variable-length batch in training), side by
side in one run, interleaved, median of the rounds.

    python benchmarks/bench_packed.py [--rounds 5]

The recogniser batches (speech, handwriting) are of this kind: lengths differ within a batch.
Run it with nothing else heavy on the machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import rnnkit

SIZES = {  # name: (batch, time, features, hidden)
    "strokes": (32, 600, 3, 128),
    "speech": (32, 150, 40, 128),
    "small": (16, 100, 16, 64),
}


def timed(layer, x, lengths) -> float:
    """Seconds of one forward + backward over the padded batch ``x`` with ``lengths``."""
    start = time.perf_counter()
    if hasattr(layer, "plan"):  # rnnkit: lengths= directly
        y, _ = layer(x, lengths=lengths)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, True, enforce_sorted=False)
        y, _ = layer(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, True, total_length=x.shape[1])
    y.square().sum().backward()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'size':8} {'cell':5} {'torch.nn (s)':>12} {'rnnkit (s)':>11} {'ratio':>7}")
    for name, (b, t, f, h) in SIZES.items():
        for cell in ("LSTM", "GRU"):
            torch.manual_seed(0)
            ours = getattr(rnnkit, cell)(f, h, num_layers=2, bidirectional=True, batch_first=True)
            theirs = getattr(torch.nn, cell)(f, h, num_layers=2, bidirectional=True,
                                             batch_first=True)  # fmt: skip
            theirs.load_state_dict(ours.state_dict())
            x = torch.randn(b, t, f)
            lengths = torch.randint(t // 2, t + 1, (b,))
            lengths[0] = t
            times = {"torch": [], "rnnkit": []}
            for _ in range(args.rounds):
                times["torch"].append(timed(theirs, x, lengths))
                times["rnnkit"].append(timed(ours, x, lengths))
            a, r = statistics.median(times["torch"]), statistics.median(times["rnnkit"])
            print(f"{name:8} {cell:5} {a:12.3f} {r:11.3f} {r / a:7.3f}")
    print("ratio: rnnkit time / torch.nn time (below 1: rnnkit faster)")


if __name__ == "__main__":
    main()
