"""Senders against a real warehouse file: audience config errors, the CSV export, the report email."""

from __future__ import annotations

import csv
import email
from datetime import date
from email import policy
from pathlib import Path

import duckdb
import pytest

from senders.audiences import AudienceConfigError, load_audiences
from senders.file_export import export_audience
from senders.report_email import write_daily_report


def test_shipped_audiences_validate():
    assert [a.name for a in load_audiences()] == ["recent_buyers_csv"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, segment: s, destination: fax, fields: [email]}", "audience #1 (a): field 'destination' must be"),
        ("{name: a, segment: s, destination: file, fields: [password]}", "field 'fields' has unknown ['password']"),
        ("{name: A-b, segment: s, destination: file, fields: [email]}", "field 'name' must be snake_case"),
        ("{name: a, destination: file, fields: [email]}", "audience #1: field 'segment' is required"),
    ],
)
def test_audience_errors_name_the_entry_and_field(tmp_path, entry, message):
    path = tmp_path / "audiences.yml"
    path.write_text(f"audiences:\n  - {entry}\n")
    with pytest.raises(AudienceConfigError) as error:
        load_audiences(path)
    assert message in str(error.value) and "audiences.yml" in str(error.value)


def test_export_writes_every_member_once(built_warehouse, tmp_path):
    audience = load_audiences()[0]
    result = export_audience(built_warehouse, audience, tmp_path / "exports", date(2026, 10, 31))
    assert result.path == tmp_path / "exports" / "recent_buyers_csv" / "2026-10-31.csv"
    with result.path.open() as handle:
        rows = list(csv.DictReader(handle))
    with duckdb.connect(str(built_warehouse), read_only=True) as con:
        members = con.execute(
            "select user_id, email from segment_members where segment_name = 'recent_buyers' order by user_id"
        ).fetchall()
    assert len(members) > 0
    assert [(r["user_id"], r["email"]) for r in rows] == members == sorted(members)
    assert result.rows == len(members)
    # a rerun of the same day replaces the file with the same bytes
    first = result.path.read_bytes()
    export_audience(built_warehouse, audience, tmp_path / "exports", date(2026, 10, 31))
    assert result.path.read_bytes() == first
    assert not list(result.path.parent.glob("*.partial"))


def test_report_email_carries_the_warehouse_figures(built_warehouse, tmp_path):
    path = write_daily_report(built_warehouse, tmp_path / "outbox", date(2026, 10, 31))
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Rekindle daily report for 2026-10-31"
    assert message["Date"] == "Sun, 01 Nov 2026 06:00:00 +0000"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    with duckdb.connect(str(built_warehouse), read_only=True) as con:
        members = con.execute("select count(*) from segment_members where segment_name = 'recent_buyers'").fetchone()[0]
        names = [r[0] for r in con.execute("select campaign_name from rpt_campaign_performance").fetchall()]
        sent = con.execute("select sum(sent) from rpt_campaign_performance").fetchone()[0]
    assert f"Segment recent_buyers: {members:,} members." in text
    assert all(name in text and name in html for name in names)
    rows = list(csv.DictReader(attachments["campaign_performance_2026-10-31.csv"].splitlines()))
    assert sum(int(r["sent"]) for r in rows) == sent
    # the same run date renders the same message: reruns never produce a second, different email
    first = path.read_bytes()
    assert write_daily_report(built_warehouse, tmp_path / "outbox", date(2026, 10, 31)).read_bytes() == first
    assert [p.name for p in Path(tmp_path / "outbox").iterdir()] == ["daily-report-2026-10-31.eml"]
