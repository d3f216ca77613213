"""rnnkit.RNN, LSTM, GRU and Recurrent against torch.nn with copied weights: values and grads."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnkit

DT = torch.float64
T, B, I, H = 5, 3, 4, 3
TOL = {"atol": 1e-5, "rtol": 1e-5}

# kind -> (rnnkit class, torch.nn class, constructor kwargs)
LAYERS = {
    "rnn_tanh": (rnnkit.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "gru": (rnnkit.GRU, nn.GRU, {}),
    "lstm": (rnnkit.LSTM, nn.LSTM, {}),
    "lstm_proj": (rnnkit.LSTM, nn.LSTM, {"proj_size": 2}),
}
KINDS = list(LAYERS)

# lengths for the variable-length modes (T = 5)
UNSORTED = [2, 5, 3]
SORTED = [5, 3, 2]
LENGTHS = [3, 5, 1]


# ----------------------------------------------------------------------------- helpers


def make_pair(kind, impl="native", seed=0, **kw):
    """(ours, theirs): the same layer in rnnkit and torch.nn, ours loaded from theirs (strict)."""
    ours_cls, theirs_cls, extra = LAYERS[kind]
    torch.manual_seed(seed)
    theirs = theirs_cls(I, H, dtype=DT, **extra, **kw)
    ours = ours_cls(I, H, dtype=DT, impl=impl, **extra, **kw)
    ours.load_state_dict(theirs.state_dict())  # strict=True
    return ours, theirs


def make_hx(layer, batch: int | None):
    """A random initial state for ``layer`` (a torch.nn layer), unbatched when batch is None."""
    dl = layer.num_layers * (2 if layer.bidirectional else 1)
    lead = (dl,) if batch is None else (dl, batch)
    if isinstance(layer, nn.LSTM):
        out = layer.proj_size or layer.hidden_size
        return (torch.randn(*lead, out, dtype=DT), torch.randn(*lead, layer.hidden_size, dtype=DT))
    return torch.randn(*lead, layer.hidden_size, dtype=DT)


def leaf(t):
    """A fresh leaf copy (or tuple of them) that requires grad."""
    if isinstance(t, tuple):
        return tuple(leaf(p) for p in t)
    return t.detach().clone().requires_grad_(True)


def flat(x) -> list:
    if x is None:
        return []
    if isinstance(x, PackedSequence):
        return [x.data]
    if isinstance(x, tuple | list):
        return [t for part in x for t in flat(part)]
    return [x]


def weighted_loss(out, state):
    """(out * w1).sum() + (h_n * w2).sum() [+ (c_n * w3).sum()] with fixed random weights,
    so every output element and every state element matters."""
    g = torch.Generator().manual_seed(1234)
    total = 0.0
    for t in flat(out) + flat(state):
        total = total + (t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum()
    return total


def grads(t) -> list:
    return [p.grad for p in flat(t)]


def assert_same_outputs(a, b):
    if isinstance(b, PackedSequence):
        assert isinstance(a, PackedSequence)
        assert_close(a.data, b.data, **TOL)
        assert torch.equal(a.batch_sizes, b.batch_sizes)
        for name in ("sorted_indices", "unsorted_indices"):
            ia, ib = getattr(a, name), getattr(b, name)
            assert (ia is None) == (ib is None), name
            if ib is not None:
                assert torch.equal(ia, ib), name
    else:
        assert not isinstance(a, PackedSequence)
        assert a.shape == b.shape
        assert_close(a, b, **TOL)


def assert_same_states(a, b):
    fa, fb = flat(a), flat(b)
    assert len(fa) == len(fb)
    for sa, sb in zip(fa, fb, strict=True):
        assert sa.shape == sb.shape
        assert_close(sa, sb, **TOL)


def assert_same_param_grads(ours, theirs):
    mine = dict(ours.named_parameters())
    ref = dict(theirs.named_parameters())
    assert mine.keys() == ref.keys()
    for name, p in ref.items():
        assert p.grad is not None, name
        assert mine[name].grad is not None, name
        assert_close(mine[name].grad, p.grad, **TOL, msg=lambda m, name=name: f"{name}: {m}")


def pack(x, lengths, batch_first, enforce_sorted):
    return pack_padded_sequence(
        x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted
    )


def run(model, x, hx, mode, batch_first, reference):
    """Run ``model`` on x (padded) in the given input mode. With ``lengths`` the torch.nn
    reference runs the packed equivalent, padded back with total_length=T."""
    if mode == "padded":
        return model(x, hx)
    if mode == "packed_unsorted":
        return model(pack(x, UNSORTED, batch_first, False), hx)
    if mode == "packed_sorted":
        return model(pack(x, SORTED, batch_first, True), hx)
    assert mode == "lengths"
    if not reference:
        return model(x, hx, lengths=torch.tensor(LENGTHS))
    out, state = model(pack(x, LENGTHS, batch_first, False), hx)
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return out, state


def compare(ours, theirs, x, hx, ours_fn, theirs_fn):
    """Run both on separate leaf copies of x and hx; compare outputs, states and all gradients."""
    xo, xt = leaf(x), leaf(x)
    ho, ht = (leaf(hx), leaf(hx)) if hx is not None else (None, None)
    out_o, st_o = ours_fn(ours, xo, ho)
    out_t, st_t = theirs_fn(theirs, xt, ht)
    assert_same_outputs(out_o, out_t)
    assert_same_states(st_o, st_t)
    weighted_loss(out_o, st_o).backward()
    weighted_loss(out_t, st_t).backward()
    assert_close(xo.grad, xt.grad, **TOL)
    for go, gt in zip(grads(ho), grads(ht), strict=True):
        assert go is not None and gt is not None
        assert_close(go, gt, **TOL)
    assert_same_param_grads(ours, theirs)
    return out_o, st_o


# ----------------------------------------------------------------------------- rnnkit == torch.nn


@pytest.mark.parametrize("hx_given", [False, True], ids=["hx_none", "hx_given"])
@pytest.mark.parametrize("mode", ["padded", "packed_unsorted", "packed_sorted", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 3], ids=["L1", "L3"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_torch(kind, impl, num_layers, bidirectional, batch_first, mode, hx_given):
    ours, theirs = make_pair(
        kind, impl, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    )
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=DT)
    hx = make_hx(theirs, B) if hx_given else None
    compare(
        ours,
        theirs,
        x,
        hx,
        lambda m, x, h: run(m, x, h, mode, batch_first, reference=False),
        lambda m, x, h: run(m, x, h, mode, batch_first, reference=True),
    )


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_lengths_shorter_than_input_pads_with_zeros(kind, impl, bidirectional):
    """max(lengths) < T: the output is zero-padded up to T, as pad_packed_sequence(total_length)."""
    ours, theirs = make_pair(kind, impl, num_layers=2, bidirectional=bidirectional)
    x = torch.randn(T, B, I, dtype=DT)
    lengths = [2, 4, 1]

    def theirs_fn(m, x, h):
        out, state = m(pack(x, lengths, False, False), h)
        return pad_packed_sequence(out, total_length=T)[0], state

    out, _ = compare(
        ours, theirs, x, make_hx(theirs, B), lambda m, x, h: m(x, h, lengths=lengths), theirs_fn
    )
    assert out.shape[0] == T
    for b, n in enumerate(lengths):
        assert torch.all(out[n:, b] == 0)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("hx_given", [False, True], ids=["hx_none", "hx_given"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_matches_torch(kind, impl, hx_given, num_layers, bidirectional):
    ours, theirs = make_pair(kind, impl, num_layers=num_layers, bidirectional=bidirectional)
    x = torch.randn(T, I, dtype=DT)
    hx = make_hx(theirs, None) if hx_given else None
    out, state = compare(ours, theirs, x, hx, lambda m, x, h: m(x, h), lambda m, x, h: m(x, h))
    d = 2 if bidirectional else 1
    assert out.dim() == 2 and all(s.dim() == 2 for s in flat(state))
    assert flat(state)[0].shape[0] == d * num_layers


@pytest.mark.parametrize("mode", ["padded", "lengths"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_no_bias_matches_torch(kind, impl, mode):
    ours, theirs = make_pair(kind, impl, num_layers=2, bidirectional=True, bias=False)
    assert not any("bias" in n for n, _ in ours.named_parameters())
    x = torch.randn(T, B, I, dtype=DT)
    compare(
        ours,
        theirs,
        x,
        make_hx(theirs, B),
        lambda m, x, h: run(m, x, h, mode, False, reference=False),
        lambda m, x, h: run(m, x, h, mode, False, reference=True),
    )


@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_eval_mode_matches_torch(kind, impl):
    ours, theirs = make_pair(kind, impl, num_layers=3, dropout=0.5, bidirectional=True)
    ours.eval()
    theirs.eval()
    x = torch.randn(T, B, I, dtype=DT)
    compare(ours, theirs, x, make_hx(theirs, B), lambda m, x, h: m(x, h), lambda m, x, h: m(x, h))


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_train_mode_native_matches_torch_with_same_seed(kind):
    ours, theirs = make_pair(kind, "native", num_layers=2, dropout=0.5)
    x = torch.randn(T, B, I, dtype=DT)
    torch.manual_seed(7)
    out_o, st_o = ours(x)
    torch.manual_seed(7)
    out_t, st_t = theirs(x)
    assert_close(out_o, out_t, **TOL)
    assert_same_states(st_o, st_t)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_train_mode_loop_changes_outputs(kind):
    ours, _ = make_pair(kind, "loop", num_layers=3, dropout=0.5)
    x = torch.randn(T, B, I, dtype=DT)
    ours.eval()
    out_eval, st_eval = ours(x)
    ours.train()
    torch.manual_seed(3)
    out_a, st_a = ours(x)
    torch.manual_seed(4)
    out_b, _ = ours(x)
    torch.manual_seed(3)
    out_a2, _ = ours(x)
    assert not torch.allclose(out_a, out_eval, atol=1e-3)
    assert not torch.allclose(flat(st_a)[-1], flat(st_eval)[-1], atol=1e-3)
    assert not torch.allclose(out_a, out_b, atol=1e-3)  # a fresh mask each call
    assert_close(out_a, out_a2, atol=0, rtol=0)  # and it follows torch's RNG
    # the first layer's state is computed before any dropout is applied
    assert_close(flat(st_a)[0][0], flat(st_eval)[0][0], **TOL)


@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_not_applied_after_last_layer(kind, impl):
    with pytest.warns(UserWarning, match="dropout"):
        ours, theirs = make_pair(kind, impl, num_layers=1, dropout=0.5)
    x = torch.randn(T, B, I, dtype=DT)
    ours.train()
    out_train, _ = ours(x)
    ours.eval()
    out_eval, _ = ours(x)
    assert_close(out_train, out_eval, **TOL)
    assert_close(out_eval, theirs(x)[0], **TOL)


# ----------------------------------------------------------------------------- loop == native


@pytest.mark.parametrize("mode", ["padded", "packed_unsorted", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", KINDS)
def test_loop_equals_native(kind, bidirectional, mode):
    loop, _ = make_pair(kind, "loop", num_layers=2, bidirectional=bidirectional)
    native, _ = make_pair(kind, "native", num_layers=2, bidirectional=bidirectional)
    auto, _ = make_pair(kind, "auto", num_layers=2, bidirectional=bidirectional)
    x = torch.randn(T, B, I, dtype=DT)
    hx = make_hx(native, B)

    def fn(m, x, h):
        return run(m, x, h, mode, False, reference=False)

    compare(loop, native, x, hx, fn, fn)
    native.zero_grad()
    compare(auto, native, x, hx, fn, fn)


# ----------------------------------------------------------------------------- carried state


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_carrying_state_across_halves_equals_one_pass(kind, impl, num_layers, batch_first):
    layer, _ = make_pair(kind, impl, num_layers=num_layers, batch_first=batch_first)
    dim = 1 if batch_first else 0
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=DT)
    hx = make_hx(layer, B)
    whole_out, whole_state = layer(x, hx)
    first, second = x.split([2, T - 2], dim=dim)
    out1, state1 = layer(first, hx)
    out2, state2 = layer(second, state1)
    assert_close(torch.cat([out1, out2], dim=dim), whole_out, **TOL)
    assert_same_states(state2, whole_state)


@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_carrying_state_across_halves_unbatched(kind, impl):
    layer, _ = make_pair(kind, impl, num_layers=2)
    x = torch.randn(T, I, dtype=DT)
    whole_out, whole_state = layer(x)
    out1, state1 = layer(x[:3])
    out2, state2 = layer(x[3:], state1)
    assert_close(torch.cat([out1, out2]), whole_out, **TOL)
    assert_same_states(state2, whole_state)


# ----------------------------------------------------------------------------- Recurrent

# kind -> (cell factory (input_size) -> cell, torch.nn layer class, layer kwargs)
CELLS = {
    "rnnkit_lstm": (lambda i: rnnkit.LSTMCell(i, H, dtype=DT), nn.LSTM, {}),
    "rnnkit_gru": (lambda i: rnnkit.GRUCell(i, H, dtype=DT), nn.GRU, {}),
    "rnnkit_rnn_tanh": (lambda i: rnnkit.RNNCell(i, H, dtype=DT), nn.RNN, {}),
    "rnnkit_rnn_relu": (
        lambda i: rnnkit.RNNCell(i, H, nonlinearity="relu", dtype=DT),
        nn.RNN,
        {"nonlinearity": "relu"},
    ),
    "torch_gru": (lambda i: nn.GRUCell(i, H, dtype=DT), nn.GRU, {}),
    "torch_lstm": (lambda i: nn.LSTMCell(i, H, dtype=DT), nn.LSTM, {}),
}
CELL_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _suffix(k, num_directions):
    layer, d = divmod(k, num_directions)
    return f"_l{layer}" + ("_reverse" if d == 1 else "")


def copy_into_cells(rec, ref):
    """Load the torch.nn layer's weights for (layer, direction) k into rec.cells[k] (strict)."""
    d = 2 if ref.bidirectional else 1
    assert len(rec.cells) == ref.num_layers * d
    for k, cell in enumerate(rec.cells):
        sfx = _suffix(k, d)
        cell.load_state_dict({n: getattr(ref, n + sfx).detach().clone() for n in CELL_PARAMS})


