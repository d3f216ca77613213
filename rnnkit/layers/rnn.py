"""`RNN`, `LSTM` and `GRU`: torch.nn's layers with ``impl``, ``lengths`` and the variants.

They keep torch.nn's whole contract (they subclass the torch.nn layers, so parameter names,
gate order, `state_dict`, `flatten_parameters` and cuDNN weight sharing are torch's own) and
add:

* ``impl="auto" | "native" | "fused" | "loop"`` (keyword-only): ``native`` runs torch's fused
  kernel, ``fused`` the custom autograd Functions of `rnnkit.fused` (hand-written BPTT),
  ``loop`` the readable time loop over `rnnkit.cells` steps; ``auto`` picks native whenever
  native computes the requested function, else fused (`rnnkit.layers.dispatch`).
  ``layer.plan()`` says which and why.
* the variants of `rnnkit.variants` as keyword-only options (``layer_norm=True``,
  ``zoneout=0.1``, ...), composable with num_layers, bidirectional, lengths and proj_size.
* ``forward(input, hx=None, *, lengths=None, return_states=False)``: ``lengths`` (b,) is a
  simpler alternative to a ``PackedSequence``; padded output positions are zero and the final
  state is taken at each sequence's last valid step, exactly as with packing.
  ``return_states=True`` adds every step's h (and c), and gate values, for analysis.

What the three share lives in `rnnkit.layers.base`; each class here adds its constructor and
``_direction``, the step closure the loop runs for one (layer, direction).

Shapes: t time, b batch, i input features, h hidden features, p output features (proj_size
or h), d directions (1 or 2), l layers.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.cells import gru_step, lstm_step, rnn_step
from rnnkit.layers.base import _FusedOrLoop
from rnnkit.layers.unroll import _check_state, _keeper, _state_shape, _zone

__all__ = ["RNN", "LSTM", "GRU"]

_VARIANT_ARGS = """
    Variants (keyword-only, composable with num_layers, bidirectional, lengths / packing{proj};
    equations and papers in `rnnkit.variants`): layer_norm, {lstm_only}orthogonal, learn_init,
    recurrent_dropout, weight_drop, zoneout{zoneout_pair}. ``impl`` picks native whenever
    the variants on leave torch's kernel's function unchanged, else the fused BPTT path;
    ``plan()`` says which and why. ``forward(..., return_states=True)`` adds the per-step states.
