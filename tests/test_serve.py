"""rnnkit serve: the JSON endpoints give what rnnkit.load gives, refuse bad input with a 4xx
JSON error naming the limit and stay up, keep 50 concurrent requests apart, and the page works
in headless Chromium (no console errors; typing a prime shows the API's text)."""

import itertools
import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import train_run

import rnnkit

flask = pytest.importorskip("flask")
from rnnkit.serve import LIMITS, create_app  # noqa: E402


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("serve") / "fox.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    values = {"data.path": str(corpus), "model.hidden": 16, "model.layers": 1, "model.embed": 8}
    values |= {"tbptt.k1": 16, "data.batch_size": 4, "train.steps": 8, "train.eval_every": 4}
    return rnnkit.load(train_run("charlm", tmp_path_factory.mktemp("serve") / "lm", **values))


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    words = ["red", "blue", "cat", "dog", "sun"]
    lines = [f"{a} {b}\t{b} {a}" for a, b in itertools.permutations(words, 2)]
    (tmp / "p.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    values = {"data.source": "tsv", "data.path": str(tmp / "p.tsv"), "data.n_val": 3}
    values |= {"data.n_test": 3, "data.src_tokenizer": "word", "data.tgt_tokenizer": "word"}
    values |= {"model.hidden": 16, "model.embed": 8, "train.steps": 10, "train.eval_every": 5}
    return rnnkit.load(train_run("translate", tmp / "run", **values))


def _post(client, path, payload):
    r = client.post(path, json=payload)
    return r.status_code, r.get_json()


def test_generate_equals_the_api_and_bad_input_is_refused(lm):
    client = create_app(lm).test_client()
    status, got = _post(client, "/api/generate", {"prime": "The ", "length": 30, "seed": 4,
                                                  "temperature": 0.7, "unit": 2})  # fmt: skip
    assert status == 200 and got["text"] == lm.generate("The ", 30, 0.7, 0, 4)
    assert "".join(got["tokens"]) == got["text"] and len(got["activations"]) == len(got["text"])
    assert all(-1 <= a <= 1 for a in got["activations"]) and got["units"] == 16
    cases = [
        ({"prime": "x" * (LIMITS["prime"] + 1)}, 413, "prime", LIMITS["prime"]),
        ({"prime": 5}, 400, "prime", None),
        ({"prime": "The ", "length": LIMITS["length"] + 1}, 400, "length", LIMITS["length"]),
        ({"prime": "The ", "unit": 16}, 400, "unit", 15),
        ({"prime": "The ", "temperature": "hot"}, 400, "temperature", None),
        ({"prime": "\u2603"}, 422, None, None),  # a character the model never saw
    ]
    for payload, code, field, limit in cases:
        status, err = _post(client, "/api/generate", payload)
        assert status == code and err["field"] == field and err["limit"] == limit, (payload, err)
        assert err["error"]
    assert client.post("/api/generate", data="not json").status_code == 400
    assert client.post("/api/translate", json={"text": "x"}).get_json()["field"] == "path"
    assert client.get("/nowhere").status_code == 404
    status, again = _post(client, "/api/generate", {"prime": "The ", "length": 5})
    assert status == 200 and again["text"].startswith("The ")  # still up
    info = client.get("/api/info").get_json()
    assert info["task"] == "charlm" and info["calls"] == ["generate"]


def test_translate_endpoint_equals_the_api(pairs_run):
    client = create_app(pairs_run).test_client()
    status, got = _post(client, "/api/translate", {"text": "red cat"})
    expected = pairs_run.translate("red cat", attention=True)
    assert status == 200 and got["text"] == expected.text
    assert got["confidence"] == pytest.approx(expected.confidence)
    assert len(got["attention"]) == len(got["output_tokens"]) and got["source_tokens"]
    status, err = _post(client, "/api/translate", {"text": "x" * 501})
    assert status == 413 and err["limit"] == 500


def test_fifty_concurrent_requests_keep_their_own_state(lm):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, create_app(lm), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}/api/generate"
    primes = ["The ", "the ", "fox ", "dog. ", "lazy "]

    def ask(i):
        payload = {"prime": primes[i % 5], "length": 25, "seed": i, "temperature": 0.9}
        request = urllib.request.Request(url, json.dumps(payload).encode(),
                                         {"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as r:
            return payload, json.loads(r.read())["text"]

    try:
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(ask, range(50)))
    finally:
        server.shutdown()
    assert len(answers) == 50
    for payload, text in answers:
        assert text == lm.generate(payload["prime"], 25, 0.9, 0, payload["seed"]), payload


def test_the_page_in_headless_chromium(lm):
    from helpers import on_the_page

    got, errors = on_the_page(
        lm,
        "$('prime').value = 'fox '; $('length').value = 40; $('seed').value = 7;"
        "$('temperature').value = 0.6; $('unit').value = 3; $('go').click();",
        {
            "shown": "$('out').dataset.text",
            "spans": "$('out').querySelectorAll('span').length",
            "colour": "$('out').querySelector('span').style.background",
        },
    )
    assert errors == []
    assert got["shown"] == lm.generate("fox ", 40, 0.6, 0, 7)
    assert got["spans"] == len(got["shown"]) and got["colour"].startswith("rgba")


def test_a_failure_inside_is_a_json_500_and_the_server_stays_up(lm, monkeypatch):
    app = create_app(lm)
    client = app.test_client()
    task = type(lm.task)
    real = task.sample

    def broken(self, *args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(task, "sample", broken)
    r = client.post("/api/generate", json={"prime": "The "})
    assert r.status_code == 500 and r.get_json()["error"] == "internal error: ValueError: a bug"
    monkeypatch.setattr(task, "sample", real)
    assert client.post("/api/generate", json={"prime": "The ", "length": 3}).status_code == 200
