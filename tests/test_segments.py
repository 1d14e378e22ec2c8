"""Segment definitions: validation errors a marketer can act on, generated models in step with the YAML,
the preview command, and membership history over several runs (a backfilled day reproduces its members).

What each rule selects is tested in tests/test_segment_rules.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from loaders.segments import SegmentDefinitionError, load_segments, out_of_date, parse_file, preview
from tests.conftest import PROJECT, run_dbt

VALID = """
segments:
  - name: buyers
    rules:
      all:
        - did: Charged
"""


def definitions(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dbt_project" / "segments" / "mine.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_definitions_are_valid_and_the_generated_models_are_up_to_date():
    names = [s.name for s in load_segments()]
    assert "recent_buyers" in names and len(names) == len(set(names))
    # a YAML edit without `python -m loaders segments build` would ship stale SQL: CI catches it here
    assert out_of_date() == [], "run `python -m loaders segments build` and commit the generated models"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{did: Charged, count: {atleast: 2}}", "rules.all[0].count: unknown field 'atleast'; allowed: gte, gt"),
        ("{did: Charged, within_days: -3}", "rules.all[0].within_days: must be at least 1, got -3"),
        ("{did: Charged, within_days: 3, since: 2026-10-01}", "give one window of within_days, between, since"),
        ("{did: Charged, between: [2026-10-05, 2026-10-01]}", "the first day 2026-10-05 is after the last day"),
        ("{did: Charged, where: [{property: Amount, op: above, value: 3}]}", "unknown operator 'above'; allowed: eq"),
        ("{did: Charged, where: [{property: Amount, op: gt, value: cheap}]}", "'gt' compares numbers or dates"),
        ("{did: Charged, where: [{property: Amount, op: in, value: [1, a]}]}", "mixes numbers, texts"),
        ("{did: Charged, where: [{property: Amount, op: exists, value: 1}]}", "'exists' takes no value"),
        (
            "{profile: {property: can_emial, op: eq, value: true}}",
            "unknown profile field 'can_emial'; dim_users fields",
        ),
        ("{profile: {property: can_email, op: eq, value: 'yes'}}", "a true/false field is not compared with text"),
        ("{profile: {property: revenue, op: gt, value: lots}}", "a number field is not compared with text 'lots'"),
        ("{profile: {property: last_seen_at, op: gt, value: 5}}", "a time field is not compared with a number"),
        ("{aggregate: {event: Charged, property: Amount, fn: median, op: gt, value: 1}}", "fn: must be one of sum"),
        ("{in_segment: 'rfm:superstars'}", "unknown RFM segment 'superstars'; allowed: rfm:champions"),
        ("{in_segment: 'lifecycle:zombie'}", "unknown lifecycle stage 'zombie'"),
        ("{in_segment: nobody}", "in_segment: unknown segment 'nobody'; defined: "),
        ("{in_segment: mine}", "a segment cannot contain itself"),
        ("{watched: Video}", "a rule is a mapping with one of all, any, not, did"),
        ("{did: '{{ evil }}'}", "may not contain any of {{ }}"),
        ("{did: Charged, where: [{property: 'a\"b', op: exists}]}", 'no " or \\'),
    ],
)
def test_errors_name_the_file_the_segment_and_the_field(tmp_path, rule, message):
    definitions(tmp_path, f"segments:\n  - name: mine\n    rules:\n      all:\n        - {rule}\n")
    with pytest.raises(SegmentDefinitionError) as error:
        load_segments(tmp_path)
    text = str(error.value)
    assert text.startswith("dbt_project/segments/mine.yml, segment 'mine'"), text
    assert message in text, text


TWO = "segments:\n  - name: a\n    rules: {all: [%s]}\n  - name: b\n    rules: {all: [%s]}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("segments: {}", "must hold 'segments:' with a list"),
        ("segments:\n  - name: Big Spenders\n    rules: {all: [{did: X}]}", "segment #1: field 'name' must be"),
        ((TWO % ("{did: X}", "{did: Y}")).replace("name: b", "name: a"), "segment 'a': the name is already used in"),
        (TWO % ("{in_segment: b}", "{in_segment: a}"), "segments refer to each other in a cycle: a → b → a"),
        ("segments:\n  - name: a\n    rule: {all: [{did: X}]}", "unknown field 'rule'; allowed: name, description"),
        ("segments: [", "not valid YAML"),
    ],
)
def test_file_level_errors(tmp_path, text, message):
    definitions(tmp_path, text)
    with pytest.raises(SegmentDefinitionError) as error:
        load_segments(tmp_path)
    assert "dbt_project/segments/mine.yml" in str(error.value) and message in str(error.value), str(error.value)


def test_a_newline_in_a_description_cannot_break_out_of_the_generated_comment(tmp_path):
    path = definitions(
        tmp_path, VALID.replace("  - name: buyers\n", '  - name: buyers\n    description: "a\\ndrop table x"\n')
    )
    from loaders.segments import render_segment_model

    text = render_segment_model(parse_file(path, tmp_path)[0])
    assert "\ndrop table" not in text and "-- a drop table x\n" in text


def test_check_command_reports_validity_and_exit_status():
    done = subprocess.run(
        [sys.executable, "-m", "loaders", "segments", "check"], cwd=PROJECT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "segments valid: recent_buyers" in done.stdout


def test_preview_gives_the_size_the_build_gives_without_writing(built_warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("REKINDLE_WAREHOUSE", str(built_warehouse))
    monkeypatch.setenv("REKINDLE_TARGET", "duckdb")
    before = built_warehouse.stat().st_mtime_ns
    [by_name] = preview("recent_buyers", as_of=datetime(2026, 11, 1), sample=3)
    with duckdb.connect(str(built_warehouse), read_only=True) as con:
        built = con.sql("select count(*) from segment_members where segment_name = 'recent_buyers'").fetchall()[0][0]
    assert by_name.size == built > 0 and len(by_name.sample) == 3 and "user_id" in by_name.columns
    # a file with a new definition previews without being built
    new = tmp_path / "draft.yml"
    new.write_text(
        "segments:\n  - name: draft_big_carts\n    rules:\n      all:\n"
        "        - did: Added To Cart\n          count: {gte: 3}\n        - in_segment: recent_buyers\n"
    )
    [draft] = preview(str(new), as_of=datetime(2026, 11, 1))
    assert 0 < draft.size <= built
    assert built_warehouse.stat().st_mtime_ns == before


def test_history_records_stints_and_a_backfilled_day_reproduces_its_members(built_warehouse, tmp_path):
    """Three daily runs, then a rerun of the middle day: segment_members and sizes are that day's again, and
    history says who entered and left when."""
    warehouse = tmp_path / "rekindle.duckdb"
    shutil.copy(built_warehouse, warehouse)  # built as of 2026-11-01
    days = [datetime(2026, 10, 30), datetime(2026, 10, 31), datetime(2026, 11, 1)]

    def members(as_of: datetime) -> tuple[list, list]:
        # the segments and what follows them; dim_users stays as built (the rules, not the profile, vary here)
        run_dbt(warehouse, "run", "--select", "int_segments__event_facts+", as_of=as_of, tmp=tmp_path)
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = con.sql("select segment_name, user_id, qualified_at from segment_members order by 1, 2").fetchall()
            sizes = con.sql("select segment_name, members from segment_sizes_daily where evaluated_at = ?"
                            " order by 1", params=[as_of]).fetchall()  # fmt: skip
        return rows, sizes

    seen = {day: members(day) for day in days}
    assert seen[days[1]] == members(days[1]), "a rerun of 2026-10-31 gives other members than its first run"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        evaluations = con.sql("select distinct evaluated_at from segment_sizes_daily order by 1").fetchall()
        stints = con.sql(
            "select segment_name, user_id, entered_at, exited_at from segment_membership_history"
        ).fetchall()
        log = set(con.sql("select segment_name, user_id, evaluated_at from int_segments__membership_log").fetchall())
    assert [e[0] for e in evaluations] == days
    # history and the log agree: a user is in a stint at exactly the evaluations the log lists
    from_history = {
        (segment, user, day)
        for segment, user, entered, exited in stints
        for day in days
        if entered <= day and (exited is None or day < exited)
    }
    assert from_history == log and any(exited is not None for *_, exited in stints)
    # qualified_at is the start of the member's current stint
    rows, _ = seen[days[2]]
    entered = {(s, u): e for s, u, e, x in stints if x is None}
    assert all(entered[(s, u)] == q for s, u, q in rows)


def test_without_an_as_of_now_is_the_latest_event_and_both_forms_of_the_sql_agree(built_warehouse, tmp_path):
    """An analyst's ad-hoc `dbt run` gives no as-of: "now" is the latest loaded event, and the windows compare
    with a joined as-of column instead of the constant a scheduled run gets (macros/segment_event_facts.sql).
    Both forms must select the same members and funnel counts."""
    warehouse = tmp_path / "rekindle.duckdb"
    shutil.copy(built_warehouse, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ((latest,),) = con.sql("select max(event_at) from stg_clevertap__events").fetchall()

    def results(as_of: datetime | None) -> tuple[list, list, list]:
        run_dbt(warehouse, "run", "--select", "int_segments__event_facts+", "rpt_funnels", as_of=as_of, tmp=tmp_path)
        with duckdb.connect(str(warehouse), read_only=True) as con:
            members = con.sql("select segment_name, user_id from segment_members order by 1, 2").fetchall()
            evaluated = con.sql("select distinct evaluated_at from segment_members").fetchall()
            funnels = con.sql("select * exclude (evaluated_at) from rpt_funnels order by all").fetchall()
        return members, evaluated, funnels

    ad_hoc = results(None)
    assert ad_hoc[1] == [(latest,)]
    assert ad_hoc[0] and ad_hoc[2], "nothing to compare"
    assert results(latest) == ad_hoc
