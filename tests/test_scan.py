"""minGRU and minLSTM: the parallel scan equals the sequential loop equals step mode, and all
equal a straightforward implementation of the paper's equations (Feng et al. 2024)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit
from rnnkit.scan import LinearRecurrence, parallel_scan_log

DT = torch.float64
T, B, I, H = 7, 3, 4, 5
TOL = {"atol": 1e-10, "rtol": 1e-10}
LENGTHS = [4, 7, 1]
KINDS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}


# ----------------------------------------------------------------------------- reference


def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def g(x):
    """Appendix B.3: x + 0.5 for x >= 0, sigmoid(x) otherwise."""
    return torch.where(x >= 0, x + 0.5, sigmoid(x))


def ref_step(kind, W, b, x, h):
    k = x @ W.T + b
    if kind == "mingru":  # sec. 3.1.2
        z = sigmoid(k[:, :H])
        return (1 - z) * h + z * g(k[:, H:])
    f, i = sigmoid(k[:, :H]), sigmoid(k[:, H : 2 * H])  # sec. 3.2.2, with normalized gates
    return f / (f + i) * h + i / (f + i) * g(k[:, 2 * H :])


def ref_layer(layer, kind, x, h0, lengths=None):
    """Sequential, layer by layer and direction by direction; padding carries the state."""
    nd = 2 if layer.bidirectional else 1
    finals = []
    for ell in range(layer.num_layers):
        outs = []
        for d in range(nd):
            sfx = f"_l{ell}" + ("_reverse" if d else "")
            W, b = getattr(layer, "weight_ih" + sfx), getattr(layer, "bias_ih" + sfx)
            h = h0[ell * nd + d]
            out = [None] * T
            for t in range(T - 1, -1, -1) if d else range(T):
                new = ref_step(kind, W, b, x[t], h)
                valid = torch.ones(B, 1, dtype=torch.bool)
                if lengths is not None:
                    valid = (torch.tensor(lengths) > t).unsqueeze(-1)
                h = torch.where(valid, new, h)
                out[t] = h * valid
            outs.append(torch.stack(out))
            finals.append(h)
        x = torch.cat(outs, -1)
    return x, torch.stack(finals)


def make(kind, **kw):
    torch.manual_seed(0)
    return KINDS[kind](I, H, dtype=DT, **kw)


# ----------------------------------------------------------------------------- tests


def test_parallel_scan_log_solves_the_linear_recurrence():
    a = torch.rand(50, B, H, dtype=DT) * 0.98 + 0.01
    b = torch.rand(50, B, H, dtype=DT) * 2
    h0 = torch.randn(B, H, dtype=DT)  # any sign: the h_0 term is kept out of the logs
    h, want = h0, []
    for t in range(50):
        h = a[t] * h + b[t]
        want.append(h)
    assert_close(parallel_scan_log(a.log(), b.log(), h0), torch.stack(want), **TOL)
    assert_close(parallel_scan_log(a.log(), b.log()), parallel_scan_log(a.log(), b.log(), 0 * h0))


@pytest.mark.parametrize("T_", [50, 64, 200])
def test_blocked_scan_equals_one_block(T_):
    """Blocks of `chunk` steps joined by the carried state equal the closed form in one go."""
    log_a = -torch.rand(T_, B, H, dtype=DT) * 3
    log_b = torch.randn(T_, B, H, dtype=DT)
    h0 = torch.randn(B, H, dtype=DT)
    for start in (None, h0):
        one = parallel_scan_log(log_a, log_b, start, chunk=10**6)
        assert_close(parallel_scan_log(log_a, log_b, start, chunk=16), one, **TOL)


@pytest.fixture(params=["python", "cpp"])
def loops(request, monkeypatch):
    """LinearRecurrence with its loops in Python, then in C++ (rnnkit/csrc/scan.cpp)."""
    from rnnkit import extension

    if request.param == "python":
        monkeypatch.setattr(extension, "available", lambda t: False)
    else:
        require_cpp()
    return request.param


def require_cpp():
    """Skip where rnnkit's C++ loops cannot be built, but fail in CI, which can build them."""
    from rnnkit import extension

    if not extension.load():
        if os.environ.get("RNNKIT_REQUIRE_EXTENSION") == "1":
            pytest.fail(f"the C++ loops are required here: {extension.status()}")
        pytest.skip(f"C++ loops not available: {extension.status()}")


