"""Scores, statistical baselines and rolling-origin bookkeeping of the forecasting task.

numpy in, numpy out: ``y`` is the (h,) stretch that came after the forecast origin, a point
forecast ``f`` is (h,), a forecast dict is ``{"mean", "lo-L", "hi-L", ...}`` of (h,) arrays
(statsforecast's own layout: ``lo-80``/``hi-80`` bound the central 80% interval).

Point metrics, over the h steps of one forecast::

    mae   = mean |y - f|
    rmse  = sqrt(mean (y - f)^2)
    smape = 200/h * sum |y - f| / (|y| + |f|)          percent, in [0, 200]; a 0/0 term counts 0
    mase  = mae / scale,  scale = mean_{t >= m} |x[t] - x[t-m]|  over the in-sample series x
            (m = season, or 1 when len(x) <= m): 1 means as good as the in-sample seasonal-naive
            one-step forecast (Hyndman and Koehler 2006); nan when the scale is 0 or undefined

Probabilistic metrics (lower is better except coverage; CRPS is in the units of y, and equals
the absolute error for a point forecast)::

    pinball_q(y, p)  = mean max(q (y - p), (q - 1)(y - p))     the loss whose minimiser is the
                                                                 q-quantile
    crps(F, y)       = int (F(x) - 1{x >= y})^2 dx = E|X - y| - 1/2 E|X - X'|,  X, X' ~ F
    crps_gaussian    = sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)],  z = (y - mu) / sigma
    crps_samples     = the same for the empirical distribution of S samples (exact, by sorting)
    crps_quantiles   = 2 * sum_q w_q pinball_q over the K given q, w_q the width of q's cell of
                       [0, 1]: the midpoint-rule approximation of crps = 2 int_0^1 pinball_q dq
                       (the plain mean over q when they are evenly spread), the one score every
                       model can be given from its intervals alone
    coverage         = share of y inside [lo, hi]; nominal L% for a calibrated L% interval

Baselines (`baseline_forecast`), statsforecast's models called directly, each with its
Gaussian prediction intervals::

    naive            y[n+k] = y[n]                              sigma_k = sigma sqrt(k)
    seasonal_naive   y[n+k] = y[n - m + ((k-1) mod m) + 1]      (the last season repeated)
    drift            y[n+k] = y[n] + k (y[n] - y[1]) / (n - 1)
    auto_ets         exponential smoothing, the model (error, trend, season) chosen by AICc
    auto_arima       Hyndman-Khandakar stepwise search over (p,d,q)(P,D,Q)_m

Rolling origin (`rolling_origins`): a forecast at cut-off c sees ``series[:c]`` and is scored on
``series[c:c + horizon]``; the last cut-off is ``length - horizon``, the others ``step`` earlier.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np

from rnnkit.errors import ConfigError, DataError

__all__ = [
    "LEVELS",
    "QUANTILES",
    "BASELINES",
    "mae",
    "rmse",
    "smape",
    "mase",
    "pinball",
    "crps_gaussian",
    "crps_samples",
    "crps_quantiles",
    "coverage",
    "quantiles_of",
    "baseline_forecast",
    "rolling_origins",
    "score_forecast",
    "mean_table",
]

LEVELS = (50, 80, 95)  # central interval levels, percent
QUANTILES = (0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975)  # those levels' bounds, and the median
BASELINES = ("naive", "seasonal_naive", "drift", "auto_ets", "auto_arima")

# The fewest observations each baseline forecasts from (seasonal_naive: one season): drift needs
# two points for a slope, AutoETS refuses fewer than 7 ("tiny datasets"), AutoARIMA can give
# nan intervals from 3 (a model as large as the data leaves no noise variance).
_MIN_HISTORY = {"naive": 1, "drift": 2, "auto_ets": 7, "auto_arima": 4}
_BOUND_KEY = re.compile(r"^(lo|hi)-(.+)$")


# ----------------------------------------------------------------------------- point metrics
def mae(y, f) -> float:
    """Mean absolute error, ``mean |y - f|``."""
    y, f = _pair(y, f, "forecast")
    return float(np.mean(np.abs(y - f)))


def rmse(y, f) -> float:
    """Root mean squared error, ``sqrt(mean (y - f)^2)``."""
    y, f = _pair(y, f, "forecast")
    return float(np.sqrt(np.mean((y - f) ** 2)))


def smape(y, f) -> float:
    """Symmetric MAPE in percent, ``200/h * sum |y - f| / (|y| + |f|)``; a step with
    ``y = f = 0`` adds 0 (a perfect forecast), so the result lies in [0, 200]."""
    y, f = _pair(y, f, "forecast")
    num, den = np.abs(y - f), np.abs(y) + np.abs(f)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(200.0 * np.mean(terms))


def mase(y, f, insample, season: int) -> float:
    """Mean absolute scaled error: `mae` over the in-sample seasonal-naive MAE,
    ``mean_{t >= m} |insample[t] - insample[t-m]|`` (m = ``season``; m = 1 when
    ``len(insample) <= m``). nan (no error) when that scale is 0 (a constant, or exactly
    periodic, history) or undefined (one observation)."""
    error = mae(y, f)
    x = _series(insample, "insample")
    m = _season(season)
    if len(x) <= m:
        m = 1
    if len(x) <= m:
        return float("nan")
    scale = float(np.mean(np.abs(x[m:] - x[:-m])))
    return error / scale if scale > 0 else float("nan")


# ----------------------------------------------------------------------------- probabilistic
def pinball(y, pred, q: float) -> float:
    """Quantile (pinball) loss of ``pred`` as the q-quantile, ``mean max(q d, (q - 1) d)`` with
    ``d = y - pred``: under-forecasts cost q per unit, over-forecasts 1 - q."""
    q = _quantile_level(q)
    y, pred = _pair(y, pred, f"{q}-quantile")
    d = y - pred
    return float(np.mean(np.maximum(q * d, (q - 1.0) * d)))


def crps_gaussian(y, mu, sigma) -> np.ndarray:
    """CRPS of N(mu, sigma^2) at y, elementwise (broadcast):
    ``sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]``, ``z = (y - mu) / sigma``
    (Gneiting and Raftery 2007); ``|y - mu|`` where sigma is 0 (a point mass)."""
    from scipy.special import ndtr

    y, mu, sigma = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (y, mu, sigma)))
    if np.any(sigma < 0):
        raise DataError("crps_gaussian got a negative sigma", "sigma is a standard deviation")
    point = sigma == 0
    z = np.divide(y - mu, sigma, out=np.zeros_like(sigma), where=~point)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    crps = sigma * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))
    return np.where(point, np.abs(y - mu), crps)


def crps_samples(y, samples) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (S, *y.shape) at y, per step:
    ``E|X - y| - 1/2 E|X - X'|`` with X, X' independent draws from the S samples (all S^2 pairs,
    i = j included), exact; the pair term by sorting,
    ``E|X - X'| = 2/S^2 sum_k (2k - S + 1) x_(k)`` (0-based order statistics): O(S log S)."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != y.ndim + 1 or x.shape[1:] != y.shape or x.shape[0] == 0:
        raise DataError(
            f"crps_samples needs samples of shape (S, {', '.join(map(str, y.shape))}) for y of "
            f"shape {y.shape}, got {x.shape}",
            "one row per sample path, one column per forecast step",
        )
    s = x.shape[0]
    to_y = np.mean(np.abs(x - y), axis=0)
    weights = (2.0 * np.arange(s) - s + 1.0).reshape((s,) + (1,) * y.ndim)
    spread = 2.0 / s**2 * np.sum(weights * np.sort(x, axis=0), axis=0)
    return to_y - 0.5 * spread


def crps_quantiles(y, quantiles: dict[float, np.ndarray]) -> float:
    """CRPS approximated from K quantile forecasts, ``crps = 2 int_0^1 pinball_q dq`` by the
    midpoint rule: ``2 * sum_q w_q pinball(y, quantiles[q], q)``, ``w_q`` the width of q's cell
    of [0, 1] (cells split halfway between neighbouring q; the first starts at 0, the last ends
    at 1; the w sum to 1). For evenly spread q, such as (0.05, 0.15, .., 0.95), that is the plain
    mean; for the uneven `QUANTILES` the plain mean would weight the tails 4/7 and understate a
    Gaussian's CRPS by about 25%, the cells by about 3% (12% at y = mu). A point forecast (only
    q = 0.5) gives the MAE. Used for every model alike, so it compares them fairly."""
    if not quantiles:
        raise DataError("crps_quantiles got no quantiles", "pass {q: (h,) array}, e.g. 0.5: mean")
    qs = sorted(quantiles)
    q = np.array([_quantile_level(level) for level in qs])
    edges = np.concatenate([[0.0], (q[1:] + q[:-1]) / 2.0, [1.0]])
    weights = np.diff(edges)
    losses = np.array([pinball(y, quantiles[level], level) for level in qs])
    return float(2.0 * np.sum(weights * losses))


def coverage(y, lo, hi) -> float:
    """Share of steps with ``lo <= y <= hi`` (in [0, 1])."""
    y, lo = _pair(y, lo, "lower bound")
    _, hi = _pair(y, hi, "upper bound")
    return float(np.mean((lo <= y) & (y <= hi)))


def quantiles_of(forecast: dict) -> dict[float, np.ndarray]:
    """``{q: (h,) array}`` in ascending q from a forecast dict: ``lo-L`` is the (1 - L/100)/2
    quantile, ``hi-L`` the 1 - (1 - L/100)/2 quantile, q = 0.5 the ``"median"`` key if there is
    one, else ``"mean"`` (the same for a symmetric forecast). Other keys are ignored. The q are
    rounded to 10 decimals, so ``lo-80`` gives exactly 0.1."""
    out: dict[float, np.ndarray] = {}
    for key, values in forecast.items():
        match = _BOUND_KEY.match(str(key))
        if match is None:
            continue
        level = _level(match.group(2), where=f"forecast key {key!r}")
        tail = (1.0 - level / 100.0) / 2.0
        q = round(tail if match.group(1) == "lo" else 1.0 - tail, 10)
        out[q] = np.asarray(values, dtype=np.float64)
    centre = "median" if "median" in forecast else "mean" if "mean" in forecast else None
    if centre is not None:
        out[0.5] = np.asarray(forecast[centre], dtype=np.float64)
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------- baselines
def baseline_forecast(
    name: str, history, horizon: int, season: int, levels=LEVELS
) -> dict[str, np.ndarray]:
    """The ``horizon``-step forecast of statistical baseline ``name`` (one of `BASELINES`) from
    ``history`` (1-D, finite): ``{"mean", "lo-L", "hi-L" for each L in levels}``, each a
    (horizon,) float64 array, from statsforecast's model of that name:

        naive           Naive()                          any history
        seasonal_naive  SeasonalNaive(season)            >= season observations
        drift           RandomWalkWithDrift()            >= 2 observations
        auto_ets        AutoETS(season_length=season)    >= 7 observations
        auto_arima      AutoARIMA(season_length=season)  >= 4 observations

    ``season`` 1 means no seasonality (seasonal_naive is then naive). AutoETS fits seasonal
    models only for 2 <= season <= 24 and history > season (statsforecast's limit, as R's
    ``ets``); otherwise it chooses among the non-seasonal ones."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}", f"the baselines are {', '.join(BASELINES)}")
    x = _series(history, "history")
    horizon = _count(horizon, "horizon", ConfigError)
    m = _season(season)
    levels = [_level(level, where="levels") for level in levels]
    need = m if name == "seasonal_naive" else _MIN_HISTORY[name]
    if not np.all(np.isfinite(x)):
        raise DataError(
            f"the history has {int(np.sum(~np.isfinite(x)))} missing or infinite values",
            "fill or drop them before forecasting",
        )
    if len(x) < need:
        raise DataError(
            f"{name} needs at least {need} observations, the history has {len(x)}",
            "use a later forecast origin (rolling_origins(min_train=...))"
            + (" or a shorter season" if name == "seasonal_naive" else ""),
        )

    from statsforecast.models import (
        AutoARIMA,
        AutoETS,
        Naive,
        RandomWalkWithDrift,
        SeasonalNaive,
    )

    model = {
        "naive": Naive,
        "seasonal_naive": lambda: SeasonalNaive(season_length=m),
        "drift": RandomWalkWithDrift,
        "auto_ets": lambda: AutoETS(season_length=m),
        "auto_arima": lambda: AutoARIMA(season_length=m),
    }[name]()
    try:
        # statsforecast's numerics warn (divide by zero in an information criterion of a
        # candidate model it then rejects) on short histories; its answer is still checked below
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"statsforecast(\.|$)")
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            raw = model.forecast(y=x, h=horizon, level=[_as_sf(lv) for lv in levels] or None)
    except Exception as err:  # noqa: BLE001 - statsforecast raises bare Exception; shown below
        raise DataError(
            f"statsforecast's {type(model).__name__} failed on a history of {len(x)} "
            f"observations: {type(err).__name__}: {err}",
            "a longer or less degenerate history, or another baseline",
        ) from err
    out = {"mean": np.asarray(raw["mean"], dtype=np.float64)}
    for level in levels:
        for side in ("lo", "hi"):
            out[f"{side}-{_level_name(level)}"] = np.asarray(
                raw[f"{side}-{_as_sf(level)}"], dtype=np.float64
            )
    bad = [key for key, values in out.items() if not np.all(np.isfinite(values))]
    if bad:
        raise DataError(
            f"{name} gave non-finite values in {', '.join(bad)} (history of {len(x)})",
            "a longer or less degenerate history, or another baseline",
        )
    return out


