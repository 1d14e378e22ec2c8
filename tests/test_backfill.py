"""A backfill reproduces history, and rerunning a completed day changes nothing (issue 9's acceptance).

A week of generated data goes to two warehouses:
- **A, day by day**: each day's files land in an empty landing zone the morning after, and rekindle_daily's
  tasks run for that day, as the scheduled runs would;
- **B, backfilled**: all seven days' files are in the landing zone from the start, and the seven intervals run
  in order, as `airflow backfill create --dag-id rekindle_daily --from-date 2026-10-25 --to-date 2026-10-31`
  runs them (max_active_runs=1: one day after the other). B's first interval loads every file it finds.
Then every table and view of every schema of A and B is compared row for row (a multiset of row digests), as
are the files the senders wrote (exports, report emails); B reruns its last day and nothing may change.

What runs is the DAG itself, parsed from dags/rekindle_daily.py: its tasks in its topological order, each
TaskFlow task's own python callable with its XCom arguments resolved, and for the cosmos tasks the dbt
arguments cosmos builds for the run (templates rendered with the run's interval). Those arguments go to dbt in
this process, with the project parsed once: a dbt subprocess spends much of its time here starting (importing
dbt takes about 5 s) and parsing the project, which over thirty builds would cost more than the rest of the
test. Fifteen runs through `airflow dags test` would take about half an hour here; what Airflow
adds around the tasks (scheduling, XCom storage, the pool, dbt as a subprocess) is covered by
tests/test_airflow_services.py.
"""

from __future__ import annotations

import copy
import email
import re
import shutil
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.generate import generate
from tests.conftest import PROJECT

END = date(2026, 10, 31)
DAYS = [END - timedelta(days=n) for n in range(6, -1, -1)]  # 2026-10-25 .. 2026-10-31
USERS = 300

# Columns that legitimately differ between A and B (and between a run and its rerun), each for a reason; every
# other column of every table must be identical.
IGNORED = {
    # when the loader read the record's file, by its clock: A read each day's files on their day, B every file
    # at its first interval. The models carry it on as their incremental watermark.
    "*": {"loaded_at", "conversion_loaded_at"},
    # the same clock: when the login behind a device switch was loaded (the incremental identity scope reads it)
    "int_identity__device_switches": {"login_loaded_at"},
    # the same clock: the later of a record's load and its device's latest switch load (incremental scope)
    "int_identity__record_users": {"resolved_loaded_at"},
    # the interval whose run loaded the file: A's run of that day, B's first run for every file
    "load_manifest": {"interval_start", "interval_end"},
    # when the gate ran, by the clock
    "quality_gate_log": {"checked_at"},
    # when the sender logged a decision, when the destination accepted a member, when and how long a sync ran
    "sync_log": {"logged_at"},
    "sync_state": {"synced_at"},
    "sync_runs": {"started_at", "duration_seconds"},
    # when the report email was delivered
    "email_log": {"sent_at"},
}
# The raw-batch suites validate the files loaded in the interval, so B validates the whole week on its first day
# and nothing after; how many rows they checked is compared over the week instead (RAW_SUITES, below).
RAW_SUITES = ("raw_events_batch", "raw_batch_files")
EXPRESSIONS = {
    "quality_gate_log": {
        "row_count": f"case when suite in {RAW_SUITES} then null else row_count end",
    },
}


