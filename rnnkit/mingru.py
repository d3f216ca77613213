"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): cells and layers.

Both drop the hidden state from their gates, so the recurrence is linear in h,
h_t = a_t * h_{t-1} + b_t with a_t, b_t depending on x_t only (sec. 3.1.2 and 3.2.2 of the
paper), and a whole sequence can be computed at once by the scan of `rnnkit.scan`, where the
equations are written out per model with their coefficients a and b.

Three ways to run a layer, all giving the same numbers (tests/test_scan.py):

* ``scan``: `parallel_scan_log` over log a and log b (every factor is positive, so the logs
  exist and the products become sums), no time loop: the paper's way, for a GPU;
* ``fused``: `LinearRecurrence`, one multiply-add per step forward and backward with a
  hand-written backward (on CPU, when built, projection, gates and recurrence in one C++ pass:
  `rnnkit.fused_cpu.CppMinFunction`): the work-efficient way on a CPU, which ``impl="auto"``
  picks there;
* ``loop`` and ``step()``: the step functions one x_t at a time, for reading and generation.

Shapes: t time, b batch, i input features, h hidden features, d directions, l layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import check_dtype
from rnnkit.layers import from_time_major, run_stack, to_time_major, unroll
from rnnkit.layers.dispatch import cpp_loops
from rnnkit.scan import (
    LinearRecurrence,
    min_gru_coefficients,
    min_gru_linear,
    min_gru_step,
    min_lstm_coefficients,
    min_lstm_linear,
    min_lstm_step,
    parallel_scan_log,
)

__all__ = ["MinGRU", "MinLSTM", "MinGRUCell", "MinLSTMCell"]

IMPLS = ("auto", "scan", "fused", "loop")


# ----------------------------------------------------------------------------- cells


class _MinCell(nn.Module):
    gate_count = 2
    step = staticmethod(min_gru_step)

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size)
        kw = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gh = self.gate_count * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(gh, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(h), 1/sqrt(h)), as torch.nn's cells."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        if x.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {x.dim()}D instead")
        check_dtype(name, x, self.weight_ih)
        check_dtype(name, hx, self.weight_ih, "hx")
        if x.size(-1) != self.input_size:
            raise ValueError(
                f"{name}: input.size(-1) must be equal to input_size. "
                f"Expected {self.input_size}, got {x.size(-1)}"
            )
        if hx is None:
            hx = x.new_zeros(*x.shape[:-1], self.hidden_size)
        elif hx.shape != (*x.shape[:-1], self.hidden_size):
            raise ValueError(
                f"{name}: Expected hx of size {(*x.shape[:-1], self.hidden_size)}, "
                f"got {tuple(hx.shape)}"
            )
        return self.step(F.linear(x, self.weight_ih, self.bias_ih), hx)


class MinGRUCell(_MinCell):
    """One minGRU step: h' = (1 - z) * h + z * g(W_h x + b_h), z = sigma(W_z x + b_z).

    weight_ih (2h, i) holds (W_z, W_h). Inputs: x (b, i) or (i,); hx (b, h), zeros when None.
    """


class MinLSTMCell(_MinCell):
    """One minLSTM step: h' = (f * h + i * g(W_h x + b_h)) / (f + i), f, i sigmoid gates of x.

    weight_ih (3h, i) holds (W_f, W_i, W_h). Inputs: x (b, i) or (i,); hx (b, h), zeros when None.
    """

    gate_count = 3
    step = staticmethod(min_lstm_step)


def _check_sizes(name: str, *sizes: int) -> None:
    for value in sizes:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}: sizes must be positive integers, got {value!r}")


# ----------------------------------------------------------------------------- layers


def _reverse_index(lengths: Tensor | None, T: int, b: int, device) -> Tensor | None:
    """(t, b) time index reversing each sequence within its length; padding stays put."""
    if lengths is None:
        return None
    t = torch.arange(T, device=device).unsqueeze(1)  # (t, 1)
    n = lengths.to(device).unsqueeze(0)  # (1, b)
    return torch.where(t < n, n - 1 - t, t)  # an involution: applying it twice is the identity


