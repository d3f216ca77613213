"""The fused fast path: gradcheck of every custom autograd Function in float64, and the fused
layers against the readable loop (values and every gradient) with the variants on."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence
from torch.testing import assert_close

import rnnkit
from rnnkit import extension
from rnnkit.fused import GRUFunction, LSTMFunction, RNNFunction
from rnnkit.fused_cpu import CppGRUFunction, CppLSTMFunction, CppRNNFunction

DT = torch.float64
T, B, I, H = 4, 2, 3, 2
TOL = {"atol": 1e-9, "rtol": 1e-9}


def cpp_loops_or_skip():
    """The C++ time loops must be there in CI (RNNKIT_REQUIRE_EXTENSION=1, set by .ci/run);
    elsewhere a machine without a compiler skips their tests (and runs the Python loops)."""
    if not extension.load():
        if os.environ.get("RNNKIT_REQUIRE_EXTENSION") == "1":
            pytest.fail(f"the C++ time loops are required here: {extension.status()}")
        pytest.skip(f"C++ time loops not available: {extension.status()}")


FUNCTIONS = {
    "python": {"LSTM": LSTMFunction, "GRU": GRUFunction, "RNN": RNNFunction},
    "cpp": {"LSTM": CppLSTMFunction, "GRU": CppGRUFunction, "RNN": CppRNNFunction},
}


@pytest.fixture(params=["python", "cpp"])
def time_loops(request, monkeypatch):
    """Run a test once on the Python time loops and once on the C++ ones."""
    if request.param == "cpp":
        cpp_loops_or_skip()
    else:
        monkeypatch.setattr(extension, "available", lambda t: False)
    return request.param


def check(fn, args, case):
    """gradcheck in float64; fast mode (random projections of the Jacobian) with layer norm,
    whose tiny per-step kernels make the full numerical Jacobian slow on a busy machine."""
    return gradcheck(fn, args, eps=1e-6, atol=1e-7, fast_mode=bool(case.get("ln")))


def masks(out_size, zoneout, lengths, T=T, B=B, DT=DT):
    """(h_mask, keep, out_mask) for a Function call: a dropout mask, zoneout masks (bool in
    training, a float in eval), and the padding of lengths (which keeps the state)."""
    h_mask = (torch.rand(B, out_size, dtype=DT) > 0.3).to(DT) / 0.7
    valid = (torch.arange(T).unsqueeze(1) < torch.tensor([T, 2] + [T - 1] * (B - 2))).unsqueeze(-1)
    keep = {"off": None, "train": torch.rand(T, B, out_size) < 0.4, "eval": 0.3}[zoneout]
    out_mask = None
    if lengths:
        keep = ~valid if keep is None else keep | ~valid if zoneout == "train" else keep
        if zoneout == "eval":
            keep = torch.where(valid, 0.3, 1.0).to(DT)
        out_mask = valid.to(DT)
    return h_mask, keep, out_mask


LSTM_CASES = [
    {},
    {"ln": True},
    {"peephole": True},
    {"proj": True},
    {"dropout": True},
    {"zoneout": "train", "lengths": True},
    {"zoneout": "eval"},
    {"ln": True, "peephole": True, "proj": True, "dropout": True, "zoneout": "train"},
]


def leaf(*shape, dtype=DT, scale=1.0):
    """A random tensor that requires grad."""
    return (torch.randn(*shape, dtype=dtype) * scale).requires_grad_(True)


def lstm_args(case, T=T, B=B, H=H, dtype=DT):
    """Arguments of an LSTM Function call for one case of LSTM_CASES."""
    P = 1 if case.get("proj") else H
    h_mask, keep, out_mask = masks(P, case.get("zoneout", "off"), case.get("lengths"), T, B, dtype)
    keep_c = None
    if case.get("zoneout") == "train":
        keep_c = torch.rand(T, B, H) < 0.4
    elif case.get("zoneout") == "eval":
        keep_c = 0.6
    if case.get("lengths"):
        valid = out_mask.bool()
        keep_c = ~valid if keep_c is None else keep_c | ~valid

    r = functools.partial(leaf, dtype=dtype)
    return (
        r(T, B, 4 * H),
        r(B, P),
        r(B, H),
        r(4 * H, P, scale=H**-0.5),
        r(P, H, scale=H**-0.5) if case.get("proj") else None,
        r(4 * H) if case.get("ln") else None,
        r(H) if case.get("ln") else None,
        r(H) if case.get("ln") else None,
        r(3 * H) if case.get("peephole") else None,
        h_mask if case.get("dropout") else None,
        keep,
        keep_c,
        out_mask,
    )


@pytest.mark.parametrize("loops", ["python", "cpp"])
@pytest.mark.parametrize("case", LSTM_CASES, ids=lambda c: "-".join(c) or "plain")
def test_gradcheck_lstm_function(case, loops):
    if loops == "cpp":
        cpp_loops_or_skip()
    torch.manual_seed(0)
    assert check(FUNCTIONS[loops]["LSTM"].apply, lstm_args(case), case)


GRU_CASES = [
    {},
    {"ln": True},
    {"nobias": True},
    {"dropout": True, "zoneout": "train", "lengths": True},
    {"ln": True, "zoneout": "eval", "lengths": True},
]


def gru_args(case, T=T, B=B, H=H, dtype=DT):
    h_mask, keep, out_mask = masks(H, case.get("zoneout", "off"), case.get("lengths"), T, B, dtype)

    r = functools.partial(leaf, dtype=dtype)
    return (
        r(T, B, 3 * H),
        r(B, H),
        r(3 * H, H, scale=H**-0.5),
        None if case.get("nobias") else r(3 * H),
        r(3 * H) if case.get("ln") else None,
        h_mask if case.get("dropout") else None,
        keep,
        out_mask,
    )


@pytest.mark.parametrize("loops", ["python", "cpp"])
@pytest.mark.parametrize("case", GRU_CASES, ids=lambda c: "-".join(c) or "plain")
def test_gradcheck_gru_function(case, loops):
    if loops == "cpp":
        cpp_loops_or_skip()
    torch.manual_seed(0)
    assert check(FUNCTIONS[loops]["GRU"].apply, gru_args(case), case)


RNN_CASES = [
    {},
    {"ln": True},
    {"dropout": True, "zoneout": "train", "lengths": True},
    {"ln": True, "zoneout": "eval"},
]


def rnn_args(case, relu, T=T, B=B, H=H, dtype=DT):
    h_mask, keep, out_mask = masks(H, case.get("zoneout", "off"), case.get("lengths"), T, B, dtype)

    r = functools.partial(leaf, dtype=dtype)
    return (
        r(T, B, H),
        r(B, H),
        r(H, H, scale=H**-0.5),
        r(H) if case.get("ln") else None,
        h_mask if case.get("dropout") else None,
        keep,
        out_mask,
        relu,
    )


@pytest.mark.parametrize("loops", ["python", "cpp"])
@pytest.mark.parametrize("relu", [False, True], ids=["tanh", "relu"])
@pytest.mark.parametrize("case", RNN_CASES, ids=lambda c: "-".join(c) or "plain")
def test_gradcheck_rnn_function(case, relu, loops):
    if loops == "cpp":
        cpp_loops_or_skip()
    torch.manual_seed(0)
    assert check(FUNCTIONS[loops]["RNN"].apply, rnn_args(case, relu), case)


def _cases_of_every_mode():
    for case in LSTM_CASES:
        yield "LSTM", case, lambda case, **kw: lstm_args(case, **kw)
    for case in GRU_CASES:
        yield "GRU", case, lambda case, **kw: gru_args(case, **kw)
    for case in RNN_CASES:
        for relu in (False, True):
            yield (
                "RNN",
                {**case, "relu": relu},
                lambda case, **kw: rnn_args(case, case["relu"], **kw),
            )


@pytest.mark.parametrize(
    ("mode", "case", "make"),
    list(_cases_of_every_mode()),
    ids=[f"{m}-{'-'.join(c) or 'plain'}" for m, c, _ in _cases_of_every_mode()],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_cpp_loops_equal_python_loops(mode, case, make, dtype):
    """The C++ loops against the Python ones at a size where float32 takes the vectorized
    (SLEEF) sigmoid and tanh, with an odd hidden size for the tails: values and gradients."""
    cpp_loops_or_skip()
    torch.manual_seed(0)
    args = make(case, T=9, B=5, H=37, dtype=dtype)
    tensors = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    results = []
    for loops in ("python", "cpp"):
        outs = FUNCTIONS[loops][mode].apply(*args)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=dtype)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, tensors)))
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else TOL
    for a, b in zip(results[0][0], results[1][0], strict=True):
        assert_close(b, a, **tol)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert_close(b, a, **tol)


# ----------------------------------------------------------------------------- layers


def run_both(cls, kw, mode="padded", train=True):
    """The same layer on the loop and on the fused path, same seed (so the same masks):
    outputs, final states and every gradient (input, hx, parameters)."""
    results = []
    for impl in ("loop", "fused"):
        torch.manual_seed(0)
        layer = cls(I, H, dtype=DT, impl=impl, **kw)
        with torch.no_grad():
            for name, p in layer.named_parameters():
                if name.startswith("ln_"):
                    p.add_(0.2 * torch.randn_like(p))
        layer.train(train)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(5, 3, I, dtype=DT, generator=g).requires_grad_(True)
        torch.manual_seed(2)
        lengths = torch.tensor([3, 5, 1])
        if mode == "packed":
            out, state = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
            out = out.data
        elif mode == "lengths":
            out, state = layer(x, lengths=lengths)
        else:
            out, state = layer(x)
        flat = [out] + (list(state) if isinstance(state, tuple) else [state])
        loss = sum((t * torch.randn(t.shape, dtype=DT, generator=g)).sum() for t in flat)
        loss.backward()
        grads = {n: p.grad for n, p in layer.named_parameters()}
        results.append((flat, x.grad, grads))
    (fa, xa, ga), (fb, xb, gb) = results
    for a, b in zip(fa, fb, strict=True):
        assert_close(a, b, **TOL)
    assert_close(xa, xb, **TOL)
    assert ga.keys() == gb.keys()
    for name in ga:
        assert_close(ga[name], gb[name], **TOL, msg=name)


EVERYTHING = dict(layer_norm=True, recurrent_dropout=0.3, weight_drop=0.3, zoneout=0.3)


@pytest.mark.parametrize("mode", ["padded", "lengths", "packed"])
@pytest.mark.parametrize(
    ("cls", "kw"),
    [
        (rnnkit.LSTM, {}),
        (rnnkit.LSTM, {"proj_size": 1, "peephole": True, **EVERYTHING}),
        (rnnkit.LSTM, {"peephole": True, "zoneout": (0.2, 0.4), "learn_init": True}),
        (rnnkit.GRU, {}),
        (rnnkit.GRU, EVERYTHING),
        (rnnkit.GRU, {"bias": False, "layer_norm": True}),
        (rnnkit.RNN, EVERYTHING),
        (rnnkit.RNN, {"nonlinearity": "relu", **EVERYTHING}),
    ],
    ids=["lstm", "lstm-all", "lstm-peep", "gru", "gru-all", "gru-nobias", "rnn", "rnn-relu"],
)
def test_fused_layer_equals_loop(cls, kw, mode, time_loops):
    run_both(cls, {"num_layers": 2, "bidirectional": True, "dropout": 0.2, **kw}, mode)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
def test_fused_layer_equals_loop_in_eval_mode(cls, time_loops):
    run_both(cls, {"bidirectional": True, **EVERYTHING}, "lengths", train=False)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_fused_plain_layer_equals_torch_nn(kind):
    torch.manual_seed(0)
    ref = getattr(nn, kind)(I, H, num_layers=2, bidirectional=True, dtype=DT)
    ours = getattr(rnnkit, kind)(I, H, num_layers=2, bidirectional=True, dtype=DT, impl="fused")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3, I, dtype=DT)
    out, out_ref = ours(x)[0], ref(x)[0]
    assert_close(out, out_ref, **TOL)
    out.sum().backward()
    out_ref.sum().backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert_close(p.grad, q.grad, **TOL, msg=name)


def test_plan_tells_the_path_and_why():
    lstm = rnnkit.LSTM(I, H, layer_norm=True, zoneout=0.1)
    text = lstm.plan()
    assert text.startswith("fused:") and "custom autograd Function" in text
    assert "native not possible because layer_norm, zoneout change the function" in text
    rd = rnnkit.GRU(I, H, recurrent_dropout=0.2)
    assert "because recurrent_dropout changes" in rd.plan()
    rd.eval()
    assert rd.plan().startswith("native")  # the identity in eval mode: torch's kernel again
    assert rnnkit.RNN(I, H, impl="fused").plan().startswith("fused: ") and "requested" in (
        rnnkit.RNN(I, H, impl="fused").plan()
    )


def test_double_backward_is_refused_with_a_clear_error():
    layer = rnnkit.LSTM(I, H, dtype=DT, layer_norm=True)
    x = torch.randn(5, 3, I, dtype=DT, requires_grad=True)
    with pytest.raises(RuntimeError, match="cannot be differentiated again.*impl='loop'"):
        torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    layer.impl = "loop"
    (gx,) = torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    gx.sum().backward()  # the loop supports it


def test_plan_says_where_the_time_loops_run(monkeypatch):
    cpp_loops_or_skip()
    lstm = rnnkit.LSTM(I, H, layer_norm=True)
    assert "its time loops in C++ (rnnkit/csrc/lstm.cpp" in lstm.plan()
    assert "rnnkit/csrc/gru.cpp" in rnnkit.GRU(I, H, zoneout=0.1).plan()
    bf16 = torch.randn(5, 3, I, dtype=torch.bfloat16)
    assert "its time loops in Python (the C++ loops take float32 / float64" in lstm.plan(bf16)
    monkeypatch.setattr(extension, "_state", {"ok": False, "why": "disabled by RNNKIT_EXTENSION=0"})
    assert "time loops in Python (C++ loops not used: disabled by RNNKIT_EXTENSION=0)" in (
        lstm.plan()
    )


def test_a_failed_build_falls_back_to_python_with_the_reason(monkeypatch, caplog):
    """No compiler (or any build error): no exception, the fused path runs its Python loops,
    the same function, and plan() and the log say why."""

    def broken_build():
        raise RuntimeError("Error building extension 'rnnkit_cpu': c++: command not found")

    monkeypatch.setattr(extension, "_state", {})
    monkeypatch.setattr(extension, "_build", broken_build)
    with caplog.at_level("WARNING", logger="rnnkit"):
        assert extension.load() is False
    assert "command not found" in extension.status()
    assert "C++ time loops unavailable" in caplog.text
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, dtype=DT, peephole=True)
    ref = rnnkit.LSTM(I, H, dtype=DT, peephole=True, impl="loop")
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(5, 3, I, dtype=DT)
    assert "command not found" in layer.plan()
    assert_close(layer(x)[0], ref(x)[0], **TOL)


# ----------------------------------------------------------------------------- found in review


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_nan_in_padding_stays_out_of_the_outputs(cls, time_loops):
    """Padding keeps the state by selecting it (as torch.where does), so a NaN in a padded
    input never reaches a real output or the final state, in either direction."""
    torch.manual_seed(0)
    kw = {"bidirectional": True, "dtype": DT, "layer_norm": True}
    fused, loop = cls(I, H, impl="fused", **kw), cls(I, H, impl="loop", **kw)
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(5, 2, I, dtype=DT)
    x[3:, 1] = float("nan")  # padding of the second sequence
    lengths = torch.tensor([5, 3])
    (out, state), (ref, ref_state) = fused(x, lengths=lengths), loop(x, lengths=lengths)
    assert torch.isfinite(out).all()
    assert_close(out, ref, **TOL)
    states = [(s,) if isinstance(s, Tensor) else s for s in (state, ref_state)]
    for a, b in zip(*states, strict=True):
        assert_close(a, b, **TOL)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_empty_batch_trains_like_the_loop(cls, time_loops):
    layer = cls(I, H, impl="fused", dtype=DT, layer_norm=True)
    x = torch.randn(4, 0, I, dtype=DT, requires_grad=True)
    out = layer(x)[0]
    assert out.shape == (4, 0, H)
    out.sum().backward()
    assert all(p.grad is not None and not p.grad.any() for p in layer.parameters())


def test_cpp_functions_take_a_broadcast_dropout_mask():
    """The Functions are public: a (1, p) recurrent-dropout mask works as in Python."""
    cpp_loops_or_skip()
    torch.manual_seed(0)
    for mode, make in (
        ("LSTM", lstm_args),
        ("GRU", gru_args),
        ("RNN", lambda c, **k: rnn_args(c, False, **k)),
    ):
        args = list(make({"dropout": True}, B=3))
        i = 9 if mode == "LSTM" else 5 if mode == "GRU" else 4
        args[i] = args[i][:1]  # (1, p)
        outs = [FUNCTIONS[loops][mode].apply(*args) for loops in ("python", "cpp")]
        for a, b in zip(*outs, strict=True):
            assert_close(b, a, **TOL)


def test_a_stale_build_lock_is_removed_not_waited_on(monkeypatch, tmp_path):
    """A build killed midway leaves torch's lock file behind, on which its builder would wait
    forever: an old one is removed before building; a fresh one (a build running) is kept."""
    from torch.utils import cpp_extension

    seen = []
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(
        cpp_extension,
        "load",
        lambda **kw: seen.append(Path(kw["build_directory"], "lock").exists()),
    )
    build_dir = (
        tmp_path / f"rnnkit-py{sys.version_info[0]}{sys.version_info[1]}" / extension._name()
    )
    build_dir.mkdir(parents=True)
    lock = build_dir / "lock"
    lock.touch()
    extension._build()  # fresh: kept
    old = time.time() - extension.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    extension._build()  # stale: removed
    assert seen == [True, False]


def _fwd_bwd(layer, x):
    x = x.detach().clone().requires_grad_(True)
    out = layer(x)[0]
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    return out.detach().clone(), x.grad  # a copy: out's buffer goes back to the cache


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(8, 64, impl="fused", layer_norm=True, peephole=True, dtype=DT),
        lambda: rnnkit.GRU(8, 64, impl="fused", layer_norm=True, dtype=DT),
        lambda: rnnkit.RNN(8, 64, impl="fused", dtype=DT),
        lambda: rnnkit.MinGRU(8, 64, impl="fused", dtype=DT),
        lambda: rnnkit.MinLSTM(8, 64, impl="fused", dtype=DT),
    ],
    ids=["lstm", "gru", "rnn", "mingru", "minlstm"],
)
def test_threads_split_the_rows_without_changing_results(make):
    """With two threads the C++ loops split each step's (or minGRU's whole sequence's) batch
    rows between them; at these sizes they do, and must compute what one thread computes."""
    cpp_loops_or_skip()
    layer = make().eval()
    x = torch.randn(16, 256, 8, dtype=DT)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _fwd_bwd(layer, x)
        torch.set_num_threads(2)
        two = _fwd_bwd(layer, x)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_large_buffers_are_cached_reused_and_freed():
    """The C++ loops take their large (t, b, .) buffers from rnnkit's cache: a second identical
    step reuses what the first freed (the cache does not grow), and empty_cache frees it."""
    cpp_loops_or_skip()
    layer = rnnkit.MinGRU(16, 256, impl="fused")
    x = torch.randn(256, 4, 16)  # gx (256, 4, 512) float32: 2 MB, above the cache's 1 MB floor
    first = _fwd_bwd(layer, x)
    cached = extension.cache_info()["cached"]
    assert cached >= 256 * 4 * 512 * 4
    second = _fwd_bwd(layer, x)
    assert extension.cache_info()["cached"] == cached
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    extension.empty_cache()
    assert extension.cache_info()["cached"] == 0


def test_cache_cap_comes_from_the_environment(tmp_path):
    """RNNKIT_CACHE_MB=0 keeps nothing: every freed buffer goes straight back."""
    cpp_loops_or_skip()
    code = (
        "import torch, rnnkit\n"
        "from rnnkit import extension\n"
        "layer = rnnkit.MinGRU(16, 256, impl='fused')\n"
        "layer(torch.randn(256, 4, 16, requires_grad=True))[0].sum().backward()\n"
        "info = extension.cache_info()\n"
        "assert info == {'cached': 0, 'in_use': 0}, info\n"
    )
    env = dict(os.environ, RNNKIT_CACHE_MB="0")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


SIMD_SCRIPT = """
import torch, rnnkit
from torch.testing import assert_close
torch.manual_seed(0)
makers = [
    lambda impl: rnnkit.LSTM(5, 37, impl=impl, layer_norm=True, peephole=True),
    lambda impl: rnnkit.GRU(5, 37, impl=impl, layer_norm=True),
    lambda impl: rnnkit.RNN(5, 37, impl=impl),
    lambda impl: rnnkit.MinGRU(5, 37, impl=impl),
    lambda impl: rnnkit.MinLSTM(5, 37, impl=impl),
]
x = torch.randn(7, 3, 5)
lengths = torch.tensor([7, 4, 1])
for make in makers:
    torch.manual_seed(1)
    fused = make("fused").eval()
    loop = make("loop").eval()
    loop.load_state_dict(fused.state_dict())
    outs = []
    for layer in (fused, loop):
        xi = x.clone().requires_grad_(True)
        out = layer(xi, lengths=lengths)[0]
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
        outs.append((out.detach(), xi.grad))
    for a, b in zip(*outs):
        assert_close(a, b, atol=1e-5, rtol=1e-4)
