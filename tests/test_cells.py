"""rnnkit's cells against torch.nn's cells with copied weights, gradcheck, and unrolling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

import rnnkit

DT = torch.float64
T, B, I, H = 5, 3, 4, 3
TOL = {"atol": 1e-5, "rtol": 1e-5}

# kind -> (rnnkit cell class, torch.nn cell class, kwargs)
CELLS = {
    "rnn_tanh": (rnnkit.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTMCell, nn.LSTMCell, {}),
    "gru": (rnnkit.GRUCell, nn.GRUCell, {}),
}
KINDS = list(CELLS)


def make_pair(kind, seed=0, **kw):
    ours_cls, theirs_cls, extra = CELLS[kind]
    torch.manual_seed(seed)
    theirs = theirs_cls(I, H, dtype=DT, **extra, **kw)
    ours = ours_cls(I, H, dtype=DT, **extra, **kw)
    ours.load_state_dict(theirs.state_dict())  # strict=True
    return ours, theirs


def make_hx(kind, batched):
    shape = (B, H) if batched else (H,)
    if kind == "lstm":
        return torch.randn(shape, dtype=DT), torch.randn(shape, dtype=DT)
    return torch.randn(shape, dtype=DT)


def leaf(t):
    if isinstance(t, tuple):
        return tuple(leaf(p) for p in t)
    return t.detach().clone().requires_grad_(True)


def flat(x):
    if x is None:
        return []
    return list(x) if isinstance(x, tuple | list) else [x]


def weighted_loss(state):
    g = torch.Generator().manual_seed(99)
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in flat(state))


# ----------------------------------------------------------------------------- rnnkit == torch.nn


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("hx_given", [False, True], ids=["hx_none", "hx_given"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_matches_torch(kind, batched, hx_given, bias):
    ours, theirs = make_pair(kind, bias=bias)
    x = torch.randn((B, I) if batched else (I,), dtype=DT)
    hx = make_hx(kind, batched) if hx_given else None
    xo, xt = leaf(x), leaf(x)
    ho, ht = (leaf(hx), leaf(hx)) if hx_given else (None, None)

    out_o, out_t = ours(xo, ho), theirs(xt, ht)
    assert type(out_o) is type(out_t)
    for a, b in zip(flat(out_o), flat(out_t), strict=True):
        assert a.shape == b.shape == ((B, H) if batched else (H,))
        assert_close(a, b, **TOL)

    weighted_loss(out_o).backward()
    weighted_loss(out_t).backward()
    assert_close(xo.grad, xt.grad, **TOL)
    for a, b in zip(flat(ho), flat(ht), strict=True):
        assert_close(a.grad, b.grad, **TOL)
    ref = dict(theirs.named_parameters())
    mine = dict(ours.named_parameters())
    assert mine.keys() == ref.keys()
    for name, p in ref.items():
        assert_close(mine[name].grad, p.grad, **TOL, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("kind", KINDS)
def test_cell_keeps_torch_contract(kind):
    ours_cls, theirs_cls, extra = CELLS[kind]
    ours, theirs = ours_cls(I, H, **extra), theirs_cls(I, H, **extra)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for name, p in theirs.state_dict().items():
        assert ours.state_dict()[name].shape == p.shape
    theirs.load_state_dict(ours.state_dict())
    assert (ours.input_size, ours.hidden_size, ours.bias) == (I, H, True)
    # positional bias, as torch.nn's cells take it
    nobias = ours_cls(I, H, False, **extra)
    assert nobias.bias_ih is None and nobias.bias_hh is None
    assert "bias=False" in repr(nobias)


@pytest.mark.parametrize("kind", KINDS)
def test_cell_init_matches_torch_distribution(kind):
    """Every parameter is drawn from U(-1/sqrt(h), 1/sqrt(h)), as torch.nn's cells."""
    ours_cls, _, extra = CELLS[kind]
    hidden = 16
    torch.manual_seed(0)
    cell = ours_cls(8, hidden, **extra)
    bound = 1 / math.sqrt(hidden)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.abs().max() > 0.8 * bound, name  # spread over the whole interval
        assert abs(p.mean()) < 0.3 * bound, name


