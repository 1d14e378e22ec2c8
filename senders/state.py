"""The senders' tables, in the warehouse the marts live in (DuckDB schema `main`, Postgres the profile's
schema), and the reads the sync needs from the marts.

* `sync_state(audience, user_id, fingerprint, synced_at, run_id, hashes, stale_hashes)`: what the destination
  holds for an audience (mirror, upsert) or who has been sent (append). Written only after the destination
  accepted. For destinations that match on hashed identifiers (Meta, Google) `hashes` holds the SHA-256 of each
  identifier sent (`email=<sha256>;phone=<sha256>`, never the address itself), so a leaver is removed by what
  the destination holds even after the profile changed; `stale_hashes` holds hashes a member's change replaced
  that the destination still holds until their removal is accepted.
* `sync_replace(audience, session_id, run_id, started_at, batches, sent_last, requested, finished_at)`: a replace
  of a whole audience (Meta `usersreplace` session, Google ingest then remove-all as of `started_at`), written
  before its first request; `requested` is written before each request and `batches` with each recorded
  answer, so a rerun after a crash resumes the same session (same id, right batch number) with the same T.
* `sync_skips(audience, user_id, reason, run_id)`: each member skipped now and why; a skip is written to
  `sync_log` only when it starts or its reason changes (see DECISIONS.md, "sync_log retention").
* `sync_pending(audience, user_id, action, fingerprint, delivery_id, run_id, created_at)`: members of a
  request in flight, written before the request and cleared with the answer, so a crash in between leaves a
  trace the next run reconciles (see senders/sync.py). One row a member of a batch in flight (the sync clears a
  member's earlier row before writing a new one); no primary key: it holds at most a batch or two, and an index
  would cost every member of every batch its upkeep.
* `sync_log(audience, destination, campaign_id, user_id, action, status, reason, run_id, logged_at)`: one row
  per member and decision (add, remove, send, skip) with its outcome; ids only, no PII.
* `sync_runs`: one row per audience per run: considered, added, removed, skipped by reason, failed,
  suppressed, retried, duration, outcome.
* `sync_suppressions(channel, user_id, reason, destination, audience, suppressed_at)`: contacts that must not
  be sent on a channel again (Twilio 21610 STOP, 21211 invalid number).

DuckDB takes one writer: the sync keeps one connection and writes in short transactions (one per batch).
Writes are bulk (Arrow into DuckDB, execute_values into Postgres), never row by row.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loaders.settings import Settings, postgres_params, postgres_schema

TABLES = {
    "sync_state": (
        "audience varchar not null, user_id varchar not null, fingerprint varchar not null,"
        " synced_at timestamp not null, run_id varchar not null, hashes varchar, stale_hashes varchar,"
        " primary key (audience, user_id)"
    ),
    "sync_pending": (
        "audience varchar not null, user_id varchar not null, action varchar not null,"
        " fingerprint varchar, delivery_id varchar not null, run_id varchar not null, created_at timestamp not null"
    ),
    "sync_log": (
        "audience varchar not null, destination varchar not null, campaign_id varchar, user_id varchar not null,"
        " action varchar not null, status varchar not null, reason varchar, run_id varchar not null,"
        " logged_at timestamp not null"
    ),
    "sync_runs": (
        "run_id varchar not null, audience varchar not null, destination varchar not null, mode varchar not null,"
        " dry_run boolean not null, outcome varchar not null, considered integer not null,"
        " eligible integer not null, added integer not null, removed integer not null, sent integer not null,"
        " skipped integer not null, skipped_by_reason varchar not null, failed integer not null,"
        " suppressed integer not null, retried integer not null, error varchar,"
        " started_at timestamp not null, duration_seconds double precision not null"
    ),
    "sync_suppressions": (
        "channel varchar not null, user_id varchar not null, reason varchar not null, destination varchar not null,"
        " audience varchar not null, suppressed_at timestamp not null, primary key (channel, user_id)"
    ),
    "sync_replace": (
        "audience varchar not null, session_id bigint not null, run_id varchar not null,"
        " started_at timestamp not null, batches integer not null, sent_last boolean not null,"
        " requested integer not null, finished_at timestamp,"
        " primary key (audience, session_id)"
    ),
    "sync_skips": (
        "audience varchar not null, user_id varchar not null, reason varchar not null, run_id varchar not null,"
        " primary key (audience, user_id)"
    ),
}
# How much write-ahead log DuckDB lets a sync accumulate before it checkpoints (see Warehouse.__init__).
CHECKPOINT_THRESHOLD = "1GB"
# Columns added after a table was first shipped: `create table if not exists` leaves an older table as it was.
ADDED_COLUMNS = {"sync_state": {"hashes": "varchar", "stale_hashes": "varchar"}}
COLUMNS = {
    "sync_state": ["audience", "user_id", "fingerprint", "synced_at", "run_id", "hashes", "stale_hashes"],
    "sync_pending": ["audience", "user_id", "action", "fingerprint", "delivery_id", "run_id", "created_at"],
    "sync_log": [
        "audience",
        "destination",
        "campaign_id",
        "user_id",
        "action",
        "status",
        "reason",
        "run_id",
        "logged_at",
    ],
    "sync_runs": [
        "run_id",
        "audience",
        "destination",
        "mode",
        "dry_run",
        "outcome",
        "considered",
        "eligible",
        "added",
        "removed",
        "sent",
        "skipped",
        "skipped_by_reason",
        "failed",
        "suppressed",
        "retried",
        "error",
        "started_at",
        "duration_seconds",
    ],
    "sync_suppressions": ["channel", "user_id", "reason", "destination", "audience", "suppressed_at"],
    "sync_replace": [
        "audience",
        "session_id",
        "run_id",
        "started_at",
        "batches",
        "sent_last",
        "requested",
        "finished_at",
    ],
    "sync_skips": ["audience", "user_id", "reason", "run_id"],
}


def _duckdb_list(values: list[Any]) -> tuple[str, Any]:
    """A list of values for DuckDB to unnest, and the parameter to bind. Text goes as one string split by
    DuckDB: binding a list converts each element (half of an insert's cost for 10,000 ids and hashes)."""
    try:
        joined = "\x1e".join(values)  # a TypeError if any value is not text (None, a number)
    except TypeError:
        return "unnest(?)", values
    if values and joined.count("\x1e") == len(values) - 1:  # no value holds the separator
        return "unnest(string_split(?, chr(30)))", joined
    return "unnest(?)", values


@dataclass
class Write:
    """One step of a transaction: delete an audience's rows for some user ids (`delete_audience` + `ids`), null
    one column of them (`set_null` + `delete_audience` + `ids`), insert rows (`rows`, or `columns`: column ->
    a list with a value per row, or one value every row shares; a batch's ledger rows differ in a few columns
    only, and building a tuple per member cost more than the insert), or run a statement."""

    table: str
    rows: list[tuple] = field(default_factory=list)
    columns: dict[str, Any] | None = None
    delete_audience: str | None = None
    ids: list[str] | None = None
    set_null: str | None = None
    sql: str | None = None
    params: Sequence[Any] = ()


class Warehouse:
    """A connection to the settings' warehouse with `?` placeholders on both engines."""

    def __init__(self, settings: Settings, *, read_only: bool = False) -> None:
        self.target = settings.target
        # One statement or transaction at a time on the connection, whichever thread asks: the sync reads the next
        # batch's rows while a worker thread waits for the destination's answer to the batch before (neither a
        # DuckDB nor a psycopg2 connection takes two threads at once).
        self.lock = threading.RLock()
        if self.target == "duckdb":
            import duckdb

            self.schema = "main"
            self.con = duckdb.connect(str(settings.warehouse), read_only=read_only)
            if not read_only:
                # Commits still reach the write-ahead log (durable, replayed after a crash); what this defers is
                # DuckDB's checkpoint, which rewrites sync_state's primary-key index whenever the log passes 16 MB:
                # a first sync of 10^6 members checkpointed dozens of times, each longer than the last (200,000
                # members' batches: 4.6 s of 6 s of their writes, measured). Closing the connection checkpoints.
                self.con.execute(f"set checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        elif self.target == "postgres":
            import psycopg2

            self.schema = postgres_schema()
            self.con = psycopg2.connect(**postgres_params())
        else:
            raise ValueError(f"REKINDLE_TARGET={settings.target!r}: senders run on 'duckdb' or 'postgres'")

    def close(self) -> None:
        if self.target == "duckdb":
            # the database instance may outlive this connection; a read-only one has nothing to reset
            with contextlib.suppress(Exception):
                self.con.execute("reset checkpoint_threshold")
        self.con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    @property
    def work(self) -> str:
        """The connection's temporary `sync_work` (senders/sync.py), schema-qualified: dropping it can never touch
        a warehouse table of that name."""
        return "temp.main.sync_work" if self.target == "duckdb" else "pg_temp.sync_work"

    def among(self, ids: list[str]) -> tuple[str, Any]:
        """`user_id <among>` for a list of ids, and the one parameter to bind."""
        if self.target == "duckdb":
            expression, param = _duckdb_list(ids)
            return f"in (select {expression})", param
        return "= any(?)", list(ids)

    def _sql(self, sql: str) -> str:
        return sql if self.target == "duckdb" else sql.replace("%", "%%").replace("?", "%s")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            return self._query(sql, params)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        if self.target == "duckdb":
            return self.con.execute(sql, list(params)).fetchall()
        try:
            with self.con.cursor() as cursor:
                cursor.execute(self._sql(sql), list(params))
                rows = cursor.fetchall() if cursor.description else []
        except BaseException:
            self.con.rollback()  # the connection goes on (a failed statement aborts its transaction)
            raise
        self.con.commit()
        return rows

    def relation_exists(self, name: str) -> bool:
        return bool(
            self.query(
                "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                (self.schema, name),
            )[0][0]
        )

    def columns(self, name: str) -> set[str]:
        rows = self.query(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            (self.schema, name),
        )
        return {r[0] for r in rows}

    def ensure_tables(self) -> None:
        if self.target == "postgres":
            self.query(f'create schema if not exists "{self.schema}"')
        for name, ddl in TABLES.items():
            self.query(f"create table if not exists {self.table(name)} ({ddl})")
        for name, added in ADDED_COLUMNS.items():
            for column, kind in added.items():
                self.query(f"alter table {self.table(name)} add column if not exists {column} {kind}")

    def transaction(self, writes: Iterable[Write]) -> None:
        """Apply the writes in one transaction: a crash leaves all or none of them."""
        writes = list(writes)
        with self.lock:
            if self.target == "duckdb":
                self._duckdb_transaction(writes)
            else:
                self._postgres_transaction(writes)

    def _duckdb_transaction(self, writes: list[Write]) -> None:
        # Lists bound as parameters and unnested: one statement per write, no row-by-row inserts, and no
        # pandas/pyarrow import (a DuckDB Arrow scan pulls in pandas, seconds of start-up in an Airflow task).
        con = self.con
        con.execute("begin")
        try:
            for write in writes:
                if write.sql is not None:
                    con.execute(write.sql, list(write.params))
                elif write.ids is not None:
                    if write.ids:
                        change = (
                            f"update {self.table(write.table)} set {write.set_null} = null"
                            if write.set_null
                            else f"delete from {self.table(write.table)}"
                        )
                        expression, param = _duckdb_list(list(write.ids))
                        con.execute(
                            f"{change} where audience = ? and user_id in (select {expression})",
                            [write.delete_audience, param],
                        )
                elif write.columns is not None:
                    self._duckdb_insert_columns(write)
                elif write.rows:
                    columns = COLUMNS[write.table]
                    selected, params = [], []
                    for i, column in enumerate(columns):
                        values = [row[i] for row in write.rows]
                        # A value shared by every row (the audience, the run, the time, the status) is bound
                        # once: converting Python values is most of an insert's cost, and a log row varies in
                        # its user id only. One column stays a list so the select has a row per row.
                        if len(set(values)) == 1 and selected:
                            selected.append(f"? as {column}")
                            params.append(values[0])
                        else:
                            expression, param = _duckdb_list(values)
                            selected.append(f"{expression} as {column}")
                            params.append(param)
                    target = f"{self.table(write.table)} ({', '.join(columns)})"
                    con.execute(f"insert into {target} select * from (select {', '.join(selected)})", params)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise

    def _duckdb_insert_columns(self, write: Write) -> None:
        values = {name: write.columns.get(name) for name in COLUMNS[write.table]}
        lists = [v for v in values.values() if isinstance(v, list)]
        if not lists or not lists[0]:
            return
        if any(len(v) != len(lists[0]) for v in lists):  # unnest would pad the short ones with nulls
            raise ValueError(f"{write.table}: columns of different lengths")
        selected, params = [], []
        for name, value in values.items():
            # a list is unnested (a row per element, all lists side by side), a shared value bound once
            expression, param = _duckdb_list(value) if isinstance(value, list) else ("?", value)
            selected.append(f"{expression} as {name}")
            params.append(param)
        target = f"{self.table(write.table)} ({', '.join(values)})"
        self.con.execute(f"insert into {target} select * from (select {', '.join(selected)})", params)

    @staticmethod
    def column_rows(write: Write) -> list[tuple]:
        """A columnar write's rows, as tuples in COLUMNS order."""
        values = [write.columns.get(name) for name in COLUMNS[write.table]]
        count = max((len(v) for v in values if isinstance(v, list)), default=0)
        return list(zip(*(v if isinstance(v, list) else [v] * count for v in values), strict=True))

    def _postgres_transaction(self, writes: list[Write]) -> None:
        from psycopg2.extras import execute_values

        try:
            with self.con.cursor() as cursor:
                for write in writes:
                    if write.sql is not None:
                        cursor.execute(self._sql(write.sql), list(write.params))
                    elif write.ids is not None:
                        if write.ids:
                            change = (
                                f"update {self.table(write.table)} set {write.set_null} = null"
                                if write.set_null
                                else f"delete from {self.table(write.table)}"
                            )
                            cursor.execute(
                                f"{change} where audience = %s and user_id = any(%s)",
                                [write.delete_audience, list(write.ids)],
                            )
                    elif write.rows or write.columns is not None:
                        rows = write.rows if write.columns is None else self.column_rows(write)
                        if rows:
                            columns = COLUMNS[write.table]
                            execute_values(
                                cursor,
                                f"insert into {self.table(write.table)} ({', '.join(columns)}) values %s",
                                rows,
                                page_size=5000,
                            )
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
