"""Reports (models/marts/reports): revenue and cohorts on the real CDNOW purchase history, engagement, retention
and funnels held to plain-Python recomputations on the generated sample, and funnel definitions (validation
that names the file, the funnel and the field; the generated model in step with the YAML).

The window edges of engagement and funnels are dbt unit tests with hand-computed rows
(models/marts/reports/_reports__unit_tests.yml); these tests hold whole tables to an independent definition.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from bisect import bisect_right
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median

import duckdb
import pytest
import yaml

from loaders.funnels import FunnelDefinitionError, build, load_funnels, out_of_date, render_model
from loaders.load import load_landing
from loaders.segments import _compile
from tests.conftest import PROJECT, SMALL_AS_OF, run_dbt

CDNOW_MASTER = PROJECT / "tests" / "data" / "cdnow" / "CDNOW_master.txt"
CDNOW_AS_OF = datetime(1998, 7, 1)  # the history ends on 1998-06-30
EXCLUDED = {"Notification Sent", "Notification Viewed", "Notification Clicked", "App Uninstalled"}


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(sql).fetchall()


# ----------------------------------------------------------------------------------------------- CDNOW


def cdnow_purchases() -> list[tuple[str, date, Decimal]]:
    """(customer, day, amount) of every line of the raw file, read here without the project's loader."""
    rows = []
    for line in CDNOW_MASTER.read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            customer, day, _cds, amount = line.split()
            rows.append((customer, datetime.strptime(day, "%Y%m%d").date(), Decimal(amount)))
    return rows


@pytest.fixture(scope="module")
def cdnow_warehouse(tmp_path_factory) -> Path:
    """CDNOW_master.txt through the transactions loader (its shipped mapping), then a dbt build of the reports
    and what they read; tests of models outside that selection are left to the other modules."""
    tmp = tmp_path_factory.mktemp("cdnow")
    (tmp / "landing" / "transactions").mkdir(parents=True)
    shutil.copy(CDNOW_MASTER, tmp / "landing" / "transactions" / CDNOW_MASTER.name)
    warehouse = tmp / "rekindle.duckdb"
    result = load_landing(str(tmp / "landing"), warehouse, (CDNOW_AS_OF - timedelta(days=1), CDNOW_AS_OF))
    assert not result.failed_files and result.total("quarantined") == 0
    run_dbt(warehouse, "build", "--select", "+tag:reports", "--indirect-selection", "cautious",
            as_of=CDNOW_AS_OF, tmp=tmp)  # fmt: skip
    return warehouse


def test_cdnow_monthly_revenue_and_customers_match_the_raw_file_exactly(cdnow_warehouse: Path) -> None:
    revenue: dict[date, Decimal] = defaultdict(Decimal)
    orders: dict[date, int] = defaultdict(int)
    customers: dict[date, set[str]] = defaultdict(set)
    first_month: dict[str, date] = {}
    for customer, day, amount in cdnow_purchases():
        month = day.replace(day=1)
        revenue[month] += amount
        orders[month] += 1  # identical lines are two purchases (DECISIONS.md: transaction keys)
        customers[month].add(customer)
        first_month[customer] = min(first_month.get(customer, month), month)
    new: dict[date, int] = defaultdict(int)
    for month in first_month.values():
        new[month] += 1
    expected = [
        (m, revenue[m], orders[m], len(customers[m]), new[m], revenue[m] / len(customers[m])) for m in sorted(revenue)
    ]
    rows = query(
        cdnow_warehouse,
        "select revenue_month, revenue, orders, active_customers, new_customers, arppu, is_partial_month"
        " from rpt_revenue_monthly order by revenue_month",
    )
    assert len(expected) == 18 and [r[0] for r in rows] == [e[0] for e in expected]  # Jan 1997 - Jun 1998
    for row, (month, total, count, active, first, arppu) in zip(rows, expected, strict=True):
        assert (row[1], row[2], row[3], row[4]) == (total, count, active, first), month
        assert row[5] == arppu.quantize(Decimal("0.000001")), month
        assert row[6] is False
    assert sum(r[1] for r in rows) == sum(a for _, _, a in cdnow_purchases())
    assert sum(r[4] for r in rows) == 23_570  # every customer is new exactly once


