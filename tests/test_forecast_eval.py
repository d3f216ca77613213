"""The forecasting task's scores, baselines and rolling origins (`rnnkit.tasks.forecast_eval`):
metrics against hand-worked cases, closed forms and brute force; statsforecast's baselines on
their definitions and on a synthetic airline-like series; the bookkeeping and its errors."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy.stats import norm

from rnnkit.errors import ConfigError, DataError
from rnnkit.tasks.forecast_eval import (
    BASELINES,
    LEVELS,
    QUANTILES,
    baseline_forecast,
    coverage,
    crps_gaussian,
    crps_quantiles,
    crps_samples,
    mae,
    mase,
    mean_table,
    pinball,
    quantiles_of,
    rmse,
    rolling_origins,
    score_forecast,
    smape,
)


def airline(n: int = 120) -> np.ndarray:
    """Monthly: level 100, trend 0.5 a month, a 12-month sine of amplitude 10, noise sd 1."""
    t = np.arange(n)
    noise = np.random.default_rng(0).normal(0.0, 1.0, n)
    return 100.0 + 0.5 * t + 10.0 * np.sin(2 * np.pi * t / 12) + noise


@functools.cache
def airline_forecast(name: str) -> dict[str, np.ndarray]:
    """The baseline's 12-month forecast from the first 108 months (computed once)."""
    return baseline_forecast(name, airline()[:108], 12, 12)


# ----------------------------------------------------------------------------- point metrics
def test_mae_rmse_hand_worked():
    y, f = [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]
    assert mae(y, f) == pytest.approx(1.0)
    assert rmse(y, f) == pytest.approx(math.sqrt(5.0 / 3.0))


def test_smape_hand_worked_with_a_zero_over_zero_term():
    # terms |y-f|/(|y|+|f|): 2/4, 0/0 -> 0, 4/4; 200/3 * 1.5 = 100
    assert smape([1.0, 0.0, 2.0], [3.0, 0.0, -2.0]) == pytest.approx(100.0)
    assert smape([0.0], [5.0]) == pytest.approx(200.0)
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0


def test_mase_of_the_in_sample_seasonal_naive_forecast_is_one():
    x = np.random.default_rng(1).normal(size=60).cumsum()
    for m in (1, 4, 12):
        assert mase(x[m:], x[:-m], x, m) == pytest.approx(1.0, rel=1e-12)


def test_mase_hand_worked():
    insample = [1.0, 3.0, 2.0, 5.0]
    y, f = [4.0, 6.0], [5.0, 5.0]  # mae 1
    assert mase(y, f, insample, 1) == pytest.approx(1.0 / 2.0)  # |2|,|-1|,|3| -> 2
    assert mase(y, f, insample, 2) == pytest.approx(1.0 / 1.5)  # |2-1|,|5-3| -> 1.5
    assert mase(y, f, insample, 4) == pytest.approx(1.0 / 2.0)  # len <= m: m = 1
    assert math.isnan(mase(y, f, [3.0, 3.0, 3.0], 1))  # scale 0
    assert math.isnan(mase(y, f, [1.0, 2.0, 1.0, 2.0], 2))  # exactly periodic
    assert math.isnan(mase(y, f, [3.0], 1))  # no difference to take


def test_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError, match="shape"):
        mae([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="1-D"):
        mae([], [])


# ----------------------------------------------------------------------------- CRPS
@pytest.mark.parametrize(("y", "mu", "sigma"), [(0.0, 0.0, 1.0), (1.3, 0.2, 0.5), (-4.0, 1.0, 2.0)])
def test_crps_gaussian_equals_the_integral_definition(y, mu, sigma):
    x = np.linspace(mu - 12 * sigma, mu + 12 * sigma, 400_001)
    integrand = (norm.cdf(x, mu, sigma) - (x >= y)) ** 2
    assert float(crps_gaussian(y, mu, sigma)) == pytest.approx(np.trapezoid(integrand, x), rel=1e-4)


def test_crps_gaussian_is_elementwise():
    y, mu, sigma = np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 0.5])
    out = crps_gaussian(y, mu, sigma)
    assert out.shape == (3,)
    for i in range(3):
        assert out[i] == pytest.approx(float(crps_gaussian(y[i], mu[i], sigma[i])))
    assert float(crps_gaussian(0.0, 0.0, 1.0)) == pytest.approx(
        (math.sqrt(2) - 1) / math.sqrt(math.pi)
    )


