"""The forecasting task: windows never see the future, forecasts condition on the past only,
and the CLI end to end (train -> forecast -> backtest -> report) with clear errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.config import build
from rnnkit.data.series import AIRLINE
from rnnkit.tasks import get

TINY = {"model.hidden": 8, "model.layers": 1, "model.samples": 20, "data.batch_size": 8}


def airline_csv(path, values=None, name="passengers"):
    from rnnkit.data.series import load_datasets

    s = load_datasets("airline")
    values = s.values("airline") if values is None else values
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["month", name])
        for d, v in zip(s.dates("airline"), values, strict=True):
            w.writerow([d.date().isoformat(), v])
    return path


def setup_of(tmp_path, **overrides):
    task = get("forecast")
    path = airline_csv(tmp_path / "a.csv", np.arange(144.0))  # each value is its own index
    config = build(
        task.Config,
        overrides={"data.csv": str(path), "data.date": "month", "data.target": "passengers"}
        | TINY
        | overrides,
    )
    return task, config, task.prepare(config)


def test_training_windows_end_before_the_validation_values(tmp_path):
    task, config, setup = setup_of(tmp_path)
    model, loop = task.build(config, setup)
    (series,) = setup.series
    h = config.data.horizon
    assert series.origins == [108, 120, 132]  # three windows, a horizon apart, the last at n - H
    seen = max(loop.batch(micro)[0].max().item() for micro in range(200))
    assert seen == series.origins[0] - h - 1  # the last training value, and no later one


def test_forecasts_see_nothing_after_their_origin(tmp_path):
    task, config, setup = setup_of(tmp_path)
    model = task.build_model(config, setup)
    from rnnkit.tasks.forecast import forecast_at

    (series,) = setup.series
    for o in series.origins:
        before = forecast_at(model, setup, config, [(0, o)], 12, seed=3)[0]
        planted = series.values.copy()
        series.values[o:] = 1e9  # a value no input may see
        after = forecast_at(model, setup, config, [(0, o)], 12, seed=3)[0]
        series.values[:] = planted
        for k in before:
            np.testing.assert_array_equal(before[k], after[k])
        assert before["mean"].max() < 1e6


def test_validation_forecasts_the_values_just_before_the_first_origin(tmp_path, monkeypatch):
    task, config, setup = setup_of(tmp_path)
    model, loop = task.build(config, setup)
    import rnnkit.tasks.forecast as fc

    seen = []
    real = fc.forecast_at
    monkeypatch.setattr(fc, "forecast_at", lambda m, s, c, rows, *a, **k: seen.append(rows)
                        or real(m, s, c, rows, *a, **k))  # fmt: skip
    scores = loop.evaluate(model)
    assert seen == [[(0, 96)]] and np.isfinite(scores["val_mase"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("forecast") / "run"
    args = ["train", "forecast", "data.dataset=airline,sunspots", "train.steps=30",
            "train.eval_every=15", "--out", str(out), "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    return out


def test_a_run_backtests_the_model_beside_every_baseline(run):
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    for model in ("rnnkit", "naive", "seasonal_naive", "drift", "auto_ets", "auto_arima"):
        for m in ("mase", "smape", "crps", "coverage_80"):
            assert np.isfinite(metrics[f"{model}_{m}"]), (model, m)
        assert f"{model}_mase.airline" in metrics and f"{model}_mase.sunspots" in metrics


def test_forecast_command_writes_csv_and_plot(run, tmp_path, capsys):
    out, png = tmp_path / "fc.csv", tmp_path / "fc.png"
    args = ["forecast", str(run), "--horizon", "24", "--out", str(out), "--plot", str(png)]
    assert main(args) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 48 and rows[0]["unique_id"] == "airline"  # and 24 years of sunspots
    assert rows[0]["ds"].startswith("1961-01-01")  # the month after the data
    for r in rows:
        assert float(r["lo-95"]) <= float(r["lo-80"]) <= float(r["mean"]) <= float(r["hi-80"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    again = tmp_path / "again.csv"
    assert main(["forecast", str(run), "--horizon", "24", "--out", str(again)]) == 0
    assert again.read_text() == out.read_text()  # seeded sample paths


def test_forecast_a_new_csv_with_the_run(run, tmp_path, capsys):
    from rnnkit.tasks import get

    path = airline_csv(tmp_path / "new.csv", name="y")
    text = path.read_text().replace("month", "ds")
    path.write_text(text)
    out, _ = get("forecast").forecast(run, 6, str(path))
    dates, f = out["y"]
    assert len(dates) == 6 and f["mean"].shape == (6,)


def test_backtest_command_writes_table_scores_and_plots(run, tmp_path, capsys):
    md, sc, plots = tmp_path / "bt.md", tmp_path / "bt.csv", tmp_path / "plots"
    args = ["backtest", str(run), "--markdown", str(md), "--csv", str(sc), "--plots", str(plots)]
    assert main(args) == 0
    assert "auto_ets" in md.read_text() and "mean" in md.read_text()
    assert {p.name for p in plots.iterdir()} == {"airline.png", "sunspots.png"}
    rows = list(csv.DictReader(sc.read_text().splitlines()))
    assert {r["model"] for r in rows} >= {"rnnkit", "auto_arima"}


def test_report_has_the_backtest(run, tmp_path):
    page = tmp_path / "r.html"
    assert main(["report", str(run), "--out", str(page)]) == 0
    text = page.read_text()
    assert "Rolling-origin backtest" in text and "data:image/png;base64" in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.horizon": 0}, "data.horizon"),
        ({"data.context": 200}, "fewer than the 272"),
        ({"data.target": "sales"}, "sales"),
        ({"model.likelihood": "poisson"}, "model.likelihood"),
    ],
)
def test_bad_settings_get_one_clear_message(tmp_path, capsys, overrides, message):
    path = airline_csv(tmp_path / "a.csv")
    args = ["train", "forecast", f"data.csv={path}", "data.date=month", "train.steps=2",
            "data.target=passengers", "--out", str(tmp_path / "r"), "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in overrides.items()]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_quantile_model_refuses_a_longer_horizon(tmp_path, capsys):
    out = tmp_path / "q"
    args = ["train", "forecast", "data.dataset=airline", "model.likelihood=quantile",
            "train.steps=5", "train.eval_every=5", "--out", str(out), "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    assert main(["forecast", str(out), "--horizon", "13"]) == 2
    assert "at most 12" in capsys.readouterr().err
    assert main(["forecast", str(out), "--horizon", "0"]) == 2


def test_airline_is_the_published_series():
    values = [v for year in AIRLINE for v in year]
    assert len(values) == 144 and sum(values) == 40363 and max(values) == 622


def test_negative_binomial_forecasts_counts_and_refuses_real_values(tmp_path, capsys):
    out = tmp_path / "nb"
    args = ["train", "forecast", "data.dataset=airline", "model.likelihood=negbin",
            "train.steps=5", "train.eval_every=5", "--out", str(out), "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    fc, _ = get("forecast").forecast(out, 6)
    f = fc["airline"][1]
    assert np.array_equal(f["samples"], np.round(f["samples"])) and f["samples"].min() >= 0
    bad = args[:2] + ["data.dataset=elnino"] + args[3:]
    bad[bad.index(str(out))] = str(tmp_path / "nb2")
    assert main(bad) == 2
    assert "needs counts" in capsys.readouterr().err


def test_refit_trains_per_origin_and_its_first_model_is_the_runs(tmp_path):
    from rnnkit.tasks.forecast import backtest, forecast_at, train_for_origin

    out = tmp_path / "run"
    args = ["train", "forecast", "data.dataset=airline", "train.steps=8", "train.eval_every=4",
            "--out", str(out), "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    task = get("forecast")
    loaded = task.load(out)
    setup = task.prepare(loaded.config)
    rows = [(0, setup.series[0].origins[0])]
    again = train_for_origin(loaded.config, setup, 0)  # the same windows, seed and steps
    for a, b in zip(loaded.model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    later = train_for_origin(loaded.config, setup, 2)  # more data: other weights
    assert not torch.equal(later.out.weight, again.out.weight)
    first = forecast_at(loaded.model, setup, loaded.config, rows, 12)[0]
    from dataclasses import replace

    c = loaded.config
    refit = backtest(loaded.model, setup, replace(c, data=replace(c.data, refit=True)), ())
    np.testing.assert_array_equal(
        refit["forecasts"][("airline", rows[0][1])]["mean"], first["mean"]
    )


def test_series_embeddings_are_saved_and_a_new_csv_series_still_forecasts(tmp_path):
    out = tmp_path / "emb"
    args = ["train", "forecast", "data.dataset=airline,sunspots", "model.id_embed=2",
            "train.steps=5", "train.eval_every=5", "--out", str(out), "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    task = get("forecast")
    loaded = task.load(out)
    assert loaded.setup.known == ["airline", "sunspots"]
    assert loaded.model.embed.weight.shape == (2, 2)
    fc, setup = task.forecast(loaded, 6)
    assert [s.index for s in setup.series] == [0, 1]
    path = airline_csv(tmp_path / "new.csv", name="y")
    path.write_text(path.read_text().replace("month", "ds"))
    fc, setup = task.forecast(loaded, 6, str(path))
    assert [s.index for s in setup.series] == [-1] and np.isfinite(fc["y"][1]["mean"]).all()


def promo_csv(path, n=240, future=12, seed=0):
    """Monthly sales: a level, a yearly cycle, and +30 in the months with a promotion (known
    ahead, drawn at random); the last ``future`` rows give the promotion and no sales."""
    rng = np.random.default_rng(seed)
    promo = rng.integers(0, 2, n + future)
    t = np.arange(n + future)
    y = 100 + 10 * np.sin(2 * np.pi * t / 12) + 30 * promo + rng.normal(0, 2, n + future)
    dates = [f"{2000 + m // 12}-{m % 12 + 1:02d}-01" for m in t]
    rows = [f"{d},{v:.3f},{p}" for d, v, p in zip(dates[:n], y[:n], promo[:n], strict=True)]
    rows += [f"{d},,{p}" for d, p in zip(dates[n:], promo[n:], strict=True)]
    path.write_text("ds,sales,promo\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_known_future_covariates_are_used_and_must_reach_the_horizon(tmp_path, capsys):
    from rnnkit.tasks.forecast import backtest
    from rnnkit.training import Trainer

    path = promo_csv(tmp_path / "sales.csv")
    task = get("forecast")
    base = {"data.csv": str(path), "data.target": "sales", "model.hidden": 16,
            "model.layers": 1, "model.dropout": 0.0, "train.steps": 150}  # fmt: skip
    maes = {}
    for cov in ("", "promo"):
        config = build(task.Config, overrides=base | {"data.covariates": cov})
        setup = task.prepare(config)
        model, loop = task.build(config, setup)
        Trainer(model, loop, config.train, None, progress=False).fit()
        results = backtest(model, setup, config, ())["results"]["rnnkit"]
        maes[cov] = results["sales"]["mae"]
    assert maes["promo"] < 0.5 * maes[""]  # the promotions explain most of the error
    out = tmp_path / "run"
    args = ["train", "forecast", f"data.csv={path}", "data.target=sales",
            "data.covariates=promo", "train.steps=3", "train.eval_every=3", "--out", str(out),
            "--quiet"]  # fmt: skip
    args += [f"{k}={v}" for k, v in TINY.items()]
    assert main(args) == 0
    fc, _ = task.forecast(out, 12)  # the 12 future rows of the file
    assert fc["sales"][1]["mean"].shape == (12,)
    assert main(["forecast", str(out), "--horizon", "13"]) == 2
    assert "gives its covariates for 12 steps" in capsys.readouterr().err
    assert main(["train", "forecast", "data.covariates=promo", "--out", str(tmp_path / "x")]) == 2
    assert "no CSV is given" in capsys.readouterr().err


def test_the_forecast_page_and_endpoint(run):
    """rnnkit serve on a forecasting run: the endpoint's forecast is rnnkit.load's, bad input is
    refused naming the limit, and the page draws a chart per series in headless Chromium."""
    pytest.importorskip("flask")
    import rnnkit
    from rnnkit.serve import LIMITS, create_app

    model = rnnkit.load(run)
    client = create_app(model).test_client()
    got = client.post("/api/forecast", json={"horizon": 6, "seed": 2}).get_json()
    expected, _ = model.forecast(6, seed=2)
    assert [s["id"] for s in got["series"]] == list(expected)
    for s in got["series"]:
        dates, fc = expected[s["id"]]
        assert s["forecast"]["mean"] == pytest.approx(fc["mean"].tolist())
        assert s["forecast"]["dates"] == [str(d.date()) for d in dates]
        assert len(s["history"]["values"]) == len(s["history"]["dates"]) == 36
    r = client.post("/api/forecast", json={"horizon": LIMITS["horizon"] + 1})
    assert r.status_code == 400 and r.get_json()["limit"] == LIMITS["horizon"]
    assert client.post("/api/generate", json={"prime": "x"}).status_code == 400

    from helpers import on_the_page

    got, errors = on_the_page(
        model,
        "$('horizon').value = 6; $('go').click();",
        {"charts": "$('out').querySelectorAll('svg polyline').length"},
    )
    assert errors == [] and got["charts"] == 2 * len(expected)  # history and forecast per series


def test_exported_forecaster_draws_the_models_sample_paths(tmp_path):
    """A caller of the ONNX graph scales the history, runs it, then draws each next value
    from the graph's (mu, sigma) with the same standard normal draws and feeds it back: its
    paths equal `Forecaster.forecast`'s, and the step graph streamed from its state equals
    one pass over the history."""
    ort = pytest.importorskip("onnxruntime")
    from helpers import train_run

    from rnnkit import tasks

    values = {f"{k}": v for k, v in TINY.items()} | {"model.likelihood": "gaussian"}
    values |= {"data.dataset": "airline", "train.steps": 3, "train.eval_every": 3}
    run = train_run("forecast", tmp_path / "run", **values)
    assert main(["export", str(run)]) == 0
    session = ort.InferenceSession(str(run / "model.onnx"))
    loaded = tasks.load(run)
    model, setup = loaded.model, loaded.task.prepare(loaded.config, run)
    series, lag, H, S = setup.series[0], setup.lag, 6, model.config.samples
    n = lag + loaded.config.data.context
    y = series.values[-n:].astype(np.float64)
    phase = series.phase(H)[len(series.values) - n :]  # (n + H,)
    m = series.season
    expected = model.forecast(
        torch.tensor(y[None], dtype=torch.float32), torch.tensor(phase[None], dtype=torch.float32),
        torch.tensor([m]), H, start=lag, seed=7,
    )["samples"][:, 0].numpy()  # fmt: skip
    loc, spread = y.mean(), y.std()
    scale = max(spread, 1e-3 * abs(loc) + 1e-8)
    z = list((y - loc) / scale)

    def inputs(s0, s1, paths):  # steps s0 .. s1-1, each of the paths (p, len(z)) in z
        steps = np.arange(s0, s1)
        return {
            "z_prev": paths[:, steps - 1].astype(np.float32),
            "z_lag": paths[:, np.maximum(steps - m, 0)].astype(np.float32),
            "phase": np.tile(phase[steps], (len(paths), 1)).astype(np.float32),
            "scale": np.full((len(paths), 1), scale, dtype=np.float32),
        }

    zero = np.zeros((model.config.layers, 1, model.config.hidden), dtype=np.float32)
    whole = session.run(None, {**inputs(lag, n + 1, np.array([z])), "h0": zero, "c0": zero})
    first = session.run(None, {**inputs(lag, n - 3, np.array([z])), "h0": zero, "c0": zero})
    rest = session.run(
        None, {**inputs(n - 3, n + 1, np.array([z])), "h0": first[1], "c0": first[2]}
    )
    np.testing.assert_allclose(rest[0], whole[0][:, -4:], atol=1e-5)
    params, h, c = np.repeat(whole[0], S, 0), np.repeat(whole[1], S, 1), np.repeat(whole[2], S, 1)
    paths = np.tile(np.array(z + [0.0] * H), (S, 1))
    torch.manual_seed(7)
    for k in range(H):
        eps = torch.randn(S).numpy()
        paths[:, n + k] = params[:, -1, 0] + params[:, -1, 1] * eps
        if k + 1 < H:
            params, h, c = session.run(
                None, {**inputs(n + k + 1, n + k + 2, paths), "h0": h, "c0": c}
            )
    np.testing.assert_allclose(paths[:, n:] * scale + loc, expected, rtol=1e-4, atol=1e-3)
    # torch.export: one step, the state (a *tensors argument of forward) explicit
    assert main(["export", str(run), "--format", "torch"]) == 0
    program = torch.export.load(str(run / "model.pt2")).module()
    step = {k: torch.from_numpy(v) for k, v in inputs(n - 3, n - 2, np.array([z])).items()}
    out = program(*step.values(), torch.from_numpy(first[1]), torch.from_numpy(first[2]))
    np.testing.assert_allclose(out[0].detach().numpy(), whole[0][:, -4:-3], atol=1e-5)
