"""What each segment rule selects: the SQL compiled from YAML definitions, run by dbt, against hand-made data.

The harness copies the dbt project into a temporary folder, writes test definitions there, generates the
models with `loaders.segments.build(project=...)`, creates `dim_users` and `fct_events` by hand in a DuckDB
file and runs ONE `dbt run` that selects only the segment models (so the hand-made tables are read, never
rebuilt). Every expected membership below is an explicit set computed by hand from the semantics in the
`macros/segment_*.sql` docstrings; the property-based test compares random definitions on random data with
an independent Python evaluator of the same semantics.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from loaders.segments import PROFILE_FIELDS, SegmentDefinitionError, build, parse_file

PROJECT = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).with_name("dbt"))
AS_OF = datetime(2026, 11, 1)
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)
SELECT = ("int_segments__event_facts", "segment_definitions", "tag:segment")

# -- harness -------------------------------------------------------------------------------------------------

NUMBER_TYPES = {"revenue": "decimal(28, 6)", "event_count": "bigint", "session_count": "bigint",
                "order_count": "bigint", "r_score": "integer", "f_score": "integer", "m_score": "integer"}  # fmt: skip
SQL_TYPES = {"text": "varchar", "bool": "boolean", "timestamp": "timestamp", "number": "double"}
USER_COLUMNS = {
    **{column: NUMBER_TYPES.get(column, SQL_TYPES[kind]) for column, kind in PROFILE_FIELDS.items()},
    "custom_properties": "json",
    "evaluated_at": "timestamp",
}


@dataclass
class Event:
    user_id: str
    name: str
    at: datetime
    properties: dict | None = None  # None: a SQL null properties column


@dataclass
class Run:
    members: dict[str, set[str] | None]  # segment name -> user ids (None: the model did not build)
    statuses: dict[str, tuple[str, str]]  # node name -> (status, message) from run_results.json
    output: str
    extra: dict[str, Any] = field(default_factory=dict)


class Harness:
    """A copy of the dbt project and a DuckDB warehouse that one `dbt run` evaluates definitions against."""

    def __init__(self, root: Path) -> None:
        self.root, self.project, self.warehouse = root, root / "project", root / "warehouse.duckdb"
        ignore = shutil.ignore_patterns("target", "logs", "__pycache__", ".DS_Store")
        self.project.mkdir()
        shutil.copy(PROJECT / "dbt_project.yml", self.project)
        for folder in ("models", "macros", "dbt_project"):
            shutil.copytree(PROJECT / folder, self.project / folder, ignore=ignore)
        self.segments_dir = self.project / "dbt_project" / "segments"

    def write_definitions(self, definitions: list[dict]) -> None:
        for shipped in self.segments_dir.glob("*.yml"):
            shipped.unlink()
        text = yaml.safe_dump({"segments": definitions}, sort_keys=False, allow_unicode=True, width=1000)
        (self.segments_dir / "test.yml").write_text(text, encoding="utf-8")

    def write_tables(self, users: list[dict], events: list[Event]) -> None:
        for stale in (self.warehouse, self.warehouse.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        with duckdb.connect(str(self.warehouse)) as con:
            columns = list(USER_COLUMNS)
            con.execute(f"create table main.dim_users ({', '.join(f'{c} {t}' for c, t in USER_COLUMNS.items())})")
            rows = [
                [json.dumps(u[c]) if c == "custom_properties" and u.get(c) is not None else u.get(c) for c in columns]
                for u in users
            ]
            if rows:
                con.executemany(f"insert into main.dim_users values ({', '.join('?' * len(columns))})", rows)
            con.execute(
                "create table main.fct_events (event_key varchar, user_id varchar, event_name varchar,"
                " event_at timestamp, properties json)"
            )
            rows = [
                [f"e{i}", e.user_id, e.name, e.at, None if e.properties is None else json.dumps(e.properties)]
                for i, e in enumerate(events)
            ]
            if rows:
                con.executemany("insert into main.fct_events values (?, ?, ?, ?, ?)", rows)

    def run(self, definitions: list[dict], users: list[dict], events: list[Event]) -> Run:
        self.write_definitions(definitions)
        build(project=self.project)
        self.write_tables(users, events)
        env = {
            **os.environ,
            "REKINDLE_WAREHOUSE": str(self.warehouse),
            "REKINDLE_TARGET": "duckdb",
            "DO_NOT_TRACK": "1",
        }
        target = self.root / "target"
        (target / "run_results.json").unlink(missing_ok=True)
        command = [DBT, "run", "--project-dir", str(self.project), "--profiles-dir", str(self.project / "dbt_project"),
                   "--select", *SELECT, "--vars", f"{{rekindle_as_of: '{AS_OF.isoformat()}'}}",
                   "--target-path", str(target), "--log-path", str(self.root / "logs")]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        output = done.stdout[-6000:] + done.stderr[-2000:]
        assert (target / "run_results.json").exists(), output
        results = json.loads((target / "run_results.json").read_text())["results"]
        statuses = {r["unique_id"].split(".")[-1]: (r["status"], r.get("message") or "") for r in results}
        members: dict[str, set[str] | None] = {}
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            for definition in definitions:
                name = definition["name"]
                ok = statuses.get(f"segment__{name}", ("missing", ""))[0] == "success"
                rows = con.execute(f"select user_id from main.segment__{name}").fetchall() if ok else None
                members[name] = None if rows is None else {user_id for (user_id,) in rows}
        return Run(members, statuses, output)


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Harness:
    return Harness(tmp_path_factory.mktemp("segment_rules"))


# -- hand-made data ------------------------------------------------------------------------------------------

INJ = "'; drop table dim_users; --"
USERS = [
    {"user_id": "ann", "city": "London", "country": "GB", "can_email": True, "can_sms": False,
     "last_seen_at": datetime(2026, 10, 31, 12), "revenue": 250, "order_count": 3, "rfm_segment": "Champions",
     "lifecycle_stage": "active", "email": "ann@example.com", "date_of_birth": "1990-05-17",
     "custom_properties": {"Plan": "pro", "Score": 10, "Renewal": "2026-10-25", "VIP": True}},
    {"user_id": "bob", "city": "london", "country": "GB", "can_email": False, "can_sms": True,
     "last_seen_at": AS_OF - 7 * DAY, "revenue": 100, "order_count": 1, "rfm_segment": "Loyal",
     "lifecycle_stage": "at_risk", "email": "bob@example.org", "date_of_birth": "2001-01-01",
     "custom_properties": {"Plan": "plus", "Score": "10", "Renewal": "2026-10-24 23:59:59", "VIP": "TRUE"}},
    {"user_id": "cat", "city": "Paris", "country": "FR", "can_email": True, "can_sms": None,
     "last_seen_at": AS_OF - 14 * DAY, "revenue": 99.5, "order_count": 0, "rfm_segment": "Can't Lose Them",
     "lifecycle_stage": "dormant", "custom_properties": {"Plan": "free", "Score": 9.5, "Renewal": "not a date",
                                                         "VIP": False}},
    {"user_id": "dan"},  # every profile field null
    {"user_id": "eve", "city": "Londonderry", "country": "GB", "can_email": True, "can_sms": True,
     "last_seen_at": AS_OF - 7 * DAY + SECOND, "revenue": 0, "order_count": 0, "rfm_segment": "At Risk",
     "lifecycle_stage": "churned", "email": "eve@example.com", "custom_properties": {}},
    {"user_id": "fay", "city": "100% Cotton_Town", "country": "US", "can_email": False, "can_sms": False,
     "last_seen_at": AS_OF - 7 * DAY - SECOND, "revenue": 1000, "order_count": 12, "rfm_segment": "Lost",
     "lifecycle_stage": "new", "email": "o'brien@example.com", "custom_properties": {"Plan": None, "Score": "n/a"}},
    {"user_id": "gus", "city": "1000 Cotton Town", "country": "US", "can_email": True,
     "last_seen_at": datetime(2026, 10, 1), "revenue": 5, "order_count": 1, "rfm_segment": "Hibernating",
     "lifecycle_stage": "resurrected", "email": "gus@example.com", "custom_properties": {"Plan": "Pro"}},
    {"user_id": "inj", "city": INJ, "country": "C:\\temp\\", "email": "x@example.com",
     "custom_properties": {INJ: "yes", "50%_off": "it's"}},
]  # fmt: skip
ALL = {u["user_id"] for u in USERS}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


EVENTS = [
    # Open: counts (no window). ghost has no dim_users row, so never a member.
    Event("ann", "Open", at("2026-09-01 10:00")),
    *(Event("bob", "Open", at(f"2026-09-0{d} 10:00")) for d in (1, 2)),
    *(Event("cat", "Open", at(f"2026-09-0{d} 10:00")) for d in (1, 2, 3)),
    *(Event("ghost", "Open", at(f"2026-09-0{d} 10:00")) for d in (1, 2)),
    # Visit: the within_days 7 edge is as_of - 7 days = 2026-10-25 00:00:00 (out), one second later (in)
    Event("ann", "Visit", AS_OF - 7 * DAY),
    Event("bob", "Visit", AS_OF - 7 * DAY + SECOND),
    Event("cat", "Visit", AS_OF),
    Event("eve", "Visit", AS_OF - 7 * DAY - SECOND),
    # Browse: between / since edges around 2026-10-10 .. 2026-10-12
    Event("ann", "Browse", at("2026-10-10 00:00:00")),
    Event("bob", "Browse", at("2026-10-09 23:59:59")),
    Event("cat", "Browse", at("2026-10-12 23:59:59")),
    Event("eve", "Browse", at("2026-10-13 00:00:00")),
    # Charged: where filters and aggregates
    Event("ann", "Charged", at("2026-10-20 10:00"), {"Amount": 150, "Category": "Shoes", "Coupon": "SAVE10"}),
    Event("ann", "Charged", at("2026-10-21 10:00"), {"Amount": 50, "Category": "Books"}),
    Event("bob", "Charged", at("2026-10-22 10:00"), {"Amount": "100", "Category": "shoes"}),
    Event("cat", "Charged", at("2026-10-23 10:00"), {"Amount": "n/a"}),
    Event("cat", "Charged", at("2026-10-24 10:00"), {}),
    Event("eve", "Charged", at("2026-10-01 10:00"), {"Amount": 99.5, "Category": None}),
    Event("fay", "Charged", AS_OF - 2 * DAY, {"Amount": 100}),
    Event("fay", "Charged", AS_OF - 2 * DAY + 12 * 3600 * SECOND, None),
    # Signup: a date held in an event property
    Event("ann", "Signup", at("2026-10-01 09:00"), {"Trial Ends": "2026-10-25"}),
    Event("bob", "Signup", at("2026-10-01 09:00"), {"Trial Ends": "2026-10-24"}),
    # hostile names and values
    Event("inj", INJ, at("2026-10-30 10:00"), {INJ: "x", "100%": "50%_off"}),
]


def only(rule: dict) -> dict:
    return {"all": [rule]}


def prof(field: str, op: str, value: Any = ..., custom: bool = False) -> dict:
    condition = {"custom_property" if custom else "property": field, "op": op}
    return {"profile": condition if value is ... else {**condition, "value": value}}


def charged_where(*filters: dict, **rule: Any) -> dict:
    return {"did": "Charged", "where": list(filters), **rule}


def amount(op: str, value: Any = ...) -> dict:
    return {"property": "Amount", "op": op} | ({} if value is ... else {"value": value})


def category(op: str, value: Any = ...) -> dict:
    return {"property": "Category", "op": op} | ({} if value is ... else {"value": value})


def agg(fn: str, op: str, value: float, **extra: Any) -> dict:
    return {"aggregate": {"event": "Charged", "property": "Amount", "fn": fn, "op": op, "value": value, **extra}}


# (name, rules: a single rule is wrapped in `all:`, expected members)  # why
CASES: list[tuple[str, dict, set[str]]] = [
    # did / count (Open: ann 1, bob 2, cat 3; ghost 2 but not in dim_users)
    ("open", {"did": "Open"}, {"ann", "bob", "cat"}),  # at least one Open; ghost has no dim_users row
    ("open_eq_2", {"did": "Open", "count": {"eq": 2}}, {"bob"}),  # exactly two
    ("open_gte_2", {"did": "Open", "count": {"gte": 2}}, {"bob", "cat"}),  # two or more
    ("open_gt_2", {"did": "Open", "count": {"gt": 2}}, {"cat"}),  # strictly more than two
    ("open_lte_2", {"did": "Open", "count": {"lte": 2}}, {"ann", "bob"}),  # did needs >= 1, so not the zero-Open users
    ("open_lt_2", {"did": "Open", "count": {"lt": 2}}, {"ann"}),  # one is < 2; zero Opens is not "did"
    ("open_not", {"did_not": "Open"}, ALL - {"ann", "bob", "cat"}),  # did_not: zero Opens
    ("never_did", {"did": "Never Happened"}, set()),  # nobody did it
    ("never_did_not", {"did_not": "Never Happened"}, ALL),  # everybody did not
    # windows
    ("visit_7", {"did": "Visit", "within_days": 7}, {"bob", "cat"}),  # ann exactly at as_of-7d: out; bob +1s: in
    ("visit_8", {"did": "Visit", "within_days": 8}, {"ann", "bob", "cat", "eve"}),  # all four inside 8 days
    ("visit_not_7", {"did_not": "Visit", "within_days": 7}, ALL - {"bob", "cat"}),  # complement of visit_7
    ("browse_between", {"did": "Browse", "between": ["2026-10-10", "2026-10-12"]}, {"ann", "cat"}),  # 10th 00:00 in
    ("browse_one_day", {"did": "Browse", "between": ["2026-10-12", "2026-10-12"]}, {"cat"}),  # 23:59:59 of the day
    ("browse_since", {"did": "Browse", "since": "2026-10-12"}, {"cat", "eve"}),  # from the day's midnight on
    ("browse_since_10", {"did": "Browse", "since": "2026-10-10"}, {"ann", "cat", "eve"}),  # ann at midnight exactly
    ("charged_2_days_eq_1", charged_where(within_days=2, count={"eq": 1}), {"fay"}),  # fay's 00:00 one is on the edge
    # where filters on event properties (Charged amounts: ann 150/50, bob "100", cat "n/a"/{}, eve 99.5, fay 100/null)
    ("amount_gte_100", charged_where(amount("gte", 100)), {"ann", "bob", "fay"}),  # "100" as text is a number
    ("amount_gt_100", charged_where(amount("gt", 100)), {"ann"}),  # only 150
    ("amount_lt_100", charged_where(amount("lt", 100)), {"ann", "eve"}),  # 50 and 99.5
    ("amount_lte_99_5", charged_where(amount("lte", 99.5)), {"ann", "eve"}),  # 99.5 itself counts
    ("amount_eq_100", charged_where(amount("eq", 100)), {"bob", "fay"}),  # text "100" and number 100
    ("amount_neq_100", charged_where(amount("neq", 100)), {"ann", "cat", "eve", "fay"}),  # missing/"n/a" pass neq
    ("amount_in", charged_where(amount("in", [50, 99.5])), {"ann", "eve"}),  # list of numbers
    ("amount_not_in", charged_where(amount("not_in", [150, 50, 100])), {"cat", "eve", "fay"}),  # missing passes
    ("amount_exists", charged_where(amount("exists")), {"ann", "bob", "cat", "eve", "fay"}),  # "n/a" is a value
    ("amount_not_exists", charged_where(amount("not_exists")), {"cat", "fay"}),  # cat's {} and fay's null properties
    ("amount_exists_gte_2", charged_where(amount("exists"), count={"gte": 2}), {"ann"}),  # cat/fay: 1 with Amount
    ("category_eq", charged_where(category("eq", "Shoes")), {"ann"}),  # case-sensitive: bob's "shoes" is not
    ("category_in", charged_where(category("in", ["Shoes", "shoes"])), {"ann", "bob"}),  # either spelling
    ("category_exists", charged_where(category("exists")), {"ann", "bob"}),  # eve's JSON null is missing
    ("category_not_exists", charged_where(category("not_exists")), {"cat", "eve", "fay"}),  # null/missing
    ("category_contains", charged_where(category("contains", "hoe")), {"ann", "bob"}),  # Shoes, shoes
    ("category_starts", charged_where(category("starts_with", "s")), {"bob"}),  # case-sensitive prefix
    ("coupon_starts", charged_where({"property": "Coupon", "op": "starts_with", "value": "SAVE"}), {"ann"}),  # SAVE10
    ("same_event_big_book", charged_where(amount("gte", 100), category("eq", "Books")), set()),  # no single event
    ("same_event_small_book", charged_where(amount("lt", 100), category("eq", "Books")), {"ann"}),  # ann's 50 Books
    ("trial_within_7", {"did": "Signup", "where": [{"property": "Trial Ends", "op": "within_days", "value": 7}]},
     set()),  # 2026-10-25 is exactly as_of-7d: no longer within (as for an event window), 10-24 neither
    ("trial_older_7", {"did": "Signup", "where": [{"property": "Trial Ends", "op": "older_than_days", "value": 7}]},
     {"ann", "bob"}),  # 2026-10-25 and 10-24 are at or before the cutoff
    ("trial_gt", {"did": "Signup", "where": [{"property": "Trial Ends", "op": "gt", "value": "2026-10-24"}]},
     {"ann"}),  # compared as times: 10-24 00:00 is not > itself
    # aggregates (Amount per user: sum ann 200, bob 100, cat 0, eve 99.5, fay 100; avg fay (100+0)/2 = 50)
    ("sum_gte_100", agg("sum", "gte", 100), {"ann", "bob", "fay"}),  # sums 200, 100, 100
    ("sum_eq_0", agg("sum", "eq", 0), {"cat"}),  # "n/a" and missing count as 0; dan has no Charged event at all
    ("sum_lt_100", agg("sum", "lt", 100), {"cat", "eve"}),  # 0 and 99.5; no event -> not a member
    ("avg_eq_50", agg("avg", "eq", 50), {"fay"}),  # fay's missing amount counts as 0 in avg
    ("avg_eq_100", agg("avg", "eq", 100), {"ann", "bob"}),  # (150+50)/2, 100/1
    ("avg_lt_1", agg("avg", "lt", 1), {"cat"}),  # (0+0)/2
    ("min_eq_100", agg("min", "eq", 100), {"bob", "fay"}),  # min skips fay's missing amount
    ("min_neq_100", agg("min", "neq", 100), {"ann", "eve"}),  # cat has no numeric amount: min is null and fails
    ("max_gt_99_5", agg("max", "gt", 99.5), {"ann", "bob", "fay"}),  # 150, 100, 100
    ("max_lte_99_5", agg("max", "lte", 99.5), {"eve"}),  # 99.5
    ("sum_14_days", agg("sum", "gte", 0, within_days=14), {"ann", "bob", "cat", "fay"}),  # eve's 10-01 is outside
    ("sum_shoes", agg("sum", "gte", 150, where=[category("eq", "Shoes")]), {"ann"}),  # only the Shoes event: 150
    # profile: text fields
    ("city_eq", prof("city", "eq", "London"), {"ann"}),  # exact, case-sensitive
    ("city_neq", prof("city", "neq", "London"), ALL - {"ann"}),  # dan's null city passes neq
    ("city_in", prof("city", "in", ["London", "Paris"]), {"ann", "cat"}),  # list
    ("city_not_in", prof("city", "not_in", ["London", "Paris"]), ALL - {"ann", "cat"}),  # null passes not_in
    ("city_contains", prof("city", "contains", "ondon"), {"ann", "bob", "eve"}),  # London, london, Londonderry
    ("city_starts", prof("city", "starts_with", "London"), {"ann", "eve"}),  # not lower-case london
    ("city_exists", prof("city", "exists"), ALL - {"dan"}),  # dan has no city
    ("city_not_exists", prof("city", "not_exists"), {"dan"}),  # only dan
    ("city_percent", prof("city", "contains", "%"), {"fay"}),  # % is literal, not a LIKE wildcard
    ("city_underscore", prof("city", "contains", "_"), {"fay", "inj"}),  # _ is literal (inj: "dim_users")
    ("city_percent_prefix", prof("city", "starts_with", "100%"), {"fay"}),  # gus's "1000 Cotton Town" does not match
    ("city_wildcards_in", prof("city", "in", ["100_ Cotton%Town"]), set()),  # no pattern matching in `in`
    ("dob_before_2000", prof("date_of_birth", "lt", "2000-01-01"), {"ann"}),  # a text field compared as a date
    ("email_quote", prof("email", "starts_with", "o'brien"), {"fay"}),  # a quote inside a value
    # profile: bool, number and timestamp fields
    ("email_ok", prof("can_email", "eq", True), {"ann", "cat", "eve", "gus"}),  # true only
    ("email_false", prof("can_email", "eq", False), {"bob", "fay"}),  # null is neither true nor false
    ("email_neq_true", prof("can_email", "neq", True), {"bob", "fay", "dan", "inj"}),  # null passes neq
    ("email_unknown", prof("can_email", "not_exists"), {"dan", "inj"}),  # null
    ("sms_in", prof("can_sms", "in", [True]), {"bob", "eve"}),  # bool list
    ("revenue_gte_100", prof("revenue", "gte", 100), {"ann", "bob", "fay"}),  # 100 itself counts
    ("revenue_gt_99_5", prof("revenue", "gt", 99.5), {"ann", "bob", "fay"}),  # cat's 99.5 is not > 99.5
    ("revenue_lt_100", prof("revenue", "lt", 100), {"cat", "eve", "gus"}),  # null revenue fails lt
    ("revenue_lte_99_5", prof("revenue", "lte", 99.5), {"cat", "eve", "gus"}),  # 99.5, 0, 5
    ("revenue_eq_0", prof("revenue", "eq", 0), {"eve"}),  # zero, not null
    ("revenue_neq_0", prof("revenue", "neq", 0), ALL - {"eve"}),  # null passes neq
    ("revenue_in", prof("revenue", "in", [100, 250]), {"ann", "bob"}),  # number list
    ("revenue_not_in", prof("revenue", "not_in", [100, 250]), ALL - {"ann", "bob"}),  # null passes not_in
    ("orders_eq_0", prof("order_count", "eq", 0), {"cat", "eve"}),  # integer column
    ("seen_older_7", prof("last_seen_at", "older_than_days", 7), {"bob", "cat", "fay", "gus"}),  # bob at the cutoff
    ("seen_within_7", prof("last_seen_at", "within_days", 7), {"ann", "eve"}),  # > as_of-7d, <= as_of
    ("seen_older_14", prof("last_seen_at", "older_than_days", 14), {"cat", "gus"}),  # cat exactly at as_of-14d
    ("seen_gt", prof("last_seen_at", "gt", "2026-10-25"), {"ann", "eve"}),  # bob at 10-25 00:00 is not after
    ("seen_gte", prof("last_seen_at", "gte", "2026-10-25"), {"ann", "bob", "eve"}),  # bob at midnight
    ("seen_eq", prof("last_seen_at", "eq", "2026-10-25"), {"bob"}),  # the date is its midnight
    ("seen_lt_time", prof("last_seen_at", "lt", "2026-10-25 00:00:01"), {"bob", "cat", "fay", "gus"}),  # to the second
    ("seen_in", prof("last_seen_at", "in", ["2026-10-18", "2026-10-01"]), {"cat", "gus"}),  # list of dates
    ("seen_neq", prof("last_seen_at", "neq", "2026-10-25"), ALL - {"bob"}),  # null passes neq
    # profile: custom properties
    ("plan_eq", prof("Plan", "eq", "pro", custom=True), {"ann"}),  # gus's "Pro" differs in case
    ("plan_in", prof("Plan", "in", ["plus", "pro"], custom=True), {"ann", "bob"}),  # either plan
    ("plan_neq", prof("Plan", "neq", "pro", custom=True), ALL - {"ann"}),  # JSON null, {} and null object pass
    ("plan_exists", prof("Plan", "exists", custom=True), {"ann", "bob", "cat", "gus"}),  # fay's JSON null is missing
    ("plan_not_exists", prof("Plan", "not_exists", custom=True), {"dan", "eve", "fay", "inj"}),  # complement
    ("score_gt", prof("Score", "gt", 9.5, custom=True), {"ann", "bob"}),  # 10 and "10"; fay's "n/a" is no number
    ("score_eq", prof("Score", "eq", 10, custom=True), {"ann", "bob"}),  # number and numeric text
    ("score_gte", prof("Score", "gte", 9.5, custom=True), {"ann", "bob", "cat"}),  # 9.5 counts
    ("score_lt", prof("Score", "lt", 10, custom=True), {"cat"}),  # "n/a" fails lt
    ("score_neq", prof("Score", "neq", 10, custom=True), ALL - {"ann", "bob"}),  # "n/a" and missing pass neq
    ("renewal_within_7", prof("Renewal", "within_days", 7, custom=True), set()),  # "2026-10-25" == cutoff: older
    ("renewal_older_7", prof("Renewal", "older_than_days", 7, custom=True), {"ann", "bob"}),  # "not a date" fails
    ("renewal_gt", prof("Renewal", "gt", "2026-10-24", custom=True), {"ann", "bob"}),  # 10-24 23:59:59 > 10-24
    ("renewal_eq_text", prof("Renewal", "eq", "2026-10-25", custom=True), {"ann"}),  # eq on JSON compares the text
    ("vip_true", prof("VIP", "eq", True, custom=True), {"ann", "bob"}),  # JSON true and the text "TRUE"
    ("vip_false", prof("VIP", "eq", False, custom=True), {"cat"}),  # JSON false
    ("vip_neq_true", prof("VIP", "neq", True, custom=True), ALL - {"ann", "bob"}),  # missing passes neq
    # in_segment
    ("rfm_champions", {"in_segment": "rfm:champions"}, {"ann"}),  # rfm_segment = Champions
    ("rfm_cant_lose", {"in_segment": "rfm:cant_lose_them"}, {"cat"}),  # the key of "Can't Lose Them"
    ("lifecycle_at_risk", {"in_segment": "lifecycle:at_risk"}, {"bob"}),  # lifecycle_stage = at_risk
    ("not_at_risk", {"not": {"in_segment": "lifecycle:at_risk"}}, ALL - {"bob"}),  # null stage is not at_risk
    ("rfm_any", {"any": [{"in_segment": f"rfm:{k}"} for k in ("champions", "loyal", "at_risk")]},
     {"ann", "bob", "eve"}),  # three RFM segments
    ("open_not_twice", {"all": [{"in_segment": "open"}, {"not": {"in_segment": "open_eq_2"}}]},
     {"ann", "cat"}),  # {ann, bob, cat} minus {bob}
    ("chained", {"any": [{"in_segment": "open_not_twice"}, {"in_segment": "lifecycle:churned"}]},
     {"ann", "cat", "eve"}),  # a segment of a segment of segments, or eve (churned)
    # nesting
    ("nested", {"all": [{"any": [{"did": "Open", "count": {"gte": 2}}, prof("city", "eq", "London")]},
                        {"not": prof("can_email", "eq", False)}]},
     {"ann", "cat"}),  # (bob, cat, ann) minus can_email false (bob, fay)
    ("not_did", {"not": {"did": "Visit", "within_days": 7}}, ALL - {"bob", "cat"}),  # same as did_not
    ("double_not", {"not": {"not": prof("city", "eq", "London")}}, {"ann"}),  # not not
    ("depth_3", {"any": [{"all": [{"did": "Charged"},
                                  {"not": {"any": [prof("revenue", "gte", 200), charged_where(category("exists"))]}}]},
                         prof("city", "not_exists")]},
     {"cat", "dan", "eve"}),  # chargers (ann bob cat eve fay) minus (ann fay | ann bob), or no city (dan)
    ("did_not_where", {"did_not": "Charged", "where": [amount("gte", 100)]},
     ALL - {"ann", "bob", "fay"}),  # no Charged of 100+
    # hostile values: they select exactly who literally matches
    ("inj_city", prof("city", "eq", INJ), {"inj"}),  # the literal text
    ("inj_event", {"did": INJ}, {"inj"}),  # an event literally named so
    ("inj_where", {"did": INJ, "where": [{"property": INJ, "op": "eq", "value": "x"}]}, {"inj"}),  # as a property name
    ("inj_percent_key", {"did": INJ, "where": [{"property": "100%", "op": "eq", "value": "50%_off"}]},
     {"inj"}),  # % and _ in a property name and value
    ("inj_custom", prof(INJ, "exists", custom=True), {"inj"}),  # as a custom property name
    ("inj_custom_quote", prof("50%_off", "eq", "it's", custom=True), {"inj"}),  # quote in the value
    ("inj_backslash", prof("country", "eq", "C:\\temp\\"), {"inj"}),  # backslashes are literal
    ("inj_nobody", {"any": [prof("city", "eq", "' or '1'='1"), prof("city", "in", ["x'); drop table fct_events; --"]),
                            prof("email", "contains", "\\"), {"did": "Open'; --"},
                            prof("a'b; --", "exists", custom=True),
                            charged_where({"property": "a.b[0]*$%_", "op": "exists"})]},
     set()),  # none of these literally matches anybody
]  # fmt: skip

INJ_DESCRIPTION = f'{INJ} it\'s "quoted" C:\\temp\\ 100% _x_\nsecond line -- /* */'
DESCRIPTIONS = {"inj_city": INJ_DESCRIPTION}

# Definitions that once passed validation and then failed in SQL (found by this file): each is now either
# rejected with the message given, or selects the members given.
PROBES: list[tuple[str, dict, set[str] | str]] = [
    ("bug_contains_on_number", prof("revenue", "contains", "25"), "'contains' works on texts"),
    ("bug_starts_with_on_time", prof("last_seen_at", "starts_with", "2026-10-31"), "'starts_with' works on texts"),
    ("bug_compact_iso_date", prof("last_seen_at", "gte", "20261025"), "compared with a date YYYY-MM-DD"),
    ("bug_utc_offset", prof("last_seen_at", "gt", "2026-10-31T14:00:00+05:00"), {"ann"}),  # 09:00 UTC; ann 12:00
    ("bug_never_as_did", {"did": "Open", "count": {"eq": 0}}, "'did' means at least once; for never, write did_not"),
]


def segment(name: str, rules: dict) -> dict:
    top = rules if set(rules) <= {"all", "any"} else only(rules)
    return {"name": name, **({"description": DESCRIPTIONS[name]} if name in DESCRIPTIONS else {}), "rules": top}


def rejection(definition: dict, tmp: Path) -> str | None:
    """The SegmentDefinitionError message for a definition, or None when it is valid."""
    path = tmp / f"{definition['name']}.yml"
    path.write_text(yaml.safe_dump({"segments": [definition]}, allow_unicode=True), encoding="utf-8")
    try:
        parse_file(path, tmp)
    except SegmentDefinitionError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def fixture_run(harness: Harness, tmp_path_factory) -> Run:
    """The hand-computed cases, the hostile ones and the accepted bug probes, in one dbt run; what the tests
    read from the warehouse is read here, before another run (the property test) replaces it."""
    tmp = tmp_path_factory.mktemp("probes")
    probes = [segment(name, rule) for name, rule, _ in PROBES]
    accepted = [p for p in probes if rejection(p, tmp) is None]  # a fixed validator may reject them
    run = harness.run([segment(name, rules) for name, rules, _ in CASES] + accepted, USERS, EVENTS)
    with duckdb.connect(str(harness.warehouse), read_only=True) as con:
        run.extra["dim_users"] = con.execute("select count(*) from main.dim_users").fetchone()[0]
        run.extra["fct_events"] = con.execute("select count(*) from main.fct_events").fetchone()[0]
        run.extra["description"] = con.execute(
            "select description from main.segment_definitions where segment_name = 'inj_city'"
        ).fetchall()
        run.extra["evaluated_at"] = con.execute("select distinct evaluated_at from main.segment__open").fetchall()
    run.extra["compiled"] = next((harness.root / "target" / "compiled").rglob("int_segments__flags.sql")).read_text()
    return run


@pytest.mark.parametrize(("name", "expected"), [(name, expected) for name, _, expected in CASES], ids=lambda v: v)
def test_members(fixture_run: Run, name: str, expected: set[str]):
    status, message = fixture_run.statuses.get(f"segment__{name}", ("missing", ""))
    assert status == "success", f"segment__{name}: {status} {message}\n{fixture_run.output}"
    assert fixture_run.members[name] == expected


def test_one_run_builds_only_the_segment_models_over_the_hand_made_tables(fixture_run: Run):
    built = set(fixture_run.statuses) - {f"segment__{name}" for name, _, _ in PROBES}
    assert built == {"int_segments__event_facts", "int_segments__flags", "segment_definitions"} | {
        f"segment__{n}" for n, _, _ in CASES
    }
    assert fixture_run.statuses["int_segments__event_facts"][0] == "success"
    # ref('dim_users') and ref('fct_events') are the hand-made tables (they were not selected, so not rebuilt)
    assert '"main"."dim_users"' in fixture_run.extra["compiled"]
    assert fixture_run.extra["evaluated_at"] == [(AS_OF,)]


def test_hostile_definitions_leave_the_warehouse_intact(fixture_run: Run):
    assert (fixture_run.extra["dim_users"], fixture_run.extra["fct_events"]) == (len(USERS), len(EVENTS))
    # the description reaches segment_definitions as the literal text, quotes and backslashes included
    assert fixture_run.statuses["segment_definitions"][0] == "success"
    assert fixture_run.extra["description"] == [(INJ_DESCRIPTION,)]


JINJA = "may not contain any of {{ }} {% %} {# #}"
QUOTED_NAME = 'a property name has at most 120 characters and no " or \\'


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (prof("city", "eq", "{{ run_query('drop table dim_users') }}"), JINJA),
        (prof("city", "contains", "{% do run_query('drop table dim_users') %}"), JINJA),
        (prof("city", "in", ["ok", "}}"]), JINJA),
        (prof("Plan", "eq", "{# x", custom=True), JINJA),
        (prof("a{{b", "exists", custom=True), JINJA),
        ({"did": "{{ this }}"}, JINJA),
        (prof('a"b', "exists", custom=True), QUOTED_NAME),
        (prof("a\\b", "exists", custom=True), QUOTED_NAME),
        (
            {"did": "Charged", "where": [{"property": 'Amount"); drop table dim_users; --', "op": "exists"}]},
            QUOTED_NAME,
        ),
        ({"did": "Charged", "where": [{"property": "Amount\\", "op": "exists"}]}, QUOTED_NAME),
        ({"aggregate": {"event": "Charged", "property": '"', "fn": "sum", "op": "gt", "value": 1}}, QUOTED_NAME),
        ({"in_segment": "x; drop table dim_users"}, "must be a segment name"),
        (prof("city; drop table dim_users", "eq", "x"), "unknown profile field"),
    ],
    ids=lambda v: json.dumps(v)[:50] if isinstance(v, dict) else "",
)
def test_jinja_delimiters_and_quoted_names_are_rejected(tmp_path: Path, rule: dict, message: str):
    error = rejection(segment("hostile", rule), tmp_path)
    assert error is not None and message in error, error


@pytest.mark.parametrize("description", ["{{ 1 }}", "a %} b", "x {# y"])
def test_jinja_in_a_description_is_rejected(tmp_path: Path, description: str):
    error = rejection({"name": "hostile", "description": description, "rules": only({"did": "Open"})}, tmp_path)
    assert error is not None and JINJA in error, error


@pytest.mark.parametrize(("name", "rule", "expected"), PROBES, ids=[p[0] for p in PROBES])
def test_former_compiler_bugs(fixture_run: Run, tmp_path: Path, name: str, rule: dict, expected: set[str] | str):
    error = rejection(segment(name, rule), tmp_path)
    if isinstance(expected, str):
        assert error is not None and expected in error, error
        return
    assert error is None, error
    assert fixture_run.statuses[f"segment__{name}"][0] == "success", fixture_run.statuses[f"segment__{name}"]
    assert fixture_run.members[name] == expected


# -- property-based: random definitions on random data against a Python evaluator ---------------------------

MISSING = object()  # a key absent from a JSON object
ORDER_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
OPS = {"eq": operator.eq, "neq": operator.ne, **ORDER_OPS}
RFM = {"champions": "Champions", "loyal": "Loyal", "at_risk": "At Risk", "cant_lose_them": "Can't Lose Them"}


def json_text(value: Any) -> str | None:
    """What json_extract_string / ->> give for a stored JSON value."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # ints and non-integral floats only: JSON renders them the same way
    return value


