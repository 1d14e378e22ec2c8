"""PostgresWarehouse against a real Postgres server: counts, exact cross-file dedup, round-trips, atomicity,
bulk speed, and agreement with the DuckDB reference writer.

Each test session creates a throwaway database (`rekindle_test_<hex>`) and drops it at the end; each test
gets its own schema pair in it. Connection settings come from the same REKINDLE_PG_* variables as the
project (default 127.0.0.1:5432, user postgres). Nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pytest

from loaders.batch import EVENT_SCHEMA, PROFILE_SCHEMA, QUARANTINE_SCHEMA, Batch
from loaders.postgres import PostgresWarehouse
from loaders.warehouse import CommitResult, DuckDBWarehouse, ManifestEntry
from tests.conftest import pg_params, throwaway_pg_database

INTERVAL_START = datetime(2026, 10, 31)
INTERVAL_END = datetime(2026, 11, 1)
LOADED_AT = datetime(2026, 11, 1, 0, 5)


# ---------------------------------------------------------------------------------------------- helpers


def ev(key: str, ts: datetime, line: int, **fields) -> dict:
    """An accepted event row (EVENT_SCHEMA); keyword arguments override the defaults."""
    row = {"event_key": key, "event_id": None, "event_name": "App Launched", "event_ts": ts, "identity": "u1"}
    return row | {"object_id": None, "evt_data": "{}", "source_line": line} | fields


def prof(key: str, ts: datetime, line: int, **fields) -> dict:
    """A profile update row (PROFILE_SCHEMA)."""
    row = {"profile_key": key, "identity": "u1", "object_id": None, "updated_ts": ts, "profile_data": "{}"}
    return row | {"source_line": line} | fields


def bad(line: int, reason: str | None = "invalid_json: truncated", raw: str | None = "{") -> dict:
    return {"source_line": line, "record_type": "event", "reason": reason, "raw_text": raw}


def make_batch(
    source_file: str,
    events: list[dict] = (),
    profiles: list[dict] = (),
    quarantine: list[dict] = (),
    duplicates_in_batch: int = 0,
) -> Batch:
    """A Batch as a reader would hand it over; input_records is whatever makes it reconcile."""
    return Batch(
        source_file=source_file,
        input_records=len(events) + len(profiles) + len(quarantine) + duplicates_in_batch,
        events=pa.Table.from_pylist(list(events), EVENT_SCHEMA),
        profiles=pa.Table.from_pylist(list(profiles), PROFILE_SCHEMA),
        quarantine=pa.Table.from_pylist(list(quarantine), QUARANTINE_SCHEMA),
        duplicates_in_batch=duplicates_in_batch,
    )


def entry(source_file: str, **overrides) -> ManifestEntry:
    fields = {
        "source_file": source_file,
        "sha256": f"sha-of-{source_file}",
        "size_bytes": 100,
        "interval_start": INTERVAL_START,
        "interval_end": INTERVAL_END,
        "loaded_at": LOADED_AT,
    }
    return ManifestEntry(**(fields | overrides))


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with throwaway_pg_database("rekindle_test") as name:
        yield name


@pytest.fixture
def pg_dsn(pg_database: str) -> str:
    return psycopg2.extensions.make_dsn(**pg_params(pg_database))


@pytest.fixture
def warehouse(pg_dsn: str) -> Iterator[PostgresWarehouse]:
    wh = PostgresWarehouse(pg_dsn, schema=f"t_{secrets.token_hex(4)}")
    yield wh
    wh.close()


@pytest.fixture
def peek(pg_dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A second connection: what it sees is what was committed, not what the writer's transaction holds."""
    conn = psycopg2.connect(pg_dsn)
    conn.autocommit = True
    yield conn
    conn.close()


def fetch(conn: psycopg2.extensions.connection, query: str, params: list | None = None) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def count(conn, table: str, where: str = "true", params: list | None = None) -> int:
    return fetch(conn, f"select count(*) from {table} where {where}", params)[0][0]


# ---------------------------------------------------------------------------------------------- counts


