"""
### rekindle_ingest

Loads the landing zone (`REKINDLE_LANDING`) into the raw tables every hour: new files only (a loaded file
is skipped, a file changed after loading is reported), bad records to `quarantine_events`, per-file counts
to `load_manifest`. When the load succeeds it updates the Asset `rekindle://warehouse/raw` with the
interval it loaded, which schedules `rekindle_transform`.

Run one hour by hand: `airflow dags test rekindle_ingest 2026-11-01T01:00:00` loads the interval that ends
then. For a whole day in one go (load, build, gate, send) use `rekindle_daily`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, dag

from loaders import orchestration as tasks


@dag(
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(1990, 1, 1),
    # Off on purpose: a load takes every new file whatever its interval, so replaying missed hours would
    # load nothing more; history is replayed with rekindle_daily's backfill.
    catchup=False,
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    tags=["rekindle", "ingest"],
    doc_md=__doc__,
)
def rekindle_ingest():
    tasks.load_landing(announce=tasks.RAW_EVENTS)(tasks.data_interval())


rekindle_ingest()
