"""Where the loaders write: the raw and operational tables, behind one small interface per engine.

Raw tables live in schema `raw` (dbt reads them as sources); the operational tables that people query
directly (`load_manifest`, `quarantine_events`) live beside the marts (`main` on DuckDB). A writer takes a
parsed `Batch` and commits it with its manifest row in ONE transaction, so a crash at any point leaves
either the whole file or nothing, and a rerun skips what is already there.

Cross-file deduplication: an accepted record whose key is already in the warehouse is a re-delivery and
is counted as a duplicate. DuckDB compares against rows whose time is within `lookback` of the batch's
earliest record (a bounded scan; staging removes anything older that slips through); Postgres uses a
unique index and `on conflict do nothing`, which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import duckdb
import pyarrow as pa

from loaders.batch import Batch

DEFAULT_LOOKBACK = timedelta(days=3)


@dataclass(frozen=True)
class ManifestEntry:
    source_file: str
    sha256: str
    size_bytes: int
    interval_start: datetime
    interval_end: datetime
    loaded_at: datetime


@dataclass(frozen=True)
class CommitResult:
    loaded_events: int
    loaded_profiles: int
    duplicates: int  # in the batch plus already in the warehouse
    quarantined: int
    late_events: int  # accepted events older than the interval start


class Warehouse(Protocol):
    def loaded_files(self) -> dict[str, str]:
        """source_file → sha256 of the content loaded from it, for every file loaded so far."""

    def commit(self, batch: Batch, entry: ManifestEntry, lookback: timedelta = DEFAULT_LOOKBACK) -> CommitResult:
        """Insert new events/profiles, the quarantine and the manifest row in one transaction; raise if the
        counts do not reconcile (nothing is committed then)."""

    def replace_campaigns(self, source_file: str, rows: list[dict], quarantine: pa.Table, loaded_at: datetime) -> None:
        """Replace everything that came from this campaigns file (rows and quarantined entries)."""

    def close(self) -> None: ...


DUCKDB_DDL = """
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
    conversion_window_days integer,
    control_group_pct double not null,
    start_date date not null,
    end_date date not null,
    source_file varchar not null,
    loaded_at timestamp not null
);
-- conversion_window_days became optional (the windows per channel apply without it): upgrade older tables
alter table raw.campaigns alter column conversion_window_days drop not null;

create table if not exists main.quarantine_events (
    source_file varchar not null,
    source_line integer not null,    -- line of a file, or position in a {"d": [...]} payload or Parquet file
    record_type varchar,
    reason varchar not null,
    raw_text varchar,
    loaded_at timestamp not null
);

