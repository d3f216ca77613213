"""Cell variants against straightforward implementations of their papers' equations.

The references below are written from the papers, step by step, with nothing from rnnkit but
the parameters they read. The dropout-style masks a layer draws are recorded (by wrapping
`rnnkit.variants`' mask functions where rnnkit.layers.base calls them) and replayed in the
reference, so the equations are checked with the very masks that were used.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import rnnkit
import rnnkit.layers.base

DT = torch.float64
T, B, I, H = 5, 3, 4, 3
TOL = {"atol": 1e-9, "rtol": 1e-9}
LENGTHS = [3, 5, 1]
IMPLS = ["loop", "auto"]  # auto: the fast path whenever a variant changes the function


# ----------------------------------------------------------------------------- references


def sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def layer_norm(x, gain, shift=None, eps=1e-5):
    """Ba et al. 2016, eq. 4: (x - mu) / sqrt(var + eps) * gain + shift, over the features."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps) * gain
    return y if shift is None else y + shift


def mix(new, old, d):
    """Zoneout, Krueger et al. 2017 eq. 3-4: d * old + (1 - d) * new."""
    d = d.to(new.dtype) if isinstance(d, torch.Tensor) else d
    return d * old + (1 - d) * new


def ref_lstm_step(x, h, c, p, opt, m):
    """One LSTM step with every variant, straight from the equations. p: parameters by short
    name; opt: the switches; m: this step's masks (h_mask, W_hh, d_h, d_c)."""
    ax = x @ p["W_ih"].T
    ah = (h if m["h_mask"] is None else h * m["h_mask"]) @ m["W_hh"].T
    if opt.get("layer_norm"):
        ax, ah = layer_norm(ax, p["g_ih"]), layer_norm(ah, p["g_hh"])
    s = ax + ah + p["b_ih"] + p["b_hh"]
    s_i, s_f, s_g, s_o = s.split(H, dim=-1)
    if opt.get("peephole"):
        w_ci, w_cf, w_co = p["w_ch"].split(H)
        s_i, s_f = s_i + w_ci * c, s_f + w_cf * c
    i, f, g = sigmoid(s_i), sigmoid(s_f), torch.tanh(s_g)
    c_new = f * c + i * g
    if opt.get("peephole"):
        s_o = s_o + w_co * c_new
    o = sigmoid(s_o)
    c_out = layer_norm(c_new, p["g_c"], p["b_c"]) if opt.get("layer_norm") else c_new
    h_new = o * torch.tanh(c_out)
    if "W_hr" in p:
        h_new = h_new @ p["W_hr"].T
    if m["d_h"] is not None:
        h_new = mix(h_new, h, m["d_h"])
    if m["d_c"] is not None:
        c_new = mix(c_new, c, m["d_c"])
    return (h_new, c_new), torch.cat([i, f, g, o], -1)


def ref_gru_step(x, h, p, opt, m):
    ax = x @ p["W_ih"].T
    ah = (h if m["h_mask"] is None else h * m["h_mask"]) @ m["W_hh"].T
    if opt.get("layer_norm"):
        ax, ah = layer_norm(ax, p["g_ih"]), layer_norm(ah, p["g_hh"])
    ax, ah = ax + p["b_ih"], ah + p["b_hh"]
    r = sigmoid(ax[:, :H] + ah[:, :H])
    z = sigmoid(ax[:, H : 2 * H] + ah[:, H : 2 * H])
    n = torch.tanh(ax[:, 2 * H :] + r * ah[:, 2 * H :])
    h_new = (1 - z) * n + z * h
    if m["d_h"] is not None:
        h_new = mix(h_new, h, m["d_h"])
    return h_new, torch.cat([r, z, n], -1)


def ref_rnn_step(x, h, p, opt, m):
    ax = x @ p["W_ih"].T
    ah = (h if m["h_mask"] is None else h * m["h_mask"]) @ m["W_hh"].T
    if opt.get("layer_norm"):
        ax, ah = layer_norm(ax, p["g_ih"]), layer_norm(ah, p["g_hh"])
    h_new = torch.tanh(ax + ah + p["b_ih"] + p["b_hh"])
    if m["d_h"] is not None:
        h_new = mix(h_new, h, m["d_h"])
    return h_new, h_new


STEPS = {"LSTM": ref_lstm_step, "GRU": ref_gru_step, "RNN": ref_rnn_step}


