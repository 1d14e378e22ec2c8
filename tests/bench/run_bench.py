"""`make bench`: run every stage of the pipeline on generated data and report what each one costs.

Each stage runs in its own child process (this script with `--stage NAME`), so its peak memory (max RSS,
from wait4) is its own. Timings are only comparable within one run on these shared machines, so the
report also gives ratios measured in the same run: the loader against a bare DuckDB `read_json` of the
same files, the whole DAG through Airflow against the same stages called directly, an incremental dbt
build after 1% more events against the full build, the same dbt build on Postgres against DuckDB, and 20
segments (tests/bench/segments_bench.yml) against one bare scan-and-aggregate of fct_events.

The generator's output is split first: the last INCREMENT_SHARE of the events (the tail of the last day's
file, as an hourly load would bring) is held back, the pipeline runs on the rest, and the held-back file is
then loaded and built incrementally, and built once more with nothing new: the floor every run pays (the
marts that move with the as-of instant are rebuilt in full, and dbt has its own cost per model).

    python tests/bench/run_bench.py --users 20000 --days 30 [--no-airflow] [--no-postgres] [--generated DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASELINE = "read_json into a table (baseline)"
INCREMENT_SHARE = 0.01  # of all event lines, held back for the incremental build
INCREMENTAL_MODELS_SHOWN = 10  # the incremental build's costliest models, listed under its ratio
DBT_PARTS = ("dbt_build_orders", "dbt_build")  # rekindle_daily's two dbt tasks


@dataclass
class Stage:
    name: str
    seconds: float
    peak_mb: float
    events: int | None = None
    # CPU seconds of the stage's process and the processes it waited for (dbt): on a shared machine the wall
    # time follows the load, the CPU time much less.
    cpu: float = 0.0


class Run:
    """The paths and dates of one bench run, derived from the command line in parent and children alike."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = args.workdir.resolve()
        self.landing = self.work / "landing"
        self.out = self.work / "direct"
        self.warehouse = self.out / "rekindle.duckdb"
        self.day = args.end
        day_start = datetime.combine(args.end, datetime.min.time())
        self.interval = (day_start, day_start + timedelta(days=1))  # the last day, as rekindle_daily sees it
        self.increment = self.work / "increment" / f"{args.end.isoformat()}-increment.jsonl.gz"
        self.results = self.work / "dbt_results"  # run_results.json of every dbt invocation, by stage
        self.pg_database = f"rekindle_bench_{os.getpid() if args.stage is None else args.pg_database}"


def stage_generate(run: Run) -> None:
    if run.args.generated:
        # Generating 10 million events takes half an hour: reuse an earlier run's output (landing zone and the
        # held-back increment), copied so that this run's loads do not change it.
        source = run.args.generated.resolve()
        shutil.copytree(source / "landing", run.landing)
        shutil.copytree(source / "increment", run.increment.parent)
        return
    from loaders.generate import generate

    generate(run.landing, users=run.args.users, days=run.args.days, seed=run.args.seed, end=run.args.end)
    hold_back_increment(run)


