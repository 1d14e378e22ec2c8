"""
### rekindle_transform

Builds the marts whenever `rekindle_ingest` has loaded new data (the Asset `rekindle://warehouse/raw`),
then runs the quality gate:

1. **data_interval** — the span of the loads that triggered the run (an asset-scheduled run has no data
   interval of its own: it takes the intervals the asset events carry, from the first start to the last
   end); its end is the models' "now" (`rekindle_as_of`).
2. **dbt_build_orders** → **predict_clv** → **dbt_build** — as in `rekindle_daily`.
3. **quality_gate** — Great Expectations suites; the verdict goes to `quality_gate_log`. Only a passed gate
   updates the Asset `rekindle://warehouse/marts`, which schedules `rekindle_activate`: a bad batch never
   reaches a sender.
4. **publish_gate_verdict** — runs whatever happened before it and updates
   `rekindle://warehouse/quality_gate_log`, which schedules `rekindle_reports`.

Run it by hand with `airflow dags test rekindle_transform` only after a load has produced an asset event;
to process one interval from start to end use `airflow dags test rekindle_daily 2026-11-01`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from loaders import orchestration as tasks


@dag(
    schedule=[tasks.RAW_EVENTS],
    start_date=datetime(1990, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=tasks.DEFAULT_ARGS,
    tags=["rekindle", "transform"],
    doc_md=__doc__,
)
def rekindle_transform():
    interval = tasks.triggering_interval()
    dbt_build_orders = tasks.dbt_build("dbt_build_orders", select=["+fct_orders"])
    dbt_build = tasks.dbt_build("dbt_build", exclude=["+fct_orders"])
    gate = tasks.quality_gate(announce=tasks.MARTS)(interval)
    interval >> dbt_build_orders >> tasks.predict_clv(interval) >> dbt_build >> gate
    gate >> tasks.publish_gate_verdict(interval)


rekindle_transform()
