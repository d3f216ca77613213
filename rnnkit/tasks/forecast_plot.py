"""Pictures and files of the forecasting task: history, point forecast and shaded 50 / 80 / 95%
intervals; the backtest's origins per series; forecasts and scores as CSV; report sections."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rnnkit.tasks.forecast_eval import LEVELS
from rnnkit.viz import figure, save_png

SHADES = {50: 0.45, 80: 0.3, 95: 0.15}  # alpha of each interval band


def _band(ax, dates, f: dict, colour: str, label: str) -> None:
    for level in sorted(LEVELS, reverse=True):
        if f"lo-{level}" in f:
            ax.fill_between(
                dates, f[f"lo-{level}"], f[f"hi-{level}"], color=colour,
                alpha=SHADES.get(level, 0.2), linewidth=0, label=f"{level}% interval",
            )  # fmt: skip
    ax.plot(dates, f["mean"], color=colour, linewidth=1.6, label=label)


def plot_forecasts(setup, forecasts: dict, path: str | Path, history: int = 0):
    """One panel per series: the last ``history`` values (default 4 horizons) and the forecast."""
    n = len(forecasts)
    fig = figure(7.5, 2.6 * n)
    for k, s in enumerate(setup.series):
        ax = fig.add_subplot(n, 1, k + 1)
        dates, f = forecasts[s.uid]
        keep = history or 4 * len(dates)
        ax.plot(s.dates[-keep:], s.values[-keep:], color="black", linewidth=1, label="history")
        _band(ax, dates, f, "tab:blue", "forecast (median)")
        ax.set_title(s.uid, fontsize=10)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    return save_png(fig, path)


def backtest_figure(series, forecasts: dict, horizon: int):
    """The series with the model's forecast and intervals at each backtest origin."""
    fig = figure(7.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    first = max(series.origins[0] - 4 * horizon, 0)
    ax.plot(series.dates[first:], series.values[first:], color="black", linewidth=1, label="actual")
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    for k, o in enumerate(series.origins):
        f = forecasts[(series.uid, o)]
        _band(ax, series.dates[o : o + horizon], f, colours[k % len(colours)], f"origin {k + 1}")
    ax.set_title(f"{series.uid}: rolling-origin backtest", fontsize=10)
    ax.legend(fontsize=6, loc="upper left", ncol=2)
    return fig


def plot_backtest(series, forecasts: dict, horizon: int, path: str | Path):
    return save_png(backtest_figure(series, forecasts, horizon), path)


def forecast_csv(forecasts: dict) -> str:
    """unique_id, ds, mean, lo-L, hi-L ... one row per forecast value."""
    out = io.StringIO()
    w = csv.writer(out)
    keys = ["mean"] + [f"{side}-{lv}" for lv in LEVELS for side in ("lo", "hi")]
    w.writerow(["unique_id", "ds", *keys])
    for uid, (dates, f) in forecasts.items():
        for t, d in enumerate(dates):
            w.writerow([uid, d.isoformat(), *(f"{float(f[k][t]):.6g}" for k in keys if k in f)])
    return out.getvalue()


def scores_csv(results: dict) -> str:
    """model, series, metric columns: every score of the backtest."""
    out = io.StringIO()
    w = csv.writer(out)
    metrics = sorted({k for by in results.values() for v in by.values() for k in v})
    w.writerow(["model", "unique_id", *metrics])
    for model, by in results.items():
        for uid, v in by.items():
            w.writerow([model, uid, *(f"{v[k]:.6g}" if k in v else "" for k in metrics)])
    return out.getvalue()


def report_sections(task, loaded):
    """The backtest table beside the baselines, and a picture per series."""
    from rnnkit.tasks.forecast import backtest
    from rnnkit.tasks.forecast_eval import mean_table
    from rnnkit.viz.report import image_html

    state: dict = {}

    def run():
        if not state:
            loaded.check_inputs()
            setup = task.prepare(loaded.config)
            state["setup"] = setup
            state["bt"] = backtest(loaded.model, setup, loaded.config)
        return state["setup"], state["bt"]

    def table() -> str:
        _, bt = run()
        return markdown_html(mean_table(bt["results"]))

    def pictures() -> str:
        setup, bt = run()
        h = loaded.config.data.horizon
        return "".join(image_html(backtest_figure(s, bt["forecasts"], h)) for s in setup.series)

    return [
        ("Rolling-origin backtest beside the baselines", table),
        ("Forecasts at each origin, with 50 / 80 / 95% intervals", pictures),
    ]


def markdown_html(table: str) -> str:
    """A Markdown table -> an HTML table (the report has no Markdown renderer)."""
    import html

    lines = [ln for ln in table.strip().splitlines() if ln.startswith("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]
    if not rows:
        return f"<pre>{html.escape(table)}</pre>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><tr>{head}</tr>{body}</table>"
