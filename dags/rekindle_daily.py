"""
### rekindle_daily

The whole Rekindle loop for one day, on the warehouse named by `REKINDLE_WAREHOUSE`:

0. **data_interval** — the run's data interval, which every task after it works on.
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
5. **quality_gate** — Great Expectations suites (`expectations/gate.py`) on the interval's raw batch, the
   marts and the audience payloads; the verdict goes to `quality_gate_log` and the Data Docs to
   `REKINDLE_OUT/docs/gx`. A failure stops the senders.
6. **export_audiences** — each audience of `senders/audiences.yml` to its destination; only after a
   passed gate.
7. **send_report** — the daily report email into the outbox (`REKINDLE_OUT/outbox`); it runs whatever the
   gate said (trigger rule `all_done`), so a bad day is reported, not silently skipped.

The same tasks, split by stage and linked by Assets, make the continuous deployment: `rekindle_ingest`
→ `rekindle_transform` → `rekindle_activate` and `rekindle_reports`. This DAG runs the whole chain for one
interval: what `make demo` and backfills use (`airflow backfill create --dag-id rekindle_daily --from-date ...
--to-date ... --max-active-runs 1`: a backfill's own limit, 10 by default, overrides `max_active_runs` below).

Run one day: `airflow dags test rekindle_daily 2026-11-01` processes the interval 2026-10-31 → 2026-11-01,
as the scheduled run at midnight would (a manual run takes the interval that ends at its date).
Every task that opens the DuckDB file runs in the `rekindle_warehouse` pool (size 1): DuckDB allows
one writing process, and no reader beside it. Every task is idempotent, so retries and reruns are safe.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import CronDataIntervalTimetable, dag

from loaders import orchestration as tasks


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # Early on purpose: Airflow creates no task for a day before start_date, and backfills of old
    # exports (CDNOW is from 1997) must run. catchup=False keeps unpausing from replaying all of it.
    start_date=datetime(1990, 1, 1),
    # Off on purpose: history is replayed with a backfill, never by surprise on unpause.
    catchup=False,
    # Days run one after the other: each day's incremental models start from the previous day's state.
    # A backfill ignores this and uses its own limit: create it with --max-active-runs 1.
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    tags=["rekindle", "daily"],
    doc_md=__doc__,
)
def rekindle_daily():
    interval = tasks.data_interval()
    # CLV is fitted on fct_orders and read by dim_users: build the orders, predict, then build the rest.
    dbt_build_orders = tasks.dbt_build("dbt_build_orders", select=["+fct_orders"])
    dbt_build = tasks.dbt_build("dbt_build", exclude=["+fct_orders"])
    gate = tasks.quality_gate()(interval)
    tasks.load_landing()(interval) >> dbt_build_orders >> tasks.predict_clv(interval) >> dbt_build >> gate
    gate >> [tasks.export_audiences(interval), tasks.send_report(trigger_rule="all_done")(interval)]


rekindle_daily()
