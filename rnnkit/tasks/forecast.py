"""Time-series forecasting: one global recurrent model for many series, probabilistic forecasts,
and rolling-origin backtests beside the statistical models practitioners use.

    data    a long-format frame (unique_id, ds, y) from statsmodels' bundled series, the airline
            passengers, or the user's CSV (`rnnkit.data.series`)
    model   DeepAR's autoregressive Gaussian / Student-t / negative-binomial model or MQ-RNN's
            quantile forks
            (`rnnkit.models.forecaster`) over windows of P lag + C context + H horizon values
    split   per series, with n values and the backtest's origins o_1 < ... < o_K
            (`rolling_origins`: o_K = n - H, each `data.step` apart):
                training windows end by o_1 - H;  validation forecasts values o_1 - H .. o_1 - 1;
                the backtest forecasts o_k .. o_k + H - 1 from the values before o_k, with the
                run's model, or with data.refit a model trained afresh for each origin the same
                way (windows ending by o_k - H, validation o_k - H .. o_k - 1)
    scores  MAE, RMSE, sMAPE, MASE, CRPS and 50 / 80 / 95% interval coverage of the model and of
            naive, seasonal naive, drift, AutoETS and AutoARIMA (statsforecast, refit at every
            origin) on the same origins (`rnnkit.tasks.forecast_eval`)

    rnnkit train forecast data.dataset=airline,co2 ...
    rnnkit forecast RUN --horizon 24 [--csv new.csv] --plot fc.png --out fc.csv
    rnnkit backtest RUN [--markdown bt.md] [--csv bt.csv] [--plots DIR]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from rnnkit.config import choice, positive
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.forecaster import LIKELIHOODS, Forecaster, ForecasterConfig
from rnnkit.tasks.base import Command, Loaded, Task, arg, whole
from rnnkit.training import TrainConfig

MODEL = "rnnkit"  # the model's name in the backtest tables


@dataclass
class ForecastData:
    dataset: str = "airline,co2,elec_equip,elnino"  # bundled series, comma-separated
    csv: str = ""  # a CSV of the user's instead: long format, columns named below
    date: str = "ds"  # the CSV's timestamp column
    target: str = "y"  # the CSV's value column
    id: str = ""  # the CSV's series-id column ("": one series)
    freq: str = ""  # the CSV's frequency, a pandas alias ("": inferred and checked)
    covariates: str = ""  # the CSV's known-future numeric columns, comma-separated
    context: int = 36  # C: values the model reads before forecasting
    horizon: int = 12  # H: values forecast at once
    windows: int = 3  # backtest origins per series
    step: int = 0  # values between backtest origins (0: the horizon)
    refit: bool = False  # backtest: train a fresh model for every origin (else the run's model)
    batch_size: int = 64  # training windows per step


@dataclass
class ForecastModel(ForecasterConfig):
    likelihood: str = "student_t"
    dropout: float = 0.3


@dataclass
class ForecastConfig:
    data: ForecastData = field(default_factory=ForecastData)
    model: ForecastModel = field(default_factory=ForecastModel)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1000, lr=3e-3, schedule="cosine", min_lr=1e-4, eval_every=100, clip=10.0
        )
    )

    def covariate_list(self) -> list[str]:
        return [c.strip() for c in self.data.covariates.split(",") if c.strip()]

    def validate(self) -> None:
        d, m = self.data, self.model
        if d.covariates and not d.csv:
            raise ConfigError(
                "config key 'data.covariates' names columns of data.csv, and no CSV is given",
                "set data.csv=FILE, or drop data.covariates",
            )
        positive(d, "context", "horizon", "windows", "batch_size", prefix="data.")
        positive(d, "step", prefix="data.", allow_zero=True)
        m.validate_stack()
        choice("model.likelihood", m.likelihood, LIKELIHOODS)
        positive(m, "samples", prefix="model.")
        if m.bidirectional:
            raise ConfigError(
                "config key 'model.bidirectional' must stay false: a forecast reads the past",
                "drop model.bidirectional",
            )
        self.train.validate()


# ----------------------------------------------------------------------------- the data
def phase_of(dates, season: int) -> np.ndarray:
    """Where each timestamp falls in its season, in [0, 1): the month of the year / 12, the
    quarter / 4, the ISO week / 52, the weekday / 7, the hour / 24; 0 without a season."""
    if season == 12:
        return (dates.month.to_numpy() - 1) / 12
    if season == 4:
        return (dates.quarter.to_numpy() - 1) / 4
    if season == 52:
        return np.minimum(dates.isocalendar().week.to_numpy() - 1, 51) / 52
    if season == 7:
        return dates.dayofweek.to_numpy() / 7
    if season == 24:
        return dates.hour.to_numpy() / 24
    if season <= 1:
        return np.zeros(len(dates))
    return (np.arange(len(dates)) % season) / season


@dataclass
class Series:
    """One series ready for the model."""

    uid: str
    values: np.ndarray  # (n,) float64
    dates: object  # pandas DatetimeIndex (n,)
    freq: str
    season: int
    origins: list[int]  # the backtest's forecast origins (values visible at each)
    index: int = -1  # its row of the model's series embeddings (-1: a series it never saw)
    cov: np.ndarray | None = None  # (n + F, k) known-future covariates: n observed, F ahead

    def phase(self, horizon: int = 0) -> np.ndarray:
        """(n + horizon,) phases of the series' timestamps and of the next ``horizon`` ones."""
        from rnnkit.data.series import future_dates

        dates = self.dates
        if horizon:
            dates = dates.append(future_dates(dates[-1], self.freq, horizon))
        return phase_of(dates, self.season)