def hold_back_increment(run: Run) -> None:
    """Move the last INCREMENT_SHARE of all event lines (the tail of the last day's file) aside."""
    import gzip

    files = sorted((run.landing / "events").glob("*.jsonl.gz"))
    total = 0
    for file in files:
        with gzip.open(file, "rb") as handle:
            total += sum(1 for _ in handle)
    last = files[-1]
    with gzip.open(last, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    held = max(1, round(total * INCREMENT_SHARE))
    if held >= len(lines):
        raise SystemExit(f"bench: the last day has {len(lines)} lines, fewer than the {held} to hold back")
    run.increment.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(run.increment, "wb") as handle:
        handle.writelines(lines[-held:])
    with gzip.open(last, "wb") as handle:
        handle.writelines(lines[:-held])


def stage_baseline(run: Run) -> None:
    """The floor for the loader: DuckDB's own read_json of the same event files into a table, no checks."""
    import duckdb

    duckdb.connect(str(run.work / "baseline.duckdb")).execute(
        "create table events as select * from read_json(?, format='newline_delimited', ignore_errors=true)",
        [f"{run.landing}/events/*.jsonl.gz"],
    ).fetchall()


def stage_load(run: Run) -> None:
    from loaders.load import load_landing

    load_landing(str(run.landing), run.warehouse, run.interval)


def dbt_build(run: Run, *selection: str, stage: str, env: dict[str, str] | None = None) -> None:
    """`dbt build` of part of the project, selected as rekindle_daily's two dbt tasks select."""
    as_of = run.interval[1].isoformat()
    target = run.work / "target" / stage
    command = [
        str(BIN / "dbt"),
        "build",
        "--quiet",
        "--indirect-selection",
        "cautious",
        # as the DAG's builds do (loaders/orchestration.py): unit tests belong to make test, not a daily run
        "--exclude-resource-type",
        "unit_test",
        *selection,
        "--target-path",
        str(target),
        "--log-path",
        str(run.work / "logs"),
    ]
    env = {**os.environ, **(env or {}), "REKINDLE_AS_OF": as_of}  # as the DAG's dbt tasks hand it over
    subprocess.run(command, cwd=PROJECT, check=True, env=env)
    run.results.mkdir(parents=True, exist_ok=True)
    part = "orders" if "+fct_orders" in selection and "--select" in selection else "rest"
    shutil.copy2(target / "run_results.json", run.results / f"{stage}-{part}.json")


def build_both_parts(run: Run, stage: str, env: dict[str, str] | None = None) -> None:
    dbt_build(run, "--select", "+fct_orders", stage=stage, env=env)
    dbt_build(run, "--exclude", "+fct_orders", stage=stage, env=env)


def stage_dbt_orders(run: Run) -> None:
    dbt_build(run, "--select", "+fct_orders", stage="dbt_build_orders")


def stage_clv(run: Run) -> None:
    from loaders.clv import calibration_end_for, predict_for_run
    from loaders.settings import clv_horizon_days, load_settings

    predict_for_run(load_settings(), calibration_end_for(run.interval[1]), clv_horizon_days())


def stage_dbt(run: Run) -> None:
    dbt_build(run, "--exclude", "+fct_orders", stage="dbt_build")


def stage_gate(run: Run) -> None:
    from expectations.gate import enforce_gate
    from loaders.settings import load_settings

    enforce_gate(load_settings(), *run.interval)


def stage_export(run: Run) -> None:
    from loaders.settings import load_settings
    from senders.sync import sync_audiences

    sync_audiences(load_settings(), *run.interval)


def stage_report(run: Run) -> None:
    from loaders.settings import load_settings
    from senders.report_email import send_due_reports

    send_due_reports(load_settings(), *run.interval)


STAGES = {
    "generate": stage_generate,
    BASELINE: stage_baseline,
    "load_landing": stage_load,
    "dbt_build_orders": stage_dbt_orders,
    "predict_clv": stage_clv,
    "dbt_build": stage_dbt,
    "quality_gate": stage_gate,
    "export_audiences": stage_export,
    "send_report": stage_report,
}


def stage_load_increment(run: Run) -> None:
    from loaders.load import load_landing

    shutil.move(run.increment, run.landing / "events" / run.increment.name)
    load_landing(str(run.landing), run.warehouse, run.interval)


def stage_dbt_incremental(run: Run) -> None:
    """Both dbt parts again, after the 1% load: the incremental models take only what changed."""
    build_both_parts(run, "dbt_incremental")


def stage_dbt_nothing_new(run: Run) -> None:
    """Both dbt parts once more with nothing loaded since: what every run costs whatever it brings (the marts
    rebuilt in full because they move with the as-of instant, the incremental models finding that nothing
    changed, dbt's own work per model). An incremental run cannot cost less than this."""
    build_both_parts(run, "dbt_nothing_new")


def postgres_env(run: Run) -> dict[str, str]:
    return {"REKINDLE_TARGET": "postgres", "REKINDLE_PG_DATABASE": run.pg_database}


def on_server(statement: str) -> None:
    """One statement on the Postgres server's maintenance database, outside a transaction (CREATE DATABASE)."""
    import psycopg2

    from loaders.settings import postgres_params

    admin = psycopg2.connect(**postgres_params("postgres"))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(statement)
    admin.close()


def stage_postgres_load(run: Run) -> None:
    """The same landing zone (before the increment) into a new database of the machine's Postgres."""
    from loaders.load import load_landing
    from loaders.postgres import PostgresWarehouse

    on_server(f'create database "{run.pg_database}"')
    os.environ.update(postgres_env(run))
    warehouse = PostgresWarehouse.from_env()
    try:
        load_landing(str(run.landing), warehouse, run.interval)
    finally:
        warehouse.close()


def stage_postgres_dbt(run: Run) -> None:
    build_both_parts(run, "postgres_dbt_build", env=postgres_env(run))


SEGMENTS_BENCH = Path(__file__).with_name("segments_bench.yml")


def stage_bare_scan(run: Run) -> None:
    """The floor for segments: one scan of fct_events aggregated per user, timed inside the process."""
    import json

    import duckdb

    with duckdb.connect(str(run.warehouse), read_only=True) as con:
        started = time.perf_counter()
        # Into a table, as the segment build writes its own: under an outer count(*) DuckDB would prune the
        # sum and the max, leaving a bare group-by that aggregates nothing.
        con.execute(
            "create temp table per_user as select user_id, count(*), sum(amount), max(event_at)"
            " from main.fct_events group by user_id"
        )
        seconds = time.perf_counter() - started
    run.results.mkdir(parents=True, exist_ok=True)
    (run.results / "bare_scan.json").write_text(json.dumps({"seconds": seconds}))


def stage_segments(run: Run) -> None:
    """The 20 segments of segments_bench.yml, built by dbt in a copy of the project that defines them."""
    from loaders.segments import build

    project = run.work / "segments_project"
    shutil.rmtree(project, ignore_errors=True)
    for folder in ("models", "macros"):
        shutil.copytree(PROJECT / folder, project / folder)
    shutil.copytree(PROJECT / "dbt_project", project / "dbt_project", ignore=shutil.ignore_patterns("segments"))
    shutil.copy2(PROJECT / "dbt_project.yml", project / "dbt_project.yml")
    (project / "dbt_project" / "segments").mkdir()
    shutil.copy2(SEGMENTS_BENCH, project / "dbt_project" / "segments" / "bench.yml")
    build(project)
    target = run.work / "target" / "segments"
    command = [str(BIN / "dbt"), "run", "--quiet", "--project-dir", str(project), "--select",
               "int_segments__event_facts", "tag:segment", "--target-path", str(target), "--log-path",
               str(run.work / "logs")]  # fmt: skip
    # the as-of as the DAG's dbt tasks hand it over (--vars would force a full re-parse)
    subprocess.run(command, cwd=project, check=True, env={**os.environ, "REKINDLE_AS_OF": run.interval[1].isoformat()})
    run.results.mkdir(parents=True, exist_ok=True)
    shutil.copy2(target / "run_results.json", run.results / "segments-all.json")


# Measured after the pipeline, in this order: Postgres sees the same data as the DuckDB full build.
def stage_senders(run: Run) -> None:
    """Sender throughput to a local endpoint and the rows a 1% change sends (tests/bench/sender_bench.py)."""
    import json

    sys.path.insert(0, str(Path(__file__).parent))
    from sender_bench import measure

    run.results.mkdir(parents=True, exist_ok=True)
    # issue 7's goal is stated for a 1,000,000-member audience, whatever BENCH_USERS the pipeline stages use
    members = int(os.environ.get("BENCH_SENDER_MEMBERS", "1000000"))
    (run.results / "senders.json").write_text(json.dumps(measure(members)))


SENDER_STAGES = {"senders: sync 10^6 members to a local Meta server, then 1%": stage_senders}
POSTGRES_STAGES = {"postgres: load_landing": stage_postgres_load, "postgres: dbt build": stage_postgres_dbt}
INCREMENT_STAGES = {
    "load 1% more events": stage_load_increment,
    "dbt build, incremental": stage_dbt_incremental,
    "dbt build, nothing new": stage_dbt_nothing_new,
}
SEGMENT_STAGES = {"bare scan-and-aggregate of fct_events": stage_bare_scan, "20 segments (dbt run)": stage_segments}
ALL_STAGES = {**STAGES, **POSTGRES_STAGES, **INCREMENT_STAGES, **SEGMENT_STAGES, **SENDER_STAGES}


def drop_postgres_database(run: Run) -> None:
    on_server(f'drop database if exists "{run.pg_database}" with (force)')


def stage_results(run: Run, stage: str) -> list[list[dict]]:
    """The node results of each dbt invocation (run_results.json) a stage made."""
    import json

    return [json.loads(file.read_text())["results"] for file in sorted(run.results.glob(f"{stage}-*.json"))]


def model_times(run: Run, *stages: str) -> dict[str, float]:
    """dbt's execution time of each model the stages built, by model name (tests and snapshots left out)."""
    return {
        r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"]
        for stage in stages
        for part in stage_results(run, stage)
        for r in part
        if r["unique_id"].startswith("model.")
    }


def incremental_model_names(run: Run, stage: str) -> set[str]:
    """The project's incremental models, from the manifest of a stage's dbt invocations (it lists every node,
    whatever the invocation selected)."""
    import json

    nodes = json.loads((run.work / "target" / stage / "manifest.json").read_text())["nodes"].values()
    return {n["name"] for n in nodes if n["resource_type"] == "model" and n["config"]["materialized"] == "incremental"}


def model_seconds(run: Run, stage: str) -> float:
    """Sum of dbt's per-model execution times over the parts a stage built (tests and snapshots left out)."""
    return sum(model_times(run, stage).values())


def nodes_span(run: Run, stage: str) -> float:
    """Seconds from the first node's start to the last node's end of a stage's dbt invocations: its build time
    without dbt's start-up. Summed model times count twice what dbt's two threads ran side by side."""
    spans = []
    for part in stage_results(run, stage):
        timings = [t for r in part for t in r["timing"]]
        starts = [datetime.fromisoformat(t["started_at"].rstrip("Z")) for t in timings if t["started_at"]]
        ends = [datetime.fromisoformat(t["completed_at"].rstrip("Z")) for t in timings if t["completed_at"]]
        spans.append((max(ends) - min(starts)).total_seconds())
    return sum(spans)


def measure(name: str, command: list[str], env: dict[str, str]) -> Stage:
    """Run one child process; fail loudly with its output if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(output.decode(errors="replace")[-5000:])
        raise SystemExit(f"bench: stage {name} failed")
    return Stage(name, seconds, usage.ru_maxrss / 1024, cpu=usage.ru_utime + usage.ru_stime)


def through_airflow(run: Run, env: dict[str, str]) -> Stage:
    airflow = str(BIN / "airflow")
    env = {
        **env,
        "REKINDLE_WAREHOUSE": str(run.work / "airflow" / "rekindle.duckdb"),
        "REKINDLE_OUT": str(run.work / "airflow"),
        "AIRFLOW_HOME": str(run.work / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    }
    measure("airflow db migrate", [airflow, "db", "migrate"], env)
    measure("airflow pools set", [airflow, "pools", "set", "rekindle_warehouse", "1", "bench"], env)
    run_date = run.interval[1].date().isoformat()
    return measure("rekindle_daily via airflow dags test", [airflow, "dags", "test", "rekindle_daily", run_date], env)


def airflow_task_seconds(run: Run) -> dict[str, float]:
    """How long each task of the run through Airflow took, from Airflow's own (SQLite) metadata database."""
    import sqlite3

    with sqlite3.connect(run.work / "airflow_home" / "airflow.db") as con:
        query = "select task_id, duration from task_instance where dag_id = 'rekindle_daily' order by start_date"
        return dict(con.execute(query))


def report(run: Run, stages: list[Stage], extra: list[Stage], airflow: Stage | None) -> None:
    import duckdb

    with duckdb.connect(str(run.warehouse), read_only=True) as con:
        events = con.execute("select count(*) from raw.events").fetchone()[0]
    increment = sum(1 for s in extra if s.name in INCREMENT_STAGES)
    for stage in stages:
        if stage.name in (BASELINE, "load_landing", *DBT_PARTS):
            stage.events = events
    print(f"\nRekindle bench — {run.args.users:,} users × {run.args.days} days, {events:,} events loaded\n")
    print(f"{'stage':<40} {'wall s':>8} {'events/s':>12} {'peak MB':>9}")
    for stage in [*stages, *([airflow] if airflow else []), *extra]:
        rate = f"{stage.events / stage.seconds:,.0f}" if stage.events else ""
        print(f"{stage.name:<40} {stage.seconds:>8.1f} {rate:>12} {stage.peak_mb:>9.0f}")
    by_name = {s.name: s for s in [*stages, *extra]}
    direct = sum(s.seconds for s in stages if s.name not in ("generate", BASELINE))
    print(
        f"\nload_landing / read_json of the same files into a table: "
        f"{by_name['load_landing'].seconds / by_name[BASELINE].seconds:.1f}×"
    )
    print(f"pipeline called directly (load_landing → send_report): {direct:.1f} s")
    if airflow:
        direct_cpu = sum(s.cpu for s in stages if s.name not in ("generate", BASELINE))
        print(
            f"rekindle_daily through Airflow / called directly: {airflow.seconds / direct:.2f}× wall,"
            f" {airflow.cpu / direct_cpu:.2f}× CPU ({airflow.cpu:.1f} s against {direct_cpu:.1f} s)"
        )
        # Where Airflow's time went: each task as Airflow timed it (beside the same stage called directly, which
        # also pays its own process start-up), and what is left: the CLI, parsing the DAG, scheduling.
        tasks = airflow_task_seconds(run)
        print("  task                 through Airflow   directly")
        for name, seconds in tasks.items():
            print(f"  {name:<20} {seconds:>13.1f} s {by_name[name].seconds if name in by_name else 0:>8.1f} s")
        print(f"  outside the tasks    {airflow.seconds - sum(tasks.values()):>13.1f} s")
    full = sum(by_name[name].seconds for name in DBT_PARTS)
    full_models = model_seconds(run, "dbt_build_orders") + model_seconds(run, "dbt_build")
    if increment:
        wall = by_name["dbt build, incremental"].seconds / full
        models = model_seconds(run, "dbt_incremental") / full_models
        print(
            f"incremental dbt build after {INCREMENT_SHARE:.0%} more events / full dbt build: "
            f"{wall:.2f}× wall (tests included), {models:.2f}× model time"
        )
        # the floor (the same build with nothing new) beside it, and what the models rebuilt in full take of each
        incremental_names = incremental_model_names(run, "dbt_incremental")
        for label, stage in (("after 1% more events", "dbt_incremental"), ("nothing new (floor)", "dbt_nothing_new")):
            times = model_times(run, stage)
            rebuilt = sum(t for name, t in times.items() if name not in incremental_names)
            print(
                f"  {label:<22} {sum(times.values()):7.1f} s of model time ({sum(times.values()) / full_models:.2f}×"
                f" the full build): incremental models {sum(times.values()) - rebuilt:.1f} s,"
                f" models rebuilt in full {rebuilt:.1f} s"
            )
        # where an incremental run's time goes: the models that cost it most, beside their full build
        incremental, full_times = model_times(run, "dbt_incremental"), model_times(run, *DBT_PARTS)
        costliest = sorted(incremental, key=incremental.get, reverse=True)[:INCREMENTAL_MODELS_SHOWN]
        print(f"  of its {len(incremental)} models, the costliest (incremental s / full s):")
        for name in costliest:
            print(f"  {name:<45} {incremental[name]:>6.2f} / {full_times.get(name, 0):>6.2f}")
    if "20 segments (dbt run)" in by_name:
        import json

        bare = json.loads((run.results / "bare_scan.json").read_text())["seconds"]
        span = nodes_span(run, "segments")
        print(
            f"20 segments / one bare scan-and-aggregate of fct_events: {span / bare:.1f}× "
            f"(build {span:.1f} s from the first model's start to the last one's end, against {bare:.2f} s"
            f" in-process; model time summed over dbt's two threads {model_seconds(run, 'segments'):.1f} s;"
            f" wall with dbt's start-up {by_name['20 segments (dbt run)'].seconds:.1f} s)"
        )
    if (run.results / "senders.json").exists():
        import json

        sys.path.insert(0, str(Path(__file__).parent))
        from sender_bench import describe

        print(describe(json.loads((run.results / "senders.json").read_text())))
    if "postgres: dbt build" in by_name:
        wall = by_name["postgres: dbt build"].seconds / full
        models = model_seconds(run, "postgres_dbt_build") / full_models
        print(f"dbt build on Postgres / on DuckDB, same data and models: {wall:.2f}× wall, {models:.2f}× model time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--workdir", type=Path, default=PROJECT / "out" / "bench")
    parser.add_argument(
        "--generated", type=Path, help="reuse the generated data in this earlier run's --workdir (same options)"
    )
    parser.add_argument("--no-airflow", action="store_true", help="skip the run through Airflow")
    parser.add_argument("--no-postgres", action="store_true", help="skip the dbt build on Postgres")
    parser.add_argument("--stage", choices=ALL_STAGES, help=argparse.SUPPRESS)  # a child runs one stage
    parser.add_argument("--pg-database", help=argparse.SUPPRESS)  # the parent's throwaway database
    args = parser.parse_args()
    run = Run(args)
    if args.stage:
        ALL_STAGES[args.stage](run)
        return 0

    if args.generated and args.generated.resolve() == run.work:
        parser.error("--generated must name another run's --workdir: this run's is emptied first")
    shutil.rmtree(run.work, ignore_errors=True)
    env = {
        **os.environ,
        "REKINDLE_LANDING": str(run.landing),
        "REKINDLE_WAREHOUSE": str(run.warehouse),
        "REKINDLE_OUT": str(run.out),
        "DBT_PROFILES_DIR": str(PROJECT / "dbt_project"),
        "DO_NOT_TRACK": "1",
    }
    child = [sys.executable, __file__, *sys.argv[1:], "--pg-database", str(os.getpid())]
    stages = [measure(name, [*child, "--stage", name], env) for name in STAGES]
    airflow = None if args.no_airflow else through_airflow(run, env)
    extra_stages = {
        **({} if args.no_postgres else POSTGRES_STAGES),
        **INCREMENT_STAGES,
        **SEGMENT_STAGES,
        **SENDER_STAGES,
    }
    try:
        extra = [measure(name, [*child, "--stage", name], env) for name in extra_stages]
    finally:
        if not args.no_postgres:
            drop_postgres_database(run)
    report(run, stages, extra, airflow)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
