"""The sync engine: diffing, who may be sent, safety limit, failure threshold, dry run, logs.

Most tests use a small warehouse with the marts' shapes (tests/senders_helpers.py) and the `file`
destination or a local fake; one test runs on the dbt-built warehouse to check eligibility end to end.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pytest
from fakes.braze import FakeBraze
from senders_helpers import (
    AS_OF,
    START,
    connection_env,
    make_warehouse,
    set_segment,
    settings_for,
    table,
    user_ids,
    write_audiences,
)

from senders.audiences import AudienceConfigError, load_audiences
from senders.http import RetryPolicy
from senders.sync import SyncFailed, run_id_for, sync_audiences

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05, timeout=5)


@pytest.fixture
def wh(tmp_path) -> Path:
    return make_warehouse(tmp_path / "wh.duckdb", users=1000)


def file_audience(**overrides) -> dict:
    return {
        "name": "vips",
        "segment": "vip",
        "destination": "file",
        "fields": ["user_id", "email"],
        "channel": "email",
        **overrides,
    }


def exported_ids(out: Path, audience: str, action: str) -> list[str]:
    ids: list[str] = []
    for path in sorted((out / "exports" / audience).glob(f"*/{action}-*.csv")):
        with path.open() as handle:
            ids += [row["user_id"] for row in csv.DictReader(handle)]
    return ids


def test_first_sync_sends_everything_and_a_rerun_nothing(wh, tmp_path):
    config = write_audiences(tmp_path / "audiences.yml", [file_audience()])
    set_segment(wh, "vip", user_ids(300))
    settings = settings_for(wh, tmp_path / "out")
    first = sync_audiences(settings, START, AS_OF, config=config)["vips"]
    assert (first["considered"], first["added"], first["removed"], first["failed"]) == (300, 300, 0, 0)
    assert sorted(exported_ids(tmp_path / "out", "vips", "add")) == user_ids(300)
    again = sync_audiences(settings, START, AS_OF, config=config)["vips"]
    assert (again["to_add"], again["added"], again["to_remove"]) == (0, 0, 0)
    assert table(wh, "select count(*) from sync_state where audience = 'vips'") == [(300,)]
    logged = table(wh, "select action, status, count(*) from sync_log group by all order by all")
    assert logged == [("add", "sent", 300)]
    runs = table(wh, "select run_id, outcome, considered, added from sync_runs order by started_at")
    assert runs == [(run_id_for(AS_OF), "ok", 300, 300), (run_id_for(AS_OF), "ok", 300, 0)]


def test_one_percent_change_sends_about_one_percent(wh, tmp_path):
    config = write_audiences(tmp_path / "audiences.yml", [file_audience()])
    members = user_ids(1000)
    set_segment(wh, "vip", members)
    settings = settings_for(wh, tmp_path / "out")
    sync_audiences(settings, START, AS_OF, config=config)
    # 5 leave, 5 change their email: 1% of the audience changes
    set_segment(wh, "vip", members[5:])
    with duckdb.connect(str(wh)) as con:
        con.execute(
            "update dim_users set email = 'new-' || email where user_id in ('u0100','u0200','u0300','u0400','u0500')"
        )
    result = sync_audiences(settings, START, AS_OF, config=config)["vips"]
    assert (result["added"], result["removed"]) == (5, 5)
    assert (result["added"] + result["removed"]) / 1000 <= 0.02
    assert sorted(exported_ids(tmp_path / "out", "vips", "remove")) == members[:5]


def test_safety_limit_stops_an_emptied_segment_unless_overridden(wh, tmp_path):
    config = write_audiences(tmp_path / "audiences.yml", [file_audience(safety_limit=0.2)])
    set_segment(wh, "vip", user_ids(100))
    settings = settings_for(wh, tmp_path / "out")
    sync_audiences(settings, START, AS_OF, config=config)
    set_segment(wh, "vip", [])  # an upstream bug empties the segment
    with pytest.raises(SyncFailed, match=r"vips: safety limit 20% exceeded: the run would add 0 and remove 100"):
        sync_audiences(settings, START, AS_OF, config=config)
    assert table(wh, "select count(*) from sync_state") == [(100,)]
    assert exported_ids(tmp_path / "out", "vips", "remove") == []
    assert table(wh, "select outcome from sync_runs order by started_at desc limit 1") == [("blocked",)]
    # the operator confirms the change for one run (the CLI flag, or the variable a DAG run can be given)
    result = sync_audiences(settings, START, AS_OF, config=config, allow_large_change=["vips"])["vips"]
    assert result["removed"] == 100
    assert table(wh, "select count(*) from sync_state") == [(0,)]


def test_large_change_override_from_the_environment(wh, tmp_path, monkeypatch):
    config = write_audiences(tmp_path / "audiences.yml", [file_audience(safety_limit=0.1)])
    set_segment(wh, "vip", user_ids(50))
    settings = settings_for(wh, tmp_path / "out")
    sync_audiences(settings, START, AS_OF, config=config)
    set_segment(wh, "vip", user_ids(100))
    monkeypatch.setenv("REKINDLE_ALLOW_LARGE_CHANGE", "other_audience")
    with pytest.raises(SyncFailed, match="would add 50 and remove 0 of 50"):
        sync_audiences(settings, START, AS_OF, config=config)
    monkeypatch.setenv("REKINDLE_ALLOW_LARGE_CHANGE", "other_audience, vips")
    assert sync_audiences(settings, START, AS_OF, config=config)["vips"]["added"] == 50


def test_dry_run_prints_and_changes_nothing(wh, tmp_path):
    config = write_audiences(tmp_path / "audiences.yml", [file_audience()])
    set_segment(wh, "vip", user_ids(20))
    printed: list[str] = []
    settings = settings_for(wh, tmp_path / "out")
    result = sync_audiences(settings, START, AS_OF, config=config, dry_run=True, report=printed.append)["vips"]
    assert result["to_add"] == 20 and result["added"] == 0
    assert "would add/update 20 and remove 0" in printed[0]
    assert "u0001" not in "\n".join(printed) and "example.com" not in "\n".join(printed)
    assert not (tmp_path / "out").exists()
    with duckdb.connect(str(wh), read_only=True) as con:
        assert not con.execute("select * from information_schema.tables where table_name like 'sync_%'").fetchall()


def test_skips_are_logged_with_their_reason(wh, tmp_path):
    config = write_audiences(tmp_path / "audiences.yml", [file_audience(campaign="c1", mode="mirror")])
    set_segment(wh, "vip", user_ids(10))
    with duckdb.connect(str(wh)) as con:
        con.execute("update dim_users set can_email = false where user_id = 'u0001'")
        con.execute("update dim_users set is_global_control = true where user_id = 'u0002'")
        con.execute("update dim_users set email = null where user_id = 'u0003'")
        con.execute("insert into campaign_exposures values ('c1', 'u0004', null, 'campaign_control')")
        con.execute("insert into campaign_exposures values ('c1', 'u0002', null, 'global_control')")
        con.execute(
            "insert into campaign_exposures select 'c1', user_id, null, 'target' from dim_users"
            " where user_id between 'u0005' and 'u0009' or user_id in ('u0001', 'u0003')"
        )
    result = sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config, report=lambda _: None)
    # identifiers default to the destination's first (user_id) for file, so u0003 is sendable without email
    assert result["vips"]["skipped_by_reason"] == {
        "campaign_control": 1,
        "consent": 1,
        "global_control": 1,
        "not_in_campaign": 1,
    }
    assert result["vips"]["added"] == 6
    skips = table(wh, "select user_id, reason, campaign_id from sync_log where action = 'skip' order by user_id")
    assert skips == [
        ("u0001", "consent", "c1"),
        ("u0002", "global_control", "c1"),
        ("u0004", "campaign_control", "c1"),
        ("u0010", "not_in_campaign", "c1"),
    ]


def test_a_skip_is_logged_when_it_starts_or_changes_and_old_skips_are_pruned(wh, tmp_path, monkeypatch):
    """sync_log retention: a member skipped run after run for the same reason is one log row, not one a run;
    skip rows older than REKINDLE_SYNC_LOG_SKIP_DAYS go, sent rows stay."""
    from datetime import timedelta

    monkeypatch.setenv("REKINDLE_SYNC_LOG_SKIP_DAYS", "3")
    config = write_audiences(tmp_path / "audiences.yml", [file_audience()])
    settings = settings_for(wh, tmp_path / "out")
    set_segment(wh, "vip", user_ids(10))
    with duckdb.connect(str(wh)) as con:
        con.execute("update dim_users set can_email = false where user_id in ('u0001', 'u0002')")

    def day(n: int) -> dict:
        end = AS_OF + timedelta(days=n)
        return sync_audiences(settings, end - timedelta(days=1), end, config=config, report=lambda _: None)["vips"]

    def skips() -> list[tuple]:
        return table(wh, "select run_id, user_id, reason from sync_log where action = 'skip' order by run_id, user_id")

    first = run_id_for(AS_OF)
    assert day(0)["skipped_by_reason"] == {"consent": 2}
    assert day(1)["skipped_by_reason"] == {"consent": 2}  # still counted every run (sync_runs)...
    assert skips() == [(first, "u0001", "consent"), (first, "u0002", "consent")]  # ...but logged once
    with duckdb.connect(str(wh)) as con:
        con.execute("update dim_users set can_email = true where user_id = 'u0001'")
        con.execute("update dim_users set is_global_control = true where user_id = 'u0002'")
    assert day(2)["added"] == 1
    third = run_id_for(AS_OF + timedelta(days=2))
    assert skips() == [(first, "u0001", "consent"), (first, "u0002", "consent"), (third, "u0002", "global_control")]
    assert table(wh, "select user_id, reason from sync_skips") == [("u0002", "global_control")]
    with duckdb.connect(str(wh)) as con:
        con.execute("update dim_users set can_email = false where user_id = 'u0001'")
    day(3)  # u0001 skipped again after a spell of being sent: a new skip row
    fourth = run_id_for(AS_OF + timedelta(days=3))
    assert (fourth, "u0001", "consent") in skips()
    day(4)  # the first day's rows are older than three days now
    assert skips() == [(third, "u0002", "global_control"), (fourth, "u0001", "consent")]
    sent = table(wh, "select count(*) from sync_log where action = 'add' and status = 'sent'")
    assert sent == [(9,)]  # u0003..u0010 on the first day, u0001 on the third: never pruned


def test_missing_identifier_is_a_skip(wh, tmp_path):
    config = write_audiences(
        tmp_path / "audiences.yml", [file_audience(identifiers=["user_id"], fields=["user_id", "email"])]
    )
    set_segment(wh, "vip", user_ids(3))
    with duckdb.connect(str(wh)) as con:
        con.execute("delete from dim_users where user_id = 'u0003'")  # a member with no profile row
    result = sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config)["vips"]
    assert result["skipped_by_reason"] == {"missing_identifier": 1} and result["added"] == 2


def test_parquet_files(wh, tmp_path):
    import pyarrow.parquet as pq

    config = write_audiences(tmp_path / "audiences.yml", [file_audience(options={"format": "parquet"})])
    set_segment(wh, "vip", user_ids(7))
    sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config)
    [path] = (tmp_path / "out" / "exports" / "vips" / run_id_for(AS_OF)).glob("add-*.parquet")
    assert pq.read_table(path).to_pylist()[0] == {"user_id": "u0001", "email": "user0001@example.com"}


def test_failure_threshold_fails_the_task(wh, tmp_path, monkeypatch):
    with FakeBraze() as api:
        connection_env(monkeypatch, "braze_test", password=api.api_key, extra={"base_url": api.base_url})
        audience = {
            "name": "b",
            "segment": "vip",
            "destination": "braze",
            "conn_id": "braze_test",
            "fields": ["user_id", "email"],
            "failure_threshold": 0.05,
        }
        config = write_audiences(tmp_path / "audiences.yml", [audience])
        set_segment(wh, "vip", user_ids(100))
        bad = {f"u{i:04d}" for i in range(1, 11)}
        api.partial_error_for(lambda obj: obj.get("external_id") in bad)
        with pytest.raises(SyncFailed, match=r"b: 10 of 100 members failed, above the failure threshold of 5%"):
            sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config, policy=FAST)
        assert api.attribute_members("in_audience_b") == set(user_ids(100)) - bad
        failed = table(wh, "select user_id from sync_log where status = 'failed' order by 1")
        assert {r[0] for r in failed} == bad
        # the failed members are not in sync_state, so the next run tries them again
        bad.clear()
        result = sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config, policy=FAST)["b"]
        assert result["added"] == 10


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"destination": "sendgrid", "fields": ["email"]}, "field 'conn_id' is required for sendgrid"),
        ({"destination": "sendgrid", "conn_id": "sg", "fields": ["email"]}, "field 'options.list_id' is required"),
        (
            {
                "destination": "twilio_sms",
                "conn_id": "t",
                "fields": ["phone"],
                "mode": "mirror",
                "options": {"template": "hi", "from": "+1"},
            },
            "field 'mode' must be one of append for twilio_sms",
        ),
        (
            {
                "destination": "twilio_sms",
                "conn_id": "t",
                "fields": ["phone"],
                "options": {"template": "hi {first_name}", "from": "+1"},
            },
            "options.template' uses ['first_name']",
        ),
        (
            {"destination": "braze", "conn_id": "b", "fields": ["user_id"], "batch_rows": 100},
            "above braze's documented cap of 75",
        ),
        ({"destination": "file", "fields": ["email"], "safety_limit": 2}, "field 'safety_limit' must be a fraction"),
        ({"destination": "file", "fields": ["email"], "channel": "fax"}, "field 'channel' must be one of email"),
        ({"destination": "file", "fields": ["email"], "api_key": "x"}, "unknown field(s) ['api_key']"),
        (
            {
                "destination": "meta_custom_audience",
                "conn_id": "m",
                "fields": ["email", "revenue"],
                "identifiers": ["email"],
                "options": {"audience_id": "1"},
            },
            "['revenue'], which Meta cannot match on",
        ),
    ],
)
def test_config_errors_name_file_audience_and_field(tmp_path, entry, message):
    path = write_audiences(tmp_path / "audiences.yml", [{"name": "a", "segment": "s", **entry}])
    with pytest.raises(AudienceConfigError) as error:
        load_audiences(path)
    assert "audiences.yml, audience #1 (a)" in str(error.value)
    assert message in str(error.value)


def test_eligibility_on_the_dbt_built_warehouse(built_warehouse, tmp_path):
    """The real marts: consent and the global control group decide who leaves the warehouse."""
    wh = tmp_path / "copy.duckdb"
    shutil.copy(built_warehouse, wh)
    with duckdb.connect(str(wh)) as con:
        members = con.execute(
            "select m.user_id, u.can_email, u.is_global_control, u.email from segment_members m"
            " join dim_users u using (user_id) where m.segment_name = 'recent_buyers'"
        ).fetchall()
    expected = sorted(uid for uid, can_email, control, email in members if can_email and not control and email)
    assert 0 < len(expected) < len(members)
    config = write_audiences(
        tmp_path / "audiences.yml",
        [
            {
                "name": "rb",
                "segment": "recent_buyers",
                "destination": "file",
                "fields": ["user_id", "email"],
                "identifiers": ["email"],
                "channel": "email",
            }
        ],
    )
    result = sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config)["rb"]
    assert sorted(exported_ids(tmp_path / "out", "rb", "add")) == expected
    assert result["considered"] == len(members)
    assert result["added"] + sum(result["skipped_by_reason"].values()) == len(members)
    reasons = dict(table(wh, "select reason, count(*) from sync_log where action = 'skip' group by 1"))
    assert reasons == result["skipped_by_reason"]


def test_batches_are_capped_by_bytes_as_well_as_rows(wh, tmp_path):
    from senders.destinations.base import Member
    from senders.destinations.file import FileDestination

    config = write_audiences(tmp_path / "audiences.yml", [file_audience(batch_rows=50, batch_bytes=300)])
    set_segment(wh, "vip", user_ids(120))
    sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config)
    files = sorted((tmp_path / "out" / "exports" / "vips" / run_id_for(AS_OF)).glob("add-*.csv"))
    sizes = [len(path.read_text().splitlines()) - 1 for path in files]
    assert sum(sizes) == 120
    # each member weighs the same here: as many as fit in 300 bytes of payload, never more
    [audience] = load_audiences(config)
    one = FileDestination(audience, {}, None, None).batch_size_bytes(
        [Member("u0001", {"user_id": "u0001", "email": "user0001@example.com"})]
    )
    assert max(sizes) == 300 // one < 50


def test_the_garbage_collector_runs_while_sending_and_is_left_as_found(wh, tmp_path, monkeypatch):
    """The sync pauses the collector only while it builds its members (gc_paused): while batches go out,
    collection is on, nothing is frozen (gc.freeze is process-wide: an Airflow worker's other threads share it),
    and afterwards nothing is left disabled."""
    import gc

    from senders.destinations.file import FileDestination

    seen = []
    add = FileDestination.add

    def observed_add(self, members):
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return add(self, members)

    monkeypatch.setattr(FileDestination, "add", observed_add)
    config = write_audiences(tmp_path / "audiences.yml", [file_audience()])
    set_segment(wh, "vip", user_ids(1000))
    frozen_before = gc.get_freeze_count()
    assert sync_audiences(settings_for(wh, tmp_path / "out"), START, AS_OF, config=config)["vips"]["added"] == 1000
    assert seen and all(seen_gc == (True, frozen_before) for seen_gc in seen)  # collecting, nothing frozen
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before == 0
