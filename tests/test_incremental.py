"""Incremental equals full: the incremental models, run day by day as data arrives (late data included),
hold exactly the rows a full refresh computes from the same raw tables, at every as-of instant tested.

The generated landing zone is delivered to a live landing folder in steps, as a real export would arrive:
- the first run builds from nothing (dbt's first incremental run is a full build);
- one step delivers two days at once;
- one day's events and profiles are held back and delivered three days late: old event times with a new
  load time, and logins that re-resolve devices whose anonymous history was already assigned;
- every day's file re-delivers some lines of the day before (the generator's duplicates);
- finally a rerun of an earlier day (a backfill): the as-of instant moves back.
After the forward steps and after the backfill, a copy of the warehouse is rebuilt with `--full-refresh` and
every incremental model is compared row for row (a multiset of row digests, so duplicates count), on DuckDB
and on a real Postgres server (the incremental SQL differs by adapter: delete+insert, hooks).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg2
import psycopg2.extensions
import pytest

from loaders.generate import generate
from loaders.load import load_landing
from loaders.postgres import PostgresWarehouse
from tests.conftest import pg_params, run_dbt, throwaway_pg_database

END = date(2026, 10, 31)
DAYS = 8
FIRST = END - timedelta(days=DAYS - 1)  # 2026-10-24
LATE_DAY = FIRST + timedelta(days=1)  # held back, delivered with LATE_DELIVERY
LATE_DELIVERY = FIRST + timedelta(days=4)
# The days each run delivers (its as-of instant is the midnight after the last of them).
STEPS = [
    [FIRST],
    [FIRST + timedelta(days=2), FIRST + timedelta(days=3)],  # two days at once, LATE_DAY still missing
    [LATE_DAY, LATE_DELIVERY],  # the late day arrives with the current one
    [FIRST + timedelta(days=d) for d in range(5, DAYS)],
]
BACKFILL_AS_OF = datetime.combine(FIRST + timedelta(days=3), datetime.min.time())


def as_of_after(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


@pytest.fixture(scope="module")
def source_landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("incremental_source")
    generate(landing, users=300, days=DAYS, seed=11, end=END)
    return landing


class DuckDBWarehouse:
    """A warehouse file: load into it, run dbt on it, copy it, and read a model's rows as digests."""

    name = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, landing: Path, as_of: datetime, loaded_at: datetime) -> None:
        load_landing(str(landing), self.path, (as_of - timedelta(days=1), as_of), loaded_at=loaded_at)

    def dbt(self, *args: str, as_of: datetime, tmp: Path) -> None:
        run_dbt(self.path, *args, as_of=as_of, tmp=tmp)

    def copy(self, label: str) -> DuckDBWarehouse:
        target = self.path.with_name(f"{self.path.stem}-{label}.duckdb")
        shutil.copy2(self.path, target)
        return DuckDBWarehouse(target)

    def row_digests(self, model: str) -> Counter:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return Counter(r[0] for r in con.sql(f"select md5(cast(t as varchar)) from main.{model} as t").fetchall())


class PostgresDatabase:
    """The same on a database of the real Postgres server (copied with CREATE DATABASE ... TEMPLATE)."""

    name = "postgres"
    schema = "rekindle"

    def __init__(self, database: str, created: list[str]) -> None:
        self.database, self.created = database, created

    def dsn(self, database: str | None = None) -> str:
        return psycopg2.extensions.make_dsn(**pg_params(database or self.database))

    def load(self, landing: Path, as_of: datetime, loaded_at: datetime) -> None:
        warehouse = PostgresWarehouse(self.dsn(), schema=self.schema)
        try:
            load_landing(str(landing), warehouse, (as_of - timedelta(days=1), as_of), loaded_at=loaded_at)
        finally:
            warehouse.close()

    def dbt(self, *args: str, as_of: datetime, tmp: Path) -> None:
        env = {"REKINDLE_TARGET": "postgres", "REKINDLE_PG_DATABASE": self.database, "REKINDLE_PG_SCHEMA": self.schema}
        run_dbt(None, *args, as_of=as_of, tmp=tmp, env=env)

    def copy(self, label: str) -> PostgresDatabase:
        name = f"{self.database}_{label}"
        admin = psycopg2.connect(self.dsn("postgres"))
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}"')
            cursor.execute(f'create database "{name}" template "{self.database}"')
        admin.close()
        self.created.append(name)
        return PostgresDatabase(name, self.created)

    def row_digests(self, model: str) -> Counter:
        with psycopg2.connect(self.dsn()) as con, con.cursor() as cursor:
            cursor.execute(f'select md5(cast(t as text)) from "{self.schema}"."{model}" as t')
            digests = Counter(r[0] for r in cursor.fetchall())
        con.close()
        return digests


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path) -> Iterator[DuckDBWarehouse | PostgresDatabase]:
    if request.param == "duckdb":
        yield DuckDBWarehouse(tmp_path / "rekindle.duckdb")
        return
    created: list[str] = []
    with throwaway_pg_database("rekindle_incr") as name:
        try:
            yield PostgresDatabase(name, created)
        finally:
            admin = psycopg2.connect(psycopg2.extensions.make_dsn(**pg_params("postgres")))
            admin.autocommit = True
            with admin.cursor() as cursor:
                for copy in created:
                    cursor.execute(f'drop database if exists "{copy}" with (force)')
            admin.close()


def incremental_models(tmp: Path) -> list[str]:
    """Every incremental model of the project, from dbt's manifest (a new one is checked automatically)."""
    manifest = json.loads((tmp / "target" / "manifest.json").read_text())
    return sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"]["materialized"] == "incremental"
        and "history" not in node["config"]["tags"]  # accumulated run by run: no full refresh to compare with
    )