@dataclass
class ForecastSetup:
    series: list[Series] = field(default_factory=list)
    lag: int = 1  # P: the longest season, the lag history before each context
    notes: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # the series the model trained on, in order


def load_series(d: ForecastData):
    """The SeriesSet the config names: the CSV if given, else the bundled datasets."""
    from rnnkit.data.series import load_csv, load_datasets

    if d.csv:
        covariates = [c.strip() for c in d.covariates.split(",") if c.strip()]
        return load_csv(d.csv, d.date, d.target, d.id or None, d.freq or None, covariates)
    return load_datasets(d.dataset)


def build_setup(raw, d: ForecastData) -> ForecastSetup:
    """SeriesSet -> ForecastSetup: each series' origins, checked long enough for training."""
    from rnnkit.data.series import require_length
    from rnnkit.tasks.forecast_eval import rolling_origins

    h, c = d.horizon, d.context
    lag = max(raw.seasons.values())
    step = d.step or h
    # the first origin needs P + C + H values for one training window, then H for validation
    need = lag + c + 2 * h + (d.windows - 1) * step + h
    require_length(raw, need, f"lag {lag} + context {c} + 2 x horizon {h} + {d.windows} "
                   f"backtest windows {step} apart")  # fmt: skip
    series = []
    for i, uid in enumerate(raw.ids()):
        values = raw.values(uid)
        origins = rolling_origins(len(values), h, d.windows, step, min_train=lag + c + 2 * h)
        series.append(
            Series(
                uid,
                values,
                raw.dates(uid),
                raw.freqs[uid],
                raw.seasons[uid],
                origins,
                i,
                raw.covariates.get(uid),
            )  # fmt: skip
        )
    return ForecastSetup(series, lag, list(raw.notes), raw.ids())


def covariate_windows(setup: ForecastSetup, rows, before: int, after: int):
    """(b, before + after, k) covariates from ``before`` steps before each row's end to
    ``after`` steps past it, or None without covariates; a DataError where the file does not
    give them that far ahead."""
    if setup.series[rows[0][0]].cov is None:
        return None
    out = []
    for i, end in rows:
        s = setup.series[i]
        if end + after > len(s.cov):
            ahead = len(s.cov) - len(s.values)
            raise DataError(
                f"series {s.uid!r} gives its covariates for {ahead} steps after its last value; "
                f"this forecast needs {end + after - len(s.values)}",
                "add future rows (dates and covariates, the target left empty) to the CSV, or "
                "shorten --horizon",
            )
        out.append(s.cov[end - before : end + after])
    return torch.tensor(np.stack(out), dtype=torch.float32)


