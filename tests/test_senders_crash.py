"""Exactly once across crashes: a real sender process is killed (SIGKILL) between batches, and after a
request was answered but before the answer was recorded; a rerun must then reach every member exactly once.

The kill points are the documented test hook REKINDLE_SENDER_CRASH_AT (senders/sync.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fakes.sendgrid import FakeSendGrid
from fakes.twilio import FakeTwilio
from fakes.webhook_receiver import FakeWebhookReceiver
from senders_helpers import AS_OF, START, make_warehouse, set_segment, settings_for, table, user_ids, write_audiences

PROJECT = Path(__file__).resolve().parent.parent


def sender(tmp_path: Path, wh: Path, config: Path, connections: dict[str, dict], crash_at: str | None) -> int:
    env = {
        **os.environ,
        "REKINDLE_WAREHOUSE": str(wh),
        "REKINDLE_TARGET": "duckdb",
        "REKINDLE_OUT": str(tmp_path / "out"),
        **{f"AIRFLOW_CONN_{cid.upper()}": json.dumps(value) for cid, value in connections.items()},
    }
    env.pop("REKINDLE_SENDER_CRASH_AT", None)
    if crash_at:
        env["REKINDLE_SENDER_CRASH_AT"] = crash_at
    done = subprocess.run(
        [sys.executable, "-m", "senders", "sync", "--config", str(config), "--interval-end", "2026-11-01T00:00:00"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"sender exited {done.returncode}: {done.stderr[-3000:]}")
    return done.returncode


@pytest.mark.parametrize("crash_at", ["after_request:2", "between_batches:2"])
def test_sms_after_a_kill_reaches_everyone_exactly_once(tmp_path, crash_at):
    wh = make_warehouse(tmp_path / "wh.duckdb", users=40)
    set_segment(wh, "s", user_ids(23))
    with FakeTwilio() as api:
        connections = {
            "tw": {"login": api.account_sid, "password": api.auth_token, "extra": {"base_url": api.base_url}}
        }
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "sms", "segment": "s", "destination": "twilio_sms", "conn_id": "tw", "fields": ["phone"],
              "batch_rows": 5, "options": {"template": "Your basket misses you", "from": "+15005550006"}}],
        )  # fmt: skip
        assert sender(tmp_path, wh, config, connections, crash_at) == -signal.SIGKILL
        assert len(api.messages) == 10  # two batches reached Twilio before the kill
        assert sender(tmp_path, wh, config, connections, None) == 0
        per_number = Counter(m["to"] for m in api.messages)
        assert len(per_number) == 23 and set(per_number.values()) == {1}
        sent = table(
            wh, "select count(distinct user_id), count(*) from sync_log where action = 'send' and status = 'sent'"
        )
        assert sent == [(23, 23)]
        if crash_at.startswith("after_request"):
            reconciled = table(wh, "select count(*) from sync_log where reason = 'reconciled_after_crash'")
            assert reconciled == [(5,)]
        assert table(wh, "select count(*) from sync_pending") == [(0,)]


def test_webhook_after_a_kill_delivers_each_member_once(tmp_path):
    wh = make_warehouse(tmp_path / "wh.duckdb", users=40)
    set_segment(wh, "s", user_ids(30))
    with FakeWebhookReceiver() as receiver:
        connections = {"hook": {"password": receiver.secret, "extra": {"base_url": receiver.url}}}
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "hooked", "segment": "s", "destination": "webhook", "conn_id": "hook", "fields": ["user_id"],
              "channel": "none", "batch_rows": 7}],
        )  # fmt: skip
        assert sender(tmp_path, wh, config, connections, "after_request:3") == -signal.SIGKILL
        assert sender(tmp_path, wh, config, connections, None) == 0
        delivered = Counter(p["Identity"] for d in receiver.deliveries.values() for p in d["profiles"])
        assert set(delivered) == set(user_ids(30)) and set(delivered.values()) == {1}
        assert receiver.duplicates == 1  # the unrecorded batch came again, with the same webhook-id


def test_mirror_after_a_kill_converges_without_duplicates(tmp_path):
    wh = make_warehouse(tmp_path / "wh.duckdb", users=60)
    set_segment(wh, "s", user_ids(50))
    with FakeSendGrid(job_pending_polls=0) as api:
        list_id = api.create_list()
        connections = {"sg": {"password": api.api_key, "extra": {"base_url": api.base_url}}}
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "sg", "segment": "s", "destination": "sendgrid", "conn_id": "sg", "fields": ["email"],
              "identifiers": ["email"], "batch_rows": 10, "options": {"list_id": list_id}}],
        )  # fmt: skip
        assert sender(tmp_path, wh, config, connections, "after_request:4") == -signal.SIGKILL
        assert sender(tmp_path, wh, config, connections, None) == 0
        assert api.list_members(list_id) == {f"user{u[1:]}@example.com" for u in user_ids(50)}
        upserts = [c["email"] for r in api.requests_to("PUT", "/v3/marketing/contacts") for c in r.json()["contacts"]]
        # only the batch whose answer was lost went twice (an idempotent upsert)
        assert len(upserts) == 60 and len(set(upserts)) == 50
        assert table(wh, "select count(*) from sync_state") == [(50,)]


def test_a_destination_that_cannot_reconcile_never_resends(tmp_path, monkeypatch):
    """A non-idempotent destination whose API cannot say what it received: members left in flight are
    logged failed `unknown_after_crash` and never sent again (a missing SMS is better than a second one)."""
    from fakes.twilio import FakeTwilio as Fake

    from senders.destinations import DESTINATIONS
    from senders.destinations.twilio_sms import TwilioSms
    from senders.sync import SyncFailed, sync_audiences

    class BlindSms(TwilioSms):
        def delivered(self, form):
            return False

        def reconcile(self, members):
            return None

    monkeypatch.setitem(DESTINATIONS, "twilio_sms", BlindSms)
    wh = make_warehouse(tmp_path / "wh.duckdb", users=10)
    set_segment(wh, "s", user_ids(3))
    with Fake() as api:
        connection = {"login": api.account_sid, "password": api.auth_token, "extra": {"base_url": api.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_TW", json.dumps(connection))
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "sms", "segment": "s", "destination": "twilio_sms", "conn_id": "tw", "fields": ["phone"],
              "batch_rows": 1, "failure_threshold": 0.5, "options": {"template": "hello", "from": "+15005550006"}}],
        )  # fmt: skip
        settings = settings_for(wh, tmp_path / "out")
        api.fail_next(429)  # u0001's first try is refused, the retry goes through
        api.drop_connection_after_accept(times=2)  # then u0001's two answers are lost
        with pytest.raises(SyncFailed, match="may have been accepted"):
            sync_audiences(settings, START, AS_OF, config=config)
        assert table(wh, "select user_id from sync_pending") == [("u0001",)]
        posts = len(api.requests_to("POST"))
        result = sync_audiences(settings, START, AS_OF, config=config)["sms"]
        assert result["sent"] == 2 and result["failed"] == 1
        assert len(api.requests_to("POST")) == posts + 2  # u0002 and u0003 only
        assert table(wh, "select user_id, status, reason from sync_log where user_id = 'u0001' and run_id is not null"
                     " order by logged_at desc limit 1") == [("u0001", "failed", "unknown_after_crash")]  # fmt: skip
        # and never again
        assert sync_audiences(settings, START, AS_OF, config=config)["sms"]["to_add"] == 0


# ---- replacing a whole audience: the old audience stays live until the replace ends, and a rerun finishes it


def seed_meta(api, audience_id: str, emails: list[str]) -> None:
    """Members put in the audience by someone else (another tool, a person): the sender's state knows none."""
    import requests

    body = {"payload": {"schema": "EMAIL_SHA256", "data": [sha(e) for e in emails]}, "access_token": api.access_token}
    assert requests.post(f"{api.base_url}/v21.0/{audience_id}/users", json=body, timeout=5).status_code == 200


