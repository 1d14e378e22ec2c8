"""Portability: the dbt project gives the same marts on DuckDB and on a real Postgres server.

The small generated landing zone is loaded by the real loaders into a DuckDB file and into a throwaway
Postgres database, the real dbt CLI builds both (tests included), and every model under models/marts/
(discovered from dbt's manifest, so a new mart is compared without touching this file) is read in full
from both warehouses and compared row by row.

Only representation is normalised, never meaning:
- timestamps → naive UTC datetimes (an aware value is converted, not stripped);
- numbers: Decimal, int and float compare by value, floats with a relative tolerance of 1e-9;
- JSON columns compare as parsed JSON (DuckDB hands back JSON text, psycopg2 parsed json/jsonb);
- rows are sorted in Python after normalisation, so the engines' collations and null ordering do not matter.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import psycopg2.extensions
import pytest

from loaders.load import load_landing
from loaders.postgres import PostgresWarehouse
from tests.conftest import DBT, PROJECT, SMALL_AS_OF, pg_params, throwaway_pg_database

PG_SCHEMA = "rekindle"
LOAD_INTERVAL = (datetime(2026, 10, 31), SMALL_AS_OF)
REL_TOL = 1e-9
SHOW_ROWS = 5  # differing rows quoted per model in a failure message
PG_JSON_TYPES = {114, 3802}  # json, jsonb (pg_type oids)
# Marts that are empty by construction after one build of one as-of instant (still compared, both must be empty).
EMPTY_AFTER_ONE_RUN = {
    "rfm_segment_transitions": "changes between snapshot versions: the first run writes one version per user",
}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with throwaway_pg_database("rekindle_port") as name:
        yield name


# ------------------------------------------------------------------------------------------------ dbt


def start_dbt_build(target: str, env: dict[str, str], tmp: Path) -> subprocess.Popen:
    """`dbt build` of the real project against one target, with its own target and log paths under tmp."""
    env = {
        **os.environ,
        **env,
        "REKINDLE_TARGET": target,
        "DBT_PROFILES_DIR": str(PROJECT / "dbt_project"),
        "DO_NOT_TRACK": "1",
        "REKINDLE_AS_OF": SMALL_AS_OF.isoformat(),
    }
    command = [DBT, "build", "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dbt_failure(target: str, process: subprocess.Popen) -> str | None:
    """Wait for a build; dbt's output when it failed."""
    stdout, stderr = process.communicate(timeout=300)
    return None if process.returncode == 0 else f"dbt build on {target} failed:\n{stdout[-4000:]}{stderr[-2000:]}"


@dataclass(frozen=True)
class Mart:
    name: str
    relation: str  # fully qualified, quoted, as dbt built it on that target
    key: tuple[str, ...] | None  # from the model's unique / unique_combination test, when it has one


def marts_of(manifest_path: Path) -> dict[str, Mart]:
    """Every model under models/marts/, with the relation dbt built and a unique key dbt tests for it."""
    manifest = json.loads(manifest_path.read_text())
    nodes = manifest["nodes"].values()
    keys: dict[str, tuple[str, ...]] = {}
    for test in nodes:
        if test["resource_type"] != "test" or not test.get("attached_node"):
            continue
        meta = test.get("test_metadata") or {}
        if meta.get("name") == "unique" and test.get("column_name"):
            keys.setdefault(test["attached_node"], (test["column_name"],))
        elif meta.get("name") == "unique_combination":
            columns = meta.get("kwargs", {}).get("columns")
            if columns:
                keys.setdefault(test["attached_node"], tuple(columns))
    return {
        node["name"]: Mart(node["name"], node["relation_name"], keys.get(node["unique_id"]))
        for node in nodes
        if node["resource_type"] == "model" and node["original_file_path"].startswith("models/marts/")
    }


# ------------------------------------------------------------------------------------ read + normalise