def test_cdnow_purchase_cohorts_of_january_to_march_1997(cdnow_warehouse: Path) -> None:
    """CDNOW's customers all first bought in Q1 1997: three monthly purchase cohorts, followed to June 1998."""
    purchases = cdnow_purchases()
    first = {}
    bought_in: dict[str, set[date]] = defaultdict(set)
    for customer, day, _ in purchases:
        first[customer] = min(first.get(customer, day), day)
        bought_in[customer].add(day.replace(day=1))
    rows = query(
        cdnow_warehouse,
        "select cohort_start, period_number, period_start, cohort_users, retained_users, retention_rate,"
        " is_complete_period from rpt_retention_cohorts"
        " where first_event = 'Charged' and return_event = 'Charged' and cohort_grain = 'month'"
        " order by cohort_start, period_number",
    )
    cohorts = sorted({r[0] for r in rows})
    assert cohorts == [date(1997, 1, 1), date(1997, 2, 1), date(1997, 3, 1)]
    for cohort in cohorts:
        members = [c for c, d in first.items() if d.replace(day=1) == cohort]
        mine = [r for r in rows if r[0] == cohort]
        # every month from the cohort's to June 1998, the months with no returns included
        assert [r[1] for r in mine] == list(range(len(mine))) and mine[-1][2] == date(1998, 6, 1)
        assert all(r[3] == len(members) for r in mine)
        assert mine[0][4] == len(members) and mine[0][5] == 1  # period 0: the first purchase itself
        for _cohort, _n, period_start, _size, retained, rate, complete in mine[1:]:
            assert retained == sum(1 for c in members if period_start in bought_in[c]), (cohort, period_start)
            assert 0 < rate < 0.25 and complete  # a repeat-purchase rate, not a bug's 0 or 1
    assert sum(len([c for c in first if first[c].replace(day=1) == m]) for m in cohorts) == 23_570
    # with only Charged events, "any activity" cohorts are the purchase cohorts
    any_rows = query(
        cdnow_warehouse,
        "select cohort_start, period_number, retained_users from rpt_retention_cohorts"
        " where first_event = 'any' and cohort_grain = 'month' order by 1, 2",
    )
    assert any_rows == [(r[0], r[1], r[4]) for r in rows]


# ------------------------------------------------------------------------- the generated sample (small)


def active_days(warehouse: Path) -> dict[str, set[date]]:
    days: dict[str, set[date]] = defaultdict(set)
    for user, name, at in query(warehouse, "select user_id, event_name, event_at from fct_events"):
        if name not in EXCLUDED:
            days[user].add(at.date())
    return days


def test_engagement_daily_equals_distinct_users_in_trailing_windows(built_warehouse: Path) -> None:
    days = active_days(built_warehouse)
    first_day = min(min(d) for d in days.values())
    rows = query(
        built_warehouse,
        "select activity_date, dau, wau, mau, stickiness, new_users, returning_users, is_partial_day"
        " from rpt_engagement_daily order by 1",
    )
    last_day = SMALL_AS_OF.date() - timedelta(days=1)  # a midnight as-of ends with the day before
    assert [r[0] for r in rows] == [first_day + timedelta(n) for n in range((last_day - first_day).days + 1)]
    for day, dau, wau, mau, stickiness, new, returning, partial in rows:

        def active_within(n: int, day: date = day) -> int:
            return sum(1 for d in days.values() if any(day - timedelta(n - 1) <= x <= day for x in d))

        expected_new = sum(1 for d in days.values() if min(d) == day)
        assert (dau, wau, mau, new) == (active_within(1), active_within(7), active_within(30), expected_new), day
        assert returning == dau - new and not partial
        assert stickiness == pytest.approx(round(dau / mau, 6))
    assert max(r[2] for r in rows) > max(r[1] for r in rows) > 0  # the windows are not all the same thing


