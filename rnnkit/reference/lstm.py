"""An LSTM from scratch in NumPy: forward pass and backpropagation through time.

    a_t = Wxh x_t + bxh + Whh h_{t-1} + bhh         all four pre-activations  (b, 4h)
    ai, af, ag, ao = a_t split in torch's gate order i, f, g, o             each (b, h)
    i_t = sigma(ai)    f_t = sigma(af)    g_t = tanh(ag)    o_t = sigma(ao)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)

Parameters and torch's names (``rnnkit.LSTMCell``, or layer k of ``rnnkit.LSTM`` with ``_l{k}``):

    Wxh (4h, i) = weight_ih    Whh (4h, h) = weight_hh    bxh (4h,) = bias_ih    bhh (4h,) = bias_hh

with the rows of each stacked as [i; f; g; o]: rows h..2h of Wxh are torch's W_if, and so on.
``from_torch`` and ``init`` are shared with ``rnn.py``. Shapes: T time, b batch, i input, h hidden.
"""

from __future__ import annotations

import numpy as np

from rnnkit.reference import rnn
from rnnkit.reference.rnn import from_torch

__all__ = ["init", "forward", "backward", "from_torch", "GATES"]

GATES = "ifgo"  # torch's order of the four blocks of rows


def init(input_size: int, hidden_size: int, rng: np.random.Generator) -> dict:
    """U(-1/sqrt(h), 1/sqrt(h)) for every weight and bias, as torch.nn does."""
    return rnn.init(input_size, hidden_size, rng, gates=4)


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def forward(p: dict, xs: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None):
    """Run the LSTM over xs (T, b, i) from (h0, c0), each (b, h) (zeros when None).

    Returns hs (T, b, h) and the cache that `backward` needs (it holds cs (T, b, h) and the
    gates i, f, g, o, each (T, b, h)).
    """
    T, b, _ = xs.shape
    H = p["Whh"].shape[1]
    hprev = np.zeros((b, H)) if h0 is None else h0
    cprev = np.zeros((b, H)) if c0 is None else c0
    c = {k: np.zeros((T, b, H)) for k in ("h", "c", "h_in", "c_in", "i", "f", "g", "o")}
    # forward
    for t in range(T):
        c["h_in"][t], c["c_in"][t] = hprev, cprev
        a = xs[t] @ p["Wxh"].T + p["bxh"] + hprev @ p["Whh"].T + p["bhh"]  # (b, 4h)
        ai, af, ag, ao = np.split(a, 4, axis=1)  # each (b, h)
        i, f, g, o = sigmoid(ai), sigmoid(af), np.tanh(ag), sigmoid(ao)
        cprev = f * cprev + i * g
        hprev = o * np.tanh(cprev)
        c["i"][t], c["f"][t], c["g"][t], c["o"][t] = i, f, g, o
        c["c"][t], c["h"][t] = cprev, hprev
    c["xs"] = xs
    return c["h"], c


def backward(
    p: dict,
    cache: dict,
    dhs: np.ndarray,
    dhnext: np.ndarray | None = None,
    dcnext: np.ndarray | None = None,
) -> dict:
    """Backpropagation through time.

    dhs (T, b, h): dL/dh_t from above at every step; dhnext, dcnext (b, h): dL/dh_{T-1} and
    dL/dc_{T-1} from beyond the sequence (zeros when None).
    Returns dWxh, dWhh, dbxh, dbhh, dxs (T, b, i), dh0 and dc0 (b, h).
    """
    xs = cache["xs"]
    dWxh, dWhh = np.zeros_like(p["Wxh"]), np.zeros_like(p["Whh"])
    dbxh, dbhh = np.zeros_like(p["bxh"]), np.zeros_like(p["bhh"])
    dxs = np.zeros_like(xs)
    dhnext = np.zeros_like(dhs[0]) if dhnext is None else dhnext
    dcnext = np.zeros_like(dhs[0]) if dcnext is None else dcnext
    # backward
    for t in reversed(range(len(xs))):
        i, f, g, o = (cache[k][t] for k in GATES)
        tc = np.tanh(cache["c"][t])
        dh = dhs[t] + dhnext
        do = dh * tc  # h = o * tanh(c)
        dc = dcnext + dh * o * (1 - tc**2)  # c reaches the loss through h_t and c_{t+1}
        di = dc * g  # c = f * c_prev + i * g
        dg = dc * i
        df = dc * cache["c_in"][t]
        dcnext = dc * f  # dL/dc_{t-1}
        dai = di * i * (1 - i)  # sigma' = sigma (1 - sigma)
        daf = df * f * (1 - f)
        dag = dg * (1 - g**2)  # tanh' = 1 - tanh^2
        dao = do * o * (1 - o)
        da = np.concatenate([dai, daf, dag, dao], axis=1)  # (b, 4h), torch's order
        dWxh += da.T @ xs[t]
        dWhh += da.T @ cache["h_in"][t]
        dbxh += da.sum(0)
        dbhh += da.sum(0)
        dxs[t] = da @ p["Wxh"]
        dhnext = da @ p["Whh"]  # dL/dh_{t-1} through the gates
    return {
        "dWxh": dWxh,
        "dWhh": dWhh,
        "dbxh": dbxh,
        "dbhh": dbhh,
        "dxs": dxs,
        "dh0": dhnext,
        "dc0": dcnext,
    }
