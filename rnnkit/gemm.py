"""The fused path's large matrix products through oneDNN, the library torch.nn.LSTM's CPU kernel
runs on.

    gx = x W^T + b            (n, g) = (n, i) (g, i)^T       the input projections
    dx = dgx W                (n, i) = (n, g) (g, i)         their gradient
    dW = dgx^T x              (g, i) = (n, g)^T (n, i)       the weight gradients

torch's CPU build sends a float32 ``torch.mm`` to MKL, whose kernels on some CPUs (measured:
an AMD EPYC with AVX-512) run these shapes at about half the speed of oneDNN's. oneDNN's
float32 product, reached through ``torch.ops.mkldnn._linear_pointwise`` (what torch.compile
emits for a linear layer on CPU), is exact float32 arithmetic as well (no reduced-precision
mode), so the two compute the same function up to summation order. A weight gradient reads
both operands transposed, which oneDNN does slower than MKL when g or i is small (measured:
faster at 2048 x 512, slower at 512 x 128). On AVX-512 CPUs rnnkit's own kernel
(``rnnkit/csrc/gemm_tn.cpp``, in the compiled library) does it faster than either at every
size measured: 1.6-2.1x MKL's speed, and 1.1x oneDNN's at 3200 x 2048 x 512. Elsewhere the
weight gradient goes to oneDNN when g and i are both >= 512, else to torch.mm. There, too, a
small layer's input projection (W of at most SMALL_WEIGHT values) is rnnkit's own product,
whose output comes from rnnkit's buffer cache: oneDNN's took about as long again in page
faults on its fresh output as in arithmetic.

`linear`'s backward cannot be differentiated again (it refuses, as the fused path's Functions
do), so only the fused path uses it; where oneDNN does not apply (a build without it, another
device, float64, an empty batch) every function here is torch's own product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["linear", "mm", "weight_grad", "available"]


def _op():
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


_LINEAR = _op() if torch.backends.mkldnn.is_available() else None


def available(x: Tensor, weight: Tensor) -> bool:
    """oneDNN computes x W^T here: a CPU float32 product in a build that has it."""
    return (
        _LINEAR is not None
        and torch.backends.mkldnn.enabled
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


class _Linear(torch.autograd.Function):
    """x (n, i), W (g, i), b (g) or None -> x W^T + b (n, g), both products through oneDNN."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if weight.numel() <= SMALL_WEIGHT and _own_kernel(x):
            return torch.ops.rnnkit.linear(x, weight, bias)
        return _LINEAR(x, weight, bias, "none", [], "")

    @staticmethod
    @once_differentiable  # oneDNN's op has no derivative of its own: refuse, never zeros
    def backward(ctx, dy: Tensor):
        x, weight = ctx.saved_tensors
        dy = dy.contiguous()
        need_x, need_w, need_b = ctx.needs_input_grad
        dx = mm(dy, weight) if need_x else None
        dw = weight_grad(dy, x) if need_w else None
        db = dy.sum(0) if ctx.has_bias and need_b else None
        return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x (..., i) W^T + b -> (..., g): oneDNN's product where `available`, else F.linear."""
    if not available(x, weight) or x.numel() == 0:
        return F.linear(x, weight, bias)
    shape = x.shape[:-1]
    y = _Linear.apply(x.reshape(-1, x.size(-1)).contiguous(), weight.contiguous(), bias)
    return y.view(*shape, weight.size(0))


SMALL_WEIGHT = 1 << 17  # weights up to this many values (512 KB) stay in a core's L2


def _own_kernel(dy: Tensor) -> bool:
    """rnnkit's weight-gradient kernel applies: the compiled library is loaded (this does not
    build it) and runs its AVX-512 kernels (not with RNNKIT_OWN_GEMM=0)."""
    from rnnkit import extension

    return extension.loaded() and torch.ops.rnnkit.packed_steps()


def weight_grad(dy: Tensor, x: Tensor) -> Tensor:
    """dy (n, g), x (n, i) -> dy^T x (g, i): rnnkit's kernel where it applies (float32 on an
    AVX-512 CPU, the library loaded), else oneDNN's product where `available` and g and i are
    both >= 512 (and n > 0: oneDNN refuses an empty product), else torch.mm."""
    if available(dy, x) and dy.size(0) > 0 and _own_kernel(dy):
        return torch.ops.rnnkit.weight_grad(dy, x)
    if available(dy, x) and min(dy.size(1), x.size(1)) >= 512 and dy.size(0) > 0:
        return _LINEAR(dy.t(), x.t(), None, "none", [], "")
    return dy.t().mm(x)


def mm(a: Tensor, b: Tensor) -> Tensor:
    """a (n, g) b (g, i) -> (n, i), an input gradient dgx W: oneDNN's product (b transposed
    once, a small copy) where `available` and n >= 512, else torch.mm (for fewer rows the copy
    of b cost more than MKL's whole product: 0.56 ms against 0.33 at 100 x 1024 x 256)."""
    if available(a, b) and a.size(0) >= 512:
        return _LINEAR(a.contiguous(), b.t().contiguous(), None, "none", [], "")
    return a.mm(b)
