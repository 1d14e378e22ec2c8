"""Every DAG imports cleanly, is documented and owned, retries, and does no work at import time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
DAGS = PROJECT / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS), known_pools={"default_pool", "rekindle_warehouse"})


DAG_IDS = {"rekindle_daily", "rekindle_ingest", "rekindle_transform", "rekindle_activate", "rekindle_reports"}
# The tasks that never open the warehouse, and so need no slot of its single-writer pool.
OUTSIDE_THE_POOL = {"data_interval", "publish_gate_verdict"}


def test_every_dag_file_imports(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS
    assert len(list(DAGS.glob("*.py"))) == len(dagbag.dag_ids)  # one DAG per file


def test_dags_are_owned_documented_tagged_and_retry(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "airflow dags test" in dag.doc_md, dag_id
        assert dag.tags, dag_id
        for task in dag.tasks:
            assert task.owner == "rekindle", task.task_id
            assert task.retries >= 1, task.task_id


def test_warehouse_tasks_share_the_single_writer_pool(dagbag):
    for dag_id, dag in dagbag.dags.items():
        in_pool = {t.task_id for t in dag.tasks if t.pool == "rekindle_warehouse"}
        assert in_pool == {t.task_id for t in dag.tasks} - OUTSIDE_THE_POOL, dag_id
    dag = dagbag.dags["rekindle_daily"]
    assert len(dag.tasks) == 8
    assert [t.task_id for t in dag.topological_sort()][:6] == [
        "data_interval",
        "load_landing",
        "dbt_build_orders",
        "predict_clv",
        "dbt_build",
        "quality_gate",
    ]


def test_a_failed_gate_stops_the_senders_but_not_the_report(dagbag):
    tasks = dagbag.dags["rekindle_daily"].task_dict
    assert tasks["quality_gate"].downstream_task_ids == {"export_audiences", "send_report"}
    assert tasks["export_audiences"].trigger_rule == "all_success"
    assert tasks["send_report"].trigger_rule == "all_done"  # a failed gate is reported (flagged), not skipped


def test_the_stage_dags_are_linked_by_assets(dagbag):
    """ingest -> raw -> transform -> marts (gate passed) -> activate; transform -> gate verdict -> reports."""
    from airflow.sdk import Asset

    from loaders.orchestration import GATE_VERDICT, MARTS, RAW_EVENTS

    def outlets(dag_id: str, task_id: str) -> list:
        return dagbag.dags[dag_id].task_dict[task_id].outlets

    def scheduled_on(dag_id: str) -> list:
        return list(dagbag.dags[dag_id].timetable.asset_condition.objects)

    assert outlets("rekindle_ingest", "load_landing") == [RAW_EVENTS]
    assert scheduled_on("rekindle_transform") == [RAW_EVENTS]
    assert outlets("rekindle_transform", "quality_gate") == [MARTS]
    assert scheduled_on("rekindle_activate") == [MARTS]
    verdict = dagbag.dags["rekindle_transform"].task_dict["publish_gate_verdict"]
    assert verdict.outlets == [GATE_VERDICT] and verdict.trigger_rule == "all_done"
    assert verdict.upstream_task_ids == {"quality_gate", "data_interval"}
    assert scheduled_on("rekindle_reports") == [GATE_VERDICT]
    assert all(isinstance(a, Asset) for a in (RAW_EVENTS, MARTS, GATE_VERDICT))
    # the whole-chain DAG announces nothing: it must not trigger the stage DAGs a second time
    assert not any(t.outlets for t in dagbag.dags["rekindle_daily"].tasks)
    # the stage DAGs use the same tasks as rekindle_daily: same dbt selections, same gate
    daily, transform = dagbag.dags["rekindle_daily"].task_dict, dagbag.dags["rekindle_transform"].task_dict
    for task_id in ("dbt_build_orders", "dbt_build"):
        assert (daily[task_id].select, daily[task_id].exclude) == (
            transform[task_id].select,
            transform[task_id].exclude,
        )


def test_an_asset_triggered_run_processes_the_span_of_its_triggering_intervals():
    from types import SimpleNamespace

    from loaders.orchestration import RAW_EVENTS, triggering_interval

    def event(start: str, end: str) -> SimpleNamespace:
        return SimpleNamespace(id=1, extra={"interval_start": start, "interval_end": end})

    resolve = triggering_interval.function
    coalesced = {RAW_EVENTS: [event("2026-11-01T01:00:00+00:00", "2026-11-01T02:00:00+00:00"),
                              event("2026-11-01T00:00:00+00:00", "2026-11-01T01:00:00+00:00")]}  # fmt: skip
    assert resolve(triggering_asset_events=coalesced) == {
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-11-01T02:00:00+00:00",
    }
    with pytest.raises(ValueError, match="no interval_start/interval_end in its extra"):
        resolve(triggering_asset_events={RAW_EVENTS: [SimpleNamespace(id=7, extra={})]})
    with pytest.raises(ValueError, match="trigger rekindle_daily instead"):
        resolve(triggering_asset_events={})


def test_clv_runs_between_the_build_of_fct_orders_and_the_rest(dagbag):
    """predict_clv reads fct_orders and dim_users reads its predictions: fct_orders is built before, the rest after."""
    tasks = dagbag.dags["rekindle_daily"].task_dict
    orders, clv, rest = tasks["dbt_build_orders"], tasks["predict_clv"], tasks["dbt_build"]
    assert orders.downstream_task_ids == {"predict_clv"} and clv.downstream_task_ids == {"dbt_build"}
    assert (orders.select, orders.exclude) == (["+fct_orders"], None)
    assert (rest.select, rest.exclude) == (None, ["+fct_orders"])
    # cautious: a test with parents in both builds (fct_orders -> dim_users) runs once, in the second build
    assert orders.indirect_selection == rest.indirect_selection == "cautious"
    for key in ("vars", "env", "pool", "invocation_mode", "dbt_executable_path", "project_dir"):
        assert getattr(orders, key) == getattr(rest, key), key


def test_importing_a_dag_touches_no_warehouse_and_loads_no_heavy_library(tmp_path):
    """Parsing happens every few seconds in the dag-processor: no DuckDB, dbt or GX work may run there."""
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('duckdb', 'great_expectations', 'expectations.gate', 'loaders.load',"
        " 'senders.report_email', 'dbt.cli.main') if m in sys.modules]; print(heavy)"
    )
    env = {
        "REKINDLE_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "REKINDLE_LANDING": str(tmp_path / "none"),
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
    }
    for dag_file in DAGS.glob("*.py"):
        done = subprocess.run(
            [sys.executable, "-c", probe, str(dag_file)], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "[]", dag_file
    assert not (tmp_path / "w.duckdb").exists()


def test_the_two_dbt_builds_split_the_project_without_gap_or_overlap(dagbag, tmp_path):
    """Every model, snapshot, seed and data test is in exactly one of the two builds; unit tests (code checks on
    fixed inputs) are left to `make test`."""
    tasks = dagbag.dags["rekindle_daily"].task_dict
    assert all(
        tasks[t].dbt_cmd_flags == ["--exclude-resource-type", "unit_test"] for t in ("dbt_build_orders", "dbt_build")
    )

    def listed(*selection: str) -> list[str]:
        command = [str(Path(sys.executable).with_name("dbt")), "ls", "--quiet", "--resource-type", "model",
                   "snapshot", "seed", "test", "--target-path", str(tmp_path / "target"),
                   "--log-path", str(tmp_path / "logs"), *selection]  # fmt: skip
        env = {**os.environ, "DBT_PROFILES_DIR": str(PROJECT / "dbt_project"), "DO_NOT_TRACK": "1",
               "REKINDLE_WAREHOUSE": str(tmp_path / "w.duckdb"), "REKINDLE_TARGET": "duckdb"}  # fmt: skip
        done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        return done.stdout.split()

    def of(task) -> list[str]:
        selection = ["--indirect-selection", task.indirect_selection]
        selection += ["--select", *task.select] if task.select else []
        return listed(*selection, *(["--exclude", *task.exclude] if task.exclude else []))

    everything = listed()
    first, second = of(tasks["dbt_build_orders"]), of(tasks["dbt_build"])
    assert "rekindle.marts.engagement.fct_orders" in first and "rekindle.marts.users.dim_users" in second
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(everything)
