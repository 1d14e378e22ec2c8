"""The daily report email for marketers, written as an .eml file into REKINDLE_OUT/outbox/.

The message is a pure function of the warehouse and the run date: its Date and Message-ID come from
the run, not the clock, so a rerun rewrites the same file instead of producing a second email. SMTP
delivery, subscriptions and charts arrive with issue #8; the outbox is the embedded default.
"""

from __future__ import annotations

import csv
import html
import io
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import duckdb

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
