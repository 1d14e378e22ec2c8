"""The MIME message of a report email.

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain                  the whole report in plain text
    │   └── multipart/related
    │       ├── text/html               summary, warnings, compact tables; <img src="cid:…">
    │       └── image/png …             the charts, by Content-ID
    └── text/csv …                      the full detail of each section

Warnings (quality gate failed or not run, stale data) come first, in red in the HTML. The message is a
pure function of the report: Date is the schedule's fire time, Message-ID the subscription and period,
MIME boundaries fixed, so a rerun renders the same bytes and a receiving server can spot a duplicate.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from senders.reports.sections import Section, Table
from senders.reports.subscriptions import Period, Subscription

DOMAIN = "rekindle"
RED = "#b71c1c"
CELL = "padding:3px 8px;border-bottom:1px solid #ddd"
HEAD = f"{CELL};text-align:left;background:#f3f3f3"
CAPTION = "text-align:left;font-weight:bold"


@dataclass(frozen=True)
class Report:
    subscription: Subscription
    period: Period
    fire_time: datetime  # naive UTC
    as_of: datetime  # the warehouse state the figures come from (the run's data_interval_end)
    sections: list[Section]
    warnings: list[str]
    load: dict[str, int] | None

    @property
    def subject(self) -> str:
        return self.subscription.subject_for(self.period)

    @property
    def message_id(self) -> str:
        return f"<{self.subscription.name}.{self.period.start:%Y%m%d}-{self.period.end:%Y%m%d}@{DOMAIN}>"

    def cid(self, chart_name: str) -> str:
        return f"{chart_name}.{self.subscription.name}.{self.period.start:%Y%m%d}@{DOMAIN}"

    def attachment_name(self, filename: str) -> str:
        stem, _, extension = filename.rpartition(".")
        return f"{stem}_{self.period.start:%Y-%m-%d}.{extension}"

    def load_sentence(self) -> str | None:
        if self.load is None:
            return None
        return (
            f"Loaded in this period: {self.load['loaded_events']:,} events and {self.load['loaded_profiles']:,} "
            f"profile updates from {self.load['files']:,} files; {self.load['duplicates']:,} duplicates dropped, "
            f"{self.load['quarantined']:,} records quarantined."
        )


def _text_table(table: Table) -> list[str]:
    header = [c.label for c in table.columns]
    rows = table.cells()
    widths = [max(len(x) for x in column) for column in zip(header, *rows, strict=False)]
    lines = [" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]]
    return ([table.caption] if table.caption else []) + lines


def render_text(report: Report) -> str:
    lines = [report.subject, f"Figures as of {report.as_of:%Y-%m-%d %H:%M} UTC.", ""]
    if report.warnings:
        lines += ["WARNING - check before you use these figures:", *[f"  ! {w}" for w in report.warnings], ""]
    lines += ["In short:"]
    for section in report.sections:
        lines += [f"  - {s}" for s in section.summary] + ([f"  - {section.unavailable}"] if section.unavailable else [])
    if report.load_sentence():
        lines += [f"  - {report.load_sentence()}"]
    for section in report.sections:
        if section.tables:
            lines += ["", section.title, "=" * len(section.title)]
            for table in section.tables:
                lines += [*_text_table(table), ""]
    attachments = [report.attachment_name(a.filename) for s in report.sections for a in s.attachments]
    if attachments:
        lines += ["", "Full detail attached as CSV: " + ", ".join(attachments) + "."]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(table: Table) -> str:
    head = "".join(f"<th style='{HEAD}'>{html.escape(c.label)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='{CELL}'>{html.escape(value)}</td>" for value in row) + "</tr>"
        for row in table.cells()
    )
    caption = f"<caption style='{CAPTION}'>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (
        f"<table style='border-collapse:collapse;font-size:13px;margin:8px 0'>{caption}"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def render_html(report: Report) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(report.subject)}</title></head>"
        "<body style='font-family:Helvetica,Arial,sans-serif;color:#222;max-width:760px'>",
        f"<h1 style='font-size:20px'>{html.escape(report.subject)}</h1>",
    ]
    if report.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
        parts.append(
            f"<div style='border:2px solid {RED};background:#fdecea;color:{RED};padding:8px 14px;margin:10px 0'>"
            f"<strong>Check before you use these figures</strong><ul style='margin:6px 0'>{items}</ul></div>"
        )
    summary = [s for section in report.sections for s in section.summary]
    summary += [section.unavailable for section in report.sections if section.unavailable]
    if report.load_sentence():
        summary.append(report.load_sentence())
    items = "".join(f"<li>{html.escape(s)}</li>" for s in summary)
    parts.append(f"<ul style='font-size:15px;line-height:1.45'>{items}</ul>")
    for section in report.sections:
        parts.append(f"<h2 style='font-size:17px;border-bottom:1px solid #ccc'>{html.escape(section.title)}</h2>")
        if section.unavailable:
            parts.append(f"<p style='color:#666'>{html.escape(section.unavailable)}</p>")
        for chart in section.charts:
            parts.append(
                f"<img src='cid:{report.cid(chart.name)}' alt='{html.escape(chart.alt)}' width='700' "
                "style='display:block;max-width:100%;height:auto'>"
            )
        parts += [_html_table(table) for table in section.tables]
    attachments = [report.attachment_name(a.filename) for s in report.sections for a in s.attachments]
    if attachments:
        parts.append(
            "<p style='color:#666;font-size:12px'>Full detail attached as CSV: "
            + html.escape(", ".join(attachments))
            + f". Figures as of {report.as_of:%Y-%m-%d %H:%M} UTC.</p>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def build_message(report: Report, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = report.subject
    message["From"] = sender
    message["To"] = ", ".join(report.subscription.recipients)
    message["Date"] = format_datetime(report.fire_time.replace(tzinfo=UTC))
    message["Message-ID"] = report.message_id
    message.set_content(render_text(report))
    message.add_alternative(render_html(report), subtype="html")
    html_part = message.get_payload()[1]
    for section in report.sections:
        for chart in section.charts:
            html_part.add_related(chart.png, maintype="image", subtype="png", cid=f"<{report.cid(chart.name)}>")
    for section in report.sections:
        for attachment in section.attachments:
            message.add_attachment(
                attachment.text.encode("utf-8"),
                maintype="text",
                subtype="csv",
                filename=report.attachment_name(attachment.filename),
            )
    # MIME boundaries are random by default; fixed ones keep a rerun's message byte-identical.
    stamp = f"{report.subscription.name}-{report.period.start:%Y%m%d}"
    for number, part in enumerate(part for part in message.walk() if part.is_multipart()):
        part.set_boundary(f"rekindle-{stamp}-part{number}")
    return message