def test_retention_cohorts_equal_a_recount_from_events(built_warehouse: Path) -> None:
    days = active_days(built_warehouse)
    rows = query(
        built_warehouse,
        "select cohort_grain, cohort_start, period_number, period_start, cohort_users, retained_users"
        " from rpt_retention_cohorts where first_event = 'any' and return_event = 'any'",
    )

    def start(day: date, grain: str) -> date:
        return day - timedelta(day.weekday()) if grain == "week" else day.replace(day=1)

    expected = set()
    for grain in ("week", "month"):
        cohorts: dict[date, list[str]] = defaultdict(list)
        for user, d in days.items():
            cohorts[start(min(d), grain)].append(user)
        periods = sorted({start(x, grain) for d in days.values() for x in d})
        for cohort, members in cohorts.items():
            for number, period in enumerate(p for p in periods if p >= cohort):
                retained = sum(1 for u in members if any(start(x, grain) == period for x in days[u]))
                expected.add((grain, cohort, number, period, len(members), retained))
    assert set(rows) == expected and len(rows) == len(expected)
    assert any(r[0] == "week" and r[2] >= 1 and 0 < r[5] < r[4] for r in rows)


def reach(steps: list[list[datetime]], window: timedelta) -> dict[int, tuple[datetime, datetime, datetime]]:
    """Per step k reached, (t1, t(k-1), t(k)) of the user's earliest entry that reaches k. From each entry, step
    k is the earliest step-k event strictly after step k-1 and within `window` of step 1: plain Python over
    sorted lists, against the SQL's union and window frames (the tie order, the frame, the window bound)."""
    found: dict[int, tuple[datetime, datetime, datetime]] = {}
    for t1 in steps[0]:  # sorted: the first entry to reach a step is the earliest
        chain = [t1]
        for times in steps[1:]:
            i = bisect_right(times, chain[-1])  # strictly after the previous step
            if i == len(times) or times[i] > t1 + window:
                break
            chain.append(times[i])
        for k in range(1, len(chain) + 1):
            found.setdefault(k, (t1, chain[max(k - 2, 0)], chain[k - 1]))
    return found


def step_matches(step: dict, name: str, at: datetime, props: str | None) -> bool:
    """A step's event name and `where:` filters, for the operators the funnels of these tests use."""
    if name != step["event"]:
        return False
    values = json.loads(props) if props else {}
    for f in step["where"]:
        value = values.get(f["property"])
        number = isinstance(value, int | float) and not isinstance(value, bool)
        op, wanted = f["op"], f.get("value")
        if op == "eq":
            ok = value == wanted
        elif op == "in":
            ok = value in wanted
        elif op == "gte":
            ok = number and value >= wanted
        elif op == "lt":
            ok = number and value < wanted
        else:
            raise AssertionError(f"extend this recount to the operator {op}")
        if not ok:
            return False
    return True


def in_entry_window(window: dict, at: datetime, as_of: datetime) -> bool:
    if "within_days" in window:
        return at > as_of - timedelta(days=window["within_days"])
    if "since" in window:
        return at >= datetime.fromisoformat(window["since"])
    if "between" in window:
        first, last = (datetime.fromisoformat(d) for d in window["between"])
        return first <= at < last + timedelta(days=1)
    return True


def recount(funnel, events: dict[str, list[tuple[str, datetime, str | None]]], as_of: datetime) -> dict:
    """{step: (users_reached, median seconds from step 1, from the previous step)} from plain Python."""
    window = timedelta(seconds=funnel.window_seconds)
    reached: dict[int, list[tuple[datetime, datetime, datetime]]] = defaultdict(list)
    for user_events in events.values():
        steps = [
            sorted(
                at
                for name, at, props in user_events
                if at <= as_of
                and step_matches(step, name, at, props)
                and (k > 0 or in_entry_window(funnel.entry_window, at, as_of))
            )
            for k, step in enumerate(funnel.steps)
        ]
        for k, times in reach(steps, window).items():
            reached[k].append(times)
    result = {}
    for k in range(1, len(funnel.steps) + 1):
        times = reached[k]
        medians = (
            (
                median((t - t1).total_seconds() for t1, _, t in times),
                median((t - p).total_seconds() for _, p, t in times),
            )
            if k > 1 and times
            else (None, None)
        )
        result[k] = (len(times), *medians)
    return result


