"""A GRU from scratch in NumPy: forward pass and backpropagation through time.

    ax = Wxh x_t + bxh      split as ax_r, ax_z, ax_n     (torch's gate order r, z, n)
    ah = Whh h_{t-1} + bhh  split as ah_r, ah_z, ah_n     each (b, h)
    r_t = sigma(ax_r + ah_r)                               reset gate
    z_t = sigma(ax_z + ah_z)                               update gate
    n_t = tanh(ax_n + r_t * ah_n)                          candidate state
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The reset gate multiplies ``Whh h + bhh`` of the candidate (torch's and cuDNN's form), not h
itself, so the two projections keep separate biases. Parameters and torch's names
(``rnnkit.GRUCell``, or layer k of ``rnnkit.GRU`` with ``_l{k}``):

    Wxh (3h, i) = weight_ih    Whh (3h, h) = weight_hh    bxh (3h,) = bias_ih    bhh (3h,) = bias_hh

with the rows of each stacked as [r; z; n]. Shapes: T time, b batch, i input, h hidden.
"""

from __future__ import annotations

import numpy as np

from rnnkit.reference import rnn
from rnnkit.reference.lstm import sigmoid
from rnnkit.reference.rnn import from_torch

__all__ = ["init", "forward", "backward", "from_torch", "GATES"]

GATES = "rzn"  # torch's order of the three blocks of rows


def init(input_size: int, hidden_size: int, rng: np.random.Generator) -> dict:
    """U(-1/sqrt(h), 1/sqrt(h)) for every weight and bias, as torch.nn does."""
    return rnn.init(input_size, hidden_size, rng, gates=3)


def forward(p: dict, xs: np.ndarray, h0: np.ndarray | None = None):
    """Run the GRU over xs (T, b, i) from h0 (b, h) (zeros when None).

    Returns hs (T, b, h) and the cache that `backward` needs (it holds the gates r, z, n and
    ah_n = Whh_n h_{t-1} + bhh_n, each (T, b, h)).
    """
    T, b, _ = xs.shape
    H = p["Whh"].shape[1]
    hprev = np.zeros((b, H)) if h0 is None else h0
    c = {k: np.zeros((T, b, H)) for k in ("h", "h_in", "r", "z", "n", "ah_n")}
    # forward
    for t in range(T):
        c["h_in"][t] = hprev
        ax_r, ax_z, ax_n = np.split(xs[t] @ p["Wxh"].T + p["bxh"], 3, axis=1)  # each (b, h)
        ah_r, ah_z, ah_n = np.split(hprev @ p["Whh"].T + p["bhh"], 3, axis=1)
        r = sigmoid(ax_r + ah_r)
        z = sigmoid(ax_z + ah_z)
        n = np.tanh(ax_n + r * ah_n)
        hprev = (1 - z) * n + z * hprev
        c["r"][t], c["z"][t], c["n"][t], c["ah_n"][t], c["h"][t] = r, z, n, ah_n, hprev
    c["xs"] = xs
    return c["h"], c


def backward(p: dict, cache: dict, dhs: np.ndarray, dhnext: np.ndarray | None = None) -> dict:
    """Backpropagation through time.

    dhs (T, b, h): dL/dh_t from above at every step; dhnext (b, h): dL/dh_{T-1} from beyond
    the sequence (zeros when None).
    Returns dWxh, dWhh, dbxh, dbhh, dxs (T, b, i) and dh0 (b, h).
    """
    xs = cache["xs"]
    dWxh, dWhh = np.zeros_like(p["Wxh"]), np.zeros_like(p["Whh"])
    dbxh, dbhh = np.zeros_like(p["bxh"]), np.zeros_like(p["bhh"])
    dxs = np.zeros_like(xs)
    dhnext = np.zeros_like(dhs[0]) if dhnext is None else dhnext
    # backward
    for t in reversed(range(len(xs))):
        r, z, n, ah_n, hprev = (cache[k][t] for k in ("r", "z", "n", "ah_n", "h_in"))
        dh = dhs[t] + dhnext
        dn = dh * (1 - z)  # h = (1 - z) * n + z * h_prev
        dz = dh * (hprev - n)
        dhprev = dh * z  # the direct path, through the update gate
        dan = dn * (1 - n**2)  # n = tanh(ax_n + r * ah_n)
        dr = dan * ah_n
        dah_n = dan * r
        dar = dr * r * (1 - r)  # sigma' = sigma (1 - sigma)
        daz = dz * z * (1 - z)
        dax = np.concatenate([dar, daz, dan], axis=1)  # (b, 3h): d(Wxh x + bxh)
        dah = np.concatenate([dar, daz, dah_n], axis=1)  # (b, 3h): d(Whh h + bhh)
        dWxh += dax.T @ xs[t]
        dWhh += dah.T @ hprev
        dbxh += dax.sum(0)
        dbhh += dah.sum(0)
        dxs[t] = dax @ p["Wxh"]
        dhnext = dhprev + dah @ p["Whh"]  # dL/dh_{t-1}: direct path and through the gates
    return {"dWxh": dWxh, "dWhh": dWhh, "dbxh": dbxh, "dbhh": dbhh, "dxs": dxs, "dh0": dhnext}
