"""An injected bad batch fails the quality gate inside rekindle_daily and no sender task runs.

Runs the real DAG with `airflow dags test` on a throwaway AIRFLOW_HOME, then reads the task instance states
back from Airflow (`airflow tasks states-for-dag-run`), the verdict from `quality_gate_log` and the folders
a sender would have written.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import PROJECT, SMALL_AS_OF

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(env: dict[str, str], *args: str, check: bool = True) -> str:
    done = subprocess.run([AIRFLOW, *args], env=env, cwd=PROJECT, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert not check or done.returncode == 0, output[-5000:]
    return output


def airflow_json(env: dict[str, str], *args: str) -> list[dict]:
    """A listing with `-o json`: the JSON is the last line of stdout (log lines may come before it)."""
    done = subprocess.run([AIRFLOW, *args, "-o", "json"], env=env, cwd=PROJECT, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bad_batch_run(tmp_path_factory, small_landing) -> tuple[dict[str, str], str]:
    """rekindle_daily for 2026-10-31 on the small landing zone plus one file that is 90% garbage."""
    landing = tmp_path_factory.mktemp("bad_landing") / "landing"
    shutil.copytree(small_landing, landing)
    good = {"type": "event", "evtName": "App Launched", "ts": int(SMALL_AS_OF.timestamp()) - 60, "identity": "u-bad"}
    with gzip.open(landing / "events" / "2026-10-31-client-bug.jsonl.gz", "wt") as handle:
        handle.write("\n".join([json.dumps(good)] + ['{"type": "event", "evtName": '] * 9) + "\n")
    home, out = tmp_path_factory.mktemp("airflow"), tmp_path_factory.mktemp("out")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "REKINDLE_LANDING": str(landing),
        "REKINDLE_WAREHOUSE": str(out / "rekindle.duckdb"),
        "REKINDLE_OUT": str(out),
        "REKINDLE_TARGET": "duckdb",
    }
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "rekindle_warehouse", "1", "DuckDB allows one writing process")
    return env, airflow(env, "dags", "test", "rekindle_daily", "2026-11-01", check=False)


def task_states(env: dict[str, str]) -> dict[str, str]:
    (run,) = airflow_json(env, "dags", "list-runs", "rekindle_daily")
    assert run["state"] == "failed", run
    return {ti["task_id"]: ti["state"] for ti in airflow_json(env, "tasks", "states-for-dag-run", "rekindle_daily",
                                                               run["run_id"])}  # fmt: skip


def test_a_bad_batch_fails_the_gate_and_no_sender_runs(bad_batch_run):
    env, log = bad_batch_run
    states = task_states(env)
    assert states == {
        "data_interval": "success",
        "load_landing": "success",  # the loader quarantines the garbage and goes on: it is the gate's call
        "dbt_build_orders": "success",
        "predict_clv": "success",
        "dbt_build": "success",
        "quality_gate": "failed",
        "export_audiences": "upstream_failed",
        "send_report": "success",  # all_done: the day is reported, and the report can read the verdict
    }, log[-3000:]
    # failed at the first try: retrying cannot fix bad data
    assert "up_for_retry" not in log
    assert not (Path(env["REKINDLE_OUT"]) / "exports").exists()  # nothing left for a destination

    with duckdb.connect(env["REKINDLE_WAREHOUSE"], read_only=True) as con:
        verdict = dict(
            con.execute(
                "select suite, failed_expectations from quality_gate_log where interval_end = timestamp '2026-11-01'"
                " and not success"
            ).fetchall()
        )
    assert list(verdict) == ["raw_batch_files"]
    (failure,) = json.loads(verdict["raw_batch_files"])
    assert failure == (
        "raw_batch_files.quarantined_pct: expect_column_values_to_be_between(min_value=0.0, max_value=5.0)"
        " (observed 1 unexpected, e.g. 90.0)"
    )
    assert (Path(env["REKINDLE_OUT"]) / "docs" / "gx" / "index.html").is_file()
