"""rnnkit.viz: gradient flow against hand computations, activations, and the HTML report in a real
headless browser (Debian's chromium, driven over the DevTools protocol on a pipe, stdlib only)."""

import base64
import contextlib
import json
import math
import os
import select
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import tasks
from rnnkit.config import build
from rnnkit.errors import RnnkitError, RunDirError
from rnnkit.tasks import charlm_inspect as CI
from rnnkit.tasks.charlm import CharLMConfig
from rnnkit.tasks.charlm_inspect import compare_cells
from rnnkit.viz import activations as A
from rnnkit.viz import gradients as G
from rnnkit.viz.report import curves_figure, write_report

LAYERS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
PNG = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- gradient flow


def _orthogonal(n: int, seed: int = 0) -> torch.Tensor:
    q, r = torch.linalg.qr(
        torch.randn(n, n, generator=torch.Generator().manual_seed(seed)).double()
    )
    return q * torch.sign(torch.diagonal(r))  # (n, n), Q^T Q = I


@pytest.mark.parametrize("a", [0.7, 1.1])
def test_linear_rnn_norms_are_powers_of_a(a):
    """h_t = W h_{t-1} + x_t with W = a Q: dL/dh_t = (W^T)^(T-1-t) dL/dh_{T-1}, so
    ||dL/dh_t|| = a^(T-1-t) ||v|| for L = <v, h_{T-1}>, exactly."""
    T, b, n = 30, 4, 6
    W = a * _orthogonal(n)
    v = torch.randn(b, n, dtype=torch.float64)
    x = torch.randn(T, b, n, dtype=torch.float64)
    norms = G.step_gradient_norms(
        lambda x_t, h: h @ W.T + x_t,  # exactly linear: no nonlinearity at all
        x,
        torch.zeros(b, n, dtype=torch.float64),
        lambda hs: (hs[-1] * v).sum(),
    )
    k = np.arange(T)[::-1]  # distance of step t from the loss
    expected = a ** k[:, None] * v.norm(dim=1).numpy()[None, :]  # (T, b)
    np.testing.assert_allclose(norms, expected, rtol=1e-10)
    s = G.flow_stats(norms)
    assert s["rate_per_step"] == pytest.approx(a, rel=1e-9)
    assert s["ratio_over_window"] == pytest.approx(a ** (T - 1), rel=1e-9)
    assert s["verdict"] == ("vanishing" if a < 1 else "exploding")
    horizon = math.ceil(math.log(1e-3) / math.log(a)) if a < 1 else None  # first a^k < 1e-3
    assert horizon is None or horizon < T
    assert s["horizon_1e-3"] == horizon
    assert s["exploded_fraction"] == (1.0 if a ** (T - 1) > 10 else 0.0)


