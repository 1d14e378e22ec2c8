"""The tasks of Rekindle's DAGs, shared by the DAG files in dags/ (which only wire them together).

Every task works on one data interval, handed from task to task as `{"start": iso, "end": iso}` by the
first task of each DAG: `data_interval` on a scheduled DAG (the run's own interval), `triggering_interval`
on a DAG scheduled by Assets, which has no interval of its own and takes the span of the intervals that
its triggering asset events carry in their `extra` (several hourly loads coalesced into one transform
cover the first one's start to the last one's end). dbt gets the interval end as `rekindle_as_of`.

The Assets that link the DAGs:
- `RAW_EVENTS` (rekindle://warehouse/raw): a load finished; the raw tables hold the interval's files.
- `MARTS` (rekindle://warehouse/marts): the marts were built and passed the quality gate.
- `GATE_VERDICT` (rekindle://warehouse/quality_gate_log): the gate recorded its verdict, pass or fail
  (report emails go out either way, flagged when the data failed).

This module lives outside dags/ so that the dag-processor does not parse it as a DAG file, and it imports
nothing heavy: the work happens inside the tasks.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, task

from loaders.settings import PROJECT_ROOT, load_settings

WAREHOUSE_POOL = "rekindle_warehouse"
RAW_EVENTS = Asset("rekindle://warehouse/raw")
MARTS = Asset("rekindle://warehouse/marts")
GATE_VERDICT = Asset("rekindle://warehouse/quality_gate_log")
INTERVAL_TASK = "data_interval"

DEFAULT_ARGS = {
    "owner": "rekindle",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _interval(payload: dict[str, str]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(payload["start"]), datetime.fromisoformat(payload["end"])


def _announce(outlet_events: Any, asset: Asset, interval: dict[str, str], **extra: Any) -> None:
    """Put the interval on the asset event, so the DAGs it triggers know which data they are processing."""
    outlet_events[asset].extra = {"interval_start": interval["start"], "interval_end": interval["end"], **extra}


@task(task_id=INTERVAL_TASK)
def data_interval(data_interval_start=None, data_interval_end=None) -> dict[str, str]:
    """The run's own data interval (a scheduled, manual or backfilled run of a cron-scheduled DAG)."""
    return {"start": data_interval_start.isoformat(), "end": data_interval_end.isoformat()}


@task(task_id=INTERVAL_TASK)
def triggering_interval(triggering_asset_events=None) -> dict[str, str]:
    """The span of the intervals carried by the asset events that triggered this run."""
    starts, ends = [], []
    for asset, events in (triggering_asset_events or {}).items():
        for event in events:
            extra = event.extra or {}
            if "interval_start" not in extra or "interval_end" not in extra:
                raise ValueError(
                    f"asset event {event.id if hasattr(event, 'id') else ''} of {getattr(asset, 'uri', asset)} has"
                    f" no interval_start/interval_end in its extra (got {extra!r}): Rekindle's DAGs set them; to"
                    " process an interval by hand, trigger rekindle_daily with that interval instead"
                )
            starts.append(datetime.fromisoformat(extra["interval_start"]))
            ends.append(datetime.fromisoformat(extra["interval_end"]))
    if not ends:
        raise ValueError("this DAG runs on asset events and none triggered this run: trigger rekindle_daily instead")
    return {"start": min(starts).isoformat(), "end": max(ends).isoformat()}


def load_landing(*, announce: Asset | None = None):
    @task(pool=WAREHOUSE_POOL, outlets=[announce] if announce else [])
    def load_landing(interval: dict[str, str], outlet_events=None) -> dict:
        from loaders.load import load_landing as load
        from loaders.warehouse import open_warehouse

        settings = load_settings()
        start, end = _interval(interval)
        warehouse = open_warehouse(settings.target, settings.warehouse)
        try:
            result = load(settings.landing, warehouse, (_naive(start), _naive(end)))
        finally:
            warehouse.close()
        if result.failed_files:  # after loading everything else: an operator must act on these
            raise RuntimeError("; ".join(f"{f.source_file}: {f.error}" for f in result.failed_files))
        summary = {"files": len(result.files), "events": result.total("loaded_events"),
                   "quarantined": result.total("quarantined"), "late_events": result.total("late_events"),
                   "changed_files": result.changed_files}  # fmt: skip
        if announce:
            _announce(outlet_events, announce, interval, files=summary["files"], events=summary["events"])
        return summary

    return load_landing


