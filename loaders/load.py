"""Landing zone → raw tables, one file per transaction.

Promises (DESIGN.md): every input record is loaded, recognised as a duplicate, or quarantined with a
reason, and the three counts add up to the file's records (`load_manifest`). A file is loaded once:
its rows and its manifest row commit together, so a crash leaves either all of a file or none of it,
and a rerun skips what is already there. A file whose content changed after it was loaded is
reported, never loaded a second time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from loaders import campaigns, landing, records
from loaders.warehouse import connect

log = logging.getLogger(__name__)

# How far a record's ts may run ahead of the interval end (client clock skew).
DEFAULT_FUTURE_TOLERANCE = timedelta(days=1)


@dataclass
class FileResult:
    source_file: str
    status: str  # loaded | skipped | changed_after_load
    input_records: int = 0
    loaded_events: int = 0
    loaded_profiles: int = 0
    duplicates: int = 0
    quarantined: int = 0


@dataclass
class LoadResult:
    files: list[FileResult] = field(default_factory=list)
    campaigns: int = 0

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def changed_files(self) -> list[str]:
        return [f.source_file for f in self.files if f.status == "changed_after_load"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _previous_load(con: duckdb.DuckDBPyConnection, source_file: str) -> str | None:
    row = con.execute(
        "select sha256 from main.load_manifest where source_file = ? and status = 'loaded'", [source_file]
    ).fetchone()
    return row[0] if row else None


def _arrow(rows: list, columns: list[str], types: list[pa.DataType]) -> pa.Table:
    return pa.table(
        {name: pa.array([getattr(r, name) for r in rows], type=typ) for name, typ in zip(columns, types, strict=True)}
    )


EVENT_COLUMNS = ["event_key", "event_id", "event_name", "event_ts", "identity", "object_id", "evt_data"]
EVENT_TYPES = [pa.string(), pa.string(), pa.string(), pa.timestamp("us"), pa.string(), pa.string(), pa.string()]
PROFILE_COLUMNS = ["profile_key", "identity", "object_id", "updated_ts", "profile_data"]
PROFILE_TYPES = [pa.string(), pa.string(), pa.string(), pa.timestamp("us"), pa.string()]


def load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_file: str,
    interval: tuple[datetime, datetime],
    loaded_at: datetime,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> FileResult:
    """Load one record file in one transaction; see the module docstring for the promises."""
    sha = _sha256(path)
    previous = _previous_load(con, source_file)
    if previous == sha:
        return FileResult(source_file, "skipped")
    if previous is not None:
        log.error("%s changed after it was loaded (sha256 %s → %s); not loading it again", source_file, previous, sha)
        return FileResult(source_file, "changed_after_load")

    latest_allowed = records.future_limit(interval[1], future_tolerance)
    events: dict[str, tuple[int, records.EventRow]] = {}
    profiles: dict[str, tuple[int, records.ProfileRow]] = {}
    quarantine: list[tuple[int, str | None, str, str]] = []
    result = FileResult(source_file, "loaded")
    for raw in landing.read_records(path):
        result.input_records += 1
        if raw.error:
            quarantine.append((raw.line, None, raw.error, raw.text))
            continue
        row = records.validate(raw.value, latest_allowed)
        if isinstance(row, records.Rejection):
            quarantine.append((raw.line, row.record_type, row.reason, raw.text))
        elif isinstance(row, records.EventRow):
            if row.event_key in events:
                result.duplicates += 1
            else:
                events[row.event_key] = (raw.line, row)
        elif row.profile_key in profiles:
            result.duplicates += 1
        else:
            profiles[row.profile_key] = (raw.line, row)

    con.execute("begin transaction")
    try:
        result.loaded_events = _insert_new(
            con, "raw.events", "event_key", events, EVENT_COLUMNS, EVENT_TYPES, source_file, loaded_at
        )
        result.loaded_profiles = _insert_new(
            con, "raw.profiles", "profile_key", profiles, PROFILE_COLUMNS, PROFILE_TYPES, source_file, loaded_at
        )
        # Records already in the warehouse from an earlier file are re-deliveries: duplicates.
        result.duplicates += len(events) - result.loaded_events + len(profiles) - result.loaded_profiles
        result.quarantined = len(quarantine)
        if quarantine:
            table = pa.table(
                {
                    "source_line": pa.array([q[0] for q in quarantine], pa.int32()),
                    "record_type": pa.array([q[1] for q in quarantine], pa.string()),
                    "reason": pa.array([q[2] for q in quarantine], pa.string()),
                    "raw_text": pa.array([q[3] for q in quarantine], pa.string()),
                }
            )
            con.register("quarantine_batch", table)
            con.execute(
                "insert into main.quarantine_events select ?, source_line, record_type, reason, raw_text, ?"
                " from quarantine_batch",
                [source_file, loaded_at],
            ).fetchall()
            con.unregister("quarantine_batch")
        accounted = result.loaded_events + result.loaded_profiles + result.duplicates + result.quarantined
        if accounted != result.input_records:
            raise RuntimeError(
                f"{source_file}: reconciliation failed: {result.input_records} input records but "
                f"{result.loaded_events + result.loaded_profiles} loaded + {result.duplicates} duplicates + "
                f"{result.quarantined} quarantined = {accounted}"
            )
        con.execute(
            "insert into main.load_manifest values (?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source_file,
                sha,
                path.stat().st_size,
                result.input_records,
                result.loaded_events,
                result.loaded_profiles,
                result.duplicates,
                result.quarantined,
                interval[0],
                interval[1],
                loaded_at,
            ],
        ).fetchall()
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return result


def _insert_new(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key: str,
    rows: dict[str, tuple[int, object]],
    columns: list[str],
    types: list[pa.DataType],
    source_file: str,
    loaded_at: datetime,
) -> int:
    """Bulk-insert rows whose key is not in the table yet; returns how many went in."""
    if not rows:
        return 0
    batch = _arrow([r for _, r in rows.values()], columns, types)
    batch = batch.append_column("source_line", pa.array([line for line, _ in rows.values()], pa.int32()))
    con.register("load_batch", batch)
    inserted = con.execute(
        f"insert into {table} select {', '.join(columns)}, ?, source_line, ? from load_batch b"
        f" where not exists (select 1 from {table} t where t.{key} = b.{key})",
        [source_file, loaded_at],
    ).fetchone()[0]
    con.unregister("load_batch")
    return inserted


def load_landing(
    landing_zone: str,
    warehouse: Path,
    interval: tuple[datetime, datetime],
    loaded_at: datetime | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> LoadResult:
    """Load every new file of the landing zone; campaign YAML replaces its earlier version."""
    root = landing.local_root(landing_zone)
    if not root.is_dir():
        raise FileNotFoundError(f"landing zone {root} does not exist (set REKINDLE_LANDING)")
    loaded_at = loaded_at or datetime.now()
    result = LoadResult()
    con = connect(warehouse)
    try:
        for path in landing.list_record_files(root):
            source_file = path.relative_to(root).as_posix()
            file_result = load_file(con, path, source_file, interval, loaded_at, future_tolerance)
            log.info("%s: %s", source_file, file_result)
            result.files.append(file_result)
        for path in landing.list_campaign_files(root):
            result.campaigns += campaigns.load_campaign_file(con, path, path.relative_to(root).as_posix(), loaded_at)
    finally:
        con.close()
    return result
