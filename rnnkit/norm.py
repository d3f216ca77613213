"""A layer norm over the last axis whose large outputs come from rnnkit's buffer cache (CPU).

    y = (x - mu) rstd g + b,   rstd = 1 / sqrt(var x + eps)       over the last axis, (..., g)

The fused path's layer-norm layers normalize their whole sequence's input projections at once,
LN(x W_ih^T) g_ih + b_ih over (t, b, gh). torch computes that well, but takes y and the input
gradient from the system allocator, which on this project's machine gave fresh pages most
steps: about 830 page faults in each training step of a small layer-norm LSTM (256 x 16 rows
of 512), 2 ms of its 16, and none with the allocator told to keep its memory. The forward
and backward here (``rnnkit/csrc/layer_norm.cpp``) compute the same in one pass over the rows
on all threads and take those two buffers from the cache the time loops use.

`layer_norm` is ``F.layer_norm`` wherever the library does not apply (not CPU, not float32 or
float64, the library not loaded, autocast on); like the fused path's Functions, its backward
cannot be differentiated again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnkit import extension

__all__ = ["layer_norm"]


class _LayerNorm(torch.autograd.Function):
    """x (n, g), g (g) or None, b (g) or None -> LN(x) g + b (n, g)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float):
        y, mu, rstd = torch.ops.rnnkit.layer_norm_forward(x, weight, bias, eps)
        ctx.save_for_backward(x, mu, rstd, weight)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor):
        x, mu, rstd, weight = ctx.saved_tensors
        need_g = weight is not None and ctx.needs_input_grad[1]
        need_b = ctx.has_bias and ctx.needs_input_grad[2]
        dx, dg, db = torch.ops.rnnkit.layer_norm_backward(dy, x, mu, rstd, weight, need_g, need_b)
        return dx, dg if need_g else None, db if need_b else None, None


def layer_norm(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """LN over the last axis of x (..., g): ``F.layer_norm(x, (g,), weight, bias, eps)``."""
    usable = (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and all(t is None or (t.dtype == x.dtype and t.device == x.device) for t in (weight, bias))
        and x.numel() > 0
        and not torch.is_autocast_enabled("cpu")
        and extension.loaded()
    )
    if not usable:
        return F.layer_norm(x, (x.size(-1),), weight, bias, eps)
    shape = x.shape
    y = _LayerNorm.apply(x.reshape(-1, shape[-1]).contiguous(), weight, bias, eps)
    return y.view(shape)
