"""rekindle_daily in a real Airflow: the services of `airflow standalone` on loopback, driven through REST API v2.

The scheduler, the dag-processor, the triggerer and the api-server run as separate processes, with the
LocalExecutor's workers talking to the Execution API over HTTP, the pool enforced by the scheduler and the runs
created, unpaused and watched through the public REST API only. One set of services runs two days of
rekindle_daily on one warehouse: a good day, checked for every effect (marts, CLV, the export, the report
email), then a day with an injected bad batch, which must fail the gate and send nothing. A second set, whose
scheduler creates asset-triggered runs, chains the stage DAGs. (That a rerun changes nothing, and that a
backfill reproduces the days run one by one, is tests/test_backfill.py, on the same task callables.)
"""

from __future__ import annotations

import contextlib
import csv
import email
import gzip
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from email import policy
from pathlib import Path
from urllib.parse import quote

import duckdb
import httpx
import pytest

from tests.conftest import PROJECT

VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
DAG_ID = "rekindle_daily"
TASKS = {
    "data_interval",
    "load_landing",
    "dbt_build_orders",
    "predict_clv",
    "dbt_build",
    "quality_gate",
    "export_audiences",
    "send_report",
}
# The data interval of the scheduled run at midnight 2026-11-01 (what `airflow dags test rekindle_daily
# 2026-11-01` processes): for CronDataIntervalTimetable a scheduled run's logical_date is its interval start.
INTERVAL_START, INTERVAL_END = "2026-10-31T00:00:00Z", "2026-11-01T00:00:00Z"

# Generous for a loaded 2-core machine; a normal run takes well under these.
STARTUP_TIMEOUT = 240  # API healthy and the DAG parsed
RUN_TIMEOUT = 330  # the dag run reaches success or failed
STOP_GRACE = 20  # SIGTERM -> SIGKILL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_environment(home: Path, api_port: int, extra: dict[str, str]) -> dict[str, str]:
    """A hermetic environment for Airflow services on loopback: no AIRFLOW_*/REKINDLE_* leaks in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REKINDLE_"))}
    env.update(
        {
            # `airflow standalone` starts its components as plain "airflow ...": the venv must be on PATH.
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__WORKERS": "1",
            # The LocalExecutor forks `parallelism` workers up front (32 by default); the pool runs one task
            # at a time anyway.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            # The workers' calls to the Execution API time out after 5 s by default, which a 2-core machine
            # running the api-server, the scheduler and dbt at once exceeds (httpcore.ReadTimeout, a failed try).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            # 8793/8794 may be held by another Airflow on this machine (the scheduler's and the triggerer's
            # log servers): take free ones so parallel runs do not collide. These two listen on every
            # interface whatever the settings say (serve_logs binds host ""); only the API is on loopback.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # One secret for every component, whatever airflow.cfg ends up holding.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
            "DO_NOT_TRACK": "1",
            "SCARF_ANALYTICS": "false",
        }
    )
    env.update(extra)
    return env


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, session id) of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[3])


def _has_env(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


class AirflowServices:
    """`airflow standalone` in its own session, output to a log file; `stop()` leaves no process behind.

    Everything it starts is found by session id (the task runner moves tasks to their own process
    group, which `killpg` alone would miss) or by its AIRFLOW_HOME in the environment (cosmos starts
    dbt with `setsid`, outside the session).
    """

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._marker = f"AIRFLOW_HOME={env['AIRFLOW_HOME']}".encode()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [AIRFLOW, "standalone"],
                env=self.env,
                cwd=PROJECT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no service log)"
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[int]:
        """Live (non-zombie) processes that these services started."""
        if self.process is None:
            return []
        sid, found = self.process.pid, []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            pid = int(entry.name)
            stat = _proc_stat(pid)
            if stat is None or stat[0] == "Z":
                continue
            if stat[1] == sid or _has_env(pid, self._marker):
                found.append(pid)
        return found

    def _signal_all(self, sig: signal.Signals) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)  # the group of `airflow standalone` (start_new_session)
        for pid in self.processes():  # and whatever left the group: task process groups, dbt's session
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_gone(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None:
                self.process.poll()  # reap the leader
            left = self.processes()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.3)

    def stop(self, grace: float = STOP_GRACE) -> list[int]:
        """SIGTERM everything, SIGKILL what is left after `grace` seconds; return the pids that survived."""
        if self.process is None:
            return []
        self._signal_all(signal.SIGTERM)
        if self._wait_gone(grace):
            self._signal_all(signal.SIGKILL)
        left = self._wait_gone(10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        return left


class Api:
    """REST API v2 of the api-server. With SIMPLE_AUTH_MANAGER_ALL_ADMINS the server adds an admin token
    to every request itself (SimpleAllAdminMiddleware), so no token is needed."""

    def __init__(self, port: int, services: AirflowServices):
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self.services = services

    def call(self, method: str, path: str, expect: int = 200, **kwargs) -> dict:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path} -> {response.status_code}: {response.text[:2000]}\n"
            f"--- services log ---\n{self.services.log_tail()}"
        )
        return response.json()

    def try_get(self, path: str) -> httpx.Response | None:
        try:
            return self.client.get(path)
        except httpx.TransportError:
            return None

    def task_log(self, run_id: str, task_id: str, try_number: int, dag_id: str = DAG_ID) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        response = self.client.get(path, params={"full_content": True}, headers={"Accept": "application/json"})
        if response.status_code != 200:
            return f"(log unavailable: {response.status_code} {response.text[:500]})"
        return "\n".join(render_log(response.json()["content"])[-150:])


# Context that Airflow repeats on every structured log line of a task.
LOG_CONTEXT = {"timestamp", "event", "level", "logger", "dag_id", "run_id", "task_id", "try_number", "map_index",
               "ti_id", "filename", "lineno", "error_detail"}  # fmt: skip


def render_log(content: list) -> list[str]:
    """Task log lines from the API's structured log, with exceptions as tracebacks."""
    lines = []
    for entry in content:
        if isinstance(entry, str):
            lines.append(entry)
            continue
        extra = {k: v for k, v in entry.items() if k not in LOG_CONTEXT}
        lines.append(
            f"{entry.get('timestamp', '')} {entry.get('level', '')} {entry.get('event', '')}"
            + (f" {json.dumps(extra, default=str)}" if extra else "")
        )
        for error in entry.get("error_detail") or []:
            lines.append("  Traceback (most recent call last):")
            for frame in error.get("frames", []):
                lines.append(f"    File {frame.get('filename')}, line {frame.get('lineno')}, in {frame.get('name')}")
            lines.append(f"  {error.get('exc_type')}: {error.get('exc_value')}")
    return lines