def as_number(text: str | None) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def as_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def compare(value: Any, kind: str, condition: dict) -> bool:
    """A condition on a value (None = missing): missing fails everything but neq, not_in and not_exists."""
    op = condition["op"]
    if op in ("exists", "not_exists"):
        return (value is not None) == (op == "exists")
    result = None if value is None else _test(value, kind, op, condition["value"])
    return op in ("neq", "not_in") if result is None else result


def _test(value: Any, kind: str, op: str, operand: Any) -> bool | None:
    if op in ("older_than_days", "within_days"):
        tested = value if kind == "timestamp" else as_time(value)
        if tested is None:
            return None
        cutoff = AS_OF - operand * DAY
        return tested <= cutoff if op == "older_than_days" else cutoff < tested <= AS_OF
    if op == "contains":
        return operand in value
    if op == "starts_with":
        return value.startswith(operand)
    values = operand if op in ("in", "not_in") else [operand]
    if isinstance(values[0], bool):
        if kind == "bool":
            tested, literals = value, values
        else:  # a JSON value as text: true/false in any case
            tested, literals = value.lower(), ["true" if v else "false" for v in values]
    elif isinstance(values[0], int | float):
        tested, literals = (value if kind == "number" else as_number(value)), [float(v) for v in values]
    elif op in ORDER_OPS or kind == "timestamp":
        tested, literals = (value if kind == "timestamp" else as_time(value)), [as_time(v) for v in values]
    else:
        tested, literals = value, values
    if tested is None:
        return None
    if op in ("in", "not_in"):
        return (tested in literals) == (op == "in")
    return OPS[op](tested, literals[0])