def assert_cell_grads_match(rec, ref):
    d = 2 if ref.bidirectional else 1
    for k, cell in enumerate(rec.cells):
        sfx = _suffix(k, d)
        for n in CELL_PARAMS:
            assert_close(getattr(cell, n).grad, getattr(ref, n + sfx).grad, **TOL)


def states_to_torch(finals, is_lstm):
    """Recurrent's list of per-(layer, direction) states -> torch's h_n or (h_n, c_n)."""
    if is_lstm:
        return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])
    return torch.stack(finals)


def hx_to_list(hx, is_lstm):
    if is_lstm:
        return list(zip(hx[0].unbind(0), hx[1].unbind(0), strict=True))
    return list(hx.unbind(0))


@pytest.mark.parametrize("hx_given", [False, True], ids=["hx_none", "hx_given"])
@pytest.mark.parametrize("mode", ["padded", "packed_unsorted", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_recurrent_with_cell_factory_matches_torch(cell, num_layers, bidirectional, mode, hx_given):
    factory, ref_cls, extra = CELLS[cell]
    torch.manual_seed(0)
    ref = ref_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, dtype=DT, **extra)
    rec = rnnkit.Recurrent(
        factory, num_layers=num_layers, input_size=I, bidirectional=bidirectional
    )
    copy_into_cells(rec, ref)
    is_lstm = ref_cls is nn.LSTM
    x = torch.randn(T, B, I, dtype=DT)
    hx = make_hx(ref, B) if hx_given else None

    def ours_fn(m, x, h):
        out, finals = run(m, x, None if h is None else hx_to_list(h, is_lstm), mode, False, False)
        d = 2 if bidirectional else 1
        assert isinstance(finals, list) and len(finals) == num_layers * d
        return out, states_to_torch(finals, is_lstm)

    def theirs_fn(m, x, h):
        return run(m, x, h, mode, False, reference=True)

    xo, xt = leaf(x), leaf(x)
    ho, ht = (leaf(hx), leaf(hx)) if hx_given else (None, None)
    out_o, st_o = ours_fn(rec, xo, ho)
    out_t, st_t = theirs_fn(ref, xt, ht)
    assert_same_outputs(out_o, out_t)
    assert_same_states(st_o, st_t)
    weighted_loss(out_o, st_o).backward()
    weighted_loss(out_t, st_t).backward()
    assert_close(xo.grad, xt.grad, **TOL)
    for go, gt in zip(grads(ho), grads(ht), strict=True):
        assert_close(go, gt, **TOL)
    assert_cell_grads_match(rec, ref)


@pytest.mark.parametrize("cell", ["rnnkit_gru", "torch_lstm"])
def test_recurrent_batch_first_matches_torch(cell):
    factory, ref_cls, extra = CELLS[cell]
    torch.manual_seed(0)
    ref = ref_cls(I, H, num_layers=2, bidirectional=True, batch_first=True, dtype=DT, **extra)
    rec = rnnkit.Recurrent(factory, 2, input_size=I, bidirectional=True, batch_first=True)
    copy_into_cells(rec, ref)
    x = torch.randn(B, T, I, dtype=DT)
    out, finals = rec(x, lengths=LENGTHS)
    ref_out, ref_state = ref(pack(x, LENGTHS, True, False))
    ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=T)
    assert_close(out, ref_out, **TOL)
    assert_same_states(states_to_torch(finals, ref_cls is nn.LSTM), ref_state)


