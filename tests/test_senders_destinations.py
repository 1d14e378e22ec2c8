"""Each destination end to end: the sync engine against a local server that keeps the vendor's contract,
with injected faults (429 with the vendor's retry hint, 500, timeouts, a 400 on one record, partial failures).

Waits are recorded by a fake `sleep` instead of slept, so the backoff is asserted, not endured.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import boto3
import duckdb
import pytest
import requests
from fakes.braze import FakeBraze
from fakes.google_data_manager import FakeGoogleDataManager
from fakes.meta import FakeMeta
from fakes.sendgrid import FakeSendGrid
from fakes.twilio import FakeTwilio
from fakes.webhook_receiver import FakeWebhookReceiver
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
from standardwebhooks.webhooks import Webhook

from senders.http import RetryPolicy
from senders.sync import SyncFailed, sync_audiences

FAST = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05, max_server_wait=120, timeout=2)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Waits(list):
    """A `sleep` that records how long the client wanted to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def wh(tmp_path) -> Path:
    return make_warehouse(tmp_path / "wh.duckdb", users=300)


def run(wh, tmp_path, audience, waits=None, **kwargs):
    config = write_audiences(tmp_path / "audiences.yml", [audience])
    return sync_audiences(
        settings_for(wh, tmp_path / "out"),
        START,
        AS_OF,
        config=config,
        policy=FAST,
        sleep=waits if waits is not None else Waits(),
        **kwargs,
    )[audience["name"]]


def email_of(uid: str) -> str:
    return f"user{uid[1:]}@example.com"


# ---- SendGrid --------------------------------------------------------------------------------------------


def sendgrid_audience(list_id: str, **extra) -> dict:
    return {"name": "sg", "segment": "vip", "destination": "sendgrid", "conn_id": "sg_test", "mode": "mirror",
            "fields": ["email", "first_name", "last_name"], "identifiers": ["email"], "options": {"list_id": list_id},
            **extra}  # fmt: skip


def test_sendgrid_mirror_with_job_polling_rate_limit_and_a_bad_record(wh, tmp_path, monkeypatch):
    with FakeSendGrid(job_pending_polls=2) as api:
        connection_env(monkeypatch, "sg_test", password=api.api_key, extra={"base_url": api.base_url})
        list_id = api.create_list()
        set_segment(wh, "vip", user_ids(250))
        api.fail_next(429)  # SendGrid's 429 carries X-RateLimit-Reset (epoch seconds), no Retry-After
        api.reject_record(lambda contact: contact.get("email") == email_of("u0042"))
        waits = Waits()
        result = run(wh, tmp_path, sendgrid_audience(list_id, batch_rows=100), waits)
        assert api.list_members(list_id) == {email_of(u) for u in user_ids(250)} - {email_of("u0042")}
        assert result["added"] == 249 and result["failed"] == 1 and result["retried"] == 1
        # the 429 waited until X-RateLimit-Reset (the end of the fake's 60 s window), not a capped backoff
        assert FAST.max_delay < waits[0] <= 61
        # the job was polled until it completed before the batch counted as sent
        assert len(api.requests_to("GET", "/imports/")) >= 2 * 3
        failed = table(wh, "select user_id, reason from sync_log where status = 'failed'")
        assert failed == [("u0042", "PUT /v3/marketing/contacts: HTTP 400: contact is invalid")]
        # mirror: 10 leave, the list follows after the removal job (u0042 is tried again and fails again)
        set_segment(wh, "vip", user_ids(250)[10:])
        result = run(wh, tmp_path, sendgrid_audience(list_id, failure_threshold=0.1))
        assert result["removed"] == 10
        assert api.list_members(list_id) == {email_of(u) for u in user_ids(250)[10:]} - {email_of("u0042")}


def test_sendgrid_errored_import_rows_are_failures(wh, tmp_path, monkeypatch):
    with FakeSendGrid(job_pending_polls=0) as api:
        connection_env(monkeypatch, "sg_test", password=api.api_key, extra={"base_url": api.base_url})
        list_id = api.create_list()
        set_segment(wh, "vip", user_ids(20))
        import duckdb

        with duckdb.connect(str(wh)) as con:
            con.execute("update dim_users set email = 'not-an-address' where user_id = 'u0005'")
        result = run(wh, tmp_path, sendgrid_audience(list_id, failure_threshold=0.1))
        assert result["added"] == 19 and result["failed"] == 1
        assert table(wh, "select user_id from sync_log where status = 'failed'") == [("u0005",)]