def deliver(source: Path, live: Path, day: date) -> None:
    for kind in ("events", "profiles"):
        for file in sorted((source / kind).glob(f"{day.isoformat()}.*")):
            (live / kind).mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, live / kind / file.name)


def assert_equals_full_refresh(warehouse, as_of: datetime, tmp: Path) -> None:
    full = warehouse.copy(f"full{as_of:%m%d}")
    full.dbt(
        "run",
        "--full-refresh",
        "--select",
        "config.materialized:incremental",
        "--exclude",
        "tag:history",
        as_of=as_of,
        tmp=tmp,
    )
    models = incremental_models(tmp)
    assert {
        "stg_clevertap__events",
        "int_identity__record_users",
        "int_identity__device_owners",
        "fct_events",
        "fct_sessions",
    } <= set(models)
    differ = {}
    for model in models:
        incremental, refreshed = warehouse.row_digests(model), full.row_digests(model)
        assert refreshed, f"{model} is empty: the comparison would prove nothing"
        if incremental != refreshed:
            differ[model] = {
                "rows": sum(refreshed.values()),
                "only_incremental": sum((incremental - refreshed).values()),
                "only_full_refresh": sum((refreshed - incremental).values()),
            }
    assert differ == {}, f"{warehouse.name}: incremental runs as of {as_of} differ from a full refresh"


def test_incremental_runs_equal_a_full_refresh(source_landing, warehouse, tmp_path):
    live = tmp_path / "landing"
    shutil.copytree(source_landing / "campaigns", live / "campaigns")
    for days in STEPS:
        for day in days:
            deliver(source_landing, live, day)
        as_of = as_of_after(days[-1])
        # loaded_at a day apart, as daily loads are
        warehouse.load(live, as_of, loaded_at=as_of + timedelta(hours=1))
        warehouse.dbt(
            "run", "--select", "config.materialized:incremental", "--exclude", "tag:history", as_of=as_of, tmp=tmp_path
        )
    assert_equals_full_refresh(warehouse, as_of_after(END), tmp_path)

    # A rerun of an earlier day: the models must forget what came after it.
    warehouse.dbt(
        "run",
        "--select",
        "config.materialized:incremental",
        "--exclude",
        "tag:history",
        as_of=BACKFILL_AS_OF,
        tmp=tmp_path,
    )
    assert_equals_full_refresh(warehouse, BACKFILL_AS_OF, tmp_path)


def test_the_scenario_has_late_data_that_changes_identity(source_landing, tmp_path):
    """The scenario above proves something: the held-back day is late (old event times loaded after newer
    ones), and its logins move earlier anonymous records to another user."""
    live = tmp_path / "landing"
    shutil.copytree(source_landing / "campaigns", live / "campaigns")
    warehouse = DuckDBWarehouse(tmp_path / "rekindle.duckdb")
    for days in STEPS[:2]:
        for day in days:
            deliver(source_landing, live, day)
    as_of = as_of_after(STEPS[1][-1])
    warehouse.load(live, as_of, loaded_at=as_of)
    warehouse.dbt("run", "--select", "+int_identity__record_users", as_of=as_of, tmp=tmp_path)
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        before = dict(con.sql("select record_key, user_id from int_identity__record_users").fetchall())
    deliver(source_landing, live, LATE_DAY)
    warehouse.load(live, as_of, loaded_at=as_of + timedelta(hours=1))
    warehouse.dbt("run", "--select", "+int_identity__record_users", as_of=as_of, tmp=tmp_path)
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        after = dict(con.sql("select record_key, user_id from int_identity__record_users").fetchall())
    moved = [key for key, user in before.items() if after[key] != user]
    assert len(after) > len(before) and moved, "the late day neither adds records nor re-resolves any"


def test_an_incremental_run_selects_only_what_changed(source_landing, tmp_path):
    """The filter does its job: after one day's new load, fct_events' incremental query selects that day's
    events plus the history of the devices it logged in on, a small share of the table, not all of it."""
    live = tmp_path / "landing"
    shutil.copytree(source_landing, live)
    last_day = live / "events" / f"{END.isoformat()}.jsonl.gz"
    held_back = tmp_path / last_day.name
    shutil.move(last_day, held_back)
    warehouse = tmp_path / "rekindle.duckdb"
    as_of = as_of_after(END)
    load_landing(str(live), warehouse, (as_of - timedelta(days=1), as_of), loaded_at=as_of - timedelta(days=1))
    run_dbt(
        warehouse,
        "run",
        "--select",
        "config.materialized:incremental",
        "--exclude",
        "tag:history",
        as_of=as_of,
        tmp=tmp_path,
    )
    shutil.move(held_back, last_day)
    load_landing(str(live), warehouse, (as_of - timedelta(days=1), as_of), loaded_at=as_of)
    run_dbt(warehouse, "run", "--select", "+int_identity__record_users", as_of=as_of, tmp=tmp_path)

    run_dbt(warehouse, "compile", "--select", "fct_events", as_of=as_of, tmp=tmp_path)
    query = next((tmp_path / "target" / "compiled").rglob("fct_events.sql")).read_text()
    con = duckdb.connect(str(warehouse), read_only=True)
    selected = con.sql(f"select count(*), count(distinct event_key) from ({query}) as batch").fetchall()[0]
    new_events = con.sql("select count(*) from stg_clevertap__events where loaded_at = ?", params=[as_of]).fetchall()
    in_table = con.sql("select count(*) from fct_events").fetchall()[0][0]
    con.close()
    assert selected[0] == selected[1]
    assert new_events[0][0] <= selected[0] < in_table / 4, (selected, new_events, in_table)
