"""The raw and operational tables the loaders write, and a connection to the DuckDB warehouse.

Raw tables live in schema `raw` (dbt reads them as sources); the operational tables that people
query directly (`load_manifest`, `quarantine_events`) live in `main` beside the marts.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

DDL = """
create schema if not exists raw;

create table if not exists raw.events (
    event_key varchar not null,      -- eventId, or a fingerprint of the record when none is given
    event_id varchar,
    event_name varchar not null,
    event_ts timestamp not null,     -- UTC
    identity varchar,
    object_id varchar,
    evt_data json,
    source_file varchar not null,
    source_line integer not null,
    loaded_at timestamp not null
);

create table if not exists raw.profiles (
    profile_key varchar not null,
    identity varchar,
    object_id varchar,
    updated_ts timestamp not null,
    profile_data json,
    source_file varchar not null,
    source_line integer not null,
    loaded_at timestamp not null
);

create table if not exists raw.campaigns (
    campaign_id varchar not null,
    campaign_name varchar not null,
    channel varchar not null,
    segment varchar not null,
    goal_event varchar not null,
    goal_filter json,
    conversion_window_days integer not null,
    control_group_pct double not null,
    start_date date not null,
    end_date date not null,
    source_file varchar not null,
    loaded_at timestamp not null
);

create table if not exists main.quarantine_events (
    source_file varchar not null,
    source_line integer not null,    -- line of a .jsonl file, or position in the "d" list of a .json file
    record_type varchar,
    reason varchar not null,
    raw_text varchar,
    loaded_at timestamp not null
);

create table if not exists main.load_manifest (
    source_file varchar not null,    -- relative to the landing zone
    sha256 varchar not null,
    size_bytes bigint not null,
    status varchar not null,         -- loaded | changed_after_load
    input_records bigint not null,
    loaded_events bigint not null,
    loaded_profiles bigint not null,
    duplicates bigint not null,
    quarantined bigint not null,
    interval_start timestamp,
    interval_end timestamp,
    loaded_at timestamp not null
);
"""


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the warehouse file with every loader table in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(DDL)
    return con