# ----------------------------------------------------------------------------- rolling origin
def rolling_origins(
    length: int, horizon: int, windows: int, step: int | None = None, min_train: int = 1
) -> list[int]:
    """Forecast cut-offs for rolling-origin evaluation, ascending: cut-off c means the model
    sees ``series[:c]`` and is scored on ``series[c:c + horizon]``. The last is
    ``length - horizon``; the ones before it ``step`` (default ``horizon``: test windows that
    tile the end of the series without overlap) apart:

        c_k = length - horizon - (windows - 1 - k) step,   k = 0 .. windows - 1

    DataError when horizon, windows or step is below 1, or when the first cut-off would leave
    fewer than ``min_train`` observations to fit on (the message says how many windows fit)."""
    horizon = _count(horizon, "horizon", DataError)
    windows = _count(windows, "windows", DataError)
    step = horizon if step is None else _count(step, "step", DataError)
    min_train = _count(min_train, "min_train", DataError)
    length = int(length)
    last = length - horizon
    first = last - (windows - 1) * step
    if first < min_train:
        if last < min_train:
            raise DataError(
                f"a series of {length} observations is too short for horizon {horizon} with "
                f"at least {min_train} to train on",
                f"it needs at least {min_train + horizon} observations; shorten the horizon",
            )
        fit = (last - min_train) // step + 1
        raise DataError(
            f"{windows} windows of horizon {horizon}, {step} apart, do not fit a series of "
            f"{length} with at least {min_train} to train on: at most {fit} "
            f"window{'s' if fit > 1 else ''} fit",
            f"set windows to at most {fit}, or a smaller step or min_train",
        )
    return [first + k * step for k in range(windows)]