def event_matches(leaf: dict, event: Event) -> bool:
    if event.name != leaf["event"]:
        return False
    if "within_days" in leaf and not event.at > AS_OF - leaf["within_days"] * DAY:
        return False
    if "since" in leaf and not event.at >= as_time(leaf["since"]):
        return False
    if "between" in leaf:
        first, last = (as_time(d) for d in leaf["between"])
        if not first <= event.at < last + DAY:
            return False
    properties = event.properties or {}
    return all(compare(json_text(properties.get(f["property"], MISSING)), "json", f) for f in leaf.get("where", []))


def aggregate_value(spec: dict, events: list[Event]) -> tuple[int, float | None]:
    matched = [e for e in events if event_matches(spec, e)]
    numbers = [as_number(json_text((e.properties or {}).get(spec["property"], MISSING))) for e in matched]
    present = [n for n in numbers if n is not None]
    value = {
        "sum": sum(n or 0 for n in numbers) if matched else None,
        "avg": sum(n or 0 for n in numbers) / len(matched) if matched else None,
        "min": min(present, default=None),
        "max": max(present, default=None),
    }[spec["fn"]]
    return len(matched), value


class Evaluator:
    """Membership from the documented semantics, independent of the macros."""

    def __init__(self, users: list[dict], events: list[Event]) -> None:
        self.users = users
        self.events = {u["user_id"]: [e for e in events if e.user_id == u["user_id"]] for u in users}
        self.members: dict[str, set[str]] = {}

    def segment(self, definition: dict) -> set[str]:
        found = {u["user_id"] for u in self.users if self.holds(definition["rules"], u)}
        self.members[definition["name"]] = found
        return found

    def holds(self, rule: dict, user: dict) -> bool:
        events = self.events[user["user_id"]]
        if "all" in rule:
            return all(self.holds(r, user) for r in rule["all"])
        if "any" in rule:
            return any(self.holds(r, user) for r in rule["any"])
        if "not" in rule:
            return not self.holds(rule["not"], user)
        if "did" in rule or "did_not" in rule:
            leaf = {**rule, "event": rule.get("did", rule.get("did_not"))}
            count = sum(event_matches(leaf, e) for e in events)
            if "did_not" in rule:
                return count == 0
            (op, value), = rule.get("count", {"gte": 1}).items()  # fmt: skip
            return count >= 1 and OPS[op](count, value)
        if "aggregate" in rule:
            spec = rule["aggregate"]
            count, value = aggregate_value(spec, events)
            return count >= 1 and value is not None and OPS[spec["op"]](value, spec["value"])
        if "profile" in rule:
            condition = rule["profile"]
            if "property" in condition:
                return compare(user.get(condition["property"]), PROFILE_FIELDS[condition["property"]], condition)
            custom = user.get("custom_properties") or {}
            return compare(json_text(custom.get(condition["custom_property"], MISSING)), "json", condition)
        kind, _, name = rule["in_segment"].partition(":")
        if kind == "rfm":
            return user.get("rfm_segment") == RFM[name]
        if kind == "lifecycle":
            return user.get("lifecycle_stage") == name
        return user["user_id"] in self.members[rule["in_segment"]]