@dataclass
class Table:
    columns: list[str]
    json_columns: set[str]
    rows: list[tuple]


def read_duckdb(path: Path, relation: str) -> Table:
    with duckdb.connect(str(path), read_only=True) as conn:
        types = {row[0]: str(row[1]) for row in conn.execute(f"describe {relation}").fetchall()}
        cursor = conn.execute(f"select * from {relation}")
        columns = [d[0] for d in cursor.description]
        return Table(columns, {c for c in columns if types[c] == "JSON"}, cursor.fetchall())


def read_postgres(dbname: str, relation: str) -> Table:
    conn = psycopg2.connect(**pg_params(dbname))
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"select * from {relation}")
            columns = [d.name for d in cursor.description]
            json_columns = {d.name for d in cursor.description if d.type_code in PG_JSON_TYPES}
            return Table(columns, json_columns, cursor.fetchall())
    finally:
        conn.close()


def normalise(value: Any, is_json: bool) -> Any:
    """One value in a form both engines agree on when they mean the same thing."""
    if value is None:
        return None
    if is_json:
        parsed = json.loads(value) if isinstance(value, str | bytes) else value
        return json.dumps(parsed, sort_keys=True, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def normalised_rows(table: Table, json_columns: set[str]) -> list[tuple]:
    flags = [column in json_columns for column in table.columns]
    return [tuple(normalise(v, f) for v, f in zip(row, flags, strict=True)) for row in table.rows]


def sort_key(row: tuple) -> tuple:
    """Total order over mixed values: None first, then by kind; floats rounded so that values within the
    tolerance sort alike."""
    key = []
    for value in row:
        if value is None:
            key.append((0, 0))
        elif isinstance(value, bool):
            key.append((1, value))
        elif isinstance(value, int | float):
            key.append((2, float(f"{value:.8g}")))
        elif isinstance(value, datetime):
            key.append((3, value))
        elif isinstance(value, date):
            key.append((4, value))
        else:
            key.append((5, str(value)))
    return tuple(key)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or math.isclose(a, b, rel_tol=REL_TOL)
    return type(a) is type(b) and a == b


def differing_columns(columns: list[str], a: tuple, b: tuple) -> list[str]:
    return [c for c, x, y in zip(columns, a, b, strict=True) if not same(x, y)]


def show(columns: list[str], row: tuple, only: list[str] | None = None) -> str:
    return ", ".join(f"{c}={v!r}" for c, v in zip(columns, row, strict=True) if only is None or c in only)


def compare(mart: Mart, duck: Table, pg: Table) -> str | None:
    """None when the two sides hold the same rows, else a report naming the columns and the first rows."""
    if duck.columns != pg.columns:
        return f"{mart.name}: columns differ\n  duckdb:   {duck.columns}\n  postgres: {pg.columns}"
    columns = duck.columns
    json_columns = duck.json_columns | pg.json_columns
    left = sorted(normalised_rows(duck, json_columns), key=sort_key)
    right = sorted(normalised_rows(pg, json_columns), key=sort_key)
    if len(left) == len(right) and all(not differing_columns(columns, a, b) for a, b in zip(left, right, strict=True)):
        return None

    lines = [f"{mart.name}: {len(left)} rows on duckdb, {len(right)} on postgres"]
    key = mart.key if mart.key and set(mart.key) <= set(columns) else None
    if key:
        at = [columns.index(c) for c in key]
        by_left = {tuple(r[i] for i in at): r for r in left}
        by_right = {tuple(r[i] for i in at): r for r in right}
        if len(by_left) == len(left) and len(by_right) == len(right):
            pairs = [(k, by_left[k], by_right[k]) for k in by_left if k in by_right]
            changed = [(k, a, b, differing_columns(columns, a, b)) for k, a, b in pairs]
            changed = [c for c in changed if c[3]]
            by_column: dict[str, int] = {}
            for *_, cols in changed:
                for c in cols:
                    by_column[c] = by_column.get(c, 0) + 1
            if changed:
                lines.append(f"  {len(changed)} rows differ (matched on {', '.join(key)}); per column: {by_column}")
            for k, a, b, cols in changed[:SHOW_ROWS]:
                lines.append(f"  {dict(zip(key, k, strict=True))}: duckdb {show(columns, a, cols)}")
                lines.append(f"  {' ' * len(str(dict(zip(key, k, strict=True))))}  postgres {show(columns, b, cols)}")
            only_left = [r for k, r in by_left.items() if k not in by_right]
            only_right = [r for k, r in by_right.items() if k not in by_left]
            for side, rows in (("duckdb", only_left), ("postgres", only_right)):
                if rows:
                    lines.append(f"  {len(rows)} rows only on {side}, e.g.:")
                    lines += [f"    {show(columns, r)}" for r in rows[:SHOW_ROWS]]
            return "\n".join(lines)

    # No usable key: report the first positions where the sorted rows part ways.
    shown = 0
    for position, (a, b) in enumerate(zip(left, right, strict=False)):
        cols = differing_columns(columns, a, b)
        if cols and shown < SHOW_ROWS:
            lines.append(f"  sorted row {position}: columns {cols}")
            lines.append(f"    duckdb:   {show(columns, a)}")
            lines.append(f"    postgres: {show(columns, b)}")
            shown += 1
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- test


def test_marts_match_on_duckdb_and_postgres(tmp_path: Path, small_landing: Path, pg_database: str) -> None:
    duck_file = tmp_path / "rekindle.duckdb"
    # One load time for both: loaded_at is carried into the marts (the incremental watermark).
    loaded_at = datetime(2026, 11, 1, 2, 30)
    load_landing(str(small_landing), duck_file, LOAD_INTERVAL, loaded_at=loaded_at)
    pg = PostgresWarehouse(psycopg2.extensions.make_dsn(**pg_params(pg_database)), schema=PG_SCHEMA)
    try:
        load_landing(str(small_landing), pg, LOAD_INTERVAL, loaded_at=loaded_at)
    finally:
        pg.close()

    # The two builds touch different warehouses and target paths: run them side by side.
    builds = {
        "duckdb": start_dbt_build("duckdb", {"REKINDLE_WAREHOUSE": str(duck_file)}, tmp_path / "duckdb"),
        "postgres": start_dbt_build(
            "postgres",
            {
                **{f"REKINDLE_PG_{k.upper()}": v for k, v in pg_params(pg_database).items() if k != "dbname"},
                "REKINDLE_PG_DATABASE": pg_database,
                "REKINDLE_PG_SCHEMA": PG_SCHEMA,
            },
            tmp_path / "postgres",
        ),
    }
    failures = [f for target, process in builds.items() if (f := dbt_failure(target, process))]  # wait for both
    assert not failures, "\n".join(failures)

    duck_marts = marts_of(tmp_path / "duckdb" / "target" / "manifest.json")
    pg_marts = marts_of(tmp_path / "postgres" / "target" / "manifest.json")
    assert duck_marts, "no models under models/marts/ in dbt's manifest"
    assert sorted(duck_marts) == sorted(pg_marts)

    problems = []
    for name in sorted(duck_marts):
        duck = read_duckdb(duck_file, duck_marts[name].relation)
        pg_table = read_postgres(pg_database, pg_marts[name].relation)
        if (not duck.rows or not pg_table.rows) and name not in EMPTY_AFTER_ONE_RUN:
            problems.append(
                f"{name}: no rows (duckdb {len(duck.rows)}, postgres {len(pg_table.rows)}), so the comparison "
                "proves nothing"
            )
        if diff := compare(duck_marts[name], duck, pg_table):
            problems.append(diff)
    assert not problems, "DuckDB and Postgres marts disagree (or prove nothing):\n" + "\n".join(problems)
