"""One time step of the vanilla (Elman) RNN, the LSTM and the GRU.

A cell computes exactly one step; `rnnkit.layers` unrolls it over time. Each cell is written
twice over the same equations: a step function over the *input projection* ``gx = W_ih x + b_ih``
(so a layer can compute the projections of a whole sequence in one matrix product), and a module
with torch.nn's cell contract (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`; ``forward(x, hx)``)
that calls it.

Shapes: b batch, i input features, h hidden features, p projection features.

Unrolling a cell by hand::

    cell = rnnkit.LSTMCell(10, 20)
    state = None
    for x_t in x:                      # x: (t, b, 10)
        state = cell(x_t, state)       # state: (h, c), each (b, 20)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "rnn_step", "lstm_step", "gru_step"]


# ----------------------------------------------------------------------------- step functions


def rnn_step(gx: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, nonlinearity: str):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), given gx = W_ih x_t + b_ih: (b, h)."""
    pre = gx + F.linear(h, weight_hh, bias_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(
    gx: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    weight_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step given gx = W_ih x_t + b_ih: (b, 4h), gates in torch's order i, f, g, o.

    i = sigma(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigma(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)       candidate cell
    o = sigma(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g
    h' = o * tanh(c')            (with a projection: h' = W_hr (o * tanh(c')))
    """
    gates = gx + F.linear(h, weight_hh, bias_hh)  # (b, 4h)
    i, f, g, o = gates.chunk(4, dim=-1)  # each (b, h)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_next = f * c + i * g
    h_next = o * torch.tanh(c_next)
    if weight_hr is not None:
        h_next = F.linear(h_next, weight_hr)  # (b, p)
    return h_next, c_next


def gru_step(gx: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None) -> Tensor:
    """One GRU step given gx = W_ih x_t + b_ih: (b, 3h), gates in torch's order r, z, n.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     candidate state
    h' = (1 - z) * n + z * h
    """
    gh = F.linear(h, weight_hh, bias_hh)  # (b, 3h)
    x_r, x_z, x_n = gx.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


# ----------------------------------------------------------------------------- modules


class _CellBase(nn.Module):
    """Parameters and input checks shared by the three cells (torch.nn's RNNCellBase contract)."""

    gate_count = 1

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be a positive integer, got {value!r}"
                )
        kw = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gh = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh, **kw))
            self.bias_hh = nn.Parameter(torch.empty(gh, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(h), 1/sqrt(h)) for every weight and bias, as torch.nn does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> Tensor:
        """The zero state (b, h) used when ``hx`` is None."""
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def _check_input(self, x: Tensor) -> None:
        """Validate x: (b, i) or unbatched (i,)."""
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
        if x.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {x.dim()}D instead")
        if x.size(-1) != self.input_size:
            raise ValueError(
                f"{name}: input.size(-1) must be equal to input_size. "
                f"Expected {self.input_size}, got {x.size(-1)}"
            )

    def _check_hidden(self, hx: Tensor, x: Tensor, size: int, what: str = "hx") -> None:
        expected = (x.size(0), size) if x.dim() == 2 else (size,)
        if tuple(hx.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: Expected {what} of size {expected}, "
                f"got {tuple(hx.shape)} (hint: the state is (batch, hidden_size) for batched input)"
            )

    def _input_projection(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)


class RNNCell(_CellBase):
    r"""An Elman RNN cell with tanh or ReLU non-linearity.

    .. math::
        h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})

    Args:
        input_size: features in x.  hidden_size: features in h.
        bias: use b_ih and b_hh.  nonlinearity: ``"tanh"`` or ``"relu"``.

    Inputs: x (b, i) or (i,); hx (b, h) or (h,), zeros when None.
    Outputs: h' (b, h) or (h,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        self._check_input(x)
        if hx is None:
            hx = torch.zeros(*x.shape[:-1], self.hidden_size, device=x.device, dtype=x.dtype)
        self._check_hidden(hx, x, self.hidden_size)
        gx = self._input_projection(x)
        return rnn_step(gx, hx, self.weight_hh, self.bias_hh, self.nonlinearity)


class LSTMCell(_CellBase):
    r"""A long short-term memory cell.

    .. math::
        i = \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \\
        f = \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        g = \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        o = \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) \\
        c' = f \odot c + i \odot g \\
        h' = o \odot \tanh(c')

    Inputs: x (b, i) or (i,); hx a tuple (h, c), each (b, h), zeros when None.
    Outputs: (h', c'), each (b, h) or (h,).
    """

    gate_count = 4

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        z = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return z, z.clone()

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        self._check_input(x)
        if hx is None:
            z = torch.zeros(*x.shape[:-1], self.hidden_size, device=x.device, dtype=x.dtype)
            hx = (z, z)
        if not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise ValueError("LSTMCell: hx must be a tuple (h, c) of two tensors")
        h, c = hx
        self._check_hidden(h, x, self.hidden_size, "h")
        self._check_hidden(c, x, self.hidden_size, "c")
        return lstm_step(self._input_projection(x), h, c, self.weight_hh, self.bias_hh)


class GRUCell(_CellBase):
    r"""A gated recurrent unit cell.

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \\
        h' = (1 - z) \odot n + z \odot h

    Inputs: x (b, i) or (i,); hx (b, h) or (h,), zeros when None.
    Outputs: h' (b, h) or (h,).
    """

    gate_count = 3

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        self._check_input(x)
        if hx is None:
            hx = torch.zeros(*x.shape[:-1], self.hidden_size, device=x.device, dtype=x.dtype)
        self._check_hidden(hx, x, self.hidden_size)
        return gru_step(self._input_projection(x), hx, self.weight_hh, self.bias_hh)