def test_linear_rnn_any_matrix_matches_matrix_powers():
    """A general (non-normal) W: the norms are ||(W^T)^k v||, computed with matrix powers."""
    T, n = 12, 5
    W = torch.randn(n, n, dtype=torch.float64) * 0.6
    v = torch.randn(1, n, dtype=torch.float64)
    norms = G.step_gradient_norms(
        lambda x_t, h: h @ W.T + x_t,
        torch.zeros(T, 1, n, dtype=torch.float64),
        torch.zeros(1, n, dtype=torch.float64),
        lambda hs: (hs[-1] * v).sum(),
    )
    Wt, v0 = W.T.numpy(), v[0].numpy()
    expected = [np.linalg.norm(np.linalg.matrix_power(Wt, T - 1 - t) @ v0) for t in range(T)]
    np.testing.assert_allclose(norms[:, 0], expected, rtol=1e-10)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_layer_norms_equal_restarted_runs(cell):
    """dL/dh_t of the top layer, loss on the last output, equals the gradient of the same loss
    with respect to the state ``hx`` that the fused layer is restarted from after step t."""
    T, b = 9, 3
    layer = LAYERS[cell](4, 5, num_layers=2, dtype=torch.float64)
    x = torch.randn(T, b, 4, dtype=torch.float64)
    w = torch.randn(b, 5, dtype=torch.float64)
    norms = G.layer_gradient_norms(layer, x, lambda out: (out[-1] * w).sum())  # (L, T, b)
    assert all(p.grad is None for p in layer.parameters())  # no side effect on the model
    for t in range(T - 1):
        with torch.no_grad():
            _, state = layer(x[: t + 1])  # the states after step t
        if cell == "lstm":
            h, c = state[0].clone().requires_grad_(True), state[1]
            out, _ = layer(x[t + 1 :], (h, c))
        else:
            h = state.clone().requires_grad_(True)
            out, _ = layer(x[t + 1 :], h)
        (out[-1] * w).sum().backward()
        np.testing.assert_allclose(norms[1, t], h.grad[1].norm(dim=-1).numpy(), rtol=1e-9)
    np.testing.assert_allclose(norms[1, T - 1], w.norm(dim=-1).numpy(), rtol=1e-12)
    assert (norms[0] > 0).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(4, 5, 2, layer_norm=True, peephole=True, zoneout=0.2),
        lambda: rnnkit.GRU(4, 5, 2, layer_norm=True, impl="fused"),
        lambda: torch.nn.LSTM(4, 5, 2, proj_size=3),
        lambda: torch.nn.RNN(4, 5, 2, nonlinearity="relu", batch_first=True),
    ],
    ids=["lstm-variants", "gru-fused", "torch-lstm-proj", "torch-relu-batch-first"],
)
def test_layer_norms_through_the_layers_own_loop(make):
    """Variants, the fused path and torch.nn layers are measured on the layer's own loop: the top
    layer's dL/dh_t equals a restarted run's (eval mode), and trace's h is the layer's output."""
    layer = make().double().eval()
    T, b, p = 8, 3, layer.proj_size or layer.hidden_size
    x = torch.randn(T, b, 4, dtype=torch.float64)
    w = torch.randn(b, p, dtype=torch.float64)
    norms = G.layer_gradient_norms(layer, x, lambda out: (out[-1] * w).sum())  # (L, T, b)
    for t in range(T - 1):
        xt = x.transpose(0, 1) if layer.batch_first else x
        xs = (xt[:, : t + 1], xt[:, t + 1 :]) if layer.batch_first else (x[: t + 1], x[t + 1 :])
        with torch.no_grad():
            _, state = layer(xs[0])
        lstm = isinstance(state, tuple)
        h = (state[0] if lstm else state).clone().requires_grad_(True)
        out, _ = layer(xs[1], (h, state[1]) if lstm else h)
        ((out[:, -1] if layer.batch_first else out[-1]) * w).sum().backward()
        np.testing.assert_allclose(norms[-1, t], h.grad[-1].norm(dim=-1).numpy(), rtol=1e-9)
    assert (norms[0] > 0).all()
    out, _ = layer(x.transpose(0, 1) if layer.batch_first else x)
    out = out.transpose(0, 1) if layer.batch_first else out
    np.testing.assert_allclose(A.trace(layer, x)[-1]["h"], out.detach().numpy(), atol=1e-12)


def test_measuring_refuses_what_the_loop_cannot_reproduce():
    class Shifted(torch.nn.GRU):  # a forward of its own, which the rnnkit loop does not run
        def forward(self, input, hx=None):
            out, h = super().forward(input, hx)
            return out + 0.01, h

    x = torch.randn(5, 2, 3)
    with pytest.raises(RnnkitError, match="does not reproduce"):
        G.layer_gradient_norms(Shifted(3, 4), x, lambda out: out[-1].sum())
    with pytest.raises(RnnkitError, match="does not reproduce"):
        A.trace(Shifted(3, 4), x)
    with pytest.raises(RnnkitError, match="unidirectional"):
        G.layer_gradient_norms(rnnkit.LSTM(3, 4, bidirectional=True), x, lambda out: out.sum())
    with pytest.raises(RnnkitError, match="unidirectional"):
        A.trace(rnnkit.GRU(3, 4, bidirectional=True), x)


