"""Report emails for marketers.

`send_due_reports` is what the DAG calls: every subscription of `senders/report_subscriptions.yml` whose
schedule fires in the run's data interval is rendered from the warehouse (senders/reports/) and delivered
once per period, over SMTP (`REKINDLE_SMTP_CONN_ID`, an Airflow Connection) or into `REKINDLE_OUT/outbox/`.
`email_log` remembers each subscription and period, so a rerun or a retry never sends twice.

`write_daily_report` is the earlier fixed daily email (one .eml per run date, no subscriptions), kept
until the DAG's send_report task calls `send_due_reports`.

Check the subscriptions file: `python -m senders.report_email check [FILE]`.
"""

from __future__ import annotations

import csv
import html
import io
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from senders.reports.subscriptions import DEFAULT_PATH as SUBSCRIPTIONS_PATH
from senders.reports.subscriptions import Period, Subscription, load_subscriptions

if TYPE_CHECKING:
    from loaders.settings import Settings

log = logging.getLogger(__name__)

CAMPAIGN_COLUMNS = (
    ("campaign_name", "Campaign"),
    ("channel", "Channel"),
    ("sent", "Sent"),
    ("viewed", "Viewed"),
    ("clicked", "Clicked"),
    ("click_through_rate", "CTR"),
    ("converted", "Converted"),
    ("conversion_rate", "Conv. rate"),
    ("revenue", "Revenue"),
    ("target_conversion_rate", "Target conv."),
    ("control_conversion_rate", "Control conv."),
    ("conversion_lift", "Lift"),
)
RATE_COLUMNS = {"click_through_rate", "conversion_rate", "target_conversion_rate", "control_conversion_rate"}


@dataclass(frozen=True)
class DailyFigures:
    run_date: date
    events_loaded: int
    records_quarantined: int
    users: int
    identified_users: int
    segment_sizes: list[tuple[str, int]]
    campaigns: list[dict]


def collect_figures(warehouse: Path, run_date: date) -> DailyFigures:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        events_loaded, quarantined = con.execute(
            "select coalesce(sum(loaded_events), 0), coalesce(sum(quarantined), 0) from main.load_manifest"
        ).fetchone()
        users, identified = con.execute(
            "select count(*), count(*) filter (where is_identified) from main.dim_users"
        ).fetchone()
        sizes = con.execute(
            "select d.segment_name, count(m.user_id) from main.segment_definitions d"
            " left join main.segment_members m using (segment_name) group by 1 order by 1"
        ).fetchall()
        cursor = con.execute("select * from main.rpt_campaign_performance order by start_date, campaign_id")
        names = [d[0] for d in cursor.description]
        campaigns = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    return DailyFigures(run_date, int(events_loaded), int(quarantined), users, identified, sizes, campaigns)


def _cell(column: str, value: object) -> str:
    if value is None:
        return "–"
    if column in RATE_COLUMNS:
        return f"{value:.1%}"
    if column == "conversion_lift":
        return f"{value:+.1%}"
    if column == "revenue":
        return f"{value:,.2f}"
    return str(value)


def _headline(figures: DailyFigures) -> list[str]:
    lines = [
        f"{figures.events_loaded:,} events loaded, {figures.records_quarantined:,} records quarantined.",
        f"{figures.users:,} users ({figures.identified_users:,} identified).",
    ]
    lines += [f"Segment {name}: {size:,} members." for name, size in figures.segment_sizes]
    for row in figures.campaigns:
        if row.get("conversion_lift") is not None:
            lines.append(
                f"Campaign {row['campaign_name']} changed conversion by {row['conversion_lift']:+.0%} "
                f"against its control group ({_cell('target_conversion_rate', row['target_conversion_rate'])}"
                f" vs {_cell('control_conversion_rate', row['control_conversion_rate'])})."
            )
    return lines