create table if not exists main.load_manifest (
    source_file varchar not null,    -- relative to the landing zone
    sha256 varchar not null,
    size_bytes bigint not null,
    status varchar not null,         -- loaded
    input_records bigint not null,
    loaded_events bigint not null,
    loaded_profiles bigint not null,
    duplicates bigint not null,
    quarantined bigint not null,
    late_events bigint not null,
    interval_start timestamp,
    interval_end timestamp,
    loaded_at timestamp not null
);
"""


class DuckDBWarehouse:
    """The embedded default: one DuckDB file, written through Arrow (no row-by-row inserts)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(path))
        self.con.execute(DUCKDB_DDL)

    def loaded_files(self) -> dict[str, str]:
        return dict(
            self.con.execute("select source_file, sha256 from main.load_manifest where status = 'loaded'").fetchall()
        )

    def _insert_new(self, table: str, key: str, ts: str, rows, columns: str, entry: ManifestEntry, lookback) -> int:
        if rows.num_rows == 0:
            return 0
        self.con.register("load_batch", rows)
        try:
            return self.con.execute(
                f"insert into {table} select {columns}, ?, source_line, ? from load_batch b"
                f" where not exists (select 1 from {table} t where t.{key} = b.{key}"
                f" and t.{ts} >= (select min({ts}) from load_batch) - ?)",
                [entry.source_file, entry.loaded_at, lookback],
            ).fetchone()[0]
        finally:
            self.con.unregister("load_batch")

    def commit(self, batch: Batch, entry: ManifestEntry, lookback: timedelta = DEFAULT_LOOKBACK) -> CommitResult:
        con = self.con
        con.execute("begin transaction")
        try:
            events = self._insert_new(
                "raw.events", "event_key", "event_ts", batch.events,
                "event_key, event_id, event_name, event_ts, identity, object_id, evt_data", entry, lookback,
            )  # fmt: skip
            profiles = self._insert_new(
                "raw.profiles", "profile_key", "updated_ts", batch.profiles,
                "profile_key, identity, object_id, updated_ts, profile_data", entry, lookback,
            )  # fmt: skip
            if batch.quarantine.num_rows:
                con.register("quarantine_batch", batch.quarantine)
                con.execute(
                    "insert into main.quarantine_events"
                    " select ?, source_line, record_type, reason, raw_text, ? from quarantine_batch",
                    [entry.source_file, entry.loaded_at],
                ).fetchall()
                con.unregister("quarantine_batch")
            late = con.execute(
                "select count(*) from raw.events where source_file = ? and event_ts < ?",
                [entry.source_file, entry.interval_start],
            ).fetchone()[0]
            result = CommitResult(
                loaded_events=events,
                loaded_profiles=profiles,
                duplicates=batch.duplicates_in_batch
                + batch.events.num_rows
                - events
                + batch.profiles.num_rows
                - profiles,
                quarantined=batch.quarantine.num_rows,
                late_events=late,
            )
            check_reconciles(batch, result)
            con.execute(
                "insert into main.load_manifest values (?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [entry.source_file, entry.sha256, entry.size_bytes, batch.input_records, result.loaded_events,
                 result.loaded_profiles, result.duplicates, result.quarantined, result.late_events,
                 entry.interval_start, entry.interval_end, entry.loaded_at],
            ).fetchall()  # fmt: skip
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        return result

    def replace_campaigns(self, source_file: str, rows: list[dict], quarantine: pa.Table, loaded_at: datetime) -> None:
        con = self.con
        con.execute("begin transaction")
        try:
            con.execute("delete from raw.campaigns where source_file = ?", [source_file]).fetchall()
            con.execute("delete from main.quarantine_events where source_file = ?", [source_file]).fetchall()
            if rows:
                columns = list(rows[0])
                con.executemany(
                    f"insert into raw.campaigns ({', '.join(columns)}, source_file, loaded_at)"
                    f" values ({', '.join('?' for _ in columns)}, ?, ?)",
                    [[*row.values(), source_file, loaded_at] for row in rows],
                )
            if quarantine.num_rows:
                con.register("quarantine_batch", quarantine)
                con.execute(
                    "insert into main.quarantine_events"
                    " select ?, source_line, record_type, reason, raw_text, ? from quarantine_batch",
                    [source_file, loaded_at],
                ).fetchall()
                con.unregister("quarantine_batch")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise

    def close(self) -> None:
        self.con.close()


def check_reconciles(batch: Batch, result: CommitResult) -> None:
    """input = loaded + duplicates + quarantined, or the file's transaction must not commit."""
    accounted = result.loaded_events + result.loaded_profiles + result.duplicates + result.quarantined
    if accounted != batch.input_records:
        raise RuntimeError(
            f"{batch.source_file}: reconciliation failed: {batch.input_records} input records but "
            f"{result.loaded_events + result.loaded_profiles} loaded + {result.duplicates} duplicates + "
            f"{result.quarantined} quarantined = {accounted}"
        )


def open_warehouse(target: str, duckdb_path: Path) -> Warehouse:
    """The loader's writer for a dbt target name (REKINDLE_TARGET)."""
    if target == "duckdb":
        return DuckDBWarehouse(duckdb_path)
    if target == "postgres":
        from loaders.postgres import PostgresWarehouse

        return PostgresWarehouse.from_env()
    raise ValueError(f"REKINDLE_TARGET={target!r}: the loaders write 'duckdb' or 'postgres'")
