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