def render_text(figures: DailyFigures) -> str:
    header = [label for _, label in CAMPAIGN_COLUMNS]
    rows = [[_cell(c, r.get(c)) for c, _ in CAMPAIGN_COLUMNS] for r in figures.campaigns]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    table = [" | ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)) for line in [header, *rows]]
    return (
        "\n".join(
            [
                f"Rekindle daily report for {figures.run_date.isoformat()}",
                "",
                *_headline(figures),
                "",
                "Campaigns",
                *table,
                "",
                "The full campaign table is attached as CSV.",
            ]
        )
        + "\n"
    )


def render_html(figures: DailyFigures) -> str:
    head = "".join(
        f"<th style='text-align:left;padding:4px 8px'>{html.escape(label)}</th>" for _, label in CAMPAIGN_COLUMNS
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td style='padding:4px 8px'>{html.escape(_cell(c, r.get(c)))}</td>" for c, _ in CAMPAIGN_COLUMNS)
        + "</tr>"
        for r in figures.campaigns
    )
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in _headline(figures))
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h2>Rekindle daily report for {figures.run_date.isoformat()}</h2>"
        f"<ul>{summary}</ul><h3>Campaigns</h3>"
        f"<table style='border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "<p>The full campaign table is attached as CSV.</p></body></html>"
    )


