"""Rekindle's DuckDB table and incremental materializations (macros/materialization_*.sql): an incremental run is
one statement, so the checks dbt's own materialization makes around it must hold inside that statement. Whether
the rows are right is tests/test_incremental.py's question (incremental runs equal a full refresh)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from tests.conftest import run_dbt

MODEL = "int_users__latest_profile"  # incremental, delete+insert on user_id
MART = "fct_events"  # incremental, every column documented


def copy_of(built_warehouse: Path, tmp_path: Path) -> Path:
    warehouse = tmp_path / "rekindle.duckdb"
    shutil.copy(built_warehouse, warehouse)
    return warehouse


def run_model(warehouse: Path, tmp_path: Path, model: str = MODEL, *, check: bool = True):
    return run_dbt(warehouse, "run", "-s", model, tmp=tmp_path, check=check)


def table_rows(warehouse: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"select * from main.{table} order by all").fetchall()


def test_a_table_whose_columns_differ_from_the_model_stops_the_run_with_the_columns_and_the_remedy(
    built_warehouse, tmp_path
):
    warehouse = copy_of(built_warehouse, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"alter table main.{MODEL} add column legacy_flag boolean")  # an older Rekindle's column
        con.execute(f"alter table main.{MODEL} alter column name type varchar[] using [name]")  # a changed type
    before = table_rows(warehouse, MODEL)

    done = run_model(warehouse, tmp_path, check=False)

    assert done.returncode != 0
    message = done.stdout
    assert f"{MODEL}: the model's columns no longer match the table" in message, message[-3000:]
    assert "legacy_flag is in the table (BOOLEAN), not in the model" in message
    assert "name is VARCHAR in the model, VARCHAR[] in the table" in message
    assert f"dbt build --full-refresh -s {MODEL}" in message
    assert table_rows(warehouse, MODEL) == before  # the statement rolled back whole: nothing deleted


def test_an_incremental_run_keeps_the_rows_and_writes_the_documentation(built_warehouse, tmp_path):
    """A rerun with nothing new leaves the table as it was, and writes its comments again (persist_docs), so a
    description edited in the YAML reaches the warehouse without a full refresh."""
    warehouse = copy_of(built_warehouse, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"comment on table main.{MART} is null")
        con.execute(f"comment on column main.{MART}.user_id is null")
    before = table_rows(warehouse, MART)

    run_model(warehouse, tmp_path, MART)

    assert table_rows(warehouse, MART) == before
    with duckdb.connect(str(warehouse), read_only=True) as con:
        table_comment = con.execute(
            "select comment from duckdb_tables() where schema_name = 'main' and table_name = ?", [MART]
        ).fetchone()[0]
        uncommented = con.execute(
            "select column_name from duckdb_columns()"
            " where schema_name = 'main' and table_name = ? and comment is null",
            [MART],
        ).fetchall()
    assert table_comment and table_comment.startswith("Every accepted event"), table_comment
    assert uncommented == []
