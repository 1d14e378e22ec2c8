"""Shared fixtures: a small generated landing zone, and a warehouse built from it by the real stages."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import pytest

from loaders.generate import generate
from loaders.load import load_landing
from loaders.settings import postgres_params

PROJECT = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).with_name("dbt"))
SMALL_END = date(2026, 10, 31)
SMALL_AS_OF = datetime(2026, 11, 1)


# Test files that take minutes (real Airflow runs, day-by-day dbt builds, two engines). `make test` hands whole
# files to its workers in collection order, so these go first: started last, one of them would keep a single
# worker busy long after the other has finished.
SLOW_FILES = (
    "test_airflow_services.py",
    "test_backfill.py",
    "test_incremental.py",
    "test_segments.py",
    "test_quality_gate.py",
    "test_report_email.py",
    "test_reports.py",
    "test_campaigns.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)  # stable: tests keep their order inside a file


def run_dbt(
    warehouse: Path | None,
    *args: str,
    as_of: datetime | None = SMALL_AS_OF,
    tmp: Path,
    env: dict | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run the real dbt CLI against a DuckDB file (or, with env, another target); fail the test with dbt's
    output when it fails (check=False hands a failed run back instead)."""
    env = {
        **os.environ,
        "REKINDLE_WAREHOUSE": str(warehouse),
        "REKINDLE_TARGET": "duckdb",
        "DBT_PROFILES_DIR": str(PROJECT / "dbt_project"),
        "DO_NOT_TRACK": "1",
        **(env or {}),
    }
    command = [DBT, *args, "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]
    env.pop("REKINDLE_AS_OF", None)
    if as_of is not None:
        env["REKINDLE_AS_OF"] = as_of.isoformat()  # as the DAG hands it over (macros/rekindle_as_of.sql)
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 or not check, done.stdout[-4000:] + done.stderr[-2000:]
    return done


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("landing")
    generate(landing, users=400, days=14, seed=7, end=SMALL_END)
    return landing


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory, small_landing) -> Path:
    """Load + dbt build of the small landing zone, shared by the tests that only read it."""
    tmp = tmp_path_factory.mktemp("built")
    warehouse = tmp / "rekindle.duckdb"
    load_landing(str(small_landing), warehouse, (datetime(2026, 10, 31), SMALL_AS_OF))
    run_dbt(warehouse, "build", tmp=tmp)
    return warehouse


def pg_params(dbname: str) -> dict[str, str]:
    """Connection parameters for the machine's Postgres server (REKINDLE_PG_* as in dbt_project/profiles.yml)."""
    return postgres_params(dbname)


@contextmanager
def throwaway_pg_database(prefix: str) -> Iterator[str]:
    """A new database on the real server, dropped afterwards even with connections left open."""
    import psycopg2

    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin = psycopg2.connect(**pg_params("postgres"))
    except psycopg2.OperationalError as exc:
        # Every machine, CI's included, runs PostgreSQL: a missing server is a broken machine, not a skip.
        pytest.fail(f"no Postgres server for the integration tests: {exc}")
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    with admin.cursor() as cursor:
        cursor.execute(f'create database "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}" with (force)')
        admin.close()