def test_commit_loads_rows_and_manifest(warehouse: PostgresWarehouse, peek) -> None:
    raw, ops = warehouse.raw_schema, warehouse.schema
    batch = make_batch(
        "events/2026-10-31.jsonl",
        events=[
            ev("e1", datetime(2026, 10, 31, 9), 1),
            ev("e2", datetime(2026, 10, 30, 23, 59), 2),  # late: before the interval
            ev("e3", datetime(2026, 10, 31, 12), 4),
        ],
        profiles=[prof("p1", datetime(2026, 10, 31, 8), 5), prof("p2", datetime(2026, 10, 31, 8), 6)],
        quarantine=[bad(3)],
        duplicates_in_batch=1,
    )
    assert "events/2026-10-31.jsonl" not in warehouse.loaded_files()

    result = warehouse.commit(batch, entry("events/2026-10-31.jsonl"))

    assert result == CommitResult(loaded_events=3, loaded_profiles=2, duplicates=1, quarantined=1, late_events=1)
    assert count(peek, f"{raw}.events") == 3
    assert count(peek, f"{raw}.profiles") == 2
    assert count(peek, f"{ops}.quarantine_events") == 1
    assert fetch(peek, f"select event_key, source_file, source_line, loaded_at from {raw}.events order by 1") == [
        ("e1", "events/2026-10-31.jsonl", 1, LOADED_AT),
        ("e2", "events/2026-10-31.jsonl", 2, LOADED_AT),
        ("e3", "events/2026-10-31.jsonl", 4, LOADED_AT),
    ]
    assert fetch(peek, f"select * from {ops}.load_manifest") == [
        (
            *("events/2026-10-31.jsonl", "sha-of-events/2026-10-31.jsonl", 100, "loaded"),
            *(7, 3, 2, 1, 1, 1),  # input, events, profiles, duplicates, quarantined, late
            *(INTERVAL_START, INTERVAL_END, LOADED_AT),
        )
    ]
    assert warehouse.loaded_files()["events/2026-10-31.jsonl"] == "sha-of-events/2026-10-31.jsonl"


def test_redelivered_keys_are_duplicates_however_old(warehouse: PostgresWarehouse, peek) -> None:
    raw = warehouse.raw_schema
    first = make_batch(
        "events/a.jsonl",
        events=[ev("e1", datetime(2026, 1, 1), 1), ev("e2", datetime(2026, 10, 31, 1), 2)],
        profiles=[prof("p1", datetime(2026, 10, 31), 3)],
    )
    warehouse.commit(first, entry("events/a.jsonl"))
    # e1 comes back ten months later with other content; the unique index still knows it (DuckDB would
    # only look back `lookback`). e9 is new but late, and is the only late event of this file.
    second = make_batch(
        "events/b.jsonl",
        events=[
            ev("e1", datetime(2026, 10, 30), 1, identity="someone-else"),
            ev("e2", datetime(2026, 10, 31, 1), 2),
            ev("e9", datetime(2026, 10, 30), 3),
        ],
        profiles=[prof("p1", datetime(2026, 10, 31), 4), prof("p2", datetime(2026, 10, 31), 5)],
    )
    result = warehouse.commit(second, entry("events/b.jsonl"))

    assert result == CommitResult(loaded_events=1, loaded_profiles=1, duplicates=3, quarantined=0, late_events=1)
    assert fetch(peek, f"select event_key, source_file, identity from {raw}.events order by 1") == [
        ("e1", "events/a.jsonl", "u1"),
        ("e2", "events/a.jsonl", "u1"),
        ("e9", "events/b.jsonl", "u1"),
    ]
    assert fetch(peek, f"select profile_key, source_file from {raw}.profiles order by 1") == [
        ("p1", "events/a.jsonl"),
        ("p2", "events/b.jsonl"),
    ]
    # The whole file again under another name: everything is a duplicate, nothing is late.
    again = warehouse.commit(second, entry("events/b-copy.jsonl"))
    assert again == CommitResult(loaded_events=0, loaded_profiles=0, duplicates=5, quarantined=0, late_events=0)
    assert count(peek, f"{raw}.events") == 3


