"""Report emails for marketers.

`send_due_reports` is what the DAG calls: every subscription of `senders/report_subscriptions.yml` whose
schedule fires in the run's data interval is rendered from the warehouse (senders/reports/) and delivered
once per period, over SMTP (`REKINDLE_SMTP_CONN_ID`, an Airflow Connection) or into `REKINDLE_OUT/outbox/`.
`email_log` remembers each subscription and period, so a rerun or a retry never sends twice.

Check the subscriptions file: `python -m senders.report_email check [FILE]`.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from senders.reports.subscriptions import DEFAULT_PATH as SUBSCRIPTIONS_PATH
from senders.reports.subscriptions import Period, Subscription, load_subscriptions

if TYPE_CHECKING:
    from loaders.settings import Settings

log = logging.getLogger(__name__)


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
