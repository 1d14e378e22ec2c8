"""Landing zone → raw tables against a real DuckDB file: reconciliation, quarantine, idempotency."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from loaders.load import load_landing

INTERVAL = (datetime(2026, 10, 31), datetime(2026, 11, 1))


def write_lines(path: Path, lines: list[str | bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n"
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def ev(name: str, ts: int, **extra) -> str:
    return json.dumps({"type": "event", "evtName": name, "ts": ts, **extra})


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    write_lines(
        root / "events" / "2026-10-30.jsonl.gz",
        [
            ev("App Launched", 1761800000, objectId="dev-1", eventId="e1"),
            ev("App Launched", 1761800000, objectId="dev-1", eventId="e1"),  # duplicate in the same file
            '{"type":"event","evtName":"Charged"',  # truncated
            ev("Charged", 1761800100, identity="u1", objectId="dev-1", evtData={"Amount": 9.5}),
            "",  # blank lines are not records
            b'{"type":"event","evtName":"X","ts":1761800000,"identity":"\xff"}',  # invalid UTF-8
            ev("X", 1761800000),  # no identity, no objectId
        ],
    )
    write_lines(
        root / "events" / "2026-10-31.jsonl",
        [
            ev("App Launched", 1761800000, objectId="dev-1", eventId="e1"),  # re-delivered from yesterday
            ev("Charged", 1761800100, identity="u1", objectId="dev-1", evtData={"Amount": 9.5}),  # same, no id
            ev("Product Viewed", 1761900000, identity="u1"),
            json.dumps({"type": "profile", "identity": "u1", "ts": 1761800050, "profileData": {"Email": "a@b.c"}}),
        ],
    )
    (root / "profiles").mkdir()
    (root / "profiles" / "bad.json").write_text('{"d": {"not": "a list"}}')
    (root / "profiles" / "good.json").write_text(
        json.dumps(
            {
                "d": [
                    {"type": "profile", "identity": "u2", "ts": 1761800000, "profileData": {"MSG-email": True}},
                    {"type": "event", "evtName": "App Launched", "ts": 1761800000, "identity": "u2"},
                    "not a record",
                ]
            }
        )
    )
    return root


def manifest(warehouse: Path) -> dict[str, tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select source_file, input_records, loaded_events, loaded_profiles, duplicates, quarantined"
            " from load_manifest"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_every_record_is_loaded_deduplicated_or_quarantined(landing, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = load_landing(str(landing), warehouse, INTERVAL)
    assert manifest(warehouse) == {
        "events/2026-10-30.jsonl.gz": (6, 2, 0, 1, 3),
        "events/2026-10-31.jsonl": (4, 1, 1, 2, 0),
        "profiles/bad.json": (1, 0, 0, 0, 1),
        "profiles/good.json": (3, 1, 1, 0, 1),
    }
    assert result.total("input_records") == 14
    with duckdb.connect(str(warehouse), read_only=True) as con:
        quarantine = con.execute(
            "select source_file, source_line, split_part(reason, ':', 1) from quarantine_events order by all"
        ).fetchall()
        assert con.execute("select count(*) from raw.events").fetchone()[0] == 4
    assert quarantine == [
        ("events/2026-10-30.jsonl.gz", 3, "invalid_json"),
        ("events/2026-10-30.jsonl.gz", 6, "invalid_utf8"),  # line numbers count the blank line
        ("events/2026-10-30.jsonl.gz", 7, "missing_identity"),
        ("profiles/bad.json", 1, "invalid_payload"),
        ("profiles/good.json", 3, "not_an_object"),
    ]


def test_rerun_loads_nothing_new(landing, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    load_landing(str(landing), warehouse, INTERVAL)
    before = manifest(warehouse)
    again = load_landing(str(landing), warehouse, INTERVAL)
    assert {f.status for f in again.files} == {"skipped"}
    assert manifest(warehouse) == before
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.events").fetchone()[0] == 4
        assert con.execute("select count(*) from quarantine_events").fetchone()[0] == 5


def test_a_backfilled_day_loads_the_later_days_it_finds_and_quarantines_only_what_is_ahead_of_its_arrival(tmp_path):
    """A backfill of 2026-10-25 finds the whole week in the landing zone: records after the interval are history
    by the time they are loaded (dbt shows each once the as-of instant reaches it); only a record dated beyond
    the load time plus the tolerance is a device clock ahead of ours."""
    loaded_at = datetime(2026, 11, 28, 12)
    day = int(datetime(2026, 10, 25, 12).timestamp())
    write_lines(
        tmp_path / "landing" / "events" / "week.jsonl",
        [
            ev("App Launched", day, identity="u1"),
            ev("App Launched", day + 5 * 86400, identity="u1"),  # five days after the backfilled interval
            ev("App Launched", int(datetime(2026, 11, 29, 11).timestamp()), identity="u1"),  # within the tolerance
            ev("App Launched", int(datetime(2026, 11, 30).timestamp()), identity="u1"),  # ahead of arrival + 24 h
        ],
    )
    warehouse = tmp_path / "w.duckdb"
    load_landing(str(tmp_path / "landing"), warehouse, (datetime(2026, 10, 25), datetime(2026, 10, 26)), loaded_at)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.events").fetchone()[0] == 3
        assert con.execute("select source_line, split_part(reason, ':', 1) from quarantine_events").fetchall() == [
            (4, "ts_in_future")
        ]


def test_a_file_changed_after_loading_is_reported_not_reloaded(landing, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    load_landing(str(landing), warehouse, INTERVAL)
    write_lines(landing / "events" / "2026-10-31.jsonl", [ev("Product Viewed", 1761900001, identity="u9")])
    again = load_landing(str(landing), warehouse, INTERVAL)
    assert again.changed_files == ["events/2026-10-31.jsonl"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.events where identity = 'u9'").fetchone()[0] == 0


def test_campaign_entries_that_do_not_validate_are_quarantined_by_name(tmp_path):
    root = tmp_path / "landing"
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "q4.yml").write_text(
        "campaigns:\n"
        "  - {id: spring_sale, name: Spring, channel: email, segment: all_users, goal_event: Charged,\n"
        "     conversion_window_days: 5, control_group_pct: 10, start: 2026-10-01, end: 2026-10-03}\n"
        "  - {id: fax_blast, name: Fax, channel: fax, segment: all_users, goal_event: Charged,\n"
        "     conversion_window_days: 5, control_group_pct: 10, start: 2026-10-01, end: 2026-10-03}\n"
    )
    warehouse = tmp_path / "w.duckdb"
    assert load_landing(str(root), warehouse, INTERVAL).campaigns == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        reason = con.execute("select reason from quarantine_events").fetchone()[0]
        assert con.execute("select campaign_id from raw.campaigns").fetchall() == [("spring_sale",)]
    assert "campaigns/q4.yml, campaign #2 (id fax_blast): field 'channel'" in reason


def test_generated_landing_zone_reconciles(small_landing, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    result = load_landing(str(small_landing), warehouse, INTERVAL)
    loaded = result.total("loaded_events") + result.total("loaded_profiles")
    assert loaded + result.total("duplicates") + result.total("quarantined") == result.total("input_records")
    assert result.total("quarantined") > 0 and result.total("duplicates") > 0
    assert result.campaigns >= 3
