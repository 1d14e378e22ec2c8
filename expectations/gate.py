"""The data-quality gate between the marts and anything that leaves the warehouse.

Each suite is a query (one DataFrame) and its Great Expectations expectations. GX's SQL engine cannot
fetch through duckdb-engine (it closes its connection before fetching; DESIGN.md), so the gate reads each
checked relation itself — with DuckDB's own client on the DuckDB target, through SQLAlchemy on Postgres —
and validates the frame with GX's pandas data source, which computes real observed values.

What a run leaves behind:
- `quality_gate_log`: one row per suite for the data interval (`interval_end`, `suite`, `success`,
  `failed_expectations` as a JSON list of short strings, `checked_at`, and `row_count`, the rows the suite
  validated, from which the next interval's row-count bounds are taken). A rerun replaces the interval's
  rows. The report emails read it to flag (or hold back) a report built on data that failed.
- GX Data Docs, static HTML under `REKINDLE_OUT/docs/gx` (next to the dbt docs in `REKINDLE_OUT/docs/dbt`).

Tuning (environment variables, read when the gate runs):
- `REKINDLE_GATE_MAX_QUARANTINE_PCT` (5): a file of the batch with more of its records quarantined fails.
- `REKINDLE_GATE_MAX_ROW_DROP_PCT` (20): `dim_users` and `fct_events` may not shrink by more than this
  against the previous interval's gate run.
- `REKINDLE_GATE_FRESHNESS_HOURS` (48): the newest event in `fct_events` must be at most this old at the
  interval end; 0 turns the check off (replaying an old export such as CDNOW in today's intervals).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loaders.settings import Settings

log = logging.getLogger(__name__)

LOG_TABLE = "quality_gate_log"
# The suite whose table is built by another workstream and checked only once it exists.


class QualityGateFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class GateOptions:
    max_quarantine_pct: float = 5.0
    max_row_drop_pct: float = 20.0
    freshness_hours: float = 48.0

    @classmethod
    def from_env(cls) -> GateOptions:
        def number(name: str, default: float) -> float:
            value = os.environ.get(name, str(default))
            try:
                parsed = float(value)
            except ValueError:
                parsed = -1.0
            if parsed < 0 or math.isnan(parsed):
                raise ValueError(f"{name} must be a number, 0 or more; got {value!r}")
            return parsed

        return cls(
            max_quarantine_pct=number("REKINDLE_GATE_MAX_QUARANTINE_PCT", cls.max_quarantine_pct),
            max_row_drop_pct=number("REKINDLE_GATE_MAX_ROW_DROP_PCT", cls.max_row_drop_pct),
            freshness_hours=number("REKINDLE_GATE_FRESHNESS_HOURS", cls.freshness_hours),
        )


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    failed_expectations: list[str]
    row_count: int
    checked: int


@dataclass
class GateResult:
    interval_end: datetime
    suites: list[SuiteOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [f for s in self.suites for f in s.failed_expectations]

    @property
    def checked(self) -> int:
        return sum(s.checked for s in self.suites)

    @property
    def passed(self) -> bool:
        return all(s.success for s in self.suites)


@dataclass(frozen=True)
class Suite:
    """A relation to read (`query`, with `:name` parameters) and what must hold of it."""

    name: str
    query: str
    expectations: Callable[[], list]  # built lazily: importing GX takes seconds
    parameters: dict[str, Any] = field(default_factory=dict)
    # The figure kept in quality_gate_log.row_count: this one-row column, else the rows of the frame.
    count_column: str | None = None
    # Reads the frame in Python instead of `query` (the audience payloads come from the senders' own code).
    read: Callable[[Settings], Any] | None = None


class Warehouse:
    """Read and write the warehouse of the settings' target; `{marts}` and `{raw}` in SQL name its schemas."""

    def __init__(self, settings: Settings) -> None:
        self.target = settings.target
        if self.target == "duckdb":
            import duckdb

            self._duck = duckdb.connect(str(settings.warehouse))
            self.schemas = {"marts": "main", "raw": "raw"}
        elif self.target == "postgres":
            import sqlalchemy as sa

            from loaders.clv import warehouse_url

            url, schema = warehouse_url(settings)
            self._engine = sa.create_engine(url)
            self.schemas = {"marts": schema, "raw": f"{schema}_raw"}
        else:
            raise ValueError(f"REKINDLE_TARGET={self.target!r}: the quality gate runs on 'duckdb' or 'postgres'")

    def _sql(self, statement: str) -> str:
        return statement.format(**self.schemas)

    def frame(self, query: str, parameters: dict[str, Any] | None = None):
        query, parameters = self._sql(query), parameters or {}
        if self.target == "duckdb":
            # DuckDB's named parameters are $name; (?<!:) leaves `::` casts alone.
            return self._duck.execute(re.sub(r"(?<!:):(\w+)", r"$\1", query), parameters).df()
        import pandas as pd
        import sqlalchemy as sa

        with self._engine.connect() as con:
            return pd.read_sql(sa.text(query), con, params=parameters)

    def execute(self, statement: str, parameters: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        statement = self._sql(statement)
        rows = parameters if isinstance(parameters, list) else [parameters or {}]
        if self.target == "duckdb":
            statement = re.sub(r"(?<!:):(\w+)", r"$\1", statement)
            for row in rows:
                self._duck.execute(statement, row)
            return
        import sqlalchemy as sa

        with self._engine.begin() as con:
            con.execute(sa.text(statement), rows)

    def columns(self, schema: str, table: str) -> list[str]:
        """The columns of a table or view, [] when it does not exist."""
        found = self.frame(
            "select column_name from information_schema.columns"
            " where table_schema = :schema and table_name = :table order by ordinal_position",
            {"schema": self.schemas[schema], "table": table},
        )
        return list(found["column_name"])

    def close(self) -> None:
        if self.target == "duckdb":
            self._duck.close()
        else:
            self._engine.dispose()


def ensure_log_table(warehouse: Warehouse) -> None:
    warehouse.execute(
        f"create table if not exists {{marts}}.{LOG_TABLE} ("
        " interval_end timestamp not null, suite varchar(200) not null, success boolean not null,"
        " failed_expectations varchar not null, checked_at timestamp not null, row_count bigint not null)"
    )


def previous_row_counts(warehouse: Warehouse, interval_end: datetime) -> dict[str, int]:
    """Row counts of each suite at the latest gate run of an earlier interval (the bounds' reference)."""
    counts = warehouse.frame(
        f"select suite, row_count from {{marts}}.{LOG_TABLE} where interval_end = ("
        f" select max(interval_end) from {{marts}}.{LOG_TABLE} where interval_end < :interval_end)",
        {"interval_end": interval_end},
    )
    return dict(zip(counts["suite"], counts["row_count"].astype(int), strict=True))


def _row_count_floor(previous: int | None, options: GateOptions) -> int:
    """At least one row, and no drop beyond max_row_drop_pct of the previous interval's count."""
    if previous is None:
        return 1
    return max(1, math.ceil(previous * (1 - options.max_row_drop_pct / 100)))


PAYLOAD_COLUMNS = ["audience", "user_id", "consent", "email_missing"]


def audience_payloads(settings: Settings):
    """The rows the senders would send now, one per member and audience, decided by the senders' own code
    (`read_candidates` in senders/sync.py, with its SQL skip reasons): one definition of who leaves the warehouse.

    `consent` is the member's flag for the audience's channel (True for internal exports); `email_missing` is
    1 when the audience sends the email field and the member has none. A member twice in an audience (a
    duplicated profile fans out the join) is two rows, so the uniqueness expectation sees it."""
    import pandas as pd

    from senders.audiences import load_audiences
    from senders.state import Warehouse as SenderWarehouse
    from senders.sync import member_fields, read_candidates

    rows = []
    with SenderWarehouse(settings) as wh:
        has_state, has_suppressions = wh.relation_exists("sync_state"), wh.relation_exists("sync_suppressions")
        for audience in load_audiences():
            candidates = read_candidates(wh, audience, has_state=has_state, has_suppressions=has_suppressions)
            for candidate, reason in candidates:
                if not candidate.in_segment or reason is not None:
                    continue  # a leaver to remove, or a member the sender skips with a logged reason
                email = member_fields(audience, candidate.values).get("email")
                rows.append([audience.name, candidate.user_id, candidate.values["consent"],
                             int("email" in audience.fields and email in (None, ""))])  # fmt: skip
    return pd.DataFrame(rows, columns=PAYLOAD_COLUMNS)


def suites(
    interval_start: datetime,
    interval_end: datetime,
    previous: dict[str, int],
    options: GateOptions,
) -> list[Suite]:
    import great_expectations.expectations as gxe

    from loaders.settings import LoadOptions

    load_options = LoadOptions.from_env()
    batch = {"interval_start": interval_start, "interval_end": interval_end}
    # The batch of the interval: the files whose load the manifest attributes to it (a rerun that skips
    # already-loaded files still finds them; loaded_at is the wall clock and says nothing about intervals).
    batch_files = (
        "select source_file from {marts}.load_manifest where interval_start >= :interval_start"
        " and interval_end <= :interval_end"
    )
    freshness = (
        [gxe.ExpectColumnMaxToBeBetween(column="latest_event_at",
                                        min_value=interval_end - timedelta(hours=options.freshness_hours))]
        if options.freshness_hours else []
    )  # fmt: skip
    return [
        Suite(
            "raw_events_batch",
            # hours_after_load: how far past its arrival a record claims to have happened (a device clock
            # ahead of ours), the same measure the loader quarantines by; backfilled history is in the past
            "select e.event_key, e.event_name, e.event_ts,"
            " cast(extract(epoch from (e.event_ts - e.loaded_at)) / 3600.0 as double precision) as hours_after_load"
            " from {raw}.events e"
            f" where e.source_file in ({batch_files})",
            lambda: [
                gxe.ExpectColumnValuesToNotBeNull(column="event_key"),
                gxe.ExpectColumnValuesToBeUnique(column="event_key"),
                gxe.ExpectColumnValuesToNotBeNull(column="event_name"),
                gxe.ExpectColumnValuesToBeBetween(column="event_ts", min_value=load_options.earliest_ts),
                gxe.ExpectColumnValuesToBeBetween(
                    column="hours_after_load", max_value=load_options.future_tolerance.total_seconds() / 3600
                ),
            ],
            batch,
        ),
        Suite(
            "raw_batch_files",
            # Every record of a file is loaded, a duplicate or quarantined (unaccounted = 0), and a file
            # that is mostly broken stops the run before its remainder reaches a customer.
            "select source_file, input_records - loaded_events - loaded_profiles - duplicates - quarantined"
            " as unaccounted_records, 100.0 * quarantined / nullif(input_records, 0) as quarantined_pct"
            " from {marts}.load_manifest where interval_start >= :interval_start and interval_end <= :interval_end",
            lambda: [
                gxe.ExpectColumnValuesToBeUnique(column="source_file"),
                gxe.ExpectColumnValuesToBeBetween(column="unaccounted_records", min_value=0, max_value=0),
                gxe.ExpectColumnValuesToBeBetween(
                    column="quarantined_pct", min_value=0, max_value=options.max_quarantine_pct
                ),
            ],
            batch,
        ),
        Suite(
            "fct_events",
            "select max(event_at) as latest_event_at, count(*) as events from {marts}.fct_events",
            lambda: [
                gxe.ExpectColumnValuesToBeBetween(
                    column="events", min_value=_row_count_floor(previous.get("fct_events"), options)
                ),
                *freshness,
            ],
            count_column="events",
        ),
        Suite(
            "dim_users",
            "select user_id, order_count, revenue, r_score, f_score, m_score, clv_p_alive,"
            " case when can_email and email is null then 1 else 0 end as emailable_without_address"
            " from {marts}.dim_users",
            lambda: [
                gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
                gxe.ExpectColumnValuesToBeUnique(column="user_id"),
                gxe.ExpectTableRowCountToBeBetween(min_value=_row_count_floor(previous.get("dim_users"), options)),
                gxe.ExpectColumnValuesToBeBetween(column="order_count", min_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="revenue", min_value=0),
                *[
                    gxe.ExpectColumnValuesToBeBetween(column=c, min_value=1, max_value=5)
                    for c in ("r_score", "f_score", "m_score")
                ],
                gxe.ExpectColumnValuesToBeBetween(column="clv_p_alive", min_value=0, max_value=1),
                # an address is needed to email anyone: consent without one is a modelling bug
                gxe.ExpectColumnValuesToBeBetween(column="emailable_without_address", min_value=0, max_value=0),
            ],
        ),
        Suite(
            "segment_members",
            "select segment_name, user_id, evaluated_at from {marts}.segment_members",
            lambda: [
                gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["segment_name", "user_id"]),
                # every member was evaluated as of this interval's end, none left from another day
                gxe.ExpectColumnValuesToBeBetween(
                    column="evaluated_at", min_value=interval_end, max_value=interval_end
                ),
            ],
        ),
        Suite(
            "fct_campaign_attribution",
            # one row per conversion: under each attribution model its rows' credit adds up to the whole conversion
            "select conversion_event_key, count(*) as attributed_rows,"
            " sum(credit_last_touch) as credit_last_touch, sum(credit_first_touch) as credit_first_touch,"
            " sum(credit_linear) as credit_linear,"
            " sum(case when campaign_id is null or user_id is null then 1 else 0 end) as rows_without_key,"
            " sum(case when attribution_kind in ('converted', 'influenced') then 0 else 1 end) as rows_of_unknown_kind"
            " from {marts}.fct_campaign_attribution group by conversion_event_key",
            lambda: [
                gxe.ExpectColumnValuesToNotBeNull(column="conversion_event_key"),
                *(
                    gxe.ExpectColumnValuesToBeBetween(column=credit, min_value=0.999999, max_value=1.000001)
                    for credit in ("credit_last_touch", "credit_first_touch", "credit_linear")
                ),
                gxe.ExpectColumnValuesToBeBetween(column="rows_without_key", min_value=0, max_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="rows_of_unknown_kind", min_value=0, max_value=0),
            ],
        ),
        Suite(
            "audience_payloads",
            "",  # read by audience_payloads(): the rows the senders would send, each with the consent it relies on
            lambda: [
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["audience", "user_id"]),
                gxe.ExpectColumnValuesToBeInSet(column="consent", value_set=[True]),
                gxe.ExpectColumnValuesToBeBetween(column="email_missing", min_value=0, max_value=0),
            ],
            read=audience_payloads,
        ),
    ]


