"""Cosmos per-model tasks against one `dbt build` task, through `airflow dags test`, on the same data.

    python tests/bench/cosmos_modes.py --users 20000 --days 30 --workdir /tmp/cosmos_bench

Both DAGs build the whole dbt project (models, snapshots, seeds and their tests) on a copy of the same
freshly loaded warehouse, with the same cosmos settings (dbt as a subprocess, the warehouse pool). The
per-model DAG renders a `DbtTaskGroup` from a pre-built manifest (`dbt parse`, `LoadMode.DBT_MANIFEST`), so
parsing it never runs dbt. Printed: wall time of each `airflow dags test` and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

DAG_FILE = '''
"""Bench DAGs (airflow dag): cosmos per-model vs a single dbt build."""
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import dag
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode
from cosmos.operators.local import DbtBuildLocalOperator

PROJECT = Path({project!r})
PROFILE = ProfileConfig(profile_name="rekindle", target_name="duckdb",
                        profiles_yml_filepath=PROJECT / "dbt_project" / "profiles.yml")
ARGS = dict(env={{"REKINDLE_WAREHOUSE": os.environ["REKINDLE_WAREHOUSE"],
                 "REKINDLE_AS_OF": "{{{{ data_interval_end.isoformat() }}}}"}}, append_env=True, install_deps=False,
            pool="rekindle_warehouse")
DBT = {dbt!r}


@dag(schedule=None, start_date=datetime(2020, 1, 1), catchup=False, tags=["bench"])
def bench_single_build():
    DbtBuildLocalOperator(task_id="dbt_build", project_dir=str(PROJECT), profile_config=PROFILE,
                          invocation_mode=InvocationMode.SUBPROCESS, dbt_executable_path=DBT, **ARGS)


@dag(schedule=None, start_date=datetime(2020, 1, 1), catchup=False, tags=["bench"])
def bench_per_model():
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=PROJECT, manifest_path={manifest!r}, project_name="rekindle"),
        profile_config=PROFILE,
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.SUBPROCESS, dbt_executable_path=DBT),
        operator_args=ARGS,
    )


bench_single_build()
bench_per_model()
'''


def run(command: list[str], env: dict[str, str], log: Path, check: bool = True) -> float:
    started = time.monotonic()
    with log.open("w") as handle:
        done = subprocess.run(command, env=env, cwd=PROJECT, stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - started
    if check and done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--workdir", type=Path, default=PROJECT / "target" / "cosmos_bench")
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "dags").mkdir(parents=True)
    sys.path.insert(0, str(PROJECT))
    from loaders.generate import generate
    from loaders.load import load_landing

    interval_end = datetime.combine(args.end + timedelta(days=1), datetime.min.time())
    generate(work / "landing", users=args.users, days=args.days, seed=42, end=args.end)
    load_landing(str(work / "landing"), work / "loaded.duckdb", (interval_end - timedelta(days=1), interval_end))

    env = {**os.environ, "AIRFLOW_HOME": str(work / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
           "DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": str(PROJECT / "dbt_project"),
           "REKINDLE_WAREHOUSE": str(work / "parse.duckdb")}  # fmt: skip
    manifest_started = time.monotonic()
    run([str(BIN / "dbt"), "parse", "--target-path", str(work / "target"), "--log-path", str(work / "logs")], env,
        work / "dbt-parse.log")  # fmt: skip
    parse_seconds = time.monotonic() - manifest_started
    (work / "dags" / "bench_cosmos.py").write_text(
        DAG_FILE.format(project=str(PROJECT), dbt=str(BIN / "dbt"), manifest=str(work / "target" / "manifest.json"))
    )
    run([str(BIN / "airflow"), "db", "migrate"], env, work / "migrate.log")
    run([str(BIN / "airflow"), "pools", "set", "rekindle_warehouse", "1", "bench"], env, work / "pool.log")
    seconds = {}
    for dag_id in ("bench_single_build", "bench_per_model"):
        warehouse = work / f"{dag_id}.duckdb"
        shutil.copy(work / "loaded.duckdb", warehouse)
        run_env = {**env, "REKINDLE_WAREHOUSE": str(warehouse)}
        seconds[dag_id] = run([str(BIN / "airflow"), "dags", "test", dag_id, interval_end.isoformat()], run_env,
                              work / f"{dag_id}.log", check=False)  # fmt: skip
        if "state=success" not in (work / f"{dag_id}.log").read_text():
            # timed all the same: the per-model group can fail where one build does not (a test with two
            # parents scheduled after the first); the report says so instead of hiding the run
            print(f"{dag_id} did not succeed; see {work / f'{dag_id}.log'}")
    tasks = (work / "bench_per_model.log").read_text().count("Running command:")
    print(f"{args.users} users x {args.days} days; dbt parse (the manifest): {parse_seconds:.1f} s")
    print(f"one dbt build task:     {seconds['bench_single_build']:.1f} s")
    print(f"cosmos per-model tasks: {seconds['bench_per_model']:.1f} s ({tasks} dbt invocations)")
    print(f"per-model / single build: {seconds['bench_per_model'] / seconds['bench_single_build']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
