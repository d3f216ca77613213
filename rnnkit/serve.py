"""A live page to play with a trained run: ``rnnkit serve RUN [--port 8000]``.

A Flask app bound to 127.0.0.1 by default. One page per kind of task, all of it served by this
module (inline style and script, nothing fetched from elsewhere), over JSON endpoints that
programs can call too:

    GET  /               the page: a language model generates from a prime with a temperature
                         slider, each character coloured by a chosen hidden unit's activation;
                         a sequence-to-sequence run translates, with its confidence and its
                         attention map; a sentiment run classifies; a forecaster draws its
                         forecast; caption and recognition runs read an uploaded file; a
                         PixelRNN draws digits and completes held-out ones; a video run
                         labels each frame of an uploaded clip; word vectors give a word's
                         nearest words and answer analogies; a memory task shows a held-out
                         sequence, the model's answer and (an NTM) where it wrote and read
    GET  /api/info       {"task", "calls", "limits"}
    POST /api/generate   {"prime", "length", "temperature", "top_k", "seed", "unit"}
                         -> {"text", "tokens", "activations", "units"}
    POST /api/translate  {"text", "beam"} -> {"text", "confidence", "low_confidence",
                         "problem", "attention", "source_tokens", "output_tokens"}
    POST /api/classify   {"texts": [...]} -> {"results": [{"text", "label", "p_positive"}]}
    POST /api/caption    an image file (multipart "file") -> {"caption", "n_best", "notes"}
    POST /api/recognize  a recording or handwriting file (multipart "file") -> {"text",
                         "score", "notes"}
    POST /api/forecast   {"horizon", "seed"} -> {"series": [{"id", "history": {"dates",
                         "values"}, "forecast": {"dates", "mean", "lo-80", "hi-80", ...}}]}
    POST /api/sample     {"n", "temperature", "seed"} -> {"images": n x 8 x 8 levels, "levels"}
    POST /api/complete   {"n", "rows", "temperature", "seed"} -> {"given": the first n held-out
                         digits, "images": their first rows kept and the rest drawn, "levels"}
    POST /api/label      a clip file (multipart "file": .npy, GIF, APNG) -> {"frames",
                         "labels": {model: [class per frame]}, "notes"}
    POST /api/neighbours {"words": [...], "top"} -> {"neighbours": {word: [[word, cosine], ...]}}
    POST /api/analogy    {"text": "king - man + woman", "top"} -> {"answers": [[word, cosine]]}
    POST /api/example    {"length", "seed"} -> one held-out sequence of a memory task through
                         the model: {"inputs", "targets", "outputs" (t, k) each, "mask" (t,)
                         [, "w_write", "w_read" (t, n): an NTM's weightings over memory]}

Input that is too long or of the wrong kind gets a 4xx JSON error naming the field and its
limit ({"error", "field", "limit"}); the server stays up. Requests run one at a time through
the model (a lock), so concurrent requests never share a state; each gets what
`rnnkit.load(RUN)` gives for its input.
"""

from __future__ import annotations

import json
import threading

from rnnkit.api import Model
from rnnkit.api import load as load_model
from rnnkit.errors import RnnkitError

LIMITS = {
    "prime": 1000,
    "length": 2000,
    "text": 500,
    "texts": 64,
    "beam": 16,
    "top_k": 10000,
    "horizon": 500,
    "images": 64,
    "file_bytes": 5 * 2**20,  # an uploaded image or recording
    "top": 100,  # nearest words
    "steps": 1000,  # a memory task's sequence length
}


class BadInput(Exception):
    def __init__(self, message: str, field: str, limit=None, status: int = 400):
        super().__init__(message)
        self.message, self.field, self.limit, self.status = message, field, limit, status


def _get(body: dict, field: str, kind, default=None, low=None, high=None):
    """body[field] as ``kind`` (str, int, float), within [low, high]; BadInput otherwise."""
    value = body.get(field, default)
    if value is None:
        raise BadInput(f"'{field}' is missing", field)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadInput(
            f"'{field}' must be {'a string' if kind is str else 'a number'}, got "
            f"{type(value).__name__}",
            field,
        )
    size = len(value) if kind is str else value
    if high is not None and size > high:
        what = "characters" if kind is str else ""
        raise BadInput(
            f"'{field}' is over its limit: {size} {what}, at most {high}".replace("  ", " "),
            field,
            high,
            413 if kind is str else 400,
        )
    if low is not None and size < low:
        raise BadInput(f"'{field}' must be at least {low}, got {size}", field, low)
    return value