@pytest.mark.parametrize("kind", KINDS)
def test_cell_zero_state_equals_explicit_zeros(kind):
    ours, _ = make_pair(kind)
    x = torch.randn(B, I, dtype=DT)
    z = torch.zeros(B, H, dtype=DT)
    explicit = ours(x, (z, z.clone()) if kind == "lstm" else z)
    for a, b in zip(flat(ours(x)), flat(explicit), strict=True):
        assert_close(a, b, atol=0, rtol=0)
    state = ours.initial_state(B, dtype=DT)
    for s in flat(state):
        assert s.shape == (B, H) and torch.all(s == 0)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_gradcheck_inputs_and_state(kind, batched):
    ours, _ = make_pair(kind)
    x = torch.randn((B, I) if batched else (I,), dtype=DT, requires_grad=True)
    hx = leaf(make_hx(kind, batched))
    if kind == "lstm":
        assert torch.autograd.gradcheck(lambda x, h, c: ours(x, (h, c)), (x, *hx))
        assert torch.autograd.gradgradcheck(lambda x, h, c: ours(x, (h, c)), (x, *hx))
    else:
        assert torch.autograd.gradcheck(ours, (x, hx))
        assert torch.autograd.gradgradcheck(ours, (x, hx))


@pytest.mark.parametrize("kind", KINDS)
def test_cell_gradcheck_parameters(kind):
    ours, _ = make_pair(kind)
    names = [n for n, _ in ours.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in ours.parameters())
    x = torch.randn(2, I, dtype=DT, requires_grad=True)
    hx = make_hx(kind, True)
    hx = (hx[0][:2], hx[1][:2]) if kind == "lstm" else hx[:2]

    def fn(x, *ps):
        return functional_call(ours, dict(zip(names, ps, strict=True)), (x, hx))

    assert torch.autograd.gradcheck(fn, (x, *params))


# ----------------------------------------------------------------------------- unrolling


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_unrolled_lstm_cell_equals_lstm_loop(batched):
    """rnnkit.LSTMCell unrolled by hand == rnnkit.LSTM(impl='loop') == torch.nn.LSTM,
    outputs, final state and gradients (w.r.t. x, (h0, c0) and the weights)."""
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, dtype=DT, impl="loop")
    ref = nn.LSTM(I, H, dtype=DT)
    ref.load_state_dict(layer.state_dict())
    cell = rnnkit.LSTMCell(I, H, dtype=DT)
    cell.load_state_dict({n: getattr(layer, n + "_l0").detach().clone() for n in cell.state_dict()})
    lead = (B,) if batched else ()
    x = torch.randn(T, *lead, I, dtype=DT)
    h0, c0 = torch.randn(1, *lead, H, dtype=DT), torch.randn(1, *lead, H, dtype=DT)
    xc, hc, cc = leaf(x), leaf(h0), leaf(c0)
    xl, hl, cl = leaf(x), leaf(h0), leaf(c0)

    state, outs = (hc[0], cc[0]), []
    for x_t in xc:
        state = cell(x_t, state)
        outs.append(state[0])
    out_cell = torch.stack(outs)

    out_loop, (h_n, c_n) = layer(xl, (hl, cl))
    assert_close(out_cell, out_loop, **TOL)
    assert_close(state[0], h_n[0], **TOL)
    assert_close(state[1], c_n[0], **TOL)
    out_ref, (h_ref, c_ref) = ref(x, (h0, c0))
    assert_close(out_loop, out_ref, **TOL)
    assert_close(c_n, c_ref, **TOL)

    weighted_loss((out_cell, state[0], state[1])).backward()
    weighted_loss((out_loop, h_n[0], c_n[0])).backward()
    for a, b in ((xc, xl), (hc, hl), (cc, cl)):
        assert_close(a.grad, b.grad, **TOL)
    for n, p in cell.named_parameters():
        assert_close(p.grad, getattr(layer, n + "_l0").grad, **TOL)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru"])
def test_unrolled_cell_equals_layer_loop(kind):
    ours_cls, _, extra = CELLS[kind]
    layer_cls = rnnkit.GRU if kind == "gru" else rnnkit.RNN
    torch.manual_seed(0)
    layer = layer_cls(I, H, dtype=DT, impl="loop", **extra)
    cell = ours_cls(I, H, dtype=DT, **extra)
    cell.load_state_dict({n: getattr(layer, n + "_l0").detach().clone() for n in cell.state_dict()})
    x = torch.randn(T, B, I, dtype=DT)
    h = torch.randn(B, H, dtype=DT)
    out_layer, h_n = layer(x, h.unsqueeze(0))
    outs = []
    for x_t in x:
        h = cell(x_t, h)
        outs.append(h)
    assert_close(torch.stack(outs), out_layer, **TOL)
    assert_close(h, h_n[0], **TOL)


