"""Report emails end to end: subscriptions YAML, a real SMTP server (aiosmtpd) in the test process, the
MIME read back and its figures compared with the warehouse, exactly-once per period, retries, the trust
banner, the outbox default, Postgres, and the HTML rendered by headless Chromium."""

from __future__ import annotations

import base64
import csv
import email
import io
import json
import re
import shutil
import socket
import subprocess
import threading
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import duckdb
import pytest
from aiosmtpd.controller import Controller
from PIL import Image

from loaders.settings import Settings
from senders.report_email import ReportsFailed, due_reports, send_due_reports
from senders.reports.subscriptions import SubscriptionConfigError, load_subscriptions
from tests.conftest import throwaway_pg_database

START, END = datetime(2026, 10, 31, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
CHROMIUM = Path("/usr/bin/chromium")


# -- a real SMTP server ------------------------------------------------------------------------------------
class Inbox:
    """aiosmtpd handler: keeps every accepted message; refuses the first `refuse` DATA commands with 451."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse = 0
        self.attempts = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        with self.lock:
            self.attempts += 1
            if self.refuse:
                self.refuse -= 1
                return "451 4.3.0 Temporary local problem, try again"
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def start_smtp(inbox: Inbox) -> tuple[Controller, int]:
    """aiosmtpd on a free loopback port (its start() probes the port, so port 0 cannot be used)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


@pytest.fixture
def smtp(monkeypatch):
    inbox = Inbox()
    controller, port = start_smtp(inbox)
    try:
        connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                      "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0, "timeout": 10}}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_REKINDLE_TEST_SMTP", json.dumps(connection))
        monkeypatch.setenv("REKINDLE_SMTP_CONN_ID", "rekindle_test_smtp")
        monkeypatch.setenv("REKINDLE_SMTP_RETRY_SECONDS", "0.05")
        yield inbox
    finally:
        controller.stop()


