"""loaders/clv.py: the BG/NBD and Gamma-Gamma fits reproduce the published CDNOW estimates, the scoring
functions behave at their known limits, and run_clv writes the same tables on a DuckDB file and on a real
Postgres server, replacing (not appending to) them on a rerun. The daily step (predict_for_run) records each
calibration date in clv_runs, empties the predictions when the data give no fit instead of failing, and
dim_users shows exactly the predictions, or nulls (also on a fresh warehouse where the step never ran).

CDNOW sample: 2,357 customers of the 1997 Q1 cohort (tests/data/cdnow/README.md); calibration period
1997-01-01 .. 1997-09-30 (39 weeks), time unit one week, same-day purchases merged, as in the papers.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import psycopg2
import psycopg2.extras
import pyarrow as pa
import pytest
import sqlalchemy as sa
from scipy.optimize import approx_fprime
from scipy.special import hyp2f1

from loaders import clv
from loaders.generate import generate
from loaders.load import load_landing
from loaders.settings import Settings, clv_horizon_days
from tests.conftest import SMALL_AS_OF, SMALL_END, pg_params, run_dbt, throwaway_pg_database

CDNOW_SAMPLE = Path(__file__).parent / "data" / "cdnow" / "CDNOW_sample.txt"
CALIBRATION_END = date(1997, 9, 30)

# Fader, Hardie & Lee (2005), Marketing Science 24(2), section 4: the BG/NBD fit on the 2,357 customers.
FHL_2005 = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value": the fit on the 946 repeat buyers.
FH_2013 = {"p": 6.25, "q": 3.74, "gamma": 15.44}


# ---------------------------------------------------------------------------------------------- fixtures


def read_cdnow() -> list[tuple[str, datetime, float]]:
    """(customer, ordered_at, amount) rows of the sample; master_id is the customer. Each order gets a time
    of day from its line number, so that same-day merging is exercised on timestamps, not just dates."""
    rows = []
    for line_no, line in enumerate(CDNOW_SAMPLE.read_text().splitlines()):
        master_id, _sample_id, day, _cds, dollars = line.split()
        ordered_at = datetime.strptime(day, "%Y%m%d") + timedelta(hours=line_no % 24, minutes=line_no % 60)
        rows.append((master_id, ordered_at, float(dollars)))
    return rows


@pytest.fixture(scope="module")
def orders() -> list[tuple[str, datetime, float]]:
    return read_cdnow()


@pytest.fixture(scope="module")
def summary(orders) -> clv.RFMSummary:
    return clv.summarise(orders, CALIBRATION_END, time_unit_days=7)


@pytest.fixture(scope="module")
def bgnbd(summary) -> clv.BGNBDParams:
    return clv.fit_bgnbd(summary.x, summary.t_x, summary.T)


@pytest.fixture(scope="module")
def gamma_gamma(summary) -> clv.GammaGammaParams:
    return clv.fit_gamma_gamma(summary.x, summary.mean_value)


# ------------------------------------------------------------------------------- the published estimates


def test_summary_matches_the_published_cdnow_calibration_data(summary) -> None:
    assert len(summary) == 2357
    assert int(summary.x.sum()) == 2457  # repeat transactions in weeks 1-39 (FHL 2005)
    assert round(float(summary.x.mean()), 3) == 1.042
    assert int((summary.x > 0).sum()) == 946  # repeat buyers, the Gamma-Gamma sample (FH 2013)
    assert round(float(np.nanmean(summary.mean_value)), 2) == 35.08  # mean of their m_x (FH 2013)
    assert summary.T.max() == 272 / 7 and summary.T.min() >= 183 / 7  # first purchases in Q1 1997
    # The first customer of FHL's data set: x = 2, t_x = 30.43, T = 38.86 (weeks).
    first = int(np.flatnonzero(summary.customer_id == "00004")[0])
    assert summary.x[first] == 2
    assert round(summary.t_x[first], 2) == 30.43 and round(summary.T[first], 2) == 38.86
    assert summary.mean_value[first] == pytest.approx((29.73 + 14.96) / 2)
    assert np.isnan(summary.mean_value[summary.x == 0]).all()


def test_bgnbd_reproduces_fader_hardie_lee_2005(summary) -> None:
    started = time.perf_counter()
    params = clv.fit_bgnbd(summary.x, summary.t_x, summary.T)
    elapsed = time.perf_counter() - started
    assert {name: round(value, 3) for name, value in params._asdict().items()} == FHL_2005
    assert round(clv.bgnbd_log_likelihood(params, summary.x, summary.t_x, summary.T), 1) == -9582.4
    assert elapsed < 2, f"BG/NBD fit took {elapsed:.2f} s"


def test_gamma_gamma_reproduces_fader_hardie_2013(summary) -> None:
    params = clv.fit_gamma_gamma(summary.x, summary.mean_value)
    assert {name: round(value, 2) for name, value in params._asdict().items()} == FH_2013


def test_conditional_expectation_of_the_papers_worked_example(bgnbd) -> None:
    # FHL (2005): a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226 purchases in the
    # next 39 weeks.
    assert round(float(clv.expected_purchases(39, 2, 30.43, 38.86, *bgnbd)), 3) == 1.226


def test_fit_is_independent_of_the_order_of_the_rows(orders, summary) -> None:
    shuffled = [orders[i] for i in np.random.default_rng(1).permutation(len(orders))]
    again = clv.summarise(shuffled, CALIBRATION_END)
    for field in ("customer_id", "x", "t_x", "T", "mean_value"):
        np.testing.assert_array_equal(getattr(again, field), getattr(summary, field))


# ------------------------------------------------------------------------------------- summarise edges


def test_summarise_merges_days_and_ignores_later_orders() -> None:
    rows = [
        ("b", datetime(2020, 1, 1, 9), 10.0),
        ("b", datetime(2020, 1, 1, 23, 59), 5.0),  # same day: one purchase of 15
        ("b", datetime(2020, 1, 8, 1), 4.0),
        ("b", datetime(2020, 1, 8, 2), 6.0),  # repeat day worth 10
        ("b", datetime(2020, 1, 15), 20.0),  # repeat day worth 20, on calibration_end: counts
        ("b", datetime(2020, 1, 16), 99.0),  # after calibration_end: ignored
        ("a", date(2020, 1, 15), 3.0),
        ("c", datetime(2020, 2, 1), 1.0),  # first order after calibration_end: not a customer yet
    ]
    s = clv.summarise(rows, date(2020, 1, 15), time_unit_days=7)
    assert s.customer_id.tolist() == ["a", "b"]
    assert s.x.tolist() == [0, 2]
    assert s.t_x.tolist() == [0.0, 2.0] and s.T.tolist() == [0.0, 2.0]
    assert np.isnan(s.mean_value[0]) and s.mean_value[1] == 15.0
    daily = clv.summarise(rows, date(2020, 1, 15), time_unit_days=1)
    assert daily.t_x.tolist() == [0.0, 14.0] and daily.T.tolist() == [0.0, 14.0]


def test_summarise_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no orders on or before"):
        clv.summarise([("a", date(2020, 2, 1), 1.0)], date(2020, 1, 1))
    with pytest.raises(ValueError, match="missing or infinite amount"):
        clv.summarise([("a", date(2020, 1, 1), float("nan"))], date(2020, 1, 1))
    with pytest.raises(ValueError, match="time_unit_days"):
        clv.summarise([("a", date(2020, 1, 1), 1.0)], date(2020, 1, 1), time_unit_days=0)


# ------------------------------------------------------------------------------ scoring: known limits


def test_p_alive_limits(summary, bgnbd) -> None:
    alive = clv.p_alive(summary.x, summary.t_x, summary.T, *bgnbd)
    assert (alive[summary.x == 0] == 1.0).all()  # BG/NBD: dropping out only happens after a purchase
    assert ((alive > 0) & (alive <= 1)).all()
    # A buyer whose last purchase lies further back is less likely alive; a purchase at T means ~alive.
    ages = np.array([10.0, 20.0, 40.0, 80.0])
    assert (np.diff(clv.p_alive(3, 5.0, ages, *bgnbd)) < 0).all()
    _r, _alpha, a, b = bgnbd
    assert clv.p_alive(3, 40.0, 40.0, *bgnbd) == pytest.approx(1 / (1 + a / (b + 2)))


def test_expected_purchases_grow_with_the_horizon(summary, bgnbd) -> None:
    horizons = np.array([0.0, 1.0, 4.0, 13.0, 39.0, 104.0])
    for i in (0, 1, 2, int(np.argmax(summary.x))):
        values = clv.expected_purchases(horizons, summary.x[i], summary.t_x[i], summary.T[i], *bgnbd)
        assert values[0] == 0.0
        assert (np.diff(values) > 0).all()


def test_with_no_history_the_conditional_expectation_is_the_unconditional_one(bgnbd) -> None:
    # T = 0 (a customer just acquired): E[Y(t) | 0, 0, 0] = E[X(t)], FHL (2005) eq. (9), in its direct form.
    r, alpha, a, b = bgnbd
    t = np.array([1.0, 10.0, 39.0, 78.0, 520.0])
    unconditional = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    np.testing.assert_allclose(clv.expected_purchases(t, 0, 0.0, 0.0, *bgnbd), unconditional, rtol=1e-10)


def test_euler_transformed_form_equals_the_papers_form_and_does_not_overflow(bgnbd) -> None:
    r, alpha, a, b = bgnbd
    x, t_x, T, t = np.array([0, 1, 3, 10, 25]), np.array([0.0, 5, 20, 30, 38]), 39.0, 39.0
    direct = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
        / (1 + (x > 0) * a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    )
    np.testing.assert_allclose(clv.expected_purchases(t, x, t_x, T, *bgnbd), direct, rtol=1e-9)
    # A very frequent buyer: the paper's form overflows (inf * 0), the transformed one is a sane number.
    heavy = clv.expected_purchases(52.0, 2000, 51.9, 52.0, *bgnbd)
    assert np.isfinite(heavy) and 1000 < heavy < 2100  # about 2000 purchases a year, and surely still buying


def test_expected_average_value_limits(gamma_gamma) -> None:
    p, q, gamma = gamma_gamma
    population_mean = p * gamma / (q - 1)
    assert clv.expected_average_value(0, np.nan, *gamma_gamma) == pytest.approx(population_mean)
    # A weighted mean of the population mean and m_x that moves towards m_x as x grows.
    values = clv.expected_average_value(np.array([1, 5, 50, 5000]), 100.0, *gamma_gamma)
    assert (np.diff(values) > 0).all() and population_mean < values[0] and values[-1] < 100
    assert values[-1] == pytest.approx(100, rel=1e-3)
    with pytest.raises(ValueError, match=r"q = 0\.9 <= 1"):
        clv.expected_average_value(1, 10.0, p, 0.9, gamma)


def test_predicted_value_is_purchases_times_average_value(summary, bgnbd, gamma_gamma) -> None:
    s = summary
    value = clv.predicted_value(13.0, s.x, s.t_x, s.T, s.mean_value, bgnbd, gamma_gamma)
    expected = clv.expected_purchases(13.0, s.x, s.t_x, s.T, *bgnbd) * clv.expected_average_value(
        s.x, s.mean_value, *gamma_gamma
    )
    np.testing.assert_array_equal(value, expected)
    assert (value > 0).all()


def test_analytic_gradients_match_finite_differences(summary) -> None:
    s = summary
    args = (s.x.astype(float), s.t_x, s.T)
    point = np.log([0.3, 5.0, 0.7, 2.0])
    _, gradient = clv._bgnbd_objective(point, *args)
    numeric = approx_fprime(point, lambda v: clv._bgnbd_objective(v, *args)[0], 1e-7)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-7)

    repeat = s.x > 0
    gg_args = (s.x[repeat].astype(float), s.mean_value[repeat])
    point = np.log([5.0, 3.0, 12.0])
    _, gradient = clv._gamma_gamma_objective(point, *gg_args)
    numeric = approx_fprime(point, lambda v: clv._gamma_gamma_objective(v, *gg_args)[0], 1e-7)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-7)


def test_fits_fail_clearly_when_the_data_do_not_identify_the_model() -> None:
    with pytest.raises(ValueError, match="no customer has a repeat purchase"):
        clv.fit_bgnbd([0, 0, 0], [0.0, 0.0, 0.0], [5.0, 6.0, 7.0])
    # The repeat buyers bought again on the last day, no sign of dropping out: a -> 0, b -> infinity.
    with pytest.raises(
        clv.ConvergenceError, match=r"BG/NBD fit on 4 customers did not converge: the likelihood is flat .* along a, b "
    ):
        clv.fit_bgnbd([3, 4, 5, 0], [10.0, 10.0, 10.0, 0.0], [10.0, 10.0, 10.0, 10.0])
    with pytest.raises(ValueError, match=r"need 3\+"):
        clv.fit_gamma_gamma([1, 0, 2], [10.0, np.nan, 0.0])


# ------------------------------------------------------------------------- run_clv on DuckDB and Postgres


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_pg_database("rekindle_clv") as name:
        yield name


def order_rows(orders) -> list[tuple]:
    """fct_orders rows: order_id, user_id, ordered_at, amount (amount as text: numeric(28,6) in both)."""
    return [(f"o{i}", user, at, f"{amount:.2f}") for i, (user, at, amount) in enumerate(orders)]


FCT_ORDERS_DDL = (
    "create table {schema}.fct_orders (order_id text not null, user_id text not null, "
    "ordered_at timestamp not null, amount numeric(28, 6) not null)"
)


@pytest.fixture(scope="module")
def duckdb_url(tmp_path_factory, orders) -> str:
    path = tmp_path_factory.mktemp("clv") / "rekindle.duckdb"
    order_id, user_id, ordered_at, amount = (list(column) for column in zip(*order_rows(orders), strict=True))
    table = pa.table({"order_id": order_id, "user_id": user_id, "ordered_at": ordered_at, "amount": amount})
    with duckdb.connect(str(path)) as con:
        con.execute(FCT_ORDERS_DDL.format(schema="main"))
        con.register("new_orders", table)
        con.execute("insert into main.fct_orders select * from new_orders")
    return f"duckdb:///{path}"


@pytest.fixture(scope="module")
def postgres_url(pg_database, orders) -> str:
    with psycopg2.connect(**pg_params(pg_database)) as con, con.cursor() as cursor:
        cursor.execute("create schema rekindle")
        cursor.execute(FCT_ORDERS_DDL.format(schema="rekindle"))
        psycopg2.extras.execute_values(cursor, "insert into rekindle.fct_orders values %s", order_rows(orders))
    con.close()
    params = pg_params(pg_database)
    url = sa.engine.URL.create(
        "postgresql+psycopg2",
        username=params["user"],
        password=params.get("password"),
        host=params["host"],
        port=int(params["port"]),
        database=pg_database,
    )
    return url.render_as_string(hide_password=False)


def read_tables(url: str, schema: str) -> tuple[list[tuple], list[tuple]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            params = conn.execute(
                sa.text(
                    "select model, parameter, value, calibration_end, customers, fitted_at_as_of, time_unit_days "
                    f"from {schema}.clv_model_params order by model, parameter"
                )
            ).all()
            predictions = conn.execute(
                sa.text(
                    "select user_id, frequency, recency, t, p_alive, expected_purchases, expected_average_value, "
                    f"predicted_value, calibration_end, horizon_days from {schema}.clv_predictions order by user_id"
                )
            ).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in params], [tuple(r) for r in predictions]


def assert_rows_close(left: list[tuple], right: list[tuple]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        for u, v in zip(a, b, strict=True):
            if isinstance(u, float):
                assert v == pytest.approx(u, rel=1e-9, abs=1e-9), (a, b)
            else:
                assert u == v, (a, b)


def test_run_clv_writes_the_same_tables_on_duckdb_and_postgres(duckdb_url, postgres_url, summary) -> None:
    runs = {
        "duckdb": clv.run_clv(duckdb_url, CALIBRATION_END, horizon_days=91, schema="main"),
        "postgres": clv.run_clv(postgres_url, CALIBRATION_END, horizon_days=91, schema="rekindle"),
    }
    for run in runs.values():
        assert {name: round(value, 3) for name, value in run.bgnbd._asdict().items()} == FHL_2005
        assert {name: round(value, 2) for name, value in run.gamma_gamma._asdict().items()} == FH_2013
        assert (run.customers, run.repeat_customers) == (2357, 946)

    duck_params, duck_predictions = read_tables(duckdb_url, "main")
    pg_params_rows, pg_predictions = read_tables(postgres_url, "rekindle")
    assert_rows_close(duck_params, pg_params_rows)
    assert_rows_close(duck_predictions, pg_predictions)

    assert [(m, p) for m, p, *_ in duck_params] == [
        ("bgnbd", "a"), ("bgnbd", "alpha"), ("bgnbd", "b"), ("bgnbd", "r"),
        ("gamma_gamma", "gamma"), ("gamma_gamma", "p"), ("gamma_gamma", "q"),
    ]  # fmt: skip
    for model, _parameter, _value, calibration_end, customers, as_of, unit in duck_params:
        assert calibration_end == as_of == CALIBRATION_END and unit == 7
        assert customers == (2357 if model == "bgnbd" else 946)

    # The predictions are the pure functions' values for the 13-week horizon.
    assert len(duck_predictions) == 2357
    assert sum(row[1] for row in duck_predictions) == 2457
    bgnbd, gamma_gamma = runs["duckdb"].bgnbd, runs["duckdb"].gamma_gamma
    expected = clv.predicted_value(13.0, summary.x, summary.t_x, summary.T, summary.mean_value, bgnbd, gamma_gamma)
    np.testing.assert_allclose([row[7] for row in duck_predictions], expected, rtol=1e-12)
    first = duck_predictions[0]
    assert first[0] == "00004" and first[1] == 2 and first[8] == CALIBRATION_END and first[9] == 91
    assert first[4] == pytest.approx(float(clv.p_alive(2, 213 / 7, 272 / 7, *bgnbd)), rel=1e-12)


def test_run_clv_reruns_replace_instead_of_appending(duckdb_url, postgres_url) -> None:
    for url, schema in ((duckdb_url, "main"), (postgres_url, "rekindle")):
        clv.run_clv(url, CALIBRATION_END, schema=schema)
        first = read_tables(url, schema)
        clv.run_clv(url, CALIBRATION_END, schema=schema)
        assert read_tables(url, schema) == first  # same rows, not twice as many
        # Another calibration date replaces the content: one fit per table, never a mix.
        clv.run_clv(url, date(1997, 12, 31), horizon_days=30, schema=schema)
        params, predictions = read_tables(url, schema)
        assert len(params) == 7 and {row[3] for row in params} == {date(1997, 12, 31)}
        assert len(predictions) == 2357 and {(row[8], row[9]) for row in predictions} == {(date(1997, 12, 31), 30)}


def test_run_clv_fails_clearly_without_orders(duckdb_url) -> None:
    with pytest.raises(ValueError, match="has no orders up to 1996-12-31"):
        clv.run_clv(duckdb_url, date(1996, 12, 31), schema="main")


def test_a_failed_write_leaves_the_previous_tables(duckdb_url, postgres_url) -> None:
    tables = {"params_table": "atomic_params", "predictions_table": "atomic_predictions"}
    for url, schema in ((duckdb_url, "main"), (postgres_url, "rekindle")):
        clv.run_clv(url, CALIBRATION_END, schema=schema, **tables)
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"delete from {schema}.atomic_predictions where user_id <> '00004'"))
                # The predictions table gains a NOT NULL column that the stage does not fill: its insert fails
                # after the parameters were already replaced in the same transaction.
                conn.execute(sa.text(f"alter table {schema}.atomic_predictions rename to atomic_predictions_old"))
                conn.execute(
                    sa.text(
                        f"create table {schema}.atomic_predictions as select *, 1 as extra "
                        f"from {schema}.atomic_predictions_old"
                    )
                )
                conn.execute(sa.text(f"alter table {schema}.atomic_predictions alter column extra set not null"))
            with pytest.raises((duckdb.Error, psycopg2.Error, sa.exc.DBAPIError), match=r"(?i)null"):
                clv.run_clv(url, date(1997, 12, 31), schema=schema, **tables)
            with engine.connect() as conn:
                params = conn.execute(sa.text(f"select distinct calibration_end from {schema}.atomic_params")).all()
                kept = conn.execute(sa.text(f"select count(*) from {schema}.atomic_predictions")).scalar_one()
        finally:
            engine.dispose()
        assert [tuple(row) for row in params] == [(CALIBRATION_END,)]
        assert kept == 1


def test_run_clv_on_another_dialect_uses_pandas_inserts(tmp_path, duckdb_url) -> None:
    """SQLite (schema `main` too) goes through the generic path: pandas multi-row inserts in chunks."""
    url = f"sqlite:///{tmp_path / 'rekindle.sqlite'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(FCT_ORDERS_DDL.format(schema="main")))
            conn.execute(
                sa.text("insert into main.fct_orders values (:o, :u, :t, :a)"),
                [{"o": o, "u": u, "t": t.isoformat(sep=" "), "a": a} for o, u, t, a in order_rows(read_cdnow())],
            )
    finally:
        engine.dispose()
    clv.run_clv(url, CALIBRATION_END, schema="main", chunksize=500)
    clv.run_clv(duckdb_url, CALIBRATION_END, schema="main")
    sqlite_params, sqlite_predictions = read_tables(url, "main")
    duck_params, duck_predictions = read_tables(duckdb_url, "main")
    assert len(sqlite_predictions) == 2357
    # SQLite has no date type: compare the numbers.
    assert_rows_close([r[:3] for r in sqlite_params], [r[:3] for r in duck_params])
    assert_rows_close([r[:8] for r in sqlite_predictions], [r[:8] for r in duck_predictions])


# --------------------------------------------------------------- the daily run: clv_runs and dim_users

CLV_COLUMNS = [
    "clv_p_alive",
    "clv_expected_purchases",
    "clv_predicted_value",
    "clv_horizon_days",
    "clv_calibration_end",
]
PREDICTION_COLUMNS = ["p_alive", "expected_purchases", "predicted_value", "horizon_days", "calibration_end"]


@pytest.fixture(scope="module")
def clv_warehouse(tmp_path_factory) -> Path:
    """Load + dbt build of generated data with history enough for both fits: 800 users over 90 days.

    (The shared small landing zone, a fortnight of 400 users, does not identify BG/NBD's dropout: too few
    customers have bought twice and stopped.)
    """
    tmp = tmp_path_factory.mktemp("clv_built")
    generate(tmp / "landing", users=800, days=90, seed=7, end=SMALL_END)
    warehouse = tmp / "rekindle.duckdb"
    load_landing(str(tmp / "landing"), warehouse, (datetime(2026, 10, 31), SMALL_AS_OF))
    run_dbt(warehouse, "build", tmp=tmp)
    return warehouse


def private_copy(warehouse: Path, tmp_path: Path) -> tuple[Path, Settings]:
    """A copy of a built warehouse that a test may write, and the settings of a run against it."""
    copy = tmp_path / "rekindle.duckdb"
    shutil.copyfile(warehouse, copy)
    return copy, Settings(landing=str(tmp_path / "landing"), warehouse=copy, target="duckdb", out=tmp_path / "out")


def clv_tables(warehouse: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            name: con.execute(f"select * from main.{name} order by all").fetchall()
            for name in ("clv_runs", "clv_model_params", "clv_predictions")
        }


def test_predict_for_run_fills_dim_users_with_the_predictions(clv_warehouse, tmp_path) -> None:
    warehouse, settings = private_copy(clv_warehouse, tmp_path)
    outcome = clv.predict_for_run(settings, SMALL_END, 90)
    assert outcome.status == "fitted", f"the generated 90 days no longer give a fit: {outcome.reason}"
    assert outcome.reason is None and outcome.fit is not None
    run_dbt(warehouse, "build", "--select", "dim_users", tmp=tmp_path)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        orders = con.execute("select user_id from fct_orders where ordered_at < timestamp '2026-11-01'").fetchall()
        customers = {row[0] for row in orders}
        runs = con.execute("select * from clv_runs").fetchall()
        params = con.execute("select model, parameter, value from clv_model_params order by all").fetchall()
        predicted = con.execute(f"select user_id, {', '.join(PREDICTION_COLUMNS)} from clv_predictions").fetchall()
        shown = con.execute(f"select user_id, {', '.join(CLV_COLUMNS)} from dim_users").fetchall()
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns where table_name = 'dim_users'"
            ).fetchall()
        )
    assert runs == [(SMALL_END, 90, "fitted", None, len(customers), outcome.repeat_customers)]
    assert outcome.customers == len(customers) > 300 and 0 < outcome.repeat_customers < outcome.customers
    fitted = {**outcome.fit.bgnbd._asdict(), **outcome.fit.gamma_gamma._asdict()}
    assert {parameter: value for _model, parameter, value in params} == fitted

    # Every customer's row of dim_users shows exactly its prediction; everybody else's CLV is null.
    assert {row[0] for row in predicted} == customers
    by_user = {row[0]: row for row in shown}
    assert len(by_user) == len(shown) and customers <= set(by_user)
    assert [by_user[row[0]] for row in sorted(predicted)] == sorted(predicted)
    assert all(row[1:] == (None,) * len(CLV_COLUMNS) for user, row in by_user.items() if user not in customers)
    assert all(0 < p_alive <= 1 and purchases > 0 and value > 0 for _, p_alive, purchases, value, *_ in predicted)
    assert [types[c] for c in CLV_COLUMNS] == ["DOUBLE", "DOUBLE", "DOUBLE", "INTEGER", "DATE"]

    # A rerun of the day replaces its rows: the same tables, not twice as many.
    before = clv_tables(warehouse)
    assert clv.predict_for_run(settings, SMALL_END, 90).summary() == outcome.summary()
    assert clv_tables(warehouse) == before


def test_a_day_without_a_fit_is_recorded_and_empties_the_predictions(clv_warehouse, tmp_path, caplog) -> None:
    warehouse, settings = private_copy(clv_warehouse, tmp_path)
    fitted = clv.predict_for_run(settings, SMALL_END, 90)
    assert fitted.status == "fitted"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        before_first_order = con.execute("select min(ordered_at)::date - 1 from fct_orders").fetchone()[0]

    with caplog.at_level(logging.WARNING, logger="loaders.clv"):
        outcome = clv.predict_for_run(settings, before_first_order, 30)
    reason = f"main.fct_orders has no orders up to {before_first_order}"
    assert (outcome.status, outcome.reason, outcome.customers, outcome.repeat_customers, outcome.fit) == (
        "not_fitted",
        reason,
        0,
        0,
        None,
    )
    assert outcome.summary()["reason"] == reason
    assert f"CLV as of {before_first_order} not fitted" in caplog.text and reason in caplog.text

    # The parameters and predictions of the other date are gone; both dates keep their clv_runs row.
    tables = clv_tables(warehouse)
    assert tables["clv_model_params"] == [] and tables["clv_predictions"] == []
    assert tables["clv_runs"] == [
        (before_first_order, 30, "not_fitted", reason, 0, 0),
        (SMALL_END, 90, "fitted", None, fitted.customers, fitted.repeat_customers),
    ]
    run_dbt(warehouse, "build", "--select", "dim_users", tmp=tmp_path)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = con.execute(f"select count(*), {', '.join(f'count({c})' for c in CLV_COLUMNS)} from dim_users")
        users, *non_null = counts.fetchone()
    assert users > 0 and non_null == [0] * len(CLV_COLUMNS)


def test_a_fit_that_does_not_converge_is_recorded_not_raised(tmp_path) -> None:
    # Three repeat buyers who all bought again on the last day and one single buyer: nobody seems to drop
    # out, so BG/NBD's a and b are not identified (a -> 0, b -> infinity).
    first = SMALL_END - timedelta(days=70)
    days = {"c1": [0, 20, 40, 70], "c2": [0, 10, 30, 50, 70], "c3": [0, 10, 20, 30, 50, 70], "c4": [0]}
    orders = pa.table(
        {
            "order_id": [f"{user}-{day}" for user, offsets in days.items() for day in offsets],
            "user_id": [user for user, offsets in days.items() for _ in offsets],
            "ordered_at": [
                datetime.combine(first, datetime.min.time()) + timedelta(days=day, hours=12)
                for offsets in days.values()
                for day in offsets
            ],
            "amount": ["25.00" for offsets in days.values() for _ in offsets],
        }
    )
    path = tmp_path / "rekindle.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(FCT_ORDERS_DDL.format(schema="main"))
        con.register("new_orders", orders)
        con.execute("insert into main.fct_orders select * from new_orders")

    outcome = clv.record_clv(f"duckdb:///{path}", SMALL_END, 90)
    assert (outcome.status, outcome.customers, outcome.repeat_customers) == ("not_fitted", 4, 3)
    assert outcome.reason.startswith("BG/NBD fit on 4 customers did not converge: the likelihood is flat")
    assert clv_tables(path) == {
        "clv_runs": [(SMALL_END, 90, "not_fitted", outcome.reason, 4, 3)],
        "clv_model_params": [],
        "clv_predictions": [],
    }
    with pytest.raises(clv.ConvergenceError):  # the strict stage raises and records nothing more
        clv.run_clv(f"duckdb:///{path}", SMALL_END - timedelta(days=1), 90)
    assert [row[0] for row in clv_tables(path)["clv_runs"]] == [SMALL_END]


def test_a_warehouse_error_still_fails_the_step(tmp_path) -> None:
    settings = Settings(landing=str(tmp_path), warehouse=tmp_path / "empty.duckdb", target="duckdb", out=tmp_path)
    with pytest.raises(Exception, match="fct_orders does not exist") as raised:  # dbt did not build it
        clv.predict_for_run(settings, SMALL_END, 90)
    assert not isinstance(raised.value, ValueError | clv.ConvergenceError)  # not taken for a failed fit
    with duckdb.connect(str(tmp_path / "empty.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from information_schema.tables").fetchone()[0] == 0


def test_dbt_builds_dim_users_on_a_warehouse_without_the_clv_tables(built_warehouse) -> None:
    """conftest's build ran `dbt build` on a fresh warehouse, where the CLV task never ran."""
    with duckdb.connect(str(built_warehouse), read_only=True) as con:
        tables = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        users, *non_null = con.execute(
            f"select count(*), {', '.join(f'count({c})' for c in CLV_COLUMNS)} from dim_users"
        ).fetchone()
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns where table_name = 'dim_users'"
            ).fetchall()
        )
    assert not tables & {"clv_runs", "clv_model_params", "clv_predictions"}
    assert users > 0 and non_null == [0] * len(CLV_COLUMNS)
    assert [types[c] for c in CLV_COLUMNS] == ["DOUBLE", "DOUBLE", "DOUBLE", "INTEGER", "DATE"]