@pytest.mark.parametrize("cell", list(CELLS))
def test_recurrent_single_cell_bidirectional(cell):
    """A single cell module: the reverse direction is a fresh, re-initialised copy."""
    factory, ref_cls, extra = CELLS[cell]
    torch.manual_seed(0)
    ref = ref_cls(I, H, bidirectional=True, dtype=DT, **extra)
    rec = rnnkit.Recurrent(factory(I), bidirectional=True)
    assert len(rec.cells) == 2 and rec.cells[0] is not rec.cells[1]
    assert not torch.equal(rec.cells[0].weight_hh, rec.cells[1].weight_hh)
    copy_into_cells(rec, ref)
    x = torch.randn(T, B, I, dtype=DT)
    out, finals = rec(x, lengths=LENGTHS)
    ref_out, ref_state = ref(pack(x, LENGTHS, False, False))
    ref_out, _ = pad_packed_sequence(ref_out, total_length=T)
    assert_close(out, ref_out, **TOL)
    assert_same_states(states_to_torch(finals, ref_cls is nn.LSTM), ref_state)


def test_recurrent_single_cell_with_num_layers_2_needs_factory():
    with pytest.raises(ValueError, match="factory"):
        rnnkit.Recurrent(rnnkit.LSTMCell(I, H), num_layers=2)
    with pytest.raises(ValueError, match="factory"):
        rnnkit.Recurrent(nn.GRUCell(I, H), num_layers=2, bidirectional=True)