def test_forget_bias_slows_the_decay():
    torch.manual_seed(1)
    layer = rnnkit.LSTM(4, 16, dtype=torch.float64)
    x = torch.randn(40, 8, 4, dtype=torch.float64)
    rates = {}
    for bf in (0.0, 3.0):
        G.set_forget_bias(layer, bf)
        assert torch.all(layer.bias_ih_l0[16:32] == bf) and torch.all(layer.bias_hh_l0[16:32] == 0)
        norms = G.layer_gradient_norms(layer, x, lambda out: out[-1].sum())[0]
        rates[bf] = G.flow_stats(norms)["rate_per_step"]
    assert rates[0.0] < 0.9 < rates[3.0]  # sigma(3) = 0.95 keeps the cell's memory


def test_training_stats_by_hand():
    records = [{"step": i + 1, "loss": 1.0, "grad_norm": g} for i, g in enumerate([0.5, 2, 1, 30])]
    records.append({"step": 4, "val_bpc": 2.0})  # an evaluation record has no grad_norm
    s = G.training_stats(records, clip=1.0)
    assert s["steps"] == 4 and s["clipped_fraction"] == 0.5  # 2 and 30 exceed 1
    assert s["median"] == 1.5 and s["max"] == 30 and s["spikes_10x_median"] == 1
    assert G.training_stats(records, clip=0.0)["clipped_fraction"] == 0.0


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_trace_states_and_gates(cell):
    """The replayed h equals the layer's own output (top) and a 1-layer copy's (bottom); the
    gates satisfy the cell's equations."""
    layer = LAYERS[cell](3, 4, num_layers=2)
    x = torch.randn(7, 2, 3)
    tr = A.trace(layer, x)
    out, _ = layer(x)
    np.testing.assert_allclose(tr[1]["h"], out.detach().double().numpy(), atol=1e-6)
    bottom = LAYERS[cell](3, 4)
    bottom.load_state_dict({k: v for k, v in layer.state_dict().items() if k.endswith("_l0")})
    np.testing.assert_allclose(tr[0]["h"], bottom(x)[0].detach().double().numpy(), atol=1e-6)
    d = tr[0]
    h_prev = np.concatenate([np.zeros((1, 2, 4)), d["h"][:-1]])
    if cell == "lstm":
        c_prev = np.concatenate([np.zeros((1, 2, 4)), d["c"][:-1]])
        np.testing.assert_allclose(d["c"], d["f"] * c_prev + d["i"] * d["g"], atol=1e-6)
        np.testing.assert_allclose(d["h"], d["o"] * np.tanh(d["c"]), atol=1e-6)
    elif cell == "gru":
        np.testing.assert_allclose(d["h"], (1 - d["z"]) * d["n"] + d["z"] * h_prev, atol=1e-6)
    else:
        assert set(d) == {"h"}


def test_text_features_by_hand():
    f = A.text_features('a"b(c)"\n(x[y')
    #                     a  "  b  (  c  )  "  \n (  x  [  y
    assert f["in_quotes"].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert f["position_in_line"].tolist() == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4]
    assert f["bracket_depth"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 2, 2]


def test_find_units_finds_planted_units():
    text = 'print("hello", [1, (2)]) and "quoted (text)" here\n' * 20
    feats = A.text_features(text)
    rng = np.random.default_rng(0)
    acts = np.tanh(rng.normal(size=(len(text), 16)))
    acts[:, 7] = feats["in_quotes"]  # a unit that is the quote indicator
    acts[:, 3] = -0.1 * feats["bracket_depth"] + 0.01 * rng.normal(size=len(text))
    acts[:, 5] = 0.0  # a dead unit: r = 0, no warning
    found = A.find_units(acts, feats, top=2)
    assert found["in_quotes"][0] == {"unit": 7, "r": pytest.approx(1.0)}
    assert found["bracket_depth"][0]["unit"] == 3 and found["bracket_depth"][0]["r"] < -0.99
    assert all(f["unit"] != 5 for fs in found.values() for f in fs)


