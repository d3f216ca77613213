"""Gradient flow through time: how much of the loss's gradient reaches h_t, k steps back.

For a loss L on the last step T-1 of a window, backpropagation through time gives

    dL/dh_t = (dh_{t+1}/dh_t)^T dL/dh_{t+1}            t = T-2, ..., 0

so ||dL/dh_t|| against the distance k = T-1-t shows whether the signal vanishes (shrinks like
rho^k with rho < 1) or explodes (rho > 1) (Bengio et al. 1994; Pascanu et al. 2013). For a linear
RNN h_t = W h_{t-1} + x_t with W = a Q, Q orthogonal, it is exactly a^k ||dL/dh_{T-1}||.

torch's fused kernels keep no per-step states of the lower layers, so the stack is replayed here
layer by layer with the step functions of `rnnkit.cells`, each h_t its own tensor, and
``torch.autograd.grad`` returns dL/dh_t for all of them at once (the model's ``.grad`` fields are
left alone). The replay is checked against the layer's own output.

Shapes: L layers, T time, b batch, i input, h hidden. Norms are per example: (L, T, b).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells import gru_step, lstm_step, rnn_step
from rnnkit.errors import RnnkitError

__all__ = [
    "unroll_states",
    "step_gradient_norms",
    "replay",
    "layer_gradient_norms",
    "charlm_gradient_norms",
    "check_replay",
    "by_distance",
    "flow_stats",
    "training_stats",
    "set_forget_bias",
    "plot_flow",
]

VANISHED, EXPLODED = 1e-6, 10.0  # ratio ||dL/dh_0|| / ||dL/dh_{T-1}|| per example


# ----------------------------------------------------------------------------- measuring


def unroll_states(step: Callable, inputs: Tensor, state) -> tuple[list[Tensor], object]:
    """state = step(inputs[t], state) for t = 0..T-1. Returns [h_0, ..., h_{T-1}], each (b, h)
    (the first tensor of a tuple state, as LSTM's (h, c)), and the final state."""
    hs = []
    for t in range(inputs.size(0)):
        state = step(inputs[t], state)
        hs.append(state[0] if isinstance(state, tuple | list) else state)
    return hs, state


def _norms(loss: Tensor, hs: list[Tensor]) -> np.ndarray:
    """(T, b): ||dL/dh_t|| of each example, for the h_t of one layer."""
    grads = torch.autograd.grad(loss, hs, retain_graph=True, allow_unused=True)
    rows = [
        torch.zeros(h.shape[0]) if g is None else g.detach().norm(dim=-1)
        for h, g in zip(hs, grads, strict=True)
    ]
    return torch.stack(rows).double().cpu().numpy()


def step_gradient_norms(step: Callable, inputs: Tensor, state, loss_fn: Callable) -> np.ndarray:
    """||dL/dh_t|| (T, b) for any step ``state = step(x_t, state)``, e.g. a linear one.

    inputs (T, b, ...); ``loss_fn(hs)`` takes hs (T, b, h) and returns a scalar. The initial
    state is made to require grad, so that a step with constant weights still has a graph.
    """
    state = _tree(lambda s: s.detach().clone().requires_grad_(True), state)
    hs, _ = unroll_states(step, inputs, state)
    return _norms(loss_fn(torch.stack(hs)), hs)


def _tree(fn, state):
    return tuple(fn(s) for s in state) if isinstance(state, tuple | list) else fn(state)


def _layer_step(layer, k: int) -> tuple[Callable, Callable]:
    """(project, step) for layer k of a torch.nn / rnnkit RNN, LSTM or GRU, read by torch's
    parameter names: project(x) = W_ih x + b_ih over all steps, step(gx_t, state) -> state."""
    p = {
        n: getattr(layer, f"{n}_l{k}", None)
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    }
    mode = layer.mode  # RNN_TANH, RNN_RELU, LSTM, GRU (torch.nn.RNNBase)

    def project(x):
        return F.linear(x, p["weight_ih"], p["bias_ih"])  # (T, b, gates*h)

    if mode == "LSTM":
        return project, lambda gx, s: lstm_step(
            gx, s[0], s[1], p["weight_hh"], p["bias_hh"], p["weight_hr"]
        )
    if mode == "GRU":
        return project, lambda gx, h: gru_step(gx, h, p["weight_hh"], p["bias_hh"])
    nonlinearity = "tanh" if mode == "RNN_TANH" else "relu"
    return project, lambda gx, h: rnn_step(gx, h, p["weight_hh"], p["bias_hh"], nonlinearity)


def replay(layer, x: Tensor) -> tuple[Tensor, list[list[Tensor]]]:
    """Run a unidirectional layer stack one layer and one step at a time from the zero state.

    x (T, b, i), time-major whatever ``layer.batch_first`` says. Returns the top layer's output
    (T, b, h) and hs[l][t], the h_t (b, h) of every layer l and step t, each a node of the graph.
    Dropout between layers is left out, as in eval mode.
    """
    if getattr(layer, "bidirectional", False):
        raise RnnkitError(
            "gradient flow through time is measured for unidirectional layers only",
            "a bidirectional layer's backward direction runs from the other end of the window",
        )
    b = x.size(1)
    out_size = getattr(layer, "proj_size", 0) or layer.hidden_size
    hs = []
    for k in range(layer.num_layers):
        project, step = _layer_step(layer, k)
        h0 = x.new_zeros(b, out_size).requires_grad_(True)
        state = (h0, x.new_zeros(b, layer.hidden_size)) if layer.mode == "LSTM" else h0
        layer_hs, _ = unroll_states(step, project(x), state)
        hs.append(layer_hs)
        x = torch.stack(layer_hs)  # (T, b, h): the next layer's input
    return x, hs


def check_replay(layer, x: Tensor, out: Tensor, steps: int = 64) -> None:
    """Raise RnnkitError unless ``out`` (T, b, h), replayed step by step from x (T, b, i), is
    what ``layer`` itself computes (to 1e-4): the replay knows only the plain equations. The
    first ``steps`` steps are compared (every step runs the same equations)."""
    x, out = x[:steps], out[:steps]  # (t, b, i), (t, b, h): the layer is causal
    with torch.no_grad():
        expected, _ = layer(x.transpose(0, 1) if layer.batch_first else x)
        if layer.batch_first:
            expected = expected.transpose(0, 1)
    err = (expected - out).abs().max().item()
    if not err <= 1e-4 * max(1.0, expected.abs().max().item()):
        raise RnnkitError(
            f"{type(layer).__name__}: replaying the layer step by step does not reproduce its "
            f"output (max difference {err:.3g})",
            "the gradient probe knows the plain RNN / LSTM / GRU equations of rnnkit.cells; "
            "options that change them (e.g. layer norm) are not supported here",
        )


def layer_gradient_norms(layer, x: Tensor, loss_fn: Callable, check: bool = True) -> np.ndarray:
    """||dL/dh_t|| (L, T, b) of every layer and step of ``layer`` (rnnkit or torch.nn RNN, LSTM,
    GRU) on x (T, b, i); ``loss_fn(out)`` maps the top output (T, b, h) to a scalar."""
    out, hs = replay(layer, x)
    if check:
        check_replay(layer, x, out.detach())
    loss = loss_fn(out)
    return np.stack([_norms(loss, layer_hs) for layer_hs in hs])


def charlm_gradient_norms(model, ids: Tensor, targets: Tensor, where: str = "last") -> np.ndarray:
    """(L, T, b) for a `rnnkit.tasks.charlm.CharLM` on ids, targets (b, T).

    where="last": L = the cross-entropy of the last step only, so dL/dh_t is pure flow through
    time; "all": the training loss, every step's cross-entropy (summed over the batch, so each
    example's gradient is its own). Measured on a float64 copy of the model.
    """
    model = copy.deepcopy(model).double()  # float64: a vanished gradient reads 1e-40, not 0
    x = model.embed(ids).transpose(0, 1)  # (T, b, e)

    def loss_fn(out):  # (T, b, h)
        if where == "last":
            return F.cross_entropy(model.head(out[-1]), targets[:, -1], reduction="sum")
        logits = model.head(out).transpose(0, 1)  # (b, T, v)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")

    return layer_gradient_norms(model.rnn, x, loss_fn)


def set_forget_bias(layer, value: float) -> None:
    """Set every LSTM layer's forget-gate bias to ``value``: b_if = value, b_hf = 0 (rows h..2h
    of bias_ih / bias_hh in torch's gate order i, f, g, o). f = sigma(value) at zero input."""
    h = layer.hidden_size
    with torch.no_grad():
        for k in range(layer.num_layers):
            getattr(layer, f"bias_ih_l{k}")[h : 2 * h] = value
            getattr(layer, f"bias_hh_l{k}")[h : 2 * h] = 0.0


# ----------------------------------------------------------------------------- statistics


def by_distance(norms: np.ndarray) -> np.ndarray:
    """(T, b) over t -> (T,) batch mean over the distance k = T-1-t (index 0 is the last step)."""
    return norms.mean(axis=1)[::-1].copy()


def flow_stats(norms: np.ndarray) -> dict:
    """Vanishing / exploding statistics of one layer's norms (T, b), loss on the last step.

    rate_per_step: rho of a least-squares fit log(mean norm) ~ k log(rho); ratio_over_window:
    mean norm at the first step over that at the last; horizon_1e-3: the first distance where
    it falls below 1e-3 of the last step's (None: never); vanished / exploded_fraction: the
    examples whose own ratio is below 1e-6 / above 10.
    """
    mean = by_distance(norms)
    k = np.arange(len(mean))
    ok = mean > 0
    rate = math.exp(np.polyfit(k[ok], np.log(mean[ok]), 1)[0]) if ok.sum() > 1 else float("nan")
    rel = mean / mean[0] if mean[0] > 0 else np.full_like(mean, np.nan)
    below = np.nonzero(rel < 1e-3)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = norms[0] / norms[-1]  # per example: first step over last step
    verdict = "vanishing" if rate < 0.97 else "exploding" if rate > 1.03 else "stable"
    return {
        "steps": int(len(mean)),
        "norm_last_step": float(mean[0]),
        "rate_per_step": float(rate),
        "ratio_over_window": float(rel[-1]),
        "horizon_1e-3": int(below[0]) if len(below) else None,
        "vanished_fraction": float(np.mean(ratios < VANISHED)),
        "exploded_fraction": float(np.mean(ratios > EXPLODED)),
        "verdict": verdict,
    }


def training_stats(records: list[dict], clip: float) -> dict:
    """Gradient-norm statistics of a training log (metrics.jsonl records with ``grad_norm``):
    how often clipping at ``clip`` was active, and spikes above 10x the median."""
    g = np.array([r["grad_norm"] for r in records if "grad_norm" in r], dtype=float)
    g = g[np.isfinite(g)]
    if not len(g):
        return {"steps": 0}
    median = float(np.median(g))
    return {
        "steps": int(len(g)),
        "median": median,
        "p99": float(np.percentile(g, 99)),
        "max": float(g.max()),
        "clip": clip,
        "clipped_fraction": float(np.mean(g > clip)) if clip > 0 else 0.0,
        "spikes_10x_median": int(np.sum(g > 10 * median)),
    }


# ----------------------------------------------------------------------------- pictures


def plot_flow(ax, curves: dict[str, np.ndarray], normalize: bool = True, title: str = "") -> None:
    """Mean ||dL/dh_t|| (T,) by distance, one line per label, on a log scale."""
    for label, mean in curves.items():
        y = mean / mean[0] if normalize and mean[0] > 0 else mean.copy()
        y[~(y > 0)] = np.nan  # log scale: leave out exact zeros
        ax.plot(np.arange(len(y)), y, label=label, lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("distance in time k = T-1-t (steps back from the loss)")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_{T-1}||" if normalize else "||dL/dh_t||")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def _plot_training(ax, records: list[dict], clip: float, label: str = "grad norm") -> None:
    steps = [r["step"] for r in records if "grad_norm" in r]
    g = [r["grad_norm"] for r in records if "grad_norm" in r]
    ax.plot(steps, g, lw=0.8, label=label)
    if clip > 0:
        ax.axhline(clip, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient norm (before clipping)")
    ax.grid(True, alpha=0.3)


# ----------------------------------------------------------------------------- runs


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
    return records
