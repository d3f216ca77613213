"""What the character model shows inside: its gradient flow through time, the RNN / LSTM /
GRU comparison, and its sections of `rnnkit report` (a sample, gradient flow, units that track
quotes, line position and bracket depth, gate saturation). The measurements and pictures are
`rnnkit.viz`'s; this module feeds them a character model's runs and validation text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.config import build
from rnnkit.data import CharVocab, StreamBatches, load_text
from rnnkit.errors import RunDirError
from rnnkit.models.language import LanguageModel
from rnnkit.run import RunDir
from rnnkit.tasks.base import Loaded
from rnnkit.tasks.charlm import CharLMConfig, corpus_split, split
from rnnkit.viz import figure, save_png
from rnnkit.viz.gradients import (
    _plot_training,
    by_distance,
    charlm_gradient_norms,
    flow_stats,
    plot_flow,
    set_forget_bias,
    training_stats,
)
from rnnkit.viz.report import image_html, table_html

__all__ = ["inspect_run", "run_flow", "validation_windows", "compare_cells", "report_sections"]


def _loaded(run) -> Loaded:
    """A loaded character-model run, from a Loaded or a run directory."""
    if isinstance(run, Loaded):
        return run
    from rnnkit.tasks import of_run

    task = of_run(run)
    if task.name != "charlm":
        raise RunDirError(
            f"gradient inspection needs a charlm run, {run} holds a {task.name!r} run",
            "use a run trained with `rnnkit train charlm`",
        )
    return task.load(run)


def validation_windows(text: str, vocab, config, batch: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """The first (x, y) window (b, T) of the validation split, b parallel streams."""
    _, val = split(text, config.data.val_fraction)
    ids = vocab.encode(val)
    streams = max(1, min(batch, (ids.numel() - 1) // seq_len))
    return StreamBatches(ids, streams, seq_len, what="validation split")[0]


def run_flow(run, batch: int = 16, seq_len: int | None = None):
    """Measure a charlm run's gradient flow (a run directory or a `Loaded` run); return
    (stats, figure) without writing anything. See `inspect_run` for what they hold."""
    loaded = _loaded(run)
    loaded.check_inputs()  # the corpus is the one the run was trained on
    model, vocab, config = loaded.model, loaded.setup.vocab, loaded.config
    _, val_ids, _ = corpus_split(config, vocab)  # memory-mapped: no corpus read whole
    seq_len = seq_len or config.tbptt.k1
    streams = max(1, min(batch, (val_ids.numel() - 1) // seq_len))
    x, y = (t.long() for t in StreamBatches(val_ids, streams, seq_len, "validation split")[0])
    norms = charlm_gradient_norms(model, x, y, where="last")  # (L, T, b)
    records = loaded.run.read_records()
    clip = config.train.clip
    stats = {
        "cell": config.model.cell,
        "layers": [flow_stats(n) for n in norms],
        "by_distance": [by_distance(n).tolist() for n in norms],
        "batch": int(x.size(0)),
        "loss": "cross-entropy of the last step only",
        "training": training_stats(records, clip),
    }

    fig = figure(11, 4)
    left, right = fig.subplots(1, 2)
    k = np.arange(norms.shape[1])
    for i, n in enumerate(norms):
        lo, hi = (np.percentile(n, q, axis=1)[::-1] for q in (10, 90))  # by distance
        left.fill_between(k, np.where(lo > 0, lo, np.nan), np.where(hi > 0, hi, np.nan), alpha=0.2)
        where = " (bottom)" if i == 0 and len(norms) > 1 else ""
        label = f"layer {i + 1}{where}: x{stats['layers'][i]['rate_per_step']:.3f} per step"
        plot_flow(left, {label: by_distance(n)}, normalize=False)
    left.set_title(
        f"{config.model.cell.upper()} gradient flow, loss at the last of {len(k)} steps "
        "(band: 10-90 % of the batch)",
        fontsize=10,
    )
    if stats["training"]["steps"]:
        _plot_training(right, records, clip)
        clipped = 100 * stats["training"]["clipped_fraction"]
        what = f"clipped at {clip:g} in {clipped:.0f}% of steps" if clip > 0 else "no clipping"
        right.set_title(f"training gradient norm: {what}", fontsize=10)
    else:
        right.set_axis_off()
    return stats, fig


def inspect_run(run, out_dir=None, batch: int = 16, seq_len: int | None = None) -> dict:
    """Gradient flow of a trained charlm run: ||dL/dh_t|| for every layer and step.

    Takes ``batch`` windows of ``seq_len`` characters (default: the run's training window,
    tbptt.k1) from the validation split, puts the loss on the last step only, and measures
    dL/dh_t back to the window's start. Writes into ``out_dir`` (default ``RUN/inspect``):

    gradients.png   left: mean norm per layer against distance in time (log scale), with the
                    10-90 % band over the batch; right: the training gradient norm per step
                    with the clipping threshold (from metrics.jsonl)
    gradients.json  {"layers": [flow_stats per layer, bottom first], "by_distance": [[mean
                    norm at k = 0..T-1] per layer], "training": training_stats, "cell", ...}

    Returns {"png": Path, "json": Path, "stats": the JSON content}. Raises RunDirError for a
    missing, incomplete or non-charlm run directory, DataError when its corpus is gone.
    """
    loaded = _loaded(run)
    stats, fig = run_flow(loaded, batch, seq_len)
    out = Path(out_dir) if out_dir is not None else loaded.run.inside("inspect")
    if out_dir is None:
        out.mkdir(exist_ok=True)
        for name in ("gradients.png", "gradients.json"):
            loaded.run.inside(f"inspect/{name}")  # refuses a link planted there
    out.mkdir(parents=True, exist_ok=True)
    png = save_png(fig, out / "gradients.png")
    path = out / "gradients.json"
    path.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return {"png": png, "json": path, "stats": stats}


def compare_cells(
    out_dir,
    steps: int = 200,
    seed: int = 0,
    *,
    hidden: int = 64,
    seq_len: int = 100,
    batch_size: int = 16,
    lr: float = 2e-3,
    clip: float = 1.0,
    data: str = "pydoc",
    forget_biases: tuple[float, ...] = (0.0, 1.0, 3.0),
    progress: bool = False,
) -> dict:
    """Train a vanilla RNN, an LSTM and a GRU briefly on the same task and compare gradient flow.

    The task is the 1-layer charlm on ``data`` (default: the built-in corpus), the same config,
    seed and windows for every cell; a fourth run trains the RNN without clipping. Writes into
    ``out_dir`` (which must be new or empty):

    runs/{rnn,lstm,gru,rnn-noclip}/   the run directories (``rnnkit report`` works on them)
    compare.png    (a) trained cells and (b) the same cells at initialisation: mean
                   ||dL/dh_t|| / ||dL/dh_{T-1}|| against distance in time, log scale, loss on the
                   last step; (c) the LSTM at initialisation with forget-gate bias 0, 1, 3;
                   (d) the RNN's training gradient norm with and without clipping
    compare.json   {"curves": {name: flow_stats}, "by_distance": {name: [...]},
                   "training": {run: training_stats and final val_bpc}, "config": {...}}

    Returns {"png": Path, "json": Path, "runs": {name: Path}, "stats": the JSON content}.
    """
    from rnnkit.tasks import get

    task = get("charlm")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise RunDirError(
            f"output directory already exists and is not empty: {out}",
            "choose another directory, or delete the old comparison first",
        )
    base = {
        "data.path": data,
        "data.batch_size": batch_size,
        "model.layers": 1,
        "model.hidden": hidden,
        "model.embed": 32,
        "tbptt.k1": seq_len,
        "train.steps": steps,
        "train.lr": lr,
        "train.clip": clip,
        "train.seed": seed,
        "train.eval_every": steps,
        "train.checkpoint_every": steps,
        "train.device": "cpu",
    }
    variants = {"rnn": {"model.cell": "rnn"}, "lstm": {"model.cell": "lstm"}}
    variants["gru"] = {"model.cell": "gru"}
    if clip > 0:
        variants["rnn-noclip"] = {"model.cell": "rnn", "train.clip": 0.0}

    def config_of(name):
        return build(CharLMConfig, overrides={**base, **variants[name]})

    text = load_text(data)
    vocab = CharVocab.from_text(text)
    runs, models, finals = {}, {}, {}
    for name in variants:
        runs[name] = out / "runs" / name
        finals[name] = task.train(config_of(name), runs[name], progress=progress)
        models[name] = task.load(runs[name]).model

    x, y = validation_windows(text, vocab, config_of("rnn"), batch_size, seq_len)
    curves = {}  # name -> (T,) mean norm by distance, of the top (only) layer
    for cell in ("rnn", "lstm", "gru"):
        curves[f"{cell} trained"] = by_distance(charlm_gradient_norms(models[cell], x, y)[-1])
    for cell in ("rnn", "lstm", "gru"):
        torch.manual_seed(seed)  # the initialisation that training started from
        model = LanguageModel(len(vocab), config_of(cell).model).eval()
        curves[f"{cell} init"] = by_distance(charlm_gradient_norms(model, x, y)[-1])
    for bf in forget_biases:
        torch.manual_seed(seed)
        model = LanguageModel(len(vocab), config_of("lstm").model).eval()
        set_forget_bias(model.rnn, bf)
        curves[f"lstm init, forget bias {bf:g}"] = by_distance(
            charlm_gradient_norms(model, x, y)[-1]
        )

    records = {name: RunDir(path).read_records() for name, path in runs.items()}
    stats = {
        "curves": {name: _stats_of_mean(mean) for name, mean in curves.items()},
        "by_distance": {name: mean.tolist() for name, mean in curves.items()},
        "training": {
            name: {
                **training_stats(records[name], config_of(name).train.clip),
                "val_bpc": finals[name].get("val_bpc"),
            }
            for name in runs
        },
        "config": base,
    }

    fig = figure(12, 8.5)
    (a, b), (c, d) = fig.subplots(2, 2)

    def pick(suffix):  # "lstm trained" -> "lstm"
        return {k.split()[0]: v for k, v in curves.items() if k.endswith(suffix)}

    plot_flow(a, pick(" trained"), title=f"(a) after {steps} training steps")
    plot_flow(b, pick(" init"), title="(b) at initialisation")
    plot_flow(
        c,
        {k.split(", ")[1]: v for k, v in curves.items() if "forget bias" in k},
        title="(c) LSTM at initialisation: forget-gate bias b_f",
    )
    if "rnn-noclip" in runs:
        for name in ("rnn", "rnn-noclip"):
            t = stats["training"][name]
            label = (
                f"{name}: val {t['val_bpc']:.3f} bpc, clipped {100 * t['clipped_fraction']:.0f}%"
            )
            _plot_training(d, records[name], clip, label)
        d.legend(fontsize=8)
        d.set_title(f"(d) RNN training with and without clipping at {clip:g}", fontsize=10)
    else:
        d.set_axis_off()
    png = save_png(fig, out / "compare.png")
    path = out / "compare.json"
    path.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return {"png": png, "json": path, "runs": runs, "stats": stats}


def _stats_of_mean(mean: np.ndarray) -> dict:
    """flow_stats of a batch-mean curve given by distance (k = 0 first)."""
    s = flow_stats(mean[::-1, None])
    for key in ("vanished_fraction", "exploded_fraction"):
        s.pop(key)
    return s


def report_sections(
    task, loaded: Loaded, sample_length: int = 400, unit_chars: int = 2000
) -> list[tuple[str, Callable[[], str]]]:
    """The character model's sections of `rnnkit report`: [(heading, draw() -> HTML)]."""
    from rnnkit.viz import activations as A

    model, vocab, config = loaded.model, loaded.setup.vocab, loaded.config

    def sample() -> str:
        text = task.sample(loaded, length=sample_length, temperature=0.8, seed=0)
        return (
            f"<p>{sample_length} characters drawn at temperature 0.8 (seed 0) after a newline.</p>"
            f"<pre>{html.escape(text)}</pre>"
        )

    def gradient_flow() -> str:
        stats, fig = run_flow(loaded)
        rows = {f"layer {i + 1}": _flow_row(s) for i, s in enumerate(stats["layers"])}
        return (
            "<p>||dL/dh_t|| for a loss on the last step of validation windows, against the "
            "distance in time; rate = the fitted decay per step, horizon = the first distance "
            "where the gradient is below 1e-3 of the last step's.</p>"
            + image_html(fig)
            + table_html(rows)
        )

    def units() -> str:
        loaded.check_inputs()
        _, val_ids, _ = corpus_split(config, vocab)
        val = vocab.decode(val_ids[: unit_chars + 4096].tolist())  # the head of the split
        start = val.find("\n") + 1
        text = val[start : start + unit_chars]  # the units are searched on these
        shown = text[:700]  # and drawn on the first 700 characters
        layers = A.charlm_trace(model, vocab, text)
        top = layers[-1]["h"]  # (T, h) of the top layer
        found = A.find_units(top, A.text_features(text), top=1)
        parts = [
            "<p>Units of the top layer whose activation correlates best (Pearson r) with a "
            f"feature of the text, over {len(text)} validation characters; each character coloured "
            "by the unit's value after reading it (blue -1, white 0, red +1).</p>"
        ]
        for feature, best in found.items():
            u, r = best[0]["unit"], best[0]["r"]
            title = f"{feature.replace('_', ' ')}: unit {u}, r = {r:+.2f}"
            parts.append(A.activation_html(shown, top[: len(shown), u], title))
        sats = [A.gate_saturation(layer) for layer in layers]
        if any(sats):
            fig = figure(4.2 * len(sats), 3.8)
            axes = np.atleast_1d(fig.subplots(1, len(sats)))
            for i, (ax, sat) in enumerate(zip(axes, sats, strict=True)):
                A.plot_saturation(ax, sat, f"layer {i + 1}")
            rows = {
                f"layer {i + 1}, {gate} gate": f"{100 * s['left']:.1f}% < 0.1, "
                f"{100 * s['right']:.1f}% > 0.9"
                for i, sat in enumerate(sats)
                for gate, s in sat.items()
            }
            parts.append("<h3>Gate saturation</h3>" + image_html(fig) + table_html(rows))
        return "".join(parts)

    return [("Sample", sample), ("Gradient flow through time", gradient_flow), ("Units", units)]


def _flow_row(s: dict) -> str:
    horizon = s["horizon_1e-3"]
    return (
        f"{s['verdict']}, rate x{s['rate_per_step']:.3f} per step, horizon "
        f"{'beyond the window' if horizon is None else f'{horizon} steps'}, first/last step "
        f"{s['ratio_over_window']:.2e}"
    )
