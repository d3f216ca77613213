"""The run report: one self-contained HTML page that shows what a run did and what it learnt.

    header        task, rnnkit version, final metrics (metrics.json), the resolved config
    training      loss per step with the evaluation metrics, learning rate, gradient norm and
                  the clipping threshold (metrics.jsonl)
    task sections the task's own, from `Task.report` (charlm: a sample, gradient flow through
                  time, units that track quotes / line position / bracket depth as coloured
                  text, and gate saturation)

Images are embedded as base64 PNG and the style sheet is inline: no script, no external URL,
so the file can be mailed or opened offline. A task section that cannot be drawn (its corpus
moved, say) becomes a note on the page instead of an error.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError
from rnnkit.run import RunDir, atomic_write_bytes
from rnnkit.viz import figure, png_bytes

__all__ = ["write_report", "render", "curves_figure", "image_html", "table_html"]

STEP_KEYS = {"step", "loss", "grad_norm", "lr", "seconds", "train_seconds", "wall_seconds"}
STEP_KEYS |= {"best", "best_step", "skipped"}

CSS = """
body { font-family: sans-serif; max-width: 1150px; margin: 20px auto; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
img { max-width: 100%; }
pre, .acts { font-family: monospace; font-size: 13px; white-space: pre-wrap; line-height: 1.5;
             border: 1px solid #ccc; padding: 6px; background: #fafafa; }
.acts { background: #fff; margin: 4px 0 14px 0; }
.unit-title { font-size: 13px; font-weight: bold; }
.note { color: #a33; }
"""


def image_html(fig) -> str:
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def table_html(rows: dict) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if v is None else str(v)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _records(run: RunDir) -> list[dict]:
    return run.read_records()


# ----------------------------------------------------------------------------- training curves


def curves_figure(records: list[dict], clip: float = 0.0):
    """Loss per step (and its 50-step mean) with every evaluation metric on a second axis;
    learning rate when logged; gradient norm on a log scale with the clipping threshold."""
    steps = np.array([r["step"] for r in records if "loss" in r])
    loss = np.array([r["loss"] for r in records if "loss" in r], dtype=float)
    evals = sorted({k for r in records for k, v in r.items() if k not in STEP_KEYS and _num(v)})
    lrs = {r["lr"] for r in records if _num(r.get("lr"))}
    has_lr = len(lrs) > 1  # a constant rate goes into the loss panel's title instead
    fig = figure(12, 3.6)
    axes = fig.subplots(1, 3 if has_lr else 2)
    ax = axes[0]
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="training loss")
    if len(loss) >= 10:
        w = min(50, len(loss) // 5)
        ax.plot(steps[w - 1 :], np.convolve(loss, np.ones(w) / w, "valid"), label=f"{w}-step mean")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    if evals:
        twin = ax.twinx()
        for i, key in enumerate(evals):
            pts = [(r["step"], r[key]) for r in records if _num(r.get(key))]
            twin.plot(*zip(*pts, strict=True), "o-", color=f"C{i + 2}", ms=4, label=key)
        twin.set_ylabel(", ".join(evals))
        twin.legend(fontsize=8, loc="center right")
    ax.set_title(
        "loss and evaluation" + (f" (lr {lrs.pop():g})" if len(lrs) == 1 else ""), fontsize=10
    )
    if has_lr:
        lr = [(r["step"], r["lr"]) for r in records if "lr" in r]
        axes[1].plot(*zip(*lr, strict=True), lw=1.2)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("learning rate")
        axes[1].grid(True, alpha=0.3)
        axes[1].set_title("learning rate", fontsize=10)
    ax = axes[-1]
    g = [(r["step"], r["grad_norm"]) for r in records if _num(r.get("grad_norm"))]
    if g:
        ax.plot(*zip(*g, strict=True), lw=0.8)
        ax.set_yscale("log")
    if clip > 0:
        ax.axhline(clip, color="k", ls="--", lw=0.8, label=f"clip {clip:g}")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm (before clipping)")
    ax.grid(True, alpha=0.3)
    ax.set_title("gradient norm", fontsize=10)
    return fig


def _num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# ----------------------------------------------------------------------------- charlm


# ----------------------------------------------------------------------------- the page


def render(run_dir, allow_changed_data: bool = False, **options) -> str:
    """The report of ``run_dir`` as one HTML string (see `write_report`)."""
    from rnnkit import tasks

    run = RunDir.open(run_dir, need=())
    meta = run.read_json("run.json", dict)
    config = run.read_json("config.json", dict)
    has_final = (run.path / "metrics.json").exists() or (run.path / "metrics.json").is_symlink()
    final = run.read_json("metrics.json", dict) if has_final else {}
    records = _records(run)
    clip = _flatten(config).get("train.clip", _flatten(config).get("clip", 0.0))
    task = meta.get("task", "?")
    title = f"rnnkit report: {run.path.name} ({task})"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        table_html({"task": task, "rnnkit": meta.get("rnnkit", "?"), "run directory": run.path}),
        "<h2>Final metrics</h2>",
        table_html(final) if final else _note_text("no metrics.json: the run did not finish"),
        "<h2>Training</h2>",
    ]
    if records:
        body.append(image_html(curves_figure(records, clip if _num(clip) else 0.0)))
    else:
        body.append('<p class="note">metrics.jsonl is empty: nothing was logged</p>')
    owner = tasks.of_run(run.path)
    owner.config_of(run)  # a config.json the task cannot read is an error, not a note
    if (run.path / "model.safetensors").exists():
        try:
            loaded = owner.load(run.path)
            loaded.allow_changed_data = allow_changed_data  # sections check before reading data
            sections = owner.report(loaded, **options)
        except RnnkitError as err:
            sections = [("Model", lambda err=err: _note(err))]
        for name, draw in sections:
            try:
                content = draw()
            except RnnkitError as err:
                content = _note(err)
            body.append(f"<h2>{html.escape(name)}</h2>{content}")
    body += ["<h2>Config</h2>", table_html(_flatten(config))]
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )


def _note(err: RnnkitError) -> str:
    return _note_text(f"not drawn: {err}")


def _note_text(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def write_report(run_dir, out=None, **options) -> Path:
    """Write the run's report, one self-contained HTML file, and return its path.

    ``out`` defaults to ``RUN/report.html``. The page holds the final metrics, training curves
    (loss with evaluation metrics, learning rate, gradient norm and clipping threshold), the
    task's own sections (`Task.report`; charlm: a sample, gradient flow through time,
    interpretable units as coloured text, gate saturation) and the config; images are inline
    PNG, nothing is fetched. ``options`` go to the task's sections (charlm: ``sample_length``
    characters sampled, ``unit_chars`` validation characters the unit search reads). Raises
    RunDirError for a missing or incomplete run directory.
    """
    page = render(run_dir, **options)
    if out is None:  # inside the run: never through a link planted there
        path = RunDir(run_dir).inside("report.html")
        atomic_write_bytes(path, page.encode("utf-8"))
        return path
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