def _describe(suite: str, outcome) -> str:
    """`table.column: expectation (observed …)` — short enough for a log line and the report email."""
    config = outcome.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in {"batch_id", "result_format"}}
    target = kwargs.pop("column", None) or kwargs.pop("column_list", None)
    result = outcome.result or {}
    if "observed_value" in result:
        observed = f"observed {result['observed_value']}"
    elif "unexpected_count" in result:
        sample = ", ".join(str(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        observed = f"observed {result['unexpected_count']} unexpected" + (f", e.g. {sample}" if sample else "")
    else:  # GX could not compute the metric: say why instead of a blank
        info = outcome.exception_info or {}
        observed = f"not computed: {info.get('exception_message') or info}"
    bounds = ", ".join(f"{k}={v}" for k, v in kwargs.items() if v is not None)
    return f"{suite}{'.' + str(target) if target else ''}: {config.type}{f'({bounds})' if bounds else ''} ({observed})"


def _data_docs_context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # task logs, not terminals
    for site in list(context.variables.data_docs_sites or {}):
        context.delete_data_docs_site(site)  # the default site is a temporary folder nobody reads
    if docs_dir is not None:
        context.add_data_docs_site(
            "rekindle",
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _naive_utc(moment: datetime) -> datetime:
    """Airflow hands aware datetimes; the warehouse stores naive UTC timestamps."""
    from datetime import UTC

    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def run_gate(
    settings: Settings,
    data_interval_start: datetime,
    data_interval_end: datetime,
    *,
    docs_dir: Path | None = None,
    options: GateOptions | None = None,
) -> GateResult:
    """Validate every suite for the interval, record the outcome in quality_gate_log and the Data Docs.

    `docs_dir` defaults to `REKINDLE_OUT/docs/gx`. Raises nothing for failed expectations (see
    `enforce_gate`); a suite whose relation cannot be read is a failed suite with the error, not a crash.
    """
    import great_expectations as gx

    start, end = _naive_utc(data_interval_start), _naive_utc(data_interval_end)
    options = options or GateOptions.from_env()
    docs_dir = docs_dir if docs_dir is not None else settings.out / "docs" / "gx"
    context = _data_docs_context(docs_dir)
    source = context.data_sources.add_pandas("rekindle_warehouse")
    result = GateResult(interval_end=end)
    warehouse = Warehouse(settings)
    try:
        ensure_log_table(warehouse)
        previous = previous_row_counts(warehouse, end)
        for suite in suites(start, end, previous, options):
            try:
                frame = suite.read(settings) if suite.read else warehouse.frame(suite.query, suite.parameters)
            except Exception as exc:  # a relation the gate cannot read fails that suite, with the reason
                result.suites.append(SuiteOutcome(suite.name, False, [f"{suite.name}: cannot be read: {exc}"], 0, 0))
                continue
            expectations = suite.expectations()
            batch_definition = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe(suite.name)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(
                    name=suite.name,
                    data=batch_definition,
                    suite=context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=expectations)),
                )
            )
            validation = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
            failed = [_describe(suite.name, r) for r in validation.results if not r.success]
            rows = int(frame[suite.count_column].iloc[0]) if suite.count_column and len(frame) else len(frame)
            result.suites.append(SuiteOutcome(suite.name, not failed, failed, rows, len(expectations)))
        checked_at = datetime.now()
        # One row per suite per interval: a rerun of the interval replaces what the last run recorded.
        warehouse.execute(
            f"delete from {{marts}}.{LOG_TABLE} where interval_end = :interval_end", {"interval_end": end}
        )
        warehouse.execute(
            f"insert into {{marts}}.{LOG_TABLE} (interval_end, suite, success, failed_expectations, checked_at,"
            " row_count) values (:interval_end, :suite, :success, :failed, :checked_at, :row_count)",
            [
                {
                    "interval_end": end,
                    "suite": s.suite,
                    "success": s.success,
                    "failed": json.dumps(s.failed_expectations),
                    "checked_at": checked_at,
                    "row_count": s.row_count,
                }
                for s in result.suites
            ],
        )
    finally:
        warehouse.close()
    if docs_dir is not None:
        context.build_data_docs()
    for failure in result.failures:
        log.error("quality gate: %s", failure)
    return result


def enforce_gate(
    settings: Settings, data_interval_start: datetime, data_interval_end: datetime, **kwargs: Any
) -> GateResult:
    """Run the gate and raise (stopping the senders after it) when any expectation failed."""
    result = run_gate(settings, data_interval_start, data_interval_end, **kwargs)
    if not result.passed:
        raise QualityGateFailed(
            f"{len(result.failures)} of {result.checked} expectations failed"
            f" (quality_gate_log, interval_end {result.interval_end.isoformat()}): " + "; ".join(result.failures)
        )
    return result