def short_params(layer, sfx):
    names = {
        "W_ih": "weight_ih",
        "W_hh": "weight_hh",
        "b_ih": "bias_ih",
        "b_hh": "bias_hh",
        "W_hr": "weight_hr",
        "g_ih": "ln_weight_ih",
        "g_hh": "ln_weight_hh",
        "g_c": "ln_weight_c",
        "b_c": "ln_bias_c",
        "w_ch": "weight_ch",
    }
    return {k: getattr(layer, v + sfx) for k, v in names.items() if hasattr(layer, v + sfx)}


def ref_layer(layer, kind, x, state0, opt, masks, lengths=None):
    """A multi-layer, bidirectional reference over time-major x (t, b, i), replaying the
    recorded masks in the order the layer draws them per (layer, direction): weight drop,
    recurrent dropout, zoneout c, zoneout h. Returns output, final states, per-step states."""
    masks = list(masks)
    nd = 2 if layer.bidirectional else 1
    steps_fn, lstm = STEPS[kind], kind == "LSTM"
    finals, per_step = [], []
    for ell in range(layer.num_layers):
        outs = []
        for d in range(nd):
            k = ell * nd + d
            p = short_params(layer, f"_l{ell}" + ("_reverse" if d else ""))
            W_hh = p["W_hh"] * masks.pop(0) if opt.get("weight_drop_on") else p["W_hh"]
            h_mask = masks.pop(0) if opt.get("rd_on") else None
            d_c = masks.pop(0) if opt.get("zc_on") else opt.get("z_c")
            d_h = masks.pop(0) if opt.get("zh_on") else opt.get("z_h")
            state = state0[k]
            out = [None] * T
            record = [None] * T
            for t in range(T - 1, -1, -1) if d else range(T):
                m = {
                    "h_mask": h_mask,
                    "W_hh": W_hh,
                    "d_h": d_h[t] if isinstance(d_h, torch.Tensor) else d_h,
                    "d_c": d_c[t] if isinstance(d_c, torch.Tensor) else d_c,
                }
                if lstm:
                    new, gates = steps_fn(x[t], *state, p, opt, m)
                else:
                    new, gates = steps_fn(x[t], state, p, opt, m)
                if lengths is not None:  # padding: carry the state, output zero
                    valid = (torch.tensor(lengths) > t).unsqueeze(-1)
                    if lstm:
                        new = tuple(torch.where(valid, a, b) for a, b in zip(new, state))  # noqa: B905
                    else:
                        new = torch.where(valid, new, state)
                    gates = gates * valid
                state = new
                h_t = state[0] if lstm else state
                out[t] = h_t if lengths is None else h_t * valid
                record[t] = (state[1] if lstm else None, gates)
            outs.append(torch.stack(out))
            finals.append(state)
            per_step.append(record)
        x = torch.cat(outs, -1)
    assert not masks, "every recorded mask is used"
    return x, finals, per_step


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def recorded(monkeypatch):
    """The masks rnnkit.layers.base draws, in order."""
    seen = []
    originals = {n: getattr(rnnkit.layers.base, n) for n in ("variational_mask", "zoneout_keep")}

    def wrap(fn):
        def recorder(*args, **kw):
            out = fn(*args, **kw)
            if isinstance(out, torch.Tensor):
                seen.append(out.clone())
            return out

        return recorder

    for name, fn in originals.items():
        monkeypatch.setattr(rnnkit.layers.base, name, wrap(fn))
    return seen


CLASSES = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU, "RNN": rnnkit.RNN}


def make(kind, seed=0, randomize=True, **kw):
    torch.manual_seed(seed)
    layer = CLASSES[kind](I, H, dtype=DT, **kw)
    if randomize:  # layer-norm gains and shifts away from 1 and 0, so that they matter
        with torch.no_grad():
            for name, p in layer.named_parameters():
                if name.startswith("ln_"):
                    p.add_(0.3 * torch.randn_like(p))
    return layer


def initial(layer, kind, random=True):
    nd = 2 if layer.bidirectional else 1
    dl, out = layer.num_layers * nd, getattr(layer, "proj_size", 0) or H
    gen = torch.randn if random else torch.zeros
    h0 = gen(dl, B, out, dtype=DT)
    if kind == "LSTM":
        c0 = gen(dl, B, H, dtype=DT)
        return (h0, c0), list(zip(h0.unbind(0), c0.unbind(0), strict=True))
    return h0, list(h0.unbind(0))


