"""What single units compute: activations over a text, units that track features, gate saturation.

After Karpathy, Johnson and Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks":
each hidden unit's h_t over a text is drawn as the text itself, every character's background
coloured by the unit's value after reading it (blue -1, white 0, red +1), which makes the units
that track quotes, line length or nesting visible; and a gate is left- or right-saturated at a
step when its value is below 0.1 or above 0.9 (section 4.2 of the paper).

The states and gates are the layer's own: its loop records them (``forward(...,
return_states=True)``), run on `rnnkit.viz.gradients.loop_copy` of the layer (a torch.nn layer's
state_dict in an rnnkit layer, or an rnnkit layer's copy, on the loop path in eval mode),
checked against the layer's own output.

Shapes: T time, b batch, h hidden units, L layers.
"""

from __future__ import annotations

import html

import numpy as np
import torch
from torch import Tensor

from rnnkit.viz.gradients import check_copy, loop_copy

__all__ = [
    "trace",
    "charlm_trace",
    "text_features",
    "find_units",
    "gate_saturation",
    "activation_html",
    "units_html",
    "plot_saturation",
]

GATES = {"LSTM": ("i", "f", "o"), "GRU": ("r", "z")}  # the sigmoid gates of each cell
LOW, HIGH = 0.1, 0.9  # saturation thresholds of the paper
STEP_GATES = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}  # in return_states' order


# ----------------------------------------------------------------------------- states


@torch.no_grad()
def trace(layer, x: Tensor) -> list[dict[str, np.ndarray]]:
    """Every layer's hidden state and gates at every step of x (T, b, i), time-major.

    Returns one dict per layer (bottom first) of arrays (T, b, h): "h" always; "i", "f", "g",
    "o", "c" for an LSTM; "r", "z", "n" for a GRU. ``layer`` is a unidirectional rnnkit or
    torch.nn RNN / LSTM / GRU, run as `loop_copy` with ``return_states=True`` (the gates
    after their non-linearities, as the cells compute them) and checked against its output.
    """
    out, _, states = loop_copy(layer, "the activation trace")(x, return_states=True)
    check_copy(layer, x, out)
    names = STEP_GATES.get(layer.mode, ())  # a vanilla RNN: h only
    layers = []
    for k in range(layer.num_layers):
        d = {"h": states["h"][k]}  # (T, b, p)
        if names:
            d.update(zip(names, states["gates"][k].chunk(len(names), dim=-1), strict=True))
        if "c" in states:
            d["c"] = states["c"][k]  # (T, b, h)
        layers.append(d)
    return [{n: v.double().cpu().numpy() for n, v in d.items()} for d in layers]


def charlm_trace(model, vocab, text: str) -> list[dict[str, np.ndarray]]:
    """`trace` of a `rnnkit.tasks.charlm.CharLM` reading ``text``: arrays (T, h) per layer."""
    ids = vocab.encode(text).unsqueeze(1)  # (T, 1)
    with torch.no_grad():
        x = model.embed(ids)  # (T, 1, e)
    return [{n: v[:, 0] for n, v in d.items()} for d in trace(model.rnn, x)]


# ----------------------------------------------------------------------------- features


def text_features(text: str) -> dict[str, np.ndarray]:
    """Simple features of each character, as known after reading it, each (T,):

    in_quotes       1 inside a double-quoted string: from the opening " up to the closing "
                    (exclusive), i.e. an odd number of " read so far
    position_in_line  characters read since the last newline (a newline itself is 0)
    bracket_depth   ( [ { opened and not yet closed, never below 0
    """
    quotes = position = depth = 0
    rows = []
    for ch in text:
        quotes += ch == '"'
        position = 0 if ch == "\n" else position + 1
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        rows.append((quotes % 2, position, depth))
    a = np.array(rows, dtype=float).reshape(-1, 3)
    return {"in_quotes": a[:, 0], "position_in_line": a[:, 1], "bracket_depth": a[:, 2]}