def warehouse_events(warehouse: Path) -> dict[str, list[tuple[str, datetime, str | None]]]:
    events: dict[str, list[tuple[str, datetime, str | None]]] = defaultdict(list)
    for user, name, at, props in query(warehouse, "select user_id, event_name, event_at, properties from fct_events"):
        events[user].append((name, at, props))
    return events


def test_funnels_equal_a_recount_of_each_users_events(built_warehouse: Path) -> None:
    funnels = load_funnels()
    assert funnels, "dbt_project/funnels/ ships a demo funnel"
    events = warehouse_events(built_warehouse)
    rows = query(
        built_warehouse,
        "select funnel_name, step_number, users_reached, median_seconds_from_first, median_seconds_from_previous"
        " from rpt_funnels",
    )
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert len(got) == sum(len(f.steps) for f in funnels)
    for funnel in funnels:
        expected = recount(funnel, events, SMALL_AS_OF)
        assert {k: got[(funnel.name, k)] for k in expected} == expected, funnel.name
        assert expected[1][0] > expected[len(funnel.steps)][0] > 0, funnel.name


def test_entry_windows_and_list_filters_compile_and_count(built_warehouse: Path, tmp_path: Path, monkeypatch) -> None:
    """Definitions the shipped file does not use (since, between, in, lt, window_hours, a repeated event),
    compiled by dbt through the same macro and run read-only on the built warehouse."""
    definitions(
        tmp_path,
        """
funnels:
  - name: since_the_24th
    since: 2026-10-24
    window_hours: 6
    steps:
      - event: Product Viewed
        where: [{property: Category, op: in, value: [Electronics, Books]}]
      - event: Added To Cart
      - event: Charged
        where: [{property: Amount, op: lt, value: 100}]
  - name: repeat_purchase_in_week_two
    between: [2026-10-24, 2026-10-27]
    window_days: 3
    steps: [Charged, Charged]
""",
    )
    funnels = load_funnels(tmp_path)
    monkeypatch.setenv("REKINDLE_WAREHOUSE", str(built_warehouse))
    monkeypatch.setenv("REKINDLE_TARGET", "duckdb")
    definition = json.dumps([f.definition() for f in funnels])
    # Both generated models of these definitions in one compile: the entries, then the report over them with
    # its read of the built int_reports__funnel_entries (the shipped definitions' entries) swapped for them.
    compiled = _compile(
        "{% set funnels %}{% raw %}" + definition + "{% endraw %}{% endset %}"
        "{{ funnel_entries(fromjson(funnels), 8) }}\n-- report --\n{{ funnel_report(fromjson(funnels)) }}",
        SMALL_AS_OF,
        PROJECT,
    )
    entries, report = compiled.split("-- report --")
    built_entries = re.compile(r'(?:"[^"]+"\.)*"int_reports__funnel_entries"')
    assert len(built_entries.findall(report)) == len(funnels), report  # one read per funnel
    sql = built_entries.sub(lambda _: f"({entries})", report)
    rows = query(
        built_warehouse,
        f"select funnel_name, step_number, users_reached, median_seconds_from_first, median_seconds_from_previous"
        f" from ({sql}) as funnels",
    )
    got = {(r[0], r[1]): r[2:] for r in rows}
    events = warehouse_events(built_warehouse)
    for funnel in funnels:
        expected = recount(funnel, events, SMALL_AS_OF)
        assert {k: got[(funnel.name, k)] for k in expected} == expected, funnel.name
        assert expected[len(funnel.steps)][0] > 0, funnel.name


# --------------------------------------------------------------------------------------- definitions

VALID = """
funnels:
  - name: buyers
    steps: [App Launched, Charged]
"""


