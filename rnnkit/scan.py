"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") and the parallel scan.

Both drop the hidden state from their gates, so the recurrence is linear in h:

    h_t = a_t * h_{t-1} + b_t          (a_t, b_t depend on x_t only)

and a whole sequence can be computed at once (sec. 3.1.2 and 3.2.2 of the paper; appendix B
for the log-space scan). Written out per model, with g(x) = x + 0.5 for x >= 0 and sigma(x)
otherwise (the paper's positive activation, appendix B.3):

    minGRU:   z_t = sigma(W_z x_t + b_z),  h~_t = g(W_h x_t + b_h)
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t                a = 1 - z,   b = z h~
    minLSTM:  f_t = sigma(W_f x_t + b_f),  i_t = sigma(W_i x_t + b_i),  h~_t = g(W_h x_t + b_h)
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
              h_t = f'_t * h_{t-1} + i'_t * h~_t                  a = f',      b = i' h~

Three ways to run a layer, all giving the same numbers (tests/test_scan.py):

* ``scan``: `parallel_scan_log` over log a and log b (every factor is positive, so the logs
  exist and the products become sums), no time loop: the paper's way, for a GPU;
* ``fused``: `LinearRecurrence`, one multiply-add per step forward and backward with a
  hand-written backward: the work-efficient way on a CPU, which ``impl="auto"`` picks there;
* ``loop`` and ``step()``: the step functions one x_t at a time, for reading and generation.

Shapes: t time, b batch, i input features, h hidden features, d directions, l layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.layers import from_time_major, run_stack, to_time_major, unroll

__all__ = [
    "MinGRU",
    "MinLSTM",
    "MinGRUCell",
    "MinLSTMCell",
    "parallel_scan_log",
    "LinearRecurrence",
    "min_gru_step",
    "min_lstm_step",
]

IMPLS = ("auto", "scan", "fused", "loop")


# ----------------------------------------------------------------------------- the scan


def g(x: Tensor) -> Tensor:
    """The positive activation of appendix B.3: x + 0.5 for x >= 0, sigma(x) below.

    Written as relu(x) + sigma(min(x, 0)), which is the same function without the two
    full-size branches (and their gradients) that torch.where would materialize.
    """
    return torch.relu(x) + torch.sigmoid(torch.clamp_max(x, 0))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g: log(x + 0.5) for x >= 0, -softplus(-x) below."""
    # x > 0, not >= 0: at the kink x = 0 the gradient is sigma's side, as for g above
    return torch.where(x > 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


CHUNK = 64  # steps per block of the scan: bounds |a*| and so float32 rounding (see below)


def parallel_scan_log(
    log_a: Tensor, log_b: Tensor, h0: Tensor | None = None, chunk: int = CHUNK
) -> Tensor:
    """All h_t = a_t * h_{t-1} + b_t, t = 1..T, at once, from log a, log b: (t, b, h).

    Unrolled, h_t = A_t h_0 + sum_{s<=t} (A_t / A_s) b_s with A_t = prod_{s<=t} a_s, so with
    a*_t = cumsum_t log a:

        h_t = exp(a*_t) * h_0 + exp(a*_t + logcumsumexp_t(log b - a*))

    The h_0 term is kept apart, so h_0 may have any sign (the paper's appendix B folds it into
    the logs, which needs h_0 > 0). Blocks of ``chunk`` steps run this closed form in
    parallel, each from a zero state; a short loop over the T / chunk blocks then carries the
    state across them (h_start of block c+1 = A h_start + h_end of block c) and adds its decayed
    contribution. Within a block |a*| stays small, which keeps float32 accurate: over 2048 steps
    a single block's a* reaches about -1400, where a float32 ulp is 1e-4.
    Returns h_1..h_T: (t, b, h).
    """
    T = log_a.size(0)
    n = T // chunk
    if n <= 1:
        return _scan_block(log_a, log_b, h0)
    main = n * chunk
    a_star = torch.cumsum(log_a[:main].unflatten(0, (n, chunk)), dim=1)  # (n, chunk, b, h)
    v = log_b[:main].unflatten(0, (n, chunk)) - a_star
    h_local = torch.exp(a_star + torch.logcumsumexp(v, dim=1))  # each block from zero
    decay = torch.exp(a_star)  # A_t / A_{block start}
    ends, decay_ends = h_local[:, -1].unbind(0), decay[:, -1].unbind(0)  # n x (b, h)
    starts, h = [], h0
    for c in range(n):  # the state entering each block: n = T / chunk small steps
        starts.append(torch.zeros_like(ends[c]) if h is None else h)
        h = ends[c] if h is None else torch.addcmul(ends[c], decay_ends[c], h)
    out = torch.addcmul(h_local, decay, torch.stack(starts).unsqueeze(1)).flatten(0, 1)
    if main == T:
        return out
    return torch.cat([out, _scan_block(log_a[main:], log_b[main:], h)])


def _scan_block(log_a: Tensor, log_b: Tensor, h0: Tensor | None) -> Tensor:
    """The closed form above over one block: (t, b, h)."""
    a_star = torch.cumsum(log_a, dim=0)  # (t, b, h)
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=0))
    if h0 is not None:
        h = h + torch.exp(a_star) * h0
    return h


def min_gru_coefficients(gx: Tensor) -> tuple[Tensor, Tensor]:
    """log a = log(1 - z) and log b = log z + log g(k_h), from gx = (k_z, k_h): (..., 2h)."""
    k_z, k_h = gx.chunk(2, dim=-1)
    log_z = -F.softplus(-k_z)
    return log_z - k_z, log_z + log_g(k_h)  # log(1 - z) = log z - k_z


def min_lstm_coefficients(gx: Tensor) -> tuple[Tensor, Tensor]:
    """log f' and log i' + log g(k_h), from gx = (k_f, k_i, k_h): (..., 3h).

    log f' = log f - log(f + i) = -softplus(d) and log i' = -softplus(-d), where
    d = log i - log f = softplus(-k_f) - softplus(-k_i).
    """
    k_f, k_i, k_h = gx.chunk(3, dim=-1)
    d = F.softplus(-k_f) - F.softplus(-k_i)
    return -F.softplus(d), -F.softplus(-d) + log_g(k_h)


def min_gru_linear(gx: Tensor) -> tuple[Tensor, Tensor]:
    """a = 1 - z and b = z g(k_h), from gx = (k_z, k_h): (..., 2h), for the sequential pass."""
    k_z, k_h = gx.chunk(2, dim=-1)
    z = torch.sigmoid(k_z)
    return 1 - z, z * g(k_h)


def min_lstm_linear(gx: Tensor) -> tuple[Tensor, Tensor]:
    """a = f' and b = i' g(k_h), from gx = (k_f, k_i, k_h): (..., 3h), for the sequential pass."""
    k_f, k_i, k_h = gx.chunk(3, dim=-1)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    s = f + i
    return f / s, i / s * g(k_h)


class LinearRecurrence(torch.autograd.Function):
    """h_t = a_t * h_{t-1} + b_t, one fused multiply-add per step, with hand-written backward.

    The work-efficient way on a CPU, where the parallel scan's logs and exps over every element
    cost more than the sequential pass (a few cores cannot use its parallelism). Backward is
    the adjoint recurrence, also one multiply-add per step, then products over all steps:

        lam_t = dh_t + a_{t+1} lam_{t+1};   db_t = lam_t;   da_t = lam_t h_{t-1};   dh_0 = a_1 lam_1

    a, b: (t, b, h); h0: (b, h). Returns h_1..h_T: (t, b, h). Differentiable once.
    """

    @staticmethod
    def forward(ctx, a, b, h0):
        from rnnkit import extension  # loaded when first used

        T = a.size(0)
        # the C++ loop reads a and b as arrays of one shape; broadcast ones take Python's loop
        ctx.cpp = a.dtype == b.dtype and a.shape == b.shape and extension.available(a)
        if ctx.cpp:  # the same loop in C++ (rnnkit/csrc/scan.cpp)
            a, b = a.contiguous(), b.contiguous()
            Hs = torch.ops.rnnkit.linear_recurrence_forward(a, b, h0)
        else:
            Hs = a.new_empty(T + 1, *a.shape[1:])  # h_0..h_T
            Hs[0] = h0
            a_l, b_l, H_l = a.unbind(0), b.unbind(0), Hs.unbind(0)
            for t in range(T):
                torch.addcmul(b_l[t], a_l[t], H_l[t], out=H_l[t + 1])
        ctx.save_for_backward(a, Hs)
        return Hs[1:].clone()

    @staticmethod
    def backward(ctx, dh):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "rnnkit's fused linear recurrence cannot be differentiated again "
                "(create_graph=True); use impl='scan' or impl='loop'"
            )
        a, Hs = ctx.saved_tensors
        T = a.size(0)
        if ctx.cpp:
            lam = torch.ops.rnnkit.linear_recurrence_backward(dh.contiguous(), a)
        else:
            lam = torch.empty_like(dh)
            lam[T - 1] = dh[T - 1]
            a_l, dh_l, lam_l = a.unbind(0), dh.unbind(0), lam.unbind(0)
            for t in range(T - 2, -1, -1):
                torch.addcmul(dh_l[t], a_l[t + 1], lam_l[t + 1], out=lam_l[t])
        return lam * Hs[:-1], lam, a[0] * lam[0]


# ----------------------------------------------------------------------------- one step


def min_gru_step(gx: Tensor, h: Tensor) -> Tensor:
    """h' = (1 - z) * h + z * g(k_h), z = sigma(k_z), given gx = W x + b = (k_z, k_h): (b, 2h)."""
    k_z, k_h = gx.chunk(2, dim=-1)
    z = torch.sigmoid(k_z)
    return (1 - z) * h + z * g(k_h)


def min_lstm_step(gx: Tensor, h: Tensor) -> Tensor:
    """h' = f' * h + i' * g(k_h), f' = f / (f + i), i' = i / (f + i), given gx = (k_f, k_i, k_h)."""
    k_f, k_i, k_h = gx.chunk(3, dim=-1)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    return (f * h + i * g(k_h)) / (f + i)


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
        weights of x's dtype, and rnnkit's C++ loops built."""
        from rnnkit import extension  # loaded when first used

        return extension.available(x) and self.weight_ih_l0.dtype == x.dtype

    def forward(self, input, hx: Tensor | None = None, *, lengths=None):
        """input (t, b, i), (b, t, i) with batch_first, (t, i), or a PackedSequence; hx
        (d*l, b, h) or None (zeros); lengths (b,). Returns output (t, b, d*h) and h_n
        (d*l, b, h), taken at each sequence's last step, as torch.nn.GRU does."""
        name = type(self).__name__
        x, lengths, layout = to_time_major(name, input, self.input_size, self.batch_first, lengths)
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
