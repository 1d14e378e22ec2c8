"""
### rekindle_activate

Sends the audiences of `senders/audiences.yml` to their destinations whenever the marts were rebuilt and
passed the quality gate (the Asset `rekindle://warehouse/marts`, updated by `rekindle_transform` only on a
passed gate). The interval is the one the marts were built for, carried by the asset event.

Run it by hand with `airflow dags test rekindle_activate` only after a transform has produced an asset
event; to process one interval from start to end use `airflow dags test rekindle_daily 2026-11-01`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from loaders import orchestration as tasks


@dag(
    schedule=[tasks.MARTS],
    start_date=datetime(1990, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    tags=["rekindle", "activate"],
    doc_md=__doc__,
)
def rekindle_activate():
    tasks.export_audiences(tasks.triggering_interval())


rekindle_activate()