# -- warehouses and subscriptions --------------------------------------------------------------------------
def copy_warehouse(built_warehouse: Path, folder: Path) -> Path:
    """Each test writes email_log (and sometimes a gate log): give it its own copy of the shared build."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "rekindle.duckdb"
    shutil.copy(built_warehouse, target)
    return target


def settings_for(warehouse: Path, out: Path, target: str = "duckdb") -> Settings:
    return Settings(landing=str(out / "landing"), warehouse=warehouse, target=target, out=out)


def subscriptions_file(folder: Path, *entries: str) -> Path:
    path = folder / "subscriptions.yml"
    path.write_text("subscriptions:\n" + "".join(f"  - {e}\n" for e in entries))
    return path


DIGEST = (
    "{name: digest, report: weekly_digest, recipients: [ana@example.com, bo@example.com], schedule: daily,"
    " period: last_day, subject: 'Digest {period} ({report})'}"
)


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


# -- subscriptions -----------------------------------------------------------------------------------------
def test_shipped_subscriptions_validate():
    assert [s.name for s in load_subscriptions()] == ["campaigns_daily", "monday_digest", "segments_monthly"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: a, report: sales, recipients: [x@y.io], schedule: daily, period: last_day}",
         "subscription #1 (a): field 'report' must be one of campaigns"),
        ("{name: a, report: funnel, recipients: [not-an-address], schedule: daily, period: last_day}",
         "subscription #1 (a): field 'recipients' has invalid address(es) ['not-an-address']"),
        ("{name: a, report: funnel, recipients: x@y.io, schedule: '61 * * * *', period: last_day}",
         "subscription #1 (a): field 'schedule' must be daily, weekly or a five-field cron"),
        ("{name: a, report: funnel, recipients: x@y.io, schedule: daily, period: yesterday}",
         "subscription #1 (a): field 'period' must be one of last_day"),
        ("{name: a, report: funnel, recipients: x@y.io, schedule: daily, period: last_day, subject: 'Hi {user}'}",
         "subscription #1 (a): field 'subject' has unknown placeholder {user}; allowed: {report}"),
        ("{name: a, report: funnel, recipients: x@y.io, schedule: daily, period: last_day, filters: {cohort: x}}",
         "subscription #1 (a): field 'filters' has unknown key(s) ['cohort']"),
        ("{name: a, report: funnel, recipients: x@y.io, schedule: daily, period: last_day, hold_back_on_failure: 1}",
         "subscription #1 (a): field 'hold_back_on_failure' must be true or false"),
        ("{name: a, report: funnel, schedule: daily, period: last_day}",
         "subscription #1: field 'recipients' is required"),
    ],
)  # fmt: skip
def test_subscription_errors_name_the_file_entry_and_field(tmp_path, entry, message):
    with pytest.raises(SubscriptionConfigError) as error:
        load_subscriptions(subscriptions_file(tmp_path, entry))
    assert message in str(error.value) and "subscriptions.yml" in str(error.value)


def test_schedules_fire_in_the_interval_and_cover_whole_days(tmp_path):
    path = subscriptions_file(
        tmp_path,
        "{name: d, report: segments, recipients: a@b.io, schedule: daily, period: last_day}",
        "{name: w, report: segments, recipients: a@b.io, schedule: weekly, period: last_week}",
        "{name: m, report: segments, recipients: a@b.io, schedule: '0 6 1 * *', period: last_month}",
        "{name: h, report: segments, recipients: a@b.io, schedule: '0 */6 * * *', period: last_7_days}",
    )
    subs = load_subscriptions(path)
    # the run of Sunday 2026-11-01 -> Monday 2026-11-02 (interval (start, end]) ends at Monday midnight
    due = {(s.name, p.start.date().isoformat(), p.end.date().isoformat()) for s, p, _ in
           due_reports(subs, datetime(2026, 11, 1), datetime(2026, 11, 2))}  # fmt: skip
    assert due == {
        ("d", "2026-11-01", "2026-11-02"),
        ("w", "2026-10-26", "2026-11-02"),
        ("m", "2026-10-01", "2026-11-01"),  # fires at 06:00 on the 1st, inside the interval
        # four 6-hourly fire times give two periods: 06:00..18:00 on Nov 1, and midnight of Nov 2
        ("h", "2026-10-25", "2026-11-01"),
        ("h", "2026-10-26", "2026-11-02"),
    }
    assert not [d for d in due_reports(subs, datetime(2026, 11, 2), datetime(2026, 11, 3)) if d[0].name in ("w", "m")]


# -- the email over SMTP -----------------------------------------------------------------------------------
def parts_of(message):
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    images = {part["Content-ID"].strip("<>"): part.get_content() for part in message.walk()
              if part.get_content_type() == "image/png"}  # fmt: skip
    attachments = {part.get_filename(): part.get_content() for part in message.iter_attachments()
                   if part.get_filename()}  # fmt: skip
    return text, html, images, attachments


@pytest.fixture(scope="module")
def digest_over_smtp(built_warehouse, tmp_path_factory):
    """One digest sent over SMTP from a copy of the shared warehouse; the module's tests read it."""
    folder = tmp_path_factory.mktemp("digest")
    warehouse = copy_warehouse(built_warehouse, folder)
    inbox = Inbox()
    controller, port = start_smtp(inbox)
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("AIRFLOW_CONN_REKINDLE_TEST_SMTP", json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
             "extra": {"disable_tls": True, "disable_ssl": True, "retry_limit": 0}}))  # fmt: skip
        patch.setenv("REKINDLE_SMTP_CONN_ID", "rekindle_test_smtp")
        settings = settings_for(warehouse, folder / "out")
        path = subscriptions_file(folder, DIGEST)
        sent = send_due_reports(settings, START, END, subscriptions_path=path)
        again = send_due_reports(settings, START, END, subscriptions_path=path)
    finally:
        patch.undo()
        controller.stop()
    return {"sent": sent, "again": again, "inbox": inbox, "warehouse": warehouse, "folder": folder}