def test_gate_saturation_by_hand():
    f = np.array([[0.05, 0.5], [0.95, 0.5], [0.02, 0.99], [0.5, 0.5]])  # (T=4, h=2)
    s = A.gate_saturation({"h": f, "f": f})["f"]
    assert s["units_left"] == [0.5, 0.0] and s["units_right"] == [0.25, 0.25]
    assert s["left"] == 0.25 and s["right"] == 0.25
    assert A.gate_saturation({"h": f}) == {}  # a vanilla RNN has no gates


class _Spans(HTMLParser):
    def __init__(self):
        super().__init__()
        self.spans, self.depth = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self.spans.append([dict(attrs), ""])
            self.depth += 1

    def handle_endtag(self, tag):
        if tag == "span":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.spans[-1][1] += data


def test_activation_html_one_coloured_span_per_character():
    text = 'a<b & "c"\nd'
    values = np.linspace(-1, 1, len(text))
    page = A.units_html(text, values[:, None], {"ramp": 0})
    parser = _Spans()
    parser.feed(page)
    assert len(parser.spans) == len(text)
    assert "".join(s[1] for s in parser.spans).replace("↵", "") == text  # escaped, in order
    colours = [s[0]["style"] for s in parser.spans]
    assert colours[0] == "background:rgb(0,0,255)"  # -1: blue
    assert colours[5] == "background:rgb(255,255,255)"  # 0: white
    assert colours[-1] == "background:rgb(255,0,0)"  # +1: red
    assert parser.spans[3][0]["title"] == f"{values[3]:.3f}"
    with pytest.raises(ValueError, match="one value per character"):
        A.activation_html("abc", [0.0, 1.0])


# ----------------------------------------------------------------------------- runs