def test_the_run_settings_give_the_calibration_date_horizon_and_warehouse(monkeypatch, tmp_path) -> None:
    assert clv.calibration_end_for(datetime(2026, 11, 1, tzinfo=UTC)) == date(2026, 10, 31)
    assert clv.calibration_end_for(datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=2)))) == date(2026, 10, 30)
    assert clv.calibration_end_for(datetime(2026, 11, 1, 12)) == date(2026, 10, 31)  # the last *full* day

    monkeypatch.delenv("REKINDLE_CLV_HORIZON_DAYS", raising=False)
    assert clv_horizon_days() == 90
    monkeypatch.setenv("REKINDLE_CLV_HORIZON_DAYS", "30")
    assert clv_horizon_days() == 30
    for bad in ("0", "-5", "90.5", "ninety"):
        monkeypatch.setenv("REKINDLE_CLV_HORIZON_DAYS", bad)
        with pytest.raises(ValueError, match="REKINDLE_CLV_HORIZON_DAYS"):
            clv_horizon_days()

    monkeypatch.chdir(tmp_path)
    duck = Settings(landing="x", warehouse=Path("w.duckdb"), target="duckdb", out=tmp_path)
    url, schema = clv.warehouse_url(duck)
    assert (url.drivername, url.database, schema) == ("duckdb", str(tmp_path / "w.duckdb"), "main")
    for name, value in {
        "HOST": "db.example",
        "PORT": "6543",
        "USER": "etl",
        "PASSWORD": "s3cret",
        "DATABASE": "shop",
        "SCHEMA": "tenant",
    }.items():
        monkeypatch.setenv(f"REKINDLE_PG_{name}", value)
    url, schema = clv.warehouse_url(Settings(landing="x", warehouse=Path("w"), target="postgres", out=tmp_path))
    assert (url.drivername, url.host, url.port, url.username, url.password, url.database, schema) == (
        "postgresql+psycopg2",
        "db.example",
        6543,
        "etl",
        "s3cret",
        "shop",
        "tenant",
    )
    assert "s3cret" not in repr(url) and "s3cret" not in str(url)
    with pytest.raises(ValueError, match="REKINDLE_TARGET='snowflake'"):
        clv.warehouse_url(Settings(landing="x", warehouse=Path("w"), target="snowflake", out=tmp_path))