print("ok")
"""


@pytest.mark.parametrize("simd", ["avx2", "none"])
def test_float32_loops_without_avx512_equal_the_python_loops(simd):
    """Each float32 loop has an AVX-512 path, an AVX2 one and a plain one, chosen by the CPU;
    RNNKIT_SIMD lowers the choice, so this machine runs the other two against autograd."""
    cpp_loops_or_skip()
    env = dict(os.environ, RNNKIT_SIMD=simd)
    done = subprocess.run(
        [sys.executable, "-c", SIMD_SCRIPT], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


def test_the_cache_is_reachable_from_the_package():
    """What the README shows: a bare `import rnnkit` gives rnnkit.extension and its cache
    functions (in a fresh interpreter: here the tests have imported the submodule already)."""
    code = "import rnnkit as r; r.extension.empty_cache(); print(sorted(r.extension.cache_info()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['cached', 'in_use']"


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_auto_takes_the_fused_path_for_variable_lengths_in_training(cell):
    """torch's CPU kernel over a packed batch has a slow backward (benchmarks/bench_packed.py),
    so impl="auto" trains variable-length batches on the fused path: the same function and
    gradients as torch.nn over the packed batch; without gradients torch's kernel again."""
    cpp_loops_or_skip()
    torch.manual_seed(0)
    ours = getattr(rnnkit, cell)(I, H, num_layers=2, bidirectional=True, batch_first=True)
    ref = getattr(nn, cell)(I, H, num_layers=2, bidirectional=True, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 9, I)
    lengths = torch.tensor([9, 4, 7, 1])
    text = ours.plan(x, lengths=lengths)
    assert text.startswith("fused:") and "variable-length (packed) batch" in text
    # equal lengths: torch's kernel for the LSTM; the fused GRU is faster anyway (test_layers)
    assert ours.plan(x).startswith("fused" if cell == "GRU" else "native")
    with torch.no_grad():
        assert ours.plan(x, lengths=lengths).startswith("native")
    y, h = ours(x, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, h_ref = ref(packed)
    y_ref, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=9)
    assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    pairs = zip(h, h_ref, strict=True) if cell == "LSTM" else [(h, h_ref)]
    for a, b in pairs:
        assert_close(a, b, atol=1e-5, rtol=1e-5)
    (y.square().sum()).backward()
    (y_ref.square().sum()).backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "cls, options",
    [(rnnkit.GRU, {}), (rnnkit.LSTM, {"peephole": True}), (rnnkit.RNN, {"zoneout": 0.1})],
)
def test_the_fused_path_trains_under_bf16_autocast(cls, options):
    """The input projections run in bfloat16 under autocast, the recurrence in float32 (its
    backward used to multiply bfloat16 by float32 and fail): outputs and gradients are the
    float32 run's up to the bfloat16 rounding of the projections (layer norm is left out: it
    amplifies that rounding in the loop path as much as here)."""
    torch.manual_seed(0)
    layer = cls(8, 16, num_layers=2, impl="fused", **options)
    x = torch.randn(3, 12, 8)

    def run(autocast: bool):
        torch.manual_seed(1)  # the same zoneout masks
        layer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y, _ = layer(x)
        y.float().pow(2).sum().backward()
        return y, {n: p.grad.clone() for n, p in layer.named_parameters()}

    y32, g32 = run(False)
    y16, g16 = run(True)
    assert y16.dtype == torch.float32  # the recurrence's dtype
    error = (y16 - y32).abs()  # bf16 keeps 8 bits: a few outputs move by up to ~0.1
    assert error.mean() < 5e-3 and error.max() < 0.15, (error.mean(), error.max())
    for name, g in g32.items():
        scale = g.abs().max().item()
        gap = (g16[name] - g).abs()
        assert gap.mean() < 1e-2 * scale and gap.max() < 0.1 * scale, (name, gap.max(), scale)


