"""Report subscriptions (senders/report_subscriptions.yml): which report goes to whom, when, about what.

The schema is documented at the top of the YAML file and in README.md. Validation names the file, the
subscription (#n and its name) and the field, and says what is allowed, because marketers edit the file.

Times are UTC. A subscription fires at the times of its cron schedule; a run of the DAG whose data
interval is (start, end] sends the subscriptions that fire in it. The interval is open at the start and
closed at the end, unlike Airflow's [start, end): the run executes at its interval's end, when the data up
to that instant is loaded, so the daily report that fires at midnight is sent by the run that has just
loaded the day before it, not a day later.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from loaders.config_file import check_unique_names, read_entries

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "report_subscriptions.yml"
REPORTS = ("campaigns", "engagement", "segments", "retention", "funnel", "weekly_digest")
# What each report shows; weekly_digest combines them all.
REPORT_SECTIONS = {
    "campaigns": ("campaigns",),
    "engagement": ("engagement",),
    "segments": ("segments",),
    "retention": ("retention",),
    "funnel": ("funnel",),
    "weekly_digest": ("campaigns", "engagement", "segments", "retention", "funnel"),
}
PERIODS = ("last_day", "last_7_days", "last_week", "last_month")
SCHEDULES = {"daily": "0 0 * * *", "weekly": "0 0 * * 1"}
FILTERS = ("segment", "campaign", "funnel")
PLACEHOLDERS = ("report", "subscription", "period", "period_start", "period_end")
FIELDS = ("name", "report", "recipients", "schedule", "period", "filters", "subject", "hold_back_on_failure")
DEFAULT_SUBJECT = "Rekindle {report} report, {period}"
# Deliberately loose: the SMTP server is the judge of an address; this catches typos like a missing @.
ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


class SubscriptionConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    start: datetime  # inclusive, naive UTC
    end: datetime  # exclusive

    @property
    def last_day(self) -> datetime:
        return self.end - timedelta(days=1)

    def label(self) -> str:
        """'2026-10-31' for a day, '2026-10-25 to 2026-10-31' for longer periods (both days included)."""
        first, last = self.start.date().isoformat(), self.last_day.date().isoformat()
        return first if first == last else f"{first} to {last}"


@dataclass(frozen=True)
class Subscription:
    name: str
    report: str
    recipients: tuple[str, ...]
    schedule: str  # a cron expression (daily/weekly already translated)
    period: str
    filters: dict[str, str] = field(default_factory=dict)
    subject: str = DEFAULT_SUBJECT
    hold_back_on_failure: bool = False

    @property
    def sections(self) -> tuple[str, ...]:
        return REPORT_SECTIONS[self.report]

    def fire_times(self, after: datetime, until: datetime) -> list[datetime]:
        """Fire times of the schedule in (after, until], naive UTC."""
        from croniter import croniter

        times, cron = [], croniter(self.schedule, after)
        while (moment := cron.get_next(datetime)) <= until:
            times.append(moment)
        return times

    def period_for(self, fire_time: datetime) -> Period:
        """The period a report fired at fire_time covers: whole UTC days before the fire day."""
        day = fire_time.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "last_day":
            return Period(day - timedelta(days=1), day)
        if self.period == "last_7_days":
            return Period(day - timedelta(days=7), day)
        if self.period == "last_week":
            monday = day - timedelta(days=day.weekday())
            return Period(monday - timedelta(days=7), monday)
        first = day.replace(day=1)  # last_month
        return Period((first - timedelta(days=1)).replace(day=1), first)

    def subject_for(self, period: Period) -> str:
        return self.subject.format(
            report=self.report.replace("_", " "),
            subscription=self.name,
            period=period.label(),
            period_start=period.start.date().isoformat(),
            period_end=period.last_day.date().isoformat(),
        )


def _fail(where: str, field_name: str, problem: str) -> SubscriptionConfigError:
    return SubscriptionConfigError(f"{where}: field '{field_name}' {problem}")


def _schedule(value: object, where: str) -> str:
    from croniter import croniter

    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "schedule", f"must be daily, weekly or a cron string, got {value!r}")
    cron = SCHEDULES.get(value.strip(), value.strip())
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise _fail(
            where, "schedule", f"must be daily, weekly or a five-field cron string like '0 7 * * 1', got {value!r}"
        )
    return cron


def _subject(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "subject", "must be a non-empty string")
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        problem = f"is not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
        raise _fail(where, "subject", problem) from None
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown or "" in names:
        shown = ", ".join("{" + n + "}" for n in unknown) or "{}"
        allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise _fail(where, "subject", f"has unknown placeholder {shown}; allowed: {allowed}")
    return value


def _check(entry: dict, where: str) -> Subscription:
    for required in ("report", "recipients", "schedule", "period"):
        if required not in entry:
            raise _fail(where, required, "is required")
    name = entry["name"]
    where = f"{where} ({name})"
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise SubscriptionConfigError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(FIELDS)}")
    if entry["report"] not in REPORTS:
        raise _fail(where, "report", f"must be one of {', '.join(REPORTS)}, got {entry['report']!r}")
    recipients = entry["recipients"]
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not recipients:
        raise _fail(where, "recipients", "must be an address or a non-empty list of addresses")
    bad = [r for r in recipients if not isinstance(r, str) or not ADDRESS.match(r.strip())]
    if bad:
        raise _fail(where, "recipients", f"has invalid address(es) {bad}")
    if entry["period"] not in PERIODS:
        raise _fail(where, "period", f"must be one of {', '.join(PERIODS)}, got {entry['period']!r}")
    filters = entry.get("filters") or {}
    if not isinstance(filters, dict):
        raise _fail(where, "filters", f"must be a mapping with keys among {', '.join(FILTERS)}")
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise _fail(where, "filters", f"has unknown key(s) {unknown}; allowed: {', '.join(FILTERS)}")
    empty = sorted(k for k, v in filters.items() if not isinstance(v, str | int) or not str(v).strip())
    if empty:
        raise _fail(where, "filters", f"needs a name for {empty}")
    hold_back = entry.get("hold_back_on_failure", False)
    if not isinstance(hold_back, bool):
        raise _fail(where, "hold_back_on_failure", f"must be true or false, got {hold_back!r}")
    return Subscription(
        name=name,
        report=entry["report"],
        recipients=tuple(r.strip() for r in recipients),
        schedule=_schedule(entry["schedule"], where),
        period=entry["period"],
        filters={k: str(v) for k, v in filters.items()},
        subject=_subject(entry.get("subject", DEFAULT_SUBJECT), where),
        hold_back_on_failure=hold_back,
    )


def load_subscriptions(path: Path = DEFAULT_PATH) -> list[Subscription]:
    """Parse and validate every subscription; the first error names the file, the entry and the field."""
    entries = read_entries(path, "subscriptions", "subscription", SubscriptionConfigError, path.name)
    subscriptions = [_check(entry, where) for where, _, entry in entries]
    check_unique_names(((name, where) for where, name, _ in entries), "subscription", SubscriptionConfigError)
    return subscriptions