class _MinLayer(nn.Module):
    """Stacked, bidirectional minGRU / minLSTM over variable lengths."""

    gate_count = 2
    coefficients = staticmethod(min_gru_coefficients)
    linear = staticmethod(min_gru_linear)
    step_fn = staticmethod(min_gru_step)

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
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, input_size, hidden_size, num_layers)
        if impl not in IMPLS:
            raise ValueError(f"{name}: impl must be one of {IMPLS}, got {impl!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be a probability in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.impl = bidirectional, impl
        self.num_directions = 2 if bidirectional else 1
        kw = {"device": device, "dtype": dtype}
        gh = self.gate_count * hidden_size
        for layer in range(num_layers):
            size = input_size if layer == 0 else self.num_directions * hidden_size
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                setattr(self, "weight_ih" + sfx, nn.Parameter(torch.empty(gh, size, **kw)))
                b = nn.Parameter(torch.empty(gh, **kw)) if bias else None
                self.register_parameter("bias_ih" + sfx, b)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + ("" if self.impl == "auto" else f", impl={self.impl!r}")

    def plan(self, input: Tensor | None = None) -> str:
        """Which implementation `forward` runs, and why."""
        return self._resolve(input)[1]

    def _resolve(self, input) -> tuple[str, str]:
        if self.impl == "loop":
            return "loop", (
                "loop: one step at a time over the step function with autograd, as requested "
                "(impl='loop')"
            )
        device = getattr(getattr(input, "data", input), "device", torch.device("cpu"))
        scan = (
            "scan: the log-space parallel scan over the whole sequence (cumsum and "
            "logcumsumexp in blocks of 64 steps), no time loop"
        )
        fused = (
            "fused: the linear recurrence h_t = a_t h_(t-1) + b_t, one multiply-add per step "
            "forward and backward in a custom autograd Function (on CPU, when built, in C++ "
            "with the input projection and the gates: rnnkit/csrc/scan.cpp)"
        )
        if self.impl == "scan":
            return "scan", scan + "; requested (impl='scan')"
        if self.impl == "fused":
            return "fused", fused + "; requested (impl='fused')"
        if device.type == "cpu":
            return "fused", (
                f"{fused}; chosen on CPU, where it is faster than the parallel scan: a few cores "
                "cannot use the scan's parallelism, and its logs and exps over every element "
                "cost more than the sequential pass"
            )
        return "scan", f"{scan}; chosen on {device.type}, where time-parallel work pays"

    def _weights(self, k: int) -> tuple[Tensor, Tensor | None]:
        """The input projection (W (g, i), bias (g) or None) of pair k = layer * d + direction."""
        layer, d = divmod(k, self.num_directions)
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        return getattr(self, "weight_ih" + sfx), getattr(self, "bias_ih" + sfx)

    def _gx(self, k: int, x: Tensor) -> Tensor:
        return F.linear(x, *self._weights(k))

    def _cpp(self, x: Tensor) -> bool:
        """Whether the fused path runs in C++ (`CppMinFunction`): CPU, float32 / float64, the
        weights of x's dtype, and rnnkit's C++ loops built (`cpp_loops`)."""
        return cpp_loops(x, self.weight_ih_l0).cpp

    def forward(self, input, hx: Tensor | None = None, *, lengths=None):
        """input (t, b, i), (b, t, i) with batch_first, (t, i), or a PackedSequence; hx
        (d*l, b, h) or None (zeros); lengths (b,). Returns output (t, b, d*h) and h_n
        (d*l, b, h), taken at each sequence's last step, as torch.nn.GRU does."""
        name = type(self).__name__
        x, lengths, layout = to_time_major(name, input, self.input_size, self.batch_first, lengths)
        check_dtype(name, x, self.weight_ih_l0)
        check_dtype(name, hx, self.weight_ih_l0, "hx")
        T, b = x.size(0), x.size(1)
        dl = self.num_layers * self.num_directions
        expected = (dl, b, self.hidden_size) if layout.batched else (dl, self.hidden_size)
        zero_start = hx is None  # then the scan can skip its h_0 term
        if hx is None:
            hx = x.new_zeros(dl, b, self.hidden_size)
        elif tuple(hx.shape) != expected:
            raise ValueError(f"{name}: Expected hx size {expected}, got {tuple(hx.shape)}")
        elif not layout.batched:
            hx = hx.unsqueeze(1)
        mask = None
        if lengths is not None:
            mask = torch.arange(T, device=x.device).unsqueeze(1) < lengths.to(x.device)
        rev = _reverse_index(lengths, T, b, x.device)

        path = self._resolve(x)[0]
        if path == "loop":
            run, direction = unroll, self._loop_direction
        else:
            cpp = path == "fused" and self._cpp(x)

            def run(weights, inputs, h0, mask, reverse):
                if path == "fused":
                    return self._fused(inputs, weights, h0, mask, reverse)
                h0 = None if zero_start else h0
                return self._scan(inputs, h0, lengths, rev if reverse else None, reverse)

            def direction(k, x):  # the C++ pass projects x itself; the others take gx
                return (x, self._weights(k)) if cpp else (self._gx(k, x), None)

        out, finals = run_stack(
            x,
            list(hx.unbind(0)),
            mask,
            direction,
            self.num_layers,
            self.num_directions,
            self.dropout,
            self.training,
            run=run,
        )
        h_n = torch.stack(finals)  # (d*l, b, h)
        return from_time_major(out, layout), h_n if layout.batched else h_n.squeeze(1)

    def _loop_direction(self, k, x):
        return self._gx(k, x), self.step_fn

    def _fused(self, inputs: Tensor, weights, h0: Tensor, mask: Tensor | None, reverse: bool):
        """One direction of the sequential recurrence. With ``weights`` (W, bias), inputs is x
        (t, b, i) and projection, gates and recurrence run in one C++ pass each way
        (`CppMinFunction`); without, inputs is gx (t, b, g): the coefficients a, b, then
        `LinearRecurrence`. Padding carries the state exactly (a = 1, b = 0), so a reversed
        pass simply runs the flipped sequence."""
        if weights is not None:
            from rnnkit.fused_cpu import CppMinFunction

            x = inputs.flip(0) if reverse else inputs
            m = None if mask is None else (mask.flip(0) if reverse else mask)
            h, final = CppMinFunction.apply(x, *weights, h0.to(x.dtype), m, self.gate_count == 3)
            return (h.flip(0) if reverse else h), final  # h is zero on padding
        valid = None if mask is None else mask.unsqueeze(-1)  # (t, b, 1)
        a, b = self.linear(inputs)  # (t, b, h) each
        if valid is not None:
            a, b = torch.where(valid, a, 1.0), torch.where(valid, b, 0.0)
        if reverse:
            a, b = a.flip(0), b.flip(0)
        h = LinearRecurrence.apply(a, b, h0)
        final = h[-1]
        if reverse:
            h = h.flip(0)
        return (h if valid is None else h * valid), final

    def _scan(self, gx: Tensor, h0: Tensor | None, lengths, rev, reverse: bool):
        """One direction with the parallel scan. gx (t, b, gh); h0 (b, h) or None (zeros)."""
        if reverse:  # reverse each sequence within its length, so padding stays at the end
            gx = gx.flip(0) if rev is None else _take(gx, rev)
        log_a, log_b = self.coefficients(gx)
        h = parallel_scan_log(log_a, log_b, h0)  # (t, b, h)
        if lengths is None:
            final = h[-1]
            if not reverse:  # exp saved its output: a copy, so that `out += x` stays legal
                h = h.clone()
        else:  # the state at each sequence's last step; padded outputs are zero
            last = (lengths.to(h.device) - 1).view(1, -1, 1).expand(1, -1, h.size(-1))
            final = h.gather(0, last).squeeze(0)
            valid = torch.arange(h.size(0), device=h.device).view(-1, 1) < lengths.to(h.device)
            h = h * valid.unsqueeze(-1)
        if reverse:
            h = h.flip(0) if rev is None else _take(h, rev)
        return h, final

    def step(self, x: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One time step through every layer, for generation: x (b, i), hx (l, b, h) or None.
        Returns (y (b, h), h (l, b, h)); the same numbers as `forward` on the whole sequence."""
        name = type(self).__name__
        if self.bidirectional:
            raise ValueError(
                f"{name}: step() needs bidirectional=False (the reverse direction reads the future)"
            )
        if hx is None:
            hx = x.new_zeros(self.num_layers, *x.shape[:-1], self.hidden_size)
        states = []
        for k in range(self.num_layers):
            h = self.step_fn(self._gx(k, x), hx[k])
            states.append(h)
            x = h
            if self.dropout and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, torch.stack(states)


def _take(x: Tensor, index: Tensor) -> Tensor:
    """x[index[t, b], b] for x (t, b, h) and index (t, b)."""
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


class MinGRU(_MinLayer):
    r"""Multi-layer minGRU (Feng et al. 2024, sec. 3.1), trained with the parallel scan.

    .. math::
        z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = g(W_h x_t + b_h) \\
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    Args: input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0
    (between layers), bidirectional=False; keyword-only ``impl``: ``"scan"`` (the log-space
    parallel scan; what ``"auto"`` picks on a GPU), ``"fused"`` (the sequential linear
    recurrence with a hand-written backward; what ``"auto"`` picks on a CPU) or ``"loop"``
    (one step at a time with autograd). All three give the same numbers; ``plan()`` says which
    runs and why.
    Parameters: ``weight_ih_l{k}`` (2h, i) = (W_z, W_h) and ``bias_ih_l{k}``, ``_reverse``
    for the backward direction.

    Inputs / outputs as torch.nn.GRU: output (t, b, d*h), h_n (d*l, b, h); ``lengths=`` or a
    PackedSequence for variable lengths. ``step(x_t, h)`` runs one step for generation.

    Example::

        rnn = rnnkit.MinGRU(16, 64, num_layers=2, batch_first=True)
        out, h_n = rnn(torch.randn(8, 2048, 16))          # the whole sequence at once
        y, h = rnn.step(torch.randn(8, 16), h_n)           # then one step at a time
    """


class MinLSTM(_MinLayer):
    r"""Multi-layer minLSTM (Feng et al. 2024, sec. 3.2), trained with the parallel scan.

    .. math::
        f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        \tilde h_t = g(W_h x_t + b_h) \\
        h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t

    As `MinGRU`, with ``weight_ih_l{k}`` (3h, i) = (W_f, W_i, W_h). The state is h alone (the
    paper's minLSTM has no separate cell state).
    """

    gate_count = 3
    coefficients = staticmethod(min_lstm_coefficients)
    linear = staticmethod(min_lstm_linear)
    step_fn = staticmethod(min_lstm_step)