# Instants and days around the window edges (as_of - N days, +-1 s), which random events and values reuse.
EDGE_DAYS = (0, 1, 3, 7, 10, 30)
TIMES = sorted({AS_OF - d * DAY + s * SECOND for d in EDGE_DAYS for s in (-1, 0, 1)} - {AS_OF + SECOND})
DAYS = sorted({(AS_OF - d * DAY).date().isoformat() for d in (1, 3, 7, 10, 30)})
P_VALUES = [MISSING, None, -2, 0, 1, 3, 10, 2.5, -0.5, 99.5, "10", "2.5", "n/a", "red"]
Q_VALUES = [MISSING, None, "red", "Red", "reddish", "blue", "10", True, False]
D_VALUES = [MISSING, "2026-10-25", "2026-10-24 23:59:59", "2026-10-25 00:00:01", "2026-10-31T12:00:00", "soon", 7]
PLAN_VALUES = [MISSING, None, "pro", "plus", "Pro", 10, "10"]
TEXTS = ["red", "Red", "ed", "re", "10", "1", "n/a", "pro", "Pro", "plus", "2026-10", "blue"]
CITIES = [None, "London", "london", "Londonderry", "Paris"]
REVENUES = [None, 0, 5, 99.5, 100, 250]
INSTANT_TEXTS = [t.isoformat(sep=" ") for t in TIMES] + DAYS


