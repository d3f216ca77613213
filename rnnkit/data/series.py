"""Time series for the forecasting task, in one shape: a long-format frame, one row per
(series, timestamp), every series regular in time and without gaps or missing values.

    series = load_datasets("airline,co2")   SeriesSet of bundled series, ids = dataset names
    series = load_csv("sales.csv", id="store")
    series.frame                            columns unique_id (str), ds (datetime64[ns]),
                                            y (float64); sorted by unique_id, ds
    series.values("airline")                (n,) float64
    series.freqs["airline"], series.seasons["airline"]   "MS", 12
    future_dates(series.dates("airline")[-1], "MS", 12)  the 12 months after the last

==========  ======  =====  ======  ============================================================
name        freq    m      length  source
==========  ======  =====  ======  ============================================================
airline     MS      12     144     Box and Jenkins (1976), series G; written out below
co2         MS      12     526     statsmodels ``co2``: 2225 weekly values (59 weeks missing)
                                   averaged to month starts, 5 empty months interpolated
elec_equip  MS      12     257     statsmodels ``elec_equip`` (ECB short-term statistics)
elnino      MS      12     732     statsmodels ``elnino``: 61 years x 12 month columns
sunspots    YS-JAN  1      309     statsmodels ``sunspots``
nile        YS-JAN  1      100     statsmodels ``nile``
macrodata   QS-JAN  4      203     statsmodels ``macrodata``: realgdp, realcons, realinv
==========  ======  =====  ======  ============================================================

Frequencies are pandas offset aliases, written as pandas writes them back (``QS`` -> ``QS-JAN``,
``YS`` -> ``YS-JAN``, ``W`` -> ``W-SUN``, ``H`` -> ``h``). A quarterly series is named by the
first anchor month of the year (``QS-JAN``, not the ``QS-OCT`` pandas infers for Jan/Apr/Jul/Oct).
The seasonal period m (`season_for`) is the number of steps in one year for monthly (12),
quarterly (4) and weekly (52) data, one week for daily data (7), one day below that (24 hourly),
and 1 (no seasonality) for yearly data or where no cycle fits a whole number of steps.

A CSV file (`load_csv`) holds one row per timestamp, with a date column, a target column and,
for several series, an id column. Empty cells and ``NA``, ``N/A``, ``NaN``, ``null``, ``None``,
``#N/A``, ``.`` in the target are missing values: dropped at either end of a series,
interpolated linearly inside it, and counted per series in ``notes``. Everything else the file
can get wrong is one `DataError` naming the line, the value and what was expected.
The statsmodels datasets are public domain; they are read from the installed package, nothing
is downloaded. statsmodels is imported only when a bundled dataset other than airline is loaded.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from rnnkit.errors import DataError

__all__ = [
    "SeriesSet",
    "DATASETS",
    "SEASONAL",
    "AIRLINE",
    "OPTIONS",
    "load_datasets",
    "load_csv",
    "season_for",
    "future_dates",
    "require_length",
]

DATASETS = {
    "airline": "international airline passengers, thousands a month, 1949-1960 (Box-Jenkins)",
    "co2": "atmospheric CO2 at Mauna Loa, ppm, weekly 1958-2001 averaged to months",
    "elec_equip": "euro-area turnover index of electrical equipment makers, monthly 1995-2016",
    "elnino": "mean Pacific sea surface temperature, degrees C, monthly 1950-2010",
    "sunspots": "yearly mean number of sunspots, 1700-2008",
    "nile": "yearly flow of the Nile at Aswan, 10^8 m^3, 1871-1970",
    "macrodata": "US real GDP, consumption and investment, quarterly 1959Q1-2009Q3",
}
SEASONAL = ("airline", "co2", "elec_equip", "elnino")

# the CLI option and the config key that name each argument of `load_csv`, for the hints
OPTIONS = {"date": "data.date", "target": "data.target", "id": "data.id", "freq": "data.freq"}

# Box and Jenkins (1976), series G: international airline passengers in thousands,
# monthly from January 1949 to December 1960, one line a year (public domain)
AIRLINE = (
    (112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118),
    (115, 126, 141, 135, 125, 149, 170, 170, 158, 133, 114, 140),
    (145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166),
    (171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194),
    (196, 196, 236, 235, 229, 243, 264, 272, 237, 211, 180, 201),
    (204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229),
    (242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278),
    (284, 277, 317, 313, 318, 374, 413, 405, 355, 306, 271, 306),
    (315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336),
    (340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337),
    (360, 342, 406, 396, 420, 472, 548, 559, 463, 407, 362, 405),
    (417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432),
)

MISSING = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>", "."})
COLUMNS = ("unique_id", "ds", "y")


@dataclass
class SeriesSet:
    """Regular time series in long format, with their frequencies and seasonal periods.

    ``frame``: columns unique_id (str), ds (datetime64[ns]), y (float64), sorted by unique_id
    then ds, no NaN. ``freqs`` / ``seasons``: per series, the pandas offset alias and the
    seasonal period m. ``notes``: sentences telling the user what was done to the data. The
    frame is sorted and its index reset on construction.
    """

    frame: pd.DataFrame
    freqs: dict[str, str]
    seasons: dict[str, int]
    notes: list[str] = field(default_factory=list)
    # known-future covariates (CSV columns named by load_csv's ``covariates``): per series an
    # (n + F, k) array, its rows the series' n timestamps, then F future ones (rows of the file
    # after the last target value, whose covariates are given)
    covariates: dict[str, np.ndarray] = field(default_factory=dict)
    covariate_names: list[str] = field(default_factory=list)
    _rows: dict[str, slice] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        absent = [c for c in COLUMNS if c not in self.frame.columns]
        if absent:
            raise DataError(
                f"a series frame needs columns {list(COLUMNS)}; {absent} are absent "
                f"(it has {list(self.frame.columns)})"
            )
        frame = self.frame.sort_values(["unique_id", "ds"], kind="stable", ignore_index=True)
        self.frame = frame
        ids = frame["unique_id"].to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else []
        ends = [*starts[1:], len(ids)]
        self._rows = {str(ids[a]): slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)}

    def ids(self) -> list[str]:
        """The series ids, in the frame's (sorted) order."""
        return list(self._rows)

    def values(self, uid: str) -> np.ndarray:
        """(n,) float64: the values of series ``uid`` in time order."""
        return self.frame["y"].to_numpy(dtype=np.float64)[self._slice(uid)].copy()

    def dates(self, uid: str) -> pd.DatetimeIndex:
        """(n,) the timestamps of series ``uid``, with its frequency set."""
        index = pd.DatetimeIndex(self.frame["ds"].to_numpy()[self._slice(uid)])
        return pd.DatetimeIndex(index, freq=self.freqs.get(uid))

    def __len__(self) -> int:
        return len(self._rows)

    def _slice(self, uid: str) -> slice:
        if uid not in self._rows:
            raise DataError(f"no series {uid!r} here; the set holds {_listing(self.ids())}")
        return self._rows[uid]


