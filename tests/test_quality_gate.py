"""The Great Expectations gate computes real observed values, records its verdict and stops on bad data."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from expectations.gate import QualityGateFailed, audience_payloads, enforce_gate, run_gate
from loaders.load import load_landing
from loaders.settings import Settings
from tests.conftest import SMALL_AS_OF

DAY_START = SMALL_AS_OF - timedelta(days=1)
SUITES = {
    "raw_events_batch",
    "raw_batch_files",
    "fct_events",
    "dim_users",
    "segment_members",
    "fct_campaign_attribution",
    "audience_payloads",
}


def settings_for(warehouse: Path, out: Path) -> Settings:
    return Settings(landing=str(out / "landing"), warehouse=warehouse, target="duckdb", out=out)


@pytest.fixture
def warehouse_copy(built_warehouse, tmp_path) -> Path:
    copy = tmp_path / "rekindle.duckdb"
    shutil.copy(built_warehouse, copy)
    return copy


def gate_log(warehouse: Path) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select interval_end, suite, success, failed_expectations, row_count from quality_gate_log"
            " order by interval_end, suite"
        ).fetchall()


def test_gate_passes_on_a_clean_build_records_each_suite_and_publishes_data_docs(warehouse_copy, tmp_path):
    settings = settings_for(warehouse_copy, tmp_path / "out")
    result = run_gate(settings, DAY_START, SMALL_AS_OF)
    assert result.passed, result.failures
    assert {s.suite for s in result.suites} == SUITES
    assert result.checked >= 20
    rows = {
        suite: (success, json.loads(failed), count) for _, suite, success, failed, count in gate_log(warehouse_copy)
    }
    assert set(rows) == SUITES and all(success for success, _, _ in rows.values())
    with duckdb.connect(str(warehouse_copy), read_only=True) as con:
        users, events = con.execute(
            "select (select count(*) from dim_users), (select count(*) from fct_events)"
        ).fetchone()
    assert rows["dim_users"][2] == users and rows["fct_events"][2] == events
    assert rows["raw_events_batch"][2] > 0  # the small landing zone was loaded for exactly this interval

    index = tmp_path / "out" / "docs" / "gx" / "index.html"
    assert index.is_file()
    (page,) = (tmp_path / "out" / "docs" / "gx" / "validations" / "dim_users").rglob("*.html")
    text = page.read_text()
    assert "user_id" in text and "values must be unique" in text

    # a rerun of the interval replaces its rows, it does not add to them
    assert run_gate(settings, DAY_START, SMALL_AS_OF).passed
    assert len(gate_log(warehouse_copy)) == len(SUITES)


def test_the_payloads_are_what_the_sender_sends_and_a_duplicate_profile_fails(warehouse_copy, tmp_path):
    """The audience payloads come from the senders' own decision (read_candidates and its SQL skip reasons): a segment
    member without consent is skipped there, so it is not in the payload and fails nothing; a member with two
    profile rows would be sent from one of two profiles, and fails the gate before anything is sent."""
    settings = settings_for(warehouse_copy, tmp_path / "out")
    with duckdb.connect(str(warehouse_copy)) as con:
        without_consent = con.execute(
            "select user_id from dim_users where not can_email and email is not null"
            " and user_id not in (select user_id from segment_members where segment_name = 'recent_buyers')"
            " order by user_id limit 1"
        ).fetchone()[0]
        con.execute(
            "insert into segment_members (segment_name, user_id, qualified_at, evaluated_at, email)"
            " select 'recent_buyers', user_id, timestamp '2026-11-01', timestamp '2026-11-01', email"
            " from dim_users where user_id = ?",
            [without_consent],
        )
    before = audience_payloads(settings)
    assert len(before) > 0 and without_consent not in set(before["user_id"])
    assert run_gate(settings, DAY_START, SMALL_AS_OF).passed

    (member,) = before[before["audience"] == "recent_buyers_csv"].head(1)["user_id"]
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute("insert into dim_users select * from dim_users where user_id = ?", [member])
    with pytest.raises(QualityGateFailed) as failure:
        enforce_gate(settings, DAY_START, SMALL_AS_OF)
    message = str(failure.value)
    assert message.startswith("2 of ") and "expectations failed" in message
    assert "audience_payloads.['audience', 'user_id']: expect_compound_columns_to_be_unique" in message
    assert "dim_users.user_id: expect_column_values_to_be_unique" in message
    assert f"e.g. {member}" in message

    logged = {suite: (success, json.loads(failed)) for _, suite, success, failed, _ in gate_log(warehouse_copy)}
    assert logged["audience_payloads"][0] is False and logged["dim_users"][0] is False
    assert logged["segment_members"] == (True, [])
    assert logged["dim_users"][1] == [m for m in message.split(": ", 1)[1].split("; ") if m.startswith("dim_users")]


def test_a_shrinking_table_and_stale_events_fail_against_the_previous_run(warehouse_copy, tmp_path):
    settings = settings_for(warehouse_copy, tmp_path / "out")
    assert run_gate(settings, DAY_START, SMALL_AS_OF).passed
    with duckdb.connect(str(warehouse_copy)) as con:
        users = con.execute("select count(*) from dim_users").fetchone()[0]
        con.execute("delete from dim_users where user_id in (select user_id from dim_users order by user_id limit ?)",
                    [users // 2])  # fmt: skip
    # the next day: half the users gone (more than the 20% allowed) and no event in the last 48 hours
    result = run_gate(settings, SMALL_AS_OF, SMALL_AS_OF + timedelta(days=3))
    failures = "; ".join(result.failures)
    assert not result.passed
    floor = -(-users * 80 // 100)
    assert (
        f"dim_users: expect_table_row_count_to_be_between(min_value={floor}) (observed {users - users // 2})"
        in failures
    )
    assert "fct_events.latest_event_at: expect_column_max_to_be_between" in failures
    assert "(observed 2026-10-31 " in failures


def test_a_mostly_broken_batch_fails_the_raw_suites(warehouse_copy, tmp_path):
    """A client that sends garbage: the loader quarantines it and goes on, the gate stops the interval."""
    landing = tmp_path / "landing"
    (landing / "events").mkdir(parents=True)
    good = {
        "type": "event",
        "evtName": "App Launched",
        "ts": int(SMALL_AS_OF.timestamp()) + 3600,
        "identity": "u-bad-1",
    }
    lines = [json.dumps(good)] + ['{"type": "event", "evtName": ' for _ in range(9)]
    with gzip.open(landing / "events" / "2026-11-01-broken.jsonl.gz", "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    next_day = (SMALL_AS_OF, SMALL_AS_OF + timedelta(days=1))
    load_landing(str(landing), warehouse_copy, next_day)
    result = run_gate(settings_for(warehouse_copy, tmp_path / "out"), *next_day)
    by_suite = {s.suite: s for s in result.suites}
    assert by_suite["raw_events_batch"].success and by_suite["raw_events_batch"].row_count == 1
    files = by_suite["raw_batch_files"]
    assert not files.success and files.row_count == 1
    assert files.failed_expectations == [
        "raw_batch_files.quarantined_pct: expect_column_values_to_be_between(min_value=0.0, max_value=5.0)"
        " (observed 1 unexpected, e.g. 90.0)"
    ]


def test_attribution_credit_that_does_not_add_up_fails(warehouse_copy, tmp_path):
    with duckdb.connect(str(warehouse_copy)) as con:
        (conversions,) = con.execute(
            "select count(distinct conversion_event_key) from fct_campaign_attribution"
        ).fetchone()
        assert conversions > 0  # the small landing zone has campaign conversions
        # a bug that loses a quarter of one conversion's linear credit
        con.execute(
            "update fct_campaign_attribution set credit_linear = credit_linear * 0.75"
            " where conversion_event_key = (select min(conversion_event_key) from fct_campaign_attribution)"
        )
    result = run_gate(settings_for(warehouse_copy, tmp_path / "out"), DAY_START, SMALL_AS_OF)
    (attribution,) = [s for s in result.suites if s.suite == "fct_campaign_attribution"]
    assert attribution.row_count == conversions and not attribution.success
    assert len(attribution.failed_expectations) == 1
    assert attribution.failed_expectations[0].startswith(
        "fct_campaign_attribution.credit_linear: expect_column_values_to_be_between"
    )
    assert "observed 1 unexpected, e.g. 0.75" in attribution.failed_expectations[0]


def test_a_bad_setting_is_named(warehouse_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("REKINDLE_GATE_MAX_ROW_DROP_PCT", "a lot")
    with pytest.raises(ValueError, match="REKINDLE_GATE_MAX_ROW_DROP_PCT must be a number"):
        run_gate(settings_for(warehouse_copy, tmp_path / "out"), DAY_START, datetime(2026, 11, 1))


def test_the_gate_runs_the_same_on_postgres(built_warehouse, small_landing, tmp_path, monkeypatch):
    """Same landing zone, same build, on the Postgres server: the same suites with the same row counts."""
    import psycopg2

    from loaders.warehouse import open_warehouse
    from tests.conftest import pg_params, run_dbt, throwaway_pg_database

    with throwaway_pg_database("rekindle_gate") as database:
        monkeypatch.setenv("REKINDLE_PG_DATABASE", database)
        monkeypatch.setenv("REKINDLE_PG_SCHEMA", "rekindle")
        warehouse = open_warehouse("postgres", tmp_path / "unused.duckdb")
        try:
            load_landing(str(small_landing), warehouse, (DAY_START, SMALL_AS_OF))
        finally:
            warehouse.close()
        run_dbt(None, "build", "--target", "postgres", tmp=tmp_path, env={"REKINDLE_TARGET": "postgres"})
        settings = Settings(landing=str(small_landing), warehouse=tmp_path / "unused.duckdb", target="postgres",
                            out=tmp_path / "out")  # fmt: skip
        on_postgres = run_gate(settings, DAY_START, SMALL_AS_OF)
        assert run_gate(settings, DAY_START, SMALL_AS_OF).passed  # a rerun replaces the interval's rows
        with psycopg2.connect(**pg_params(database)) as con, con.cursor() as cursor:
            cursor.execute("select suite, success, row_count from rekindle.quality_gate_log order by suite")
            logged = cursor.fetchall()
    on_duckdb = run_gate(
        settings_for(_copy(built_warehouse, tmp_path), tmp_path / "out-duckdb"), DAY_START, SMALL_AS_OF
    )
    assert on_postgres.passed, on_postgres.failures
    assert [(s.suite, s.row_count) for s in on_postgres.suites] == [(s.suite, s.row_count) for s in on_duckdb.suites]
    assert logged == sorted((s.suite, True, s.row_count) for s in on_postgres.suites)


def _copy(warehouse: Path, folder: Path) -> Path:
    copy = folder / "duckdb-copy.duckdb"
    shutil.copy(warehouse, copy)
    return copy
