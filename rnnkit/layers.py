"""Layers: a cell unrolled over time, stacked, in one or two directions, over variable lengths.

`RNN`, `LSTM` and `GRU` keep torch.nn's whole contract (they subclass the torch.nn layers, so
parameter names, gate order, `state_dict`, `flatten_parameters` and cuDNN weight sharing are
torch's own) and add:

* ``impl="native" | "loop" | "auto"`` (keyword-only): ``native`` runs torch's fused kernel,
  ``loop`` runs the readable time loop below over `rnnkit.cells` steps, ``auto`` picks native
  whenever native computes the requested function. ``layer.plan()`` says which and why.
* ``forward(input, hx=None, *, lengths=None)``: ``lengths`` (b,) is a simpler alternative to a
  ``PackedSequence``; padded output positions are zero and the final state is taken at each
  sequence's last valid step, exactly as with packing.

`Recurrent(cell, ...)` runs any cell (``cell(x_t, state) -> state``) through the same stacking,
bidirectional and lengths machinery.

Shapes: t time, b batch, i input features, h hidden features, d directions (1 or 2), l layers.
Inside the loop everything is time-major: x (t, b, i).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import gru_step, lstm_step, rnn_step

__all__ = ["RNN", "LSTM", "GRU", "Recurrent", "unroll"]

IMPLS = ("auto", "native", "loop")

State = Any  # a Tensor (b, h), or a tuple of them, e.g. LSTM's (h, c)


# ----------------------------------------------------------------------------- the time loop


def _tree_map(fn: Callable, *states):
    if isinstance(states[0], tuple | list):
        return tuple(fn(*parts) for parts in zip(*states, strict=True))
    return fn(*states)


def _output_of(state: State) -> Tensor:
    return state[0] if isinstance(state, tuple | list) else state


def unroll(
    step: Callable[[Tensor, State], State],
    inputs: Tensor,
    state: State,
    mask: Tensor | None = None,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Run ``state = step(inputs[t], state)`` for t = 0..T-1 (or T-1..0 when ``reverse``).

    inputs: (t, b, ...). mask: (t, b) bool, False on padding: there the state is carried
    unchanged and the output is zero, so a reverse pass starts at each sequence's last step.
    Returns outputs (t, b, h), the first tensor of each step's state, and the final state.
    """
    T = inputs.size(0)
    outputs: list[Tensor] = [inputs.new_empty(0)] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        new = step(inputs[t], state)
        if mask is not None:
            m = mask[t].unsqueeze(-1)  # (b, 1)
            new = _tree_map(lambda n, s, m=m: torch.where(m, n, s), new, state)
            outputs[t] = _output_of(new) * m
        else:
            outputs[t] = _output_of(new)
        state = new
    return torch.stack(outputs), state


def run_stack(
    x: Tensor,
    states: list[State],
    mask: Tensor | None,
    direction: Callable[[int, Tensor], tuple[Tensor, Callable]],
    num_layers: int,
    num_directions: int,
    dropout: float,
    training: bool,
) -> tuple[Tensor, list[State]]:
    """Stack layers and directions. ``direction(k, x)`` returns (inputs, step) for the k-th
    (layer, direction) pair, k = layer * num_directions + d; d = 1 runs backwards in time.

    x: (t, b, i); states[k]: the initial state of pair k. Returns (t, b, d*h) and final states.
    """
    finals: list[State] = []
    for layer in range(num_layers):
        outs = []
        for d in range(num_directions):
            k = layer * num_directions + d
            inputs, step = direction(k, x)
            out, final = unroll(step, inputs, states[k], mask, reverse=d == 1)
            outs.append(out)
            finals.append(final)
        x = torch.cat(outs, dim=-1) if num_directions == 2 else outs[0]  # (t, b, d*h)
        if dropout > 0 and training and layer < num_layers - 1:
            x = F.dropout(x, dropout, training=True)
    return x, finals


# ----------------------------------------------------------------------------- input and output


@dataclass
class _Layout:
    """How the caller laid out the sequence, to give the output back the same way."""

    batched: bool
    batch_first: bool
    packed: PackedSequence | None = None


