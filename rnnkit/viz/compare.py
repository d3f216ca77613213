"""Gradient flow for the vanilla RNN, the LSTM and the GRU side by side: one command trains the
three cells briefly on the same task and plots ||dL/dh_t|| against distance in time, at
initialisation and after training, with the effect of the forget-gate bias and of clipping.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from rnnkit.errors import RunDirError
from rnnkit.viz import figure, save_png
from rnnkit.viz.gradients import (
    _plot_training,
    _read_jsonl,
    by_distance,
    charlm_gradient_norms,
    flow_stats,
    plot_flow,
    set_forget_bias,
    training_stats,
    validation_windows,
)

__all__ = ["compare_cells"]


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
    from rnnkit.config import build
    from rnnkit.data import CharVocab, load_text
    from rnnkit.tasks import charlm

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
        return build(charlm.CharLMConfig, overrides={**base, **variants[name]})

    text = load_text(data)
    vocab = CharVocab.from_text(text)
    runs, models, finals = {}, {}, {}
    for name in variants:
        runs[name] = out / "runs" / name
        finals[name] = charlm.train(config_of(name), runs[name], progress=progress)
        models[name] = charlm.load(runs[name])[0]

    x, y = validation_windows(text, vocab, config_of("rnn"), batch_size, seq_len)
    curves = {}  # name -> (T,) mean norm by distance, of the top (only) layer
    for cell in ("rnn", "lstm", "gru"):
        curves[f"{cell} trained"] = by_distance(charlm_gradient_norms(models[cell], x, y)[-1])
    for cell in ("rnn", "lstm", "gru"):
        torch.manual_seed(seed)  # the initialisation that charlm.train started from
        model = charlm.CharLM(len(vocab), config_of(cell).model).eval()
        curves[f"{cell} init"] = by_distance(charlm_gradient_norms(model, x, y)[-1])
    for bf in forget_biases:
        torch.manual_seed(seed)
        model = charlm.CharLM(len(vocab), config_of("lstm").model).eval()
        set_forget_bias(model.rnn, bf)
        curves[f"lstm init, forget bias {bf:g}"] = by_distance(
            charlm_gradient_norms(model, x, y)[-1]
        )

    records = {name: _read_jsonl(path / "metrics.jsonl") for name, path in runs.items()}
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
