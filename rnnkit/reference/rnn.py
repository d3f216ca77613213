"""A vanilla (Elman) RNN from scratch in NumPy: forward pass and backpropagation through time.

    a_t = Wxh x_t + bxh + Whh h_{t-1} + bhh        pre-activation          (b, h)
    h_t = tanh(a_t)                                 (or relu(a_t))          (b, h)

Parameters and torch's names for them (``rnnkit.RNNCell`` / ``torch.nn.RNNCell``, or layer k of
``rnnkit.RNN`` with the suffix ``_l{k}``):

    Wxh (h, i) = weight_ih     Whh (h, h) = weight_hh     bxh (h,) = bias_ih     bhh (h,) = bias_hh

Rows are examples, as in torch: x_t is (b, i), so ``Wxh x_t`` is written ``x @ Wxh.T``.
Shapes: T time steps, b batch, i input features, h hidden units. Everything is float64.

The backward pass is min-char-rnn's: ``dh`` is the total gradient reaching h_t (from the loss
at step t and from step t + 1 through ``dhnext``), and every local derivative sits next to the
forward operation it undoes. ``lstm.py`` and ``gru.py`` follow the same layout and functions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["init", "forward", "backward", "from_torch", "TORCH_NAMES"]

# reference name -> torch.nn parameter name (weights of all gates stacked, in torch's order)
TORCH_NAMES = {"Wxh": "weight_ih", "Whh": "weight_hh", "bxh": "bias_ih", "bhh": "bias_hh"}


def init(input_size: int, hidden_size: int, rng: np.random.Generator, gates: int = 1) -> dict:
    """U(-1/sqrt(h), 1/sqrt(h)) for every weight and bias, as torch.nn does.

    ``gates`` stacks that many blocks of rows (1 here, 4 for the LSTM, 3 for the GRU).
    """
    k = 1.0 / np.sqrt(hidden_size)
    shapes = {
        "Wxh": (gates * hidden_size, input_size),
        "Whh": (gates * hidden_size, hidden_size),
        "bxh": (gates * hidden_size,),
        "bhh": (gates * hidden_size,),
    }
    return {name: rng.uniform(-k, k, shape) for name, shape in shapes.items()}


def from_torch(module, layer: int = 0, reverse: bool = False) -> dict:
    """The reference parameters of a torch / rnnkit cell, or of layer ``layer`` of a layer stack.

    Reads ``weight_ih`` ... from a cell (``rnnkit.LSTMCell``, ``torch.nn.GRUCell``, ...), or
    ``weight_ih_l{layer}`` (``_reverse``) from a layer (``rnnkit.LSTM``, ``torch.nn.RNN``, ...).
    Returns float64 NumPy copies; a module without biases gives zero biases. Works for all three
    cells: their weights are stacked in torch's gate order (LSTM i, f, g, o; GRU r, z, n).
    """
    suffix = "" if hasattr(module, "weight_ih") else f"_l{layer}" + ("_reverse" if reverse else "")
    if not hasattr(module, "weight_ih" + suffix):
        raise ValueError(
            f"{type(module).__name__} has no parameter weight_ih{suffix} "
            "(expected a cell with weight_ih, or a layer with weight_ih_l0, ...)"
        )
    if getattr(module, "weight_hr" + suffix, None) is not None:
        raise ValueError("the NumPy reference has no LSTM projection (proj_size must be 0)")
    p = {}
    for ours, theirs in TORCH_NAMES.items():
        tensor = getattr(module, theirs + suffix, None)
        if tensor is None:  # bias=False
            p[ours] = np.zeros(p["Wxh"].shape[0])
        else:
            p[ours] = tensor.detach().cpu().double().numpy().copy()
    return p


def forward(p: dict, xs: np.ndarray, h0: np.ndarray | None = None, nonlinearity: str = "tanh"):
    """Run the RNN over xs (T, b, i) from h0 (b, h) (zeros when None).

    Returns hs (T, b, h) and the cache that `backward` needs.
    """
    T, b, _ = xs.shape
    H = p["Whh"].shape[0]
    hprev = np.zeros((b, H)) if h0 is None else h0
    hs = np.zeros((T, b, H))
    h_in = np.zeros((T, b, H))  # h_{t-1} as seen by step t
    # forward
    for t in range(T):
        h_in[t] = hprev
        a = xs[t] @ p["Wxh"].T + p["bxh"] + hprev @ p["Whh"].T + p["bhh"]  # (b, h)
        hs[t] = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
        hprev = hs[t]
    cache = {"xs": xs, "hs": hs, "h_in": h_in, "nonlinearity": nonlinearity}
    return hs, cache


def backward(p: dict, cache: dict, dhs: np.ndarray, dhnext: np.ndarray | None = None) -> dict:
    """Backpropagation through time.

    dhs (T, b, h): dL/dh_t arriving from above (the loss or the next layer) at every step;
    dhnext (b, h): dL/dh_{T-1} arriving from beyond the sequence (zeros when None).
    Returns dWxh, dWhh, dbxh, dbhh, and dxs (T, b, i) and dh0 (b, h) for the layer below and
    the previous window.
    """
    xs, hs, h_in = cache["xs"], cache["hs"], cache["h_in"]
    dWxh, dWhh = np.zeros_like(p["Wxh"]), np.zeros_like(p["Whh"])
    dbxh, dbhh = np.zeros_like(p["bxh"]), np.zeros_like(p["bhh"])
    dxs = np.zeros_like(xs)
    dhnext = np.zeros_like(hs[0]) if dhnext is None else dhnext
    # backward
    for t in reversed(range(len(xs))):
        dh = dhs[t] + dhnext  # from above, and from step t + 1
        relu = cache["nonlinearity"] == "relu"
        da = ((hs[t] > 0) if relu else (1 - hs[t] ** 2)) * dh  # relu' = [a > 0], tanh' = 1 - h^2
        dWxh += da.T @ xs[t]
        dWhh += da.T @ h_in[t]
        dbxh += da.sum(0)
        dbhh += da.sum(0)
        dxs[t] = da @ p["Wxh"]
        dhnext = da @ p["Whh"]  # dL/dh_{t-1} through the recurrence
    return {"dWxh": dWxh, "dWhh": dWhh, "dbxh": dbxh, "dbhh": dbhh, "dxs": dxs, "dh0": dhnext}