# ----------------------------------------------------------------------------- frequencies
def season_for(freq: str) -> int:
    """The seasonal period m of data at frequency ``freq``: steps per year for monthly (12),
    quarterly (4) and weekly (52) data; one week for daily (7) and business-daily (5) data;
    steps per day below that (24 hourly, 48 half-hourly); 1 for yearly data and for multiples
    whose cycle is not a whole number of steps (e.g. 5 months). An unknown alias: DataError."""
    offset = _offset(freq)
    n = abs(offset.n) or 1
    years = (pd.offsets.YearBegin, pd.offsets.YearEnd, pd.offsets.BYearBegin, pd.offsets.BYearEnd)
    if isinstance(offset, years):
        return 1
    per_year = {
        pd.offsets.QuarterBegin: 4,
        pd.offsets.QuarterEnd: 4,
        pd.offsets.BQuarterBegin: 4,
        pd.offsets.BQuarterEnd: 4,
        pd.offsets.MonthBegin: 12,
        pd.offsets.MonthEnd: 12,
        pd.offsets.BusinessMonthBegin: 12,
        pd.offsets.BusinessMonthEnd: 12,
        pd.offsets.SemiMonthBegin: 24,
        pd.offsets.SemiMonthEnd: 24,
        pd.offsets.Week: 52,
        pd.offsets.BusinessDay: 5,  # one business week
    }
    for kind, steps in per_year.items():
        if isinstance(offset, kind):
            return _whole(steps, n)
    if isinstance(offset, pd.offsets.Day):  # before Tick: Day is a Tick in pandas 2
        return _whole(7, n)
    if isinstance(offset, pd.offsets.Tick):
        return _whole(pd.Timedelta(days=1).value, offset.nanos)
    return 1