def test_crps_samples_of_many_draws_agrees_with_the_closed_form():
    y = np.array([-1.0, 0.0, 0.3, 2.0, 5.0])
    mu, sigma = np.array([0.0, 0.0, 1.0, 1.0, 3.0]), np.array([1.0, 1.0, 2.0, 0.5, 1.5])
    draws = mu + sigma * np.random.default_rng(2).normal(size=(20_000, 5))
    np.testing.assert_allclose(crps_samples(y, draws), crps_gaussian(y, mu, sigma), rtol=0.02)


def test_crps_samples_equals_brute_force():
    rng = np.random.default_rng(3)
    samples, y = rng.gamma(2.0, size=(50, 3)), np.array([0.5, 2.0, 7.0])
    to_y = np.abs(samples - y).mean(axis=0)
    pairs = np.abs(samples[:, None, :] - samples[None, :, :]).mean(axis=(0, 1))
    np.testing.assert_allclose(crps_samples(y, samples), to_y - 0.5 * pairs, rtol=1e-12)


def test_crps_of_a_point_mass_is_the_absolute_error():
    y, mu = np.array([1.0, -2.0, 3.5]), np.array([0.0, 1.0, 3.5])
    np.testing.assert_allclose(crps_gaussian(y, mu, 0.0), np.abs(y - mu))
    np.testing.assert_allclose(crps_gaussian(y, mu, 1e-9), np.abs(y - mu), atol=1e-8)
    np.testing.assert_allclose(crps_samples(y, np.tile(mu, (7, 1))), np.abs(y - mu), atol=1e-12)


def test_crps_errors():
    with pytest.raises(DataError, match="negative sigma"):
        crps_gaussian(0.0, 0.0, -1.0)
    with pytest.raises(DataError, match="shape"):
        crps_samples(np.zeros(3), np.zeros((10, 4)))


# ----------------------------------------------------------------------------- quantiles
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_pinball_is_minimised_at_the_true_quantile(q):
    draws = np.random.default_rng(4).exponential(size=20_000)
    grid = np.arange(0.0, 4.0, 0.02)
    best = grid[np.argmin([pinball(draws, np.full_like(draws, g), q) for g in grid])]
    # the true quantile, within the grid step plus the sample quantile's spread (~0.02 at 0.9)
    assert abs(best - (-math.log(1 - q))) <= 0.05


def test_pinball_hand_worked():
    # d = y - pred = 2, -1: 0.25 * 2 and 0.75 * 1
    assert pinball([3.0, 0.0], [1.0, 1.0], 0.25) == pytest.approx((0.5 + 0.75) / 2)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        pinball([1.0], [1.0], 1.0)


def test_crps_quantiles_of_exact_gaussian_quantiles_is_near_the_closed_form():
    for y in (-3.0, -1.0, 0.0, 0.5, 2.0):
        exact = {q: np.array([norm.ppf(q)]) for q in QUANTILES}
        approx = crps_quantiles(np.array([y]), exact)
        assert approx == pytest.approx(float(crps_gaussian(y, 0.0, 1.0)), rel=0.15)
    ys = np.random.default_rng(5).normal(size=5_000)  # averaged over the Gaussian itself
    exact = {q: np.full(ys.shape, norm.ppf(q)) for q in QUANTILES}
    assert crps_quantiles(ys, exact) == pytest.approx(crps_gaussian(ys, 0, 1).mean(), rel=0.05)


def test_crps_quantiles_weights():
    y = np.array([0.0, 2.0, 5.0])
    assert crps_quantiles(y, {0.5: np.ones(3)}) == pytest.approx(mae(y, np.ones(3)))
    even = {q: np.full(3, q * 4) for q in (0.1, 0.3, 0.5, 0.7, 0.9)}  # cells of width 0.2
    plain = 2 * np.mean([pinball(y, pred, q) for q, pred in even.items()])
    assert crps_quantiles(y, even) == pytest.approx(plain)