def test_empty_batch_commits_a_manifest_row(warehouse: PostgresWarehouse, peek) -> None:
    result = warehouse.commit(make_batch("events/empty.jsonl"), entry("events/empty.jsonl"))
    assert result == CommitResult(0, 0, 0, 0, 0)
    assert fetch(peek, f"select input_records, status from {warehouse.schema}.load_manifest") == [(0, "loaded")]


# --------------------------------------------------------------------------------------------- round trip

AWKWARD_TEXT = [
    None,
    "",
    '"',
    '""',
    "a,b",
    'say "hi"',
    "back\\slash \\N \\\\",  # \N is COPY's NULL marker in text format; in CSV it is just text
    "line\nbreak\r\nand\ttab",
    "é ü ß 中文 😀 \u200b",
    "  padded  ",
    "NULL",
]

AWKWARD_JSON = [
    None,  # SQL NULL
    "null",  # the JSON literal null: not the same thing
    '""',  # a JSON empty string
    "{}",
    json.dumps({"q": 'say "hi"', "b": "back\\slash", "nl": "a\nb", "u": "é😀"}, ensure_ascii=False),
    json.dumps({"q": 'say "hi"', "b": "back\\slash", "nl": "a\nb", "u": "é😀"}),  # \uXXXX escapes
    json.dumps({"nested": {"list": [1, 2.5, None, True, "x,y"], "empty": ""}, "Amount": 1e-7}),
    '{"b": 1, "a": 2}',  # jsonb orders keys; the value is the same
    json.dumps(["\\", "\\\\", '\\"', "\\n"]),
]


def test_text_and_json_round_trip(warehouse: PostgresWarehouse, peek) -> None:
    raw, ops = warehouse.raw_schema, warehouse.schema
    events = [
        ev(f"e{i}", datetime(2026, 10, 31, 1, 2, 3, 456789), i, identity=text, object_id=text, event_id=text)
        | {"evt_data": AWKWARD_JSON[i % len(AWKWARD_JSON)]}
        for i, text in enumerate(AWKWARD_TEXT)
    ]
    profiles = [
        prof(f"p{i}", datetime(2026, 10, 31), i, identity=AWKWARD_TEXT[i % len(AWKWARD_TEXT)], profile_data=data)
        for i, data in enumerate(AWKWARD_JSON)
    ]
    quarantine = [bad(i, reason=f"code: {text!r}", raw=text) for i, text in enumerate(AWKWARD_TEXT)]
    warehouse.commit(make_batch("f.jsonl", events, profiles, quarantine), entry("f.jsonl"))

    got = fetch(peek, f"select event_key, event_id, identity, object_id, event_ts, evt_data from {raw}.events")
    assert len(got) == len(events)
    by_key = {row[0]: row[1:] for row in got}
    for sent in events:
        event_id, identity, object_id, event_ts, evt_data = by_key[sent["event_key"]]
        assert (event_id, identity, object_id) == (sent["event_id"], sent["identity"], sent["object_id"])
        assert event_ts == sent["event_ts"]  # microseconds survive
        # psycopg2 parses jsonb; NULL stays None and the JSON literal null stays distinct from it below.
        assert evt_data == (None if sent["evt_data"] is None else json.loads(sent["evt_data"]))
    sql_nulls = sum(sent["evt_data"] is None for sent in events)
    json_nulls = sum(sent["evt_data"] == "null" for sent in events)
    assert sql_nulls and json_nulls  # both kinds are in the batch
    assert count(peek, f"{raw}.events", "evt_data is null") == sql_nulls
    assert count(peek, f"{raw}.events", "evt_data = 'null'::jsonb") == json_nulls

    got = dict(fetch(peek, f"select profile_key, profile_data::text from {raw}.profiles"))
    for sent in profiles:
        text = got[sent["profile_key"]]
        assert (None if text is None else json.loads(text)) == (
            None if sent["profile_data"] is None else json.loads(sent["profile_data"])
        )

    got = fetch(peek, f"select source_line, reason, raw_text from {ops}.quarantine_events order by 1")
    assert got == [(q["source_line"], q["reason"], q["raw_text"]) for q in quarantine]