def future_dates(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    """(horizon,) the ``horizon`` timestamps at ``freq`` that follow ``last``."""
    if horizon < 0:
        raise DataError(f"the forecast horizon must be 0 or more, got {horizon}")
    offset = _offset(freq)
    start = pd.Timestamp(last) + offset  # rolls forward to the next step if `last` is off-grid
    dates = pd.date_range(start, periods=horizon, freq=offset)
    return pd.DatetimeIndex(dates.astype("datetime64[ns]"), freq=offset)


def require_length(series: SeriesSet, need: int, what: str) -> None:
    """A DataError unless every series has at least ``need`` values; ``what`` says what needs
    them (e.g. "context 36 + horizon 12"). The message names the shortest series."""
    if not len(series):
        raise DataError(f"there are no series, and {what} needs {need} values per series")
    lengths = {uid: s.stop - s.start for uid, s in series._rows.items()}
    short = [uid for uid, n in lengths.items() if n < need]
    if not short:
        return
    uid = min(short, key=lambda u: (lengths[u], u))
    others = f" ({len(short) - 1} more of {len(series)} series are short too)" if short[1:] else ""
    raise DataError(
        f"series {uid!r} has {lengths[uid]} values, fewer than the {need} that {what} "
        f"needs{others}",
        "shorten the context or the horizon, or leave the short series out",
    )


# ----------------------------------------------------------------------------- bundled data
def load_datasets(names: str | list[str]) -> SeriesSet:
    """The bundled series ``names`` ("airline,co2" or a list; see DATASETS) as one set. The
    series ids are the dataset names; macrodata gives macrodata.realgdp, .realcons, .realinv."""
    if isinstance(names, str):
        names = names.split(",")
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in wanted if n not in DATASETS]
    if unknown or not wanted:
        what = f"unknown dataset {unknown[0]!r}" if unknown else "no dataset given"
        raise DataError(
            f"{what}; choose from {', '.join(DATASETS)}",
            "several go comma-separated, e.g. 'airline,co2'; your own series come from a CSV "
            "file (load_csv)",
        )
    parts, notes = [], []
    for name in wanted:
        freq, series, note = _LOADERS[name]()
        parts += [(uid, dates, y, freq) for uid, dates, y in series]
        notes += [note] if note else []
    return _assemble(parts, notes, f"the {', '.join(wanted)} data")


def _airline():
    y = np.array(AIRLINE, dtype=np.float64).ravel()
    return "MS", [("airline", pd.date_range("1949-01-01", periods=len(y), freq="MS"), y)], None


def _co2():
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean()  # (526,) month starts; months with no value -> NaN
    empty = int(monthly.isna().sum())
    note = (
        f"co2: {int(weekly.notna().sum())} weekly values ({int(weekly.isna().sum())} weeks "
        f"missing) averaged to {len(monthly)} months; {empty} empty months interpolated linearly"
    )
    y = _interpolate(monthly.to_numpy(dtype=np.float64))
    return "MS", [("co2", monthly.index, y)], note


def _elec_equip():
    from statsmodels.datasets import elec_equip

    data = elec_equip.load().data
    return "MS", [("elec_equip", data.index, data.iloc[:, 0].to_numpy(np.float64))], None


def _elnino():
    from statsmodels.datasets import elnino

    data = elnino.load_pandas().data
    months = data.columns[1:]  # JAN .. DEC
    y = data[months].to_numpy(dtype=np.float64).ravel()  # (years * 12,) year by year
    years = data["YEAR"].to_numpy().astype(int)
    start = pd.Timestamp(year=int(years[0]), month=1, day=1)
    dates = pd.date_range(start, periods=len(y), freq="MS")
    note = f"elnino: {len(years)} years x 12 month columns read as one series of {len(y)} months"
    return "MS", [("elnino", dates, y)], note


def _yearly(module, year: str, value: str, uid: str):
    data = module.load_pandas().data
    dates = _from_parts(data[year])
    return "YS", [(uid, dates, data[value].to_numpy(np.float64))], None


def _sunspots():
    from statsmodels.datasets import sunspots

    return _yearly(sunspots, "YEAR", "SUNACTIVITY", "sunspots")