def test_recurrent_factory_needs_input_size():
    with pytest.raises(ValueError, match="input_size"):
        rnnkit.Recurrent(lambda i: rnnkit.GRUCell(i, H), num_layers=2)


def test_recurrent_wrong_number_of_states():
    rec = rnnkit.Recurrent(lambda i: rnnkit.GRUCell(i, H), 2, input_size=I, bidirectional=True)
    with pytest.raises(ValueError, match="Expected 4, got 3"):
        rec(torch.randn(T, B, I), [torch.zeros(B, H)] * 3)


def test_recurrent_deeper_layers_read_directions_times_hidden():
    rec = rnnkit.Recurrent(lambda i: rnnkit.LSTMCell(i, H), 3, input_size=I, bidirectional=True)
    assert [c.input_size for c in rec.cells] == [I, I, 2 * H, 2 * H, 2 * H, 2 * H]


# ----------------------------------------------------------------------------- plan and impl


@pytest.mark.parametrize("kind", KINDS)
def test_plan(kind):
    from rnnkit.extension import load as built

    auto = "fused" if kind == "gru" and built() else "native"  # the faster CPU GRU
    for impl, start in (("auto", auto), ("native", "native"), ("loop", "loop")):
        layer, _ = make_pair(kind, impl)
        text = layer.plan()
        assert isinstance(text, str) and text.startswith(start), text
        assert layer.plan(torch.randn(T, B, I, dtype=DT)).startswith(start)
    default = LAYERS[kind][0](I, H)
    assert default.impl == "auto" and default.plan().startswith(auto)
    with torch.no_grad():  # inference: torch's kernel
        assert default.plan().startswith("native")
    assert default.eval().plan().startswith("native")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_picks_the_fused_gru_which_equals_torch(dtype):
    """impl='auto' trains a plain CPU GRU on rnnkit's fused path: outputs, final state and every
    gradient equal torch.nn.GRU's with copied weights; double backward names impl='native'."""
    from rnnkit.extension import load as built

    if not built():
        pytest.skip("the C++ loops are not built: auto keeps torch's kernel")
    torch.manual_seed(3)
    theirs = nn.GRU(6, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype)
    ours = rnnkit.GRU(6, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    assert ours.plan().startswith("fused") and "impl='native'" in ours.plan()
    x = torch.randn(4, 7, 6, dtype=dtype)
    h0 = torch.randn(4, 4, 5, dtype=dtype)
    xs, hs = leaf(x), leaf(h0)
    (y1, h1), (y2, h2) = ours(xs, hs), theirs(x.clone().requires_grad_(True), h0.clone())
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
    assert_close(y1, y2, **tol)
    assert_close(h1, h2, **tol)
    xt, ht = leaf(x), leaf(h0)
    y2, h2 = theirs(xt, ht)
    w = torch.randn_like(y1)
    (y1 * w).sum().add(h1.square().sum()).backward()
    (y2 * w).sum().add(h2.square().sum()).backward()
    assert_close(xs.grad, xt.grad, **tol)
    assert_close(hs.grad, ht.grad, **tol)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert_close(a.grad, b.grad, **tol, msg=name)
    x2 = leaf(x)
    with pytest.raises(RuntimeError, match="cannot be differentiated again.*impl='native'"):
        torch.autograd.grad(ours(x2)[0].sum(), x2, create_graph=True)
    ours.impl = "native"
    (gx,) = torch.autograd.grad(ours(x2)[0].sum(), x2, create_graph=True)
    gx.sum().backward()  # torch's kernel supports it


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU])
def test_bad_impl_lists_choices(cls):
    with pytest.raises(ValueError, match=r"impl must be one of .*auto.*native.*loop.*'fast'"):
        cls(I, H, impl="fast")