def test_coverage_hand_worked():
    # 1 in [0, 2]; 2 below 2.5; 3 on both bounds of [3, 3]; 4 above 3
    assert coverage([1.0, 2.0, 3.0, 4.0], [0.0, 2.5, 3.0, 0.0], [2.0, 3.0, 3.0, 3.0]) == 0.5


def test_quantiles_of_maps_keys():
    forecast = {"mean": np.zeros(2), "fitted": np.ones(5)}
    for level in LEVELS:
        forecast[f"lo-{level}"] = np.full(2, -level)
        forecast[f"hi-{level}"] = np.full(2, level)
    q = quantiles_of(forecast)
    assert tuple(q) == QUANTILES
    assert q[0.025][0] == -95 and q[0.1][0] == -80 and q[0.25][0] == -50
    assert q[0.5][0] == 0 and q[0.75][0] == 50 and q[0.9][0] == 80 and q[0.975][0] == 95
    assert quantiles_of({**forecast, "median": np.full(2, 7.0)})[0.5][0] == 7.0
    assert list(quantiles_of({"mean": np.zeros(2)})) == [0.5]
    with pytest.raises(ConfigError, match="between 0 and 100"):
        quantiles_of({"mean": np.zeros(2), "lo-120": np.zeros(2)})


# ----------------------------------------------------------------------------- baselines
def test_naive_seasonal_naive_and_drift_follow_their_definitions():
    x = airline()[:108]
    np.testing.assert_allclose(airline_forecast("naive")["mean"], np.full(12, x[-1]))
    np.testing.assert_allclose(airline_forecast("seasonal_naive")["mean"], x[-12:])
    short = baseline_forecast("seasonal_naive", x, 5, 12)["mean"]
    np.testing.assert_allclose(short, x[-12:-7])  # h < m: the start of the last season
    long = baseline_forecast("seasonal_naive", x, 30, 12)["mean"]
    np.testing.assert_allclose(long, np.tile(x[-12:], 3)[:30])
    k = np.arange(1, 13)
    slope = (x[-1] - x[0]) / (len(x) - 1)
    np.testing.assert_allclose(airline_forecast("drift")["mean"], x[-1] + k * slope)


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_keys_shapes_and_nested_intervals(name):
    f = airline_forecast(name)
    assert set(f) == {"mean"} | {f"{side}-{level}" for level in LEVELS for side in ("lo", "hi")}
    assert all(v.shape == (12,) and v.dtype == np.float64 for v in f.values())
    chain = ["lo-95", "lo-80", "lo-50", "mean", "hi-50", "hi-80", "hi-95"]
    for lower, upper in zip(chain, chain[1:], strict=False):
        assert np.all(f[lower] <= f[upper] + 1e-9), (lower, upper)
    assert np.all(f["hi-80"] - f["lo-80"] > 0)


@pytest.mark.parametrize("name", ["auto_ets", "auto_arima"])
def test_auto_models_beat_naive_on_the_airline_series(name):
    x, actual = airline()[:108], airline()[108:]
    naive = mase(actual, airline_forecast("naive")["mean"], x, 12)
    assert mase(actual, airline_forecast(name)["mean"], x, 12) < 0.5 * naive


def test_season_one_and_short_histories():
    x = airline(30)
    np.testing.assert_allclose(
        baseline_forecast("seasonal_naive", x, 4, 1)["mean"],
        baseline_forecast("naive", x, 4, 1)["mean"],
    )
    for name in ("auto_ets", "auto_arima"):
        f = baseline_forecast(name, x, 4, 1, levels=(80,))
        assert set(f) == {"mean", "lo-80", "hi-80"} and np.all(np.isfinite(f["mean"]))
    assert baseline_forecast("auto_arima", x[:4], 2, 1)["mean"].shape == (2,)
    # AutoETS warns (divide by zero) on 7 points; the warning stays inside baseline_forecast
    assert baseline_forecast("auto_ets", x[:7], 2, 12)["mean"].shape == (2,)
    assert list(baseline_forecast("naive", x, 2, 1, levels=())) == ["mean"]
    assert "lo-97.5" in baseline_forecast("naive", x, 2, 1, levels=(97.5,))