# ----------------------------------------------------------------------------- scoring
def score_forecast(y, forecast: dict, insample, season: int) -> dict[str, float]:
    """All the scores of one forecast dict against the actuals y: ``mae``, ``rmse``, ``smape``,
    ``mase`` (of ``forecast["mean"]``), ``crps`` (`crps_quantiles` over `quantiles_of`; absent
    when the forecast has no interval) and ``coverage_L`` for each ``lo-L``/``hi-L`` pair."""
    if "mean" not in forecast:
        raise DataError(
            f"the forecast has no 'mean', only {', '.join(map(repr, forecast)) or 'nothing'}",
            "a forecast dict is {'mean': ..., 'lo-80': ..., 'hi-80': ...}",
        )
    mean = forecast["mean"]
    scores = {
        "mae": mae(y, mean),
        "rmse": rmse(y, mean),
        "smape": smape(y, mean),
        "mase": mase(y, mean, insample, season),
    }
    bounds = {}  # level -> {"lo": key, "hi": key}
    for key in forecast:
        match = _BOUND_KEY.match(str(key))
        if match is not None:
            level = _level(match.group(2), where=f"forecast key {key!r}")
            bounds.setdefault(level, {})[match.group(1)] = key
    if bounds:
        scores["crps"] = crps_quantiles(y, quantiles_of(forecast))
    for level in sorted(bounds):
        if len(bounds[level]) == 2:
            lo, hi = (forecast[bounds[level][side]] for side in ("lo", "hi"))
            scores[f"coverage_{_level_name(level)}"] = coverage(y, lo, hi)
    return scores


