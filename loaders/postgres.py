"""The `Warehouse` protocol on PostgreSQL, for companies that outgrow one DuckDB file.

Same tables, columns and meanings as the DuckDB reference (`loaders.warehouse.DUCKDB_DDL`), with two
differences that come from sharing a server:

* Several tenants (or a test and production) can share one database, so nothing lives in a fixed schema:
  raw tables go to `<schema>_raw` (`rekindle_raw.events`, `.profiles`, `.campaigns`) and the operational
  tables (`load_manifest`, `quarantine_events`) to `<schema>`, beside the dbt marts of the profile's schema.
* Cross-file deduplication is exact: unique indexes on `events(event_key)` and `profiles(profile_key)` and
  `insert ... on conflict do nothing`, so a re-delivery is a duplicate however old the first copy is
  (DuckDB only looks back `lookback`; the argument is accepted here and not needed).

Every write is bulk: a batch travels as CSV through `COPY ... FROM STDIN` into temporary staging tables
and is moved into the raw tables with one `insert ... select` per table. A file's rows, its quarantine and
its manifest row commit in one transaction, or none of them do.

JSON columns are `jsonb`: the values round-trip, the text does not (jsonb orders keys and drops duplicate
keys and insignificant whitespace), and jsonb cannot hold the escape `\\u0000`.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg2 import sql

from loaders.batch import EVENT_SCHEMA, PROFILE_SCHEMA, QUARANTINE_SCHEMA, Batch
from loaders.warehouse import DEFAULT_LOOKBACK, CommitResult, ManifestEntry, check_reconciles

log = logging.getLogger(__name__)

# {raw} is `<schema>_raw`, {ops} is `<schema>`; both are quoted identifiers, filled in by psycopg2.sql.
POSTGRES_DDL = """
create schema if not exists {raw};
create schema if not exists {ops};

create table if not exists {raw}.events (
    event_key text not null,         -- eventId, or a fingerprint of the record when none is given
    event_id text,
    event_name text not null,
    event_ts timestamp not null,     -- UTC
    identity text,
    object_id text,
    evt_data jsonb,
    source_file text not null,
    source_line integer not null,
    loaded_at timestamp not null
);
create unique index if not exists events_event_key on {raw}.events (event_key);

create table if not exists {raw}.profiles (
    profile_key text not null,
    identity text,
    object_id text,
    updated_ts timestamp not null,
    profile_data jsonb,
    source_file text not null,
    source_line integer not null,
    loaded_at timestamp not null
);
create unique index if not exists profiles_profile_key on {raw}.profiles (profile_key);

create table if not exists {raw}.campaigns (
    campaign_id text not null,
    campaign_name text not null,
    channel text not null,
    segment text not null,
    goal_event text not null,
    goal_filter jsonb,
    conversion_window_days integer,
    control_group_pct double precision not null,
    start_date date not null,
    end_date date not null,
    source_file text not null,
    loaded_at timestamp not null
);
-- conversion_window_days became optional (the windows per channel apply without it): upgrade older tables
alter table {raw}.campaigns alter column conversion_window_days drop not null;

create table if not exists {ops}.quarantine_events (
    source_file text not null,
    source_line integer not null,    -- line of a file, or position in a {{"d": [...]}} payload or Parquet file
    record_type text,
    reason text not null,
    raw_text text,
    loaded_at timestamp not null
);
create index if not exists quarantine_events_source_file on {ops}.quarantine_events (source_file);

create table if not exists {ops}.load_manifest (
    source_file text not null,       -- relative to the landing zone
    sha256 text not null,
    size_bytes bigint not null,
    status text not null,            -- loaded
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
-- Several loaders can run against one server at once (DuckDB allows one writer; Postgres does not need
-- that pool): two that pick up the same file must not both commit it.
create unique index if not exists load_manifest_loaded_once on {ops}.load_manifest (source_file)
    where status = 'loaded';
"""

# Columns copied from each Arrow table, in COPY order, with their staging type.
_EVENT_COLUMNS = [
    ("event_key", "text"),
    ("event_id", "text"),
    ("event_name", "text"),
    ("event_ts", "timestamp"),
    ("identity", "text"),
    ("object_id", "text"),
    ("evt_data", "text"),  # cast to jsonb on the way into raw.events
    ("source_line", "integer"),
]
_PROFILE_COLUMNS = [
    ("profile_key", "text"),
    ("identity", "text"),
    ("object_id", "text"),
    ("updated_ts", "timestamp"),
    ("profile_data", "text"),
    ("source_line", "integer"),
]
_QUARANTINE_COLUMNS = ["source_file", "source_line", "record_type", "reason", "raw_text", "loaded_at"]
_CAMPAIGN_COLUMNS = {
    "campaign_id",
    "campaign_name",
    "channel",
    "segment",
    "goal_event",
    "goal_filter",
    "conversion_window_days",
    "control_group_pct",
    "start_date",
    "end_date",
}

_COPY_CHUNK = 1 << 20  # bytes per write to the server; psycopg2's default of 8 KiB costs round trips


def _utc_naive(value: datetime) -> datetime:
    """Columns are `timestamp` in UTC. Postgres silently drops the offset of an aware value cast to
    `timestamp` (it would keep 02:00 of 02:00+02:00), and Airflow intervals are aware: convert first."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _csv(table: pa.Table) -> io.BytesIO:
    """Arrow → CSV that Postgres' COPY reads back exactly.

    pyarrow quotes every string value and writes a null as an empty unquoted field; Postgres' CSV format
    reads `""` as the empty string and an empty unquoted field as NULL, so the two stay distinct. Quotes are
    doubled, newlines sit inside quotes and backslashes mean nothing in CSV, so JSON text survives as is.
    """
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=True, quoting_style="needed"))
    buffer.seek(0)
    return buffer


