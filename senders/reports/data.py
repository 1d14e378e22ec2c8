"""Everything the report emails read from or write to the warehouse, on DuckDB and on Postgres.

One small function per mart, so a mart's column names appear in one place. A mart that is not in the
warehouse yet (a fresh deployment, or a model another release adds) reads as None, and its section says
"not available yet" instead of failing the whole email.

The trust checks live here too: the verdict of the data-quality gate (`quality_gate_log`, written by the
gate of rekindle_daily) and freshness, judged with the warn_after threshold that the dbt sources declare
(models/staging/_clevertap__sources.yml), so "stale" means the same in `dbt source freshness` and in the email.

`email_log` makes sending exactly-once per subscription and period: one row per (subscription,
period_start, period_end), replaced by each attempt, 'sent' only after the SMTP server (or the outbox)
accepted the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import yaml

from loaders.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from loaders.settings import Settings
    from senders.reports.subscriptions import Period

SOURCES_YML = PROJECT_ROOT / "models" / "staging" / "_clevertap__sources.yml"
FRESHNESS_SOURCE = "clevertap"
_PERIOD_HOURS = {"minute": 1 / 60, "hour": 1, "day": 24}


def naive_utc(moment: datetime) -> datetime:
    """Airflow hands aware datetimes; the warehouse stores naive UTC timestamps."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _plain(value: Any) -> Any:
    """Decimals (numeric columns) as floats for arithmetic and formatting; dates stay dates."""
    return float(value) if isinstance(value, Decimal) else value


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class GateOutcome:
    ran: bool
    failures: list[str] = field(default_factory=list)  # "suite: expectation (observed …)"

    @property
    def passed(self) -> bool:
        return self.ran and not self.failures


@dataclass(frozen=True)
class Freshness:
    threshold: timedelta
    latest_event_at: datetime | None
    latest_loaded_at: datetime | None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Trust:
    """What the top of the email must warn about: gate failed or did not run, data stale."""

    gate: GateOutcome
    freshness: Freshness

    @property
    def problems(self) -> list[str]:
        problems = []
        if not self.gate.ran:
            problems.append("The data-quality gate has not run for this period: the figures are unchecked.")
        elif self.gate.failures:
            problems.append(
                "The data-quality gate failed for this period. Failed checks: " + "; ".join(self.gate.failures) + "."
            )
        return problems + self.freshness.problems