@pytest.mark.parametrize("cls", [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU])
def test_layers_keep_torch_contract(cls):
    layer = cls(I, H, num_layers=2, bidirectional=True)
    ref = getattr(nn, cls.__name__)(I, H, num_layers=2, bidirectional=True)
    assert isinstance(layer, getattr(nn, cls.__name__))
    assert layer.state_dict().keys() == ref.state_dict().keys()
    ref.load_state_dict(layer.state_dict())  # and back, strict


# ----------------------------------------------------------------------------- error messages


@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_error_input_dims(kind, impl):
    layer, _ = make_pair(kind, impl)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        layer(torch.randn(2, T, B, I, dtype=DT))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 1D"):
        layer(torch.randn(I, dtype=DT))


@pytest.mark.parametrize("impl", ["native", "fused", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_error_empty_sequence(kind, impl):
    """T = 0 is refused up front, as torch.nn does, not with an IndexError from a loop."""
    layer, _ = make_pair(kind, impl)
    with pytest.raises(ValueError, match=r"sequence length to be larger than 0.*\(0, 3, 4\)"):
        layer(torch.randn(0, B, I, dtype=DT))
    bf = type(layer)(I, H, batch_first=True, dtype=DT, impl=impl)
    with pytest.raises(ValueError, match="time is dimension 1, batch_first=True"):
        bf(torch.randn(B, 0, I, dtype=DT))


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_error_empty_sequence_min_layers(cls):
    with pytest.raises(ValueError, match="sequence length to be larger than 0"):
        cls(I, H)(torch.randn(0, B, I))


@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_error_feature_size(kind, impl):
    layer, _ = make_pair(kind, impl)
    x = torch.randn(T, B, 7, dtype=DT)
    match = "input_size. Expected 4, got 7"
    with pytest.raises(ValueError, match=match):
        layer(x)
    with pytest.raises(ValueError, match=match):
        layer(x[:, 0])  # unbatched
    with pytest.raises(ValueError, match=match):
        layer(x, lengths=[5, 2, 3])
    with pytest.raises(ValueError, match=match):
        layer(pack(x, UNSORTED, False, False))


@pytest.mark.parametrize("lengths", [False, True], ids=["padded", "lengths"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", ["rnn_tanh", "gru"])
def test_error_hx_shape(kind, impl, lengths):
    layer, _ = make_pair(kind, impl, num_layers=2)
    x = torch.randn(T, B, I, dtype=DT)
    kw = {"lengths": [5, 2, 3]} if lengths else {}
    for bad in [(1, B, H), (2, B + 1, H), (2, B, H + 1), (2, H)]:
        with pytest.raises(ValueError, match=r"Expected hx size \(2, 3, 3\), got"):
            layer(x, torch.zeros(bad, dtype=DT), **kw)
    with pytest.raises(TypeError, match="hx must be a Tensor"):
        layer(x, [torch.zeros(2, B, H, dtype=DT)], **kw)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", ["rnn_tanh", "gru"])
def test_error_hx_shape_packed_and_unbatched(kind, impl, packed):
    layer, _ = make_pair(kind, impl, bidirectional=True)
    if packed:
        x, bad, expected = (
            pack(torch.randn(T, B, I, dtype=DT), UNSORTED, False, False),
            (2, H),
            (2, 3, 3),
        )
    else:
        x, bad, expected = torch.randn(T, I, dtype=DT), (2, B, H), (2, 3)
    expected = "\\(" + ", ".join(map(str, expected)) + "\\)"
    with pytest.raises(ValueError, match=f"Expected hx size {expected}, got"):
        layer(x, torch.zeros(bad, dtype=DT))


@pytest.mark.parametrize("lengths", [False, True], ids=["padded", "lengths"])
@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", ["lstm", "lstm_proj"])
def test_error_lstm_hx_shape(kind, impl, lengths):
    layer, _ = make_pair(kind, impl, num_layers=2)
    out = layer.proj_size or H
    x = torch.randn(T, B, I, dtype=DT)
    kw = {"lengths": [5, 2, 3]} if lengths else {}
    h0, c0 = torch.zeros(2, B, out, dtype=DT), torch.zeros(2, B, H, dtype=DT)
    with pytest.raises(ValueError, match=rf"Expected hidden h_0 size \(2, 3, {out}\), got \(1, "):
        layer(x, (h0[:1], c0), **kw)
    with pytest.raises(ValueError, match=r"Expected cell c_0 size \(2, 3, 3\), got \(2, 3, 5\)"):
        layer(x, (h0, torch.zeros(2, B, 5, dtype=DT)), **kw)
    with pytest.raises(ValueError, match=r"hx must be a tuple \(h_0, c_0\)"):
        layer(x, h0, **kw)
    layer(x, (h0, c0), **kw)  # the right shapes pass


@pytest.mark.parametrize("impl", ["native", "loop"])
@pytest.mark.parametrize("kind", KINDS)
def test_error_lengths(kind, impl):
    layer, _ = make_pair(kind, impl, batch_first=True)
    x = torch.randn(B, T, I, dtype=DT)
    with pytest.raises(ValueError, match=r"Expected shape \(3,\), got \(2,\)"):
        layer(x, lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match=r"Expected shape \(3,\), got \(3, 1\)"):
        layer(x, lengths=torch.tensor([[5], [2], [3]]))
    with pytest.raises(ValueError, match="between 1 and the sequence length 5, got lengths from 0"):
        layer(x, lengths=torch.tensor([5, 0, 3]))
    with pytest.raises(ValueError, match="between 1 and the sequence length 5, got .* to 6"):
        layer(x, lengths=torch.tensor([5, 6, 3]))
    with pytest.raises(ValueError, match="lengths must hold integers"):
        layer(x, lengths=torch.tensor([5.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="lengths= needs batched 3D input"):
        layer(x[0], lengths=torch.tensor([5]))
    with pytest.raises(ValueError, match="either a PackedSequence or lengths=, not both"):
        layer(pack(x, UNSORTED, True, False), lengths=torch.tensor(UNSORTED))
    with pytest.raises(TypeError, match="input must be a Tensor or a PackedSequence"):
        layer(x.tolist(), lengths=[5, 2, 3])


def test_error_lengths_recurrent():
    rec = rnnkit.Recurrent(rnnkit.GRUCell(I, H))
    with pytest.raises(ValueError, match="between 1 and the sequence length 5"):
        rec(torch.randn(T, B, I), lengths=[0, 1, 2])
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        rec(torch.randn(1, T, B, I))
    with pytest.raises(ValueError, match="Expected 4, got 7"):
        rec(torch.randn(T, B, 7))
