"""The fast path for the variants: custom autograd Functions with hand-written BPTT.

A layer on this path computes the input projections of the whole sequence in one matrix
product (outside, by autograd: gx = LN(W_ih x) g_ih + b_ih), then runs one Function per
(layer, direction). Its forward is the time loop under no autograd at all, saving the gates;
its backward walks the steps in reverse with the derivatives written out below, and forms the
weight gradients at the end as single matrix products over all steps:

    dW_hh = sum_t da_t^T h_{t-1}  = DA^T (t*b, gh) @ H_prev (t*b, p)       one matmul
    dgx_t = ds_t                  returned; autograd turns it into dx, dW_ih, db_ih

So no autograd graph is built per step. Per step only h @ W_hh^T and a few element-wise
kernels run, written into preallocated buffers (out=); the backward's derivative factors that
do not depend on the incoming gradient (sigma'(i) g, tanh'(g) i, ...) are computed for all
steps at once before its loop, which leaves five kernels per step for a plain LSTM. The result
equals the loop over `rnnkit.cells` (the tests check values and gradients, and gradcheck each
Function in float64).

Notation, per step: s the gate pre-activations, a = W_hh (h * m) before layer norm, d the
zoneout keep mask (its expectation z in eval mode; padding of ``lengths`` counts as d = 1),
and for any y, dy the gradient of the loss with respect to y.

Shapes: t time, b batch, h hidden, p output (proj_size or h), g gates * h.
The hand-written backward is differentiable once: double backward (create_graph=True) raises
an error that points to impl='loop'.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from rnnkit.bptt import first_order_only
from rnnkit.layers.dispatch import cpp_loops
from rnnkit.variants import LN_EPS, zoneout

__all__ = ["LSTMFunction", "GRUFunction", "RNNFunction", "time_loops", "run_direction"]

aten = torch.ops.aten


def _keep_at(keep, j: int):
    return keep[j] if isinstance(keep, Tensor) else keep


def _zoneout_into(dst: Tensor, new: Tensor, old: Tensor, keep, j: int) -> None:
    """dst = zoneout(new, old, keep_j), written in place (exactly `variants.zoneout`)."""
    k = _keep_at(keep, j)
    if isinstance(k, Tensor) and k.dtype == torch.bool:
        torch.where(k, old, new, out=dst)
    else:
        dst.copy_(zoneout(new, old, k))


def _split_keep(keep, dtype):
    """The zoneout keep mask as floats d and 1 - d (tensors or Python floats), or None."""
    if keep is None:
        return None, None
    d = keep.to(dtype) if isinstance(keep, Tensor) else keep
    return d, 1 - d


def _ln_backward(ds: Tensor, a: Tensor, mu: Tensor, rstd: Tensor, gain: Tensor) -> Tensor:
    """da for y = LN(a) * gain: rstd * (dx - mean(dx) - x^ mean(dx x^)) with dx = ds * gain."""
    return aten.native_layer_norm_backward(
        ds, a, [a.size(-1)], mu, rstd, gain, None, [True, False, False]
    )[0]


def _ln_hat(a: Tensor, mu: Tensor, rstd: Tensor) -> Tensor:
    """x^ = (a - mu) * rstd, recomputed for the gain gradients."""
    return (a - mu) * rstd


# ----------------------------------------------------------------------------- LSTM


class LSTMFunction(torch.autograd.Function):
    """One LSTM direction, every variant, forward and hand-written backward.

    Forward, per step (gates in torch's order i, f, g, o; gx already holds b_ih + b_hh):

        a   = (h_{t-1} * m) W_hh^T                      m: recurrent-dropout mask or 1
        s   = gx_t + a          (layer norm: gx_t + LN(a) g_hh)
        s_i += w_ci c_{t-1};  s_f += w_cf c_{t-1}       (peephole)
        i, f, g = sigma(s_i), sigma(s_f), tanh(s_g)
        c~  = f c_{t-1} + i g
        s_o += w_co c~                                  (peephole)
        o   = sigma(s_o)
        k   = tanh(c^),  c^ = c~  (layer norm: c^ = LN(c~) g_c + beta_c)
        h~  = o k                 (projection: h~ = (o k) W_hr^T)
        h_t = d_h h_{t-1} + (1 - d_h) h~;   c_t = d_c c_{t-1} + (1 - d_c) c~

    Backward, per step, from dh_t and dc_t:

        dh~ = (1 - d_h) dh_t;   dc~ = (1 - d_c) dc_t;   dh_{t-1} = d_h dh_t;   dc_{t-1} = d_c dc_t
        dm  = dh~ (projection: dh~ W_hr),  ds_o = do sigma'(o) with do = dm k
        dc~ += dc^ dc^/dc~ with dc^ = dm o tanh'(k);   dc~ += ds_o w_co  (peephole)
        ds_i = dc~ g sigma'(i);  ds_f = dc~ c_{t-1} sigma'(f);  ds_g = dc~ i tanh'(g)
        dc_{t-1} += dc~ f  (+ ds_i w_ci + ds_f w_cf)
        da  = ds (layer norm: the LN backward of ds g_hh);   dh_{t-1} += (da W_hh) * m
    """

    @staticmethod
    def forward(
        ctx,
        gx,  # (t, b, 4h), b_ih + b_hh included
        h0,  # (b, p)
        c0,  # (b, h)
        W_hh,  # (4h, p)
        W_hr,  # (p, h) or None
        g_hh,  # (4h,) layer-norm gain or None
        g_c,  # (h,) or None
        b_c,  # (h,) or None
        w_ch,  # (3h,) peepholes or None
        h_mask,  # (b, p) or None
        keep_h,  # (t, b, p | 1) bool / float, a float, or None
        keep_c,  # (t, b, h | 1) bool / float, a float, or None
        out_mask,  # (t, b, 1) or None
    ):
        T, b, G = gx.shape
        H, P = G // 4, W_hh.size(1)
        new = gx.new_empty
        # Buffers for the whole sequence; per-step views are taken once (unbind), so the loop
        # only indexes Python lists and every kernel writes in place (out=).
        A = new(T, b, G)  # i, f, g, o after their non-linearities
        Hs, C = new(T + 1, b, P), new(T + 1, b, H)  # h_0..h_T, c_0..c_T
        Hs[0], C[0] = h0, c0
        K = new(T, b, H)  # tanh(c^)
        Ct = new(T, b, H) if keep_c is not None else C[1:]  # c~ (= c_t without zoneout)
        M = new(T, b, H) if W_hr is not None else None  # o k, before the projection
        Hin = new(T, b, P) if h_mask is not None else Hs[:-1]  # (h * m) for dW_hh
        Ht = new(T, b, P) if keep_h is not None else Hs[1:]  # h~ (= h_t without zoneout)
        # layer-norm statistics stay per-step lists: (b, 1) means and 1/std, the inputs a
        Araw, Ahat, Mu, Rs, Muc, Rsc = [], [], [], [], [], []
        S = new(b, G)  # the pre-activations s of the current step
        S_if, S_g, S_o = S[:, : 2 * H], S[:, 2 * H : 3 * H], S[:, 3 * H :]
        A_l, gx_l, H_l, C_l, K_l, Ct_l = (u.unbind(0) for u in (A, gx, Hs, C, K, Ct))
        Ai_l, Af_l, Ag_l, Ao_l = (u.unbind(0) for u in A.chunk(4, dim=2))
        Aif_l = A[..., : 2 * H].unbind(0)
        Hin_l, Ht_l = Hin.unbind(0), Ht.unbind(0)
        M_l = M.unbind(0) if M is not None else None
        W_hhT = W_hh.t()
        W_hrT = W_hr.t() if W_hr is not None else None
        if w_ch is not None:
            w_cif, w_co = w_ch[: 2 * H].view(2, H), w_ch[2 * H :]
            S_if2 = S_if.view(b, 2, H)
        layer_norm = torch.native_layer_norm
        for j in range(T):
            h, c = H_l[j], C_l[j]
            if h_mask is not None:
                h = torch.mul(h, h_mask, out=Hin_l[j])
            if g_hh is not None:
                a = torch.mm(h, W_hhT)
                a_hat, mu, rs = layer_norm(a, [G], None, None, LN_EPS)
                Araw.append(a), Ahat.append(a_hat), Mu.append(mu), Rs.append(rs)
                torch.addcmul(gx_l[j], a_hat, g_hh, out=S)
            else:
                torch.addmm(gx_l[j], h, W_hhT, out=S)
            if w_ch is not None:
                S_if2.addcmul_(w_cif, c.unsqueeze(1))
                torch.sigmoid(S_if, out=Aif_l[j])
            else:
                torch.sigmoid(S, out=A_l[j])  # i, f, o (and g, overwritten next)
            torch.tanh(S_g, out=Ag_l[j])
            c_t = torch.mul(Af_l[j], c, out=Ct_l[j]).addcmul_(Ai_l[j], Ag_l[j])
            if w_ch is not None:
                torch.sigmoid(S_o.addcmul_(w_co, c_t), out=Ao_l[j])
            if g_c is not None:
                c_hat, mu, rs = layer_norm(c_t, [H], g_c, b_c, LN_EPS)
                Muc.append(mu), Rsc.append(rs)
                torch.tanh(c_hat, out=K_l[j])
            else:
                torch.tanh(c_t, out=K_l[j])
            if W_hr is not None:
                torch.mm(torch.mul(Ao_l[j], K_l[j], out=M_l[j]), W_hrT, out=Ht_l[j])
            else:
                torch.mul(Ao_l[j], K_l[j], out=Ht_l[j])
            if keep_h is not None:
                _zoneout_into(H_l[j + 1], Ht_l[j], H_l[j], keep_h, j)
            if keep_c is not None:
                _zoneout_into(C_l[j + 1], c_t, c, keep_c, j)
        Y = Hs[1:].clone() if out_mask is None else Hs[1:] * out_mask  # not a view of Hs
        ctx.save_for_backward(
            A, Hs, C, K, Ct, Hin, W_hh, W_hr, g_hh, g_c, b_c, w_ch, h_mask, out_mask, M,
            torch.stack(Ahat) if Ahat else None,
        )  # fmt: skip
        ctx.ln = (Araw, Mu, Rs, Muc, Rsc)  # intermediates, never seen outside
        ctx.keep = (keep_h, keep_c)
        return Y, Hs[T].clone(), C[T].clone()

    @staticmethod
    def backward(ctx, dY, dh_T, dc_T):
        first_order_only()
        (
            A, Hs, C, K, Ct, Hin, W_hh, W_hr, g_hh, g_c, b_c, w_ch, h_mask, out_mask, M, Ahat,
        ) = ctx.saved_tensors  # fmt: skip
        Araw_l, Mu_l, Rs_l, Muc_l, Rsc_l = ctx.ln
        T, b, G = A.shape
        H, P = G // 4, W_hh.size(1)
        new = A.new_empty
        d_h, nd_h = _split_keep(ctx.keep[0], A.dtype)
        d_c, nd_c = _split_keep(ctx.keep[1], A.dtype)
        if out_mask is not None:
            dY = dY * out_mask
        # Everything in ds that does not depend on the incoming gradients, for all steps at
        # once: ds_{i,f,g} = dc~ * Z_{i,f,g}, ds_o = dm * Z_o, and dc^ = dm * Q, with
        #   Z_i = g sigma'(i), Z_f = c_{t-1} sigma'(f), Z_g = i tanh'(g), Z_o = k sigma'(o),
        #   Q = o tanh'(k).
        # The loop is then five kernels per step for a plain LSTM.
        i, f, g, o = A.chunk(4, dim=2)
        Z = torch.empty_like(A)
        Zi, Zf, Zg, Zo = Z.chunk(4, dim=2)
        aten.sigmoid_backward.grad_input(g, i, grad_input=Zi)
        aten.sigmoid_backward.grad_input(C[:-1], f, grad_input=Zf)
        aten.tanh_backward.grad_input(i, g, grad_input=Zg)
        aten.sigmoid_backward.grad_input(K, o, grad_input=Zo)
        Q = aten.tanh_backward(o, K)
        DS = torch.empty_like(A)  # ds: the gradients of the gate pre-activations s
        DA = DS  # da: before layer norm (stacked after the loop with layer norm)
        DHt = new(T, b, P) if W_hr is not None else None  # dh~ for dW_hr
        DCh = new(T, b, H) if g_c is not None else None  # dc^ for dg_c, db_c
        Q_l, Af_l, dY_l, DS_l = (u.unbind(0) for u in (Q, f, dY, DS))
        Z3_l = Z.view(T, b, 4, H)[:, :, :3].unbind(0)  # (b, 3, h): i, f, g
        DS3_l = DS.view(T, b, 4, H)[:, :, :3].unbind(0)
        Zo_l, DSo_l = Zo.unbind(0), DS[..., 3 * H :].unbind(0)
        if g_c is not None:
            Ct_l, DCh_l = Ct.unbind(0), DCh.unbind(0)
        if W_hr is not None:
            DHt_l = DHt.unbind(0)
        if w_ch is not None:
            w_co, w_cif = w_ch[2 * H :], w_ch[: 2 * H].view(2, H)
            DSif_l = DS.view(T, b, 4, H)[:, :, :2].unbind(0)  # (b, 2, h)
            tmp2 = new(b, 2, H)
        dc = dc_T.clone()
        dc_u = dc.unsqueeze(1)  # (b, 1, h), a view that follows dc's in-place updates
        dh = dY_l[T - 1] + dh_T
        DA_rev = []  # da per step, last step first (layer norm only; else DA is DS)
        for j in range(T - 1, -1, -1):
            if d_h is not None:  # zoneout: d dh_t flows straight to h_{t-1}, (1 - d) dh_t to h~
                dh_t, dh = dh, dh * _keep_at(nd_h, j)
            if d_c is not None:
                dc_keep = dc * _keep_at(d_c, j)
                dc.mul_(_keep_at(nd_c, j))
            if W_hr is not None:
                DHt_l[j].copy_(dh)
                dh = torch.mm(dh, W_hr)  # dm: (b, h)
            torch.mul(dh, Zo_l[j], out=DSo_l[j])  # ds_o
            if g_c is not None:
                dc.add_(_ln_backward(torch.mul(dh, Q_l[j], out=DCh_l[j]), Ct_l[j], Muc_l[j],
                                     Rsc_l[j], g_c))  # fmt: skip
            else:
                dc.addcmul_(dh, Q_l[j])  # dc~
            if w_ch is not None:
                dc.addcmul_(DSo_l[j], w_co)
            torch.mul(Z3_l[j], dc_u, out=DS3_l[j])  # ds_i, ds_f, ds_g
            if d_c is not None:
                torch.addcmul(dc_keep, dc, Af_l[j], out=dc)  # dc_{t-1} = d dc_t + f dc~
            else:
                dc.mul_(Af_l[j])  # dc_{t-1} = f dc~
            if w_ch is not None:
                dc.add_(torch.mul(DSif_l[j], w_cif, out=tmp2).sum(1))
            da = DS_l[j]
            if g_hh is not None:
                da = _ln_backward(da, Araw_l[j], Mu_l[j], Rs_l[j], g_hh)
                DA_rev.append(da)
            # dh_{t-1} = (da W_hh) * m + d dh_t + dy_{t-1}
            rest = dY_l[j - 1] if j > 0 else None
            if d_h is not None:
                d = _keep_at(d_h, j)
                if rest is None:
                    rest = dh_t * d
                elif isinstance(d, Tensor):
                    rest = torch.addcmul(rest, dh_t, d)
                else:  # eval mode: the rate z
                    rest = torch.add(rest, dh_t, alpha=d)
            if h_mask is not None:
                dh = torch.mm(da, W_hh)
                dh = dh.mul_(h_mask) if rest is None else torch.addcmul(rest, dh, h_mask)
            else:
                dh = torch.mm(da, W_hh) if rest is None else torch.addmm(rest, da, W_hh)
        if DA_rev:
            DA = torch.stack(DA_rev[::-1])
        Chat = None if g_c is None else _ln_hat(Ct, torch.stack(Muc_l), torch.stack(Rsc_l))
        grads = lstm_parameter_grads(DS, DA, Hin, C, Ct, W_hr, DHt, M, Ahat, DCh, Chat, w_ch)
        return DS, dh, dc, *grads, None, None, None, None


def lstm_parameter_grads(DS, DA, Hin, C, Ct, W_hr, DHt, M, Ahat, DCh, Chat, w_ch):
    """The LSTM's recurrent parameter gradients from the per-step ones, each one product or
    sum over all steps: (dW_hh, dW_hr, dg_hh, dg_c, db_c, dw_ch), None where absent.

    DS (t, b, g) ds, DA da (= DS without layer norm), Hin (t, b, p) h_{t-1} * m, C (t+1, b, h),
    Ct (t, b, h) c~, DHt (t, b, p) dh~ and M (t, b, h) o k (projection), Ahat (t, b, g) the gate
    layer norm's x^, DCh (t, b, h) dc^ and Chat its x^ (cell layer norm).
    """
    T, b, G = DS.shape
    H, P, tb = G // 4, Hin.size(-1), T * b
    dW_hh = DA.reshape(tb, G).t() @ Hin.reshape(tb, P)  # sum_t da_t^T (h_{t-1} * m)
    dW_hr = None if W_hr is None else DHt.reshape(tb, P).t() @ M.reshape(tb, H)
    dg_hh = None if Ahat is None else (DS * Ahat).sum((0, 1))
    dg_c = db_c = None
    if DCh is not None:
        dg_c, db_c = (DCh * Chat).sum((0, 1)), DCh.sum((0, 1))
    dw_ch = None
    if w_ch is not None:
        dw_ch = torch.cat(
            [
                (DS[..., :H] * C[:-1]).sum((0, 1)),
                (DS[..., H : 2 * H] * C[:-1]).sum((0, 1)),
                (DS[..., 3 * H :] * Ct).sum((0, 1)),
            ]
        )
    return dW_hh, dW_hr, dg_hh, dg_c, db_c, dw_ch


# ----------------------------------------------------------------------------- GRU


class GRUFunction(torch.autograd.Function):
    """One GRU direction, forward and hand-written backward.

    Forward, per step (gates r, z, n; gx = W_ih x_t + b_ih, b_hh applied here):

        q   = (h_{t-1} * m) W_hh^T + b_hh   (layer norm: LN((h_{t-1} * m) W_hh^T) g_hh + b_hh)
        r, z = sigma(gx_r + q_r), sigma(gx_z + q_z)
        n   = tanh(gx_n + r q_n)
        h~  = (1 - z) n + z h_{t-1}
        h_t = d h_{t-1} + (1 - d) h~

    Backward, per step, from dh_t:

        dh~ = (1 - d) dh_t;   dh_{t-1} = d dh_t + z dh~
        ds_n = (1 - z) dh~ tanh'(n);   dq_n = r ds_n
        ds_r = q_n ds_n sigma'(r);     ds_z = (h_{t-1} - n) dh~ sigma'(z);   dq_rz = ds_rz
        da  = dq (layer norm: its LN backward);   dh_{t-1} += (da W_hh) * m
    """

    @staticmethod
    def forward(ctx, gx, h0, W_hh, b_hh, g_hh, h_mask, keep_h, out_mask):
        T, b, G = gx.shape
        H = G // 3
        new = gx.new_empty
        A = new(T, b, G)  # r, z, n
        Qn = new(T, b, H)  # q_n, the recurrent part of n before r
        Hs = new(T + 1, b, H)
        Hs[0] = h0
        Hin = new(T, b, H) if h_mask is not None else Hs[:-1]
        if g_hh is not None:
            Araw, Mu, Rs = new(T, b, G), new(T, b, 1), new(T, b, 1)
        W_hhT = W_hh.t()
        for j in range(T):
            h, a_j, x_j = Hs[j], A[j], gx[j]
            if h_mask is not None:
                h = torch.mul(h, h_mask, out=Hin[j])
            if g_hh is not None:
                torch.mm(h, W_hhT, out=Araw[j])
                a_hat, mu, rs = torch.native_layer_norm(Araw[j], [G], None, None, LN_EPS)
                Mu[j], Rs[j] = mu, rs
                q = a_hat * g_hh if b_hh is None else torch.addcmul(b_hh, a_hat, g_hh)
            else:
                q = torch.mm(h, W_hhT) if b_hh is None else torch.addmm(b_hh, h, W_hhT)
            torch.sigmoid(x_j[:, : 2 * H] + q[:, : 2 * H], out=a_j[:, : 2 * H])
            r, z, n = a_j.chunk(3, dim=1)
            Qn[j] = q[:, 2 * H :]
            torch.tanh(torch.addcmul(x_j[:, 2 * H :], r, Qn[j]), out=n)
            h_t = torch.addcmul(n, z, Hs[j] - n)  # (1 - z) n + z h
            if keep_h is not None:
                h_t = zoneout(h_t, Hs[j], _keep_at(keep_h, j))
            Hs[j + 1] = h_t
        Y = Hs[1:].clone() if out_mask is None else Hs[1:] * out_mask  # not a view of Hs
        saved = [A, Qn, Hs, Hin, W_hh, g_hh, h_mask, out_mask]
        if g_hh is not None:
            saved += [Araw, Mu, Rs]
        ctx.save_for_backward(*saved)
        ctx.keep = keep_h
        ctx.has_bias = b_hh is not None
        return Y, Hs[T].clone()

    @staticmethod
    def backward(ctx, dY, dh_T):
        first_order_only()
        A, Qn, Hs, Hin, W_hh, g_hh, h_mask, out_mask, *rest = ctx.saved_tensors
        if g_hh is not None:
            Araw, Mu, Rs = rest
        T, b, G = A.shape
        H = G // 3
        d_h, nd_h = _split_keep(ctx.keep, A.dtype)
        if out_mask is not None:
            dY = dY * out_mask
        DQ = torch.empty_like(A)  # dq: r, z, n parts of the recurrent term
        DSn = torch.empty_like(Qn)  # ds_n: the n part of dgx
        DA = torch.empty_like(A) if g_hh is not None else DQ
        dh = dY[T - 1] + dh_T
        for j in range(T - 1, -1, -1):
            a_j, dq = A[j], DQ[j]
            r, z, n = a_j.chunk(3, dim=1)
            h_prev = Hs[j]
            if d_h is not None:
                dh_carry, dh = dh * _keep_at(d_h, j), dh * _keep_at(nd_h, j)
            dhz = dh * z
            aten.tanh_backward.grad_input(dh - dhz, n, grad_input=DSn[j])  # ds_n
            torch.mul(DSn[j], r, out=dq[:, 2 * H :])  # dq_n
            torch.mul(DSn[j], Qn[j], out=dq[:, :H])  # dr
            torch.mul(dh, h_prev - n, out=dq[:, H : 2 * H])  # dz
            aten.sigmoid_backward.grad_input(
                dq[:, : 2 * H], a_j[:, : 2 * H], grad_input=dq[:, : 2 * H]
            )
            if g_hh is not None:
                DA[j] = _ln_backward(dq, Araw[j], Mu[j], Rs[j], g_hh)
            dh = torch.mm(DA[j], W_hh)
            if h_mask is not None:
                dh.mul_(h_mask)
            dh.add_(dhz)
            if d_h is not None:
                dh.add_(dh_carry)
            if j > 0:
                dh.add_(dY[j - 1])
        tb = T * b
        dgx = torch.cat([DQ[..., : 2 * H], DSn], dim=-1)
        dW_hh = DA.view(tb, G).t() @ Hin.reshape(tb, H)
        db_hh = DQ.sum((0, 1)) if ctx.has_bias else None
        dg_hh = None if g_hh is None else (DQ * _ln_hat(Araw, Mu, Rs)).sum((0, 1))
        return dgx, dh, dW_hh, db_hh, dg_hh, None, None, None


# ----------------------------------------------------------------------------- RNN


class RNNFunction(torch.autograd.Function):
    """One Elman RNN direction, forward and hand-written backward.

    Forward: a = (h_{t-1} * m) W_hh^T;  h~ = act(gx_t + a)  (layer norm: gx_t + LN(a) g_hh),
    gx holding b_ih + b_hh;  h_t = d h_{t-1} + (1 - d) h~.
    Backward: ds = (1 - d) dh_t act'(h~);  da = ds (or its LN backward);
    dh_{t-1} = d dh_t + (da W_hh) * m.
    """

    @staticmethod
    def forward(ctx, gx, h0, W_hh, g_hh, h_mask, keep_h, out_mask, relu: bool):
        T, b, H = gx.shape
        new = gx.new_empty
        Hs = new(T + 1, b, H)
        Hs[0] = h0
        Ht = new(T, b, H) if keep_h is not None else Hs[1:]  # h~
        Hin = new(T, b, H) if h_mask is not None else Hs[:-1]
        if g_hh is not None:
            Araw, Mu, Rs = new(T, b, H), new(T, b, 1), new(T, b, 1)
        W_hhT = W_hh.t()
        act = (lambda s, out: torch.clamp_min(s, 0, out=out)) if relu else torch.tanh
        for j in range(T):
            h = Hs[j]
            if h_mask is not None:
                h = torch.mul(h, h_mask, out=Hin[j])
            if g_hh is not None:
                torch.mm(h, W_hhT, out=Araw[j])
                a_hat, mu, rs = torch.native_layer_norm(Araw[j], [H], None, None, LN_EPS)
                Mu[j], Rs[j] = mu, rs
                s = torch.addcmul(gx[j], a_hat, g_hh)
            else:
                s = torch.addmm(gx[j], h, W_hhT)
            act(s, out=Ht[j])  # tanh, or relu as clamp_min(s, 0)
            if keep_h is not None:
                Hs[j + 1] = zoneout(Ht[j], Hs[j], _keep_at(keep_h, j))
        Y = Hs[1:].clone() if out_mask is None else Hs[1:] * out_mask  # not a view of Hs
        saved = [Hs, Ht, Hin, W_hh, g_hh, h_mask, out_mask]
        if g_hh is not None:
            saved += [Araw, Mu, Rs]
        ctx.save_for_backward(*saved)
        ctx.keep, ctx.relu = keep_h, relu
        return Y, Hs[T].clone()

    @staticmethod
    def backward(ctx, dY, dh_T):
        first_order_only()
        Hs, Ht, Hin, W_hh, g_hh, h_mask, out_mask, *rest = ctx.saved_tensors
        if g_hh is not None:
            Araw, Mu, Rs = rest
        T, b, H = Ht.shape
        d_h, nd_h = _split_keep(ctx.keep, Ht.dtype)
        if out_mask is not None:
            dY = dY * out_mask
        DS = torch.empty_like(Ht)
        DA = torch.empty_like(Ht) if g_hh is not None else DS
        dh = dY[T - 1] + dh_T
        for j in range(T - 1, -1, -1):
            if d_h is not None:
                dh_carry, dh = dh * _keep_at(d_h, j), dh * _keep_at(nd_h, j)
            if ctx.relu:
                aten.threshold_backward.grad_input(dh, Ht[j], 0, grad_input=DS[j])
            else:
                aten.tanh_backward.grad_input(dh, Ht[j], grad_input=DS[j])
            if g_hh is not None:
                DA[j] = _ln_backward(DS[j], Araw[j], Mu[j], Rs[j], g_hh)
            dh = torch.mm(DA[j], W_hh)
            if h_mask is not None:
                dh.mul_(h_mask)
            if d_h is not None:
                dh.add_(dh_carry)
            if j > 0:
                dh.add_(dY[j - 1])
        tb = T * b
        dW_hh = DA.view(tb, H).t() @ Hin.reshape(tb, H)
        dg_hh = None if g_hh is None else (DS * _ln_hat(Araw, Mu, Rs)).sum((0, 1))
        return DS, dh, dW_hh, dg_hh, None, None, None, None


# ----------------------------------------------------------------------------- layer glue


def _effective_keep(keep, valid: Tensor | None, dtype: torch.dtype):
    """Zoneout's keep mask with padding folded in: a padded step keeps the whole state."""
    if valid is None or keep is None:
        return keep if valid is None else ~valid  # (t, b, 1) bool
    if isinstance(keep, Tensor):
        return keep | ~valid
    return torch.full(valid.shape, keep, dtype=dtype, device=valid.device).masked_fill_(~valid, 1)


def time_loops(mode: str, gx: Tensor, W_hh: Tensor) -> type[torch.autograd.Function]:
    """The Function for mode (LSTM, GRU, RNN) with its loops in C++ (`rnnkit.fused_cpu`) where
    `rnnkit.layers.dispatch.cpp_loops` says they apply (CPU, float32 / float64, W_hh of gx's
    dtype, the library built); else the Python loops of this file. Both compute the same
    function."""
    if cpp_loops(gx, W_hh).cpp:
        from rnnkit import fused_cpu

        return getattr(fused_cpu, f"Cpp{mode}Function")
    return {"LSTM": LSTMFunction, "GRU": GRUFunction, "RNN": RNNFunction}[mode]


def run_direction(mode: str, prep, state, mask: Tensor | None, reverse: bool):
    """Run one (layer, direction) of a layer on the fused path.

    prep: the layer's `_Direction` (gx (t, b, g), weights, masks); state: h0, or (h0, c0)
    for LSTM; mask (t, b) bool, False on padding. Returns (output (t, b, p), final state),
    exactly what `rnnkit.layers.unroll` returns for the same step.

    The layer prepares it with ``fold_bias_hh=True``: for LSTM and RNN b_hh only shifts the
    pre-activations s (it comes after the layer norm), so gx already holds b_ih + b_hh and
    prep.bias_hh is None; GRU keeps b_hh apart, since its b_hn sits inside r * (W_hn h + b_hn).
    """
    gx = prep.gx
    if torch.is_autocast_enabled(gx.device.type):  # gx came from a low-precision product
        with torch.autocast(gx.device.type, enabled=False):
            return _full_precision(mode, prep, state, mask, reverse)
    valid = None if mask is None else mask.unsqueeze(-1)  # (t, b, 1)
    keep_h = _effective_keep(prep.keep_h, valid, gx.dtype)
    keep_c = _effective_keep(prep.keep_c, valid, gx.dtype)
    out_mask = None if valid is None else valid.to(gx.dtype)
    if reverse:  # run the flipped sequence forwards
        gx = gx.flip(0)
        keep_h, keep_c = (k.flip(0) if isinstance(k, Tensor) else k for k in (keep_h, keep_c))
        out_mask = None if out_mask is None else out_mask.flip(0)
    if mode == "LSTM":
        h0, c0 = state
        y, h_n, c_n = time_loops("LSTM", gx, prep.weight_hh).apply(
            gx,
            h0,
            c0,
            prep.weight_hh,
            prep.weight_hr,
            prep.ln_weight_hh,
            prep.ln_weight_c,
            prep.ln_bias_c,
            prep.weight_ch,
            prep.h_mask,
            keep_h,
            keep_c,
            out_mask,
        )
        final = (h_n, c_n)
    elif mode == "GRU":
        y, final = time_loops("GRU", gx, prep.weight_hh).apply(
            gx, state, prep.weight_hh, prep.bias_hh, prep.ln_weight_hh, prep.h_mask, keep_h,
            out_mask,
        )  # fmt: skip
    else:
        y, final = time_loops("RNN", gx, prep.weight_hh).apply(
            gx, state, prep.weight_hh, prep.ln_weight_hh, prep.h_mask, keep_h, out_mask,
            mode == "RNN_RELU",
        )  # fmt: skip
    return (y.flip(0) if reverse else y), final


def _full_precision(mode: str, prep, state, mask: Tensor | None, reverse: bool):
    """`run_direction` under autocast: the input projections ran in the low precision (bf16 /
    fp16), the recurrence runs in the weights' dtype (the C++ loops take float32, and the
    backward's products mix no dtypes); the casts are differentiable, so the gradients reach
    gx in its own dtype."""
    dtype = prep.weight_hh.dtype
    prep = dataclasses.replace(prep, gx=prep.gx.to(dtype))
    state = tuple(s.to(dtype) for s in state) if isinstance(state, tuple) else state.to(dtype)
    return run_direction(mode, prep, state, mask, reverse)
