"""Helpers for the senders' tests: a small warehouse with the marts' shapes, and connection variables.

The engine's property and crash tests need thousands of segment changes; rebuilding dbt for each would take
hours, so they run against a DuckDB file holding the columns the sync reads from `dim_users`,
`segment_members` and `campaign_exposures` (the same names and types as the marts). The eligibility test in
test_senders_sync.py runs on the real dbt-built warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import duckdb

from loaders.settings import Settings

AS_OF = datetime(2026, 11, 1)
START = datetime(2026, 10, 31)


def make_warehouse(path: Path, users: int = 200) -> Path:
    """user u0001..uNNNN with email, E.164-able phone, first/last name, consent for every channel."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table dim_users (user_id varchar, email varchar, phone varchar, name varchar, city varchar,"
            " country varchar, lifecycle_stage varchar, can_email boolean, can_sms boolean, can_push boolean,"
            " can_whatsapp boolean, is_global_control boolean)"
        )
        con.execute(
            "create table segment_members (user_id varchar, email varchar, qualified_at timestamp,"
            " evaluated_at timestamp, segment_name varchar)"
        )
        con.execute(
            "create table campaign_exposures (campaign_id varchar, user_id varchar, qualified_at timestamp,"
            " assignment varchar)"
        )
        con.execute(
            "insert into dim_users select printf('u%04d', i), printf('user%04d@example.com', i),"
            " printf('+4479%08d', i), printf('Ann%d Lee', i), 'London', 'GB', 'active', true, true, true, true, false"
            " from range(1, ? + 1) t(i)",
            [users],
        )
    return path


def set_segment(path: Path, segment: str, user_ids: Iterable[str]) -> None:
    """Replace the segment's members, as a dbt build would after the data changed."""
    ids = sorted(set(user_ids))
    with duckdb.connect(str(path)) as con:
        con.execute("delete from segment_members where segment_name = ?", [segment])
        con.execute(
            "insert into segment_members select user_id, email, ?, ?, ? from dim_users where list_contains(?, user_id)",
            [START, AS_OF, segment, ids],
        )


def user_ids(n: int) -> list[str]:
    return [f"u{i:04d}" for i in range(1, n + 1)]


def settings_for(warehouse: Path, out: Path) -> Settings:
    return Settings(landing=str(out / "landing"), warehouse=warehouse, target="duckdb", out=out)


def write_audiences(path: Path, audiences: list[Mapping]) -> Path:
    path.write_text(json.dumps({"audiences": audiences}))  # JSON is YAML
    return path


def connection_env(monkeypatch, conn_id: str, **values: object) -> None:
    """An Airflow connection as the environment variable Airflow reads (JSON form)."""
    extra = values.pop("extra", {})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**values, "extra": extra}))


def table(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()