def _corpus(n_lines: int = 400) -> str:
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "x", "y"]
    lines = []
    for _ in range(n_lines):
        w = rng.choice(words, 3)
        lines.append(f'{w[0]}({w[1]}, "{w[2]} [{w[0]}]") + {w[1]}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "code.txt"
    path.write_text(_corpus(), encoding="utf-8")
    return path


def _train(corpus, out, cell="lstm", **extra):
    overrides = {
        "data.path": str(corpus),
        "data.batch_size": 4,
        "data.val_fraction": 0.1,
        "model.cell": cell,
        "model.layers": 2,
        "model.hidden": 16,
        "model.embed": 8,
        "tbptt.k1": 24,
        "train.steps": 12,
        "train.eval_every": 6,
        "train.checkpoint_every": 12,
        "train.device": "cpu",
        **extra,
    }
    tasks.get("charlm").train(build(CharLMConfig, overrides=overrides), out, progress=False)
    return out


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    return _train(corpus, tmp_path_factory.mktemp("runs") / "lstm")


def test_inspect_run(run, tmp_path):
    result = CI.inspect_run(run, tmp_path / "inspect", batch=4, seq_len=30)
    assert result["png"].read_bytes().startswith(PNG)
    stats = json.loads(result["json"].read_text())
    assert stats == json.loads(json.dumps(result["stats"]))
    assert stats["cell"] == "lstm" and len(stats["layers"]) == 2 and stats["batch"] == 4
    assert stats["training"]["steps"] == 12
    # by hand: the loss is the last step's cross-entropy, so dL/dh_{T-1} = W_head^T (p - y)
    loaded = tasks.get("charlm").load(run)
    model, vocab, config = loaded.model, loaded.setup.vocab, loaded.config
    x, y = CI.validation_windows(corpus_text(config), vocab, config, 4, 30)
    with torch.no_grad():
        logits, _ = model(x)
        p = torch.softmax(logits[:, -1].double(), -1) - torch.nn.functional.one_hot(
            y[:, -1], len(vocab)
        )
        by_hand = (p @ model.head.weight.double()).norm(dim=-1).mean().item()
    assert stats["by_distance"][1][0] == pytest.approx(by_hand, rel=1e-5)
    assert stats["layers"][1]["norm_last_step"] == pytest.approx(by_hand, rel=1e-5)


def corpus_text(config) -> str:
    return Path(config.data.path).read_text(encoding="utf-8")


def test_inspect_run_errors(tmp_path):
    with pytest.raises(RunDirError, match="not found"):
        CI.inspect_run(tmp_path / "nothing")
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text('{"task": "translate"}')
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_text("")
    with pytest.raises(RunDirError, match="charlm"):
        CI.inspect_run(other)
    page = write_report(other).read_text()  # another task: the generic sections only
    assert "<h2>Training" in page and "<h2>Config" in page and "<h2>Sample" not in page


def test_compare_cells(corpus, tmp_path):
    kw = dict(hidden=8, seq_len=16, batch_size=2, data=str(corpus), forget_biases=(0.0, 3.0))
    result = compare_cells(tmp_path / "cmp", steps=1, **kw)
    assert result["png"].read_bytes().startswith(PNG)
    assert set(result["runs"]) == {"rnn", "lstm", "gru", "rnn-noclip"}
    assert all((path / "model.safetensors").is_file() for path in result["runs"].values())
    stats = json.loads(result["json"].read_text())
    for cell in ("rnn", "lstm", "gru"):
        assert len(stats["by_distance"][f"{cell} trained"]) == 16
    fb = stats["curves"]
    assert (
        fb["lstm init, forget bias 0"]["rate_per_step"]
        < fb["lstm init, forget bias 3"]["rate_per_step"]
    )
    assert stats["training"]["rnn-noclip"]["clip"] == 0.0
    with pytest.raises(RunDirError, match="not empty"):
        compare_cells(tmp_path / "cmp", steps=1, **kw)


@pytest.mark.slow
def test_compare_cells_on_the_builtin_corpus(tmp_path):
    """The claims of the comparison figure, with its defaults (200 steps on Python's docs): the
    vanilla RNN's gradient vanishes fastest, trained or not, and a larger forget bias slows the
    LSTM's decay."""
    c = compare_cells(tmp_path / "cmp")["stats"]["curves"]
    rate = {name: s["rate_per_step"] for name, s in c.items()}
    for when in ("trained", "init"):
        assert rate[f"rnn {when}"] < min(rate[f"lstm {when}"], rate[f"gru {when}"])
    fb = [rate[f"lstm init, forget bias {b}"] for b in ("0", "1", "3")]
    assert fb == sorted(fb)


# ----------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def report(run):
    path = write_report(run, sample_length=200, unit_chars=800)  # default place: RUN/report.html
    assert path == run / "report.html"
    return path


def test_report_is_self_contained(run, report):
    page = report.read_text(encoding="utf-8")
    for heading in ("Final metrics", "Training", "Sample", "Gradient flow", "Units", "Gate"):
        assert f"<h2>{heading}" in page or f"<h3>{heading}" in page, heading
    assert "http://" not in page and "https://" not in page and "<script" not in page
    sources = [s.split('"')[0] for s in page.split(' src="')[1:]]
    assert len(sources) >= 3
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    final = json.loads((run / "metrics.json").read_text())
    assert f"{final['val_bpc']:.4g}" in page


def test_report_without_corpus_or_metrics(run, tmp_path):
    """A run whose corpus moved still gets a page: the sections that need it become notes."""
    copy = tmp_path / "moved"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["data"]["path"] = str(tmp_path / "gone.txt")
    (copy / "config.json").write_text(json.dumps(config))
    (copy / "metrics.jsonl").write_text("")
    page = write_report(copy, tmp_path / "sub" / "r.html", sample_length=50).read_text()
    assert "not drawn" in page and "<h2>Sample" in page and "metrics.jsonl is empty" in page
    with pytest.raises(RunDirError):
        write_report(tmp_path / "nothing")


def test_curves_with_schedule_and_evals():
    records = [
        {"step": s, "loss": 3 - s / 50, "grad_norm": 1 + s % 3, "lr": 1e-3 * s}
        for s in range(1, 60)
    ]
    records[-1]["val_bpc"] = 2.5
    fig = curves_figure(records, clip=1.5)
    assert len(fig.axes) == 4  # loss + its evaluation twin, learning rate, gradient norm


# ----------------------------------------------------------------------------- headless chromium

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class Chromium:
    """Headless Chromium driven over the DevTools protocol: JSON messages ending in a NUL byte,
    written to its fd 3 and read from its fd 4 (--remote-debugging-pipe)."""

    def __init__(self, timeout: float = 60.0):
        self.timeout, self.next_id, self.buf, self.events = timeout, 0, b"", []
        self.profile = tempfile.mkdtemp(prefix="rnnkit-chromium-")
        child_in, self.to_child = os.pipe()
        self.from_child, child_out = os.pipe()
        script = f'exec "$0" "$@" 3<&{child_in} 4>&{child_out}'  # the pipes as fds 3 and 4
        argv = [shutil.which("chromium"), *FLAGS, f"--user-data-dir={self.profile}"]
        self.proc = subprocess.Popen(
            ["bash", "-c", script, *argv, "about:blank"],
            pass_fds=(child_in, child_out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            if select.select([self.from_child], [], [], left)[0]:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk
        message, _, self.buf = self.buf.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def settle(self, seconds: float) -> None:
        """Collect the events of the next ``seconds`` (timers that throw late, say)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read(deadline))
        except TimeoutError:
            pass

    def open(self, url: str, width: int | None = None) -> str:
        """A new tab with the Page, Runtime and Log events on, at ``url`` once loaded; its
        session id."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        s = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=s)
        if width is not None:
            self.call("Emulation.setDeviceMetricsOverride", session=s, width=width, height=900,
                      deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.call("Page.navigate", session=s, url=url)
        self.wait_for("Page.loadEventFired")
        return s

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and warnings, failed loads and other browser
        log errors among the events so far."""
        errors = []
        for event in self.events:
            method, p = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                errors.append(d.get("exception", {}).get("description") or d.get("text"))
            elif method == "Runtime.consoleAPICalled" and p["type"] in (
                "error",
                "assert",
                "warning",
            ):
                args = " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
                errors.append(f"console.{p['type']}: {args}")
            elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                entry = p["entry"]
                errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")
        return errors

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_child)
        os.close(self.from_child)
        shutil.rmtree(self.profile, ignore_errors=True)


def open_in_chromium(page: Path, screenshot: Path | None = None, width: int = 1200) -> dict:
    """Load ``page`` in headless Chromium; return its errors (uncaught exceptions, console
    errors and warnings, failed loads and other browser log errors), its title, and the full
    page's size; write a PNG screenshot of the whole page to ``screenshot``."""
    browser = Chromium()
    try:
        s = browser.open(page.resolve().as_uri(), width)
        browser.settle(0.5)
        errors = browser.errors()
        title = browser.call("Runtime.evaluate", session=s, expression="document.title")
        size = browser.call("Page.getLayoutMetrics", session=s)["cssContentSize"]
        if screenshot is not None:
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = browser.call(
                "Page.captureScreenshot",
                session=s,
                format="png",
                captureBeyondViewport=True,
                clip=clip,
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return {"errors": errors, "title": title["result"]["value"], "size": size}
    finally:
        browser.close()


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium)",
)


@needs_chromium
def test_browser_check_catches_errors(tmp_path):
    """The check can fail: a thrown error, a late one, console.error and a missing image."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><title>bad</title><img src='missing.png'>"
        "<script>console.error('logged'); setTimeout(() => { throw new Error('late-boom') }, 10);"
        "throw new Error('boom')</script>"
    )
    errors = " | ".join(open_in_chromium(bad)["errors"])
    for expected in ("Error: boom", "Error: late-boom", "console.error: logged", "missing.png"):
        assert expected in errors, errors


@needs_chromium
def test_report_renders_in_chromium(run, report, tmp_path):
    shot = tmp_path / "report.png"
    result = open_in_chromium(report, shot)
    assert result["errors"] == []
    assert result["title"] == f"rnnkit report: {run.name} (charlm)"
    data = shot.read_bytes()
    assert data.startswith(PNG)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1200 and height == int(result["size"]["height"]) and height > 2000
    keep = os.environ.get("RNNKIT_SCREENSHOT_DIR")  # to look at it: set this and run the test
    if keep:
        shutil.copy(shot, Path(keep) / "report.png")
