"""Shared by several test files (the tests folder is on sys.path under pytest)."""

from rnnkit import tasks
from rnnkit.config import build


def train_run(name: str, out, **overrides):
    """Train task ``name`` into the run directory ``out`` with dotted ``overrides``; ``out``."""
    task = tasks.get(name)
    task.train(build(task.Config, overrides=overrides), out, progress=False)
    return out


def on_the_page(model, action: str, read: dict[str, str], files=(), timeout: float = 60.0):
    """Serve ``model`` (a `rnnkit.api.Model`) on a free port and open its page in headless
    Chromium; put ``files`` into its #file input, run the JavaScript ``action``, wait until the
    page shows a result ($('out').dataset.text), then evaluate each expression of ``read``.
    Returns ({name: value}, the page's errors). Skips the test when Chromium is missing."""
    import threading
    import time

    import pytest
    from test_viz import Chromium, needs_chromium
    from werkzeug.serving import make_server

    from rnnkit.serve import create_app

    if needs_chromium.args[0]:
        pytest.skip(needs_chromium.kwargs["reason"])
    server = make_server("127.0.0.1", 0, create_app(model), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Chromium()
    try:
        s = browser.open(f"http://127.0.0.1:{server.port}/")

        def js(expression):
            return browser.call("Runtime.evaluate", session=s, expression=expression)["result"]

        if files:
            root = browser.call("DOM.getDocument", session=s)["root"]["nodeId"]
            node = browser.call("DOM.querySelector", session=s, nodeId=root, selector="#file")
            browser.call("DOM.setFileInputFiles", session=s, files=[str(f) for f in files],
                         nodeId=node["nodeId"])  # fmt: skip
        js(action)
        deadline = time.monotonic() + timeout
        while not js("$('out').dataset.text || ''").get("value") and time.monotonic() < deadline:
            time.sleep(0.1)
        values = {name: js(expression).get("value") for name, expression in read.items()}
        browser.settle(0.3)
        return values, browser.errors()
    finally:
        browser.close()
        server.shutdown()


def onnx_greedy(encoder, decoder, feed: dict, steps: int, on_step=None) -> list[list[int]]:
    """Greedy decoding through an exported encoder and decoder step (ONNX Runtime sessions):
    the encoder once on ``feed``, then the decoder a step at a time, its state and its argmax
    fed back, until every row has written EOS or after ``steps`` steps. ``on_step(outputs,
    memory)`` sees each step's outputs by name. Returns each row's tokens, EOS excluded."""
    import numpy as np

    from rnnkit.data.vocab import BOS, EOS

    names = [o.name for o in encoder.get_outputs()]
    enc = dict(zip(names, encoder.run(None, feed), strict=True))
    memory = {k: enc[k] for k in ("states", "mask", "keys") if k in enc}
    state = {k[:-1]: v for k, v in enc.items() if k.endswith("0")}  # h0, c0, feed0
    n = len(memory["states"])
    y = np.full(n, BOS, dtype=np.int64)
    words, done = [[] for _ in range(n)], np.zeros(n, bool)
    step_names = [o.name for o in decoder.get_outputs()]
    for _ in range(steps):
        out = decoder.run(None, {"y_prev": y, **state, **memory})
        got = dict(zip(step_names, out, strict=True))
        state = {k: got[f"{k}_next"] for k in state}
        if on_step is not None:
            on_step(got, memory)
        y = got["logits"].argmax(-1)
        for i, token in enumerate(y.tolist()):
            done[i] |= token == EOS
            if not done[i]:
                words[i].append(token)
        if done.all():
            break
    return words