def sha(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()


def email_of(uid: str) -> str:
    return f"user{uid[1:]}@example.com"


@pytest.mark.parametrize("crash_at", ["between_batches:2", "after_request:2"])
def test_meta_replace_after_a_kill_resumes_its_session_and_ends_exactly_eligible(tmp_path, crash_at):
    from fakes.meta import FakeMeta

    wh = make_warehouse(tmp_path / "wh.duckdb", users=60)
    set_segment(wh, "s", user_ids(45))
    with FakeMeta() as api:
        audience_id = api.create_audience()
        old = [email_of(u) for u in user_ids(10)] + ["stray@example.org"]
        seed_meta(api, audience_id, old)
        connections = {"meta": {"password": api.access_token, "extra": {"base_url": api.base_url}}}
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "ca", "segment": "s", "destination": "meta_custom_audience", "conn_id": "meta",
              "fields": ["email", "first_name"], "identifiers": ["email"], "batch_rows": 10,
              "options": {"audience_id": audience_id}}],
        )  # fmt: skip
        assert sender(tmp_path, wh, config, connections, crash_at) == -signal.SIGKILL
        # killed mid-session: the old audience is live and whole, the session open with its first two batches
        assert api.audience_members(audience_id) == {sha(e) for e in old}
        assert api.audiences[audience_id].replace.batches == {1, 2}
        assert table(wh, "select batches, requested, finished_at from sync_replace") == [
            (1 if crash_at.startswith("after_request") else 2, 2, None)
        ]
        assert sender(tmp_path, wh, config, connections, None) == 0
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(45)}
        replaces = [r for r in api.requests_to("POST", "/usersreplace") if r.status == 200]
        sessions = [r.json()["session"] for r in replaces]
        assert {s["session_id"] for s in sessions} == {table(wh, "select session_id from sync_replace")[0][0]}
        seqs = [s["batch_seq"] for s in sessions]
        assert sorted(set(seqs)) == [1, 2, 3, 4, 5] and [s["last_batch_flag"] for s in sessions].count(True) == 1
        assert all(s["estimated_num_total"] == 45 for s in sessions)
        # nothing but the seed went to /users: the session did it all
        assert len([r for r in api.requests if r.path.endswith("/users")]) == 1
        assert table(wh, "select count(*) from sync_state") == [(45,)]
        assert table(wh, "select count(*) from sync_replace where finished_at is not null") == [(1,)]
        assert table(wh, "select count(*) from sync_pending") == [(0,)]