def test_nul_in_quarantine_text_does_not_fail_the_file(warehouse: PostgresWarehouse, peek) -> None:
    """A bad record is exactly where a NUL byte turns up; Postgres text cannot hold it, so it becomes U+FFFD."""
    batch = make_batch("f.jsonl", quarantine=[bad(1, reason="invalid_utf8: \x00", raw='{"a":"\x00"}')])
    warehouse.commit(batch, entry("f.jsonl"))
    assert fetch(peek, f"select reason, raw_text from {warehouse.schema}.quarantine_events") == [
        ("invalid_utf8: \ufffd", '{"a":"\ufffd"}')
    ]


def test_quarantine_rows_land_with_file_and_line(warehouse: PostgresWarehouse, peek) -> None:
    batch = make_batch(
        "events/2026-10-31.json",
        events=[ev("e1", datetime(2026, 10, 31), 1)],
        quarantine=[
            bad(2, reason="invalid_ts: 'yesterday' is not a time", raw='{"ts":"yesterday"}'),
            {"source_line": 7, "record_type": None, "reason": "not_a_record: a string", "raw_text": '"x"'},
        ],
    )
    warehouse.commit(batch, entry("events/2026-10-31.json"))
    assert fetch(peek, f"select * from {warehouse.schema}.quarantine_events order by source_line") == [
        (
            "events/2026-10-31.json",
            2,
            "event",
            "invalid_ts: 'yesterday' is not a time",
            '{"ts":"yesterday"}',
            LOADED_AT,
        ),
        ("events/2026-10-31.json", 7, None, "not_a_record: a string", '"x"', LOADED_AT),
    ]


def test_aware_interval_times_are_stored_as_utc(warehouse: PostgresWarehouse, peek) -> None:
    """Airflow hands over aware datetimes; Postgres would silently drop their offset on a `timestamp`."""
    plus2 = timezone(timedelta(hours=2))
    batch = make_batch("f.jsonl", events=[ev("e1", datetime(2026, 10, 30, 23), 1), ev("e2", datetime(2026, 10, 31), 2)])
    result = warehouse.commit(
        batch,
        entry(
            "f.jsonl",
            interval_start=datetime(2026, 10, 31, 2, tzinfo=plus2),  # = 2026-10-31 00:00 UTC
            interval_end=datetime(2026, 11, 1, tzinfo=UTC),
            loaded_at=datetime(2026, 11, 1, 2, 5, tzinfo=plus2),
        ),
    )
    assert result.late_events == 1
    assert fetch(peek, f"select interval_start, interval_end, loaded_at from {warehouse.schema}.load_manifest") == [
        (INTERVAL_START, INTERVAL_END, LOADED_AT)
    ]


# --------------------------------------------------------------------------------------------- atomicity


def assert_nothing_committed(warehouse: PostgresWarehouse, peek, source_file: str) -> None:
    raw, ops = warehouse.raw_schema, warehouse.schema
    assert count(peek, f"{raw}.events") == 0
    assert count(peek, f"{raw}.profiles") == 0
    assert count(peek, f"{ops}.quarantine_events") == 0
    assert count(peek, f"{ops}.load_manifest") == 0
    assert source_file not in warehouse.loaded_files()


def test_failure_midway_leaves_nothing(warehouse: PostgresWarehouse, peek) -> None:
    """Events and profiles are already inserted when the quarantine COPY hits NOT NULL (reason)."""
    events = [ev("e1", datetime(2026, 10, 31), 1), ev("e2", datetime(2026, 10, 31), 2)]
    profiles = [prof("p1", datetime(2026, 10, 31), 3)]
    broken = make_batch("f.jsonl", events, profiles, quarantine=[bad(4, reason=None)])

    with pytest.raises(psycopg2.errors.NotNullViolation) as failure:
        warehouse.commit(broken, entry("f.jsonl"))
    assert any("f.jsonl" in note for note in failure.value.__notes__)
    assert_nothing_committed(warehouse, peek, "f.jsonl")

    # The connection is usable again, and the corrected file loads in full.
    fixed = make_batch("f.jsonl", events, profiles, quarantine=[bad(4)])
    assert warehouse.commit(fixed, entry("f.jsonl")) == CommitResult(2, 1, 0, 1, 0)
    assert count(peek, f"{warehouse.raw_schema}.events") == 2


