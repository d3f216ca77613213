"""The worked example: a 4-character vocabulary h, e, l, o and 3 hidden units learn "hello".

The input is "hell", the targets are "ello": at every step the model predicts the next character.
The two l's need memory: after the first 'l' comes 'l', after the second 'o', and only the hidden
state tells them apart. Trained with the hand-written BPTT of `rnn.py` (or `lstm.py`, `gru.py`)
and SGD or Adagrad, as in min-char-rnn::

    x_t = onehot(c_t)                              (T, 1, 4)
    h_t = RNN(x_t, h_{t-1})                        (T, 1, 3)
    y_t = Why h_t + by                             unnormalised log-probabilities (1, 4)
    p_t = softmax(y_t)
    L = sum_t -log p_t[c_{t+1}]

Run ``python -m rnnkit.reference.hello [rnn|lstm|gru]`` to watch the loss fall and the
predictions turn into "ello", then see the gradient check against finite differences.
"""

from __future__ import annotations

import sys

import numpy as np

from rnnkit.reference import gru, lstm, rnn

__all__ = ["VOCAB", "CELLS", "init_params", "loss_fun", "predict", "gradcheck", "train"]

VOCAB = "helo"  # the course's order: h=0, e=1, l=2, o=3
CELLS = {"rnn": rnn, "lstm": lstm, "gru": gru}


def one_hot(text: str) -> np.ndarray:
    """text -> xs (T, 1, v): one row per character, batch of one."""
    xs = np.zeros((len(text), 1, len(VOCAB)))
    for t, ch in enumerate(text):
        xs[t, 0, VOCAB.index(ch)] = 1.0
    return xs


def init_params(cell: str = "rnn", hidden: int = 3, seed: int = 0) -> dict:
    """The cell's parameters (Wxh, Whh, bxh, bhh) and the read-out Why (v, h), by (v,)."""
    rng = np.random.default_rng(seed)
    p = CELLS[cell].init(len(VOCAB), hidden, rng)
    k = 1.0 / np.sqrt(hidden)
    p["Why"] = rng.uniform(-k, k, (len(VOCAB), hidden))
    p["by"] = np.zeros(len(VOCAB))
    return p


def loss_fun(p: dict, cell: str, inputs: str, targets: str) -> tuple[float, dict, np.ndarray]:
    """Cross-entropy of predicting ``targets`` from ``inputs``; its gradients by hand.

    Returns the loss (summed over steps, in nats), grads named d + parameter name, and
    ps (T, 1, v) the predicted distributions.
    """
    xs = one_hot(inputs)  # (T, 1, v)
    ids = [VOCAB.index(ch) for ch in targets]
    # forward
    hs, cache = CELLS[cell].forward(p, xs)  # (T, 1, h)
    ys = hs @ p["Why"].T + p["by"]  # (T, 1, v)
    ys = ys - ys.max(axis=-1, keepdims=True)  # stable softmax: same p, no overflow
    ps = np.exp(ys) / np.exp(ys).sum(axis=-1, keepdims=True)
    loss = -sum(np.log(ps[t, 0, c]) for t, c in enumerate(ids))
    # backward
    dys = ps.copy()
    for t, c in enumerate(ids):
        dys[t, 0, c] -= 1  # softmax + cross-entropy: dL/dy = p - onehot(target)
    dWhy = np.einsum("tbv,tbh->vh", dys, hs)
    dby = dys.sum(axis=(0, 1))
    dhs = dys @ p["Why"]  # (T, 1, h): dL/dh_t from the read-out
    grads = CELLS[cell].backward(p, cache, dhs)
    grads = {k: v for k, v in grads.items() if k not in ("dxs", "dh0", "dc0")}
    grads.update(dWhy=dWhy, dby=dby)
    return float(loss), grads, ps


def predict(p: dict, cell: str, inputs: str = "hell") -> str:
    """The most likely next character after each character of ``inputs``."""
    _, _, ps = loss_fun(p, cell, inputs, inputs)  # targets unused for the argmax
    return "".join(VOCAB[i] for i in ps[:, 0].argmax(axis=-1))


def gradcheck(p: dict, cell: str, inputs="hell", targets="ello", eps=1e-5) -> dict[str, float]:
    """Max relative error between the hand-written gradients and central finite differences.

    For every entry w of every parameter: (L(w + eps) - L(w - eps)) / (2 eps), compared to the
    BPTT gradient by |num - ana| / max(|num| + |ana|, 1e-12). About 1e-7 or less is right.
    """
    _, grads, _ = loss_fun(p, cell, inputs, targets)
    errors = {}
    for name, w in p.items():
        worst = 0.0
        for ix in np.ndindex(w.shape):
            old = w[ix]
            w[ix] = old + eps
            plus = loss_fun(p, cell, inputs, targets)[0]
            w[ix] = old - eps
            minus = loss_fun(p, cell, inputs, targets)[0]
            w[ix] = old
            num, ana = (plus - minus) / (2 * eps), grads["d" + name][ix]
            worst = max(worst, abs(num - ana) / max(abs(num) + abs(ana), 1e-12))
        errors[name] = worst
    return errors


def train(
    cell: str = "rnn",
    steps: int = 100,
    lr: float = 0.1,
    method: str = "adagrad",
    hidden: int = 3,
    seed: int = 0,
    text: str = "hello",
) -> dict:
    """Fit the model to predict text[1:] from text[:-1] with hand-written BPTT.

    ``method`` "sgd": w -= lr * dw; "adagrad": mem += dw^2, w -= lr * dw / sqrt(mem + 1e-8)
    (min-char-rnn). Gradients are clipped to [-5, 5] elementwise, as in min-char-rnn.
    Returns {"params", "losses" (one per step), "predictions" (one string per step)}.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {tuple(CELLS)}, got {cell!r}")
    if method not in ("sgd", "adagrad"):
        raise ValueError(f"method must be 'sgd' or 'adagrad', got {method!r}")
    inputs, targets = text[:-1], text[1:]
    p = init_params(cell, hidden, seed)
    mem = {k: np.zeros_like(v) for k, v in p.items()}
    losses, predictions = [], []
    for _ in range(steps):
        loss, grads, ps = loss_fun(p, cell, inputs, targets)
        losses.append(loss)
        predictions.append("".join(VOCAB[i] for i in ps[:, 0].argmax(axis=-1)))
        for name, w in p.items():
            dw = np.clip(grads["d" + name], -5, 5)  # against exploding gradients
            if method == "sgd":
                w -= lr * dw
            else:
                mem[name] += dw * dw
                w -= lr * dw / np.sqrt(mem[name] + 1e-8)
    return {"params": p, "losses": losses, "predictions": predictions}


def main(argv: list[str] | None = None) -> None:
    cell = (argv if argv is not None else sys.argv[1:] or ["rnn"])[0]
    run = train(cell, steps=100)
    print(f"{cell}: input 'hell', target 'ello', vocabulary {VOCAB!r}, 3 hidden units")
    for k in (0, 1, 2, 5, 10, 20, 50, 99):
        print(f"step {k:3d}  loss {run['losses'][k]:.4f}  predicts {run['predictions'][k]!r}")
    errors = gradcheck(init_params(cell), cell)
    print("gradient check (max relative error vs finite differences):")
    for name, err in errors.items():
        print(f"  d{name:4s} {err:.2e}")


if __name__ == "__main__":
    main()
