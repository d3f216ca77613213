"""The NumPy reference (rnnkit.reference) against torch autograd and finite differences."""

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.reference import gru, hello, lstm, rnn

T, B, I, H = 6, 3, 5, 4  # time, batch, input, hidden
MODULES = {"rnn": rnn, "lstm": lstm, "gru": gru}
CELLS = {"rnn": rnnkit.RNNCell, "lstm": rnnkit.LSTMCell, "gru": rnnkit.GRUCell}
LAYERS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


def _problem(cell: str, seed: int = 0):
    """Random inputs, initial state and upstream gradients for L = sum(G*hs) + sum(Gh*h_T) ..."""
    rng = np.random.default_rng(seed)
    return {
        "xs": rng.normal(size=(T, B, I)),
        "h0": rng.normal(size=(B, H)) * 0.5,
        "c0": rng.normal(size=(B, H)) * 0.5,
        "G": rng.normal(size=(T, B, H)),  # dL/dh_t from above
        "Gh": rng.normal(size=(B, H)),  # dL/dh_{T-1} from beyond the window
        "Gc": rng.normal(size=(B, H)),  # dL/dc_{T-1} (LSTM)
    }


def _reference(cell: str, p: dict, pr: dict, nonlinearity: str = "tanh"):
    """Loss and hand-written gradients of L = sum(G * hs) + sum(Gh * h_T) (+ sum(Gc * c_T))."""
    if cell == "lstm":
        hs, cache = lstm.forward(p, pr["xs"], pr["h0"], pr["c0"])
        loss = (pr["G"] * hs).sum() + (pr["Gh"] * hs[-1]).sum() + (pr["Gc"] * cache["c"][-1]).sum()
        grads = lstm.backward(p, cache, pr["G"], pr["Gh"], pr["Gc"])
    elif cell == "rnn":
        hs, cache = rnn.forward(p, pr["xs"], pr["h0"], nonlinearity)
        loss = (pr["G"] * hs).sum() + (pr["Gh"] * hs[-1]).sum()
        grads = rnn.backward(p, cache, pr["G"], pr["Gh"])
    else:
        hs, cache = gru.forward(p, pr["xs"], pr["h0"])
        loss = (pr["G"] * hs).sum() + (pr["Gh"] * hs[-1]).sum()
        grads = gru.backward(p, cache, pr["G"], pr["Gh"])
    return loss, hs, grads


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_equal_autograd(cell):
    """Same weights (copied with from_torch), same loss: every gradient equal to 1e-6."""
    torch_cell = CELLS[cell](I, H, dtype=torch.float64)
    p = MODULES[cell].from_torch(torch_cell)
    pr = _problem(cell)
    loss, hs, grads = _reference(cell, p, pr)

    xs = torch.tensor(pr["xs"], requires_grad=True)
    h = torch.tensor(pr["h0"], requires_grad=True)
    c = torch.tensor(pr["c0"], requires_grad=True)
    h0, c0 = h, c
    outs = []
    for t in range(T):
        if cell == "lstm":
            h, c = torch_cell(xs[t], (h, c))
        else:
            h = torch_cell(xs[t], h)
        outs.append(h)
    hs_t = torch.stack(outs)
    loss_t = (torch.tensor(pr["G"]) * hs_t).sum() + (torch.tensor(pr["Gh"]) * h).sum()
    if cell == "lstm":
        loss_t = loss_t + (torch.tensor(pr["Gc"]) * c).sum()
    loss_t.backward()

    np.testing.assert_allclose(hs, hs_t.detach().numpy(), rtol=0, atol=1e-12)
    assert abs(loss - loss_t.item()) < 1e-9
    pairs = {
        "dWxh": torch_cell.weight_ih.grad,
        "dWhh": torch_cell.weight_hh.grad,
        "dbxh": torch_cell.bias_ih.grad,
        "dbhh": torch_cell.bias_hh.grad,
        "dxs": xs.grad,
        "dh0": h0.grad,
    }
    if cell == "lstm":
        pairs["dc0"] = c0.grad
    for name, expected in pairs.items():
        np.testing.assert_allclose(grads[name], expected.numpy(), rtol=0, atol=1e-6, err_msg=name)
        assert np.abs(expected.numpy()).max() > 1e-3, f"{name}: a trivial gradient proves nothing"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_two_layer_stack_equals_rnnkit_layer(cell):
    """from_torch(layer, layer=k) reads weight_ih_l{k}; chaining dxs down the stack matches
    autograd through rnnkit's 2-layer layer (torch's fused kernel) in float64."""
    layer = LAYERS[cell](I, H, num_layers=2, dtype=torch.float64)
    p0, p1 = (MODULES[cell].from_torch(layer, layer=k) for k in (0, 1))
    pr = _problem(cell, seed=1)
    h1, cache0 = MODULES[cell].forward(p0, pr["xs"])
    h2, cache1 = MODULES[cell].forward(p1, h1)
    g1 = MODULES[cell].backward(p1, cache1, pr["G"])
    g0 = MODULES[cell].backward(p0, cache0, g1["dxs"])

    xs = torch.tensor(pr["xs"], requires_grad=True)
    out, _ = layer(xs)
    (torch.tensor(pr["G"]) * out).sum().backward()
    np.testing.assert_allclose(h2, out.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(g0["dxs"], xs.grad.numpy(), rtol=0, atol=1e-6)
    for k, g in ((0, g0), (1, g1)):
        for ours, theirs in rnn.TORCH_NAMES.items():
            expected = getattr(layer, f"{theirs}_l{k}").grad.numpy()
            np.testing.assert_allclose(g["d" + ours], expected, rtol=0, atol=1e-6)


def test_relu_rnn_and_no_bias_equal_autograd():
    torch_cell = rnnkit.RNNCell(I, H, bias=False, nonlinearity="relu", dtype=torch.float64)
    p = rnn.from_torch(torch_cell)
    assert not p["bxh"].any() and not p["bhh"].any()
    pr = _problem("rnn", seed=2)
    _, hs, grads = _reference("rnn", p, pr, nonlinearity="relu")
    xs = torch.tensor(pr["xs"])
    h = torch.tensor(pr["h0"])
    outs = []
    for t in range(T):
        h = torch_cell(xs[t], h)
        outs.append(h)
    (
        (torch.tensor(pr["G"]) * torch.stack(outs)).sum() + (torch.tensor(pr["Gh"]) * h).sum()
    ).backward()
    assert (hs == 0).any() and (hs > 0).any()  # both sides of the kink are exercised
    np.testing.assert_allclose(grads["dWhh"], torch_cell.weight_hh.grad.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(grads["dWxh"], torch_cell.weight_ih.grad.numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_equal_finite_differences(cell):
    """Central differences on every weight, input and initial-state entry."""
    rng = np.random.default_rng(3)
    p = MODULES[cell].init(I, H, rng)
    pr = _problem(cell, seed=3)
    _, _, grads = _reference(cell, p, pr)
    eps = 1e-6
    targets = {("d" + k): v for k, v in p.items()}
    targets.update(dxs=pr["xs"], dh0=pr["h0"])
    if cell == "lstm":
        targets["dc0"] = pr["c0"]
    for name, w in targets.items():
        num = np.zeros_like(w)
        for ix in np.ndindex(w.shape):
            old = w[ix]
            w[ix] = old + eps
            plus = _reference(cell, p, pr)[0]
            w[ix] = old - eps
            minus = _reference(cell, p, pr)[0]
            w[ix] = old
            num[ix] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-7, err_msg=name)


def test_from_torch_errors():
    with pytest.raises(ValueError, match="proj_size"):
        lstm.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="weight_ih_l2"):
        gru.from_torch(torch.nn.GRU(3, 4, num_layers=2), layer=2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hello_learns_ello(cell):
    """The worked example: the loss falls and the model predicts 'ello' from 'hell'."""
    run = hello.train(cell, steps=100, lr=0.1, method="adagrad")
    losses = run["losses"]
    assert losses[-1] < 0.1 * losses[0]
    assert all(b < a for a, b in zip(losses[10:], losses[11:], strict=False))  # steady descent
    assert run["predictions"][0] != "ello"
    assert run["predictions"][-1] == "ello"
    assert hello.predict(run["params"], cell, "hell") == "ello"


def test_hello_sgd_and_gradcheck():
    run = hello.train("rnn", steps=300, lr=0.3, method="sgd")
    assert run["losses"][-1] < run["losses"][0] / 5
    assert run["predictions"][-1] == "ello"
    # the whole model (read-out and softmax included) against finite differences
    errors = hello.gradcheck(hello.init_params("lstm"), "lstm")
    assert set(errors) == {"Wxh", "Whh", "bxh", "bhh", "Why", "by"}
    assert max(errors.values()) < 1e-6, errors


def test_hello_loss_equals_torch():
    """The example's loss, read-out included, is torch's cross-entropy on the same weights."""
    p = hello.init_params("gru", seed=4)
    loss, grads, _ = hello.loss_fun(p, "gru", "hell", "ello")
    cell = rnnkit.GRUCell(4, 3, dtype=torch.float64)
    with torch.no_grad():
        for ours, theirs in rnn.TORCH_NAMES.items():
            getattr(cell, theirs).copy_(torch.tensor(p[ours]))
    Why = torch.tensor(p["Why"], requires_grad=True)
    by = torch.tensor(p["by"], requires_grad=True)
    xs = torch.tensor(hello.one_hot("hell"))
    h, logits = None, []
    for t in range(4):
        h = cell(xs[t], h)
        logits.append(h @ Why.T + by)
    target = torch.tensor([hello.VOCAB.index(ch) for ch in "ello"])
    loss_t = torch.nn.functional.cross_entropy(torch.cat(logits), target, reduction="sum")
    loss_t.backward()
    assert abs(loss - loss_t.item()) < 1e-9
    np.testing.assert_allclose(grads["dWhy"], Why.grad.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(grads["dWhh"], cell.weight_hh.grad.numpy(), atol=1e-6, rtol=0)
