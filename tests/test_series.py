"""The forecasting task's one input shape: bundled datasets and CSV files as a long-format
SeriesSet, the frequency helpers, and one clear DataError for each mistake a CSV file can hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.series import (
    DATASETS,
    SEASONAL,
    SeriesSet,
    future_dates,
    load_csv,
    load_datasets,
    require_length,
    season_for,
)
from rnnkit.errors import DataError

# name -> (ids, length, freq, season, first timestamp)
EXPECTED = {
    "airline": (["airline"], 144, "MS", 12, "1949-01-01"),
    "co2": (["co2"], 526, "MS", 12, "1958-03-01"),
    "elec_equip": (["elec_equip"], 257, "MS", 12, "1995-01-01"),
    "elnino": (["elnino"], 732, "MS", 12, "1950-01-01"),
    "sunspots": (["sunspots"], 309, "YS-JAN", 1, "1700-01-01"),
    "nile": (["nile"], 100, "YS-JAN", 1, "1871-01-01"),
    "macrodata": (
        ["macrodata.realcons", "macrodata.realgdp", "macrodata.realinv"],
        203,
        "QS-JAN",
        4,
        "1959-01-01",
    ),
}


@pytest.fixture(scope="module")
def bundled() -> SeriesSet:
    return load_datasets(list(DATASETS))


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- bundled data
def test_airline_is_the_box_jenkins_series():
    series = load_datasets("airline")
    y = series.values("airline")
    assert series.ids() == ["airline"] and len(series) == 1
    assert y.shape == (144,) and y.dtype == np.float64
    assert (y.sum(), y[0], y[-1], y.max()) == (40363, 112, 432, 622)
    dates = series.dates("airline")
    assert (dates[0], dates[-1]) == (pd.Timestamp("1949-01-01"), pd.Timestamp("1960-12-01"))
    assert (series.freqs, series.seasons, series.notes) == ({"airline": "MS"}, {"airline": 12}, [])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_dataset_loads_regular_and_complete(bundled, name):
    ids, length, freq, season, first = EXPECTED[name]
    for uid in ids:
        y, dates = bundled.values(uid), bundled.dates(uid)
        assert len(y) == len(dates) == length
        assert not np.isnan(y).any()
        assert (bundled.freqs[uid], bundled.seasons[uid]) == (freq, season)
        assert dates[0] == pd.Timestamp(first)
        assert dates.equals(pd.date_range(first, periods=length, freq=freq))


def test_the_set_of_all_datasets(bundled):
    assert len(bundled) == 9 and bundled.ids() == sorted(bundled.ids())
    frame = bundled.frame
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    assert frame.dtypes.astype(str).tolist() == ["object", "datetime64[ns]", "float64"]
    assert not frame.isna().any().any()
    assert set(SEASONAL) <= set(DATASETS) and all(bundled.seasons[s] > 1 for s in SEASONAL)


def test_co2_is_averaged_to_months_without_gaps():
    from statsmodels.datasets import co2

    series = load_datasets("co2")
    dates = series.dates("co2")
    assert dates.equals(pd.date_range("1958-03-01", "2001-12-01", freq="MS"))
    weekly = co2.load_pandas().data["co2"]
    june_1990 = weekly["1990-06-01":"1990-06-30"]  # hand-computed monthly mean
    assert len(june_1990) == june_1990.notna().sum() == 5
    y = series.values("co2")
    assert y[dates.get_loc(pd.Timestamp("1990-06-01"))] == pytest.approx(june_1990.mean())
    assert series.notes == [
        "co2: 2225 weekly values (59 weeks missing) averaged to 526 months; "
        "5 empty months interpolated linearly"
    ]


def test_names_are_comma_separated_and_unknown_ones_list_the_choices():
    series = load_datasets(" nile,airline ,nile")
    assert series.ids() == ["airline", "nile"]
    with pytest.raises(DataError, match=r"unknown dataset 'foo'; choose from airline, co2"):
        load_datasets("airline,foo")
    with pytest.raises(DataError, match="no dataset given"):
        load_datasets("")


# ----------------------------------------------------------------------------- helpers
def test_future_dates_follow_the_last_timestamp():
    assert future_dates(pd.Timestamp("1960-12-01"), "MS", 3).equals(
        pd.DatetimeIndex(["1961-01-01", "1961-02-01", "1961-03-01"])
    )
    assert future_dates(pd.Timestamp("2009-07-01"), "QS", 2).equals(
        pd.DatetimeIndex(["2009-10-01", "2010-01-01"])
    )
    assert future_dates(pd.Timestamp("2009-07-01"), "QS-JAN", 1)[0] == pd.Timestamp("2009-10-01")
    assert future_dates(pd.Timestamp("2008-01-01"), "YS", 2).equals(
        pd.DatetimeIndex(["2009-01-01", "2010-01-01"])
    )
    assert future_dates(pd.Timestamp("2001-12-29"), "W-SAT", 1)[0] == pd.Timestamp("2002-01-05")
    assert len(future_dates(pd.Timestamp("2008-01-01"), "YS", 0)) == 0
    assert future_dates(pd.Timestamp("2008-01-01"), "D", 2).dtype == "datetime64[ns]"


@pytest.mark.parametrize(
    "freq, m",
    [("MS", 12), ("ME", 12), ("QS", 4), ("QS-OCT", 4), ("YS", 1), ("YS-JAN", 1), ("W-SAT", 52)]
    + [("D", 7), ("B", 5), ("h", 24), ("H", 24), ("30min", 48), ("2MS", 6), ("5MS", 1)],
)
def test_season_for(freq, m):
    assert season_for(freq) == m


def test_season_for_an_unknown_alias():
    with pytest.raises(DataError, match="'fortnightly' is not a pandas frequency alias"):
        season_for("fortnightly")


def test_require_length_names_the_shortest_series(bundled):
    require_length(bundled, 100, "context 88 + horizon 12")
    with pytest.raises(DataError, match=r"series 'nile' has 100 values, fewer than the 150 that "):
        require_length(bundled, 150, "context 138 + horizon 12")
    with pytest.raises(DataError, match=r"context 300 \+ horizon 12 needs \(6 more of 9 series"):
        require_length(bundled, 312, "context 300 + horizon 12")


# ----------------------------------------------------------------------------- CSV files
def test_csv_round_trip_with_two_series(tmp_path, bundled):
    rows = []
    for uid in ("airline", "macrodata.realgdp"):
        rows.append(pd.DataFrame({"ds": bundled.dates(uid), "y": bundled.values(uid)}))
        rows[-1].insert(0, "series", uid)
    path = tmp_path / "two.csv"
    pd.concat(rows).iloc[::-1].to_csv(path, index=False)  # reversed: the loader sorts
    series = load_csv(path, id="series")
    assert series.ids() == ["airline", "macrodata.realgdp"]
    assert series.freqs == {"airline": "MS", "macrodata.realgdp": "QS-JAN"}
    assert series.seasons == {"airline": 12, "macrodata.realgdp": 4}
    for uid in series.ids():
        np.testing.assert_array_equal(series.values(uid), bundled.values(uid))
        assert series.dates(uid).equals(bundled.dates(uid))
    assert series.notes == []
    with pytest.raises(DataError, match="series 'airline' does not follow the frequency 'QS'"):
        load_csv(path, id="series", freq="QS")  # a given freq holds for every series


def test_csv_without_id_is_one_series_named_after_the_target(tmp_path):
    path = write(tmp_path, "month,sales\n2024-01,1\n2024-02,2.5\n2024-03,4\n")
    series = load_csv(path, date="month", target="sales")
    assert series.ids() == ["sales"] and series.freqs == {"sales": "MS"}
    np.testing.assert_array_equal(series.values("sales"), [1, 2.5, 4])
    assert series.frame["ds"].dtype == "datetime64[ns]"
    text = "ds,y\n2024-01-01T00:00+01:00,1\n2024-01-01T01:00+01:00,2\n2024-01-01T02:00+01:00,3\n"
    hourly = load_csv(write(tmp_path, text, "hourly.csv"))
    assert (hourly.freqs, hourly.seasons) == ({"y": "h"}, {"y": 24})
    assert hourly.dates("y")[0] == pd.Timestamp("2024-01-01 00:00")
    assert hourly.notes[0].endswith(
        "hourly.csv: time zone UTC+01:00 of 'ds' dropped, local times kept"
    )
    assert load_csv(write(tmp_path, "ds,y\n1949,1\n1950,2\n1951,3\n")).freqs == {"y": "YS-JAN"}


def test_missing_targets_are_dropped_at_the_ends_and_interpolated_inside(tmp_path):
    text = "ds,y\n2024-01-01,\n2024-02-01,1\n2024-03-01,NA\n2024-04-01,\n2024-05-01,7\n"
    path = write(tmp_path, text + "2024-06-01,.\n")
    series = load_csv(path)
    np.testing.assert_array_equal(series.values("y"), [1, 3, 5, 7])
    assert series.dates("y")[0] == pd.Timestamp("2024-02-01")
    assert series.notes == [
        "y: 2 missing values of 'y' interpolated linearly; 1 leading missing value dropped; "
        "1 trailing missing value dropped"
    ]


def test_a_given_freq_is_checked(tmp_path):
    path = write(tmp_path, "ds,y\n2024-01-01,1\n2024-04-01,2\n2024-07-01,3\n")
    assert load_csv(path, freq="QS").freqs == {"y": "QS-JAN"}
    assert load_csv(path).freqs == {"y": "QS-JAN"}  # not the QS-OCT pandas infers
    with pytest.raises(DataError, match=r"does not follow the frequency 'MS': 2024-01-01 is "):
        load_csv(path, freq="MS")
    with pytest.raises(DataError, match="2024-02-01 expected\nhint: .*look like 'QS-OCT'"):
        load_csv(path, freq="MS")
    with pytest.raises(DataError, match="first timestamp 2024-01-01 is not on a YE step"):
        load_csv(path, freq="YE")
    with pytest.raises(DataError, match="'monthly' is not a pandas frequency alias"):
        load_csv(path, freq="monthly")


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        ("", {}, "is empty"),
        ("\n  \n", {}, "is empty"),
        ("ds,y\n", {}, "has a header line but no data rows"),
        ("ds,y\n2024-01-01,1,9\n", {}, r"line 2 has 3 fields, the header line 2 \('ds', 'y'\)"),
        ("ds,y\n\n2024-01-01,1\n2024-01-02,1,9\n", {}, r"line 4 has 3 fields"),
        ('ds,y\n2024-01-01,"1\n', {}, r"not a readable CSV file: line 2: unexpected end of data"),
        (
            "date,value\n2024-01-01,1\n",
            {},
            r"no column 'ds' for the timestamps \(date='ds'\); the file has columns 'date', "
            r"'value'\nhint: .*the config key data\.date",
        ),
        (
            "ds,value\n2024-01-01,1\n",
            {},
            r"no column 'y' for the values .*\nhint: .*data.target",
        ),
        ("ds,y\n2024-01-01,1\n", {"id": "store"}, r"no column 'store' for the series ids"),
        ("ds;y\n2024-01-01;1\n", {}, r"columns 'ds;y'\nhint: .*not to be comma-separated"),
        ("ds,y\n2024-01-01,1\n", {"target": "ds"}, "must be different columns"),
        (
            "ds,y\n2024-01-01,1\n2024-02-01,2\nnext month,3\n",
            {},
            r"line 4: 'next month' in column 'ds' is not a timestamp",
        ),
        ("ds,y\n2024-01-01,1\n,2\n", {}, r"line 3 has no timestamp in column 'ds'"),
        (
            "ds,y\n2024-01-01T00:00+01:00,1\n2024-01-01T01:00+02:00,2\n",
            {"freq": "h"},
            r"cannot read column 'ds' as timestamps: its UTC offsets differ",
        ),
        (
            "ds,y\n2024-01-01,1\n2024-02-01,1\n2024-01-01,3\n",
            {},
            r"series 'y' has timestamp 2024-01-01 2 times \(lines 2, 4\)\nhint: .*data.id",
        ),
        (
            "id,ds,y\na,2024-01-01,1\nb,2024-01-01,2\nb,2024-01-01,3\n",
            {"id": "id"},
            r"series 'b' has timestamp 2024-01-01 2 times \(lines 3, 4\)",
        ),
        (
            "ds,y\n2024-01-01,1\n2024-02-01,1\n2024-03-01,1\n2024-05-01,1\n2024-06-01,1\n",
            {},
            r"series 'y' has no regular frequency: it steps by MS until 2024-03-01, then to "
            r"2024-05-01 \(61 days; 2024-04-01 expected\)\nhint: .*add the missing timestamps",
        ),
        (
            "ds,y\n2024-01-15,1\n2024-02-15,1\n2024-03-15,1\n",
            {},
            r"no regular frequency: its first gaps are 31 days, 29 days \(from 2024-01-15\)",
        ),
        (
            "id,ds,y\na,2024-01-01,1\nb,2024-01-01,1\nb,2024-02-01,1\n",
            {"id": "id"},
            r"series 'a' has 1 timestamps, too few to infer its frequency.*\nhint: .*data.freq",
        ),
        (
            'ds,y\n2024-01-01,1\n2024-02-01,1\n2024-03-01,"1,200"\n2024-04-01,x\n',
            {},
            r"line 4: '1,200' in column 'y' is not a number \(2 such values\)",
        ),
        ("ds,y\n2024-01-01,1\n2024-02-01,inf\n", {"freq": "MS"}, r"line 3: 'inf'"),
        ("ds,y\n2024-01-01,\n2024-02-01,NaN\n", {"freq": "MS"}, r"all 2 of 'y' are missing"),
        ("id,ds,y\n,2024-01-01,1\n", {"id": "id", "freq": "MS"}, "line 2 has no series id"),
    ],
)
def test_bad_csv_files(tmp_path, text, kwargs, match):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=match):
        load_csv(path, **kwargs)


def test_bad_paths_and_encodings(tmp_path):
    with pytest.raises(DataError, match=r"missing.csv does not exist"):
        load_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"is a directory"):
        load_csv(tmp_path)
    path = tmp_path / "latin1.csv"
    path.write_bytes("ds,y,note\n2024-01-01,1,café\n".encode("latin-1"))
    with pytest.raises(
        DataError,
        match=r"is not UTF-8 text: line 2 holds byte 0xe9 \(byte 26 of the file\)\nhint: save",
    ):
        load_csv(path)
    bom = tmp_path / "bom.csv"  # a byte-order mark is not part of the first column's name
    bom.write_bytes("ds,y\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\n".encode("utf-8-sig"))
    assert load_csv(bom).freqs == {"y": "D"}


def test_covariates_are_read_with_their_known_future_rows(tmp_path):
    path = tmp_path / "promo.csv"
    path.write_text(
        "ds,y,promo,price\n2024-01-01,10,0,1.5\n2024-02-01,,1,1.5\n2024-03-01,12,1,1.4\n"
        "2024-04-01,,0,1.4\n2024-05-01,,1,1.3\n",
        encoding="utf-8",
    )
    s = load_csv(path, covariates=["promo", "price"])
    assert s.values("y").tolist() == [10.0, 11.0, 12.0]  # the inner gap interpolated
    assert s.covariate_names == ["promo", "price"]
    np.testing.assert_array_equal(
        s.covariates["y"], [[0, 1.5], [1, 1.5], [1, 1.4], [0, 1.4], [1, 1.3]]
    )  # three observed steps, then two known ahead
    with pytest.raises(DataError, match="no column 'cost' for the covariates"):
        load_csv(path, covariates=["cost"])
    path.write_text("ds,y,promo\n2024-01-01,10,0\n2024-02-01,11,\n2024-03-01,12,1\n")
    with pytest.raises(DataError, match=r"covariate 'promo' of series 'y' is missing at line 3"):
        load_csv(path, covariates=["promo"])