def wait_for(what: str, check, timeout: float, services: AirflowServices, detail=lambda: ""):
    """Poll `check()` until it returns something truthy; fail with the services' log tail on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if not services.running():
            pytest.fail(f"airflow standalone exited (code {services.process.returncode}) while waiting for {what}\n"
                        f"{detail()}\n--- services log ---\n{services.log_tail()}")  # fmt: skip
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}\n"
                        f"--- services log ---\n{services.log_tail()}")  # fmt: skip
        time.sleep(2)


def run_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [AIRFLOW, *args], env=env, cwd=PROJECT, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-5000:]}"


@contextlib.contextmanager
def running_airflow(tmp_path: Path, landing: Path, extra: dict[str, str]) -> Iterator[tuple[Api, dict[str, str]]]:
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    env = airflow_environment(
        tmp_path / "airflow",
        port,
        {
            "REKINDLE_LANDING": str(landing),
            "REKINDLE_WAREHOUSE": str(out / "rekindle.duckdb"),
            "REKINDLE_OUT": str(out),
            "REKINDLE_TARGET": "duckdb",
            **extra,
        },
    )
    run_cli(env, "db", "migrate")
    run_cli(env, "pools", "set", "rekindle_warehouse", "1", "DuckDB allows one writing process")
    services = AirflowServices(env, tmp_path / "services.log")
    services.start()
    api = Api(port, services)
    try:
        yield api, env
    finally:
        api.client.close()
        survivors = services.stop()
        assert not survivors, f"processes survived stopping Airflow: {survivors}"


@pytest.fixture(scope="module")
def airflow_services(tmp_path_factory, small_landing) -> Iterator[tuple[Api, dict[str, str]]]:
    """Services for the runs the tests trigger, on a copy of the small landing zone (the bad-batch test adds
    a file to it)."""
    tmp_path = tmp_path_factory.mktemp("services")
    landing = tmp_path / "landing"
    shutil.copytree(small_landing, landing)
    # Only the runs the tests trigger: unpausing must not also start today's scheduled run (catchup=False
    # still creates the latest interval), which would queue beside ours and write the same warehouse while
    # the test reads it.
    with running_airflow(tmp_path, landing, {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}) as running:
        yield running


@pytest.fixture
def airflow_scheduling_assets(tmp_path, small_landing) -> Iterator[tuple[Api, dict[str, str]]]:
    """Services whose scheduler creates runs (asset-triggered runs need it); only asset-scheduled DAGs are
    unpaused by the test, so no cron run starts."""
    with running_airflow(tmp_path, small_landing, {}) as running:
        yield running


def healthy(api: Api) -> dict | None:
    response = api.try_get("/api/v2/monitor/health")
    if response is None or response.status_code != 200:
        return None
    health = response.json()
    parts = [health["metadatabase"], health["scheduler"], health["triggerer"], health.get("dag_processor")]
    return health if all(p and p["status"] == "healthy" for p in parts) else None


def import_errors(api: Api) -> str:
    response = api.try_get("/api/v2/importErrors")
    return f"import errors: {response.text[:3000]}" if response is not None else ""


class DailyRun:
    """One run of rekindle_daily, triggered through the REST API and watched until it ends."""

    def __init__(self, api: Api, start: str, end: str, *, backfill: bool = False) -> None:
        self.api = api
        self.backfill = self.create_backfill(start) if backfill else None
        if self.backfill is not None:
            run = wait_for(f"the backfill's run of {start}", lambda: self.backfill_run(start), 60, api.services)
        else:
            # `logical_date` is required (it may be null); given alone, a cron timetable infers the interval
            # that *ends* at it, so the interval is stated explicitly.
            run = api.call(
                "POST",
                f"/api/v2/dags/{DAG_ID}/dagRuns",
                expect=200,
                json={"logical_date": start, "data_interval_start": start, "data_interval_end": end,
                      "note": "tests/test_airflow_services.py"},
            )  # fmt: skip
        assert (run["data_interval_start"], run["data_interval_end"]) == (start, end)
        self.run_id = run["dag_run_id"]
        self.path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(self.run_id, safe='')}"
        self.started = time.monotonic()
        self.final = wait_for(f"run {self.run_id} to finish", self.finished, RUN_TIMEOUT, api.services,
                              detail=lambda: f"task instances: {self.states()}\n{self.failed_logs()}")  # fmt: skip
        self.seconds = time.monotonic() - self.started
        self.tis = {ti["task_id"]: ti for ti in self.task_instances()}

    def create_backfill(self, logical_date: str) -> dict:
        """`airflow backfill create --dag-id rekindle_daily --from-date D --to-date D --max-active-runs 1` through
        the REST API: the backfill's own limit, not the DAG's, bounds its runs (10 by default)."""
        body = {"dag_id": DAG_ID, "from_date": logical_date, "to_date": logical_date, "max_active_runs": 1}
        for _ in range(5):  # on SQLite the API answers 503 while the scheduler holds the database lock
            response = self.api.client.post("/api/v2/backfills", json=body)
            if response.status_code != 503:
                break
            time.sleep(2)
        assert response.status_code == 200, f"POST /api/v2/backfills -> {response.status_code}: {response.text[:2000]}"
        return response.json()

    def backfill_run(self, logical_date: str) -> dict | None:
        response = self.api.try_get(f"/api/v2/dags/{DAG_ID}/dagRuns")
        if response is None or response.status_code != 200:
            return None
        runs = [
            r for r in response.json()["dag_runs"] if r["run_type"] == "backfill" and r["logical_date"] == logical_date
        ]
        return runs[0] if runs else None

    def task_instances(self) -> list[dict]:
        return self.api.call("GET", f"{self.path}/taskInstances")["task_instances"]

    def states(self) -> str:
        return ", ".join(f"{t['task_id']}={t['state']} (try {t['try_number']})" for t in self.task_instances())

    def finished(self) -> dict | None:
        """The run once it ends, or as soon as a task fails a try: a retry would only hide a fault here."""
        response = self.api.try_get(self.path)
        if response is None or response.status_code != 200:
            return None
        if response.json()["state"] in {"success", "failed"}:
            return response.json()
        tis = self.api.try_get(f"{self.path}/taskInstances")
        if tis is None or tis.status_code != 200:
            return None
        return response.json() if any(t["state"] == "up_for_retry" for t in tis.json()["task_instances"]) else None

    def failed_logs(self) -> str:
        parts = []
        for ti in self.task_instances():
            if ti["state"] != "success" and ti["try_number"]:
                log = self.api.task_log(self.run_id, ti["task_id"], ti["try_number"])
                parts.append(f"--- {ti['task_id']} ({ti['state']}, try {ti['try_number']}) ---\n{log}")
        return "\n".join(parts)


def outbox(env: dict[str, str]) -> list[str]:
    return sorted(p.name for p in (Path(env["REKINDLE_OUT"]) / "outbox").glob("*.eml"))


@pytest.fixture(scope="module")
def good_day(airflow_services) -> tuple[DailyRun, float, list[str]]:
    """The day 2026-10-31 -> 2026-11-01 in the running services: the run, how long Airflow took to be ready,
    and the outbox right after the run (a later test's run may add to it)."""
    api, env = airflow_services
    started = time.monotonic()

    # 1. the API is up, every component heartbeats, and the dag-processor has parsed the DAG
    wait_for("a healthy /api/v2/monitor/health", lambda: healthy(api), STARTUP_TIMEOUT, api.services)
    dag = wait_for(
        f"DAG {DAG_ID} to be parsed",
        lambda: (r := api.try_get(f"/api/v2/dags/{DAG_ID}")) is not None and r.status_code == 200 and r.json(),
        max(STARTUP_TIMEOUT - (time.monotonic() - started), 30),
        api.services,
        detail=lambda: import_errors(api),
    )
    assert dag["is_paused"], "dags_are_paused_at_creation: a new DAG starts paused"
    ready = time.monotonic() - started

    # 2. unpause, 3. trigger the day and wait for the run to end
    assert api.call("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})["is_paused"] is False
    run = DailyRun(api, INTERVAL_START, INTERVAL_END)
    return run, ready, outbox(env)


def test_daily_run_in_real_airflow_services(airflow_services, good_day):
    api, env = airflow_services
    run, ready, emails = good_day

    # 4. every task succeeded, at the first try, one at a time
    tis = run.tis
    assert run.final["state"] == "success" and all(tis[t]["state"] == "success" for t in TASKS), (
        f"run {run.run_id} is {run.final['state']}: {run.states()}\n{run.failed_logs()}"
    )
    assert set(tis) == TASKS
    retried = {t: ti["try_number"] for t, ti in tis.items() if ti["try_number"] > 1}
    assert not retried, f"tasks needed retries: {retried}\n" + "\n".join(
        f"--- {t} try 1 ---\n{api.task_log(run.run_id, t, 1)}" for t in retried
    )
    # The scheduler enforced the pool of size 1: no two warehouse tasks ran at the same time (without it,
    # export_audiences and send_report, both downstream of quality_gate, would run side by side).
    assert all(ti["pool"] == "rekindle_warehouse" for t, ti in tis.items() if t != "data_interval")
    spans = sorted((datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]), t)
                   for t, ti in tis.items())  # fmt: skip
    overlaps = [(a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlaps, f"tasks of the pool rekindle_warehouse overlapped: {overlaps}"
    print(f"\nairflow ready in {ready:.0f} s, run {run.run_id} took {run.seconds:.0f} s")

    # 5. real effects, in the folders the services were pointed at
    out = Path(env["REKINDLE_OUT"])
    with duckdb.connect(env["REKINDLE_WAREHOUSE"], read_only=True) as con:
        counts = {table: con.execute(f"select count(*) from {table}").fetchone()[0] for table in FILLED_TABLES}
        # the run evaluated the world as of its data interval end, not the wall clock
        as_of = con.execute("select distinct evaluated_at::varchar from main.segment_members").fetchall()
        records, accounted = con.execute(
            "select sum(input_records), sum(loaded_events + loaded_profiles + duplicates + quarantined)"
            " from load_manifest"
        ).fetchone()
        campaigns = con.execute("select count(*) from rpt_campaign_performance where sent > 0").fetchone()[0]
        members = con.execute("select count(*) from segment_members where segment_name = 'recent_buyers'").fetchone()
        # who the audience may reach: email consent and an address, outside the global control group
        eligible = con.execute(
            "select m.user_id from segment_members m join dim_users u using (user_id)"
            " where m.segment_name = 'recent_buyers' and u.can_email and not u.is_global_control"
            " and u.email is not null order by m.user_id"
        ).fetchall()
    assert all(n > 0 for n in counts.values()), counts
    assert as_of == [("2026-11-01 00:00:00",)], f"marts evaluated as of {as_of}, not the interval end"
    assert records == accounted
    assert campaigns >= 3

    # CLV ran between the two dbt builds for the interval's last day, and dim_users shows what it wrote: the
    # predictions when it fitted, nothing when (as with a fortnight of history, usually) it did not.
    runs, shown, predictions = clv_state(Path(env["REKINDLE_WAREHOUSE"]))
    assert [(r[0].isoformat(), r[1]) for r in runs] == [("2026-10-31", 90)], runs
    status, reason, customers = runs[0][2], runs[0][3], runs[0][4]
    assert customers > 0
    assert (status, reason is None, bool(predictions)) in {("fitted", True, True), ("not_fitted", False, False)}
    assert shown == predictions

    # The sync sent the audience's eligible members (email consent, outside the control groups) once.
    assert 0 < len(eligible) <= members[0]
    (export,) = (out / "exports" / "recent_buyers_csv" / "20261101T000000Z").glob("add-*.csv")
    with export.open() as handle:
        assert sorted((r["user_id"],) for r in csv.DictReader(handle)) == eligible
    # 2026-11-01 is a Sunday: of the shipped subscriptions only the daily campaigns report fires.
    assert emails == ["campaigns_daily-2026-10-31.eml"]
    message = email.message_from_bytes((out / "outbox" / emails[0]).read_bytes(), policy=policy.default)
    assert message["Subject"].startswith("Rekindle campaigns")


# Tables the good day fills (each must hold rows).
FILLED_TABLES = [
    "raw.events",
    "raw.profiles",
    "raw.campaigns",
    "main.load_manifest",
    "main.quarantine_events",
    "main.fct_events",
    "main.dim_users",
    "main.segment_members",
    "main.rpt_campaign_performance",
    "main.clv_runs",
]


def clv_state(warehouse: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """clv_runs, and what dim_users shows of CLV (per user), as rows."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        runs = con.execute("select * from clv_runs order by calibration_end").fetchall()
        shown = con.execute(
            "select user_id, clv_p_alive, clv_expected_purchases, clv_predicted_value, clv_horizon_days,"
            " clv_calibration_end from dim_users where clv_calibration_end is not null order by user_id"
        ).fetchall()
        predictions = con.execute(
            "select user_id, p_alive, expected_purchases, predicted_value, horizon_days, calibration_end"
            " from clv_predictions order by user_id"
        ).fetchall()
    return runs, shown, predictions


# The next day, 2026-11-01 -> 2026-11-02, with a file that is 90% garbage from a client bug.
BAD_START, BAD_END = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"


def test_a_bad_batch_fails_the_gate_and_no_sender_runs(airflow_services, good_day):
    """The loader quarantines the garbage and goes on; the gate fails at its first try; the senders do not
    run; the report email does, and can read the verdict. The day is a backfill's run, created through the
    REST API as `airflow backfill create` creates it."""
    api, env = airflow_services
    landing = Path(env["REKINDLE_LANDING"])
    good = {"type": "event", "evtName": "App Launched", "identity": "u-bad",
            "ts": int(datetime.fromisoformat(BAD_END).timestamp()) - 60}  # fmt: skip
    with gzip.open(landing / "events" / "2026-11-01-client-bug.jsonl.gz", "wt") as handle:
        handle.write("\n".join([json.dumps(good)] + ['{"type": "event", "evtName": '] * 9) + "\n")

    # The day runs as a backfill (POST /api/v2/backfills), the way an operator replays history.
    run = DailyRun(api, BAD_START, BAD_END, backfill=True)
    backfill = wait_for("the backfill to be marked complete",
                        lambda: (b := api.call("GET", f"/api/v2/backfills/{run.backfill['id']}"))["completed_at"] and b,
                        STARTUP_TIMEOUT, api.services)  # fmt: skip
    assert (backfill["max_active_runs"], backfill["dag_id"]) == (1, DAG_ID)
    states = {t: (ti["state"], ti["try_number"]) for t, ti in run.tis.items()}
    assert run.final["state"] == "failed", run.states()
    assert states == {
        "data_interval": ("success", 1),
        "load_landing": ("success", 1),  # the loader quarantines the garbage and goes on: it is the gate's call
        "dbt_build_orders": ("success", 1),
        "predict_clv": ("success", 1),
        "dbt_build": ("success", 1),
        "quality_gate": ("failed", 1),  # failed at the first try: retrying cannot fix bad data
        "export_audiences": ("upstream_failed", 0),
        "send_report": ("success", 1),  # all_done: the day is reported, and the report can read the verdict
    }, f"{run.states()}\n{run.failed_logs()}"
    out = Path(env["REKINDLE_OUT"])
    assert not (out / "exports" / "recent_buyers_csv" / "20261102T000000Z").exists()  # nothing for a destination

    with duckdb.connect(env["REKINDLE_WAREHOUSE"], read_only=True) as con:
        verdict = dict(
            con.execute(
                "select suite, failed_expectations from quality_gate_log where interval_end = timestamp '2026-11-02'"
                " and not success"
            ).fetchall()
        )
    assert list(verdict) == ["raw_batch_files"]
    (failure,) = json.loads(verdict["raw_batch_files"])
    assert failure == (
        "raw_batch_files.quarantined_pct: expect_column_values_to_be_between(min_value=0.0, max_value=5.0)"
        " (observed 1 unexpected, e.g. 90.0)"
    )
    assert (out / "docs" / "gx" / "index.html").is_file()


STAGE_DAGS = ("rekindle_transform", "rekindle_activate", "rekindle_reports")


def test_asset_events_chain_transform_activate_and_reports(airflow_scheduling_assets):
    """The stage DAGs run on asset events alone, each processing the interval the event carries."""
    from loaders.load import load_landing

    api, env = airflow_scheduling_assets
    wait_for("a healthy /api/v2/monitor/health", lambda: healthy(api), STARTUP_TIMEOUT, api.services)
    for dag_id in STAGE_DAGS:
        wait_for(f"DAG {dag_id} to be parsed",
                 lambda d=dag_id: (r := api.try_get(f"/api/v2/dags/{d}")) is not None and r.status_code == 200,
                 STARTUP_TIMEOUT, api.services, detail=lambda: import_errors(api))  # fmt: skip
        api.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    # What rekindle_ingest's load_landing does for the day, then the asset event it would emit.
    warehouse = Path(env["REKINDLE_WAREHOUSE"])
    load_landing(env["REKINDLE_LANDING"], warehouse, (datetime(2026, 10, 31), datetime(2026, 11, 1)))
    (raw,) = api.call("GET", "/api/v2/assets", params={"uri_pattern": "rekindle://warehouse/raw"})["assets"]
    interval = {"interval_start": "2026-10-31T00:00:00+00:00", "interval_end": "2026-11-01T00:00:00+00:00"}
    api.call("POST", "/api/v2/assets/events", json={"asset_id": raw["id"], "extra": interval})

    def runs(dag_id: str) -> list[dict]:
        response = api.try_get(f"/api/v2/dags/{dag_id}/dagRuns")
        return response.json()["dag_runs"] if response is not None and response.status_code == 200 else []

    def all_finished() -> dict | None:
        latest = {d: runs(d) for d in STAGE_DAGS}
        if any(r["state"] == "failed" for rs in latest.values() for r in rs):
            return latest
        return latest if all(rs and rs[0]["state"] == "success" for rs in latest.values()) else None

    def summary() -> str:
        return "; ".join(f"{d}: {[r['state'] for r in runs(d)]}" for d in STAGE_DAGS)

    finished = wait_for("the three stage DAGs to finish", all_finished, 2 * RUN_TIMEOUT, api.services, detail=summary)
    assert all(len(rs) == 1 and rs[0]["state"] == "success" for rs in finished.values()), summary()

    # every stage DAG worked on the interval the event carried, not on the time it was triggered
    for dag_id, (run,) in finished.items():
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances"
        entry = api.call("GET", f"{path}/data_interval/xcomEntries/return_value", params={"deserialize": True})
        assert entry["value"] == {"start": "2026-10-31T00:00:00+00:00", "end": "2026-11-01T00:00:00+00:00"}, dag_id
    with duckdb.connect(str(warehouse), read_only=True) as con:
        verdict = con.execute(
            "select count(*), bool_and(success) from quality_gate_log where interval_end = timestamp '2026-11-01'"
        ).fetchone()
        as_of = con.execute("select max(evaluated_at)::varchar from segment_members").fetchone()[0]
    assert verdict == (7, True) and as_of.startswith("2026-11-01 00:00:00")
    out = Path(env["REKINDLE_OUT"])
    assert list((out / "exports" / "recent_buyers_csv" / "20261101T000000Z").glob("add-*.csv"))
    assert (out / "outbox" / "campaigns_daily-2026-10-31.eml").is_file()