def interval_of(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("week")
    generate(landing, users=USERS, days=len(DAYS), seed=23, end=END)
    return landing


@pytest.fixture(scope="module")
def daily_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(
        dag_folder=str(PROJECT / "dags" / "rekindle_daily.py"), known_pools={"default_pool", "rekindle_warehouse"}
    )
    assert bag.import_errors == {}
    return bag.dags["rekindle_daily"]


class Deployment:
    """One warehouse with its landing zone and output folder, run through rekindle_daily's tasks."""

    def __init__(self, root: Path, dag, manifest) -> None:
        self.root, self.dag, self.manifest = root, dag, manifest
        self.landing, self.out = root / "landing", root / "out"
        self.warehouse = self.out / "rekindle.duckdb"
        self.landing.mkdir(parents=True)
        self.out.mkdir()
        self.env = {
            "REKINDLE_LANDING": str(self.landing),
            "REKINDLE_WAREHOUSE": str(self.warehouse),
            "REKINDLE_OUT": str(self.out),
            "REKINDLE_TARGET": "duckdb",
            # A week-old shop's audience grows by more than the senders' 25% safety limit a day, which would stop
            # the sync (tests/test_senders_sync.py tests the limit); the operator's override lets it send.
            "REKINDLE_ALLOW_LARGE_CHANGE": "all",
        }

    def run(self, day: date) -> None:
        """rekindle_daily for the interval of `day`, task by task in the DAG's order."""
        from cosmos.operators.local import DbtLocalBaseOperator

        start, end = interval_of(day)
        returned: dict[str, Any] = {}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env.items():
                patch.setenv(name, value)
            for task in self.dag.topological_sort():
                if isinstance(task, DbtLocalBaseOperator):
                    self.dbt(task, returned)
                elif task.task_id == "data_interval":  # Airflow hands the run's interval to this one
                    returned[task.task_id] = task.python_callable(data_interval_start=start, data_interval_end=end)
                else:
                    args = [_resolve(a, returned) for a in task.op_args]
                    kwargs = {k: _resolve(v, returned) for k, v in task.op_kwargs.items()}
                    returned[task.task_id] = task.python_callable(*args, **kwargs)

    def dbt(self, task, returned: dict[str, Any]) -> None:
        """The dbt command cosmos builds for the task, its templates rendered as Airflow would for the run."""
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        from dbt.cli.main import dbtRunner

        operator = copy.deepcopy(task)  # rendering replaces the templates in place
        context = {"ti": _TaskInstance(returned)}
        operator.render_template_fields(context)
        command, env = operator.build_cmd(context, operator.add_cmd_flags())
        # command[0] is the dbt executable. The data tests are left out: they read the models and write nothing,
        # so they cannot change the state this test compares, and they were about 40% of each build's time here.
        # Every other test that builds the project runs them.
        arguments = [*command[1:], "--exclude-resource-type", "test", *self.dbt_paths()]
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {**env, **self.env}.items():  # the DAG file bound REKINDLE_WAREHOUSE at parse time
                patch.setenv(name, str(value))
            done = dbtRunner(manifest=self.manifest).invoke(arguments)
        # dbt-duckdb keeps the database open in the process between invocations (the reason the DAG runs dbt as
        # a subprocess): close it, as the subprocess's exit would, before the next task opens the file.
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None
        failed = [f"{r.node.unique_id}: {r.status} {r.message}" for r in getattr(done.result, "results", [])
                  if r.status in ("error", "fail")]  # fmt: skip
        assert done.success, f"{task.task_id}: dbt {' '.join(arguments)}\n{done.exception or ''}\n" + "\n".join(failed)

    def dbt_paths(self) -> list[str]:
        """What cosmos adds from its ProfileConfig and project copy, and where this deployment's dbt files go."""
        return ["--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT / "dbt_project"), "--target", "duckdb",
                "--target-path", str(self.root / "target"), "--log-path", str(self.root / "logs")]  # fmt: skip

    def deliver(self, source: Path, day: date) -> None:
        """The files of one day, as the export lands them (the campaigns file comes with the first day)."""
        names = [f"events/{day}.jsonl.gz", f"profiles/{day}.json"]
        if not (self.landing / "campaigns").exists():
            names.append("campaigns/campaigns.yml")
        for name in names:
            (self.landing / name).parent.mkdir(exist_ok=True)
            shutil.copy2(source / name, self.landing / name)

    def tables(self) -> dict[str, Counter]:
        """Every table and view of every schema, as a multiset of row digests without the arrival columns."""
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            relations = con.execute(
                "select table_schema, table_name from information_schema.tables"
                " where table_catalog = current_database() order by all"
            ).fetchall()
            found = {}
            for schema, table in relations:
                columns = [
                    (c, kind)
                    for c, kind in con.execute(
                        "select column_name, data_type from information_schema.columns"
                        " where table_schema = ? and table_name = ? order by ordinal_position",
                        [schema, table],
                    ).fetchall()
                    if c not in IGNORED["*"] and c not in IGNORED.get(table, set())
                ]
                listed = ", ".join(_comparable(table, c, kind) for c, kind in columns)
                # a path inside the deployment's folder (the outbox file an email_log row names) is the same
                # path relative to it
                digests = con.execute(
                    f'select md5(replace(cast(row({listed}) as varchar), ?, \'\')) from "{schema}"."{table}"',
                    [str(self.root)],
                ).fetchall()
                found[f"{schema}.{table}"] = Counter(d for (d,) in digests)
        return found

    def raw_rows_checked(self) -> dict[str, int]:
        """Rows the raw-batch suites validated over all intervals."""
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return dict(
                con.execute(
                    f"select suite, sum(row_count) from quality_gate_log where suite in {RAW_SUITES} group by suite"
                ).fetchall()
            )

    def sent_files(self) -> dict[str, Any]:
        """What the senders wrote for destinations and recipients: exports, and report emails part by part."""
        return {
            str(path.relative_to(self.out)): _email_parts(path) if path.suffix == ".eml" else path.read_bytes()
            for folder in ("exports", "outbox")
            for path in sorted((self.out / folder).rglob("*"))
            if path.is_file()
        }

    def sync_attempts(self) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(
                "select run_id, audience, outcome, added, removed, sent from sync_runs order by started_at"
            ).fetchall()


class _TaskInstance:
    """The one thing the DAG's templates ask of Airflow's task instance: an upstream task's return value."""

    def __init__(self, returned: dict[str, Any]) -> None:
        self.returned = returned

    def xcom_pull(self, task_ids: str, **_: Any) -> Any:
        return self.returned[task_ids]


def _comparable(table: str, column: str, kind: str) -> str:
    expression = EXPRESSIONS.get(table, {}).get(column, f'"{column}"')
    # A sum or average of doubles depends on the order rows reach it, which SQL leaves open (a rerun's
    # rpt_campaign_lift differed in the 16th digit): compare doubles to 9 significant digits.
    if kind in ("DOUBLE", "FLOAT", "REAL"):
        return f"printf('%.8e', {expression})"
    return expression


# "Loaded in this period: N events ... from M files; ..." reports the loads of the run's interval: B's first
# email counts the whole week, its later ones nothing. The rest of every email must be the same.
LOADED_IN_PERIOD = re.compile(r"Loaded in this period:.*?records quarantined\.", re.DOTALL)


def _email_parts(path: Path) -> list[tuple[str, Any]]:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    parts: list[tuple[str, Any]] = [("headers", sorted(message.items()))]
    for part in message.walk():
        if not part.is_multipart():
            content = part.get_content()
            if isinstance(content, str):
                content = LOADED_IN_PERIOD.sub("Loaded in this period: (arrivals)", content)
            parts.append((part.get_content_type(), content))
    return parts


def _resolve(value: Any, returned: dict[str, Any]) -> Any:
    """An XComArg (a TaskFlow argument that is an upstream task's output) becomes what that task returned."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    return returned[value.operator.task_id] if isinstance(value, PlainXComArg) else value


def differences(left: dict[str, Counter], right: dict[str, Counter]) -> dict[str, str]:
    found = {}
    for table in sorted(set(left) | set(right)):
        a, b = left.get(table), right.get(table)
        if a is None or b is None:
            found[table] = "only in " + ("the second" if a is None else "the first")
        elif a != b:
            found[table] = f"{sum((a - b).values())} rows only in the first, {sum((b - a).values())} only in the second"
    return found


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """The project parsed once for every build of the test (what each dbt subprocess of the DAG re-does)."""
    from dbt.cli.main import dbtRunner

    tmp = tmp_path_factory.mktemp("dbt_parse")
    with pytest.MonkeyPatch.context() as patch:
        # the file's name is the database name the manifest's nodes carry: the deployments' is rekindle.duckdb
        patch.setenv("REKINDLE_WAREHOUSE", str(tmp / "rekindle.duckdb"))
        project = ["--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT / "dbt_project"), "--target", "duckdb"]
        done = dbtRunner().invoke(["parse", *project, "--target-path", str(tmp), "--log-path", str(tmp)])
    assert done.success, done.exception
    return done.result


@pytest.fixture(scope="module")
def day_by_day(tmp_path_factory, week, daily_dag, manifest) -> Deployment:
    deployment = Deployment(tmp_path_factory.mktemp("day_by_day"), daily_dag, manifest)
    for day in DAYS:
        deployment.deliver(week, day)
        deployment.run(day)
    return deployment


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory, week, daily_dag, manifest) -> Deployment:
    deployment = Deployment(tmp_path_factory.mktemp("backfilled"), daily_dag, manifest)
    for day in DAYS:
        deployment.deliver(week, day)
    for day in DAYS:
        deployment.run(day)
    return deployment


def test_the_runner_runs_every_task_of_the_dag(daily_dag):
    """The deployments above run each of these; a task of another kind would need teaching them."""
    from cosmos.operators.local import DbtLocalBaseOperator

    kinds = {t.task_id: "dbt" if isinstance(t, DbtLocalBaseOperator) else "python" for t in daily_dag.tasks}
    assert kinds == {
        "data_interval": "python",
        "load_landing": "python",
        "dbt_build_orders": "dbt",
        "predict_clv": "python",
        "dbt_build": "dbt",
        "quality_gate": "python",
        "export_audiences": "python",
        "send_report": "python",
    }


def test_a_backfill_leaves_the_warehouse_as_the_days_run_one_by_one(day_by_day, backfilled):
    a, b = day_by_day.tables(), backfilled.tables()
    assert differences(a, b) == {}
    # B's gate validated on its first day every raw record A's validated over the week
    assert backfilled.raw_rows_checked() == day_by_day.raw_rows_checked()
    # not vacuous: the week built the marts, and the senders sent
    assert sum(a["main.fct_events"].values()) > 1000
    assert sum(a["main.segment_members"].values()) > 0
    assert sum(a["main.quality_gate_log"].values()) == 7 * len({s for s in _suites(day_by_day)})
    sent = day_by_day.sent_files()
    assert any(name.startswith("exports/") for name in sent) and any(name.startswith("outbox/") for name in sent)
    assert sent == backfilled.sent_files()


def _suites(deployment: Deployment) -> list[str]:
    with duckdb.connect(str(deployment.warehouse), read_only=True) as con:
        return [s for (s,) in con.execute("select distinct suite from quality_gate_log").fetchall()]


def test_rerunning_a_completed_day_changes_nothing(backfilled):
    tables, sent, attempts = backfilled.tables(), backfilled.sent_files(), backfilled.sync_attempts()
    backfilled.run(DAYS[-1])
    # sync_runs logs every attempt of a run (the senders' crash recovery reads it): the rerun adds its own, one
    # per audience, and it sent nothing
    new = backfilled.sync_attempts()[len(attempts) :]
    assert new and all(row[0] == "20261101T000000Z" and row[2:] == ("ok", 0, 0, 0) for row in new), new
    assert differences(tables, backfilled.tables()) == {
        "main.sync_runs": f"0 rows only in the first, {len(new)} only in the second"
    }
    assert backfilled.sent_files() == sent