def check_against_reference(kind, impl, opt, train, recorded, lengths=None, **kw):
    layer = make(kind, impl=impl, **kw)
    layer.train(train)
    x = torch.randn(T, B, I, dtype=DT)
    hx, states = initial(layer, kind)
    lengths_t = None if lengths is None else torch.tensor(lengths)
    out, final = layer(x, hx, lengths=lengths_t)
    ref_out, ref_finals, _ = ref_layer(layer, kind, x, states, opt, recorded, lengths)
    assert_close(out, ref_out, **TOL)
    if kind == "LSTM":
        assert_close(final[0], torch.stack([h for h, _ in ref_finals]), **TOL)
        assert_close(final[1], torch.stack([c for _, c in ref_finals]), **TOL)
    else:
        assert_close(final, torch.stack(ref_finals), **TOL)
    return layer


# ----------------------------------------------------------------------------- equations


SHAPES = [
    {"num_layers": 1},
    {"num_layers": 2, "bidirectional": True},
]


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("shape", SHAPES, ids=["L1", "L2bi"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_layer_norm_matches_paper(kind, impl, shape, lengths, recorded):
    opt = {"layer_norm": True}
    check_against_reference(kind, impl, opt, True, recorded, lengths, layer_norm=True, **shape)


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("shape", SHAPES, ids=["L1", "L2bi"])
@pytest.mark.parametrize("impl", IMPLS)
def test_peephole_matches_paper(impl, shape, lengths, recorded):
    check_against_reference(
        "LSTM", impl, {"peephole": True}, True, recorded, lengths, peephole=True, **shape
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_lstm_all_variants_together_with_projection(impl, recorded):
    opt = {"layer_norm": True, "peephole": True, "rd_on": True, "zc_on": True, "zh_on": True}
    opt["weight_drop_on"] = True
    check_against_reference(
        "LSTM",
        impl,
        opt,
        True,
        recorded,
        LENGTHS,
        layer_norm=True,
        peephole=True,
        recurrent_dropout=0.3,
        weight_drop=0.4,
        zoneout=(0.2, 0.5),
        proj_size=2,
        num_layers=2,
        bidirectional=True,
    )


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_recurrent_dropout_matches_gal(kind, impl, lengths, recorded):
    opt = {"rd_on": True}
    layer = check_against_reference(
        kind, impl, opt, True, recorded, lengths, recurrent_dropout=0.4, num_layers=2
    )
    # one mask per sequence and per (layer, direction): (b, h), not one per step
    assert [tuple(m.shape) for m in recorded] == [(B, H), (B, H)]
    assert all(set(m.unique().tolist()) <= {0.0, 1 / 0.6} for m in recorded)
    assert layer.plan().startswith(("fused", "loop"))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_zoneout_training_matches_krueger(kind, impl, recorded):
    opt = {"zh_on": True, "zc_on": kind == "LSTM"}
    check_against_reference(kind, impl, opt, True, recorded, LENGTHS, zoneout=0.5, num_layers=2)
    # fresh masks per step: (t, b, h) per (layer, direction), bool
    assert all(m.shape == (T, B, H) and m.dtype == torch.bool for m in recorded)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_zoneout_eval_uses_the_expectation(kind, impl, recorded):
    """In eval mode zoneout is deterministic: d is replaced by its expectation z (sec. 3)."""
    zc, zh = (0.3, 0.6) if kind == "LSTM" else (None, 0.6)
    opt = {"z_h": zh, "z_c": zc}
    kw = {"zoneout": (zc, zh) if kind == "LSTM" else zh}
    check_against_reference(kind, impl, opt, False, recorded, None, bidirectional=True, **kw)
    assert recorded == []


@pytest.mark.parametrize("impl", ["native", "loop", "auto"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_weight_drop_matches_dropconnect(kind, impl, recorded):
    layer = check_against_reference(
        kind, impl, {"weight_drop_on": True}, True, recorded, LENGTHS, weight_drop=0.5
    )
    assert [m.shape for m in recorded] == [layer.weight_hh_l0.shape]
    if impl == "native" or (impl == "auto" and kind != "GRU"):  # auto trains a GRU fused
        assert layer.plan().startswith("native") and "weight_drop" in layer.plan()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_weight_drop_native_equals_loop_and_gradients_reach_weight_hh(kind):
    """The same masks (same seed) on torch's kernel and on the loop give the same function."""
    results = []
    for impl in ("native", "loop"):
        layer = make(kind, seed=3, impl=impl, weight_drop=0.5, num_layers=2)
        x = torch.randn(T, B, I, dtype=DT, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(7)
        out, _ = layer(x)
        out.pow(2).sum().backward()
        results.append((out, layer.weight_hh_l1.grad))
    assert_close(results[0][0], results[1][0], **TOL)
    assert_close(results[0][1], results[1][1], **TOL)
    assert results[0][1].abs().sum() > 0


@pytest.mark.parametrize("impl", ["native", "loop", "auto"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_learn_init_is_trained_initial_state(kind, impl):
    layer = make(kind, impl=impl, learn_init=True, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for p in (layer.init_h, getattr(layer, "init_c", None)):
            if p is not None:
                p.normal_()
    x = torch.randn(T, B, I, dtype=DT)
    out, final = layer(x)
    hx = layer.init_h.unsqueeze(1).expand(-1, B, -1)
    if kind == "LSTM":
        hx = (hx, layer.init_c.unsqueeze(1).expand(-1, B, -1))
    ref_out, ref_final = layer(x, hx)
    assert_close(out, ref_out, **TOL)
    out.sum().backward()
    assert layer.init_h.grad is not None and layer.init_h.grad.abs().sum() > 0
    # unbatched input uses the same learned state
    out1, _ = layer(x[:, 0])
    assert_close(out1, out[:, 0], **TOL)


# ----------------------------------------------------------------------------- switched off


@pytest.mark.parametrize("impl", ["auto", "loop"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_switched_off_equals_torch_nn(kind, impl):
    """Every option at its off value is torch.nn's layer, exactly (same parameters)."""
    off = dict(layer_norm=False, orthogonal=False, learn_init=False)
    off.update(recurrent_dropout=0.0, weight_drop=0.0, zoneout=0.0)
    if kind == "LSTM":
        off.update(peephole=False, forget_bias=None)
    torch.manual_seed(0)
    ref = getattr(nn, kind)(I, H, num_layers=2, dtype=DT)
    ours = CLASSES[kind](I, H, num_layers=2, dtype=DT, impl=impl, **off)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I, dtype=DT)
    assert_close(ours(x)[0], ref(x)[0], **TOL)
    if impl == "auto":  # the plan of the layer without variants (a GRU trains fused)
        assert ours.plan() == CLASSES[kind](I, H, num_layers=2, dtype=DT).plan()
        assert ours.eval().plan().startswith("native")


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_peepholes_and_zero_rates_reduce_to_plain_lstm(impl):
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, dtype=DT)
    ours = rnnkit.LSTM(I, H, dtype=DT, impl=impl, peephole=True)
    ours.load_state_dict({**ref.state_dict(), "weight_ch_l0": torch.zeros(3 * H, dtype=DT)})
    x = torch.randn(T, B, I, dtype=DT)
    assert_close(ours(x)[0], ref(x)[0], **TOL)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_dropout_style_variants_are_identity_in_eval(kind):
    torch.manual_seed(0)
    ref = getattr(nn, kind)(I, H, num_layers=2, dtype=DT)
    ours = CLASSES[kind](I, H, num_layers=2, dtype=DT, recurrent_dropout=0.5, weight_drop=0.5)
    ours.load_state_dict(ref.state_dict())
    ours.eval()
    x = torch.randn(T, B, I, dtype=DT)
    assert_close(ours(x)[0], ref(x)[0], **TOL)
    assert ours.plan().startswith("native")
    ours.train()
    assert not torch.allclose(ours(x)[0], ref(x)[0])
    assert ours.plan().startswith(("fused", "loop"))


def test_masks_differ_between_sequences_and_between_layers(recorded):
    layer = make("LSTM", recurrent_dropout=0.5, num_layers=2)
    x = torch.randn(T, B, I, dtype=DT)
    layer(x)
    layer(x)
    assert len(recorded) == 4
    assert not torch.equal(recorded[0], recorded[2])  # a new sequence, a new mask
    assert not torch.equal(recorded[0], recorded[1])  # each layer its own


# ----------------------------------------------------------------------------- initialisation


def test_forget_bias_and_orthogonal_initialisation():
    layer = rnnkit.LSTM(I, H, num_layers=2, bidirectional=True, forget_bias=1.0, orthogonal=True)
    for name, p in layer.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(p[H : 2 * H] == 1.0)
        if name.startswith("bias_hh"):
            assert torch.all(p[H : 2 * H] == 0.0)
        if name.startswith("weight_hh"):
            for block in p.detach().split(H):
                assert_close(block @ block.T, torch.eye(H), atol=1e-5, rtol=0)
    # initialisation only: torch's kernel still computes the function
    assert layer.plan().startswith("native")
    layer.reset_parameters()
    assert torch.all(layer.bias_ih_l1[H : 2 * H] == 1.0)


def test_variant_parameters_names_and_initial_values():
    layer = rnnkit.LSTM(I, H, layer_norm=True, peephole=True, learn_init=True, bidirectional=True)
    names = dict(layer.named_parameters())
    for sfx in ("_l0", "_l0_reverse"):
        assert torch.equal(names["ln_weight_ih" + sfx], torch.ones(4 * H))
        assert torch.equal(names["ln_weight_hh" + sfx], torch.ones(4 * H))
        assert torch.equal(names["ln_weight_c" + sfx], torch.ones(H))
        assert torch.equal(names["ln_bias_c" + sfx], torch.zeros(H))
        w = names["weight_ch" + sfx]
        assert w.shape == (3 * H,) and 0 < w.abs().max() <= 1 / math.sqrt(H)
    assert names["init_h"].shape == (2, H) and names["init_c"].shape == (2, H)
    # torch.nn's parameters keep their names, so its state_dict loads (non-strict: ours has more)
    missing, unexpected = layer.load_state_dict(
        nn.LSTM(I, H, bidirectional=True).state_dict(), strict=False
    )
    assert unexpected == [] and all(n.startswith(("ln_", "weight_ch", "init_")) for n in missing)
    assert "layer_norm=True" in repr(layer)


# ----------------------------------------------------------------------------- per-step states


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_return_states_are_every_step(kind, recorded):
    layer = make(kind, num_layers=2, bidirectional=True, layer_norm=True, zoneout=0.3)
    x = torch.randn(T, B, I, dtype=DT)
    hx, states = initial(layer, kind)
    out, final, steps = layer(x, hx, lengths=torch.tensor(LENGTHS), return_states=True)
    opt = {"layer_norm": True, "zh_on": True, "zc_on": kind == "LSTM"}
    ref_out, _, ref_steps = ref_layer(layer, kind, x, states, opt, recorded, LENGTHS)
    assert_close(out, ref_out, **TOL)
    assert steps["h"].shape == (4, T, B, H)
    assert_close(steps["h"][2], out[..., :H], **TOL)  # last layer forward = output's first half
    gates = torch.stack([torch.stack([g for _, g in rec]) for rec in ref_steps])
    assert_close(steps["gates"], gates, **TOL)
    if kind == "LSTM":
        cs = torch.stack([torch.stack([c for c, _ in rec]) for rec in ref_steps])
        valid = (torch.arange(T).unsqueeze(1) < torch.tensor(LENGTHS)).unsqueeze(-1)
        assert_close(steps["c"], cs * valid, **TOL)
    assert layer.plan(return_states=True).startswith("loop")


# ----------------------------------------------------------------------------- cells


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_cells_match_reference_and_layers(kind, recorded):
    """A variant cell is one step of the same equations; Recurrent(cell) equals the layer."""
    kw = dict(layer_norm=True, recurrent_dropout=0.3, zoneout=0.4)
    if kind == "LSTM":
        kw.update(peephole=True)
    cell = getattr(rnnkit, kind + "Cell")(I, H, dtype=DT, **kw)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    layer = CLASSES[kind](I, H, dtype=DT, **kw)
    layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    x = torch.randn(T, B, I, dtype=DT)
    for train in (True, False):
        # same seed, same masks: except an LSTM's zoneout in training, where the cell draws
        # (c, h) per step and the layer (c for all steps, then h), so only eval mode compares
        cell.train(train), layer.train(train)
        if kind == "LSTM" and train:
            cell.variants = layer.variants = replace(layer.variants, zoneout_c=0, zoneout_h=0)
        torch.manual_seed(5)
        out, _ = rnnkit.Recurrent(cell)(x)
        torch.manual_seed(5)
        ref, _ = layer(x)
        assert_close(out, ref, **TOL)
        cell.variants = layer.variants = replace(layer.variants, zoneout_c=0.4, zoneout_h=0.4)


def test_cell_keeps_its_masks_until_reset():
    cell = rnnkit.LSTMCell(I, H, dtype=DT, recurrent_dropout=0.5, weight_drop=0.5)
    x = torch.randn(B, I, dtype=DT)
    state = cell(x)
    first = cell._masks
    state = cell(x, state)
    assert cell._masks is first  # the same masks at every step of a sequence
    cell.reset_masks()
    cell(x, state)
    assert cell._masks is not first
    cell.eval()
    ref = nn.LSTMCell(I, H, dtype=DT)
    ref.load_state_dict(cell.state_dict())
    assert_close(cell(x, state)[0], ref(x, state)[0], **TOL)  # identity in eval


def test_cell_learn_init():
    cell = rnnkit.GRUCell(I, H, learn_init=True)
    with torch.no_grad():
        cell.init_h.normal_()
    x = torch.randn(B, I)
    assert_close(cell(x), cell(x, cell.init_h.expand(B, H)))
    assert_close(cell.initial_state(B), cell.init_h.expand(B, H))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "kw", "match"),
    [
        (rnnkit.GRU, {"peephole": True}, "peephole=True needs an LSTM.*GRU has no cell state"),
        (rnnkit.RNN, {"forget_bias": 1.0}, "forget_bias .* RNN has no forget gate"),
        (rnnkit.LSTM, {"forget_bias": 1.0, "bias": False}, "forget_bias needs bias=True"),
        (rnnkit.GRU, {"zoneout": (0.1, 0.2)}, r"zoneout=\(z_c, z_h\).*GRU has no cell state"),
        (rnnkit.LSTM, {"zoneout": (0.1, 0.2, 0.3)}, "a rate or a pair"),
        (rnnkit.LSTM, {"recurrent_dropout": 1.0}, r"recurrent_dropout must be .* \[0, 1\)"),
        (rnnkit.GRU, {"weight_drop": -0.1}, r"weight_drop must be a probability"),
        (rnnkit.LSTM, {"zoneout": "high"}, "zoneout must be a probability"),
        (rnnkit.LSTM, {"layer_norm": 1}, "layer_norm must be True or False"),
        (rnnkit.LSTM, {"layer_norm": True, "impl": "native"}, "impl='native' cannot compute"),
        (rnnkit.GRU, {"zoneout": 0.1, "impl": "native"}, "cannot compute zoneout"),
        (rnnkit.LSTM, {"layernorm": True}, "unexpected keyword argument 'layernorm'.*layer_norm"),
        (rnnkit.GRUCell, {"peephole": True}, "GRUCell: peephole=True needs an LSTM"),
        (rnnkit.RNNCell, {"zoneout": (0.1, 0.1)}, "RNNCell: zoneout=.*no cell state"),
    ],
)
def test_bad_option_combinations(cls, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(I, H, **kw)


def test_return_states_needs_a_path_that_records():
    layer = rnnkit.LSTM(I, H, impl="native")
    with pytest.raises(ValueError, match="return_states=True needs impl='loop' or 'auto'"):
        layer(torch.randn(T, B, I), return_states=True)


def test_the_fast_zoneout_sampler_draws_bernoulli_masks():
    """A layer's whole-sequence zoneout mask on CPU comes from the compiled counter-based
    sampler: its rate is p (within 5 standard errors over 2^20 draws), neighbouring draws are
    independent (P(d_k d_k+1) = p^2), p = 0 and 1 are exact, and torch.manual_seed fixes the
    mask while another seed changes it."""
    from rnnkit import extension
    from rnnkit.variants import FAST_MASK_NUMEL, zoneout_keep

    if not extension.load():
        pytest.skip(f"the compiled library is not available: {extension.status()}")
    like = torch.empty(0)
    shape = (64, 128, 128)  # 2^20
    assert math.prod(shape) >= FAST_MASK_NUMEL
    n = math.prod(shape)
    for p in (0.1, 0.5, 0.9):
        d = zoneout_keep(p, shape, like, True).flatten().double()
        se = (p * (1 - p) / n) ** 0.5
        assert abs(d.mean().item() - p) < 5 * se
        pair = (d[:-1] * d[1:]).mean().item()
        assert abs(pair - p * p) < 5 * (p * p * (1 - p * p) / n) ** 0.5
    assert not zoneout_keep(0.0, shape, like, True).any()
    assert zoneout_keep(1.0, shape, like, True).all()
    torch.manual_seed(3)
    a = zoneout_keep(0.3, shape, like, True)
    torch.manual_seed(3)
    b = zoneout_keep(0.3, shape, like, True)
    torch.manual_seed(4)
    c = zoneout_keep(0.3, shape, like, True)
    assert a.dtype == torch.bool and torch.equal(a, b) and not torch.equal(a, c)
