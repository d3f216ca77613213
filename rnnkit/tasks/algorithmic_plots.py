"""Pictures of the memory tasks, from run directories alone (PNG through matplotlib's Agg).

sequence   the NTM paper's figure for one sequence (Graves et al. 2014, fig. 6): inputs,
           targets, outputs, and the write and read weightings over time
lengths    error against sequence length, for runs trained on shorter sequences
curves     a held-out metric against training sequences seen (learning curves)
gradients  |dL/dx_t| against t: how much the loss at the end still feels step t

python -m rnnkit.tasks.algorithmic_plots sequence RUN --out fig.png [--length 30]
python -m rnnkit.tasks.algorithmic_plots lengths RUN [RUN ...] --lengths 10,20,40 --out f.png
python -m rnnkit.tasks.algorithmic_plots curves RUN [RUN ...] --metric cost_bits --out f.png
python -m rnnkit.tasks.algorithmic_plots gradients RUN [RUN ...] --out f.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from rnnkit import tasks
from rnnkit.errors import RnnkitError
from rnnkit.models.ntm import NTM
from rnnkit.run import RunDir
from rnnkit.tasks.algorithmic import loss_of


def _load(path):
    loaded = tasks.load(path)
    return loaded.task, loaded.model, loaded.config


LABELS: dict[str, str] = {}  # run directory -> legend label (main's --labels)


def _label(path) -> str:
    if str(path) in LABELS:
        return LABELS[str(path)]
    config = RunDir(path).read_json("config.json")
    return f"{config['model'].get('cell', config['model'].get('kind'))} ({Path(path).name})"


def sequence_figure(path, length: int = 20, seed: int = 0) -> Figure:
    """One held-out sequence through a trained NTM: what it saw, did, and where it looked."""
    task, model, config = _load(path)
    if not isinstance(model, NTM):
        raise RnnkitError(f"{path} holds a {config.model.cell} model; the figure needs an NTM")
    g = torch.Generator().manual_seed(seed)
    batch = task.Source(config.data).held_out(1, g, length)
    trace = model.trace(batch.x)
    t = batch.x.size(1)
    panels = [
        ("inputs", batch.x[0].T),
        ("targets", (batch.y[0] * batch.mask[0, :, None]).T),
        ("outputs", (torch.sigmoid(trace["y"][0]) * batch.mask[0, :, None]).T),
        ("write weighting (head 1)", trace["w_write"][0, :, 0].T),
        ("read weighting (head 1)", trace["w_read"][0, :, 0].T),
    ]
    heights = [p[1].size(0) for p in panels[:3]] + [40, 40]
    fig = Figure(figsize=(max(6.0, t * 0.12), 8.5), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, height_ratios=heights)
    used = (trace["w_write"][0, :, 0] + trace["w_read"][0, :, 0]).amax(0) > 0.1  # (n,)
    rows = torch.nonzero(used).flatten()
    lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, model.locations)
    for ax, (title, image) in zip(axes, panels, strict=True):
        if title.endswith(")"):
            image = image[lo:hi]  # the memory rows the heads visited
        ax.imshow(image.numpy(), aspect="auto", cmap="gray_r", interpolation="nearest", vmin=0)
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_yticks([])
    for ax in axes[3:]:
        ax.set_ylabel(f"locations {lo}-{hi - 1}", fontsize=8)
    axes[-1].set_xlabel("time step")
    fig.suptitle(f"{task.name}, length {length}: {_label(path)}", fontsize=10)
    return fig


def length_errors(path, lengths: list[int]) -> dict[int, dict]:
    """Held-out metrics at each length (a run's own task and config)."""
    task = tasks.get(RunDir.open(path).task)
    metrics = task.evaluate(path, lengths=lengths)
    return {
        n: {k.rpartition("@")[0]: v for k, v in metrics.items() if k.endswith(f"@{n}")}
        for n in lengths
    }


def lengths_figure(paths: list, lengths: list[int], metric: str = "bit_errors") -> Figure:
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    for path in paths:
        errors = length_errors(path, lengths)
        ax.plot(lengths, [errors[n][metric] for n in lengths], "o-", label=_label(path))
    trained = RunDir(paths[0]).read_json("config.json")["data"].get("max_len")
    if trained:
        ax.axvline(trained, color="gray", ls=":", label=f"longest trained ({trained})")
    ax.set_xlabel("sequence length")
    ax.set_ylabel(f"{metric} per sequence")
    ax.legend(fontsize=8)
    return fig


def _records(path) -> list[dict]:
    lines = (Path(path) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def curves_figure(paths: list, metric: str, log: bool = False) -> Figure:
    """A held-out metric against the training sequences seen (steps x batch size)."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    smallest = math.inf
    for path in paths:
        config = RunDir(path).read_json("config.json")
        per_step = config["data"]["batch_size"] * config["train"]["accumulate"]
        points = [(r["step"] * per_step, r[metric]) for r in _records(path) if metric in r]
        smallest = min([smallest] + [v for _, v in points if v > 0])
        ax.plot(*zip(*points, strict=True), label=_label(path))
    ax.set_xlabel("training sequences")
    ax.set_ylabel(metric)
    if log:  # symmetric log, linear below the smallest value: a perfect 0 stays on the plot
        ax.set_yscale("symlog", linthresh=smallest if math.isfinite(smallest) else 1.0)
    ax.legend(fontsize=8)
    return fig


def input_gradient_norms(model, batch, kind: str) -> np.ndarray:
    """|dL/dx_t| averaged over the batch, for t = 1..T: (T,)."""
    model.eval()
    x = batch.x.clone().requires_grad_(True)
    out, _ = model(x)
    loss_of(kind, out, batch._replace(x=x)).backward()
    return x.grad.norm(dim=-1).mean(0).numpy()  # (b, t, i) -> (t,)


def gradients_figure(paths: list, seed: int = 0) -> Figure:
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    for path in paths:
        task, model, config = _load(path)
        source = task.Source(config.data)
        batch = source.held_out(64, torch.Generator().manual_seed(seed), None)
        norms = input_gradient_norms(model, batch, source.loss)
        ax.semilogy(np.arange(1, len(norms) + 1), norms, label=_label(path))
    ax.set_xlabel("input step t (the loss is at the last step)")
    ax.set_ylabel("|dL / dx_t|")
    ax.legend(fontsize=8)
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rnnkit.tasks.algorithmic_plots")
    p.add_argument("what", choices=("sequence", "lengths", "curves", "gradients"))
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--length", type=int, default=20, help="sequence: its length")
    p.add_argument("--lengths", default="10,20,30,40,50,60", help="lengths: comma-separated")
    p.add_argument("--metric", default="cost_bits", help="curves / lengths: the metric")
    p.add_argument("--log", action="store_true", help="curves: logarithmic y axis")
    p.add_argument("--labels", help="comma-separated legend labels, one per run")
    args = p.parse_args(argv)
    if args.labels:
        LABELS.update(zip(args.runs, args.labels.split(","), strict=True))
    if args.what == "sequence":
        fig = sequence_figure(args.runs[0], args.length)
    elif args.what == "lengths":
        lengths = [int(n) for n in args.lengths.split(",")]
        metric = "bit_errors" if args.metric == "cost_bits" else args.metric
        fig = lengths_figure(args.runs, lengths, metric)
    elif args.what == "curves":
        fig = curves_figure(args.runs, args.metric, args.log)
    else:
        fig = gradients_figure(args.runs)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
