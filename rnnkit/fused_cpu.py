"""The fused LSTM, GRU and RNN with their time loops in C++: `rnnkit.fused`, faster on CPU.

`CppLSTMFunction`, `CppGRUFunction` and `CppRNNFunction` take the same arguments and compute
the same function and gradients as `LSTMFunction`, `GRUFunction` and `RNNFunction` (whose
docstrings give the equations and their derivatives); the tests check each pair against each
other and gradcheck these in float64. What differs is where the sequential part runs: the
forward and backward loops are `torch.ops.rnnkit.{lstm,gru,rnn}_{forward,backward}` from
``rnnkit/csrc/``, one matrix product and one pass of plain C++ over the elements per step, so
a step costs two kernel launches instead of a dozen Python-dispatched ones. The input
projections (before) and the weight matrices' gradients (after, one product each) stay
batched over time in PyTorch, except the sums for the vector parameters (biases inside the
recurrence, layer-norm gains, peepholes), which the backward loop accumulates as it goes
rather than keeping (t, b, .) buffers for them.

Used by `rnnkit.fused.run_direction` for CPU tensors in float32 or float64 when the library
could be built (`rnnkit.extension`).

Shapes: t time, b batch, h hidden, p output (proj_size or h), g gates * h.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit import extension
from rnnkit.bptt import first_order_only
from rnnkit.gemm import mm, weight_grad
from rnnkit.variants import LN_EPS

__all__ = ["CppLSTMFunction", "CppGRUFunction", "CppRNNFunction", "CppMinFunction"]


def _dense_keep(keep, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """A zoneout keep mask d as a dense float tensor of ``shape``: a bool mask becomes 0/1
    (so d old + (1 - d) new is exactly the where() of `variants.zoneout`), a rate is filled in."""
    if keep is None:
        return None
    if isinstance(keep, Tensor):
        return keep.to(like.dtype).expand(shape).contiguous()
    return torch.full(shape, keep, dtype=like.dtype, device=like.device)


def _c(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _mask(h_mask: Tensor | None, b: int, p: int) -> Tensor | None:
    """The recurrent-dropout mask as the dense (b, p) array the C++ loops read (the Python
    Functions also take a broadcastable one, such as (1, p))."""
    return None if h_mask is None else h_mask.expand(b, p).contiguous()


def _some(t: Tensor) -> Tensor | None:
    """The C++ side returns an empty tensor for an absent buffer."""
    return t if t.numel() else None


def _require() -> None:
    if not extension.load():
        raise RuntimeError(f"rnnkit's C++ time loops are not available: {extension.status()}")


class CppLSTMFunction(torch.autograd.Function):
    """`rnnkit.fused.LSTMFunction` with the time loops in C++ (same signature)."""

    @staticmethod
    def forward(
        ctx, gx, h0, c0, W_hh, W_hr, g_hh, g_c, b_c, w_ch, h_mask, keep_h, keep_c, out_mask
    ):
        _require()
        T, b, G = gx.shape
        H, P = G // 4, W_hh.size(1)
        kh = _dense_keep(keep_h, (T, b, P), gx)  # (t, b, p)
        kc = _dense_keep(keep_c, (T, b, H), gx)  # (t, b, h)
        W_hh, W_hr, g_hh, g_c, b_c, w_ch = map(_c, (W_hh, W_hr, g_hh, g_c, b_c, w_ch))
        h_mask = _mask(h_mask, b, P)
        A, Hs, C, K, Ct, Hin, M, Ahat, Rs, Chat, Rsc = torch.ops.rnnkit.lstm_forward(
            gx.contiguous(), h0, c0, W_hh, W_hr, g_hh, g_c, b_c, w_ch, h_mask, kh, kc, LN_EPS
        )
        Ct = Ct if kc is not None else C[1:]  # c~ = c_t without zoneout
        Hin = Hin if h_mask is not None else Hs[:-1]  # the input of W_hh
        Y = Hs[1:].clone() if out_mask is None else Hs[1:] * out_mask  # not a view of Hs
        ctx.save_for_backward(
            A, C, K, Ct, Hin, M, Ahat, Rs, Chat, Rsc, W_hh, W_hr, g_hh, g_c, w_ch, h_mask,
            out_mask, kh, kc,
        )  # fmt: skip
        return Y, Hs[T].clone(), C[T].clone()

    @staticmethod
    def backward(ctx, dY, dh_T, dc_T):
        first_order_only()
        (
            A, C, K, Ct, Hin, M, Ahat, Rs, Chat, Rsc, W_hh, W_hr, g_hh, g_c, w_ch, h_mask,
            out_mask, kh, kc,
        ) = ctx.saved_tensors  # fmt: skip
        if out_mask is not None:
            dY = dY * out_mask
        DS, DA, DHt, dh0, dc0, dg_hh, dg_c, db_c, dw_ch = torch.ops.rnnkit.lstm_backward(
            _unit_stride(dY), dh_T, dc_T, A, C, K, Ct, W_hh, W_hr, g_hh, g_c, w_ch, h_mask, kh, kc,
            _some(Ahat), _some(Rs), _some(Chat), _some(Rsc),
        )  # fmt: skip
        # the matrices as one product over all steps; the vectors came summed from C++
        tb, G = DS.size(0) * DS.size(1), DS.size(2)
        DA = DA if g_hh is not None else DS
        P, H = Hin.size(-1), G // 4  # explicit sizes: tb may be 0 (an empty batch)
        dW_hh = weight_grad(DA.reshape(tb, G), Hin.reshape(tb, P))  # sum_t da_t^T (h_{t-1} * m)
        dW_hr = None if W_hr is None else DHt.reshape(tb, P).t() @ M.reshape(tb, H)
        grads = (dW_hh, dW_hr, *map(_some, (dg_hh, dg_c, db_c, dw_ch)))
        return DS, dh0, dc0, *grads, None, None, None, None


class CppGRUFunction(torch.autograd.Function):
    """`rnnkit.fused.GRUFunction` with the time loops in C++ (same signature)."""

    @staticmethod
    def forward(ctx, gx, h0, W_hh, b_hh, g_hh, h_mask, keep_h, out_mask):
        _require()
        T, b, G = gx.shape
        kh = _dense_keep(keep_h, (T, b, G // 3), gx)  # (t, b, h)
        W_hh, b_hh, g_hh = map(_c, (W_hh, b_hh, g_hh))
        h_mask = _mask(h_mask, b, G // 3)
        A, Qn, Hs, Hin, Ahat, Rs = torch.ops.rnnkit.gru_forward(
            gx.contiguous(), h0, W_hh, b_hh, g_hh, h_mask, kh, LN_EPS
        )
        Hin = Hin if h_mask is not None else Hs[:-1]
        Y = Hs[1:].clone() if out_mask is None else Hs[1:] * out_mask
        ctx.save_for_backward(A, Qn, Hs, Hin, Ahat, Rs, W_hh, g_hh, h_mask, out_mask, kh)
        ctx.has_bias = b_hh is not None
        return Y, Hs[T].clone()

    @staticmethod
    def backward(ctx, dY, dh_T):
        first_order_only()
        A, Qn, Hs, Hin, Ahat, Rs, W_hh, g_hh, h_mask, out_mask, kh = ctx.saved_tensors
        if out_mask is not None:
            dY = dY * out_mask
        DGX, DW, dh0, db_hh, dg_hh = torch.ops.rnnkit.gru_backward(
            dY.contiguous(), dh_T.contiguous(), A, Qn, Hs, W_hh, ctx.has_bias, g_hh, h_mask, kh,
            _some(Ahat), _some(Rs),
        )  # fmt: skip
        tb, G = DW.size(0) * DW.size(1), DW.size(2)
        dW_hh = weight_grad(DW.reshape(tb, G), Hin.reshape(tb, G // 3))  # sum_t da_t^T (h_{t-1} m)
        return DGX, dh0, dW_hh, _some(db_hh), _some(dg_hh), None, None, None


class CppRNNFunction(torch.autograd.Function):
    """`rnnkit.fused.RNNFunction` with the time loops in C++ (same signature)."""

    @staticmethod
    def forward(ctx, gx, h0, W_hh, g_hh, h_mask, keep_h, out_mask, relu: bool):
        _require()
        kh = _dense_keep(keep_h, tuple(gx.shape), gx)  # (t, b, h)
        W_hh, g_hh = map(_c, (W_hh, g_hh))
        h_mask = _mask(h_mask, gx.size(1), gx.size(2))
        Hs, Ht, Hin, Ahat, Rs = torch.ops.rnnkit.rnn_forward(
            gx.contiguous(), h0, W_hh, g_hh, h_mask, kh, relu, LN_EPS
        )
        Ht = Ht if kh is not None else Hs[1:]  # h~
        Hin = Hin if h_mask is not None else Hs[:-1]
        Y = Hs[1:].clone() if out_mask is None else Hs[1:] * out_mask
        ctx.save_for_backward(Ht, Hin, Ahat, Rs, W_hh, g_hh, h_mask, out_mask, kh)
        ctx.relu = relu
        return Y, Hs[-1].clone()

    @staticmethod
    def backward(ctx, dY, dh_T):
        first_order_only()
        Ht, Hin, Ahat, Rs, W_hh, g_hh, h_mask, out_mask, kh = ctx.saved_tensors
        if out_mask is not None:
            dY = dY * out_mask
        DS, DW, dh0, dg_hh = torch.ops.rnnkit.rnn_backward(
            dY.contiguous(), dh_T.contiguous(), Ht, W_hh, g_hh, h_mask, kh, ctx.relu,
            _some(Ahat), _some(Rs),
        )  # fmt: skip
        tb, H = DW.size(0) * DW.size(1), DW.size(2)
        dW_hh = weight_grad(DW.reshape(tb, H), Hin.reshape(tb, H))
        return DS, dh0, dW_hh, _some(dg_hh), None, None, None, None


class CppMinFunction(torch.autograd.Function):
    """One direction of minGRU / minLSTM, input projection, gates and recurrence in C++
    (``rnnkit/csrc/scan.cpp``): the same function as ``gx = F.linear(x, W, bias)``,
    `rnnkit.scan.min_gru_linear` / `min_lstm_linear` and `rnnkit.scan.LinearRecurrence`, in
    one pass over time each way and without the (t, b, h) intermediates a and b. gx, the
    states and the output come from rnnkit's cache of CPU buffers (``csrc/pool.h``).

    x (t, b, i), W (g, i) with g = 2h or 3h, bias (g) or None, h0 (b, h), valid (t, b) bool or
    None (padding carries the state). Returns the output (t, b, h), zero on padding, and the
    final state h_T (b, h).
    """

    @staticmethod
    def forward(ctx, x, W, bias, h0, valid, lstm: bool):
        _require()
        x = x.contiguous()  # saved as the C++ pass read it (the backward needs unit stride)
        Y, hT, gx, Hs, bands = torch.ops.rnnkit.min_rnn_forward(
            x, W, bias, h0.contiguous(), valid, lstm
        )
        ctx.save_for_backward(x, W, bias, gx, Hs, valid)
        ctx.lstm = lstm
        # > 0: gx is laid out in the forward's bands of batch rows, which only the backward
        # with the products fused in reads (csrc/scan.cpp)
        ctx.gx_bands = int(bands)
        return Y, hT

    @staticmethod
    def backward(ctx, dY, dhT):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "rnnkit's fused minGRU / minLSTM cannot be differentiated again "
                "(create_graph=True); use impl='scan' or impl='loop'"
            )
        x, W, bias, gx, Hs, valid = ctx.saved_tensors
        need_x, need_W, need_b = ctx.needs_input_grad[:3]
        args = (_unit_stride(dY), dhT.contiguous(), gx, Hs, bias, valid, ctx.lstm)
        if ctx.gx_bands or (need_W and torch.ops.rnnkit.min_rnn_products_apply(x, W)):
            # dx and dW taken chunk by chunk while dgx is in cache (csrc/scan.cpp)
            dx, dW, dh0, db = torch.ops.rnnkit.min_rnn_backward_products(
                *args, x, W, need_x, need_W, ctx.gx_bands
            )
        else:
            dgx, dh0, db = torch.ops.rnnkit.min_rnn_backward(*args)
            d2 = dgx.view(-1, dgx.size(-1))  # (t*b, g)
            dx = mm(d2, W).view_as(x) if need_x else None
            dW = weight_grad(d2, x.reshape(-1, x.size(-1))) if need_W else None
        dx = dx if need_x else None
        dW = dW if need_W else None
        db = db if bias is not None and need_b else None
        return dx, dW, db, dh0, None, None


def _unit_stride(g: Tensor) -> Tensor:
    """g (t, b, h) with unit stride over h, copying as little as it can: the C++ pass reads any
    (t, b) strides, so a batch-first gradient is used as it is, and a broadcast one (the
    gradient of ``out.sum()`` or ``out.mean()``, stride 0) is made contiguous only along the
    dimensions it varies in, then broadcast again."""
    if g.stride(-1) == 1:
        return g
    keep = tuple(slice(0, 1) if s == 0 else slice(None) for s in g.stride()[:-1])
    return g[keep].contiguous().expand(g.shape)