def test_predict_for_run_on_postgres_records_both_outcomes(postgres_url, pg_database, monkeypatch) -> None:
    """The daily step on the postgres target: REKINDLE_PG_* as in the dbt profile, the profile's schema."""
    for key, value in pg_params(pg_database).items():
        monkeypatch.setenv("REKINDLE_PG_DATABASE" if key == "dbname" else f"REKINDLE_PG_{key.upper()}", value)
    monkeypatch.setenv("REKINDLE_PG_SCHEMA", "rekindle")
    settings = Settings(landing="x", warehouse=Path("unused.duckdb"), target="postgres", out=Path("out"))

    fitted = clv.predict_for_run(settings, CALIBRATION_END, 91)
    assert (fitted.status, fitted.customers, fitted.repeat_customers) == ("fitted", 2357, 946)
    assert {name: round(value, 3) for name, value in fitted.fit.bgnbd._asdict().items()} == FHL_2005
    assert len(read_tables(postgres_url, "rekindle")[1]) == 2357

    missing = clv.predict_for_run(settings, date(1996, 12, 31), 91)
    assert (missing.status, missing.reason) == ("not_fitted", "rekindle.fct_orders has no orders up to 1996-12-31")
    assert read_tables(postgres_url, "rekindle") == ([], [])
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("select * from rekindle.clv_runs order by calibration_end")).all()
    finally:
        engine.dispose()
    # (earlier tests' run_clv calls recorded other dates)
    assert [tuple(row) for row in runs if row[0] in (date(1996, 12, 31), CALIBRATION_END)] == [
        (date(1996, 12, 31), 91, "not_fitted", missing.reason, 0, 0),
        (CALIBRATION_END, 91, "fitted", None, 2357, 946),
    ]