def definitions(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dbt_project" / "funnels" / "mine.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_funnels_are_valid_and_the_generated_model_is_up_to_date() -> None:
    names = [f.name for f in load_funnels()]
    assert "browse_to_purchase" in names
    assert out_of_date() == [], "run `python -m loaders funnels build` and commit models/marts/reports/rpt_funnels.sql"


def test_a_short_definition_gets_the_default_window(tmp_path: Path) -> None:
    definitions(tmp_path, VALID)
    (funnel,) = load_funnels(tmp_path)
    assert funnel.window_seconds == 5 * 86400 and funnel.entry_window == {}
    assert [s["event"] for s in funnel.steps] == ["App Launched", "Charged"]
    assert out_of_date(tmp_path) != []
    written = build(tmp_path)
    assert written and out_of_date(tmp_path) == [] and build(tmp_path) == []
    assert written[0].read_text() == render_model([funnel])


@pytest.mark.parametrize(
    ("funnel", "message"),
    [
        ("{name: f, steps: [App Launched]}", "funnel 'f', steps: must be a list of 2 to 8 steps, got 1"),
        ("{name: f, steps: [a, b, c, d, e, f, g, h, i]}", "steps: must be a list of 2 to 8 steps, got 9"),
        (
            "{name: f, steps: [a, {event: b, where: [{property: Amount, op: above, value: 3}]}]}",
            "funnel 'f', steps[1].where[0].op: unknown operator 'above'; allowed: eq",
        ),
        (
            "{name: f, steps: [a, {event: b, where: [{property: Amount, op: gt, value: cheap}]}]}",
            "steps[1].where[0].value: 'gt' compares numbers or dates",
        ),
        ("{name: f, steps: [a, {evnt: b}]}", "funnel 'f', steps[1]: unknown field 'evnt'; allowed: event, where"),
        ("{name: f, steps: [a, '{{ evil }}']}", "steps[1].event: may not contain any of {{ }}"),
        ("{name: f, window_days: 0, steps: [a, b]}", "funnel 'f', window_days: must be at least 1, got 0"),
        ("{name: f, window_days: 1.5, steps: [a, b]}", "window_days: must be a whole number, got 1.5"),
        ("{name: f, window_days: 1, window_hours: 2, steps: [a, b]}", "window_days or window_hours, not both"),
        ("{name: f, window_days: 400, steps: [a, b]}", "the conversion window is at most 366 days"),
        ("{name: f, within_days: 7, since: 2026-10-01, steps: [a, b]}", "give one window of within_days"),
        ("{name: f, stepz: [a, b]}", "funnel 'f', definition: unknown field 'stepz'"),
        ("{name: Bad-Name, steps: [a, b]}", "funnel #1: field 'name' must be snake_case"),
    ],
)
def test_errors_name_the_file_the_funnel_and_the_field(tmp_path: Path, funnel: str, message: str) -> None:
    definitions(tmp_path, f"funnels:\n  - {funnel}\n")
    with pytest.raises(FunnelDefinitionError) as error:
        load_funnels(tmp_path)
    text = str(error.value)
    assert text.startswith("dbt_project/funnels/mine.yml, funnel"), text
    assert message in text, text


def test_names_are_unique_across_files(tmp_path: Path) -> None:
    definitions(tmp_path, VALID)
    (tmp_path / "dbt_project" / "funnels" / "other.yml").write_text(VALID)
    with pytest.raises(
        FunnelDefinitionError, match=r"other.yml, funnel 'buyers': the name is already used in .*mine.yml"
    ):
        load_funnels(tmp_path)


def test_cli_check_fails_on_a_stale_model_and_build_fixes_it(tmp_path: Path) -> None:
    """`python -m loaders funnels check|build` on a copy of the project's funnels and generated model."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT / "dbt_project" / "funnels", project / "dbt_project" / "funnels")
    shipped = yaml.safe_load((project / "dbt_project" / "funnels" / "funnels.yml").read_text())
    assert shipped["funnels"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "loaders", "funnels", *args, "--project", str(project)],
                              cwd=PROJECT, capture_output=True, text=True, check=False)  # fmt: skip

    stale = cli("check")
    assert stale.returncode == 1 and "out of date" in stale.stderr
    built = cli("build")
    assert built.returncode == 0 and "wrote" in built.stdout
    assert cli("check").returncode == 0
    definitions(project, "funnels:\n  - {name: f, steps: [a]}\n")
    bad = cli("check")
    assert bad.returncode == 1 and "error: dbt_project/funnels/mine.yml, funnel 'f', steps:" in bad.stderr
