"""`make bench`: run every stage of the pipeline on generated data and report what each one costs.

Each stage runs in its own child process (this script with `--stage NAME`), so its peak memory (max RSS,
from wait4) is its own. Timings are only comparable within one run on these shared machines, so the
report also gives ratios measured in the same run: the loader against a bare DuckDB `read_json` of the
same files, and the whole DAG through Airflow against the same stages called directly.

    python tests/bench/run_bench.py --users 20000 --days 30 [--no-airflow]
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


@dataclass
class Stage:
    name: str
    seconds: float
    peak_mb: float
    events: int | None = None


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


def stage_generate(run: Run) -> None:
    from loaders.generate import generate

    generate(run.landing, users=run.args.users, days=run.args.days, seed=run.args.seed, end=run.args.end)


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


def dbt_build(run: Run, *selection: str) -> None:
    """`dbt build` of part of the project, selected as rekindle_daily's two dbt tasks select."""
    as_of = run.interval[1].isoformat()
    command = [
        str(BIN / "dbt"),
        "build",
        "--quiet",
        "--indirect-selection",
        "cautious",
        *selection,
        "--target-path",
        str(run.work / "target"),
        "--log-path",
        str(run.work / "logs"),
        "--vars",
        f"{{rekindle_as_of: '{as_of}'}}",
    ]
    subprocess.run(command, cwd=PROJECT, check=True)


def stage_dbt_orders(run: Run) -> None:
    dbt_build(run, "--select", "+fct_orders")


def stage_clv(run: Run) -> None:
    from loaders.clv import calibration_end_for, predict_for_run
    from loaders.settings import clv_horizon_days, load_settings

    predict_for_run(load_settings(), calibration_end_for(run.interval[1]), clv_horizon_days())


def stage_dbt(run: Run) -> None:
    dbt_build(run, "--exclude", "+fct_orders")


def stage_gate(run: Run) -> None:
    from expectations.gate import enforce_gate

    enforce_gate(run.warehouse)


def stage_export(run: Run) -> None:
    from senders.audiences import load_audiences
    from senders.file_export import export_audience

    for audience in load_audiences():
        export_audience(run.warehouse, audience, run.out / "exports", run.day)


def stage_report(run: Run) -> None:
    from senders.report_email import write_daily_report

    write_daily_report(run.warehouse, run.out / "outbox", run.day)


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
    return Stage(name, seconds, usage.ru_maxrss / 1024)


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


def report(run: Run, stages: list[Stage], airflow: Stage | None) -> None:
    import duckdb

    with duckdb.connect(str(run.warehouse), read_only=True) as con:
        events = con.execute("select count(*) from raw.events").fetchone()[0]
    for stage in stages:
        if stage.name in (BASELINE, "load_landing", "dbt_build_orders", "dbt_build"):
            stage.events = events
    print(f"\nRekindle bench — {run.args.users:,} users × {run.args.days} days, {events:,} events loaded\n")
    print(f"{'stage':<40} {'wall s':>8} {'events/s':>12} {'peak MB':>9}")
    for stage in [*stages, *([airflow] if airflow else [])]:
        rate = f"{stage.events / stage.seconds:,.0f}" if stage.events else ""
        print(f"{stage.name:<40} {stage.seconds:>8.1f} {rate:>12} {stage.peak_mb:>9.0f}")
    by_name = {s.name: s for s in stages}
    direct = sum(s.seconds for s in stages if s.name not in ("generate", BASELINE))
    print(
        f"\nload_landing / read_json of the same files into a table: "
        f"{by_name['load_landing'].seconds / by_name[BASELINE].seconds:.1f}×"
    )
    print(f"pipeline called directly (load_landing → send_report): {direct:.1f} s")
    if airflow:
        print(f"rekindle_daily through Airflow / called directly: {airflow.seconds / direct:.2f}×")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 10, 31))
    parser.add_argument("--workdir", type=Path, default=PROJECT / "out" / "bench")
    parser.add_argument("--no-airflow", action="store_true", help="skip the run through Airflow")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # a child runs one stage
    args = parser.parse_args()
    run = Run(args)
    if args.stage:
        STAGES[args.stage](run)
        return 0

    shutil.rmtree(run.work, ignore_errors=True)
    env = {
        **os.environ,
        "REKINDLE_LANDING": str(run.landing),
        "REKINDLE_WAREHOUSE": str(run.warehouse),
        "REKINDLE_OUT": str(run.out),
        "DBT_PROFILES_DIR": str(PROJECT / "dbt_project"),
        "DO_NOT_TRACK": "1",
    }
    child = [sys.executable, __file__, *sys.argv[1:]]
    stages = [measure(name, [*child, "--stage", name], env) for name in STAGES]
    airflow = None if args.no_airflow else through_airflow(run, env)
    report(run, stages, airflow)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