class Generator:
    """Draws a dataset and a batch of definitions whose values sit on the data's values and edges."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def pick(self, options: Any) -> Any:
        return self.data.draw(st.sampled_from(list(options)))

    def chance(self, p: float = 0.5) -> bool:
        return self.data.draw(st.integers(0, 99)) < p * 100

    def properties(self) -> dict | None:
        if self.chance(0.08):
            return None
        values = {"p": self.pick(P_VALUES), "q": self.pick(Q_VALUES), "d": self.pick(D_VALUES)}
        return {k: v for k, v in values.items() if v is not MISSING}

    def dataset(self) -> tuple[list[dict], list[Event]]:
        self.names = ["A", "B", "C"][: self.data.draw(st.integers(2, 3))]
        users, events = [], []
        for i in range(self.data.draw(st.integers(6, 12))):
            custom = None if self.chance(0.15) else {"Plan": self.pick(PLAN_VALUES), "Seen": self.pick(D_VALUES)}
            user = {"user_id": f"h{i}", "city": self.pick(CITIES), "revenue": self.pick(REVENUES),
                    "can_email": self.pick([None, True, False]), "last_seen_at": self.pick([None, *TIMES]),
                    "rfm_segment": self.pick([None, *RFM.values()]),
                    "lifecycle_stage": self.pick([None, "active", "at_risk", "churned"]),
                    "custom_properties": None if custom is None else {k: v for k, v in custom.items()
                                                                      if v is not MISSING}}  # fmt: skip
            users.append(user)
            for _ in range(self.data.draw(st.integers(0, 8))):
                events.append(Event(user["user_id"], self.pick(self.names), self.pick(TIMES), self.properties()))
        self.users, self.events = users, events
        stored = [json_text(e.properties.get("p", MISSING)) for e in events if e.properties]
        self.numbers = sorted({n for n in map(as_number, stored) if n is not None} | {0.0, 1.0, 100.0})
        return users, events

    def json_condition(self, name: str, key: str) -> dict:
        """A condition on a JSON property (event `where:` or custom profile property), typed like its values."""
        dates = key in ("d", "Seen")
        ops = ["eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "starts_with", "exists", "not_exists"]
        op = self.pick(ops + ["older_than_days", "within_days"] * (2 if dates else 1))
        condition = {name: key, "op": op}
        if op in ("exists", "not_exists"):
            return condition
        if op in ("older_than_days", "within_days"):
            return {**condition, "value": self.pick(EDGE_DAYS)}
        if op in ("contains", "starts_with"):
            return {**condition, "value": self.pick(["2026-10", "2026-10-2", "soon", "7"] if dates else TEXTS)}
        if op in ORDER_OPS:
            kind = "date" if dates else "number"
        else:
            kind = self.pick({"p": ["number", "number", "text"], "q": ["text", "text", "bool"], "d": ["date", "text"],
                              "Seen": ["date", "text"], "Plan": ["text", "number"]}[key])  # fmt: skip
        pool = {"number": self.numbers, "text": TEXTS, "bool": [True, False], "date": INSTANT_TEXTS}[kind]
        if op in ("in", "not_in"):
            return {**condition, "value": self.data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))}
        return {**condition, "value": self.pick(pool)}

    def window(self) -> dict:
        kind = self.pick(["none", "none", "within_days", "between", "since"])
        if kind == "within_days":
            return {"within_days": self.pick([d for d in EDGE_DAYS if d])}
        if kind == "since":
            return {"since": self.pick(DAYS)}
        if kind == "between":
            return {"between": sorted([self.pick(DAYS), self.pick(DAYS)])}
        return {}

    def where(self) -> dict:
        count = self.pick([0, 0, 1, 1, 2])
        return {"where": [self.json_condition("property", self.pick("pqd")) for _ in range(count)]} if count else {}

    def profile(self) -> dict:
        field = self.pick(["city", "revenue", "can_email", "last_seen_at", "Plan", "Seen"])
        if field in ("Plan", "Seen"):
            return {"profile": self.json_condition("custom_property", field)}
        if field == "last_seen_at":
            op = self.pick(["eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "older_than_days", "within_days",
                            "exists"])  # fmt: skip
        else:
            op = self.pick({"city": ["eq", "neq", "in", "not_in", "contains", "starts_with", "exists", "not_exists"],
                            "revenue": ["eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "not_exists"],
                            "can_email": ["eq", "neq", "in", "not_in", "exists", "not_exists"]}[field])  # fmt: skip
        condition: dict[str, Any] = {"property": field, "op": op}
        if op in ("exists", "not_exists"):
            return {"profile": condition}
        if op in ("older_than_days", "within_days"):
            return {"profile": {**condition, "value": self.pick(EDGE_DAYS)}}
        pool = {"city": [c for c in CITIES if c] + ["Lon"], "revenue": [r for r in REVENUES if r is not None] + [99],
                "can_email": [True, False], "last_seen_at": INSTANT_TEXTS}[field]  # fmt: skip
        if op in ("contains", "starts_with"):
            return {"profile": {**condition, "value": self.pick(["Lon", "on", "don", "Paris", "l"])}}
        if op in ("in", "not_in"):
            return {"profile": {**condition, "value": self.data.draw(st.lists(st.sampled_from(pool), min_size=1,
                                                                               max_size=3))}}  # fmt: skip
        return {"profile": {**condition, "value": self.pick(pool)}}

    def aggregate(self, evaluator: Evaluator) -> dict:
        spec = {"event": self.pick(self.names), "property": "p", "fn": self.pick(["sum", "avg", "min", "max"]),
                "op": self.pick(list(OPS)), **self.window(), **self.where()}  # fmt: skip
        reached = {aggregate_value(spec, evaluator.events[u["user_id"]])[1] for u in self.users} - {None}
        return {"aggregate": {**spec, "value": self.pick(sorted(reached) + self.numbers[:2])}}

    def rule(self, depth: int, earlier: list[str], evaluator: Evaluator) -> dict:
        kinds = ["did", "did", "did_not", "aggregate", "profile", "profile", "in_segment"]
        kind = self.pick(kinds + (["all", "any", "not"] if depth < 3 else []))
        if kind in ("all", "any"):
            return {kind: [self.rule(depth + 1, earlier, evaluator) for _ in range(self.pick([1, 2, 3]))]}
        if kind == "not":
            return {"not": self.rule(depth + 1, earlier, evaluator)}
        if kind in ("did", "did_not"):
            rule = {kind: self.pick([*self.names, "Z"]), **self.window(), **self.where()}
            if kind == "did" and self.chance(0.4):
                op = self.pick(["gte", "gt", "lte", "lt", "eq"])
                # a count no event can satisfy (eq 0, lt 1, ...) is rejected: "never" is did_not
                rule["count"] = {
                    op: self.pick([n for n in (0, 1, 2, 3, 4) if n >= {"lt": 2, "lte": 1, "eq": 1}.get(op, 0)])
                }
            return rule
        if kind == "aggregate":
            return self.aggregate(evaluator)
        if kind == "profile":
            return self.profile()
        targets = ["rfm:champions", "rfm:loyal", "rfm:cant_lose_them", "lifecycle:at_risk", "lifecycle:churned"]
        return {"in_segment": self.pick(targets + earlier * 2)}

    def definitions(self, count: int) -> list[dict]:
        evaluator = Evaluator(self.users, self.events)
        batch: list[dict] = []
        for i in range(count):
            top = self.pick(["all", "any"])
            rules = [self.rule(2, [d["name"] for d in batch], evaluator) for _ in range(self.pick([1, 1, 2, 3]))]
            batch.append({"name": f"r{i:02d}", "rules": {top: rules}})
        return batch


def describe(definition: dict, users: list[dict], events: list[Event], ids: set[str]) -> str:
    rows = [repr(u) for u in users if u["user_id"] in ids] + [repr(e) for e in events if e.user_id in ids]
    return yaml.safe_dump(definition, sort_keys=False, width=200) + "\n".join(rows)


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          phases=(Phase.explicit, Phase.generate),  # no shrinking: every example costs a dbt run
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(data=st.data())
def test_random_definitions_match_an_independent_evaluator(harness: Harness, data: st.DataObject):
    generator = Generator(data)
    users, events = generator.dataset()
    batch = generator.definitions(15)
    # the simplest example (no events, 15 copies of one rule) would waste a dbt run: draw another instead
    assume(len(events) >= 8 and len({json.dumps(d["rules"], sort_keys=True) for d in batch}) >= 10)
    evaluator = Evaluator(users, events)
    expected = {d["name"]: evaluator.segment(d) for d in batch}
    run = harness.run(batch, users, events)
    failures = []
    for definition in batch:
        name, got = definition["name"], run.members[definition["name"]]
        if got is None:
            failures.append(f"segment__{name} did not build: {run.statuses.get(f'segment__{name}')}")
        elif got != expected[name]:
            wrong = got ^ expected[name]
            failures.append(f"{name}: sql {sorted(got)} != python {sorted(expected[name])}\n"
                            + describe(definition, users, events, wrong))  # fmt: skip
    assert not failures, "\n\n".join(failures)
