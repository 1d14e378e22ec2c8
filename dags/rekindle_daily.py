"""
### rekindle_daily

The whole Rekindle loop for one day, on the warehouse named by `REKINDLE_WAREHOUSE`:

1. **load_landing** — new files of the landing zone (`REKINDLE_LANDING`) into `raw.*`; bad records go to
   `quarantine_events`, per-file counts to `load_manifest`. Files already loaded are skipped.
2. **dbt_build_orders** — `dbt build --select +fct_orders` (those models and their tests) through
   astronomer-cosmos, with the run's `data_interval_end` as the models' "now" (`rekindle_as_of`), so a
   backfilled day sees that day's world.
3. **predict_clv** — BG/NBD and Gamma-Gamma customer value fitted on `fct_orders` up to the interval's last
   full day, predicting `REKINDLE_CLV_HORIZON_DAYS` (90) days ahead, into `clv_model_params`,
   `clv_predictions` and `clv_runs`. Advisory: when the history gives no fit (a young shop), `clv_runs`
   records why, the predictions are emptied and the run goes on.
4. **dbt_build** — `dbt build` of everything else (`--exclude +fct_orders`), `dim_users` with its CLV
   columns among it. Both builds use cautious test selection, so each test runs in the build that
   builds all of its parents (the `fct_orders` → `dim_users` relationship test runs here).
5. **quality_gate** — Great Expectations suites on the marts; a failure stops everything after it.
6. **export_audiences** — each audience of `senders/audiences.yml` to its destination.
7. **send_report** — the daily report email into the outbox (`REKINDLE_OUT/outbox`).

Run one day: `airflow dags test rekindle_daily 2026-11-01` processes the interval 2026-10-31 → 2026-11-01,
as the scheduled run at midnight would (a manual run takes the interval that ends at its date).
Every task that opens the DuckDB file runs in the `rekindle_warehouse` pool (size 1): DuckDB allows
one writing process, and no reader beside it. Every task is idempotent, so retries and reruns are safe.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import CronDataIntervalTimetable, dag, task
from cosmos import ProfileConfig
from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtBuildLocalOperator

from loaders.settings import PROJECT_ROOT, load_settings

WAREHOUSE_POOL = "rekindle_warehouse"


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # Early on purpose: Airflow creates no task for a day before start_date, and backfills of old
    # exports (CDNOW is from 1997) must run. catchup=False keeps unpausing from replaying all of it.
    start_date=datetime(1990, 1, 1),
    # Off on purpose: history is replayed with `airflow dags backfill`, never by surprise on unpause.
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "rekindle",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    tags=["rekindle", "daily"],
    doc_md=__doc__,
)
def rekindle_daily():
    @task(pool=WAREHOUSE_POOL)
    def load_landing(data_interval_start=None, data_interval_end=None) -> dict:
        from loaders.load import load_landing as load
        from loaders.warehouse import open_warehouse

        settings = load_settings()
        interval = (data_interval_start.replace(tzinfo=None), data_interval_end.replace(tzinfo=None))
        warehouse = open_warehouse(settings.target, settings.warehouse)
        try:
            result = load(settings.landing, warehouse, interval)
        finally:
            warehouse.close()
        if result.failed_files:  # after loading everything else: an operator must act on these
            raise RuntimeError("; ".join(f"{f.source_file}: {f.error}" for f in result.failed_files))
        return {"files": len(result.files), "events": result.total("loaded_events"),
                "quarantined": result.total("quarantined"), "late_events": result.total("late_events"),
                "changed_files": result.changed_files}  # fmt: skip

    def dbt_build_task(task_id: str, **selection: list[str]) -> DbtBuildLocalOperator:
        """A `dbt build` of part of the project; both parts run the same way, only the selection differs."""
        return DbtBuildLocalOperator(
            task_id=task_id,
            **selection,
            # A test runs in the build that builds all of its parents: with dbt's default (eager), the
            # fct_orders -> dim_users relationship test would run in the first build, before dim_users.
            indirect_selection="cautious",
            project_dir=str(PROJECT_ROOT),
            profile_config=ProfileConfig(
                profile_name="rekindle",
                target_name=os.environ.get("REKINDLE_TARGET", "duckdb"),
                profiles_yml_filepath=PROJECT_ROOT / "dbt_project" / "profiles.yml",
            ),
            vars={"rekindle_as_of": "{{ data_interval_end.isoformat() }}"},
            # cosmos runs dbt from a copy of the project: hand it the warehouse as an absolute path.
            env={"REKINDLE_WAREHOUSE": str(load_settings().warehouse)},
            append_env=True,
            install_deps=False,
            # A dbt subprocess releases the DuckDB file when it exits; in-process dbt-duckdb would keep it
            # open and lock out the tasks after it when they share a process (`airflow dags test`).
            invocation_mode=InvocationMode.SUBPROCESS,
            dbt_executable_path=str(Path(sys.executable).with_name("dbt")),
            pool=WAREHOUSE_POOL,
        )

    # CLV is fitted on fct_orders and read by dim_users: build the orders, predict, then build the rest.
    dbt_build_orders = dbt_build_task("dbt_build_orders", select=["+fct_orders"])
    dbt_build = dbt_build_task("dbt_build", exclude=["+fct_orders"])

    @task(pool=WAREHOUSE_POOL)
    def predict_clv(data_interval_end=None) -> dict:
        from loaders.clv import calibration_end_for, predict_for_run
        from loaders.settings import clv_horizon_days

        outcome = predict_for_run(load_settings(), calibration_end_for(data_interval_end), clv_horizon_days())
        return outcome.summary()  # a fit that fails is recorded in clv_runs and logged, not raised

    @task(pool=WAREHOUSE_POOL)
    def quality_gate() -> int:
        from expectations.gate import enforce_gate

        return enforce_gate(load_settings().warehouse).checked

    @task(pool=WAREHOUSE_POOL)
    def export_audiences(data_interval_start=None) -> dict:
        from senders.audiences import load_audiences
        from senders.file_export import export_audience

        settings = load_settings()
        run_date = data_interval_start.date()
        results = [export_audience(settings.warehouse, a, settings.exports, run_date) for a in load_audiences()]
        return {r.audience: r.rows for r in results}

    @task(pool=WAREHOUSE_POOL)
    def send_report(data_interval_start=None) -> str:
        from senders.report_email import write_daily_report

        settings = load_settings()
        return str(write_daily_report(settings.warehouse, settings.outbox, data_interval_start.date()))

    gate = quality_gate()
    load_landing() >> dbt_build_orders >> predict_clv() >> dbt_build >> gate
    gate >> [export_audiences(), send_report()]


rekindle_daily()