def test_sendgrid_auth_failure_fails_the_audience_and_names_no_secret(wh, tmp_path, monkeypatch):
    with FakeSendGrid() as api:
        connection_env(monkeypatch, "sg_test", password="SG.wrong-key", extra={"base_url": api.base_url})
        set_segment(wh, "vip", user_ids(5))
        with pytest.raises(SyncFailed, match="HTTP 401") as error:
            run(wh, tmp_path, sendgrid_audience(api.create_list()))
        assert "SG.wrong-key" not in str(error.value)
        assert table(wh, "select count(*) from sync_state") == [(0,)]


# ---- Twilio ------------------------------------------------------------------------------------------------


def twilio_audience(**extra) -> dict:
    return {"name": "sms", "segment": "vip", "destination": "twilio_sms", "conn_id": "tw_test", "campaign": None,
            "fields": ["phone", "first_name"],
            "options": {"template": "Hi {first_name}, 20% off today", "from": "+15005550006"},
            **extra}  # fmt: skip


def phone_of(uid: str) -> str:
    return f"+4479{int(uid[1:]):08d}"


def test_twilio_sends_once_suppresses_stop_and_invalid_and_reconciles_a_dropped_answer(wh, tmp_path, monkeypatch):
    with FakeTwilio() as api:
        connection_env(
            monkeypatch, "tw_test", login=api.account_sid, password=api.auth_token, extra={"base_url": api.base_url}
        )
        audience = {k: v for k, v in twilio_audience().items() if k != "campaign"}
        set_segment(wh, "vip", user_ids(30))
        api.mark_stopped(phone_of("u0003"))
        api.mark_invalid(phone_of("u0004"))
        api.fail_next(429)  # 20429: never processed, safe to retry
        api.drop_connection_after_accept()  # the next message is sent but its answer never arrives
        result = run(wh, tmp_path, audience)
        assert result["sent"] == 28 and result["suppressed"] == 2 and result["failed"] == 0
        sent_to = [m["to"] for m in api.messages]
        assert sorted(sent_to) == sorted(phone_of(u) for u in user_ids(30) if u not in ("u0003", "u0004"))
        assert api.messages_to(phone_of("u0001"))[0]["body"] == "Hi Ann1, 20% off today"
        assert table(wh, "select channel, user_id, reason from sync_suppressions order by user_id") == [
            ("sms", "u0003", "21610 recipient opted out (STOP)"),
            ("sms", "u0004", "21211 invalid To number"),
        ]
        # a new member joins; the suppressed ones are never tried again, nobody is sent twice
        api.mark_started(phone_of("u0003"))
        set_segment(wh, "vip", user_ids(31))
        before = len(api.requests_to("POST"))
        result = run(wh, tmp_path, audience)
        assert result["sent"] == 1 and result["skipped_by_reason"] == {"suppressed": 2}
        assert len(api.requests_to("POST")) == before + 1
        assert len(api.messages) == 29


# ---- Meta ------------------------------------------------------------------------------------------------


def test_meta_hashes_normalised_identifiers_splits_a_bad_record_and_honours_throttling(wh, tmp_path, monkeypatch):
    with FakeMeta() as api:
        connection_env(monkeypatch, "meta_test", password=api.access_token, extra={"base_url": api.base_url})
        audience_id = api.create_audience()
        audience = {"name": "lookalike", "segment": "vip", "destination": "meta_custom_audience",
                    "conn_id": "meta_test",
                    "fields": ["email", "phone", "first_name", "country"], "identifiers": ["email", "phone"],
                    "options": {"audience_id": audience_id}, "batch_rows": 40}  # fmt: skip
        set_segment(wh, "vip", user_ids(100))
        bad = sha(email_of("u0077"))
        api.reject_record(lambda row: row[0] == bad)
        api.throttle_next(regain_minutes=1)
        unusable = sha(email_of("u0055"))
        api.invalid_rows_for(lambda row: row[0] == unusable)  # a 200 with num_invalid_entries = 1
        waits = Waits()
        result = run(wh, tmp_path, audience, waits)
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(100)} - {bad, unusable}
        assert api.audience_members(audience_id, "PHONE") >= {sha(phone_of("u0001")[1:])}  # digits, no '+'
        assert {r["FN"] for r in api.audience_rows(audience_id)} == {sha("ann")}  # "Ann1" → letters only
        assert {r["COUNTRY"] for r in api.audience_rows(audience_id)} == {sha("gb")}
        # the invalid entry cannot be attributed: the batch counts as sent, the entry as a failure
        assert result["added"] == 99 and result["failed"] == 2
        assert 60 in waits  # the throttle's estimated_time_to_regain_access, in seconds
        # leavers are removed by their hashes
        set_segment(wh, "vip", user_ids(90))
        assert run(wh, tmp_path, {**audience, "failure_threshold": 0.2})["removed"] == 10
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(90)} - {bad, unusable}