def _nile():
    from statsmodels.datasets import nile

    return _yearly(nile, "year", "volume", "nile")


def _macrodata():
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    dates = _from_parts(data["year"], 3 * (data["quarter"] - 1) + 1)
    columns = ("realgdp", "realcons", "realinv")
    return "QS", [(f"macrodata.{c}", dates, data[c].to_numpy(np.float64)) for c in columns], None


_LOADERS = {
    "airline": _airline,
    "co2": _co2,
    "elec_equip": _elec_equip,
    "elnino": _elnino,
    "sunspots": _sunspots,
    "nile": _nile,
    "macrodata": _macrodata,
}


def _from_parts(year: pd.Series, month: pd.Series | None = None) -> pd.DatetimeIndex:
    """Timestamps from float year (and month) columns, on the first of the month."""
    parts = pd.DataFrame({"year": year.to_numpy().astype(int), "month": 1, "day": 1})
    if month is not None:
        parts["month"] = month.to_numpy().astype(int)
    return pd.DatetimeIndex(pd.to_datetime(parts))


# ----------------------------------------------------------------------------- CSV files
def load_csv(
    path,
    date: str = "ds",
    target: str = "y",
    id: str | None = None,
    freq: str | None = None,
    covariates: list[str] | tuple[str, ...] = (),
) -> SeriesSet:
    """The series of a comma-separated UTF-8 file with a header line.

    ``date``: the timestamp column; ``target``: the values; ``id``: the column that tells
    series apart (without it the file is one series, named after ``target``); ``freq``: the
    pandas offset alias every series must follow (default: inferred per series with
    pd.infer_freq). Missing targets are dropped at the ends of a series and interpolated
    linearly inside it, with a note. ``covariates``: numeric columns known in advance (a price,
    a promotion flag); each must be present wherever the target is, and rows after a series'
    last target value that give them are its known future (`SeriesSet.covariates`). Any other
    mistake is a DataError.
    """
    path = Path(path)
    source = str(path)
    header, cells, line = _read_table(path)
    covariates = list(covariates)
    for arg, column in (("date", date), ("target", target), ("id", id)):
        if column is not None and column not in header:
            raise _absent(source, arg, column, header)
    for column in covariates:
        if column not in header:
            raise DataError(
                f"{source}: no column {column!r} for the covariates (data.covariates); the file "
                f"has columns {_listing(header)}",
                "name existing numeric columns, comma-separated",
            )
    used = [c for c in (date, target, id, *covariates) if c is not None]
    if len(set(used)) < len(used):
        raise DataError(
            f"{source}: date, target, id and covariates must be different columns, got {used}",
            f"name them with {_options('date')}, {_options('target')} and {_options('id')}",
        )
    twice = [c for c in used if header.count(c) > 1]
    if twice:
        raise DataError(
            f"{source}: the header line names column {twice[0]!r} {header.count(twice[0])} times",
            "give every column its own name",
        )
    cells = pd.DataFrame({c: [row[header.index(c)] for row in cells] for c in used})
    line = pd.Series(line, index=cells.index)
    notes: list[str] = []
    ds = _parse_dates(cells[date], line, source, date, notes)
    y = _parse_numbers(cells[target], line, source, target)
    if id is None:
        uid = pd.Series(target, index=cells.index)
    else:
        uid = cells[id]
        if (uid == "").any():
            at = uid.index[(uid == "").to_numpy()][0]
            raise DataError(
                f"{source}: line {line[at]} has no series id in column {id!r}",
                "every row needs the id of its series",
            )
    long = pd.DataFrame({"unique_id": uid, "ds": ds, "y": y, "line": line})
    for k, column in enumerate(covariates):
        long[f"x{k}"] = _parse_numbers(cells[column], line, source, column)
    long = long.sort_values(["unique_id", "ds"], kind="stable")
    twice = long.duplicated(["unique_id", "ds"], keep=False)
    if twice.any():
        first = long[twice].iloc[0]
        several = f"; if the file holds several series, name their column with {_options('id')}"
        several = "" if id else several
        rows = long.loc[twice & (long.ds == first.ds) & (long.unique_id == first.unique_id)]
        raise DataError(
            f"{source}: series {first.unique_id!r} has timestamp {_when(first.ds)} "
            f"{len(rows)} times (lines {', '.join(str(n) for n in rows.line)})",
            "keep one row per timestamp (aggregate them first)" + several,
        )
    parts = [
        (str(key), pd.DatetimeIndex(group.ds), group.y.to_numpy(np.float64), freq)
        for key, group in long.groupby("unique_id", sort=True)
    ]
    series = _assemble(parts, notes, source, target=target)
    if covariates:
        names = [f"x{k}" for k in range(len(covariates))]
        for key, group in long.groupby("unique_id", sort=True):
            uid = str(key)
            n = len(series.values(uid))
            first = series.dates(uid)[0]
            rows = group[group.ds >= first]
            x = rows[names].to_numpy(np.float64)
            future = int(np.isnan(rows.y.to_numpy()[n:]).all() and len(rows) - n)
            x = x[: n + future]
            gap = np.argwhere(np.isnan(x))
            if len(gap):
                at, k = gap[0]
                raise DataError(
                    f"{source}: covariate {covariates[k]!r} of series {uid!r} is missing at "
                    f"line {rows.line.iloc[at]} ({_when(rows.ds.iloc[at])})",
                    "covariates must be given wherever the target is, and in future rows",
                )
            series.covariates[uid] = x
        series.covariate_names = covariates
    return series