"""


class RNN(_FusedOrLoop, nn.RNN):
    r"""Multi-layer Elman RNN with tanh or ReLU: torch.nn.RNN's contract plus ``impl``, ``lengths``.

    .. math:: h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    Args: input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False; keyword-only ``impl='auto'``.

    Inputs: input (t, b, i), (b, t, i) with batch_first, (t, i) unbatched, or a PackedSequence;
    hx (d*l, b, h). Outputs: output (t, b, d*h), h_n (d*l, b, h).

    Example::

        rnn = rnnkit.RNN(10, 20, num_layers=2)
        output, h_n = rnn(torch.randn(5, 3, 10))
    """

    gate_count = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        **variants,
    ):
        self._set_options(impl, "RNN_" + str(nonlinearity).upper(), bias, variants)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            nonlinearity=nonlinearity,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self._add_variant_parameters(device, dtype)

    def _direction(self, k, x, record=None):
        p = self._prepare(k, x)
        seq = [p.gx]
        keep_h = _keeper(p.keep_h, seq)

        def step(inp, h):
            h_next = rnn_step(
                inp[0],
                h,
                p.weight_hh,
                p.bias_hh,
                self.nonlinearity,
                ln_weight_hh=p.ln_weight_hh,
                h_mask=p.h_mask,
            )
            h_new = _zone(h_next, h, keep_h(inp))
            if record is not None:
                record.append((h_next,))  # the gate of a vanilla RNN is its candidate state
            return h_new

        return tuple(seq), step


class GRU(_FusedOrLoop, nn.GRU):
    r"""Multi-layer GRU: torch.nn.GRU's contract plus ``impl`` and ``lengths``.

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Shapes as `RNN`.
    """

    gate_count = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        **variants,
    ):
        self._set_options(impl, "GRU", bias, variants)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self._add_variant_parameters(device, dtype)

    def _direction(self, k, x, record=None):
        p = self._prepare(k, x)
        seq = [p.gx]
        keep_h = _keeper(p.keep_h, seq)

        def step(inp, h):
            h_next, gates = gru_step(
                inp[0],
                h,
                p.weight_hh,
                p.bias_hh,
                ln_weight_hh=p.ln_weight_hh,
                h_mask=p.h_mask,
                return_gates=True,
            )
            if record is not None:
                record.append((gates,))
            return _zone(h_next, h, keep_h(inp))

        return tuple(seq), step


class LSTM(_FusedOrLoop, nn.LSTM):
    r"""Multi-layer LSTM: torch.nn.LSTM's contract (``proj_size`` included) plus ``impl``,
    ``lengths``.

    .. math::
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t)   \quad (h_t = W_{hr} (o_t \odot \tanh(c_t)) \text{ with proj})

    Inputs: input as `RNN`; hx a tuple (h_0 (d*l, b, p or h), c_0 (d*l, b, h)).
    Outputs: output (t, b, d*(p or h)), (h_n, c_n).

    Example, a layer-normalized LSTM with zoneout, on its fast path::

        lstm = rnnkit.LSTM(10, 20, layer_norm=True, zoneout=0.1, forget_bias=1.0)
        output, (h_n, c_n) = lstm(torch.randn(5, 3, 10))
        lstm.plan()   # 'fused: ... native not possible because layer_norm, zoneout change ...'
    """

    gate_count = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        **variants,
    ):
        self._set_options(impl, "LSTM", bias, variants)
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )
        self._add_variant_parameters(device, dtype)

    def _check_hx(self, hx, b, batched):
        name, dl = type(self).__name__, self.num_layers * self.num_directions
        if not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise ValueError(f"{name}: hx must be a tuple (h_0, c_0) of two tensors")
        out_size = self.proj_size or self.hidden_size
        _check_state(name, "hidden h_0", hx[0], _state_shape(dl, b, out_size, batched))
        _check_state(name, "cell c_0", hx[1], _state_shape(dl, b, self.hidden_size, batched))

    def _initial_states(self, hx, b, dl, batched, x):
        out_size = self.proj_size or self.hidden_size
        if hx is None:
            if self.variants.learn_init:
                h0, c0 = self._learned_hx(b, True)
            else:
                h0, c0 = x.new_zeros(dl, b, out_size), x.new_zeros(dl, b, self.hidden_size)
        else:
            self._check_hx(hx, b, batched)
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        return list(zip(h0.unbind(0), c0.unbind(0), strict=True))

    def _direction(self, k, x, record=None):
        p = self._prepare(k, x)
        seq = [p.gx]
        keep_h, keep_c = _keeper(p.keep_h, seq), _keeper(p.keep_c, seq)

        def step(inp, state):
            h, c = state
            h_next, c_next, gates = lstm_step(
                inp[0],
                h,
                c,
                p.weight_hh,
                p.bias_hh,
                p.weight_hr,
                ln_weight_hh=p.ln_weight_hh,
                ln_weight_c=p.ln_weight_c,
                ln_bias_c=p.ln_bias_c,
                weight_ch=p.weight_ch,
                h_mask=p.h_mask,
                return_gates=True,
            )
            h_next, c_next = _zone(h_next, h, keep_h(inp)), _zone(c_next, c, keep_c(inp))
            if record is not None:
                record.append((c_next, gates))
            return h_next, c_next

        return tuple(seq), step

    def _stack_final(self, finals, batched):
        h_n = torch.stack([h for h, _ in finals])  # (d*l, b, p or h)
        c_n = torch.stack([c for _, c in finals])  # (d*l, b, h)
        return (h_n, c_n) if batched else (h_n.squeeze(1), c_n.squeeze(1))


for _cls, _lstm in ((RNN, False), (GRU, False), (LSTM, True)):
    _cls.__doc__ += _VARIANT_ARGS.format(
        proj=" and proj_size" if _lstm else "",
        lstm_only="peephole, forget_bias, " if _lstm else "",
        zoneout_pair=" (a rate, or (z_c, z_h))" if _lstm else "",
    )