def _check_lengths(name: str, lengths: Any, batch: int, steps: int) -> Tensor:
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.numel() != batch:
        raise ValueError(
            f"{name}: lengths must be a 1D tensor with one length per sequence. "
            f"Expected shape ({batch},), got {tuple(lengths.shape)}"
        )
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"{name}: lengths must hold integers, got dtype {lengths.dtype}")
    lengths = lengths.to("cpu", torch.int64)
    if batch and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(
            f"{name}: every length must be between 1 and the sequence length {steps}, "
            f"got lengths from {int(lengths.min())} to {int(lengths.max())}"
        )
    return lengths


def to_time_major(
    name: str, input: Any, input_size: int, batch_first: bool, lengths: Any = None
) -> tuple[Tensor, Tensor | None, _Layout]:
    """Validate ``input`` and return x (t, b, i), lengths (b,) on the CPU or None, and layout."""
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError(f"{name}: pass either a PackedSequence or lengths=, not both")
        x, lengths = pad_packed_sequence(input)  # (t, b, i) in the caller's batch order
        _check_features(name, x, input_size)
        return x, lengths, _Layout(True, batch_first, packed=input)
    if not isinstance(input, Tensor):
        raise TypeError(
            f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}"
        )
    if input.dim() not in (2, 3):
        raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D instead")
    _check_features(name, input, input_size)
    batched = input.dim() == 3
    if not batched:
        if lengths is not None:
            raise ValueError(f"{name}: lengths= needs batched 3D input, got unbatched 2D input")
        x = input.unsqueeze(1)
    else:
        x = input.transpose(0, 1) if batch_first else input
    if lengths is not None:
        lengths = _check_lengths(name, lengths, x.size(1), x.size(0))
    return x, lengths, _Layout(batched, batch_first)


def _check_features(name: str, x: Tensor, input_size: int) -> None:
    if x.size(-1) != input_size:
        raise ValueError(
            f"{name}: input.size(-1) must be equal to input_size. "
            f"Expected {input_size}, got {x.size(-1)}"
        )


