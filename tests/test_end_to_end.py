"""rekindle_daily end to end through Airflow (`airflow dags test`) on a throwaway AIRFLOW_HOME."""

from __future__ import annotations

import csv
import email
import os
import subprocess
import sys
from email import policy
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PROJECT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
TABLES = [
    "raw.events",
    "raw.profiles",
    "raw.campaigns",
    "main.load_manifest",
    "main.quarantine_events",
    "main.fct_events",
    "main.dim_users",
    "main.segment_members",
    "main.rpt_campaign_performance",
    "main.clv_runs",
]


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, small_landing) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    out = tmp_path_factory.mktemp("out")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "REKINDLE_LANDING": str(small_landing),
        "REKINDLE_WAREHOUSE": str(out / "rekindle.duckdb"),
        "REKINDLE_OUT": str(out),
    }
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "rekindle_warehouse", "1", "DuckDB allows one writing process")
    return env


def airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([AIRFLOW, *args], env=env, cwd=PROJECT, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    return output


def counts(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {table: con.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}


def clv_state(warehouse: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """clv_runs, and what dim_users shows of CLV (per user), as rows."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = con.execute("select * from clv_runs order by calibration_end").fetchall()
        shown = con.execute(
            "select user_id, clv_p_alive, clv_expected_purchases, clv_predicted_value, clv_horizon_days,"
            " clv_calibration_end from dim_users where clv_calibration_end is not null order by user_id"
        ).fetchall()
        predictions = con.execute(
            "select user_id, p_alive, expected_purchases, predicted_value, horizon_days, calibration_end"
            " from clv_predictions order by user_id"
        ).fetchall()
    return runs, shown, predictions


def test_daily_run_produces_marts_export_and_email_and_rerun_changes_nothing(airflow_env):
    warehouse = Path(airflow_env["REKINDLE_WAREHOUSE"])
    out = Path(airflow_env["REKINDLE_OUT"])
    log = airflow(airflow_env, "dags", "test", "rekindle_daily", "2026-11-01")
    assert "state=success" in log

    first = counts(warehouse)
    assert all(n > 0 for n in first.values()), first
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # the run evaluated the world as of its data interval end, not the wall clock
        assert con.execute("select distinct evaluated_at from segment_members").fetchall() == [
            (con.execute("select timestamp '2026-11-01'").fetchone()[0],)
        ]
        records, accounted = con.execute(
            "select sum(input_records), sum(loaded_events + loaded_profiles + duplicates + quarantined)"
            " from load_manifest"
        ).fetchone()
        members = con.execute(
            "select user_id from segment_members where segment_name = 'recent_buyers' order by user_id"
        ).fetchall()
        campaigns = con.execute("select count(*) from rpt_campaign_performance where sent > 0").fetchone()[0]
    assert records == accounted
    assert campaigns >= 3

    # CLV ran between the two dbt builds for the interval's last day, and dim_users shows what it wrote: the
    # predictions when it fitted, nothing when (as with a fortnight of history, usually) it did not.
    runs, shown, predictions = clv_state(warehouse)
    assert [(r[0].isoformat(), r[1]) for r in runs] == [("2026-10-31", 90)], runs
    status, reason, customers = runs[0][2], runs[0][3], runs[0][4]
    assert customers > 0
    assert (status, reason is None, bool(predictions)) in {("fitted", True, True), ("not_fitted", False, False)}
    assert shown == predictions

    # The sync sent the audience's eligible members (email consent, outside the control groups) once.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        eligible = con.execute(
            "select m.user_id from segment_members m join dim_users u using (user_id)"
            " where m.segment_name = 'recent_buyers' and u.can_email and not u.is_global_control"
            " and u.email is not null order by m.user_id"
        ).fetchall()
    assert 0 < len(eligible) <= len(members)
    (export,) = (out / "exports" / "recent_buyers_csv" / "20261101T000000Z").glob("add-*.csv")
    with export.open() as handle:
        assert sorted((r["user_id"],) for r in csv.DictReader(handle)) == eligible
    # 2026-11-01 is a Sunday: of the shipped subscriptions only the daily campaigns report fires.
    (report,) = (out / "outbox").glob("*.eml")
    assert report.name == "campaigns_daily-2026-10-31.eml"
    message = email.message_from_bytes(report.read_bytes(), policy=policy.default)
    assert message["Subject"].startswith("Rekindle campaigns")

    exported, emailed = export.read_bytes(), report.read_bytes()
    clv_first = clv_state(warehouse)
    assert "state=success" in airflow(airflow_env, "dags", "test", "rekindle_daily", "2026-11-01")
    assert counts(warehouse) == first
    assert clv_state(warehouse) == clv_first
    assert export.read_bytes() == exported and report.read_bytes() == emailed
