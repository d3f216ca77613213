"""The parallel scan and the linear recurrence behind minGRU and minLSTM (`rnnkit.mingru`).

Both models (Feng et al. 2024, "Were RNNs All We Needed?") drop the hidden state from their
gates, so the recurrence is linear in h:

    h_t = a_t * h_{t-1} + b_t          (a_t, b_t depend on x_t only)

and a whole sequence can be computed at once (sec. 3.1.2 and 3.2.2 of the paper; appendix B
for the log-space scan). Written out per model, with g(x) = x + 0.5 for x >= 0 and sigma(x)
otherwise (the paper's positive activation, appendix B.3):

    minGRU:   z_t = sigma(W_z x_t + b_z),  h~_t = g(W_h x_t + b_h)
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t                a = 1 - z,   b = z h~
    minLSTM:  f_t = sigma(W_f x_t + b_f),  i_t = sigma(W_i x_t + b_i),  h~_t = g(W_h x_t + b_h)
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
              h_t = f'_t * h_{t-1} + i'_t * h~_t                  a = f',      b = i' h~

This file holds the operations, in the three forms the layers' three paths need:

* `parallel_scan_log` over log a and log b (`min_gru_coefficients`, `min_lstm_coefficients`;
  every factor is positive, so the logs exist and the products become sums): no time loop;
* `LinearRecurrence` over a and b (`min_gru_linear`, `min_lstm_linear`): one multiply-add per
  step forward and backward, with a hand-written backward;
* the step functions `min_gru_step` and `min_lstm_step`, one x_t at a time.

Shapes: t time, b batch, h hidden features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.layers.dispatch import cpp_loops

__all__ = [
    "parallel_scan_log",
    "LinearRecurrence",
    "min_gru_coefficients",
    "min_lstm_coefficients",
    "min_gru_linear",
    "min_lstm_linear",
    "min_gru_step",
    "min_lstm_step",
]


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
        T = a.size(0)
        # the C++ loop reads a and b as arrays of one shape; broadcast ones take Python's loop
        ctx.cpp = cpp_loops(a, b, same_shape=True).cpp
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