def campaigns_csv(figures: DailyFigures) -> str:
    buffer = io.StringIO()
    if figures.campaigns:
        writer = csv.DictWriter(buffer, fieldnames=list(figures.campaigns[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(figures.campaigns)
    return buffer.getvalue()


def build_message(figures: DailyFigures, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"Rekindle daily report for {figures.run_date.isoformat()}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # Derived from the run, not the clock, so a rerun produces the same message: the morning after the
    # reported day, when a marketer would read it.
    message["Date"] = format_datetime(datetime.combine(figures.run_date + timedelta(days=1), time(6, 0), tzinfo=UTC))
    message["Message-ID"] = f"<daily-report.{figures.run_date.isoformat()}@rekindle>"
    message.set_content(render_text(figures))
    message.add_alternative(render_html(figures), subtype="html")
    message.add_attachment(
        campaigns_csv(figures).encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename=f"campaign_performance_{figures.run_date.isoformat()}.csv",
    )
    # MIME boundaries are random by default; fixed ones keep a rerun's file byte-identical.
    for number, part in enumerate(part for part in message.walk() if part.is_multipart()):
        part.set_boundary(f"rekindle-{figures.run_date.isoformat()}-part{number}")
    return message


def write_daily_report(warehouse: Path, outbox: Path, run_date: date) -> Path:
    """Render the report for run_date and write it as outbox/daily-report-<date>.eml (atomically)."""
    sender = os.environ.get("REKINDLE_REPORT_FROM", "Rekindle <rekindle@localhost>")
    recipients = [r.strip() for r in os.environ.get("REKINDLE_REPORT_TO", "marketing@example.com").split(",")]
    message = build_message(collect_figures(warehouse, run_date), sender, recipients)
    outbox.mkdir(parents=True, exist_ok=True)
    target = outbox / f"daily-report-{run_date.isoformat()}.eml"
    partial = target.with_suffix(".eml.partial")
    partial.write_bytes(bytes(message))
    os.replace(partial, target)
    return target


class ReportsFailed(RuntimeError):
    """Some due reports could not be rendered or delivered; the others were sent. A retry sends the rest."""


def due_reports(
    subscriptions: list[Subscription], interval_start: datetime, interval_end: datetime
) -> list[tuple[Subscription, Period, datetime]]:
    """(subscription, period, fire time) for each schedule fire time in (start, end], one per period."""
    due, seen = [], set()
    for subscription in subscriptions:
        for fire_time in subscription.fire_times(interval_start, interval_end):
            period = subscription.period_for(fire_time)
            if (subscription.name, period) not in seen:
                seen.add((subscription.name, period))
                due.append((subscription, period, fire_time))
    return due


def send_due_reports(
    settings: Settings,
    data_interval_start: datetime,
    data_interval_end: datetime,
    *,
    subscriptions_path: Path = SUBSCRIPTIONS_PATH,
) -> list[str]:
    """Render and deliver the reports due in the interval; returns the Message-IDs sent by this call.

    Runs whatever the quality gate decided (the DAG gives it trigger_rule all_done): the gate's verdict in
    quality_gate_log and the data's freshness go at the top of every email, or hold it back where the
    subscription asks. One subscription's failure does not stop the others; ReportsFailed is raised at the
    end, naming them, so the task fails and its retry sends only what is still missing.
    """
    from senders.reports.compose import Report, build_message
    from senders.reports.data import ReportWarehouse, naive_utc
    from senders.reports.delivery import DeliveryOptions, send_smtp, write_to_outbox
    from senders.reports.sections import build_sections

    subscriptions = load_subscriptions(subscriptions_path)
    start, end = naive_utc(data_interval_start), naive_utc(data_interval_end)
    due = due_reports(subscriptions, start, end)
    if not due:
        log.info("no report subscription fires in (%s, %s]", start, end)
        return []
    options = DeliveryOptions.from_env()
    sender = os.environ.get("REKINDLE_REPORT_FROM", "Rekindle <rekindle@localhost>")
    sent, failures = [], []
    with ReportWarehouse(settings) as warehouse:
        warehouse.ensure_email_log()
        trust = warehouse.trust(end)
        for subscription, period, fire_time in due:
            label = f"{subscription.name} ({period.label()})"
            if warehouse.already_sent(subscription.name, period):
                log.info("%s: already sent, not sending again", label)
                continue
            logged = {"recipients": len(subscription.recipients)}
            if trust.problems and subscription.hold_back_on_failure:
                reason = " ".join(trust.problems)
                warehouse.log_email(
                    subscription.name, subscription.report, period, status="held_back", reason=reason, **logged
                )
                log.warning("%s: held back: %s", label, reason)
                continue
            try:
                report = Report(
                    subscription,
                    period,
                    fire_time,
                    end,
                    build_sections(warehouse, subscription, period),
                    trust.problems,
                    warehouse.load_figures(period),
                )
                message = build_message(report, sender)
                logged.update(message_id=report.message_id, subject=report.subject)
                if options.smtp_conn_id:
                    refused = send_smtp(message, options)
                    reason = f"refused recipients: {sorted(refused)}" if refused else None
                else:
                    filename = f"{subscription.name}-{period.start:%Y-%m-%d}.eml"
                    reason = f"written to {write_to_outbox(message, settings.outbox, filename)}"
            except Exception as error:  # logged, and raised below after the other subscriptions
                log.exception("%s: not sent", label)
                warehouse.log_email(
                    subscription.name, subscription.report, period, status="failed", reason=str(error), **logged
                )
                failures.append(f"{label}: {error}")
                continue
            warehouse.log_email(subscription.name, subscription.report, period, status="sent", reason=reason, **logged)
            log.info("%s: sent via %s as %s", label, options.channel, report.message_id)
            sent.append(report.message_id)
    if failures:
        raise ReportsFailed(f"{len(failures)} of {len(due)} due reports were not sent: " + "; ".join(failures))
    return sent


def main(argv: list[str]) -> int:
    """`check [FILE]`: validate the subscriptions and print when each fires next."""
    from senders.reports.subscriptions import SubscriptionConfigError

    if not argv or argv[0] != "check" or len(argv) > 2:
        print("usage: python -m senders.report_email check [FILE]", file=sys.stderr)
        return 2
    path = Path(argv[1]) if len(argv) == 2 else SUBSCRIPTIONS_PATH
    try:
        subscriptions = load_subscriptions(path)
    except (SubscriptionConfigError, OSError) as error:
        print(error, file=sys.stderr)
        return 1
    now = datetime.now(UTC).replace(tzinfo=None)
    for s in subscriptions:
        fire = s.fire_times(now, now + timedelta(days=400))[:1]
        upcoming = f"next {fire[0]:%Y-%m-%d %H:%M} UTC covering {s.period_for(fire[0]).label()}" if fire else "never"
        print(f"{s.name}: {s.report} to {len(s.recipients)} recipient(s), {upcoming}")
    print(f"{path}: {len(subscriptions)} subscription(s) valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