def test_step_functions_are_what_the_cells_run():
    """The step functions take the input projection gx = W_ih x + b_ih."""
    from rnnkit.cells import gru_step, lstm_step, rnn_step

    torch.manual_seed(0)
    x, h, c = (torch.randn(B, n, dtype=DT) for n in (I, H, H))
    for kind, step in (("rnn_relu", rnn_step), ("gru", gru_step), ("lstm", lstm_step)):
        cell, ref = make_pair(kind)
        gx = nn.functional.linear(x, cell.weight_ih, cell.bias_ih)
        if kind == "lstm":
            got, want = step(gx, h, c, cell.weight_hh, cell.bias_hh), ref(x, (h, c))
        elif kind == "gru":
            got, want = step(gx, h, cell.weight_hh, cell.bias_hh), ref(x, h)
        else:
            got, want = step(gx, h, cell.weight_hh, cell.bias_hh, "relu"), ref(x, h)
        for a, b in zip(flat(got), flat(want), strict=True):
            assert_close(a, b, **TOL)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", KINDS)
def test_cell_error_input_dims(kind):
    cell, _ = make_pair(kind)
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D, got 3D"):
        cell(torch.randn(T, B, I, dtype=DT))
    with pytest.raises(ValueError, match="Expected input to be 1D or 2D, got 0D"):
        cell(torch.tensor(1.0, dtype=DT))
    with pytest.raises(TypeError, match="input must be a Tensor"):
        cell([[1.0] * I])


@pytest.mark.parametrize("kind", KINDS)
def test_cell_error_feature_size(kind):
    cell, _ = make_pair(kind)
    with pytest.raises(ValueError, match="input_size. Expected 4, got 7"):
        cell(torch.randn(B, 7, dtype=DT))
    with pytest.raises(ValueError, match="input_size. Expected 4, got 7"):
        cell(torch.randn(7, dtype=DT))


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru"])
def test_cell_error_hx_shape(kind):
    cell, _ = make_pair(kind)
    x = torch.randn(B, I, dtype=DT)
    with pytest.raises(ValueError, match=r"Expected hx of size \(3, 3\), got \(2, 3\)"):
        cell(x, torch.zeros(2, H, dtype=DT))
    with pytest.raises(ValueError, match=r"Expected hx of size \(3, 3\), got \(3,\)"):
        cell(x, torch.zeros(H, dtype=DT))
    with pytest.raises(ValueError, match=r"Expected hx of size \(3,\), got \(1, 3\)"):
        cell(x[0], torch.zeros(1, H, dtype=DT))


def test_lstm_cell_error_hx_shape():
    cell, _ = make_pair("lstm")
    x = torch.randn(B, I, dtype=DT)
    z = torch.zeros(B, H, dtype=DT)
    with pytest.raises(ValueError, match=r"Expected h of size \(3, 3\), got \(3, 4\)"):
        cell(x, (torch.zeros(B, 4, dtype=DT), z))
    with pytest.raises(ValueError, match=r"Expected c of size \(3, 3\), got \(2, 3\)"):
        cell(x, (z, torch.zeros(2, H, dtype=DT)))
    with pytest.raises(ValueError, match=r"hx must be a tuple \(h, c\)"):
        cell(x, z)
    with pytest.raises(ValueError, match=r"hx must be a tuple \(h, c\)"):
        cell(x, (z, z, z))


def test_rnn_cell_bad_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        rnnkit.RNNCell(I, H, nonlinearity="sigmoid")


@pytest.mark.parametrize("cls", [rnnkit.RNNCell, rnnkit.LSTMCell, rnnkit.GRUCell])
@pytest.mark.parametrize("sizes", [(0, H), (I, -1), (I, 2.0), (True, H)])
def test_cell_bad_sizes(cls, sizes):
    with pytest.raises(ValueError, match="must be a positive integer"):
        cls(*sizes)