def _avx512() -> bool:
    return "AVX512" in torch.backends.cpu.get_cpu_capability()


def own_gemm_both_ways(run, monkeypatch) -> dict:
    """run() with one and two threads, RNNKIT_OWN_GEMM off and on; asserts every result equals
    the first (one thread, the library's products) and returns them by (threads, flag)."""
    before = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for flag in ("0", "1"):
                monkeypatch.setenv("RNNKIT_OWN_GEMM", flag)
                results[threads, flag] = run()
    finally:
        torch.set_num_threads(before)
    reference = results[1, "0"]
    for key, got in results.items():
        for a, e in zip(got, reference, strict=True):
            assert_close(a, e, atol=2e-5, rtol=1e-4, msg=lambda m, key=key: f"{key}: {m}")
    return results


PACKED_VARIANTS = [
    {},
    {"peephole": True},
    {"layer_norm": True},
    {"zoneout": (0.2, 0.3)},
    {"recurrent_dropout": 0.3},
    {"layer_norm": True, "peephole": True, "zoneout": 0.2, "recurrent_dropout": 0.3},
]


@pytest.mark.parametrize("kw", PACKED_VARIANTS, ids=lambda kw: "-".join(kw) or "plain")
@pytest.mark.parametrize(
    ("b", "h"), [(1, 33), (2, 16), (5, 37), (19, 48)], ids=["b1", "b2", "b5", "b19"]
)
def test_packed_step_products_equal_the_library_product(kw, b, h, monkeypatch):
    """On AVX-512 CPUs the float32 LSTM loops pack W_hh once and run each step's product with
    rnnkit's own kernel, the threads sharing every step; RNNKIT_OWN_GEMM=0 turns that off
    (one oneDNN / BLAS call per step). Both ways, with one and two threads, and with variable
    lengths: the same outputs, states and gradients. Row counts 1, 2, 5 and 19 take every
    register tile shape (8 + 8 + 3 rows for 19), hidden sizes 33 and 37 a partial panel. With
    two threads and 19 rows each thread runs the whole sequence on its own band of rows
    (9 and 10: ``row_bands``), with fewer each step is split between them."""
    cpp_loops_or_skip()
    if not _avx512():
        pytest.skip("the packed step products run on AVX-512 CPUs only")
    torch.manual_seed(0)
    layer = rnnkit.LSTM(6, h, impl="fused", **kw).train()
    x = torch.randn(7, b, 6)
    h0 = (torch.randn(1, b, h), torch.randn(1, b, h))
    lengths = torch.randint(1, 8, (b,))
    lengths[0] = 7

    def run():
        torch.manual_seed(1)  # the same dropout and zoneout masks each time
        xi = x.clone().requires_grad_(True)
        y, (hn, cn) = layer(xi, h0, lengths=lengths)
        g = torch.Generator().manual_seed(2)
        loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in (y, hn, cn))
        grads = torch.autograd.grad(loss, [xi, *layer.parameters()])
        return [y.detach().clone(), hn.detach(), cn.detach(), *grads]

    results = own_gemm_both_ways(run, monkeypatch)
    # the loop's own outputs are bit for bit the same with two threads (the products outside
    # it, torch's, may sum in another order with another thread count)
    for a, e in zip(results[2, "1"][:3], results[1, "1"][:3], strict=True):
        assert torch.equal(a, e), "two threads must compute what one computes, bit for bit"


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
@pytest.mark.parametrize(("t", "b", "i", "h"), [(9, 3, 5, 37), (40, 8, 64, 48), (3, 1, 17, 16)])
def test_min_rnn_projection_kernel_equals_the_library_product(cls, t, b, i, h, monkeypatch):
    """minGRU / minLSTM's fused path computes its input projection with rnnkit's packed
    kernel on AVX-512 CPUs (rows in bands of 8, panels of 16 with a partial one): the same
    outputs and gradients as with RNNKIT_OWN_GEMM=0 (torch's product), and as the loop."""
    cpp_loops_or_skip()
    torch.manual_seed(0)
    fused = cls(i, h, impl="fused")
    loop = cls(i, h, impl="loop")
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(t, b, i)
    results = []
    for layer, flag in ((fused, "1"), (fused, "0"), (loop, "1")):
        monkeypatch.setenv("RNNKIT_OWN_GEMM", flag)
        xi = x.clone().requires_grad_(True)
        y, hn = layer(xi)
        g = torch.Generator().manual_seed(1)
        loss = (y * torch.randn(y.shape, generator=g)).sum() + hn.sum()
        grads = torch.autograd.grad(loss, [xi, *layer.parameters()])
        results.append([y.detach().clone(), hn.detach(), *grads])
    for other in results[1:]:
        for a, e in zip(results[0], other, strict=True):
            assert_close(a, e, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("own_gemm", ["0", "1"])
@pytest.mark.parametrize(
    "kw", [{}, {"zoneout": 0.2, "recurrent_dropout": 0.3}], ids=["plain", "masks"]
)
def test_lstm_backward_reads_a_strided_output_gradient(kw, own_gemm, monkeypatch):
    """The C++ LSTM backward reads dY with any (t, b) strides instead of copying it: the
    gradient of ``out.sum()`` (stride 0 everywhere) and a batch-first layer's gradient (t and
    b swapped) give, bit for bit, what the same gradient laid out contiguously gives."""
    cpp_loops_or_skip()
    monkeypatch.setenv("RNNKIT_OWN_GEMM", own_gemm)
    torch.manual_seed(0)
    time_major = rnnkit.LSTM(5, 24, impl="fused", **kw).train()
    batch_first = rnnkit.LSTM(5, 24, impl="fused", batch_first=True, **kw).train()
    batch_first.load_state_dict(time_major.state_dict())
    x = torch.randn(9, 10, 5)  # (t, b, i): 10 rows, two row bands with two threads

    def grads(layer, dy):
        torch.manual_seed(1)  # the same masks
        xi = x.clone().requires_grad_(True)
        y = layer(xi.transpose(0, 1) if layer.batch_first else xi)[0]
        return torch.autograd.grad(y, [xi, *layer.parameters()], dy)

    ones = torch.ones(()).expand(9, 10, 24)  # the gradient of y.sum(), strides (0, 0, 0)
    for a, e in zip(grads(time_major, ones), grads(time_major, ones.contiguous()), strict=True):
        assert torch.equal(a, e)
    g = torch.randn(10, 9, 24)  # batch-first: seen by the time loops with strides (24, 216, 1)
    for a, e in zip(
        grads(batch_first, g), grads(time_major, g.transpose(0, 1).contiguous()), strict=True
    ):
        assert torch.equal(a, e)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
@pytest.mark.parametrize(
    ("t", "b", "bias", "batch_first", "x_grad"),
    [
        (300, 2, True, False, True),  # one row per band: chunks of 128 steps, the last short
        (45, 7, False, True, True),  # bands of 3 and 4 rows, x read through batch-first strides
        (70, 4, True, False, False),  # the first layer's x needs no gradient: dx not computed
        (3, 300, True, False, True),  # bands of 150-300 rows: a chunk's pairs in pieces of 256
    ],
)
def test_min_rnn_backward_with_fused_products_equals_the_library_path(
    cls, t, b, bias, batch_first, x_grad, monkeypatch
):
    """On AVX-512 CPUs (float32, a small W, a batch row per thread) minGRU / minLSTM's backward
    takes dx = dgx W and dW = dgx^T x chunk by chunk from a dgx that stays in cache
    (min_rnn_backward_products). With padding and one to three threads: the same gradients as
    RNNKIT_OWN_GEMM=0 (dgx written out, then torch's products), and as the float64 loop."""
    cpp_loops_or_skip()
    if not _avx512():
        pytest.skip("the fused products run on AVX-512 CPUs only")
    torch.manual_seed(0)
    fused = cls(24, 40, bias=bias, batch_first=batch_first, impl="fused")
    loop = cls(24, 40, bias=bias, batch_first=batch_first, impl="loop").double()
    loop.load_state_dict(fused.state_dict())
    x = torch.randn((b, t, 24) if batch_first else (t, b, 24))
    lengths = torch.randint(1, t + 1, (b,))
    lengths[0] = t
    weights = torch.randn((b, t, 40) if batch_first else (t, b, 40))

    def grads(layer, dtype):
        xi = x.to(dtype).requires_grad_(x_grad)
        y, hn = layer(xi, lengths=lengths)
        loss = (y * weights.to(dtype)).sum() + hn.sum()
        return torch.autograd.grad(
            loss, [xi, *layer.parameters()] if x_grad else [*layer.parameters()]
        )

    def applies():
        xt = x.transpose(0, 1) if batch_first else x
        return torch.ops.rnnkit.min_rnn_products_apply(xt, fused.weight_ih_l0)

    before = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            for flag in ("1", "0"):
                monkeypatch.setenv("RNNKIT_OWN_GEMM", flag)
                assert applies() == (flag == "1" and b >= threads)
                results[threads, flag] = grads(fused, torch.float32)
    finally:
        torch.set_num_threads(before)
    reference = grads(loop, torch.float64)
    for key, got in results.items():
        for a, e in zip(got, reference, strict=True):
            assert_close(a.double(), e, atol=5e-5, rtol=1e-4, msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
@pytest.mark.parametrize(
    "gates",
    [(-100.0, -70.0, -1.0), (-80.0, -80.5, 2.0), (-70.0, -50.0, 0.5), (1e14, -1e14, -1e14)],
    ids=["both-shut", "both-shut-close", "one-shut", "huge"],
)
def test_min_rnn_saturated_gates_equal_the_float64_loop(cls, gates):
    """Gate pre-activations far in the tails: minLSTM's f' = f / (f + i) is a ratio of two
    sigmoids, exact however small both are (k_f = -100, k_i = -70 gives f' = e^-30, not 1/2),
    and pre-activations of 1e14 give what float64 gives, not NaN. Every path against the
    float64 loop, outputs and gradients (the fused path on AVX-512 CPUs computes its gates in
    its own registers)."""
    cpp_loops_or_skip()
    torch.manual_seed(0)
    h = 32  # whole registers: the fused path's non-temporal stores
    fused = cls(4, h, impl="fused")
    loop = cls(4, h, impl="loop").double()
    k_f, k_i, k_h = gates  # minGRU: k_z = k_f
    with torch.no_grad():
        fused.weight_ih_l0.mul_(0.1)
        blocks = fused.bias_ih_l0.view(-1, h)  # (f, i, h) or (z, h)
        for q, value in enumerate((k_f, k_i, k_h) if cls is rnnkit.MinLSTM else (k_f, k_h)):
            blocks[q] = value
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(6, 3, 4)
    h0 = 5 * torch.randn(1, 3, h)

    weights = torch.randn(6, 3, h)

    def run(layer, dtype):
        xi = x.to(dtype).requires_grad_(True)
        y, hn = layer(xi, h0.to(dtype))
        loss = (y * weights.to(dtype)).sum() + hn.sum()
        return [y, *torch.autograd.grad(loss, [xi, *layer.parameters()])]

    for a, e in zip(run(fused, torch.float32), run(loop, torch.float64), strict=True):
        assert torch.isfinite(a).all()
        assert_close(a.double(), e, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
@pytest.mark.parametrize("own_gemm", ["1", "0"])
def test_min_rnn_bias_gradient_over_long_sequences(cls, own_gemm, monkeypatch):
    """The fused backward sums each row's bias gradient over T steps in float32 in two levels
    (chunks of steps, then the chunks): at T = 2048 within 2e-7 of the float64 loop's,
    relative to its largest entry (one running sum of 2048 terms was at 5e-7 to 6e-7)."""
    cpp_loops_or_skip()
    monkeypatch.setenv("RNNKIT_OWN_GEMM", own_gemm)
    torch.manual_seed(0)
    fused = cls(4, 16, impl="fused")
    loop = cls(4, 16, impl="loop").double()
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(2048, 8, 1).expand(2048, 8, 4)  # every step pushes the gradient one way
    got, want = (
        torch.autograd.grad(layer(x.to(dtype))[0].sum(), [layer.bias_ih_l0])[0].double()
        for layer, dtype in ((fused, torch.float32), (loop, torch.float64))
    )
    assert (got - want).abs().max() / want.abs().max() < 2e-7


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
def test_min_rnn_input_with_any_strides(cls):
    """x with non-unit stride over its features (a permuted or expanded tensor): the fused
    pass reads a contiguous copy and its backward still runs, equal to the loop's."""
    cpp_loops_or_skip()
    torch.manual_seed(0)
    fused = cls(5, 16, impl="fused")
    loop = cls(5, 16, impl="loop")
    loop.load_state_dict(fused.state_dict())
    base = torch.randn(9, 5, 3)
    for x in (base.permute(0, 2, 1), torch.randn(9, 3, 1).expand(9, 3, 5)):
        grads = []
        for layer in (fused, loop):
            xi = x.detach().requires_grad_(True)
            y, hn = layer(xi)
            grads.append([y, *torch.autograd.grad(y.sum() + hn.sum(), [xi, *layer.parameters()])])
        for a, e in zip(*grads, strict=True):
            assert_close(a, e, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM], ids=["mingru", "minlstm"])
@pytest.mark.parametrize(("forward_threads", "backward_threads"), [(2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("h", [40, 48])
def test_min_rnn_backward_reads_gx_in_the_forward_bands(
    cls, forward_threads, backward_threads, h, monkeypatch
):
    """minGRU / minLSTM's forward saves its gates in its bands of batch rows (one per thread;
    with h a multiple of 16, by non-temporal stores). The thread count, RNNKIT_OWN_GEMM and
    which weights need a gradient may all change before the backward, which still reads them
    in the forward's bands: the gradients equal the library path's (one thread,
    RNNKIT_OWN_GEMM=0, gx as (t, b, g))."""
    cpp_loops_or_skip()
    if not _avx512():
        pytest.skip("the fused products run on AVX-512 CPUs only")
    torch.manual_seed(0)
    layer = cls(24, h, impl="fused")
    x = torch.randn(33, 7, 24)  # 7 rows: bands of 3 and 4, or 2, 2 and 3
    lengths = torch.randint(1, 34, (7,))
    lengths[0] = 33
    weights = torch.randn(33, 7, h)

    def grads(frozen: bool, threads: tuple[int, int], own_gemm: tuple[str, str]):
        layer.weight_ih_l0.requires_grad_(not frozen)
        xi = x.clone().requires_grad_(True)
        torch.set_num_threads(threads[0])
        monkeypatch.setenv("RNNKIT_OWN_GEMM", own_gemm[0])
        y, hn = layer(xi, lengths=lengths)
        torch.set_num_threads(threads[1])
        monkeypatch.setenv("RNNKIT_OWN_GEMM", own_gemm[1])
        wanted = [xi, *(p for p in layer.parameters() if p.requires_grad)]
        return torch.autograd.grad((y * weights).sum() + hn.sum(), wanted)

    before = torch.get_num_threads()
    try:
        for frozen in (False, True):
            want = grads(frozen, (1, 1), ("0", "0"))
            for own_gemm in (("1", "1"), ("1", "0")):
                got = grads(frozen, (forward_threads, backward_threads), own_gemm)
                assert len(got) == len(want)
                for a, e in zip(got, want, strict=True):
                    assert_close(a, e, atol=2e-5, rtol=1e-4)
    finally:
        torch.set_num_threads(before)
        layer.weight_ih_l0.requires_grad_(True)


@pytest.mark.parametrize(
    "kw",
    [{}, {"layer_norm": True}, {"zoneout": 0.2, "recurrent_dropout": 0.3}, {"bias": False}],
    ids=["plain", "layer_norm", "masks", "nobias"],
)
def test_gru_row_bands_equal_the_library_product(kw, monkeypatch):
    """On AVX-512 CPUs the float32 GRU loops with a small W_hh and 8+ rows give each thread its
    own band of batch rows for the whole sequence (packed W_hh, rnnkit's kernel; ``row_bands``),
    otherwise one library product per step: with one and two threads, RNNKIT_OWN_GEMM on and
    off, and variable lengths, the same outputs, states and gradients."""
    cpp_loops_or_skip()
    if not _avx512():
        pytest.skip("the packed step products run on AVX-512 CPUs only")
    torch.manual_seed(0)
    layer = rnnkit.GRU(6, 37, impl="fused", **kw).train()
    x = torch.randn(9, 19, 6)
    h0 = torch.randn(1, 19, 37)
    lengths = torch.randint(1, 10, (19,))
    lengths[0] = 9

    def run():
        torch.manual_seed(1)  # the same dropout and zoneout masks each time
        xi = x.clone().requires_grad_(True)
        y, hn = layer(xi, h0, lengths=lengths)
        g = torch.Generator().manual_seed(2)
        loss = sum((t * torch.randn(t.shape, generator=g)).sum() for t in (y, hn))
        grads = torch.autograd.grad(loss, [xi, *layer.parameters()])
        return [y.detach().clone(), hn.detach(), *grads]

    own_gemm_both_ways(run, monkeypatch)  # asserts the four ways agree