def freshness_threshold(path=SOURCES_YML) -> timedelta:
    """warn_after of the CleverTap source in the dbt sources file: the project's one definition of stale."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for source in document.get("sources", []):
        if source.get("name") == FRESHNESS_SOURCE and "freshness" in source:
            warn = source["freshness"]["warn_after"]
            return timedelta(hours=float(warn["count"]) * _PERIOD_HOURS[warn["period"]])
    raise ValueError(f"{path}: source {FRESHNESS_SOURCE!r} declares no freshness warn_after")


class ReportWarehouse:
    """A connection to the warehouse of the settings' target (DuckDB file or Postgres schema)."""

    def __init__(self, settings: Settings) -> None:
        import sqlalchemy as sa

        from loaders.clv import warehouse_url

        url, self.schema = warehouse_url(settings)
        self._sa = sa
        self.engine = sa.create_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ReportWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- generic helpers -------------------------------------------------------------------------------
    def has(self, table: str) -> bool:
        found = self.scalar(
            "select count(*) from information_schema.tables where table_schema = :schema and table_name = :table",
            schema=self.schema,
            table=table,
        )
        return bool(found)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows as dicts; `{s}` in sql is replaced by the schema."""
        with self.engine.connect() as conn:
            result = conn.execute(self._sa.text(sql.replace("{s}", self.schema)), params)
            return [{k: _plain(v) for k, v in row._mapping.items()} for row in result]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(self._sa.text(sql.replace("{s}", self.schema)), params).scalar()

    def execute(self, *statements: tuple[str, dict[str, Any]]) -> None:
        """Run the statements in one transaction."""
        with self.engine.begin() as conn:
            for sql, params in statements:
                conn.execute(self._sa.text(sql.replace("{s}", self.schema)), params)

    def _optional(self, table: str, sql: str, **params: Any) -> list[dict[str, Any]] | None:
        return self.rows(sql, **params) if self.has(table) else None

    # -- marts -----------------------------------------------------------------------------------------
    def campaign_performance(self, period: Period, campaign: str | None) -> list[dict] | None:
        """rpt_campaign_performance rows of the campaigns that had started by the period's end."""
        rows = self._optional(
            "rpt_campaign_performance",
            "select * from {s}.rpt_campaign_performance where start_date < :period_end"
            " order by start_date, campaign_id",
            period_end=period.end.date(),
        )
        if rows is None or campaign is None:
            return rows
        return [r for r in rows if campaign in (str(r["campaign_id"]), r["campaign_name"])]

    def campaign_lift(self, campaign_ids: list[str]) -> list[dict] | None:
        """rpt_campaign_lift rows (intervals and p-values) for the given campaigns."""
        rows = self._optional("rpt_campaign_lift", "select * from {s}.rpt_campaign_lift order by campaign_id")
        return None if rows is None else [r for r in rows if str(r["campaign_id"]) in campaign_ids]

    def engagement_daily(self, since: date, period: Period) -> list[dict] | None:
        """rpt_engagement_daily from `since` to the period's last day (the trend is longer than the period)."""
        rows = self._optional("rpt_engagement_daily", "select * from {s}.rpt_engagement_daily")
        if rows is None:
            return None
        for row in rows:
            row["activity_date"] = _as_date(row["activity_date"])
        return sorted(
            (r for r in rows if since <= r["activity_date"] < period.end.date()), key=lambda r: r["activity_date"]
        )

    def segment_sizes(self, period: Period, segment: str | None) -> list[dict] | None:
        """segment_sizes_daily evaluations up to the period's last day (the earlier ones give the change)."""
        rows = self._optional(
            "segment_sizes_daily",
            "select segment_name, evaluated_day, members from {s}.segment_sizes_daily"
            " where evaluated_day <= :last_day order by segment_name, evaluated_day",
            last_day=period.last_day.date(),
        )
        if rows is None:
            return None
        for row in rows:
            row["evaluated_day"] = _as_date(row["evaluated_day"])
        return [r for r in rows if segment is None or r["segment_name"] == segment]

    def retention_cohorts(self, period: Period) -> list[dict] | None:
        """rpt_retention_cohorts rows of cohorts that started before the period's end."""
        rows = self._optional("rpt_retention_cohorts", "select * from {s}.rpt_retention_cohorts")
        if rows is None:
            return None
        for row in rows:
            row["cohort_start"] = _as_date(row["cohort_start"])
        return sorted(
            (r for r in rows if r["cohort_start"] < period.end.date()),
            key=lambda r: (str(r["cohort_grain"]), r["cohort_start"], int(r["period_number"])),
        )

    def funnels(self, funnel: str | None) -> list[dict] | None:
        rows = self._optional("rpt_funnels", "select * from {s}.rpt_funnels order by funnel_name, step_number")
        return None if rows is None else [r for r in rows if funnel is None or r["funnel_name"] == funnel]

    def load_figures(self, period: Period) -> dict[str, int] | None:
        """Records the loader took in the runs whose interval ends inside the period (load_manifest)."""
        if not self.has("load_manifest"):
            return None
        row = self.rows(
            "select count(*) as files, coalesce(sum(input_records), 0) as input_records,"
            " coalesce(sum(loaded_events), 0) as loaded_events, coalesce(sum(loaded_profiles), 0) as loaded_profiles,"
            " coalesce(sum(duplicates), 0) as duplicates, coalesce(sum(quarantined), 0) as quarantined"
            " from {s}.load_manifest where interval_end > :period_start and interval_end <= :period_end",
            period_start=period.start,
            period_end=period.end,
        )[0]
        return {k: int(v) for k, v in row.items()}

    # -- trust -----------------------------------------------------------------------------------------
    def gate_outcome(self, as_of: datetime) -> GateOutcome:
        """The gate's verdict on the data this email reads: the rows of the run whose interval ends at as_of."""
        import json

        rows = self._optional(
            "quality_gate_log",
            "select suite, success, failed_expectations from {s}.quality_gate_log"
            " where interval_end = :as_of order by suite",
            as_of=as_of,
        )
        if not rows:
            return GateOutcome(ran=False)
        failures = []
        for row in rows:
            if row["success"]:
                continue
            try:
                details = json.loads(row["failed_expectations"] or "[]")
            except ValueError:
                details = [str(row["failed_expectations"])]
            failures += [f"{row['suite']}: {d}" for d in details] or [f"{row['suite']}: failed"]
        return GateOutcome(ran=True, failures=failures)

    def freshness(self, as_of: datetime, threshold: timedelta) -> Freshness:
        """Stale when the newest event (up to as_of) or the newest load is older than the threshold at as_of."""
        latest_event = latest_load = None
        if self.has("fct_events"):
            latest_event = self.scalar("select max(event_at) from {s}.fct_events where event_at <= :as_of", as_of=as_of)
        if self.has("load_manifest"):
            latest_load = self.scalar("select max(loaded_at) from {s}.load_manifest")
        hours = threshold.total_seconds() / 3600
        problems = []
        if latest_event is None:
            problems.append(f"The data is stale: no event up to {as_of:%Y-%m-%d %H:%M} UTC has been loaded.")
        elif as_of - latest_event > threshold:
            problems.append(
                f"The data is stale: the newest event is from {latest_event:%Y-%m-%d %H:%M} UTC, "
                f"{(as_of - latest_event).total_seconds() / 3600:.0f} hours before {as_of:%Y-%m-%d %H:%M} UTC "
                f"(the sources' freshness threshold is {hours:g} hours)."
            )
        if latest_load is not None and as_of - latest_load > threshold:
            problems.append(
                f"The data is stale: nothing has been loaded since {latest_load:%Y-%m-%d %H:%M} UTC "
                f"(the sources' freshness threshold is {hours:g} hours)."
            )
        return Freshness(threshold, latest_event, latest_load, problems)

    def trust(self, as_of: datetime) -> Trust:
        return Trust(self.gate_outcome(as_of), self.freshness(as_of, freshness_threshold()))

    # -- email_log -------------------------------------------------------------------------------------
    def ensure_email_log(self) -> None:
        statements = [] if self.engine.dialect.name == "duckdb" else [("create schema if not exists {s}", {})]
        statements.append(
            (
                "create table if not exists {s}.email_log ("
                " subscription varchar not null, report varchar not null,"
                " period_start timestamp not null, period_end timestamp not null,"
                " message_id varchar, subject varchar, recipients integer not null,"
                " status varchar not null, reason varchar, sent_at timestamp not null)",
                {},
            )
        )
        self.execute(*statements)

    def already_sent(self, subscription: str, period: Period) -> bool:
        found = self.scalar(
            "select count(*) from {s}.email_log where subscription = :subscription"
            " and period_start = :period_start and period_end = :period_end and status = 'sent'",
            subscription=subscription,
            period_start=period.start,
            period_end=period.end,
        )
        return bool(found)

    def log_email(
        self,
        subscription: str,
        report: str,
        period: Period,
        *,
        status: str,
        recipients: int,
        message_id: str | None = None,
        subject: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record the outcome of one attempt; it replaces the period's earlier attempts (one row per period)."""
        key = {"subscription": subscription, "period_start": period.start, "period_end": period.end}
        row = {
            **key,
            "report": report,
            "message_id": message_id,
            "subject": subject,
            "recipients": recipients,
            "status": status,
            "reason": reason,
            # When it happened: a log of real attempts, not part of any figure.
            "sent_at": datetime.now(UTC).replace(tzinfo=None),
        }
        self.execute(
            (
                "delete from {s}.email_log where subscription = :subscription"
                " and period_start = :period_start and period_end = :period_end",
                key,
            ),
            (
                "insert into {s}.email_log (subscription, report, period_start, period_end, message_id, subject,"
                " recipients, status, reason, sent_at) values (:subscription, :report, :period_start, :period_end,"
                " :message_id, :subject, :recipients, :status, :reason, :sent_at)",
                row,
            ),
        )