def meta_audience(audience_id: str, **extra) -> dict:
    return {"name": "ca", "segment": "vip", "destination": "meta_custom_audience", "conn_id": "meta_test",
            "fields": ["email", "phone", "first_name"], "identifiers": ["email", "phone"],
            "options": {"audience_id": audience_id}, "batch_rows": 8, **extra}  # fmt: skip


def meta_seed(api: FakeMeta, audience_id: str, emails: list[str]) -> None:
    body = {"payload": {"schema": "EMAIL_SHA256", "data": [sha(e) for e in emails]}, "access_token": api.access_token}
    assert requests.post(f"{api.base_url}/v21.0/{audience_id}/users", json=body, timeout=5).status_code == 200


def test_meta_first_sync_replaces_what_the_audience_held_and_a_full_resync_drops_strays(wh, tmp_path, monkeypatch):
    with FakeMeta() as api:
        connection_env(monkeypatch, "meta_test", password=api.access_token, extra={"base_url": api.base_url})
        audience_id = api.create_audience()
        meta_seed(api, audience_id, ["stray@example.org", email_of("u0001")])  # uploaded by hand, before Rekindle
        set_segment(wh, "vip", user_ids(30))
        printed: list[str] = []
        config = write_audiences(tmp_path / "audiences.yml", [meta_audience(audience_id)])
        settings = settings_for(wh, tmp_path / "out")
        sync_audiences(settings, START, AS_OF, config=config, dry_run=True, report=printed.append)
        assert "would replace the whole audience with its 30 eligible members" in printed[0]
        assert len(api.requests) == 1  # the seed only: a dry run sends nothing
        first = run(wh, tmp_path, meta_audience(audience_id))
        assert first["added"] == 30 and first["outcome"] == "ok"
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(30)}
        assert len(api.requests_to("POST", "/usersreplace")) == 4  # 30 members in batches of 8, one session
        meta_seed(api, audience_id, ["another-stray@example.org"])  # someone edits the audience by hand again
        assert run(wh, tmp_path, meta_audience(audience_id))["to_add"] == 0  # a diff cannot know of it
        assert sha("another-stray@example.org") in api.audience_members(audience_id)
        resync = run(wh, tmp_path, meta_audience(audience_id), full_resync=True)
        assert resync["outcome"] == "ok"
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(30)}
        replaces = table(wh, "select count(distinct session_id) from sync_replace where finished_at is not null")
        assert replaces == [(2,)]


def test_meta_replace_whose_last_batch_is_split_still_ends(wh, tmp_path, monkeypatch):
    """A bad record in the last batch: the batch is split and no piece may carry the last-batch flag (the
    pieces after it would be refused), so the sync ends the session with one member sent again."""
    with FakeMeta() as api:
        connection_env(monkeypatch, "meta_test", password=api.access_token, extra={"base_url": api.base_url})
        audience_id = api.create_audience()
        meta_seed(api, audience_id, ["stray@example.org"])
        set_segment(wh, "vip", user_ids(30))
        bad = sha(email_of("u0030"))
        api.reject_record(lambda row: row[0] == bad)
        result = run(wh, tmp_path, meta_audience(audience_id, failure_threshold=0.1))
        assert (result["outcome"], result["added"], result["failed"]) == ("ok", 29, 1)
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(29)}
        flagged = [r for r in api.requests_to("POST", "/usersreplace") if r.json()["session"]["last_batch_flag"]]
        assert [r.status for r in flagged] == [400, 200]  # the whole last batch refused, then the closing one