def mean_table(
    results: dict[str, dict[str, dict[str, float]]],
    metrics=("mase", "smape", "crps", "coverage_80"),
) -> str:
    """A Markdown table of ``results[model][series][metric]``: a row per series and model
    (models in the order given, series in the order first seen), then a ``mean`` row per model
    averaging each metric over the series where that model has a finite value. Numbers to 3
    decimals; a missing value is ``-``."""
    models = list(results)
    series: list[str] = []
    for per_series in results.values():
        series += [s for s in per_series if s not in series]
    header = ["series", "model", *metrics]
    rows = [header, ["---"] * 2 + ["---:"] * len(metrics)]
    for s in series:
        for model in models:
            if s in results[model]:
                rows.append([s, model] + [_cell(results[model][s].get(k)) for k in metrics])
    for model in models:
        means = []
        for k in metrics:
            values = [v[k] for v in results[model].values() if _finite(v.get(k))]
            means.append(_cell(float(np.mean(values)) if values else None))
        rows.append(["mean", model, *means])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows) + "\n"


# ----------------------------------------------------------------------------- helpers
def _series(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise DataError(
            f"the {what} must be a non-empty 1-D series, got shape {x.shape}",
            "one value per time step",
        )
    return x


def _pair(y, f, what: str) -> tuple[np.ndarray, np.ndarray]:
    y = _series(y, "actuals")
    f = np.asarray(f, dtype=np.float64)
    if f.shape != y.shape:
        raise DataError(
            f"the {what} has shape {f.shape} but the actuals {y.shape}",
            "score a forecast against the same steps it forecast",
        )
    return y, f


def _count(value, what: str, error) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number.is_integer() or number < 1:
        raise error(f"{what} must be a whole number >= 1, got {value!r}")
    return int(number)


def _season(season) -> int:
    return _count(season, "season", ConfigError)


def _quantile_level(q) -> float:
    q = float(q)
    if not 0.0 < q < 1.0:
        raise ConfigError(f"a quantile must lie strictly between 0 and 1, got {q}")
    return q


def _level(level, where: str) -> float:
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 100.0:
        raise ConfigError(
            f"{where}: an interval level must be a percentage strictly between 0 and 100, "
            f"got {level!r}",
            f"e.g. {', '.join(map(str, LEVELS))}",
        )
    return value


def _level_name(level: float) -> str:
    """80.0 -> "80", 97.5 -> "97.5": the L of the ``lo-L`` keys."""
    return str(_as_sf(level))


def _as_sf(level: float):
    """The level as statsforecast gets it, and names its keys by: 80, or 97.5."""
    return int(level) if level.is_integer() else level


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"
