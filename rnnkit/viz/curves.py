"""Learning curves of several runs side by side, from their run directories alone: a held-out
metric against the training examples seen (steps x batch_size x accumulate)."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from rnnkit.errors import RnnkitError
from rnnkit.run import RunDir
from rnnkit.viz import figure

__all__ = ["run_label", "legend_labels", "metric_curves_figure"]


def legend_labels(runs: list, labels: str | None) -> dict | None:
    """``--labels a,b,c``: one legend label per run, as {run: label}, or a clear error."""
    if not labels:
        return None
    names = labels.split(",")
    if len(names) != len(runs):
        raise RnnkitError(
            f"--labels has {len(names)} label(s) for {len(runs)} run(s)", "give one per run"
        )
    return dict(zip(map(str, runs), names, strict=True))


def run_label(path, labels: dict | None = None) -> str:
    """The legend label of a run: ``labels[path]``, else "cell (directory name)"."""
    if labels and str(path) in labels:
        return labels[str(path)]
    model = RunDir(path).read_json("config.json", dict).get("model", {})
    model = model if isinstance(model, dict) else {}
    return f"{model.get('cell', model.get('kind', '?'))} ({Path(path).name})"


def _records(path) -> list[dict]:
    return RunDir(path).read_records()


def metric_curves_figure(paths: list, metric: str, log: bool = False, labels=None) -> Figure:
    """``metric`` of every run against the training examples it had seen when evaluated."""
    fig = figure(6.0, 4.0)
    ax = fig.subplots()
    smallest = math.inf
    for path in paths:
        config = RunDir.open(path, need=()).read_json("config.json")
        per_step = config.get("data", {}).get("batch_size", 1) * config["train"]["accumulate"]
        points = [(r["step"] * per_step, r[metric]) for r in _records(path) if metric in r]
        if not points:
            raise RnnkitError(
                f"run {path} logged no {metric!r}",
                "name a metric of its evaluations (see its metrics.jsonl)",
            )
        smallest = min([smallest] + [v for _, v in points if v > 0])
        ax.plot(*zip(*points, strict=True), label=run_label(path, labels))
    ax.set_xlabel("training examples")
    ax.set_ylabel(metric)
    if log:  # symmetric log, linear below the smallest value: a perfect 0 stays on the plot
        ax.set_yscale("symlog", linthresh=smallest if math.isfinite(smallest) else 1.0)
    ax.legend(fontsize=8)
    return fig