def test_digest_arrives_with_text_html_images_and_csv(digest_over_smtp):
    inbox = digest_over_smtp["inbox"]
    assert digest_over_smtp["sent"] == ["<digest.20261031-20261101@rekindle>"]
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["Subject"] == "Digest 2026-10-31 (weekly digest)"
    assert message["Message-ID"] == "<digest.20261031-20261101@rekindle>"
    assert sorted(inbox.envelopes[0][1]) == ["ana@example.com", "bo@example.com"]
    text, html, images, attachments = parts_of(message)
    assert images, "the digest has charts"
    for cid, png in images.items():
        assert f"cid:{cid}" in html
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.size[0] >= 600
            image.verify()
    assert set(re.findall(r"cid:([^'\"]+)", html)) == set(images)
    assert {"campaign_performance_2026-10-31.csv", "segment_sizes_2026-10-31.csv"} <= set(attachments)
    assert "In short:" in text and "<table" in html


def test_figures_in_the_body_equal_the_warehouse(digest_over_smtp):
    warehouse = digest_over_smtp["warehouse"]
    text, html, _, attachments = parts_of(digest_over_smtp["inbox"].messages[0])
    # segment sizes of the period's last evaluation
    sizes = query(warehouse, "select segment_name, members from segment_sizes_daily where evaluated_day = '2026-10-31'")
    assert sizes
    for name, members in sizes:
        assert f"Segment {name}: {members:,} members" in text
        assert f"Segment {name}: {members:,} members" in html
    rows = list(csv.DictReader(attachments["segment_sizes_2026-10-31.csv"].splitlines()))
    assert {(r["segment_name"], int(r["members"])) for r in rows} == set(sizes)
    # campaigns: every campaign named, the CSV carries the mart's figures
    campaigns = query(warehouse, "select campaign_name, sent, converted from rpt_campaign_performance")
    assert campaigns
    rows = list(csv.DictReader(attachments["campaign_performance_2026-10-31.csv"].splitlines()))
    assert sorted((r["campaign_name"], int(r["sent"]), int(r["converted"])) for r in rows) == sorted(campaigns)
    for name, sent, _ in campaigns:
        assert f"Campaign {name}" in text and f"{sent:,}" in text
    # what the loader took in the period
    loaded, quarantined = query(warehouse, "select sum(loaded_events), sum(quarantined) from load_manifest")[0]
    assert f"{loaded:,} events" in text and f"{quarantined:,} records quarantined" in text
    # every section's mart is in a fully built warehouse: none says "not available"
    assert "not available yet" not in text
    # engagement: the CSV carries the mart's daily figures for the days it shows
    rows = list(csv.DictReader(attachments["engagement_daily_2026-10-31.csv"].splitlines()))
    assert rows
    daily = dict(query(warehouse, "select cast(activity_date as varchar), dau from rpt_engagement_daily"))
    for row in rows:
        assert int(row["dau"]) == daily[row["activity_date"][:10]], row
    # funnels: each funnel's sentence has the mart's users at its first step and the CSV its steps
    funnels = query(
        warehouse,
        "select funnel_name, step_number, step_event, users_reached from rpt_funnels order by funnel_name, step_number",
    )
    assert funnels
    for name, step, event, users in funnels:
        if step == 1:
            assert f"Funnel {name}: {users:,} users did {event}" in text
    rows = list(csv.DictReader(attachments["funnels_2026-10-31.csv"].splitlines()))
    assert sorted(int(r["users_reached"]) for r in rows) == sorted(users for *_, users in funnels)
    # lift: one sentence per campaign, with the mart's relative lift or the mart's reason for giving none
    lifts = query(
        warehouse,
        "select c.campaign_name, l.conversion_lift, l.lift_note from rpt_campaign_lift l"
        " join dim_campaigns c using (campaign_id) where c.start_date < '2026-11-01'",
    )
    assert lifts
    for name, lift, note in lifts:
        if note is not None:
            assert f"Campaign {name}: no reliable lift: {note}." in text
        else:
            verb = "lifted" if lift >= 0 else "lowered"
            assert f"Campaign {name} {verb} conversion by {abs(float(lift)):.1%}" in text