@pytest.mark.parametrize("hx_given", [False, True], ids=["hx_none", "hx_given"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize(
    "shape", [{}, {"num_layers": 2, "bidirectional": True}], ids=["L1", "L2bi"]
)
@pytest.mark.parametrize("kind", list(KINDS))
def test_scan_equals_loop_equals_reference(kind, shape, lengths, hx_given, loops):
    scan = make(kind, impl="scan", **shape)
    fused = make(kind, impl="fused", **shape)
    loop = make(kind, impl="loop", **shape)
    fused.load_state_dict(scan.state_dict())
    loop.load_state_dict(scan.state_dict())
    dl = scan.num_layers * scan.num_directions
    x = torch.randn(T, B, I, dtype=DT)
    h0 = torch.randn(dl, B, H, dtype=DT) if hx_given else None
    lt = None if lengths is None else torch.tensor(lengths)
    ref_out, ref_h = ref_layer(
        scan, kind, x, torch.zeros(dl, B, H, dtype=DT) if h0 is None else h0, lengths
    )
    results = []
    for layer in (scan, fused, loop):
        xl = x.clone().requires_grad_(True)
        h0l = None if h0 is None else h0.clone().requires_grad_(True)
        out, h_n = layer(xl, h0l, lengths=lt)
        assert_close(out, ref_out, **TOL)
        assert_close(h_n, ref_h, **TOL)
        (out * torch.linspace(-1, 1, out.numel(), dtype=DT).view_as(out)).sum().backward()
        hg = [] if h0 is None else [h0l.grad]
        results.append([xl.grad, *hg] + [p.grad for p in layer.parameters()])
    for a, b, c in zip(*results, strict=True):
        assert_close(a, c, **TOL)
        assert_close(b, c, **TOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_step_mode_equals_parallel(kind):
    """Generation: one step at a time gives the numbers of the parallel scan."""
    layer = make(kind, num_layers=3)
    x = torch.randn(T, B, I, dtype=DT)
    out, h_n = layer(x)
    h, ys = None, []
    for t in range(T):
        y, h = layer.step(x[t], h)
        ys.append(y)
    assert_close(torch.stack(ys), out, **TOL)
    assert_close(h, h_n, **TOL)
    # continuing from a carried state equals one pass
    first, h_half = layer(x[:3])
    second, h_end = layer(x[3:], h_half)
    assert_close(torch.cat([first, second]), out, **TOL)
    assert_close(h_end, h_n, **TOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_cells_are_one_step(kind):
    cell = getattr(rnnkit, "MinGRUCell" if kind == "mingru" else "MinLSTMCell")(I, H, dtype=DT)
    layer = make(kind)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(T, B, I, dtype=DT)
    out, _ = layer(x)
    h = None
    for t in range(T):
        h = cell(x[t], h)
        assert_close(h, out[t], **TOL)
    out_rec, _ = rnnkit.Recurrent(cell)(x)
    assert_close(out_rec, out, **TOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_long_sequence_scan_equals_loop(kind):
    """T = 2048, the issue's target length: equal outputs in float64 and float32 (the blocked
    scan keeps float32 within 1e-5 of the loop), and equal input gradients (T = 256)."""
    for dtype, tol, steps, grad in (
        (DT, 1e-9, 2048, False),
        (torch.float32, 5e-5, 2048, False),
        (torch.float32, 5e-5, 256, True),
    ):
        torch.manual_seed(1)
        scan = KINDS[kind](8, 16, dtype=dtype, impl="scan")
        fused = KINDS[kind](8, 16, dtype=dtype, impl="fused")
        loop = KINDS[kind](8, 16, dtype=dtype, impl="loop")
        fused.load_state_dict(scan.state_dict())
        loop.load_state_dict(scan.state_dict())
        x = torch.randn(steps, 2, 8, dtype=dtype)
        results = []
        for layer in (scan, fused, loop):
            xl = x.clone().requires_grad_(grad)
            with torch.set_grad_enabled(grad):
                out, h_n = layer(xl)
            if grad:
                out.sum().backward()
            results.append((out, h_n, xl.grad if grad else out))
        for a, b, c in zip(*results, strict=True):
            assert_close(a, c, atol=tol, rtol=tol)
            assert_close(b, c, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", list(KINDS))
def test_packed_batch_first_and_unbatched(kind):
    layer = make(kind, batch_first=True, bidirectional=True, num_layers=2)
    x = torch.randn(B, T, I, dtype=DT)
    out, h_n = layer(x, lengths=torch.tensor(LENGTHS))
    packed = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    p_out, p_h = layer(packed)
    p_out, _ = pad_packed_sequence(p_out, batch_first=True, total_length=T)
    assert_close(p_out, out, **TOL)
    assert_close(p_h, h_n, **TOL)
    one, h1 = layer(x[1])  # unbatched (t, i)
    assert_close(one, out[1], **TOL)
    assert_close(h1, h_n[:, 1], **TOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_between_layers_scan_equals_loop(kind):
    outs = []
    for impl in ("scan", "fused", "loop"):
        layer = make(kind, impl=impl, num_layers=3, dropout=0.5)
        torch.manual_seed(3)
        outs.append(layer(torch.ones(T, B, I, dtype=DT))[0])
    assert_close(outs[0], outs[2], **TOL)
    assert_close(outs[1], outs[2], **TOL)


def test_linear_recurrence_gradcheck_and_double_backward_error(loops):
    a = (torch.rand(6, 2, 3, dtype=DT) * 0.9 + 0.05).requires_grad_(True)
    b = torch.randn(6, 2, 3, dtype=DT, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(LinearRecurrence.apply, (a, b, h0))
    # and against the recurrence written out by hand, values and gradients
    h, hs = h0, []
    for t in range(6):
        h = a[t] * h + b[t]
        hs.append(h)
    ref = torch.stack(hs)
    out = LinearRecurrence.apply(a, b, h0)
    assert_close(out, ref, **TOL)
    w = torch.randn(6, 2, 3, dtype=DT)
    got = torch.autograd.grad((out * w).sum(), (a, b, h0))
    want = torch.autograd.grad((ref * w).sum(), (a, b, h0))
    for x, y in zip(got, want, strict=True):
        assert_close(x, y, **TOL)
    with pytest.raises(RuntimeError, match="cannot be differentiated again"):
        torch.autograd.grad(LinearRecurrence.apply(a, b, h0).sum(), b, create_graph=True)


def test_plan_and_errors():
    layer = rnnkit.MinGRU(I, H)
    assert layer.plan().startswith("fused") and "CPU" in layer.plan()  # auto on a CPU
    assert rnnkit.MinGRU(I, H, impl="scan").plan().startswith("scan")
    assert rnnkit.MinLSTM(I, H, impl="loop").plan().startswith("loop")
    with pytest.raises(
        ValueError, match=r"impl must be one of \('auto', 'scan', 'fused', 'loop'\)"
    ):
        rnnkit.MinGRU(I, H, impl="native")
    with pytest.raises(ValueError, match="step\\(\\) needs bidirectional=False"):
        rnnkit.MinGRU(I, H, bidirectional=True).step(torch.randn(B, I))
    with pytest.raises(ValueError, match=r"Expected hx size \(1, 3, 5\), got \(2, 3, 5\)"):
        layer(torch.randn(T, B, I), torch.zeros(2, B, H))
    with pytest.raises(ValueError, match="Expected 4, got 6"):
        layer(torch.randn(T, B, 6))
    with pytest.raises(ValueError, match="MinLSTMCell: Expected input to be 1D or 2D"):
        rnnkit.MinLSTMCell(I, H)(torch.randn(T, B, I))
    with pytest.raises(TypeError, match="unexpected keyword argument 'zoneout'"):
        rnnkit.MinGRU(I, H, zoneout=0.1)


@pytest.mark.parametrize("kind", list(KINDS))
def test_cpp_min_function_gradcheck_and_float32(kind):
    """The C++ minGRU / minLSTM pass (projection, gates and recurrence; padding carries the
    state and outputs zero): gradcheck in float64 with and without bias and padding, and
    float32 (the vectorized sigmoid) against F.linear + coefficients + LinearRecurrence."""
    require_cpp()
    from rnnkit.fused_cpu import CppMinFunction
    from rnnkit.scan import min_gru_linear, min_lstm_linear

    lstm, G = kind == "minlstm", 3 if kind == "minlstm" else 2
    valid = torch.arange(6).unsqueeze(1) < torch.tensor([6, 3])  # (t, b): padding after 3
    x = torch.randn(6, 2, 4, dtype=DT, requires_grad=True)
    W = torch.randn(G * 3, 4, dtype=DT, requires_grad=True)
    bias = torch.randn(G * 3, dtype=DT, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(CppMinFunction.apply, (x, W, bias, h0, valid, lstm))
    assert torch.autograd.gradcheck(CppMinFunction.apply, (x, W, None, h0, None, lstm))

    # float32 (the vectorized sigmoid), padded, against projection + coefficients + recurrence
    x32 = torch.randn(9, 5, 11, requires_grad=True)
    W32 = (torch.randn(G * 37, 11) / 2).requires_grad_(True)
    b32 = torch.randn(G * 37, requires_grad=True)
    h32 = torch.randn(5, 37, requires_grad=True)
    ok = torch.arange(9).unsqueeze(1) < torch.tensor([9, 4, 1, 9, 7])
    out, final = CppMinFunction.apply(x32, W32, b32, h32, ok, lstm)
    a, b = (min_lstm_linear if lstm else min_gru_linear)(F.linear(x32, W32, b32))
    v = ok.unsqueeze(-1)
    hs = LinearRecurrence.apply(torch.where(v, a, 1.0), torch.where(v, b, 0.0), h32)
    ref, ref_final = hs * v, hs[-1]  # padding: zero output, carried state
    assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert_close(final, ref_final, atol=1e-5, rtol=1e-5)
    w, wf = torch.randn_like(out), torch.randn_like(final)
    args = (x32, W32, b32, h32)
    got = torch.autograd.grad((out * w).sum() + (final * wf).sum(), args)
    want = torch.autograd.grad((ref * w).sum() + (ref_final * wf).sum(), args)
    for g, e in zip(got, want, strict=True):
        assert_close(g, e, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("impl", ["fused", "loop", "scan"])
def test_output_can_be_changed_in_place(impl):
    """A residual `out += x` on the output must not break backward on any path (the fused
    C++ pass returns a copy, not the states it saved)."""
    if impl == "fused":
        require_cpp()
    torch.manual_seed(0)
    layer = rnnkit.MinGRU(I, I, impl=impl, dtype=DT)
    x = torch.randn(T, B, I, dtype=DT, requires_grad=True)
    out, _ = layer(x)
    out += x
    out.sum().backward()
    ref = rnnkit.MinGRU(I, I, impl="loop", dtype=DT)
    ref.load_state_dict(layer.state_dict())
    x2 = x.detach().clone().requires_grad_(True)
    (ref(x2)[0] + x2).sum().backward()
    assert_close(x.grad, x2.grad, **TOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradient_at_the_kink_of_g_agrees_on_every_path(kind, loops):
    """g(x) = x + 1/2 for x >= 0, sigma(x) below has a kink at 0 (slopes 1/4 and 1); every
    path takes sigma's side there, as the loop's relu(x) + sigma(min(x, 0)) does. An input
    frame of zeros with bias=False puts k_h exactly at 0."""
    torch.manual_seed(0)
    x = torch.randn(T, B, I, dtype=DT)
    x[1] = 0.0
    grads = []
    for impl in ("loop", "fused", "scan"):
        torch.manual_seed(1)
        layer = KINDS[kind](I, H, bias=False, impl=impl, dtype=DT)
        xl = x.clone().requires_grad_(True)
        (layer(xl)[0] * torch.linspace(-1, 1, T * B * H, dtype=DT).view(T, B, H)).sum().backward()
        grads.append(xl.grad)
    assert_close(grads[1], grads[0], **TOL)
    assert_close(grads[2], grads[0], **TOL)


def test_linear_recurrence_takes_broadcast_coefficients(loops):
    """b (t, 1, h) broadcast over the batch: the C++ loop wants one shape, so Python's runs."""
    a = torch.rand(5, 3, 4, dtype=DT) * 0.9
    b = torch.randn(5, 1, 4, dtype=DT)
    h = torch.zeros(3, 4, dtype=DT)
    ref = []
    for t in range(5):
        h = a[t] * h + b[t]
        ref.append(h)
    assert_close(LinearRecurrence.apply(a, b, torch.zeros(3, 4, dtype=DT)), torch.stack(ref), **TOL)


@pytest.mark.parametrize(
    "loss",
    [
        lambda out: out.sum(),  # a broadcast gradient: strides 0
        lambda out: out.mean(),
        lambda out: (out * torch.linspace(-1, 1, out.size(-1), dtype=out.dtype)).sum(),
        lambda out: out[:, -1].sum(),
    ],
    ids=["sum", "mean", "broadcast-over-time", "last-step"],
)
@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_fused_backward_takes_gradients_of_any_layout(cls, loss):
    """The C++ backward reads the output's gradient through its strides (batch first, or
    broadcast by sum / mean) instead of copying it: the same gradients as the loop."""
    require_cpp()
    torch.manual_seed(0)
    fused = cls(I, H, batch_first=True, impl="fused", dtype=DT)
    loop = cls(I, H, batch_first=True, impl="loop", dtype=DT)
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(B, T, I, dtype=DT)
    grads = []
    for layer in (fused, loop):
        xi = x.clone().requires_grad_(True)
        loss(layer(xi)[0]).backward()
        grads.append([xi.grad, *(p.grad for p in layer.parameters())])
    for a, b in zip(*grads, strict=True):
        assert_close(a, b, **TOL)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
@pytest.mark.parametrize("b, h", [(2, 1), (0, 4)], ids=["one-unit", "empty-batch"])
def test_fused_backward_of_a_sum_with_one_unit_or_no_rows(cls, b, h):
    """out.sum()'s gradient has stride 0 everywhere; with one unit or no rows torch calls it
    contiguous as it is, and the C++ backward must take it (it refused it once)."""
    require_cpp()
    fused = cls(I, h, impl="fused", dtype=DT)
    loop = cls(I, h, impl="loop", dtype=DT)
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(T, b, I, dtype=DT)
    grads = []
    for layer in (fused, loop):
        xi = x.clone().requires_grad_(True)
        layer(xi)[0].sum().backward()
        grads.append([xi.grad, *(p.grad for p in layer.parameters())])
    for a, e in zip(*grads, strict=True):
        assert_close(a, e, **TOL)


def test_cpp_min_ops_check_their_shapes():
    """The ops are public under torch.ops.rnnkit: a wrong shape is an error, not a read past
    the end of a buffer."""
    require_cpp()
    op = torch.ops.rnnkit
    x, W, h0 = torch.randn(4, 2, 3), torch.randn(10, 3), torch.zeros(2, 5)
    with pytest.raises(RuntimeError, match="bias must be"):
        op.min_rnn_forward(x, W, torch.randn(1), h0, None, False)
    with pytest.raises(RuntimeError, match="valid must be"):
        op.min_rnn_forward(x, W, None, h0, torch.ones(1, 1, dtype=torch.bool), False)
    with pytest.raises(RuntimeError, match="W must be"):
        op.min_rnn_forward(x, W, None, h0, None, True)  # minLSTM needs 3h rows
    with pytest.raises(RuntimeError, match="h0 must be"):
        op.min_rnn_forward(x, W, None, torch.zeros(3, 5), None, False)
    # float64 takes the generic path: gx laid out as (t, b, g), bands 0
    Y, hT, gx, Hs, bands = op.min_rnn_forward(
        x.double(), W.double(), None, h0.double(), None, False
    )
    assert int(bands) == 0 and gx.shape == (4, 2, 10)
    with pytest.raises(RuntimeError, match="dY must be"):
        op.min_rnn_backward(torch.ones(1, 1, 5).double(), hT, gx, Hs, None, None, False)
    with pytest.raises(RuntimeError, match="do not match"):
        op.min_rnn_backward(Y, hT, gx, Hs, None, None, True)
    if op.min_rnn_products_apply(x, W):  # float32 on AVX-512: gx in the forward's row bands
        Y, hT, gx, Hs, bands = op.min_rnn_forward(x, W, None, h0, None, False)
        assert int(bands) == min(torch.get_num_threads(), 2) and gx.shape == (8, 10)
        with pytest.raises(RuntimeError, match="with bands > 0"):  # not readable as (t, b, g)
            op.min_rnn_backward(Y, hT, gx, Hs, None, None, False)
        with pytest.raises(RuntimeError, match="do not match"):  # more bands than rows
            op.min_rnn_backward_products(Y, hT, gx, Hs, None, None, False, x, W, True, True, 3)