def _correlations(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r between each unit (T, h) and a feature (T,); 0 where either is constant."""
    a = acts - acts.mean(axis=0)
    f = feature - feature.mean()
    denom = np.sqrt((a**2).sum(axis=0) * (f**2).sum())
    r = np.zeros(acts.shape[1])
    ok = denom > 1e-12
    r[ok] = (a[:, ok] * f[:, None]).sum(axis=0) / denom[ok]
    return r


def find_units(acts: np.ndarray, features: dict[str, np.ndarray], top: int = 3) -> dict:
    """The units whose activation tracks each feature best: acts (T, h), features (T,) each.

    Returns {feature: [{"unit": u, "r": Pearson r}, ...]}, the ``top`` units by |r|, best first.
    """
    found = {}
    for name, feature in features.items():
        r = _correlations(acts, feature)
        best = np.argsort(-np.abs(r), kind="stable")[:top]
        found[name] = [{"unit": int(u), "r": float(r[u])} for u in best]
    return found


def gate_saturation(layer_trace: dict[str, np.ndarray], low=LOW, high=HIGH) -> dict:
    """How often each sigmoid gate sits near 0 or 1, over steps (and batch) of one layer.

    Returns {gate: {"left": fraction < low, "right": fraction > high (over steps and units),
    "units_left": [per unit], "units_right": [per unit]}} for the gates present (i, f, o or
    r, z); an RNN has none.
    """
    out = {}
    for gate in ("i", "f", "o", "r", "z"):
        if gate not in layer_trace:
            continue
        v = layer_trace[gate].reshape(-1, layer_trace[gate].shape[-1])  # (steps, h)
        left, right = (v < low).mean(axis=0), (v > high).mean(axis=0)
        out[gate] = {
            "left": float(left.mean()),
            "right": float(right.mean()),
            "units_left": left.tolist(),
            "units_right": right.tolist(),
        }
    return out


# ----------------------------------------------------------------------------- pictures


def _colour(v: float, vmin: float, vmax: float) -> str:
    """Blue at vmin, white halfway, red at vmax."""
    s = 2 * (min(max(v, vmin), vmax) - vmin) / (vmax - vmin) - 1 if vmax > vmin else 0.0
    fade = round(255 * (1 - abs(s)))
    return f"rgb(255,{fade},{fade})" if s >= 0 else f"rgb({fade},{fade},255)"


def activation_html(text: str, values, title: str = "", vmin=-1.0, vmax=1.0) -> str:
    """One unit over a text as an HTML fragment: one <span> per character, its background the
    unit's value after reading it (blue vmin, white halfway, red vmax); the value shows on hover.
    A newline is drawn as the visible mark ↵ before the line break."""
    values = np.asarray(values, dtype=float)
    if len(values) != len(text):
        raise ValueError(f"expected one value per character: {len(text)}, got {len(values)}")
    spans = []
    for ch, v in zip(text, values, strict=True):
        shown = "↵\n" if ch == "\n" else html.escape(ch)
        spans.append(
            f'<span style="background:{_colour(v, vmin, vmax)}" title="{v:.3f}">{shown}</span>'
        )
    head = f'<div class="unit-title">{html.escape(title)}</div>' if title else ""
    return f'{head}<div class="acts">{"".join(spans)}</div>'


CSS = """
.acts { font-family: monospace; font-size: 13px; white-space: pre-wrap; line-height: 1.5;
        border: 1px solid #ccc; padding: 6px; margin: 4px 0 14px 0; }
.unit-title { font-family: sans-serif; font-size: 13px; font-weight: bold; }
"""


def units_html(text: str, acts: np.ndarray, units: dict, title: str = "Unit activations") -> str:
    """A whole HTML page: the text coloured by each unit of ``units`` ({label: unit}) of
    acts (T, h)."""
    parts = [activation_html(text, acts[:, u], f"{label}: unit {u}") for label, u in units.items()]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        + "".join(parts)
        + "</body></html>"
    )


def plot_saturation(ax, saturation: dict, title: str = "") -> None:
    """Each unit's left- against right-saturated fraction, one colour per gate (the paper's
    Figure 3); units near the axes' far ends are gates that are almost always closed / open."""
    for gate, s in saturation.items():
        ax.scatter(s["units_left"], s["units_right"], s=12, alpha=0.7, label=f"{gate} gate")
    ax.plot([0, 1], [1, 0], color="#999", lw=0.8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"fraction of steps left-saturated (< {LOW})")
    ax.set_ylabel(f"fraction of steps right-saturated (> {HIGH})")
    ax.set_title(title, fontsize=10)
    if saturation:
        ax.legend(fontsize=8)