def test_no_gate_verdict_is_flagged_in_red(digest_over_smtp):
    text, html, _, _ = parts_of(digest_over_smtp["inbox"].messages[0])
    assert text.index("WARNING") < text.index("In short:")
    assert "The data-quality gate has not run for this period" in text
    banner = re.search(r"<div style='border:2px solid #b71c1c[^>]*>(.*?)</div>", html).group(1)
    assert "has not run for this period" in banner
    assert html.index(banner) < html.index("<h2")


def test_rerun_of_the_same_period_sends_nothing(digest_over_smtp):
    assert digest_over_smtp["again"] == []
    assert len(digest_over_smtp["inbox"].messages) == 1
    logged = query(
        digest_over_smtp["warehouse"], "select subscription, period_start, status, recipients from email_log"
    )
    assert logged == [("digest", datetime(2026, 10, 31), "sent", 2)]


def test_smtp_refusing_once_then_accepting_delivers_exactly_one(built_warehouse, tmp_path, smtp):
    smtp.refuse = 1
    settings = settings_for(copy_warehouse(built_warehouse, tmp_path), tmp_path / "out")
    path = subscriptions_file(
        tmp_path, "{name: seg, report: segments, recipients: a@b.io, schedule: daily, period: last_day}"
    )
    assert send_due_reports(settings, START, END, subscriptions_path=path) == ["<seg.20261031-20261101@rekindle>"]
    assert smtp.attempts == 2 and len(smtp.messages) == 1
    assert send_due_reports(settings, START, END, subscriptions_path=path) == []
    assert len(smtp.messages) == 1


def test_smtp_that_keeps_refusing_fails_the_task_and_a_retry_sends(built_warehouse, tmp_path, smtp, monkeypatch):
    monkeypatch.setenv("REKINDLE_SMTP_ATTEMPTS", "2")
    smtp.refuse = 2
    settings = settings_for(copy_warehouse(built_warehouse, tmp_path), tmp_path / "out")
    path = subscriptions_file(
        tmp_path,
        "{name: seg, report: segments, recipients: a@b.io, schedule: daily, period: last_day}",
        "{name: camp, report: campaigns, recipients: a@b.io, schedule: daily, period: last_day}",
    )
    with pytest.raises(ReportsFailed, match=r"1 of 2 due reports were not sent: seg \(2026-10-31\): .*451"):
        send_due_reports(settings, START, END, subscriptions_path=path)
    assert [m["Subject"] for m in smtp.messages] == ["Rekindle campaigns report, 2026-10-31"]  # the other one went
    statuses = query(settings.warehouse, "select subscription, status from email_log order by 1")
    assert statuses == [("camp", "sent"), ("seg", "failed")]
    # the task's retry: only the missing one is sent
    assert send_due_reports(settings, START, END, subscriptions_path=path) == ["<seg.20261031-20261101@rekindle>"]
    assert len(smtp.messages) == 2


# -- trust: gate failures and stale data -------------------------------------------------------------------
def write_gate_log(warehouse: Path, success: bool) -> None:
    failed = json.dumps(["dim_users.user_id: expect_column_values_to_be_unique (observed 3 duplicates)"])
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "create table quality_gate_log (interval_end timestamp, suite varchar, success boolean,"
            " failed_expectations varchar, checked_at timestamp)"
        )
        con.execute("insert into quality_gate_log values ('2026-11-01', 'marts', true, '[]', now())")
        con.execute(
            "insert into quality_gate_log values ('2026-11-01', 'users', ?, ?, now())",
            [success, "[]" if success else failed],
        )