def _read_table(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """(header, data rows, their line numbers) of the CSV file at ``path``: every cell a
    stripped string (nothing parsed yet), blank lines skipped, short rows padded with ""."""
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"the series file {path} {what}", "give the path of a CSV file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        where = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8 text: line {where} holds byte "
            f"0x{raw[err.start]:02x} (byte {err.start} of the file)",
            "save the file as UTF-8 CSV (in a spreadsheet: 'CSV UTF-8')",
        ) from None
    header, rows, lines = None, [], []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            row = [cell.strip() for cell in row]
            if not any(row):
                continue
            if header is None:
                header = row
            elif len(row) > len(header):
                raise DataError(
                    f"{path}: line {reader.line_num} has {len(row)} fields, the header line "
                    f"{len(header)} ({', '.join(map(repr, header))})",
                    "every row needs one field per column; quote a value that holds a comma "
                    '("1,200")',
                )
            else:
                rows.append(row + [""] * (len(header) - len(row)))
                lines.append(reader.line_num)
    except csv.Error as err:
        raise DataError(
            f"{path} is not a readable CSV file: line {reader.line_num}: {err}", _csv_hint()
        ) from None
    if header is None:
        raise DataError(f"the series file {path} is empty", _csv_hint())
    if not rows:
        raise DataError(f"{path} has a header line but no data rows", _csv_hint())
    return header, rows, lines