def _without_nul(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Postgres text cannot hold U+0000. Quarantine text is a diagnostic copy of a bad record (and NUL bytes
    are exactly what bad records contain), so it gets U+FFFD instead of failing the whole file."""
    return pc.replace_substring(column, "\x00", "\ufffd")


class PostgresWarehouse:
    """Raw and operational tables in one Postgres database, written with COPY."""

    def __init__(self, dsn: str, schema: str = "rekindle") -> None:
        self.schema = schema
        self.raw_schema = f"{schema}_raw"
        self._raw = sql.Identifier(self.raw_schema)
        self._ops = sql.Identifier(schema)
        # The DSN may carry a password: keep it out of logs and reprs.
        params = psycopg2.extensions.parse_dsn(dsn)
        self._where = f"{params.get('host', 'local socket')}:{params.get('port', 5432)}/{params.get('dbname', '?')}"
        self.conn = psycopg2.connect(dsn)
        self._create_tables()
        log.info("Postgres warehouse %s, schemas %s and %s", self._where, self.schema, self.raw_schema)

    @classmethod
    def from_env(cls) -> PostgresWarehouse:
        """Connect with the REKINDLE_PG_* variables, with the defaults of dbt_project/profiles.yml."""
        from loaders.settings import postgres_params, postgres_schema

        return cls(psycopg2.extensions.make_dsn(**postgres_params()), schema=postgres_schema())

    def __repr__(self) -> str:
        return f"PostgresWarehouse({self._where}, schema={self.schema!r})"

    @contextmanager
    def _transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """One transaction: commit if the block finishes, roll back on any exception (even KeyboardInterrupt),
        so the connection is clean for the next file either way."""
        try:
            with self.conn.cursor() as cursor:
                yield cursor
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def _q(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(raw=self._raw, ops=self._ops)

    def _create_tables(self) -> None:
        with self._transaction() as cursor:
            # Concurrent `create ... if not exists` of the same objects can still collide in the catalog
            # (two workers starting at once): serialise the DDL per schema.
            lock = int.from_bytes(
                hashlib.sha256(f"rekindle-ddl:{self.schema}".encode()).digest()[:8], "big", signed=True
            )
            cursor.execute("select pg_advisory_xact_lock(%s)", [lock])
            cursor.execute(self._q(POSTGRES_DDL))

    def _copy(self, cursor, table: sql.Composable, columns: list[str], rows: pa.Table) -> None:
        statement = sql.SQL("copy {} ({}) from stdin with (format csv, header true)").format(
            table, sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        cursor.copy_expert(statement, _csv(rows.select(columns)), size=_COPY_CHUNK)

    def _stage(self, cursor, name: str, columns: list[tuple[str, str]], rows: pa.Table, schema: pa.Schema) -> None:
        """COPY an Arrow table into a temporary table that disappears with the transaction. Temporary tables
        are not WAL-logged, and the unique-index checks then run in one set-based insert."""
        names = [column for column, _ in columns]
        cursor.execute(
            sql.SQL("create temporary table {} ({}) on commit drop").format(
                sql.Identifier(name),
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns),
            )
        )
        # Cast to the contract's types, so the CSV text is what the staging column expects.
        self._copy(
            cursor, sql.Identifier(name), names, rows.select(names).cast(pa.schema(schema.field(n) for n in names))
        )

    def loaded_files(self) -> dict[str, str]:
        with self._transaction() as cursor:
            cursor.execute(self._q("select source_file, sha256 from {ops}.load_manifest where status = 'loaded'"))
            return dict(cursor.fetchall())

    def commit(self, batch: Batch, entry: ManifestEntry, lookback: timedelta = DEFAULT_LOOKBACK) -> CommitResult:
        """Load one parsed file. `lookback` is unused: the unique indexes deduplicate across all history."""
        loaded_at = _utc_naive(entry.loaded_at)
        interval_start = _utc_naive(entry.interval_start)
        try:
            with self._transaction() as cursor:
                self._stage(cursor, "stage_events", _EVENT_COLUMNS, batch.events, EVENT_SCHEMA)
                # Inserting in key order makes concurrent loaders take index locks in the same order (no
                # deadlock between two files that share keys) and keeps the b-tree inserts local.
                # RETURNING counts exactly the rows this file added, so re-deliveries are not late events.
                cursor.execute(
                    self._q(
                        "with added as ("
                        " insert into {raw}.events"
                        " select event_key, event_id, event_name, event_ts, identity, object_id, evt_data::jsonb,"
                        " %(file)s, source_line, %(loaded_at)s from stage_events order by event_key"
                        " on conflict (event_key) do nothing returning event_ts)"
                        " select count(*), count(*) filter (where event_ts < %(start)s) from added"
                    ),
                    {"file": entry.source_file, "loaded_at": loaded_at, "start": interval_start},
                )
                events, late = cursor.fetchone()

                self._stage(cursor, "stage_profiles", _PROFILE_COLUMNS, batch.profiles, PROFILE_SCHEMA)
                cursor.execute(
                    self._q(
                        "insert into {raw}.profiles"
                        " select profile_key, identity, object_id, updated_ts, profile_data::jsonb,"
                        " %(file)s, source_line, %(loaded_at)s from stage_profiles order by profile_key"
                        " on conflict (profile_key) do nothing"
                    ),
                    {"file": entry.source_file, "loaded_at": loaded_at},
                )
                profiles = cursor.rowcount

                self._copy_quarantine(cursor, entry.source_file, batch.quarantine, loaded_at)

                result = CommitResult(
                    loaded_events=events,
                    loaded_profiles=profiles,
                    duplicates=batch.duplicates_in_batch
                    + (batch.events.num_rows - events)
                    + (batch.profiles.num_rows - profiles),
                    quarantined=batch.quarantine.num_rows,
                    late_events=late,
                )
                check_reconciles(batch, result)  # raises → the transaction rolls back
                cursor.execute(
                    self._q(
                        "insert into {ops}.load_manifest (source_file, sha256, size_bytes, status, input_records,"
                        " loaded_events, loaded_profiles, duplicates, quarantined, late_events, interval_start,"
                        " interval_end, loaded_at) values (%s, %s, %s, 'loaded', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    ),
                    [entry.source_file, entry.sha256, entry.size_bytes, batch.input_records, result.loaded_events,
                     result.loaded_profiles, result.duplicates, result.quarantined, result.late_events,
                     interval_start, _utc_naive(entry.interval_end), loaded_at],
                )  # fmt: skip
        except psycopg2.Error as exc:
            # Postgres names the statement and the COPY line; say which landing file it was.
            exc.add_note(f"while committing {entry.source_file} to {self._where}, schema {self.schema}")
            raise
        return result

    def _copy_quarantine(self, cursor, source_file: str, quarantine: pa.Table, loaded_at: datetime) -> None:
        if quarantine.num_rows == 0:
            return
        n = quarantine.num_rows
        rows = quarantine.select([f.name for f in QUARANTINE_SCHEMA]).cast(QUARANTINE_SCHEMA)
        rows = pa.table(
            {
                "source_file": pa.array([source_file] * n, pa.string()),
                "source_line": rows["source_line"],
                "record_type": rows["record_type"],
                "reason": _without_nul(rows["reason"]),
                "raw_text": _without_nul(rows["raw_text"]),
                "loaded_at": pa.array([loaded_at] * n, pa.timestamp("us")),
            }
        )
        # No conflicts to resolve here, so straight into the table; its NOT NULLs still apply.
        self._copy(cursor, self._q("{ops}.quarantine_events"), _QUARANTINE_COLUMNS, rows)

    def replace_campaigns(self, source_file: str, rows: list[dict], quarantine: pa.Table, loaded_at: datetime) -> None:
        loaded_at = _utc_naive(loaded_at)
        unknown = {column for row in rows for column in row} - _CAMPAIGN_COLUMNS
        if unknown:
            raise ValueError(f"{source_file}: campaign rows have unknown columns {sorted(unknown)}")
        with self._transaction() as cursor:
            cursor.execute(self._q("delete from {raw}.campaigns where source_file = %s"), [source_file])
            cursor.execute(self._q("delete from {ops}.quarantine_events where source_file = %s"), [source_file])
            if rows:
                # A campaigns file holds a handful of entries: one multi-row INSERT, not a hot path for COPY.
                columns = list(rows[0])
                values = sql.SQL(", ").join(
                    sql.SQL("%s::jsonb" if column == "goal_filter" else "%s") for column in columns
                )
                template = sql.SQL("({}, %s, %s)").format(values).as_string(cursor)
                psycopg2.extras.execute_values(
                    cursor,
                    sql.SQL("insert into {}.campaigns ({}, source_file, loaded_at) values %s").format(
                        self._raw, sql.SQL(", ").join(map(sql.Identifier, columns))
                    ),
                    [[row[column] for column in columns] + [source_file, loaded_at] for row in rows],
                    template=template,
                )
            self._copy_quarantine(cursor, source_file, quarantine, loaded_at)

    def close(self) -> None:
        self.conn.close()
