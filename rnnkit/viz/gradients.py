"""Gradient flow through time: how much of the loss's gradient reaches h_t, k steps back.

For a loss L on the last step T-1 of a window, backpropagation through time gives

    dL/dh_t = (dh_{t+1}/dh_t)^T dL/dh_{t+1}            t = T-2, ..., 0

so ||dL/dh_t|| against the distance k = T-1-t shows whether the signal vanishes (shrinks like
rho^k with rho < 1) or explodes (rho > 1) (Bengio et al. 1994; Pascanu et al. 2013). For a linear
RNN h_t = W h_{t-1} + x_t with W = a Q, Q orthogonal, it is exactly a^k ||dL/dh_{T-1}||.

The layer's own loop computes it (`forward_probed` of `rnnkit.layers`): a zero probe p_t is
added to every layer's h_t as the loop runs, so dL/dp_t = dL/dh_t, the total derivative through
time and the layers above, and one ``torch.autograd.grad`` returns it for every layer and step
(the model's ``.grad`` fields are left alone). A torch.nn layer, or an rnnkit one on its native
or fused path, is measured on an rnnkit copy on its loop path holding the same state_dict, in
eval mode; the copy is checked against the layer's own output.

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
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM, RNN
from rnnkit.layers.unroll import probed, unroll

__all__ = [
    "loop_copy",
    "check_copy",
    "step_gradient_norms",
    "layer_gradient_norms",
    "charlm_gradient_norms",
    "by_distance",
    "flow_stats",
    "training_stats",
    "set_forget_bias",
    "plot_flow",
]

VANISHED, EXPLODED = 1e-6, 10.0  # ratio ||dL/dh_0|| / ||dL/dh_{T-1}|| per example


# ----------------------------------------------------------------------------- the layer's loop


def loop_copy(layer, what: str) -> RNN | LSTM | GRU:
    """An rnnkit layer on its loop path that computes what ``layer`` (a unidirectional rnnkit or
    torch.nn RNN / LSTM / GRU) computes: a copy of an rnnkit layer, variants and all, or a new one
    holding a torch.nn layer's state_dict. Time-major and in eval mode (no dropout, zoneout's
    expectation). ``what`` names the measurement in the errors."""
    if not isinstance(layer, nn.RNNBase):
        raise RnnkitError(
            f"{what} needs an rnnkit or torch.nn RNN, LSTM or GRU, got {type(layer).__name__}",
            "the per-step states come from the layer's own loop (forward(return_states=True))",
        )
    if layer.bidirectional:
        raise RnnkitError(
            f"{what} is measured for unidirectional layers only",
            "a bidirectional layer's backward direction runs from the other end of the window",
        )
    if isinstance(layer, RNN | LSTM | GRU):
        twin = copy.deepcopy(layer)
        twin.impl = "loop"
    else:
        cls = {"LSTM": LSTM, "GRU": GRU}.get(layer.mode, RNN)
        options = {"proj_size": layer.proj_size} if layer.mode == "LSTM" else {}
        if cls is RNN:
            options["nonlinearity"] = layer.nonlinearity
        w = layer.weight_ih_l0
        twin = cls(
            layer.input_size,
            layer.hidden_size,
            layer.num_layers,
            bias=layer.bias,
            dropout=layer.dropout,
            device=w.device,
            dtype=w.dtype,
            impl="loop",
            **options,
        )
        twin.load_state_dict(layer.state_dict())
    twin.batch_first = False
    return twin.eval()


@torch.no_grad()
def check_copy(layer, x: Tensor, out: Tensor, steps: int = 64) -> None:
    """Raise RnnkitError unless ``out`` (T, b, p), the top output of `loop_copy` on x (T, b, i),
    is what ``layer`` itself computes in eval mode (to 1e-4); the first ``steps`` steps are
    compared (the layer is causal and every step runs the same equations)."""
    x, out = x[:steps], out[:steps]  # (t, b, i), (t, b, p)
    training = layer.training
    try:
        expected, _ = layer.eval()(x.transpose(0, 1) if layer.batch_first else x)
    finally:
        layer.train(training)
    if layer.batch_first:
        expected = expected.transpose(0, 1)  # (b, t, p) -> (t, b, p)
    err = (expected - out).abs().max().item()
    if not err <= 1e-4 * max(1.0, expected.abs().max().item()):
        raise RnnkitError(
            f"{type(layer).__name__}: the rnnkit loop holding the layer's state_dict does not "
            f"reproduce its output (max difference {err:.3g})",
            "a subclass that changes forward cannot be measured step by step; use rnnkit's "
            "RNN / LSTM / GRU, whose variants the loop runs itself",
        )


# ----------------------------------------------------------------------------- measuring


def step_gradient_norms(step: Callable, inputs: Tensor, state, loss_fn: Callable) -> np.ndarray:
    """||dL/dh_t|| (T, b) for any step ``state = step(x_t, state)``, e.g. a linear one.

    inputs (T, b, ...); ``loss_fn(hs)`` takes hs (T, b, h) and returns a scalar. The step runs
    in `rnnkit.layers.unroll` with a zero probe p (T, b, h) added to each h_t; dL/dp_t = dL/dh_t.
    """
    h0 = state[0] if isinstance(state, tuple | list) else state  # (b, h)
    probe = h0.new_zeros(inputs.size(0), *h0.shape).requires_grad_(True)  # (T, b, h)
    hs, _ = unroll(probed(lambda inp, s: step(inp[0], s)), (inputs, probe), state)
    (dprobe,) = torch.autograd.grad(loss_fn(hs), probe)
    return dprobe.norm(dim=-1).double().cpu().numpy()


def layer_gradient_norms(layer, x: Tensor, loss_fn: Callable, check: bool = True) -> np.ndarray:
    """||dL/dh_t|| (L, T, b) of every layer and step of ``layer`` (rnnkit or torch.nn RNN, LSTM,
    GRU, unidirectional) on x (T, b, i), time-major; ``loss_fn(out)`` maps the top output
    (T, b, h) to a scalar. Runs `loop_copy` of the layer with a zero probe on every h_t
    (`forward_probed`); ``check``: `check_copy` its output against the layer's."""
    twin = loop_copy(layer, "gradient flow through time")
    T, b = x.size(0), x.size(1)
    probe = x.new_zeros(layer.num_layers, T, b, layer.proj_size or layer.hidden_size)
    probe.requires_grad_(True)  # (L, T, b, p)
    out, _, _ = twin.forward_probed(x, probe)  # out (T, b, p)
    if check:
        check_copy(layer, x, out.detach())
    (dprobe,) = torch.autograd.grad(loss_fn(out), probe)  # dL/dh_t of every layer and step
    return dprobe.norm(dim=-1).double().cpu().numpy()


def charlm_gradient_norms(model, ids: Tensor, targets: Tensor, where: str = "last") -> np.ndarray:
    """(L, T, b) for a `rnnkit.tasks.charlm.CharLM` on ids, targets (b, T).

    where="last": L = the cross-entropy of the last step only, so dL/dh_t is pure flow through
    time; "all": the training loss, every step's cross-entropy (summed over the batch, so each
    example's gradient is its own). Measured on a float64 copy of the model.
    """
    model = copy.deepcopy(model).double()  # float64: a vanished gradient reads 1e-40, not 0
    x = model.embed(ids).transpose(0, 1)  # (T, b, e)
    head = model.head if hasattr(model, "head") else model.read_out  # tied: W = E

    def loss_fn(out):  # (T, b, h)
        if where == "last":
            return F.cross_entropy(head(out[-1]), targets[:, -1], reduction="sum")
        logits = head(out).transpose(0, 1)  # (b, T, v)
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