def test_meta_changed_email_or_phone_leaves_no_old_hash(wh, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # everything any library logs, to check no address, number or token leaks
    with FakeMeta() as api:
        connection_env(monkeypatch, "meta_test", password=api.access_token, extra={"base_url": api.base_url})
        audience_id = api.create_audience()
        set_segment(wh, "vip", user_ids(20))
        api.fail_next(500)
        api.reject_record(lambda row: row[0] == sha(email_of("u0011")))  # a 400 naming nobody, split to isolate
        run(wh, tmp_path, meta_audience(audience_id, failure_threshold=0.2))
        api.reset_faults()
        with duckdb.connect(str(wh)) as con:
            con.execute("update dim_users set email = 'moved3@example.com' where user_id = 'u0003'")
            con.execute("update dim_users set phone = '+447900000999' where user_id = 'u0004'")
        set_segment(wh, "vip", user_ids(20))
        result = run(wh, tmp_path, meta_audience(audience_id))
        assert result["added"] == 3 and result["failed"] == 0  # the two changed, and u0011 refused last time
        emails = api.audience_members(audience_id)
        assert sha("moved3@example.com") in emails and sha(email_of("u0003")) not in emails
        phones = api.audience_members(audience_id, "PHONE")
        assert sha("447900000999") in phones and sha(phone_of("u0004")[1:]) not in phones
        assert len(api.audience_rows(audience_id)) == 20  # one row a member, none left over
        logged = table(wh, "select user_id, action, reason from sync_log where reason = 'identifier_changed'")
        assert sorted(logged) == [("u0003", "remove", "identifier_changed"), ("u0004", "remove", "identifier_changed")]
        # the state keeps the hashes sent, never an address or a number
        stored = table(wh, "select hashes, stale_hashes from sync_state where user_id in ('u0003', 'u0004')")
        assert all("@" not in hashes and "+44" not in hashes and stale is None for hashes, stale in stored)
        assert ("email=" + sha("moved3@example.com")) in stored[0][0] + stored[1][0]
        # a leaver whose profile is gone is removed by the hashes the audience holds
        with duckdb.connect(str(wh)) as con:
            con.execute("delete from dim_users where user_id = 'u0005'")
        set_segment(wh, "vip", [u for u in user_ids(20) if u != "u0005"])
        assert run(wh, tmp_path, meta_audience(audience_id))["removed"] == 1
        assert sha(email_of("u0005")) not in api.audience_members(audience_id)
    reasons = " ".join(r or "" for (r,) in table(wh, "select reason from sync_log"))
    for leaked in ("@example.com", "+4479", "447900000999", api.access_token):
        assert leaked not in caplog.text and leaked not in reasons
    assert "retrying" in caplog.text  # the log did capture the sender's warnings


# ---- Google Data Manager ---------------------------------------------------------------------------------


def test_google_ingests_e164_hashes_and_retries_500(wh, tmp_path, monkeypatch):
    with FakeGoogleDataManager() as api:
        connection_env(monkeypatch, "g_test", password=api.access_token, extra={"base_url": api.base_url})
        audience_id = api.create_audience()
        audience = {"name": "cm", "segment": "vip", "destination": "google_data_manager", "conn_id": "g_test",
                    "fields": ["email", "phone"], "identifiers": ["email", "phone"],
                    "options": {"operating_account_id": "1234567890",
                                "product_destination_id": audience_id}}  # fmt: skip
        set_segment(wh, "vip", user_ids(50))
        api.fail_next(500, times=2)
        result = run(wh, tmp_path, audience)
        assert result["added"] == 50 and result["retried"] == 2
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(50)}
        assert api.audience_members(audience_id, "phoneNumber") == {sha(phone_of(u)) for u in user_ids(50)}
        set_segment(wh, "vip", user_ids(45))
        assert run(wh, tmp_path, audience)["removed"] == 5
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(45)}


def test_google_first_sync_replaces_and_a_changed_email_leaves_no_old_hash(wh, tmp_path, monkeypatch):
    with FakeGoogleDataManager() as api:
        connection_env(monkeypatch, "g_test", password=api.access_token, extra={"base_url": api.base_url})
        audience_id = api.create_audience()
        audience = {"name": "cm", "segment": "vip", "destination": "google_data_manager", "conn_id": "g_test",
                    "fields": ["email", "phone"], "identifiers": ["email", "phone"], "batch_rows": 7,
                    "options": {"operating_account_id": "1234567890",
                                "product_destination_id": audience_id}}  # fmt: skip
        member = {"userData": {"userIdentifiers": [{"emailAddress": sha("stray@x.org")}]}}
        destination = {"operatingAccount": {"accountId": "1"}, "productDestinationId": audience_id}
        consent = {"adUserData": "CONSENT_GRANTED"}
        stray = {"destinations": [destination], "encoding": "HEX", "consent": consent, "audienceMembers": [member]}
        headers = {"Authorization": f"Bearer {api.access_token}"}
        url = f"{api.base_url}/v1/audienceMembers:ingest"
        assert requests.post(url, json=stray, headers=headers, timeout=5).status_code == 200
        api.age_members(audience_id, 600)
        set_segment(wh, "vip", user_ids(20))
        assert run(wh, tmp_path, audience)["added"] == 20
        assert api.audience_members(audience_id) == {sha(email_of(u)) for u in user_ids(20)}
        assert len(api.requests_to("POST", ":removeAll")) == 1
        with duckdb.connect(str(wh)) as con:
            con.execute("update dim_users set email = 'Moved7@Example.com ' where user_id = 'u0007'")
        set_segment(wh, "vip", user_ids(20))
        assert run(wh, tmp_path, audience)["added"] == 1
        emails = api.audience_members(audience_id)
        assert sha("moved7@example.com") in emails and sha(email_of("u0007")) not in emails
        assert api.audience_members(audience_id, "phoneNumber") == {sha(phone_of(u)) for u in user_ids(20)}
        assert len(api.requests_to("POST", ":removeAll")) == 1  # no second replace: the state knows the list