def test_counts_that_do_not_reconcile_commit_nothing(warehouse: PostgresWarehouse, peek) -> None:
    batch = make_batch("f.jsonl", [ev("e1", datetime(2026, 10, 31), 1)], quarantine=[bad(2)])
    batch.input_records += 1  # a record that the reader lost: passes Batch's own check, not the warehouse's
    with pytest.raises(RuntimeError, match="reconciliation failed: 3 input records"):
        warehouse.commit(batch, entry("f.jsonl"))
    assert_nothing_committed(warehouse, peek, "f.jsonl")


def test_json_that_jsonb_cannot_hold_fails_the_file_loudly(warehouse: PostgresWarehouse, peek) -> None:
    """jsonb rejects the escape \\u0000 (DuckDB's json keeps it). Until readers quarantine such records,
    the file must fail as a whole, with an error that names it, rather than load in part."""
    events = [ev("e1", datetime(2026, 10, 31), 1), ev("e2", datetime(2026, 10, 31), 2, evt_data='{"a": "\\u0000"}')]
    with pytest.raises(psycopg2.errors.UntranslatableCharacter) as failure:
        warehouse.commit(make_batch("f.jsonl", events), entry("f.jsonl"))
    assert any("f.jsonl" in note for note in failure.value.__notes__)
    assert_nothing_committed(warehouse, peek, "f.jsonl")


def test_a_file_is_committed_once(warehouse: PostgresWarehouse, peek) -> None:
    """Two loaders that pick up the same file: the second commit fails instead of doubling the quarantine."""
    batch = make_batch("f.jsonl", [ev("e1", datetime(2026, 10, 31), 1)], quarantine=[bad(2)])
    warehouse.commit(batch, entry("f.jsonl"))
    with pytest.raises(psycopg2.errors.UniqueViolation):
        warehouse.commit(batch, entry("f.jsonl"))
    assert count(peek, f"{warehouse.schema}.quarantine_events") == 1
    assert count(peek, f"{warehouse.schema}.load_manifest") == 1


# ------------------------------------------------------------------------------------ setup and config


def test_tenants_on_one_server_do_not_clash(pg_dsn: str, peek) -> None:
    batch = make_batch("f.jsonl", [ev("e1", datetime(2026, 10, 31), 1)])
    first = PostgresWarehouse(pg_dsn, schema=f"acme_{secrets.token_hex(3)}")
    second = PostgresWarehouse(pg_dsn, schema=f"globex_{secrets.token_hex(3)}")
    again = PostgresWarehouse(pg_dsn, schema=first.schema)  # creating the tables twice is harmless
    try:
        assert first.commit(batch, entry("f.jsonl")).loaded_events == 1
        assert second.commit(batch, entry("f.jsonl")).loaded_events == 1  # same key, other tenant
        assert count(peek, f"{first.raw_schema}.events") == count(peek, f"{second.raw_schema}.events") == 1
        assert again.loaded_files()["f.jsonl"] == "sha-of-f.jsonl"
    finally:
        for wh in (first, second, again):
            wh.close()


def test_from_env_uses_the_variables_and_hides_the_password(pg_database: str, monkeypatch, caplog) -> None:
    params = pg_params(pg_database)
    schema = f"env_{secrets.token_hex(3)}"
    monkeypatch.setenv("REKINDLE_PG_HOST", params["host"])
    monkeypatch.setenv("REKINDLE_PG_PORT", params["port"])
    monkeypatch.setenv("REKINDLE_PG_USER", params["user"])
    monkeypatch.setenv("REKINDLE_PG_DATABASE", pg_database)
    monkeypatch.setenv("REKINDLE_PG_SCHEMA", schema)
    # The test server trusts local connections and ignores the password: ideal to see where it would leak.
    password = params.get("password", "not-a-real-secret-7f3a")
    monkeypatch.setenv("REKINDLE_PG_PASSWORD", password)
    caplog.set_level(logging.DEBUG)

    wh = PostgresWarehouse.from_env()
    try:
        assert (wh.schema, wh.raw_schema) == (schema, f"{schema}_raw")
        assert wh.conn.info.dbname == pg_database
        assert wh.commit(make_batch("f.jsonl"), entry("f.jsonl")).loaded_events == 0
        assert password not in repr(wh)
        assert password not in caplog.text
        assert pg_database in caplog.text  # it does log where it writes
    finally:
        wh.close()