def test_failed_gate_is_named_at_the_top_or_holds_the_email_back(built_warehouse, tmp_path):
    warehouse = copy_warehouse(built_warehouse, tmp_path)
    write_gate_log(warehouse, success=False)
    settings = settings_for(warehouse, tmp_path / "out")
    path = subscriptions_file(
        tmp_path,
        "{name: seg, report: segments, recipients: a@b.io, schedule: daily, period: last_day}",
        "{name: careful, report: segments, recipients: a@b.io, schedule: daily, period: last_day,"
        " hold_back_on_failure: true}",
    )
    assert send_due_reports(settings, START, END, subscriptions_path=path) == ["<seg.20261031-20261101@rekindle>"]
    message = email.message_from_bytes((settings.outbox / "seg-2026-10-31.eml").read_bytes(), policy=policy.default)
    text, html, _, _ = parts_of(message)
    expected = "users: dim_users.user_id: expect_column_values_to_be_unique (observed 3 duplicates)"
    assert "The data-quality gate failed for this period" in text and expected in text
    assert re.search(r"border:2px solid #b71c1c.*?" + re.escape(expected), html, re.S)
    assert "has not run" not in text
    assert not (settings.outbox / "careful-2026-10-31.eml").exists()
    [(status, reason)] = query(warehouse, "select status, reason from email_log where subscription = 'careful'")
    assert status == "held_back" and expected in reason


def test_passed_gate_and_fresh_data_carry_no_warning(built_warehouse, tmp_path):
    warehouse = copy_warehouse(built_warehouse, tmp_path)
    write_gate_log(warehouse, success=True)
    settings = settings_for(warehouse, tmp_path / "out")
    path = subscriptions_file(
        tmp_path, "{name: seg, report: segments, recipients: a@b.io, schedule: daily, period: last_day}"
    )
    send_due_reports(settings, START, END, subscriptions_path=path)
    text = (settings.outbox / "seg-2026-10-31.eml").read_text()
    assert "WARNING" not in text and "Check before you use" not in text