# ---- Braze -------------------------------------------------------------------------------------------------


def test_braze_batches_of_75_and_timeouts(wh, tmp_path, monkeypatch):
    with FakeBraze() as api:
        connection_env(monkeypatch, "braze_test", password=api.api_key, extra={"base_url": api.base_url})
        audience = {"name": "vip_flag", "segment": "vip", "destination": "braze", "conn_id": "braze_test",
                    "fields": ["user_id", "first_name"], "options": {"attribute": "in_segment_vip"}}  # fmt: skip
        set_segment(wh, "vip", user_ids(200))
        api.delay_next(FAST.timeout + 1)  # applied, answered too late: the client times out and retries
        result = run(wh, tmp_path, audience)
        assert result["added"] == 200 and result["retried"] == 1
        assert api.attribute_members("in_segment_vip") == set(user_ids(200))
        posts = api.requests_to("POST", "/users/track")
        assert max(len(r.json()["attributes"]) for r in posts) == 75
        set_segment(wh, "vip", user_ids(190))
        assert run(wh, tmp_path, audience)["removed"] == 10
        assert api.attribute_members("in_segment_vip") == set(user_ids(190))


# ---- Webhook -----------------------------------------------------------------------------------------------


def test_webhook_signature_verifies_on_the_receiving_side(wh, tmp_path, monkeypatch):
    with FakeWebhookReceiver() as receiver:
        connection_env(monkeypatch, "hook", password=receiver.secret, extra={"base_url": receiver.url})
        audience = {"name": "hooked", "segment": "vip", "destination": "webhook", "conn_id": "hook", "channel": "email",
                    "fields": ["user_id", "email"], "batch_rows": 10}  # fmt: skip
        set_segment(wh, "vip", user_ids(25))
        receiver.fail_next(503)
        result = run(wh, tmp_path, audience)
        assert result["added"] == 25 and result["retried"] == 1
        assert receiver.rejected_signatures == 0
        delivered = [p for p in receiver.deliveries.values()]
        assert sorted(x["Identity"] for p in delivered for x in p["profiles"]) == user_ids(25)
        # verify independently with the reference library, as any receiver would
        request = receiver.requests_to("POST")[-1]
        verified = Webhook(receiver.secret).verify(request.body, request.headers)
        assert verified["type"] == "audience.members_added"


# ---- S3 (moto server) --------------------------------------------------------------------------------------


def test_s3_run_addressed_keys_and_a_rerun_writes_nothing_new(wh, tmp_path, monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        connection_env(monkeypatch, "s3_test", login="testing", password="testing",
                       extra={"endpoint_url": endpoint, "region_name": "us-east-1"})  # fmt: skip
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="exports")
        audience = {"name": "s3a", "segment": "vip", "destination": "s3", "conn_id": "s3_test",
                    "fields": ["user_id", "email"], "batch_rows": 40,
                    "options": {"bucket": "exports", "prefix": "aud"}}  # fmt: skip
        set_segment(wh, "vip", user_ids(100))
        run(wh, tmp_path, audience)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]]
        assert len(keys) == 3 and all(k.startswith("aud/s3a/20261101T000000Z/add-") for k in keys)
        body = s3.get_object(Bucket="exports", Key=sorted(keys)[0])["Body"].read().decode()
        assert body.splitlines()[0] == "user_id,email"
        # a rerun after a crash that lost the record: the same batches, the same keys, 412 → nothing new
        import duckdb

        with duckdb.connect(str(wh)) as con:
            con.execute("delete from sync_state")
        before = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]}
        time.sleep(1.1)
        assert run(wh, tmp_path, audience)["added"] == 100
        after = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]}
        assert after == before
    finally:
        server.stop()