def test_replace_campaigns_replaces_rows_and_quarantine(warehouse: PostgresWarehouse, peek) -> None:
    raw, ops = warehouse.raw_schema, warehouse.schema

    def campaign(campaign_id: str, goal_filter: str | None) -> dict:
        return {
            "campaign_id": campaign_id,
            "campaign_name": f"Win back {campaign_id}",
            "channel": "email",
            "segment": "lapsed",
            "goal_event": "Charged",
            "goal_filter": goal_filter,
            "conversion_window_days": 7,
            "control_group_pct": 0.1,
            "start_date": date(2026, 10, 1),
            "end_date": date(2026, 12, 31),
        }

    rejected = pa.Table.from_pylist(
        [{"source_line": 3, "record_type": "campaign", "reason": "invalid_campaign: no id", "raw_text": "{}"}],
        QUARANTINE_SCHEMA,
    )
    goal = json.dumps({"property": "Amount", "op": ">", "value": 10})
    warehouse.replace_campaigns("campaigns.yml", [campaign("c1", goal), campaign("c2", None)], rejected, LOADED_AT)
    warehouse.replace_campaigns("other.yml", [campaign("c9", None)], QUARANTINE_SCHEMA.empty_table(), LOADED_AT)
    assert fetch(peek, f"select campaign_id, goal_filter, start_date, source_file from {raw}.campaigns order by 1") == [
        ("c1", json.loads(goal), date(2026, 10, 1), "campaigns.yml"),
        ("c2", None, date(2026, 10, 1), "campaigns.yml"),
        ("c9", None, date(2026, 10, 1), "other.yml"),
    ]
    assert count(peek, f"{ops}.quarantine_events") == 1

    # The file was fixed: c2 is gone, c3 came, the rejected entry is no longer quarantined.
    warehouse.replace_campaigns("campaigns.yml", [campaign("c3", None)], QUARANTINE_SCHEMA.empty_table(), LOADED_AT)
    assert fetch(peek, f"select campaign_id from {raw}.campaigns order by 1") == [("c3",), ("c9",)]
    assert count(peek, f"{ops}.quarantine_events") == 0


# ------------------------------------------------------------------------------- DuckDB agrees; bulk speed


def snapshot(con, raw: str, ops: str) -> dict[str, list[tuple]]:
    """The same view of either engine (JSON compared as values, since jsonb normalises the text)."""

    def rows(query: str) -> list[tuple]:
        cursor = con.cursor()
        cursor.execute(query)
        return [tuple(row) for row in cursor.fetchall()]

    events = rows(
        f"select event_key, event_name, event_ts, identity, object_id, cast(evt_data as text), source_file,"
        f" source_line from {raw}.events order by event_key"
    )
    return {
        "events": [(*row[:5], None if row[5] is None else json.loads(row[5]), *row[6:]) for row in events],
        "profiles": rows(f"select profile_key, updated_ts, source_file, source_line from {raw}.profiles order by 1"),
        "quarantine": rows(f"select source_file, source_line, reason from {ops}.quarantine_events order by 1, 2"),
        "manifest": rows(
            f"select source_file, sha256, size_bytes, status, input_records, loaded_events, loaded_profiles,"
            f" duplicates, quarantined, late_events, interval_start, interval_end from {ops}.load_manifest order by 1"
        ),
    }