def _naive(moment: datetime) -> datetime:
    """Airflow's intervals are aware (UTC); the warehouse stores naive UTC timestamps."""
    from datetime import UTC

    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def dbt_build(task_id: str, **selection: list[str]):
    """A `dbt build` of part of the project through cosmos; both parts run the same way, only the selection
    differs. Imported here, not at module level, only to keep cosmos out of the tasks that do not need it."""
    from cosmos import ProfileConfig
    from cosmos.constants import InvocationMode
    from cosmos.operators.local import DbtBuildLocalOperator

    return DbtBuildLocalOperator(
        task_id=task_id,
        **selection,
        # A test runs in the build that builds all of its parents: with dbt's default (eager), the
        # fct_orders -> dim_users relationship test would run in the first build, before dim_users.
        indirect_selection="cautious",
        # Unit tests check the models' code on fixed inputs, not the day's data: they run where the code
        # changes (`make test`, CI), and a scheduled run skips them, as dbt's documentation recommends.
        dbt_cmd_flags=["--exclude-resource-type", "unit_test"],
        project_dir=str(PROJECT_ROOT),
        profile_config=ProfileConfig(
            profile_name="rekindle",
            target_name=os.environ.get("REKINDLE_TARGET", "duckdb"),
            profiles_yml_filepath=PROJECT_ROOT / "dbt_project" / "profiles.yml",
        ),
        env={
            # cosmos runs dbt from a copy of the project: hand it the warehouse as an absolute path.
            "REKINDLE_WAREHOUSE": str(load_settings().warehouse),
            # The models' "now": the end of the interval the first task of the DAG resolved. An environment
            # variable, not --vars: changed vars make dbt re-parse the whole project (macros/rekindle_as_of.sql).
            "REKINDLE_AS_OF": f"{{{{ ti.xcom_pull(task_ids='{INTERVAL_TASK}')['end'] }}}}",
        },
        append_env=True,
        install_deps=False,
        # A dbt subprocess releases the DuckDB file when it exits; in-process dbt-duckdb would keep it
        # open and lock out the tasks after it when they share a process (`airflow dags test`).
        invocation_mode=InvocationMode.SUBPROCESS,
        dbt_executable_path=str(Path(sys.executable).with_name("dbt")),
        pool=WAREHOUSE_POOL,
    )


@task(pool=WAREHOUSE_POOL)
def predict_clv(interval: dict[str, str]) -> dict:
    from loaders.clv import calibration_end_for, predict_for_run
    from loaders.settings import clv_horizon_days

    _, end = _interval(interval)
    outcome = predict_for_run(load_settings(), calibration_end_for(end), clv_horizon_days())
    return outcome.summary()  # a fit that fails is recorded in clv_runs and logged, not raised


def quality_gate(*, announce: Asset | None = None):
    @task(pool=WAREHOUSE_POOL, outlets=[announce] if announce else [])
    def quality_gate(interval: dict[str, str], outlet_events=None) -> dict:
        """Great Expectations suites; the verdict goes to quality_gate_log, a failure fails the task (and
        with it every sender after it). The asset event is emitted only when the gate passed."""
        from airflow.sdk.exceptions import AirflowFailException

        from expectations.gate import QualityGateFailed, enforce_gate

        start, end = _interval(interval)
        try:
            result = enforce_gate(load_settings(), start, end)
        except QualityGateFailed as failed:
            # bad data stays bad: fail at once instead of retrying (a crash of the gate itself still retries)
            raise AirflowFailException(str(failed)) from failed
        if announce:
            _announce(outlet_events, announce, interval)
        return {"checked": result.checked, "suites": len(result.suites)}

    return quality_gate


@task(trigger_rule="all_done", outlets=[GATE_VERDICT])
def publish_gate_verdict(interval: dict[str, str], outlet_events=None) -> None:
    """Tell the reports DAG that this interval's gate has spoken, whether it passed or not: the report
    email reads the verdict from quality_gate_log and flags (or holds back) a report on failed data."""
    _announce(outlet_events, GATE_VERDICT, interval)


@task(pool=WAREHOUSE_POOL)
def export_audiences(interval: dict[str, str]) -> dict:
    """Sync every audience of senders/audiences.yml: only what changed since the last sync, to the consenting,
    unsuppressed members outside the control groups; raises SyncFailed above an audience's failure threshold."""
    from senders.sync import sync_audiences

    start, end = _interval(interval)
    return sync_audiences(load_settings(), start, end)


def send_report(*, trigger_rule: str = "all_success"):
    @task(pool=WAREHOUSE_POOL, trigger_rule=trigger_rule)
    def send_report(interval: dict[str, str]) -> list[str]:
        """The report emails whose subscriptions fire in this interval, each once (email_log); a failed or
        missing quality gate is flagged in the email, or holds it back, as the subscription says."""
        from senders.report_email import send_due_reports

        start, end = _interval(interval)
        return send_due_reports(load_settings(), start, end)

    return send_report