def test_baseline_errors():
    x = airline(30)
    with pytest.raises(DataError, match="at least 12 observations, the history has 10"):
        baseline_forecast("seasonal_naive", x[:10], 3, 12)
    with pytest.raises(DataError, match="drift needs at least 2"):
        baseline_forecast("drift", x[:1], 3, 1)
    with pytest.raises(DataError, match="auto_ets needs at least 7"):
        baseline_forecast("auto_ets", x[:6], 3, 1)
    with pytest.raises(DataError, match="auto_arima needs at least 4"):
        baseline_forecast("auto_arima", x[:3], 3, 1)
    with pytest.raises(DataError, match="missing"):
        baseline_forecast("naive", np.r_[x[:5], np.nan], 3, 1)
    with pytest.raises(ConfigError, match="the baselines are naive"):
        baseline_forecast("prophet", x, 3, 1)
    with pytest.raises(ConfigError, match="horizon"):
        baseline_forecast("naive", x, 0, 1)
    with pytest.raises(ConfigError, match="season"):
        baseline_forecast("naive", x, 3, 0)
    with pytest.raises(ConfigError, match="interval level"):
        baseline_forecast("naive", x, 3, 1, levels=(80, 100))


# ----------------------------------------------------------------------------- rolling origins
def test_rolling_origins_values():
    assert rolling_origins(100, 12, 3) == [64, 76, 88]
    assert rolling_origins(100, 12, 3, step=1) == [86, 87, 88]
    assert rolling_origins(100, 12, 1) == [88]
    assert rolling_origins(40, 12, 3) == [4, 16, 28]
    assert rolling_origins(40, 12, 3, min_train=4) == [4, 16, 28]


def test_rolling_origins_errors():
    with pytest.raises(DataError, match="horizon"):
        rolling_origins(100, 0, 3)
    with pytest.raises(DataError, match="windows"):
        rolling_origins(100, 12, 0)
    with pytest.raises(DataError, match="step"):
        rolling_origins(100, 12, 3, step=0)
    with pytest.raises(DataError, match="at most 3 windows fit"):
        rolling_origins(40, 12, 4)
    with pytest.raises(DataError, match="at most 2 windows fit"):
        rolling_origins(40, 12, 3, min_train=5)
    with pytest.raises(DataError, match="at most 1 window fit"):
        rolling_origins(40, 12, 2, step=12, min_train=20)
    with pytest.raises(DataError, match="needs at least 32 observations"):
        rolling_origins(30, 12, 1, min_train=20)


# ----------------------------------------------------------------------------- scoring, table
def test_score_forecast():
    x, actual = airline()[:108], airline()[108:]
    scores = score_forecast(actual, airline_forecast("auto_ets"), x, 12)
    assert list(scores) == [
        "mae",
        "rmse",
        "smape",
        "mase",
        "crps",
        "coverage_50",
        "coverage_80",
        "coverage_95",
    ]
    assert scores["crps"] < scores["mae"]  # a sharp, calibrated forecast gains from its spread
    assert 0.0 <= scores["coverage_50"] <= scores["coverage_80"] <= scores["coverage_95"] <= 1.0
    point = score_forecast(actual, {"mean": airline_forecast("naive")["mean"]}, x, 12)
    assert set(point) == {"mae", "rmse", "smape", "mase"}
    with pytest.raises(DataError, match="no 'mean'"):
        score_forecast(actual, {"median": actual}, x, 12)


def test_mean_table():
    results = {
        "naive": {"co2": {"mase": 2.0, "crps": 1.0}, "nile": {"mase": 1.0, "crps": 3.0}},
        "lstm": {"co2": {"mase": 0.5, "coverage_80": 0.75}},
    }
    table = mean_table(results, metrics=("mase", "crps", "coverage_80"))
    lines = table.strip().splitlines()
    assert lines[0] == "| series | model | mase | crps | coverage_80 |"
    assert "| co2 | naive | 2.000 | 1.000 | - |" in lines
    assert "| co2 | lstm | 0.500 | - | 0.750 |" in lines
    assert "| mean | naive | 1.500 | 2.000 | - |" in lines
    assert "| mean | lstm | 0.500 | - | 0.750 |" in lines
    assert not any(line.startswith("| nile | lstm") for line in lines)
    assert len(lines) == 2 + 3 + 2
