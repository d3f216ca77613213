"""One time step of the vanilla (Elman) RNN, the LSTM and the GRU.

A cell computes exactly one step; `rnnkit.layers` unrolls it over time. Each cell is written
twice over the same equations: a step function over the *input projection* ``gx = W_ih x + b_ih``
(so a layer can compute the projections of a whole sequence in one matrix product), and a module
with torch.nn's cell contract (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`; ``forward(x, hx)``)
that calls it.

The variants of `rnnkit.variants` (layer norm, peepholes, recurrent dropout, ...) enter the
step functions as optional keyword arguments and the cells as keyword-only options; switched
off, every step is exactly torch.nn's cell.

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

from rnnkit.checks import check_dtype
from rnnkit.variants import (
    LN_EPS,
    Variants,
    add_parameters,
    variational_mask,
    zoneout,
    zoneout_keep,
)
from rnnkit.variants import reset_parameters as reset_variant_parameters

__all__ = [
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "rnn_step",
    "lstm_step",
    "gru_step",
    "input_projection",
]


# ----------------------------------------------------------------------------- step functions
#
# The variants enter the step functions as optional keyword arguments; with all of them None a
# step is the plain torch.nn cell. ``ln_weight_hh`` (gh,) turns on layer normalization of the
# recurrent term, ``h_mask`` (b, p) is a recurrent-dropout mask already scaled by 1 / (1 - p).


def input_projection(
    x: Tensor,
    weight_ih: Tensor,
    bias_ih: Tensor | None,
    ln_weight_ih: Tensor | None = None,
    linear=F.linear,
    norm=None,
) -> Tensor:
    """gx = W_ih x + b_ih, or LN(W_ih x) g_ih + b_ih with layer norm: (..., gh).

    Works on one step (b, i) or on a whole sequence (t, b, i) at once. ``linear``: the product
    (the fused path passes `rnnkit.gemm.linear`, the same function through oneDNN); ``norm``:
    the layer norm, ``norm(x, g, b, eps)`` (the fused path passes `rnnkit.norm.layer_norm`),
    else F.layer_norm.
    """
    if ln_weight_ih is None:
        return linear(x, weight_ih, bias_ih)
    if norm is not None:
        return norm(linear(x, weight_ih), ln_weight_ih, bias_ih, LN_EPS)
    return F.layer_norm(linear(x, weight_ih), (weight_ih.size(0),), ln_weight_ih, bias_ih, LN_EPS)


def _recurrent(
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    ln_weight_hh: Tensor | None,
    h_mask: Tensor | None,
) -> Tensor:
    """W_hh (h * m) + b_hh, or LN(W_hh (h * m)) g_hh + b_hh: (b, gh)."""
    if h_mask is not None:
        h = h * h_mask  # variational dropout: the same mask at every step
    if ln_weight_hh is None:
        return F.linear(h, weight_hh, bias_hh)
    gh = F.layer_norm(F.linear(h, weight_hh), (weight_hh.size(0),), ln_weight_hh, None, LN_EPS)
    return gh if bias_hh is None else gh + bias_hh


def rnn_step(
    gx: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    nonlinearity: str,
    *,
    ln_weight_hh: Tensor | None = None,
    h_mask: Tensor | None = None,
):
    """h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), given gx = W_ih x_t + b_ih: (b, h)."""
    pre = gx + _recurrent(h, weight_hh, bias_hh, ln_weight_hh, h_mask)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(
    gx: Tensor,
    h: Tensor,
    c: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    weight_hr: Tensor | None = None,
    *,
    ln_weight_hh: Tensor | None = None,
    ln_weight_c: Tensor | None = None,
    ln_bias_c: Tensor | None = None,
    weight_ch: Tensor | None = None,
    h_mask: Tensor | None = None,
    return_gates: bool = False,
):
    """One LSTM step given gx = W_ih x_t + b_ih: (b, 4h), gates in torch's order i, f, g, o.

    i = sigma(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigma(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)       candidate cell
    o = sigma(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g
    h' = o * tanh(c')            (with a projection: h' = W_hr (o * tanh(c')))

    Variants: peepholes (weight_ch = w_ci, w_cf, w_co) add w_ci * c and w_cf * c inside i and f
    and w_co * c' inside o; layer norm normalizes W_hh h before its gain g_hh and h' =
    o * tanh(LN(c') g_c + beta_c); h_mask drops h where it enters W_hh.
    Returns (h', c'), and the gates (b, 4h) after their non-linearities if ``return_gates``.
    """
    gates = gx + _recurrent(h, weight_hh, bias_hh, ln_weight_hh, h_mask)  # (b, 4h)
    i, f, g, o = gates.chunk(4, dim=-1)  # each (b, h)
    if weight_ch is not None:
        w_ci, w_cf, w_co = weight_ch.chunk(3)
        i, f = i + w_ci * c, f + w_cf * c
    i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
    c_next = f * c + i * g
    if weight_ch is not None:
        o = o + w_co * c_next
    o = torch.sigmoid(o)
    if ln_weight_c is not None:
        c_hat = F.layer_norm(c_next, (ln_weight_c.size(0),), ln_weight_c, ln_bias_c, LN_EPS)
    else:
        c_hat = c_next
    h_next = o * torch.tanh(c_hat)
    if weight_hr is not None:
        h_next = F.linear(h_next, weight_hr)  # (b, p)
    if return_gates:
        return h_next, c_next, torch.cat([i, f, g, o], dim=-1)
    return h_next, c_next


def gru_step(
    gx: Tensor,
    h: Tensor,
    weight_hh: Tensor,
    bias_hh: Tensor | None,
    *,
    ln_weight_hh: Tensor | None = None,
    h_mask: Tensor | None = None,
    return_gates: bool = False,
):
    """One GRU step given gx = W_ih x_t + b_ih: (b, 3h), gates in torch's order r, z, n.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     candidate state
    h' = (1 - z) * n + z * h

    Variants: layer norm normalizes W_hh h (all 3h) before its gain and b_hh; h_mask drops h
    where it enters W_hh (the carried z * h keeps the undropped h, as in Gal and Ghahramani).
    """
    gh = _recurrent(h, weight_hh, bias_hh, ln_weight_hh, h_mask)  # (b, 3h)
    x_r, x_z, x_n = gx.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    h_next = (1 - z) * n + z * h
    if return_gates:
        return h_next, torch.cat([r, z, n], dim=-1)
    return h_next


# ----------------------------------------------------------------------------- modules

_VARIANT_DOC = """
    Variants (keyword-only; see `rnnkit.variants` for the equations and papers):
        layer_norm, peephole (LSTM), forget_bias (LSTM), orthogonal, learn_init,
        recurrent_dropout, weight_drop, zoneout (LSTM: a rate or (z_c, z_h)).
        Dropout-style masks (recurrent_dropout, weight_drop) are drawn once per sequence: at the
        first step after `reset_masks()`, which `rnnkit.Recurrent` calls before each sequence;
        call it yourself when you unroll a cell by hand.
"""


class _CellBase(nn.Module):
    """Parameters and input checks shared by the three cells (torch.nn's RNNCellBase contract)."""

    gate_count = 1
    mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        peephole: bool = False,
        forget_bias: float | None = None,
        orthogonal: bool = False,
        learn_init: bool = False,
        recurrent_dropout: float = 0.0,
        weight_drop: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
    ):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        self.variants = Variants.build(
            name,
            self.mode,
            bias,
            layer_norm=layer_norm,
            peephole=peephole,
            forget_bias=forget_bias,
            orthogonal=orthogonal,
            learn_init=learn_init,
            recurrent_dropout=recurrent_dropout,
            weight_drop=weight_drop,
            zoneout=zoneout,
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
        add_parameters(self, self.variants, "", self.gate_count, hidden_size, kw)
        if self.variants.learn_init:
            for name in ("init_h", "init_c") if self.gate_count == 4 else ("init_h",):
                self.register_parameter(name, nn.Parameter(torch.zeros(hidden_size, **kw)))
        self._masks: tuple | None = None  # (h_mask, W_hh mask, h.shape) of the current sequence
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(h), 1/sqrt(h)) for every weight and bias, as torch.nn does, then what the
        variants ask for (layer-norm gains 1, orthogonal W_hh, forget bias, zero init state)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
        reset_variant_parameters(self, self.variants, [""], self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
        return s + "".join(f", {k}={v!r}" for k, v in self.variants.on().items())

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> Tensor:
        """The state (b, h) used when ``hx`` is None: zeros, or the learned ``init_h``."""
        return self._initial((batch_size,), device, dtype)[0]

    def _initial(self, lead: tuple, device, dtype) -> list[Tensor]:
        """The initial state tensors, each (*lead, h): learned or zeros."""
        if self.variants.learn_init:
            names = ("init_h", "init_c") if self.gate_count == 4 else ("init_h",)
            return [getattr(self, n).expand(*lead, self.hidden_size) for n in names]
        z = torch.zeros(*lead, self.hidden_size, device=device, dtype=dtype)
        return [z, z.clone()] if self.gate_count == 4 else [z]

    def reset_masks(self) -> None:
        """Start a new sequence: the next step draws fresh dropout masks."""
        self._masks = None

    def _recurrent_inputs(self, h: Tensor) -> tuple[Tensor | None, Tensor]:
        """(h_mask, W_hh) for this step: the sequence's masks in training, else (None, W_hh)."""
        v = self.variants
        if not self.training or not (v.recurrent_dropout or v.weight_drop):
            return None, self.weight_hh
        if self._masks is None or self._masks[2] != h.shape:
            h_mask = (
                variational_mask(v.recurrent_dropout, h.shape, h) if v.recurrent_dropout else None
            )
            w_mask = (
                variational_mask(v.weight_drop, self.weight_hh.shape, self.weight_hh)
                if v.weight_drop
                else None
            )
            self._masks = (h_mask, w_mask, h.shape)
        h_mask, w_mask, _ = self._masks
        return h_mask, self.weight_hh if w_mask is None else self.weight_hh * w_mask

    def _zoneout(self, new: Tensor, old: Tensor, z: float) -> Tensor:
        if not z:
            return new
        return zoneout(new, old, zoneout_keep(z, new.shape, new, self.training))

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
        check_dtype(name, x, self.weight_ih)

    def _check_hidden(self, hx: Tensor, x: Tensor, size: int, what: str = "hx") -> None:
        check_dtype(type(self).__name__, hx, self.weight_ih, what)
        expected = (x.size(0), size) if x.dim() == 2 else (size,)
        if tuple(hx.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: Expected {what} of size {expected}, "
                f"got {tuple(hx.shape)} (hint: the state is (batch, hidden_size) for batched input)"
            )

    def _input_projection(self, x: Tensor) -> Tensor:
        return input_projection(
            x, self.weight_ih, self.bias_ih, getattr(self, "ln_weight_ih", None)
        )


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
        **variants,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        self.mode = "RNN_" + nonlinearity.upper()
        super().__init__(input_size, hidden_size, bias, device, dtype, **variants)

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        self._check_input(x)
        if hx is None:
            (hx,) = self._initial(x.shape[:-1], x.device, x.dtype)
        self._check_hidden(hx, x, self.hidden_size)
        h_mask, weight_hh = self._recurrent_inputs(hx)
        h = rnn_step(
            self._input_projection(x),
            hx,
            weight_hh,
            self.bias_hh,
            self.nonlinearity,
            ln_weight_hh=getattr(self, "ln_weight_hh", None),
            h_mask=h_mask,
        )
        return self._zoneout(h, hx, self.variants.zoneout_h)


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
    mode = "LSTM"

    def initial_state(self, batch_size: int, *, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        h, c = self._initial((batch_size,), device, dtype)
        return h, c

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        self._check_input(x)
        if hx is None:
            hx = tuple(self._initial(x.shape[:-1], x.device, x.dtype))
        if not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise ValueError("LSTMCell: hx must be a tuple (h, c) of two tensors")
        h, c = hx
        self._check_hidden(h, x, self.hidden_size, "h")
        self._check_hidden(c, x, self.hidden_size, "c")
        h_mask, weight_hh = self._recurrent_inputs(h)
        h_next, c_next = lstm_step(
            self._input_projection(x),
            h,
            c,
            weight_hh,
            self.bias_hh,
            ln_weight_hh=getattr(self, "ln_weight_hh", None),
            ln_weight_c=getattr(self, "ln_weight_c", None),
            ln_bias_c=getattr(self, "ln_bias_c", None),
            weight_ch=getattr(self, "weight_ch", None),
            h_mask=h_mask,
        )
        v = self.variants
        return self._zoneout(h_next, h, v.zoneout_h), self._zoneout(c_next, c, v.zoneout_c)


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
    mode = "GRU"

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        self._check_input(x)
        if hx is None:
            (hx,) = self._initial(x.shape[:-1], x.device, x.dtype)
        self._check_hidden(hx, x, self.hidden_size)
        h_mask, weight_hh = self._recurrent_inputs(hx)
        h = gru_step(
            self._input_projection(x),
            hx,
            weight_hh,
            self.bias_hh,
            ln_weight_hh=getattr(self, "ln_weight_hh", None),
            h_mask=h_mask,
        )
        return self._zoneout(h, hx, self.variants.zoneout_h)


for _cls in (RNNCell, LSTMCell, GRUCell):
    _cls.__doc__ += _VARIANT_DOC