def from_time_major(out: Tensor, layout: _Layout):
    """The inverse of `to_time_major` for an output (t, b, h)."""
    if layout.packed is not None:
        p = layout.packed
        if p.sorted_indices is not None:
            out = out.index_select(1, p.sorted_indices)  # pack in the input's sorted order
        data = torch.cat([out[t, :n] for t, n in enumerate(p.batch_sizes.tolist())])
        return PackedSequence(data, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
    if not layout.batched:
        return out.squeeze(1)
    return out.transpose(0, 1) if layout.batch_first else out


def _check_state(name: str, what: str, h: Any, expected: tuple[int, ...]) -> None:
    if not isinstance(h, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(h).__name__}")
    if tuple(h.shape) != expected:
        raise ValueError(
            f"{name}: Expected {what} size {expected}, got {tuple(h.shape)} "
            "(hint: (num_layers * num_directions, batch, hidden); no batch for unbatched input)"
        )


def _state_shape(dl: int, b: int, h: int, batched: bool) -> tuple[int, ...]:
    return (dl, b, h) if batched else (dl, h)


def _mask(lengths: Tensor | None, steps: int, device) -> Tensor | None:
    if lengths is None:
        return None
    return torch.arange(steps, device=device).unsqueeze(1) < lengths.to(device).unsqueeze(0)


# ----------------------------------------------------------------------------- RNN, LSTM, GRU


class _FusedOrLoop:
    """Mixin for the torch.nn layers: impl dispatch, ``lengths=``, and the readable loop."""

    impl: str

    def _set_impl(self, impl: str) -> None:
        if impl not in IMPLS:
            raise ValueError(f"{type(self).__name__}: impl must be one of {IMPLS}, got {impl!r}")
        self.impl = impl

    def plan(self, input: Tensor | None = None) -> str:
        """Which implementation `forward` runs, and why."""
        if self.impl == "loop":
            return (
                "loop: the readable time loop over rnnkit.cells steps, as requested (impl='loop')"
            )
        device = "cpu" if input is None else input.device.type
        kernel = "cuDNN" if device == "cuda" else "ATen/oneDNN"
        why = "requested" if self.impl == "native" else "it computes the requested function"
        return f"native: torch's fused {self.mode} kernel ({kernel} on {device}); {why}"

    def forward(self, input, hx=None, *, lengths=None):
        name = type(self).__name__
        if self.impl == "loop":
            return self._loop_forward(input, hx, lengths)
        if lengths is None:
            # validate here, so that native and loop reject bad input with the same message
            if isinstance(input, PackedSequence):
                _check_features(name, input.data, self.input_size)
                b, batched = int(input.batch_sizes[0]), True
            else:
                x, _, layout = to_time_major(name, input, self.input_size, self.batch_first)
                b, batched = x.size(1), layout.batched
            if hx is not None:
                self._check_hx(hx, b, batched)
            return super().forward(input, hx)
        # lengths= on the fused kernel: pack, run, unpack to zero-padded output
        x, lengths, _ = to_time_major(name, input, self.input_size, self.batch_first, lengths)
        if hx is not None:
            self._check_hx(hx, x.size(1), True)
        packed = pack_padded_sequence(input, lengths, self.batch_first, enforce_sorted=False)
        out, state = super().forward(packed, hx)
        out, _ = pad_packed_sequence(out, self.batch_first, total_length=x.size(0))
        return out, state

    # The loop. Parameters are read by torch.nn's names: weight_ih_l{k}{_reverse}, ...
    def _params(self, k: int) -> dict[str, Tensor | None]:
        layer, d = divmod(k, self.num_directions)
        sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        return {n: getattr(self, n + sfx, None) for n in names}

    def _loop_forward(self, input, hx, lengths):
        name = type(self).__name__
        x, lengths, layout = to_time_major(name, input, self.input_size, self.batch_first, lengths)
        b, dl = x.size(1), self.num_layers * self.num_directions
        states = self._initial_states(hx, b, dl, layout.batched, x)
        out, finals = run_stack(
            x,
            states,
            _mask(lengths, x.size(0), x.device),
            self._direction,
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
        )
        final = self._stack_final(finals, layout.batched)
        return from_time_major(out, layout), final

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    # One state tensor per (layer, direction), as RNN and GRU have; LSTM overrides all three.
    def _check_hx(self, hx, b, batched):
        dl = self.num_layers * self.num_directions
        _check_state(type(self).__name__, "hx", hx, _state_shape(dl, b, self.hidden_size, batched))

    def _initial_states(self, hx, b, dl, batched, x):
        if hx is None:
            hx = x.new_zeros(dl, b, self.hidden_size)
        else:
            self._check_hx(hx, b, batched)
            hx = hx if batched else hx.unsqueeze(1)
        return list(hx.unbind(0))

    def _stack_final(self, finals, batched):
        h_n = torch.stack(finals)  # (d*l, b, h)
        return h_n if batched else h_n.squeeze(1)


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
    ):
        self._set_impl(impl)
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

    def _direction(self, k, x):
        p = self._params(k)
        gx = F.linear(x, p["weight_ih"], p["bias_ih"])  # (t, b, h): all input projections at once

        def step(gx_t, h):
            return rnn_step(gx_t, h, p["weight_hh"], p["bias_hh"], self.nonlinearity)

        return gx, step