def _parse_dates(text: pd.Series, line: pd.Series, source: str, column: str, notes) -> pd.Series:
    """Timestamps of ``text``: ISO 8601 first, then whatever pandas recognises."""
    empty = text == ""
    if empty.any():
        at = text.index[empty.to_numpy()][0]
        raise DataError(
            f"{source}: line {line[at]} has no timestamp in column {column!r}",
            "every row needs a date or time; rows without one must go",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": NaT says it
            warnings.simplefilter("error", FutureWarning)  # mixed time zones
            ds = pd.to_datetime(text, format="ISO8601", errors="coerce")
            if ds.isna().any():
                other = pd.to_datetime(text, errors="coerce")
                if other.isna().sum() < ds.isna().sum():
                    ds = other
    except (ValueError, TypeError, OverflowError, FutureWarning) as err:
        why = "its UTC offsets differ" if "mixed time zones" in str(err) else str(err)
        raise DataError(
            f"{source}: cannot read column {column!r} as timestamps: {why}",
            "write them as ISO 8601 (2024-01-31 or 2024-01-31 13:00), all in one time zone",
        ) from None
    if ds.isna().any():
        at = ds.index[ds.isna().to_numpy()][0]
        raise DataError(
            f"{source}: line {line[at]}: {text[at]!r} in column {column!r} is not a timestamp",
            "write timestamps as ISO 8601 (2024-01-31 or 2024-01-31 13:00) between the years "
            f"1678 and 2261; if {column!r} is not the date column, name it with "
            f"{_options('date')}",
        )
    if getattr(ds.dt, "tz", None) is not None:
        notes.append(f"{source}: time zone {ds.dt.tz} of {column!r} dropped, local times kept")
        ds = ds.dt.tz_localize(None)
    return ds.astype("datetime64[ns]")


def _parse_numbers(text: pd.Series, line: pd.Series, source: str, column: str) -> pd.Series:
    """float64 values of ``text``; missing markers (MISSING) become NaN."""
    missing = text.str.lower().isin(MISSING)
    y = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").astype(np.float64)
    bad = ~missing & ~np.isfinite(y)
    if bad.any():
        at = text.index[bad.to_numpy()][0]
        raise DataError(
            f"{source}: line {line[at]}: {text[at]!r} in column {column!r} is not a number "
            f"({int(bad.sum())} such values)",
            "write plain numbers (1234.5, no thousands separators or units); leave a cell "
            "empty where the value is missing, it is interpolated; if the values are in "
            f"another column, name it with {_options('target')}",
        )
    return y


def _absent(source: str, arg: str, column: str, columns: list[str]) -> DataError:
    role = {"date": "timestamps", "target": "values", "id": "series ids"}[arg]
    hint = f"name the column of the {role} with {_options(arg)}"
    if len(columns) == 1 and any(s in columns[0] for s in (";", "\t", "|")):
        hint += "; the file seems not to be comma-separated (rnnkit reads commas only)"
    return DataError(
        f"{source}: no column {column!r} for the {role} ({arg}={column!r}); "
        f"the file has columns {_listing(columns)}",
        hint,
    )


def _options(arg: str) -> str:
    return f"the config key {OPTIONS[arg]}"


def _csv_hint() -> str:
    return (
        "a series file is comma-separated UTF-8 with a header line, e.g. `ds,y` then "
        "`1949-01-01,112`; add an id column for several series"
    )


# ----------------------------------------------------------------------------- assembling
def _assemble(parts, notes: list[str], source: str, target: str = "y") -> SeriesSet:
    """A SeriesSet of ``parts`` [(uid, dates (n,), values (n,) with NaN, freq or None)]: each
    series' frequency checked (or inferred), NaN ends dropped and NaN inside interpolated."""
    frames, freqs, seasons = [], {}, {}
    for uid, dates, y, freq in parts:
        dates = pd.DatetimeIndex(dates).astype("datetime64[ns]")
        if freq is not None:
            offset = _offset(freq, source)
            _check_steps(uid, dates, offset, freq, source)
        else:
            offset = _infer(uid, dates, source)
        freqs[uid] = _canonical(offset, dates[0])
        seasons[uid] = season_for(freqs[uid])
        keep, note = _fill(uid, y, source, target)
        notes += [note] if note else []
        y = _interpolate(y[keep])
        frames.append(pd.DataFrame({"unique_id": uid, "ds": dates[keep], "y": y}))
    frame = pd.concat(frames, ignore_index=True)
    frame["unique_id"] = frame["unique_id"].astype(str)
    return SeriesSet(frame, freqs, seasons, notes)


def _offset(freq: str, source: str | None = None):
    """The pandas offset of alias ``freq`` (deprecated aliases such as H and Q accepted)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            offset = to_offset(freq)
    except (ValueError, TypeError):
        offset = None
    if offset is None:
        raise DataError(
            (f"{source}: " if source else "") + f"{freq!r} is not a pandas frequency alias",
            "use one such as MS (month starts), ME (month ends), QS, YS, W-SUN, D or h, "
            f"with {_options('freq')}, or leave it out to infer it",
        )
    return offset


def _canonical(offset, first: pd.Timestamp) -> str:
    """The alias of ``offset``; a quarterly one anchored on its first month in the year."""
    if offset.n == 1 and isinstance(offset, pd.offsets.QuarterBegin):
        offset = pd.offsets.QuarterBegin(startingMonth=(first.month - 1) % 3 + 1)
    elif offset.n == 1 and isinstance(offset, pd.offsets.QuarterEnd):
        offset = pd.offsets.QuarterEnd(startingMonth=12 - (12 - first.month) % 3)
    return offset.freqstr


def _infer(uid: str, dates: pd.DatetimeIndex, source: str):
    """The offset that ``dates`` follow, or a DataError naming the first gap that breaks it."""
    hint = (
        "a series needs one row per step: add the missing timestamps with an empty value "
        "(it is interpolated), aggregate to a coarser frequency first, or give the frequency "
        f"with {_options('freq')}"
    )
    if len(dates) < 3:
        raise DataError(
            f"{source}: series {uid!r} has {len(dates)} timestamps, too few to infer its "
            "frequency (3 needed)",
            f"give the frequency with {_options('freq')}, e.g. MS for month starts",
        )
    inferred = pd.infer_freq(dates)
    if inferred is not None:
        return _offset(inferred)
    for ends in (dates[:3], dates[-3:]):  # the step that most of the series takes
        guess = pd.infer_freq(ends)
        if guess is None:
            continue
        expected = pd.date_range(dates[0], periods=len(dates), freq=_offset(guess))
        wrong = np.flatnonzero(expected != dates)
        if len(wrong) and wrong[0] > 0:
            i = wrong[0]
            raise DataError(
                f"{source}: series {uid!r} has no regular frequency: it steps by {guess} "
                f"until {_when(dates[i - 1])}, then to {_when(dates[i])} "
                f"({_gap(dates[i] - dates[i - 1])}; {_when(expected[i])} expected)",
                hint,
            )
    gaps = ", ".join(_gap(g) for g in np.diff(dates[:4]))
    raise DataError(
        f"{source}: series {uid!r} has no regular frequency: its first gaps are {gaps} "
        f"(from {_when(dates[0])})",
        hint + "; monthly data must sit on month starts (MS) or month ends (ME)",
    )


def _check_steps(uid: str, dates: pd.DatetimeIndex, offset, freq: str, source: str) -> None:
    """A DataError unless ``dates`` are consecutive steps of ``offset``."""
    try:
        inferred = pd.infer_freq(dates) if len(dates) >= 3 else None
    except (ValueError, TypeError):
        inferred = None
    hint = (
        f"its timestamps look like {inferred!r}: give that, or leave the frequency out to infer it"
        if inferred
        else "leave the frequency out to infer it and see where the steps break"
    )
    if not offset.is_on_offset(dates[0]):
        raise DataError(
            f"{source}: series {uid!r} does not follow the frequency {freq!r}: its first "
            f"timestamp {_when(dates[0])} is not on a {freq} step",
            hint,
        )
    expected = pd.date_range(dates[0], periods=len(dates), freq=offset)
    wrong = np.flatnonzero(expected != dates)
    if len(wrong):
        i = wrong[0]
        raise DataError(
            f"{source}: series {uid!r} does not follow the frequency {freq!r}: "
            f"{_when(dates[i - 1])} is followed by {_when(dates[i])}, "
            f"{_when(expected[i])} expected",
            hint,
        )


def _fill(uid: str, y: np.ndarray, source: str, target: str):
    """(slice of ``y`` without leading / trailing NaN, a note or None); the ends are dropped."""
    present = np.flatnonzero(~np.isnan(y))
    if not len(present):
        raise DataError(
            f"{source}: series {uid!r} has no values: all {len(y)} of {target!r} are missing"
        )
    a, b = int(present[0]), int(present[-1]) + 1
    inner = int(np.isnan(y[a:b]).sum())
    if not (a or inner or len(y) - b):
        return slice(a, b), None
    said = [f"{_count(inner, 'missing value')} of {target!r} interpolated linearly"] * bool(inner)
    said += [f"{_count(a, 'leading missing value')} dropped"] * bool(a)
    said += [f"{_count(len(y) - b, 'trailing missing value')} dropped"] * bool(len(y) - b)
    return slice(a, b), f"{uid}: " + "; ".join(said)


def _interpolate(y: np.ndarray) -> np.ndarray:
    """(n,) ``y`` with NaN replaced linearly between their neighbours (the ends are values)."""
    y = np.asarray(y, dtype=np.float64).copy()
    gone = np.isnan(y)
    if gone.any():
        at = np.arange(len(y))
        y[gone] = np.interp(at[gone], at[~gone], y[~gone])
    return y


def _whole(cycle: int, step: int) -> int:
    """cycle / step where that is a whole number above 1, else 1."""
    return cycle // step if step and cycle % step == 0 and cycle // step > 1 else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _when(ts) -> str:
    ts = pd.Timestamp(ts)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else str(ts)


def _gap(delta) -> str:
    delta = pd.Timedelta(delta)
    if delta == delta.floor("D"):
        return _count(delta.days, "day")
    return str(delta)


def _listing(names: list[str], most: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