def test_duckdb_and_postgres_give_the_same_counts(warehouse: PostgresWarehouse, tmp_path: Path) -> None:
    day = datetime(2026, 10, 31)
    batches = [
        make_batch(
            "events/2026-10-30.jsonl",
            events=[
                ev(f"e{i}", day - timedelta(hours=i), i, evt_data=json.dumps({"i": i, "s": 'a"b'})) for i in range(6)
            ],
            profiles=[prof("p1", day, 10)],
            quarantine=[bad(11)],
            duplicates_in_batch=2,
        ),
        make_batch(  # e3..e5 re-delivered (within DuckDB's lookback, where both engines must agree)
            "events/2026-10-31.jsonl",
            events=[ev(f"e{i}", day - timedelta(hours=i), i) for i in range(3, 9)],
            profiles=[prof("p1", day, 10), prof("p2", day, 11)],
            quarantine=[bad(12), bad(13, raw=None)],
        ),
        make_batch(
            "events/2026-10-31-copy.jsonl", events=[ev("e8", day - timedelta(hours=8), 1)], duplicates_in_batch=1
        ),
        make_batch("profiles/empty.json"),
    ]
    duck = DuckDBWarehouse(tmp_path / "rekindle.duckdb")
    try:
        for batch in batches:
            duck_result = duck.commit(batch, entry(batch.source_file))
            pg_result = warehouse.commit(batch, entry(batch.source_file))
            assert pg_result == duck_result, batch.source_file
        assert snapshot(warehouse.conn, warehouse.raw_schema, warehouse.schema) == snapshot(duck.con, "raw", "main")
        assert duck.loaded_files() == warehouse.loaded_files()
    finally:
        duck.close()


def big_batch(source_file: str, n: int) -> Batch:
    """n realistic events: random 64-hex keys (like the fingerprints), JSON properties, two days of times."""
    start = datetime(2026, 10, 30)
    keys = [f"fp:{secrets.token_hex(32)}" for _ in range(n)]
    events = pa.table(
        {
            "event_key": keys,
            "event_id": [None] * n,
            "event_name": [("App Launched", "Product Viewed", "Charged")[i % 3] for i in range(n)],
            "event_ts": [start + timedelta(seconds=i * 172_800 // n) for i in range(n)],
            "identity": [f"u{i % 5000}" for i in range(n)],
            "object_id": [f"dev-{i % 7000}" for i in range(n)],
            "evt_data": [
                json.dumps({"Amount": i % 100 + 0.5, "Product": f'Widget "{i % 50}"', "Qty": i % 4}) for i in range(n)
            ],
            "source_line": list(range(1, n + 1)),
        },
        schema=EVENT_SCHEMA,
    )
    return Batch(source_file, n, events, PROFILE_SCHEMA.empty_table(), QUARANTINE_SCHEMA.empty_table())


def test_bulk_commit_of_200k_events(warehouse: PostgresWarehouse, tmp_path: Path) -> None:
    """Speed sanity, not a timed assertion: the numbers are printed (run with -s to see them)."""
    n = 200_000
    batch = big_batch("events/big.jsonl", n)

    started = time.perf_counter()
    result = warehouse.commit(batch, entry("events/big.jsonl"))
    pg_seconds = time.perf_counter() - started
    assert result == CommitResult(loaded_events=n, loaded_profiles=0, duplicates=0, quarantined=0, late_events=n // 2)

    started = time.perf_counter()
    redelivered = warehouse.commit(batch, entry("events/big-again.jsonl"))
    pg_again_seconds = time.perf_counter() - started
    assert redelivered.duplicates == n

    duck = DuckDBWarehouse(tmp_path / "rekindle.duckdb")
    try:
        started = time.perf_counter()
        assert duck.commit(batch, entry("events/big.jsonl")) == result
        duck_seconds = time.perf_counter() - started
    finally:
        duck.close()

    print(
        f"\n{n:,} events: Postgres commit {pg_seconds:.2f} s ({n / pg_seconds:,.0f} rows/s),"
        f" the same file re-delivered {pg_again_seconds:.2f} s; DuckDB {duck_seconds:.2f} s;"
        f" Postgres/DuckDB = {pg_seconds / duck_seconds:.1f}x"
    )
