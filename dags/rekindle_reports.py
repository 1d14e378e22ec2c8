"""
### rekindle_reports

Sends the report emails once the quality gate has given its verdict on an interval (the Asset
`rekindle://warehouse/quality_gate_log`, updated by `rekindle_transform` whether the gate passed or
failed): a report built on data that failed the gate is flagged, not silently skipped.

Run it by hand with `airflow dags test rekindle_reports` only after a transform has produced an asset
event; to process one interval from start to end use `airflow dags test rekindle_daily 2026-11-01`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from loaders import orchestration as tasks


@dag(
    schedule=[tasks.GATE_VERDICT],
    start_date=datetime(1990, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    tags=["rekindle", "reports"],
    doc_md=__doc__,
)
def rekindle_reports():
    tasks.send_report()(tasks.triggering_interval())


rekindle_reports()