def check_counts(series: list[Series]) -> None:
    """A negative-binomial model reads counts: every value a whole number >= 0."""
    for s in series:
        bad = np.flatnonzero((s.values < 0) | (s.values != np.round(s.values)))
        if len(bad):
            raise DataError(
                f"model.likelihood=negbin needs counts (whole numbers >= 0), but series "
                f"{s.uid!r} has {s.values[bad[0]]!r} at {s.dates[bad[0]].date()}",
                "use model.likelihood=student_t or gaussian for real-valued series",
            )


# ----------------------------------------------------------------------------- forecasting
def window_arrays(setup: ForecastSetup, rows: list[tuple[int, int]], length: int):
    """(series index, end) pairs -> values (b, length) ending before ``end``, phases
    (b, length), seasons (b,), embedding rows (b,)."""
    y = np.stack([setup.series[i].values[end - length : end] for i, end in rows])
    phase = np.stack([setup.series[i].phase()[end - length : end] for i, end in rows])
    season = np.array([setup.series[i].season for i, _ in rows])
    ids = np.array([setup.series[i].index for i, _ in rows])
    return y, phase, season, ids, covariate_windows(setup, rows, length, 0)


def forecast_at(
    model: Forecaster,
    setup: ForecastSetup,
    c: ForecastConfig,
    rows: list[tuple[int, int]],
    horizon: int,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Forecasts from origins (series index, values visible): one dict per row with "mean" (the
    point forecast: the median), "median", "lo-L" / "hi-L" for each level, and "samples" (S, H)
    for the likelihood models; in data units."""
    from rnnkit.tasks.forecast_eval import LEVELS

    model.eval()
    n = setup.lag + c.data.context
    y = np.stack([setup.series[i].values[end - n : end] for i, end in rows])
    phase = np.stack([setup.series[i].phase(horizon)[end - n : end + horizon] for i, end in rows])
    season = torch.tensor([setup.series[i].season for i, _ in rows])
    out = model.forecast(
        torch.tensor(y, dtype=torch.float32),
        torch.tensor(phase, dtype=torch.float32),
        season,
        horizon,
        start=setup.lag,
        seed=seed,
        ids=torch.tensor([setup.series[i].index for i, _ in rows]),
        cov=covariate_windows(setup, rows, n, horizon),
    )
    result = []
    if "quantiles" in out:
        q = out["quantiles"].double().numpy()  # (b, H, Q)
        levels = model.levels.tolist()
        at = {round(x, 4): j for j, x in enumerate(levels)}
        for r in range(len(rows)):
            f = {"median": q[r, :, at[0.5]]}
            for lv in LEVELS:
                lo, hi = round((1 - lv / 100) / 2, 4), round(1 - (1 - lv / 100) / 2, 4)
                f[f"lo-{lv}"], f[f"hi-{lv}"] = q[r, :, at[lo]], q[r, :, at[hi]]
            f["mean"] = f["median"]
            result.append(f)
        return result
    paths = out["samples"].double().numpy()  # (S, b, H)
    for r in range(len(rows)):
        s = paths[:, r]
        f = {"median": np.median(s, 0), "samples": s}
        for lv in LEVELS:
            f[f"lo-{lv}"] = np.quantile(s, (1 - lv / 100) / 2, axis=0)
            f[f"hi-{lv}"] = np.quantile(s, 1 - (1 - lv / 100) / 2, axis=0)
        f["mean"] = f["median"]
        result.append(f)
    return result


class ForecastLoop:
    """Training windows drawn at random (seeded by the step) from each series' training part;
    validation: the mean MASE of the forecasts of the H values before the first origin."""

    metric, higher_is_better = "val_mase", False

    def __init__(
        self, setup: ForecastSetup, config: ForecastConfig, device, rank=0, world=1, origin=0
    ):
        self.setup, self.c, self.device = setup, config, device
        self.rank, self.world, self.origin = rank, world, origin
        h = config.data.horizon
        self.length = setup.lag + config.data.context + h  # P + C + H
        # the last value a training window may reach, per series: before the validation values
        self.ends = [s.origins[origin] - h for s in setup.series]
        self.phases = [s.phase() for s in setup.series]

    def batch(self, micro: int):
        rng = np.random.default_rng([self.c.train.seed, micro])
        b = self.c.data.batch_size
        which = rng.integers(0, len(self.setup.series), b)
        rows = [(int(i), int(rng.integers(self.length, self.ends[i] + 1))) for i in which]
        rows = rows[self.rank :: self.world]
        y, phase, season, ids, cov = window_arrays(self.setup, rows, self.length)
        t = lambda a: torch.tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        long = lambda a: torch.tensor(a, device=self.device)  # noqa: E731
        cov = None if cov is None else cov.to(self.device)
        return t(y), t(phase), long(season), long(ids), cov

    def train_step(self, model, micro: int):
        y, phase, season, ids, cov = self.batch(micro)
        observed = self.setup.lag + self.c.data.context
        return model.loss(y, phase, season, observed, start=self.setup.lag, ids=ids, cov=cov)

    def evaluate(self, model) -> dict:
        from rnnkit.tasks.forecast_eval import score_forecast

        h = self.c.data.horizon
        rows = [(i, s.origins[self.origin] - h) for i, s in enumerate(self.setup.series)]
        forecasts = forecast_at(model, self.setup, self.c, rows, h, seed=0)
        scores = [
            score_forecast(s.values[end : end + h], f, s.values[:end], s.season)
            for s, (_, end), f in zip(self.setup.series, rows, forecasts, strict=True)
        ]
        return {
            "val_mase": float(np.mean([x["mase"] for x in scores])),
            # CRPS in the units of MASE (over the same in-sample scale), comparable across series
            "val_scaled_crps": float(np.mean([x["crps"] * x["mase"] / x["mae"] for x in scores])),
        }

    def state_dict(self) -> dict:
        return {}  # the windows are a function of the step

    def load_state_dict(self, state) -> None:
        pass


def backtest(model, setup: ForecastSetup, c: ForecastConfig, baselines=None) -> dict:
    """results[model][series] -> metrics averaged over the origins, for the model and each
    baseline; and the model's forecasts per (series, origin) for the pictures."""
    from rnnkit.tasks.forecast_eval import BASELINES, baseline_forecast, score_forecast

    h = c.data.horizon
    names = BASELINES if baselines is None else baselines
    rows = [(i, o) for i, s in enumerate(setup.series) for o in s.origins]
    if c.data.refit:
        by_origin = {}
        for k in range(c.data.windows):
            fresh = train_for_origin(c, setup, k)
            at = [(i, s.origins[k]) for i, s in enumerate(setup.series)]
            by_origin |= dict(zip(at, forecast_at(fresh, setup, c, at, h, seed=0), strict=True))
        ours = [by_origin[r] for r in rows]
    else:
        ours = forecast_at(model, setup, c, rows, h, seed=0)
    per: dict[str, dict[str, list[dict]]] = {MODEL: {}}
    for name in names:
        per[name] = {}
    kept = {}
    for (i, o), f in zip(rows, ours, strict=True):
        s = setup.series[i]
        truth, past = s.values[o : o + h], s.values[:o]
        per[MODEL].setdefault(s.uid, []).append(score_forecast(truth, f, past, s.season))
        kept[(s.uid, o)] = f
        for name in names:
            b = baseline_forecast(name, past, h, s.season)
            per[name].setdefault(s.uid, []).append(score_forecast(truth, b, past, s.season))
    results = {
        m: {uid: _mean_scores(scores) for uid, scores in by.items()} for m, by in per.items()
    }
    return {"results": results, "forecasts": kept}


def train_for_origin(c: ForecastConfig, setup: ForecastSetup, k: int) -> Forecaster:
    """A model trained as `rnnkit train` trains one (same seed, steps and schedule), on the
    windows that end before origin k's validation values; the final weights."""
    from rnnkit.training import Trainer, resolve_device

    device = resolve_device(c.train.device)
    torch.manual_seed(c.train.seed)
    model = Forecast().build_model(c, setup).to(device)
    loop = ForecastLoop(setup, c, device, origin=k)
    Trainer(model, loop, c.train, None, progress=False).fit()
    return model


def _mean_scores(scores: list[dict]) -> dict:
    keys = scores[0].keys()
    return {k: float(np.mean([s[k] for s in scores])) for k in keys}


def flat_scores(results: dict) -> dict:
    """results[model][series][metric] -> {"model_metric": mean over series,
    "model_metric.series": ...}: numbers for metrics.json."""
    out = {}
    for m, by in results.items():
        metrics = next(iter(by.values())).keys()
        for k in metrics:
            out[f"{m}_{k}"] = float(np.mean([v[k] for v in by.values()]))
            for uid, v in by.items():
                out[f"{m}_{k}.{uid}"] = v[k]
    return out


# ----------------------------------------------------------------------------- the task
class Forecast(Task):
    api = {"forecast": "forecast"}
    name = "forecast"
    description = "time-series forecasting (built-in: airline, co2, elec_equip, elnino)"
    Config = ForecastConfig
    files = ("series.json",)
    test_after_training = True
    commands = (
        Command(
            "forecast",
            "forecast the next values of each series, with intervals",
            "forecast_command",
            (
                arg("--horizon", type=whole(1), help="values to forecast (default: the run's)"),
                arg("--csv", help="forecast these series instead (the run's CSV columns)"),
                arg("--plot", metavar="PNG", help="history, forecast and intervals"),
                arg("--out", metavar="CSV", help="write the forecasts as CSV"),
                arg("--seed", type=whole(), default=0, help="seed of the sample paths"),
            ),
        ),
        Command(
            "backtest",
            "rolling-origin backtest of the run's model beside the baselines",
            "backtest_command",
            (
                arg("--markdown", metavar="MD", help="write the table as Markdown"),
                arg("--csv", metavar="CSV", help="write every score as CSV"),
                arg("--plots", metavar="DIR", help="a PNG per series with each origin"),
                arg("--refit", action="store_true", help="train a fresh model for each origin"),
            ),
        ),
    )

    def prepare(self, config: ForecastConfig, run=None, data: bool = True) -> ForecastSetup:
        if not data:  # a saved run: the series it trained on, for their embeddings
            known = run.read_json("series.json") if run is not None else []
            return ForecastSetup(known=list(known))
        setup = build_setup(load_series(config.data), config.data)
        if config.model.likelihood == "negbin":
            check_counts(setup.series)
        return setup

    def inputs(self, config: ForecastConfig) -> dict[str, str]:
        return {"data.csv": config.data.csv} if config.data.csv else {}

    def saved(self, setup: ForecastSetup) -> dict[str, str]:
        return {"series.json": json.dumps(setup.known)}

    def build_model(self, config: ForecastConfig, setup) -> Forecaster:
        from rnnkit.tasks.forecast_eval import QUANTILES

        k = len(config.covariate_list())
        model = Forecaster(
            config.model, QUANTILES, config.data.horizon, max(len(setup.known), 1), k
        )
        if k and setup.series:  # standardise by the values the training windows can reach
            h = config.data.horizon
            seen = np.concatenate([s.cov[: s.origins[0] - h] for s in setup.series])
            model.cov_loc.copy_(torch.tensor(seen.mean(0)))
            model.cov_scale.copy_(torch.tensor(np.maximum(seen.std(0), 1e-8)))
        return model

    def loop(self, config, setup, device, rank, world) -> ForecastLoop:
        return ForecastLoop(setup, config, device, rank, world)

    def summary(self, config, setup: ForecastSetup, model, world: int) -> str:
        params = sum(p.numel() for p in model.parameters())
        sizes = ", ".join(f"{s.uid} {len(s.values)}" for s in setup.series)
        text = f"{len(setup.series)} series ({sizes}); {params:,} parameters"
        return "; ".join([text, *setup.notes])

    def score(self, loaded: Loaded, **options) -> dict:
        setup = self.prepare(loaded.config)
        return flat_scores(backtest(loaded.model, setup, loaded.config)["results"])

    def report(self, loaded: Loaded, **options):
        from rnnkit.tasks.forecast_plot import report_sections

        return report_sections(self, loaded)

    # ------------------------------------------------------------------------- using a run
    def export_graph(self, loaded: Loaded):
        """The forecaster with its step inputs' parts and its state explicit (see
        `rnnkit.export.ForecasterGraph`): the distribution (or quantiles) of the next values;
        drawing sample paths, feeding each draw back, is the caller's."""
        from rnnkit.export import forecaster_graph

        return forecaster_graph(loaded.model)

    def forecast(self, path, horizon: int | None = None, csv: str | None = None, seed: int = 0):
        """The next ``horizon`` values of every series (the run's, or a CSV's with the run's
        column names): {series id: (future dates, forecast dict)}, and the setup used."""
        loaded = path if isinstance(path, Loaded) else self.load(path)
        c = loaded.config
        if horizon is not None and horizon < 1:
            raise DataError(f"--horizon must be at least 1, got {horizon}", "e.g. --horizon 12")
        horizon = horizon or c.data.horizon
        if c.model.likelihood == "quantile" and horizon > c.data.horizon:
            raise DataError(
                f"this run's quantile model forecasts at most {c.data.horizon} values, "
                f"asked for {horizon}",
                "use a shorter --horizon, or train with model.likelihood=gaussian",
            )
        from rnnkit.data.series import future_dates, load_csv, require_length

        if csv:
            d = c.data
            raw = load_csv(csv, d.date, d.target, d.id or None, d.freq or None, c.covariate_list())
        else:
            raw = load_series(c.data)
        lag = max(max(raw.seasons.values()), 1)
        require_length(raw, lag + c.data.context, f"lag {lag} + context {c.data.context}")
        known = {uid: i for i, uid in enumerate(loaded.setup.known)}  # new series: -1
        series = [
            Series(
                u,
                raw.values(u),
                raw.dates(u),
                raw.freqs[u],
                raw.seasons[u],
                [],
                known.get(u, -1),
                raw.covariates.get(u),
            )  # fmt: skip
            for u in raw.ids()
        ]
        if c.model.likelihood == "negbin":
            check_counts(series)
        setup = ForecastSetup(series, lag, list(raw.notes), loaded.setup.known)
        rows = [(i, len(s.values)) for i, s in enumerate(series)]
        fc = forecast_at(loaded.model, setup, c, rows, horizon, seed=seed)
        out = {}
        for s, f in zip(series, fc, strict=True):
            out[s.uid] = (future_dates(s.dates[-1], s.freq, horizon), f)
        return out, setup

    def forecast_command(self, args) -> int:
        from rnnkit.tasks.forecast_plot import forecast_csv, plot_forecasts

        loaded = self.load(args.run)
        out, setup = self.forecast(loaded, args.horizon, args.csv, args.seed)
        for uid, (dates, f) in out.items():
            print(f"{uid}: {dates[0].date()} .. {dates[-1].date()}")
            for d, m, lo, hi in zip(dates, f["mean"], f["lo-80"], f["hi-80"], strict=True):
                print(f"  {d.date()}  {m:12.4f}   80% [{lo:.4f}, {hi:.4f}]")
        if args.out:
            Path(args.out).write_text(forecast_csv(out), encoding="utf-8")
            print(f"wrote {args.out}")
        if args.plot:
            plot_forecasts(setup, out, args.plot)
            print(f"wrote {args.plot}")
        return 0

    def backtest_command(self, args) -> int:
        from rnnkit.tasks.forecast_eval import mean_table
        from rnnkit.tasks.forecast_plot import plot_backtest, scores_csv

        loaded = self.load(args.run)
        loaded.check_inputs()
        config = loaded.config
        if args.refit:
            config = replace(config, data=replace(config.data, refit=True))
        setup = self.prepare(config)
        bt = backtest(loaded.model, setup, config)
        table = mean_table(bt["results"])
        print(table)
        if args.markdown:
            Path(args.markdown).write_text(table + "\n", encoding="utf-8")
            print(f"wrote {args.markdown}")
        if args.csv:
            Path(args.csv).write_text(scores_csv(bt["results"]), encoding="utf-8")
            print(f"wrote {args.csv}")
        if args.plots:
            folder = Path(args.plots)
            folder.mkdir(parents=True, exist_ok=True)
            for s in setup.series:
                path = folder / f"{s.uid}.png"
                plot_backtest(s, bt["forecasts"], loaded.config.data.horizon, path)
                print(f"wrote {path}")
        return 0
