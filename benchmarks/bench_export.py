"""Per-step latency of the exported character model at batch 1: ONNX Runtime beside eager PyTorch
(rnnkit's model, the state carried from step to step), interleaved rounds, median per step.

    python benchmarks/bench_export.py [--rounds 5] [--steps 300]

The model is the charlm preset's shape (2 x 256 LSTM, 64-wide embedding, the built-in corpus's
vocabulary size) with its initial weights: latency does not depend on what it learned. Both
sides use the same number of threads (torch's, which OMP_NUM_THREADS sets). Run it with nothing
else heavy on the machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import torch

from rnnkit.export import export, language_model_graph
from rnnkit.models.language import LanguageModel, LanguageModelConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--vocab", type=int, default=96)
    args = p.parse_args()
    import onnxruntime as ort

    torch.manual_seed(0)
    model = LanguageModel(args.vocab, LanguageModelConfig(hidden=256, layers=2, embed=64)).eval()
    path = os.path.join(tempfile.mkdtemp(), "charlm.onnx")
    worst = export(language_model_graph(model, args.vocab), "onnx", path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    ids = torch.randint(0, args.vocab, (args.steps,))

    def eager() -> float:
        state = None
        start = time.perf_counter()
        with torch.no_grad():
            for t in range(args.steps):
                _, state = model(ids[t].view(1, 1), state)
        return (time.perf_counter() - start) / args.steps

    def onnx() -> float:
        h = c = np.zeros((2, 1, 256), dtype=np.float32)
        tokens = ids.numpy().reshape(-1, 1, 1)
        start = time.perf_counter()
        for t in range(args.steps):
            _, h, c = session.run(None, {"ids": tokens[t], "h0": h, "c0": c})
        return (time.perf_counter() - start) / args.steps

    eager(), onnx()  # warm-up
    times: dict[str, list[float]] = {"eager PyTorch (rnnkit)": [], "ONNX Runtime": []}
    for _ in range(args.rounds):
        times["eager PyTorch (rnnkit)"].append(eager())
        times["ONNX Runtime"].append(onnx())
    machine = platform.processor() or platform.machine()
    print(f"# {machine}, torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}; "
          f"export checked, max abs diff {worst:.2g}")  # fmt: skip
    base = statistics.median(times["eager PyTorch (rnnkit)"])
    print("| runtime | per step (ms), batch 1 | ratio to eager |")
    print("| --- | --- | --- |")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"| {name} | {1e3 * m:.3f} | {m / base:.2f}x |")


if __name__ == "__main__":
    main()