def test_meta_replace_killed_after_a_split_batch_loses_no_batch(tmp_path):
    """A batch refused for one bad record is split, and each piece takes a batch number; killed after the
    pieces were answered and before they were recorded, the rerun resends the batch under the last number
    requested (a retry to Meta), so the batch after it does not reuse a number Meta has already seen."""
    from fakes.meta import FakeMeta

    wh = make_warehouse(tmp_path / "wh.duckdb", users=60)
    set_segment(wh, "s", user_ids(45))
    with FakeMeta() as api:
        audience_id = api.create_audience()
        bad = sha(email_of("u0015"))
        api.reject_record(lambda row: row[0] == bad)
        connections = {"meta": {"password": api.access_token, "extra": {"base_url": api.base_url}}}
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "ca", "segment": "s", "destination": "meta_custom_audience", "conn_id": "meta",
              "fields": ["email"], "identifiers": ["email"], "batch_rows": 10, "failure_threshold": 0.1,
              "options": {"audience_id": audience_id}}],
        )  # fmt: skip
        assert sender(tmp_path, wh, config, connections, "after_request:2") == -signal.SIGKILL
        [(batches, requested)] = table(wh, "select batches, requested from sync_replace")
        assert batches == 1 and requested > 2  # batch 2 went in pieces
        assert sender(tmp_path, wh, config, connections, None) == 0
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(45)} - {bad}
        assert table(wh, "select count(*) from sync_replace where finished_at is not null") == [(1,)]


def test_google_replace_after_a_kill_removes_as_of_the_first_attempts_time(tmp_path):
    from datetime import datetime, timedelta

    from fakes.google_data_manager import FakeGoogleDataManager

    wh = make_warehouse(tmp_path / "wh.duckdb", users=60)
    set_segment(wh, "s", user_ids(45))
    with FakeGoogleDataManager() as api:
        audience_id = api.create_audience()
        old = [email_of(u) for u in user_ids(10)] + ["stray@example.org"]
        import requests

        destination = {"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1"},
                       "productDestinationId": audience_id}  # fmt: skip
        seeded = requests.post(
            f"{api.base_url}/v1/audienceMembers:ingest",
            json={"destinations": [destination], "encoding": "HEX", "consent": {"adUserData": "CONSENT_GRANTED"},
                  "audienceMembers": [{"userData": {"userIdentifiers": [{"emailAddress": sha(e)}]}} for e in old]},
            headers={"Authorization": f"Bearer {api.access_token}"}, timeout=5,
        )  # fmt: skip
        assert seeded.status_code == 200
        api.age_members(audience_id, 3600)  # an hour old
        connections = {"g": {"password": api.access_token, "extra": {"base_url": api.base_url}}}
        config = write_audiences(
            tmp_path / "a.yml",
            [{"name": "cm", "segment": "s", "destination": "google_data_manager", "conn_id": "g",
              "fields": ["email"], "identifiers": ["email"], "batch_rows": 10,
              "options": {"operating_account_id": "1", "product_destination_id": audience_id}}],
        )  # fmt: skip
        assert sender(tmp_path, wh, config, connections, "between_batches:2") == -signal.SIGKILL
        # killed after two ingests: nobody was removed, the list holds the old members and the first twenty
        assert api.audience_members(audience_id) == {sha(e) for e in old} | {sha(email_of(u)) for u in user_ids(20)}
        assert api.requests_to(path_contains=":removeAll") == []
        assert sender(tmp_path, wh, config, connections, None) == 0
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(45)}
        [remove_all] = api.requests_to(path_contains=":removeAll")
        [(started_at,)] = table(wh, "select started_at from sync_replace where finished_at is not null")
        as_of = datetime.fromisoformat(remove_all.json()["removeAsOfTime"].replace("Z", ""))
        assert as_of == started_at - timedelta(seconds=60)  # T of the first attempt, less the clock allowance
        assert len(api.requests_to(path_contains=":ingest")) == 1 + 5  # the seed, then each batch once
        assert table(wh, "select count(*) from sync_state") == [(45,)]