def _strings(body: dict, field: str) -> list[str]:
    """body[field] as a list of 1 to LIMITS["texts"] strings, each of 1 to LIMITS["text"]
    characters; BadInput naming the field (or the item) otherwise."""
    items = body.get(field)
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise BadInput(f"'{field}' must be a list of strings", field)
    if not 1 <= len(items) <= LIMITS["texts"]:
        raise BadInput(f"'{field}' holds {len(items)} items; 1 to {LIMITS['texts']}", field,
                       LIMITS["texts"], 413 if items else 400)  # fmt: skip
    for i, t in enumerate(items):
        _get({f"{field}[{i}]": t}, f"{field}[{i}]", str, None, 1, LIMITS["text"])
    return items


def create_app(model: Model):
    """The Flask app serving ``model`` (a `rnnkit.api.Model`)."""
    from flask import Flask, Response, request

    app = Flask("rnnkit.serve")
    app.config["MAX_CONTENT_LENGTH"] = LIMITS["file_bytes"]
    lock = threading.Lock()
    calls = model.calls

    def reply(obj, status: int = 200) -> Response:
        return Response(json.dumps(obj), status=status, mimetype="application/json")

    def need(call: str) -> None:
        if call not in calls:
            raise BadInput(f"a {model.task.name!r} run has no {call} (its: {calls})", "path")

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadInput("the request body must be a JSON object", "body")
        return data

    @app.errorhandler(BadInput)
    def bad_input(err: BadInput):
        return reply({"error": err.message, "field": err.field, "limit": err.limit}, err.status)

    @app.errorhandler(RnnkitError)
    def refused(err: RnnkitError):
        return reply({"error": err.message, "hint": err.hint, "field": None, "limit": None}, 422)

    @app.errorhandler(500)
    def failed(err):  # a bug, not the caller's input: say so in JSON and stay up
        cause = getattr(err, "original_exception", None) or err
        return reply({"error": f"internal error: {type(cause).__name__}: {cause}"}, 500)

    @app.errorhandler(413)
    def too_large(err):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return reply({"error": f"the upload is over {limit} bytes", "field": "file",
                      "limit": limit}, 413)  # fmt: skip

    @app.errorhandler(404)
    def not_found(err):
        return reply({"error": f"no such page: {request.path}", "field": None, "limit": None}, 404)

    @app.errorhandler(405)
    def wrong_method(err):
        return reply({"error": f"{request.method} is not allowed on {request.path}"}, 405)

    @app.get("/")
    def page():
        return Response(_page(model), mimetype="text/html")

    @app.get("/api/info")
    def info():
        return reply({"task": model.task.name, "calls": list(calls), "limits": LIMITS})

    @app.post("/api/generate")
    def generate():
        need("generate")
        b = body()
        prime = _get(b, "prime", str, None, 1, LIMITS["prime"])
        length = _get(b, "length", int, 200, 0, LIMITS["length"])
        temperature = _get(b, "temperature", float, 1.0, 0.01, 100.0)
        top_k = _get(b, "top_k", int, 0, 0, LIMITS["top_k"])
        seed = _get(b, "seed", int, 0, 0, 2**31 - 1)
        unit = _get(b, "unit", int, 0, 0, 10**6)
        with lock:
            text = model.generate(prime, length, temperature, top_k, seed)
            tokens, activations, units = _activations(model, text, unit)
        return reply({"text": text, "tokens": tokens, "activations": activations, "units": units})

    @app.post("/api/translate")
    def translate():
        need("translate")
        b = body()
        text = _get(b, "text", str, None, 1, LIMITS["text"])
        beam = _get(b, "beam", int, model.config.decode.beam, 1, LIMITS["beam"])
        with lock:
            t = model.translate(text, beam=beam, attention=True)
        attention = t.attention.tolist() if t.attention is not None else None
        return reply(
            {
                "text": t.text,
                "confidence": t.confidence,
                "low_confidence": t.low_confidence,
                "problem": t.problem,
                "attention": attention,
                "source_tokens": t.labels[0],
                "output_tokens": [*t.labels[1]],
            }
        )

    @app.post("/api/classify")
    def classify():
        need("classify")
        texts = _strings(body(), "texts")
        with lock:
            results = model.classify(texts)
        return reply({"results": results})

    def upload() -> tuple[str, object]:
        """The uploaded file saved to a temporary path with its suffix (the readers go by it)."""
        import tempfile
        from pathlib import Path

        file = request.files.get("file")
        if file is None or not file.filename:
            raise BadInput("send the file as multipart form field 'file'", "file")
        suffix = Path(file.filename).suffix.lower()[:8]
        folder = tempfile.TemporaryDirectory(prefix="rnnkit-serve-")
        path = str(Path(folder.name) / f"upload{suffix}")
        file.save(path)
        file.close()
        return path, folder

    def noted(call):
        """call() -> (result, the rnnkit notes it gave: images resized, sound resampled)."""
        import warnings

        from rnnkit.errors import Note

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Note)
            out = call()
        return out, [str(w.message) for w in caught if issubclass(w.category, Note)]

    def read_upload():
        """The uploaded file through the task's reader: (its input, the reader's notes)."""
        path, folder = upload()
        with folder:
            loaded = model.loaded
            return noted(lambda: loaded.task.read(loaded, path))

    @app.post("/api/caption")
    def caption():
        need("caption")
        with lock:
            picture, notes = read_upload()
            n_best = model.caption(picture[None], n_best=min(3, model.config.decode.beam))[0]
        return reply({"caption": n_best[0][0], "n_best": [[c, float(s)] for c, s in n_best],
                      "notes": notes})  # fmt: skip

    @app.post("/api/recognize")
    def recognize():
        need("recognize")
        path, folder = upload()
        with folder, lock:
            found, notes = noted(lambda: model.recognize([path]))
        return reply({"text": found[0]["text"], "score": float(found[0]["score"]),
                      "notes": notes})  # fmt: skip

    @app.post("/api/forecast")
    def forecast():
        need("forecast")
        b = body()
        horizon = _get(b, "horizon", int, model.config.data.horizon, 1, LIMITS["horizon"])
        seed = _get(b, "seed", int, 0, 0, 2**31 - 1)
        import numpy as np

        with lock:
            found, setup = model.forecast(horizon, seed=seed)
        series = []
        for s in setup.series:
            dates, fc = found[s.uid]
            keep = max(3 * horizon, 36)
            history = {"dates": [str(d.date()) for d in s.dates[-keep:]],
                       "values": [float(v) for v in s.values[-keep:]]}  # fmt: skip
            future = {"dates": [str(d.date()) for d in dates]}
            future |= {
                k: np.asarray(v, dtype=float).tolist() for k, v in fc.items() if np.ndim(v) == 1
            }  # fmt: skip (mean and quantiles, not samples)
            series.append({"id": str(s.uid), "history": history, "forecast": future})
        return reply({"series": series})

    @app.post("/api/sample")
    def sample():
        need("sample")
        b = body()
        n = _get(b, "n", int, 8, 1, LIMITS["images"])
        temperature = _get(b, "temperature", float, 1.0, 0.05, 100.0)
        seed = _get(b, "seed", int, 0, 0, 2**31 - 1)
        with lock:
            images = model.sample(n, temperature, seed)
        return reply({"images": images.tolist(), "levels": _levels(model)})

    @app.post("/api/complete")
    def complete():
        need("complete")
        from rnnkit.tasks.pixels import SIDE, digit_levels

        b = body()
        n = _get(b, "n", int, 8, 1, LIMITS["images"])
        rows = _get(b, "rows", int, SIDE // 2, 0, SIDE)
        temperature = _get(b, "temperature", float, 1.0, 0.05, 100.0)
        seed = _get(b, "seed", int, 0, 0, 2**31 - 1)
        with lock:
            given = digit_levels(model.config.data, "test")[:n]
            images = model.complete(given, rows, temperature, seed)
        return reply({"given": given.tolist(), "images": images.tolist(), "rows": rows,
                      "levels": _levels(model)})  # fmt: skip

    @app.post("/api/label")
    def label():
        need("label")
        with lock:
            clip, notes = read_upload()
            labels = model.label(clip)
        return reply({"frames": len(clip), "labels": labels, "notes": notes})

    @app.post("/api/neighbours")
    def neighbours():
        need("neighbours")
        b = body()
        words = _strings(b, "words")
        top = _get(b, "top", int, 10, 1, LIMITS["top"])
        with lock:
            found = model.neighbours(words, top)
        return reply({"neighbours": {w: [[n, float(c)] for n, c in near]
                                     for w, near in found.items()}})  # fmt: skip

    @app.post("/api/analogy")
    def analogy():
        need("analogy")
        b = body()
        text = _get(b, "text", str, None, 1, LIMITS["text"])
        top = _get(b, "top", int, 5, 1, LIMITS["top"])
        with lock:
            answers = model.analogy(text, top)
        return reply({"answers": [[w, float(c)] for w, c in answers]})

    @app.post("/api/example")
    def example():
        need("example")
        b = body()
        length = _get(b, "length", int, 0, 0, LIMITS["steps"])  # 0: the task's own
        seed = _get(b, "seed", int, 0, 0, 2**31 - 1)
        with lock:
            found = model.example(length or None, seed)
        return reply(found)

    return app


def _levels(model: Model) -> int:
    from rnnkit.tasks.pixels import levels

    return levels(model.config.data)


def _activations(model: Model, text: str, unit: int):
    """Characters of ``text`` and the last layer's unit ``unit`` after each (charlm); for other
    models the text alone."""
    import torch

    vocab = model.loaded.setup.vocab
    if not hasattr(vocab, "chars"):
        return [text], [], 0
    module = model.module
    with torch.no_grad():
        ids = vocab.encode(text).unsqueeze(0).to(model.device)
        h, _ = module.rnn(module.embed(ids))  # (1, t, h): the last layer's h_t
    units = h.size(-1)
    if unit >= units:
        raise BadInput(f"'unit' must be below {units}, got {unit}", "unit", units - 1)
    return list(text), [round(v, 4) for v in h[0, :, unit].tolist()], units


def serve(run: str, host="127.0.0.1", port=8000, device="cpu", weights="best") -> None:
    """Serve ``run`` (its ``weights``) until Ctrl-C, printing the address."""
    from werkzeug.serving import make_server

    model = load_model(run, device, weights)
    server = make_server(host, port, create_app(model), threaded=True)
    print(f"rnnkit: serving {model.task.name} run {run} at http://{host}:{server.port}/ "
          "(Ctrl-C stops)", flush=True)  # fmt: skip
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ----------------------------------------------------------------------------- the page
STYLE = """
body { font-family: sans-serif; max-width: 980px; margin: 24px auto; color: #222; }
textarea, input[type=text] { width: 100%; font-family: monospace; font-size: 14px; }
#out { font-family: monospace; white-space: pre-wrap; border: 1px solid #ccc; padding: 8px;
       min-height: 60px; line-height: 1.5; }
.err { color: #a33; } .low { color: #a60; } table.att td { width: 22px; height: 18px; }
table.att th { font-family: monospace; font-weight: normal; font-size: 12px; }
table.px { display: inline-table; border-collapse: collapse; margin: 4px; }
table.px td { width: 9px; height: 9px; padding: 0; } table.px td.given { outline: 1px solid #c22; }
"""

SCRIPT = r"""
const $ = (id) => document.getElementById(id);
async function answer(r) {  // the JSON reply, or its error (and limit) thrown
  const data = await r.json();
  const limit = data.limit != null ? ' (limit ' + data.limit + ')' : '';
  if (!r.ok) throw new Error(data.error + limit);
  return data;
}
async function call(path, payload) {
  return answer(await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                   body: JSON.stringify(payload)}));
}
function show(err) { $('msg').textContent = err.message; $('msg').className = 'err'; }
function colour(v) {  // -1 blue .. 0 white .. +1 red
  const a = Math.min(1, Math.abs(v));
  return v >= 0 ? `rgba(220,40,40,${a})` : `rgba(40,90,220,${a})`;
}
async function generate() {
  $('msg').textContent = 'generating...'; $('msg').className = '';
  try {
    const d = await call('/api/generate', {prime: $('prime').value, length: +$('length').value,
      temperature: +$('temperature').value, seed: +$('seed').value, unit: +$('unit').value});
    const out = $('out'); out.textContent = '';
    d.tokens.forEach((ch, i) => {
      const s = document.createElement('span'); s.textContent = ch;
      if (d.activations.length) { s.style.background = colour(d.activations[i]);
                                  s.title = 'unit ' + $('unit').value + ': ' + d.activations[i]; }
      out.appendChild(s);
    });
    out.dataset.text = d.text;
    $('msg').textContent = d.units ? 'coloured by unit ' + $('unit').value + ' of ' + d.units : '';
  } catch (e) { show(e); }
}
async function translate() {
  $('msg').textContent = 'translating...'; $('msg').className = '';
  try {
    const d = await call('/api/translate', {text: $('text').value});
    const out = $('out'); out.dataset.text = d.problem ? '' : d.text;
    out.textContent = d.problem ? d.problem : d.text;
    out.className = d.problem ? 'err' : '';
    $('msg').textContent = 'confidence ' + d.confidence.toFixed(3) +
      (d.low_confidence ? ' (low: the input may not be like the training inputs)' : '');
    $('msg').className = d.low_confidence ? 'low' : '';
    const t = $('att'); t.innerHTML = '';
    if (d.attention) {
      const head = t.insertRow(); head.insertCell();
      d.source_tokens.forEach((s) => { const th = document.createElement('th');
                                       th.textContent = s; head.appendChild(th); });
      d.attention.forEach((row, i) => {
        const tr = t.insertRow(); const th = document.createElement('th');
        th.textContent = d.output_tokens[i] !== undefined ? d.output_tokens[i] : '</s>';
        tr.appendChild(th);
        row.forEach((a) => { const c = tr.insertCell(); c.style.background = colour(a);
                             c.title = a.toFixed(3); });
      });
    }
  } catch (e) { show(e); }
}
function chart(s) {  // history and forecast with its 80% interval, as an inline SVG
  const W = 760, H = 220, h = s.history.values, f = s.forecast;
  const lo = f['lo-80'] || f.mean, hi = f['hi-80'] || f.mean;
  const all = h.concat(f.mean, lo, hi), n = h.length + f.mean.length;
  const min = Math.min(...all), max = Math.max(...all), span = (max - min) || 1;
  const x = (i) => 40 + (W - 50) * i / (n - 1), y = (v) => H - 20 - (H - 40) * (v - min) / span;
  const pt = (k, v) => `${x(k).toFixed(1)},${y(v).toFixed(1)}`;
  const line = (vs, k0) => vs.map((v, i) => pt(k0 + i, v)).join(' ');
  const band = line(hi, h.length) + ' ' + lo.map((v, i) => pt(h.length + i, v)).reverse().join(' ');
  return `<h3>${s.id}</h3><svg width="${W}" height="${H}" role="img">` +
    `<polygon points="${band}" fill="rgba(220,40,40,0.2)"/>` +
    `<polyline points="${line(h, 0)}" fill="none" stroke="#333"/>` +
    `<polyline points="${line(f.mean, h.length)}" fill="none" stroke="#c22"/>` +
    `<text x="40" y="12" font-size="11">${s.history.dates[0]} .. ${f.dates[f.dates.length - 1]}` +
    ` (red: forecast, band: 80%)</text></svg>`;
}
async function forecast() {
  $('msg').textContent = 'forecasting...'; $('msg').className = '';
  try {
    const d = await call('/api/forecast', {horizon: +$('horizon').value});
    $('out').innerHTML = d.series.map(chart).join('');
    $('out').dataset.text = JSON.stringify(d.series.map((s) => s.forecast.mean));
    $('msg').textContent = '';
  } catch (e) { show(e); }
}
async function send(path) {  // the chosen file, as multipart form field 'file'
  const file = $('file').files[0];
  if (!file) throw new Error('choose a file first');
  const form = new FormData(); form.append('file', file);
  return answer(await fetch(path, {method: 'POST', body: form}));
}
async function upload(path) {
  $('msg').textContent = 'reading...'; $('msg').className = '';
  try {
    const d = await send(path);
    const text = d.caption !== undefined ? d.caption : d.text;
    $('out').textContent = text; $('out').dataset.text = text;
    if (d.caption !== undefined && $('file').files[0].type.startsWith('image/')) {
      const img = document.createElement('img'); img.width = 128;
      img.style.imageRendering = 'pixelated'; img.alt = 'the uploaded image';
      img.src = URL.createObjectURL($('file').files[0]); $('out').prepend(img, ' ');
    }
    $('msg').textContent = d.notes.join('; ');
  } catch (e) { show(e); }
}
function grid(image, k, rows) {  // an 8 x 8 image of levels 0..k-1 as a table of grey cells
  const t = document.createElement('table'); t.className = 'px';
  image.forEach((row, i) => { const tr = t.insertRow();
    row.forEach((v) => { const c = tr.insertCell(); const g = Math.round(255 * (1 - v / (k - 1)));
      c.style.background = `rgb(${g},${g},${g})`; if (i < rows) c.className = 'given'; }); });
  return t;
}
async function pixels(what) {
  $('msg').textContent = 'drawing...'; $('msg').className = '';
  try {
    const d = await call('/api/' + what, {n: +$('n').value, temperature: +$('temperature').value,
                                          seed: +$('seed').value});
    const out = $('out'); out.textContent = '';
    const rows = what === 'complete' ? d.rows : 0;
    if (what === 'complete') {
      const p = document.createElement('p'); p.textContent = 'held-out digits:'; out.append(p);
      d.given.forEach((im) => out.append(grid(im, d.levels, 8)));
      const q = document.createElement('p');
      q.textContent = `the same with their first ${d.rows} rows kept (outlined), the rest drawn:`;
      out.append(q);
    }
    d.images.forEach((im) => out.append(grid(im, d.levels, rows)));
    out.dataset.text = JSON.stringify(d.images);
    $('msg').textContent = '';
  } catch (e) { show(e); }
}
async function label() {
  $('msg').textContent = 'reading...'; $('msg').className = '';
  try {
    const d = await send('/api/label');
    const t = $('att'); t.innerHTML = '';
    const head = t.insertRow(); head.insertCell().textContent = 'frame';
    for (let i = 0; i < d.frames; i++) head.insertCell().textContent = i + 1;
    Object.entries(d.labels).forEach(([name, labels]) => {
      const tr = t.insertRow(); tr.insertCell().textContent = name;
      labels.forEach((l) => { tr.insertCell().textContent = l; });
    });
    $('out').textContent = d.frames + ' frames'; $('out').dataset.text = JSON.stringify(d.labels);
    $('msg').textContent = d.notes.join('; ');
  } catch (e) { show(e); }
}
function bars(rows) {  // [[word, cosine], ...] as a table with a bar per row
  const t = document.createElement('table');
  rows.forEach(([w, c]) => { const tr = t.insertRow(); tr.insertCell().textContent = w;
    const bar = tr.insertCell(); bar.style.width = '300px';
    bar.innerHTML = `<div style="background:rgba(220,40,40,0.6);width:${Math.max(0, c) * 100}%">` +
                    `${c.toFixed(3)}</div>`; });
  return t;
}
async function neighbours() {
  $('msg').textContent = ''; $('msg').className = '';
  try {
    const words = $('words').value.split(/[\s,]+/).filter(Boolean);
    const d = await call('/api/neighbours', {words: words, top: +$('top').value});
    const out = $('out'); out.textContent = '';
    Object.entries(d.neighbours).forEach(([w, near]) => {
      const h = document.createElement('h3'); h.textContent = 'nearest to ' + w;
      out.append(h, bars(near)); });
    out.dataset.text = JSON.stringify(d.neighbours);
  } catch (e) { show(e); }
}
async function analogy() {
  $('msg').textContent = ''; $('msg').className = '';
  try {
    const d = await call('/api/analogy', {text: $('analogy').value, top: +$('top').value});
    const out = $('out'); out.textContent = '';
    const h = document.createElement('h3'); h.textContent = $('analogy').value;
    out.append(h, bars(d.answers)); out.dataset.text = JSON.stringify(d.answers);
  } catch (e) { show(e); }
}
function heat(title, rows, lo, hi) {  // rows (t, k) as k rows of t cells: time runs across
  const box = document.createElement('div'); const h = document.createElement('p');
  h.textContent = title; box.append(h);
  const t = document.createElement('table'); t.className = 'px';
  const k = rows.length ? rows[0].length : 0;
  for (let j = 0; j < k; j++) { const tr = t.insertRow();
    rows.forEach((r) => { const c = tr.insertCell(); const v = (r[j] - lo) / ((hi - lo) || 1);
      const g = Math.round(255 * (1 - Math.min(1, Math.max(0, v))));
      c.style.background = `rgb(${g},${g},${g})`; c.title = r[j].toFixed(3); }); }
  box.append(t); return box;
}
async function example() {
  $('msg').textContent = 'running...'; $('msg').className = '';
  try {
    const d = await call('/api/example', {length: +$('length').value, seed: +$('seed').value});
    const out = $('out'); out.textContent = '';
    const span = (m) => [Math.min(0, ...m.flat()), Math.max(1, ...m.flat())];
    out.append(heat('inputs (time runs across)', d.inputs, ...span(d.inputs)));
    out.append(heat('targets (the steps scored)', d.targets, ...span(d.targets)));
    out.append(heat('outputs', d.outputs, ...span(d.outputs)));
    if (d.w_write) {
      out.append(heat('write weighting over memory (head 1)', d.w_write, 0, 1));
      out.append(heat('read weighting over memory (head 1)', d.w_read, 0, 1));
    }
    out.dataset.text = JSON.stringify(d.outputs);
    $('msg').textContent = d.inputs.length + ' steps';
  } catch (e) { show(e); }
}
async function classify() {
  $('msg').textContent = ''; $('msg').className = '';
  try {
    const d = await call('/api/classify', {texts: [$('text').value]});
    const r = d.results[0]; $('out').dataset.text = r.label || String(r.rating);
    $('out').textContent = r.label ? r.label + ' (p positive ' + r.p_positive.toFixed(3) + ')'
                                   : 'rating ' + r.rating.toFixed(2);
  } catch (e) { show(e); }
}
"""

FORMS = {
    "generate": """
<p><label>prime <input type="text" id="prime" value="The "></label></p>
<p><label>temperature <input type="range" id="temperature" min="0.1" max="2" step="0.05"
  value="0.8" oninput="$('tval').textContent = this.value"></label> <span id="tval">0.8</span>
  <label>length <input type="number" id="length" value="200" min="0" max="2000"></label>
  <label>seed <input type="number" id="seed" value="0" min="0"></label>
  <label>hidden unit <input type="number" id="unit" value="0" min="0"></label>
  <button id="go" onclick="generate()">generate</button></p>""",
    "translate": """
<p><input type="text" id="text" value="5 mars 2024"></p>
<p><button id="go" onclick="translate()">translate</button></p>""",
    "forecast": """
<p><label>horizon <input type="number" id="horizon" value="12" min="1" max="500"></label>
<button id="go" onclick="forecast()">forecast</button></p>""",
    "caption": """
<p><input type="file" id="file" accept="image/*">
<button id="go" onclick="upload('/api/caption')">caption</button></p>""",
    "recognize": """
<p><input type="file" id="file"> <button id="go" onclick="upload('/api/recognize')">recognize
</button> (speech: WAV, FLAC or .npy frames; handwriting: PNG or a stroke file)</p>""",
    "sample": """
<p><label>images <input type="number" id="n" value="8" min="1" max="64"></label>
  <label>temperature <input type="number" id="temperature" value="1" min="0.05" step="0.05">
  </label> <label>seed <input type="number" id="seed" value="0" min="0"></label>
  <button id="go" onclick="pixels('sample')">draw new digits</button>
  <button id="complete" onclick="pixels('complete')">complete held-out digits</button></p>""",
    "label": """
<p><input type="file" id="file" accept=".npy,.gif,.png,.apng,.tif,.tiff">
<button id="go" onclick="label()">label each frame</button> (a clip: .npy frames, GIF or
APNG)</p>""",
    "neighbours": """
<p><label>words <input type="text" id="words" value="king queen"></label></p>
<p><label>analogy <input type="text" id="analogy" value="king - man + woman"></label></p>
<p><label>how many <input type="number" id="top" value="10" min="1" max="100"></label>
  <button id="go" onclick="neighbours()">nearest words</button>
  <button id="solve" onclick="analogy()">solve the analogy</button></p>""",
    "example": """
<p><label>length <input type="number" id="length" value="0" min="0" max="1000"></label>
  (0: the task's own) <label>seed <input type="number" id="seed" value="0" min="0"></label>
  <button id="go" onclick="example()">run a held-out sequence</button></p>""",
    "classify": """
<p><input type="text" id="text" value="a gem of a film"></p>
<p><button id="go" onclick="classify()">classify</button></p>""",
}


def _page(model: Model) -> str:
    import html

    kind = next((c for c in FORMS if c in model.calls), None)
    title = f"rnnkit: {model.task.name} ({model.run.name})"
    if kind is None:
        form = (
            f"<p>This page has no form for a {html.escape(model.task.name)} run yet; its calls "
            f"in Python: {html.escape(', '.join(model.calls))} (rnnkit.load).</p>"
        )
    else:
        form = FORMS[kind]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<link rel='icon' href='data:,'><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{form}<div id='out'></div><p id='msg'></p>"
        f"<table class='att' id='att'></table><script>{SCRIPT}</script></body></html>"
    )