class GRU(_FusedOrLoop, nn.GRU):
    r"""Multi-layer GRU: torch.nn.GRU's contract plus ``impl`` and ``lengths``.

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Shapes as `RNN`.
    """

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
    ):
        self._set_impl(impl)
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

    def _direction(self, k, x):
        p = self._params(k)
        gx = F.linear(x, p["weight_ih"], p["bias_ih"])  # (t, b, 3h)

        def step(gx_t, h):
            return gru_step(gx_t, h, p["weight_hh"], p["bias_hh"])

        return gx, step


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
    """

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
    ):
        self._set_impl(impl)
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
            h0, c0 = x.new_zeros(dl, b, out_size), x.new_zeros(dl, b, self.hidden_size)
        else:
            self._check_hx(hx, b, batched)
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        return list(zip(h0.unbind(0), c0.unbind(0), strict=True))

    def _direction(self, k, x):
        p = self._params(k)
        gx = F.linear(x, p["weight_ih"], p["bias_ih"])  # (t, b, 4h)

        def step(gx_t, state):
            h, c = state
            return lstm_step(gx_t, h, c, p["weight_hh"], p["bias_hh"], p["weight_hr"])

        return gx, step

    def _stack_final(self, finals, batched):
        h_n = torch.stack([h for h, _ in finals])  # (d*l, b, p or h)
        c_n = torch.stack([c for _, c in finals])  # (d*l, b, h)
        return (h_n, c_n) if batched else (h_n.squeeze(1), c_n.squeeze(1))


# ----------------------------------------------------------------------------- any cell


class Recurrent(nn.Module):
    """Unroll any cell over time, stacked and bidirectional, over variable lengths.

    A cell is a module with ``cell(x_t, state) -> state`` for x_t (b, i), where the state is a
    Tensor (b, h) or a tuple whose first element is the output (b, h), as with torch.nn's and
    rnnkit's cells. The initial state is ``cell.initial_state(b, device=, dtype=)`` when the
    cell has it, else zeros shaped like torch.nn's cells.

    Args:
        cell: a cell module for a single layer and direction (a fresh copy, re-initialised,
            runs backwards when bidirectional), or a factory ``make_cell(input_size)`` that
            builds one cell per layer and direction.
        num_layers: stacked layers; layer k > 0 reads the outputs of layer k - 1.
        input_size: the features of x; needed only with a factory.
        bidirectional, batch_first, dropout: as in torch.nn.LSTM.

    Inputs: input (t, b, i) or (b, t, i) with batch_first, or a PackedSequence; ``hx`` a list
    with one state per (layer, direction), or None; keyword ``lengths`` (b,).
    Outputs: output (t, b, d*h) and the list of final states.

    Example::

        layer = rnnkit.Recurrent(lambda i: torch.nn.GRUCell(i, 32), num_layers=2, input_size=8)
        output, states = layer(torch.randn(20, 4, 8))
    """

    def __init__(
        self,
        cell: nn.Module | Callable[[int], nn.Module],
        num_layers: int = 1,
        *,
        input_size: int | None = None,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_layers, self.bidirectional = num_layers, bidirectional
        self.batch_first, self.dropout = batch_first, float(dropout)
        self.num_directions = 2 if bidirectional else 1
        if isinstance(cell, nn.Module):
            if num_layers != 1:
                raise ValueError(
                    "Recurrent: num_layers > 1 needs a factory make_cell(input_size), because "
                    "deeper layers read 2*hidden features when bidirectional, else hidden; "
                    "got a single cell module (hint: Recurrent(lambda i: LSTMCell(i, 64), "
                    "num_layers=2, input_size=32))"
                )
            cells = [cell]
            if bidirectional:
                reverse = copy.deepcopy(cell)
                if hasattr(reverse, "reset_parameters"):
                    reverse.reset_parameters()
                cells.append(reverse)
            self.input_size = getattr(cell, "input_size", input_size)
        else:
            if input_size is None:
                raise ValueError("Recurrent: with a cell factory, pass input_size=")
            cells, size = [], input_size
            for _ in range(num_layers):
                layer = [cell(size) for _ in range(self.num_directions)]
                cells += layer
                size = self.num_directions * _output_size(layer[0])
            self.input_size = input_size
        self.cells = nn.ModuleList(cells)

    def _direction(self, k, x):
        return x, self.cells[k]

    def forward(self, input, hx: list | None = None, *, lengths=None):
        x, lengths, layout = to_time_major(
            "Recurrent", input, self.input_size, self.batch_first, lengths
        )
        b = x.size(1)
        if hx is None:
            hx = [_zero_state(cell, b, x) for cell in self.cells]
        elif len(hx) != len(self.cells):
            raise ValueError(
                f"Recurrent: hx must hold one state per layer and direction. "
                f"Expected {len(self.cells)}, got {len(hx)}"
            )
        out, finals = run_stack(
            x,
            list(hx),
            _mask(lengths, x.size(0), x.device),
            self._direction,
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
        )
        return from_time_major(out, layout), finals


def _output_size(cell: nn.Module) -> int:
    size = getattr(cell, "output_size", None) or getattr(cell, "hidden_size", None)
    if size is None:
        raise ValueError(
            f"Recurrent: cannot tell the output size of {type(cell).__name__}; "
            "give the cell an `output_size` or `hidden_size` attribute"
        )
    return size


def _zero_state(cell: nn.Module, b: int, x: Tensor) -> State:
    if hasattr(cell, "initial_state"):
        return cell.initial_state(b, device=x.device, dtype=x.dtype)
    z = x.new_zeros(b, _output_size(cell))
    return (z, z.clone()) if isinstance(cell, nn.LSTMCell) else z