def test_stale_data_is_flagged(built_warehouse, tmp_path):
    """A run four days after the last data: the newest event is older than the sources' warn_after (26 h)."""
    settings = settings_for(copy_warehouse(built_warehouse, tmp_path), tmp_path / "out")
    path = subscriptions_file(
        tmp_path, "{name: seg, report: segments, recipients: a@b.io, schedule: daily, period: last_day}"
    )
    send_due_reports(
        settings, datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC), subscriptions_path=path
    )
    message = email.message_from_bytes((settings.outbox / "seg-2026-11-04.eml").read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    latest = query(settings.warehouse, "select max(event_at) from fct_events")[0][0]
    assert f"The data is stale: the newest event is from {latest:%Y-%m-%d %H:%M} UTC" in text
    assert "threshold is 26 hours" in text


# -- the outbox default, byte-stable -----------------------------------------------------------------------
def test_outbox_is_the_default_and_a_rerender_is_byte_identical(built_warehouse, tmp_path):
    warehouse = copy_warehouse(built_warehouse, tmp_path)
    settings = settings_for(warehouse, tmp_path / "out")
    path = subscriptions_file(tmp_path, DIGEST)
    send_due_reports(settings, START, END, subscriptions_path=path)
    eml = settings.outbox / "digest-2026-10-31.eml"
    first = eml.read_bytes()
    with duckdb.connect(str(warehouse)) as con:  # forget it was sent: the same period renders the same bytes
        con.execute("delete from email_log")
    send_due_reports(settings, START, END, subscriptions_path=path)
    assert eml.read_bytes() == first
    assert sorted(p.name for p in settings.outbox.iterdir()) == ["digest-2026-10-31.eml"]


# -- sections over the marts of the other branches ---------------------------------------------------------
def test_engagement_retention_and_funnel_sections_show_their_marts(built_warehouse, tmp_path):
    """Small marts with chosen figures replace rpt_engagement_daily, rpt_retention_cohorts, rpt_funnels and
    rpt_campaign_lift: the email's sentences, tables and CSVs must carry exactly those figures."""
    warehouse = copy_warehouse(built_warehouse, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "create or replace table rpt_engagement_daily as select d::date as activity_date, 100 + i as dau,"
            " 300 + i as wau, 900 + i as mau, (100 + i) / (900 + i) as stickiness, 10 as new_users"
            " from (select range as i, date '2026-10-04' + range::int as d from range(28))"
        )
        con.execute(
            "create or replace table rpt_retention_cohorts as select e as first_event, e as return_event, 'week' as"
            " cohort_grain, date '2026-10-05' + (7 * c)::int as cohort_start, p as period_number, 200 as cohort_users,"
            " 200 - (40 + f) * p - c as retained_users, (200 - (40 + f) * p - c) / 200 as retention_rate,"
            " true as is_complete_period from range(4) t(c), range(3) u(p),"
            " (values ('any', 0), ('Charged', 100)) v(e, f) where c + p <= 3"
        )
        con.execute(
            "create or replace table rpt_funnels as select * from (values"
            " ('checkout', 1, 'Product Viewed', 'Product Viewed', 1000),"
            " ('checkout', 2, 'Added To Cart', 'Added To Cart', 400),"
            " ('checkout', 3, 'Charged', 'Charged where Amount >= 50', 100))"
            " t(funnel_name, step_number, step_event, step_description, users_reached)"
        )
        campaigns = con.execute(
            "select campaign_id, campaign_name from rpt_campaign_performance order by start_date, campaign_id"
        ).fetchall()
        con.execute(
            "create or replace table rpt_campaign_lift (campaign_id varchar, target_users int, control_users int,"
            " target_conversion_rate double, control_conversion_rate double, conversion_rate_difference double,"
            " conversion_rate_difference_ci_low double, conversion_rate_difference_ci_high double,"
            " conversion_lift double, conversion_lift_ci_low double, conversion_lift_ci_high double,"
            " p_value double, lift_note varchar)"
        )
        con.executemany(
            "insert into rpt_campaign_lift values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [campaigns[0][0], 1000, 400, 0.056, 0.05, 0.006, 0.002, 0.010, 0.12, 0.04, 0.21, 0.03, None],
                [campaigns[1][0], 1000, 12, *[None] * 9, "the control group has 12 users (fewer than 30)"],
                [campaigns[2][0], 1000, 500, 0.05, 0.049, 0.001, -0.01, 0.012, 0.0204, -0.2, 0.3, 0.62, None],
            ],
        )
    settings = settings_for(warehouse, tmp_path / "out")
    path = subscriptions_file(
        tmp_path, DIGEST.replace("schedule: daily, period: last_day", "schedule: weekly, period: last_7_days")
    )
    send_due_reports(
        settings, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC), subscriptions_path=path
    )
    message = email.message_from_bytes((settings.outbox / "digest-2026-10-26.eml").read_bytes(), policy=policy.default)
    text, _, images, attachments = parts_of(message)
    # period 2026-10-26..11-01: days i = 22..27 exist (the mart ends 10-31); DAU 122..127, mean 124.5
    assert "124 daily active users on average" in text or "125 daily active users on average" in text
    assert "On 2026-10-31: 327 weekly and 927 monthly active users; stickiness (DAU/MAU) 13.7%" in text
    assert "60 new users" in text
    # the any/any pair: the newest cohort with a week-1 figure is 2026-10-19 (158 of 200); the three with one
    # average 477 / 600 (the Charged/Charged rows, 100 fewer each, are another pair)
    assert "Of the 200 users who started in the week of 2026-10-19, 79.0% came back the next week" in text
    assert "across the last 3 cohorts, 79.5% came back in their second week" in text
    assert "Funnel checkout: 1,000 users did Product Viewed, 100 (10.0%) reached Charged" in text
    assert "biggest drop is from Added To Cart to Charged (75% lost)" in text
    assert "3    | Charged where Amount >= 50 | 100   | 25.0%" in text
    assert {"engagement_daily_2026-10-26.csv", "retention_cohorts_2026-10-26.csv", "funnels_2026-10-26.csv"} <= set(
        attachments
    )
    assert len(images) == 5  # conversion bars, activity trend, segment sizes, heat map, funnel
    assert (
        f"Campaign {campaigns[0][1]} lifted conversion by 12.0% (95% CI +4.0% to +21.0%), p = 0.030: 5.6% of the"
        " target group converted against 5.0% of the control group, a difference of +0.6 ± 0.4 percentage points."
    ) in text
    assert f"Campaign {campaigns[1][1]}: no reliable lift: the control group has 12 users (fewer than 30)." in text
    assert f"Campaign {campaigns[2][1]} lifted conversion by 2.0% (95% CI -20.0% to +30.0%), p = 0.620:" in text
    assert "percentage points; not statistically significant, the difference may be chance." in text
    assert "campaign_lift_2026-10-26.csv" in attachments
    assert "not available yet" not in text


# -- Postgres ----------------------------------------------------------------------------------------------
def test_postgres_warehouse_logs_once_and_says_what_is_missing(tmp_path, monkeypatch):
    """A Postgres deployment before its first dbt build: every section says it is not available yet, the
    email still goes out, and email_log (in the profile's schema) stops a second send."""
    with throwaway_pg_database("rekindle_emails") as database:
        monkeypatch.setenv("REKINDLE_PG_DATABASE", database)
        monkeypatch.setenv("REKINDLE_PG_SCHEMA", "reports")
        settings = settings_for(tmp_path / "unused.duckdb", tmp_path / "out", target="postgres")
        path = subscriptions_file(tmp_path, DIGEST)
        assert send_due_reports(settings, START, END, subscriptions_path=path) == [
            "<digest.20261031-20261101@rekindle>"
        ]
        assert send_due_reports(settings, START, END, subscriptions_path=path) == []
        message = email.message_from_bytes(
            (settings.outbox / "digest-2026-10-31.eml").read_bytes(), policy=policy.default
        )
        text = message.get_body(("plain",)).get_content()
        for mart in ("rpt_campaign_performance", "rpt_engagement_daily", "segment_sizes_daily", "rpt_funnels"):
            assert f"not available yet (the warehouse has no {mart})" in text
        assert "has not run for this period" in text and "no event up to 2026-11-01 00:00 UTC" in text
        import psycopg2

        from tests.conftest import pg_params

        with psycopg2.connect(**pg_params(database)) as conn, conn.cursor() as cursor:
            cursor.execute("select subscription, period_start, period_end, status, recipients from reports.email_log")
            assert cursor.fetchall() == [("digest", datetime(2026, 10, 31), datetime(2026, 11, 1), "sent", 2)]
        conn.close()


# -- the email displays ------------------------------------------------------------------------------------
def test_html_renders_in_headless_chromium(digest_over_smtp, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (make test does: apt-get install chromium)"
        )
    _, html, images, _ = parts_of(digest_over_smtp["inbox"].messages[0])
    for cid, png in images.items():  # a browser has no message to resolve cid: in; inline the same bytes
        html = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    page, screenshot = tmp_path / "email.html", tmp_path / "email.png"
    page.write_text(html, encoding="utf-8")
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1000,2000",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (1000, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    # charts, tables and the red banner: far more than a blank or an error page would show
    assert len(colours) > 200
    red = sum(n for n, (r, g, b) in colours if r > 150 and g < 60 and b < 60)
    assert red > 500, "the red warning banner is visible"


def test_the_csv_attachments_do_not_carry_the_last_bits_of_a_double():
    """Two runs averaging the same doubles in another order (rpt_campaign_lift did, found by tests/test_backfill.py)
    write the same attachment, so a rerun rewrites the same email."""
    from senders.reports.sections import to_csv

    first = to_csv([{"campaign_id": "c1", "target_revenue_per_user": 5.7748201438848925, "users": 139}])
    again = to_csv([{"campaign_id": "c1", "target_revenue_per_user": 5.774820143884892, "users": 139}])
    assert first == again == "campaign_id,target_revenue_per_user,users\nc1,5.774820144,139\n"
