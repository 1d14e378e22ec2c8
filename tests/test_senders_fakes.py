"""The fake destinations keep each vendor's documented contract, and their fault knobs do what they say.

The senders' tests trust these servers to behave like the real APIs (../shared/reference/destinations.md):
if a fake were lenient, a sender that breaks the contract would pass. So each contract point a sender relies on
is checked here with plain HTTP (requests), independent of the senders' own client.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from fakes.braze import FakeBraze
from fakes.google_data_manager import FakeGoogleDataManager
from fakes.meta import FakeMeta
from fakes.sendgrid import FakeSendGrid
from fakes.twilio import FakeTwilio
from fakes.webhook_receiver import FakeWebhookReceiver
from standardwebhooks.webhooks import Webhook

from senders.normalise import sha256_hex

TIMEOUT = 10
pytest_plugins = ["fakes.fixtures"]  # fake_sendgrid, fake_twilio, ... (one fresh server per test)


def h(value: str) -> str:
    return sha256_hex(value)


# ---------------------------------------------------------------------------------------------------------------
# SendGrid


def sendgrid(api: FakeSendGrid, key: str | None = None) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key or api.api_key}"
    return session


def upsert(api: FakeSendGrid, list_id: str, contacts: list[dict], key: str | None = None) -> requests.Response:
    return sendgrid(api, key).put(
        f"{api.base_url}/v3/marketing/contacts", json={"list_ids": [list_id], "contacts": contacts}, timeout=TIMEOUT
    )


def poll(api: FakeSendGrid, job_id: str) -> dict:
    return sendgrid(api).get(f"{api.base_url}/v3/marketing/contacts/imports/{job_id}", timeout=TIMEOUT).json()


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_sendgrid_refuses_a_wrong_or_missing_key_with_401(fake_sendgrid: FakeSendGrid, key: str | None) -> None:
    list_id = fake_sendgrid.create_list()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.put(
        f"{fake_sendgrid.base_url}/v3/marketing/contacts",
        json={"list_ids": [list_id], "contacts": [{"email": "a@example.com"}]},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json() == {"errors": [{"field": None, "message": "authorization required"}]}
    assert fake_sendgrid.jobs == {}


def test_sendgrid_upsert_is_an_async_job_that_lands_when_completed(fake_sendgrid: FakeSendGrid) -> None:
    list_id = fake_sendgrid.create_list()
    response = upsert(
        fake_sendgrid, list_id, [{"email": "A@Example.com", "first_name": "A"}, {"email": "not-an-email"}]
    )
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert fake_sendgrid.list_members(list_id) == set()  # accepted is not done
    assert poll(fake_sendgrid, job_id)["status"] == "pending"
    done = poll(fake_sendgrid, job_id)
    assert done["status"] == "completed"
    assert done["results"]["requested_count"] == 2
    assert done["results"]["created_count"] == 1
    assert done["results"]["errored_count"] == 1  # a bad email is counted in the job, not refused up front
    errors = requests.get(done["results"]["errors_url"], timeout=TIMEOUT)
    assert errors.status_code == 200 and "invalid email" in errors.text
    assert fake_sendgrid.list_members(list_id) == {"a@example.com"}  # stored lower-cased, like SendGrid


def test_sendgrid_enforces_its_caps_and_contact_identifiers(fake_sendgrid: FakeSendGrid) -> None:
    list_id = fake_sendgrid.create_list()
    too_many = upsert(fake_sendgrid, list_id, [{"email": f"u{i}@example.com"} for i in range(30_001)])
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["field"] == "contacts"
    padding = "x" * 300  # 25,000 contacts of ~330 bytes: under the count cap, over 6 MB
    too_big = upsert(
        fake_sendgrid,
        list_id,
        [{"email": f"u{i}@example.com", "custom_fields": {"w1": padding}} for i in range(25_000)],
    )
    assert too_big.status_code == 413
    no_identifier = upsert(fake_sendgrid, list_id, [{"email": "a@example.com"}, {"first_name": "nobody"}])
    assert no_identifier.status_code == 400
    assert no_identifier.json()["errors"][0]["field"] == "contacts[1]"
    too_long = upsert(fake_sendgrid, list_id, [{"email": "a" * 250 + "@example.com"}])
    assert too_long.json()["errors"][0]["field"] == "contacts[0].email"
    unknown_list = upsert(fake_sendgrid, "00000000-0000-0000-0000-000000000000", [{"email": "a@example.com"}])
    assert unknown_list.status_code == 404
    assert fake_sendgrid.jobs == {}  # none of these was applied


def test_sendgrid_removal_goes_through_search_then_delete_by_contact_ids(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.job_pending_polls = 0  # jobs complete at once
    list_id = fake_sendgrid.create_list()
    upsert(fake_sendgrid, list_id, [{"email": f"u{i}@example.com"} for i in range(3)])
    client = sendgrid(fake_sendgrid)
    found = client.post(
        f"{fake_sendgrid.base_url}/v3/marketing/contacts/search/emails",
        json={"emails": ["U0@example.com", "nobody@example.com"]},
        timeout=TIMEOUT,
    )
    assert found.status_code == 200
    result = found.json()["result"]
    assert result["nobody@example.com"] == {"error": "contact not found"}
    contact_id = result["u0@example.com"]["contact"]["id"]
    removal = client.delete(
        f"{fake_sendgrid.base_url}/v3/marketing/lists/{list_id}/contacts",
        params={"contact_ids": contact_id},
        timeout=TIMEOUT,
    )
    assert removal.status_code == 202
    assert poll(fake_sendgrid, removal.json()["job_id"])["status"] == "completed"
    assert fake_sendgrid.list_members(list_id) == {"u1@example.com", "u2@example.com"}
    bad_id = client.delete(
        f"{fake_sendgrid.base_url}/v3/marketing/lists/{list_id}/contacts",
        params={"contact_ids": "nope"},
        timeout=TIMEOUT,
    )
    assert bad_id.status_code == 400
    none_found = client.post(
        f"{fake_sendgrid.base_url}/v3/marketing/contacts/search/emails", json={"emails": ["x@y.com"]}, timeout=TIMEOUT
    )
    assert none_found.status_code == 404
    over_cap = client.post(
        f"{fake_sendgrid.base_url}/v3/marketing/contacts/search/emails",
        json={"emails": [f"u{i}@example.com" for i in range(101)]},
        timeout=TIMEOUT,
    )
    assert over_cap.status_code == 400 and over_cap.json()["errors"][0]["field"] == "emails"


def test_sendgrid_rate_limit_headers_on_every_answer_and_a_429_says_when_to_return(fake_sendgrid: FakeSendGrid) -> None:
    list_id = fake_sendgrid.create_list()
    ok = upsert(fake_sendgrid, list_id, [{"email": "a@example.com"}])
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(ok.headers)
    fake_sendgrid.rate_limit(2, window_seconds=30)
    answers = [upsert(fake_sendgrid, list_id, [{"email": "a@example.com"}]) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    limited = answers[2]
    assert limited.json() == {"errors": [{"field": None, "message": "too many requests"}]}
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > time.time()
    assert len(fake_sendgrid.jobs) == 3  # the first answer's job and two more; the 429 applied nothing


def test_sendgrid_failed_job_applies_nothing(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.job_pending_polls = 0
    list_id = fake_sendgrid.create_list()
    fake_sendgrid.fail_next_job()
    job_id = upsert(fake_sendgrid, list_id, [{"email": "a@example.com"}]).json()["job_id"]
    assert poll(fake_sendgrid, job_id)["status"] == "failed"
    assert fake_sendgrid.list_members(list_id) == set()


# ---------------------------------------------------------------------------------------------------------------
# Fault knobs (shared base), exercised through SendGrid and Twilio


def send_sms(api: FakeTwilio, to: str, *, body: str = "Your cart misses you", timeout: float = TIMEOUT, **extra):
    form = {"To": to, "From": "+15005550006", "Body": body, **extra}
    return requests.post(
        api.base_url + api.messages_path, data=form, auth=(api.account_sid, api.auth_token), timeout=timeout
    )


def test_fail_next_answers_the_vendor_error_without_applying(fake_sendgrid: FakeSendGrid) -> None:
    list_id = fake_sendgrid.create_list()
    fake_sendgrid.fail_next(503, times=2)
    assert [upsert(fake_sendgrid, list_id, [{"email": "a@example.com"}]).status_code for _ in range(3)] == [
        503,
        503,
        202,
    ]
    assert len(fake_sendgrid.jobs) == 1
    assert [r.faulted for r in fake_sendgrid.requests_to("PUT")] == [True, True, False]
    assert [r.status for r in fake_sendgrid.requests_to("PUT")] == [503, 503, 202]
    assert all(r.received_at <= time.time() for r in fake_sendgrid.requests)
    fake_sendgrid.fail_next(429, headers={"Retry-After": "7"}, body={"errors": [{"field": None, "message": "slow"}]})
    custom = upsert(fake_sendgrid, list_id, [{"email": "a@example.com"}])
    assert (
        custom.status_code == 429
        and custom.headers["Retry-After"] == "7"
        and custom.json()["errors"][0]["message"] == "slow"
    )


def test_reject_record_refuses_the_whole_batch_with_the_vendor_400(fake_sendgrid: FakeSendGrid) -> None:
    list_id = fake_sendgrid.create_list()
    fake_sendgrid.reject_record(lambda contact: contact.get("email") == "bad@example.com")
    refused = upsert(fake_sendgrid, list_id, [{"email": "ok@example.com"}, {"email": "bad@example.com"}])
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "contacts[1]", "message": "contact is invalid"}]
    assert upsert(fake_sendgrid, list_id, [{"email": "ok@example.com"}]).status_code == 202
    assert len(fake_sendgrid.jobs) == 1


def test_drop_connection_after_accept_applies_then_hangs_up(fake_twilio: FakeTwilio) -> None:
    fake_twilio.drop_connection_after_accept()
    with pytest.raises(requests.ConnectionError):
        send_sms(fake_twilio, "+14155550100")
    assert len(fake_twilio.messages_to("+14155550100")) == 1  # sent, though the client never heard so
    assert fake_twilio.requests[-1].dropped and fake_twilio.requests[-1].status is None
    assert send_sms(fake_twilio, "+14155550101").status_code == 201  # the knob is used up


def test_delay_next_outlasts_a_client_timeout_after_applying(fake_twilio: FakeTwilio) -> None:
    fake_twilio.delay_next(1.0)
    with pytest.raises(requests.Timeout):
        send_sms(fake_twilio, "+14155550100", timeout=0.2)
    assert len(fake_twilio.messages) == 1  # the write happened: a blind retry would send twice
    assert send_sms(fake_twilio, "+14155550100").status_code == 201
    assert len(fake_twilio.messages_to("+14155550100")) == 2


def test_fakes_are_thread_safe_and_stop_with_keep_alive_connections_open() -> None:
    with FakeTwilio() as api:
        session = requests.Session()  # keeps its connection open across the server's shutdown
        session.auth = (api.account_sid, api.auth_token)
        url = api.base_url + api.messages_path
        assert session.post(url, data={"To": "+14155550100", "From": "+15005550006", "Body": "x"}).status_code == 201
        threads = [threading.Thread(target=send_sms, args=(api, f"+1415555{i:04d}")) for i in range(200, 232)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(api.messages) == 33
        assert len({m["sid"] for m in api.messages}) == 33
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        session.post(url, data={"To": "+14155550100"}, timeout=2)
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------------------------------------------------------
# Twilio


def test_twilio_refuses_wrong_credentials_and_another_account(fake_twilio: FakeTwilio) -> None:
    wrong = requests.post(
        fake_twilio.base_url + fake_twilio.messages_path,
        data={"To": "+14155550100", "From": "+15005550006", "Body": "x"},
        auth=(fake_twilio.account_sid, "wrong"),
        timeout=TIMEOUT,
    )
    assert wrong.status_code == 401
    assert wrong.json()["code"] == 20003 and wrong.json()["status"] == 401
    other = requests.post(
        f"{fake_twilio.base_url}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json",
        data={"To": "+14155550100", "From": "+15005550006", "Body": "x"},
        auth=(fake_twilio.account_sid, fake_twilio.auth_token),
        timeout=TIMEOUT,
    )
    assert other.status_code == 401
    assert fake_twilio.messages == []


def test_twilio_creates_a_message_with_201_and_a_sid(fake_twilio: FakeTwilio) -> None:
    response = send_sms(fake_twilio, "+14155550100", body="x" * 161)
    assert response.status_code == 201
    message = response.json()
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert message["status"] == "queued" and message["to"] == "+14155550100"
    assert message["num_segments"] == "2" and message["error_code"] is None


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "4155550100"}, 21211),  # not E.164
        ({"To": "+1 415 555 0100"}, 21211),
        ({"To": ""}, 21604),
        ({"From": ""}, 21603),
        ({"Body": ""}, 21602),
        ({"Body": "x" * 1601}, 21617),
    ],
)
def test_twilio_validates_the_message(fake_twilio: FakeTwilio, form: dict, code: int) -> None:
    full = {"To": "+14155550100", "From": "+15005550006", "Body": "hello", **form}
    response = requests.post(
        fake_twilio.base_url + fake_twilio.messages_path,
        data=full,
        auth=(fake_twilio.account_sid, fake_twilio.auth_token),
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["status"] == 400 and body["more_info"].endswith(str(code))
    assert fake_twilio.messages == []


def test_twilio_stopped_and_invalid_numbers_become_21610_and_21211(fake_twilio: FakeTwilio) -> None:
    fake_twilio.mark_stopped("+14155550100")
    fake_twilio.mark_invalid("+14155550101")
    assert send_sms(fake_twilio, "+14155550100").json()["code"] == 21610
    assert send_sms(fake_twilio, "+14155550101").json()["code"] == 21211
    fake_twilio.mark_started("+14155550100")
    assert send_sms(fake_twilio, "+14155550100").status_code == 201


def test_twilio_json_body_is_not_read(fake_twilio: FakeTwilio) -> None:
    response = requests.post(
        fake_twilio.base_url + fake_twilio.messages_path,
        json={"To": "+14155550100", "From": "+15005550006", "Body": "x"},
        auth=(fake_twilio.account_sid, fake_twilio.auth_token),
        timeout=TIMEOUT,
    )
    assert response.status_code == 400 and response.json()["code"] == 21604


def test_twilio_429_is_code_20429_and_nothing_is_sent(fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(429)
    response = send_sms(fake_twilio, "+14155550100")
    assert response.status_code == 429 and response.json()["code"] == 20429
    fake_twilio.rate_limit(1, window_seconds=30)
    assert send_sms(fake_twilio, "+14155550100").status_code == 201
    limited = send_sms(fake_twilio, "+14155550100")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert len(fake_twilio.messages) == 1


def test_twilio_lists_sent_messages_by_recipient_and_date_in_pages(fake_twilio: FakeTwilio) -> None:
    for _ in range(3):
        send_sms(fake_twilio, "+14155550100")
    send_sms(fake_twilio, "+14155550199")
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)
    today = datetime.now(UTC).date()
    url = fake_twilio.base_url + fake_twilio.messages_path
    page = requests.get(url, params={"To": "+14155550100", "DateSent>": today.isoformat(), "PageSize": 2}, auth=auth)
    assert page.status_code == 200
    first = page.json()
    assert len(first["messages"]) == 2 and all(m["to"] == "+14155550100" for m in first["messages"])
    assert all(m["status"] == "sent" and m["date_sent"] for m in first["messages"])
    second = requests.get(fake_twilio.base_url + first["next_page_uri"], auth=auth).json()
    assert len(second["messages"]) == 1 and second["next_page_uri"] is None
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert requests.get(url, params={"DateSent>": tomorrow}, auth=auth).json()["messages"] == []
    assert requests.get(url, params={"DateSent>": "yesterday"}, auth=auth).status_code == 400
    sid = first["messages"][0]["sid"]
    assert requests.get(f"{url[:-5]}/{sid}.json", auth=auth).json()["sid"] == sid


# ---------------------------------------------------------------------------------------------------------------
# Meta


def meta_post(api: FakeMeta, audience_id: str, payload: dict, *, edge: str = "users", method: str = "POST", **extra):
    form = {"payload": json.dumps(payload), "access_token": extra.pop("token", api.access_token)}
    form.update({k: json.dumps(v) for k, v in extra.items()})
    return requests.request(method, f"{api.base_url}/v21.0/{audience_id}/{edge}", data=form, timeout=TIMEOUT)


def test_meta_refuses_a_bad_token_with_graph_code_190(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    response = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("a@x.com")]}, token="nope")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 190 and response.json()["error"]["type"] == "OAuthException"
    assert fake_meta.audience_members(audience) == set()


def test_meta_adds_and_removes_hashed_rows(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    schema = ["EMAIL", "PHONE", "FN", "COUNTRY"]
    rows = [[h(f"u{i}@x.com"), h(f"1415555010{i}"), h("ann"), h("us")] for i in range(3)]
    added = meta_post(fake_meta, audience, {"schema": schema, "data": rows})
    assert added.status_code == 200
    assert added.json()["num_received"] == 3 and added.json()["num_invalid_entries"] == 0
    assert fake_meta.audience_members(audience) == {h(f"u{i}@x.com") for i in range(3)}
    removed = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("u0@x.com")]}, method="DELETE")
    assert removed.status_code == 200
    assert fake_meta.audience_members(audience) == {h("u1@x.com"), h("u2@x.com")}
    # a shared first name or country does not take other people out with the one removed
    meta_post(fake_meta, audience, {"schema": schema, "data": [rows[1]]}, method="DELETE")
    assert fake_meta.audience_members(audience) == {h("u2@x.com")}
    as_json = requests.post(
        f"{fake_meta.base_url}/v21.0/{audience}/users",
        json={"payload": {"schema": "EMAIL_SHA256", "data": [h("u9@x.com")]}, "access_token": fake_meta.access_token},
        timeout=TIMEOUT,
    )
    assert as_json.status_code == 200 and h("u9@x.com") in fake_meta.audience_members(audience)


def test_meta_counts_malformed_hashes_as_invalid_entries_inside_a_200(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    data = [h("a@x.com"), h("b@x.com").upper(), h("c@x.com")[:63], "c@x.com"]
    response = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": data})
    assert response.status_code == 200
    assert response.json()["num_received"] == 4 and response.json()["num_invalid_entries"] == 3
    assert len(response.json()["invalid_entry_samples"]) == 3
    assert fake_meta.audience_members(audience) == {h("a@x.com")}
    fake_meta.invalid_rows_for(lambda row: row[0] == h("d@x.com"))
    unusable = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("d@x.com"), h("e@x.com")]})
    assert unusable.status_code == 200 and unusable.json()["num_invalid_entries"] == 1
    assert fake_meta.audience_members(audience) == {h("a@x.com"), h("e@x.com")}
    # two hashes in one value are not a hash, though each line of it is (the fake checks a batch's column at once)
    joined = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [f"{h('f@x.com')}\n{h('g@x.com')}"]})
    assert joined.status_code == 200 and joined.json()["num_invalid_entries"] == 1


def test_meta_refuses_more_than_10000_rows_and_unknown_audiences(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    too_many = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h(str(i)) for i in range(10_001)]})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == 100
    unknown = meta_post(fake_meta, "999", {"schema": "EMAIL_SHA256", "data": [h("a")]})
    assert unknown.status_code == 400 and unknown.json()["error"]["error_subcode"] == 33
    ragged = meta_post(fake_meta, audience, {"schema": ["EMAIL", "PHONE"], "data": [[h("a")]]})
    assert ragged.status_code == 400
    assert fake_meta.audience_members(audience) == set()


def session(session_id: int, seq: int, last: bool = False, total: int = 2) -> dict:
    return {"session_id": session_id, "batch_seq": seq, "last_batch_flag": last, "estimated_num_total": total}


def test_meta_replace_session_swaps_the_audience_only_at_the_last_batch(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("old@x.com"), h("stay@x.com")]})
    payload1 = {"schema": "EMAIL_SHA256", "data": [h("stay@x.com")]}
    payload2 = {"schema": "EMAIL_SHA256", "data": [h("new@x.com")]}
    no_session = meta_post(fake_meta, audience, payload1, edge="usersreplace")
    assert no_session.status_code == 400
    no_total = {"session_id": 7, "batch_seq": 1, "last_batch_flag": False}
    assert meta_post(fake_meta, audience, payload1, edge="usersreplace", session=no_total).status_code == 400
    first = meta_post(fake_meta, audience, payload1, edge="usersreplace", session=session(7, 1))
    assert first.status_code == 200 and first.json()["session_id"] == "7"
    assert fake_meta.audience_members(audience) == {h("old@x.com"), h("stay@x.com")}  # never empty mid-sync
    rival = meta_post(fake_meta, audience, payload2, edge="usersreplace", session=session(8, 1, last=True))
    assert rival.status_code == 400 and rival.json()["error"]["code"] == 2650
    # while the replace is open, /users would be overwritten by it: refused
    during = meta_post(fake_meta, audience, payload2)
    assert during.status_code == 400 and during.json()["error"]["code"] == 2650
    last = session(7, 2, last=True)
    assert meta_post(fake_meta, audience, payload2, edge="usersreplace", session=last).status_code == 200
    assert fake_meta.audience_members(audience) == {h("stay@x.com"), h("new@x.com")}
    retried = meta_post(fake_meta, audience, payload2, edge="usersreplace", session=last)
    assert retried.status_code == 200  # a retried batch of the finished session is a no-op
    assert fake_meta.audience_members(audience) == {h("stay@x.com"), h("new@x.com")}
    late = meta_post(fake_meta, audience, payload2, edge="usersreplace", session=session(7, 3, last=True))
    assert late.status_code == 400 and late.json()["error"]["code"] == 2650  # the session has ended


def test_meta_replace_batches_come_in_order_and_a_retry_changes_nothing(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("old@x.com")]})
    batch = {"schema": "EMAIL_SHA256", "data": [h("a@x.com")]}
    opens_late = meta_post(fake_meta, audience, batch, edge="usersreplace", session=session(5, 2))
    assert opens_late.status_code == 400 and opens_late.json()["error"]["code"] == 100
    assert meta_post(fake_meta, audience, batch, edge="usersreplace", session=session(5, 1, total=3)).status_code == 200
    gap = meta_post(fake_meta, audience, batch, edge="usersreplace", session=session(5, 3, total=3))
    assert gap.status_code == 400 and "out of order" in gap.json()["error"]["message"]
    other = {"schema": "EMAIL_SHA256", "data": [h("other@x.com")]}
    # batch 1 again (a retry after a lost answer) is not applied a second time, whatever it carries
    assert meta_post(fake_meta, audience, other, edge="usersreplace", session=session(5, 1, total=3)).status_code == 200
    second = {"schema": "EMAIL_SHA256", "data": [h("b@x.com")]}
    assert (
        meta_post(fake_meta, audience, second, edge="usersreplace", session=session(5, 2, True, 3)).status_code == 200
    )
    assert fake_meta.audience_members(audience) == {h("a@x.com"), h("b@x.com")}
    too_many = {"schema": "EMAIL_SHA256", "data": [h(str(i)) for i in range(10_001)]}
    refused = meta_post(fake_meta, audience, too_many, edge="usersreplace", session=session(6, 1, True, 10_001))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == 100
    assert fake_meta.audience_members(audience) == {h("a@x.com"), h("b@x.com")}


def test_meta_throttling_is_a_400_with_code_80004_and_the_usage_header(fake_meta: FakeMeta) -> None:
    audience = fake_meta.create_audience()
    fake_meta.throttle_next()
    response = meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("a@x.com")]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 80004 and response.json()["error"]["is_transient"] is True
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    assert next(iter(usage.values()))[0]["estimated_time_to_regain_access"] == 1
    assert fake_meta.audience_members(audience) == set()
    fake_meta.fail_next(429)
    assert meta_post(fake_meta, audience, {"schema": "EMAIL_SHA256", "data": [h("a")]}).json()["error"]["code"] == 80004


# ---------------------------------------------------------------------------------------------------------------
# Google Data Manager

CONSENT = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}


def google_body(audience_id: str, members: list[dict], **extra) -> dict:
    return {
        "destinations": [
            {
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                "productDestinationId": audience_id,
            }
        ],
        "audienceMembers": members,
        "encoding": "HEX",
        **extra,
    }


def member(email: str, **extra) -> dict:
    return {"userData": {"userIdentifiers": [{"emailAddress": h(email)}]}, **extra}


def google_call(api: FakeGoogleDataManager, verb: str, body: dict, token: str | None = None) -> requests.Response:
    return requests.post(
        f"{api.base_url}/v1/audienceMembers:{verb}",
        json=body,
        headers={"Authorization": f"Bearer {token or api.access_token}"},
        timeout=TIMEOUT,
    )


def test_google_refuses_a_bad_token_with_unauthenticated(fake_google: FakeGoogleDataManager) -> None:
    audience = fake_google.create_audience()
    response = google_call(fake_google, "ingest", google_body(audience, [member("a@x.com")], consent=CONSENT), "bad")
    assert response.status_code == 401 and response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_google_ingests_and_removes_with_consent(fake_google: FakeGoogleDataManager) -> None:
    audience = fake_google.create_audience()
    members = [member("a@x.com"), member("b@x.com"), member("c@x.com", consent={"adUserData": "CONSENT_DENIED"})]
    response = google_call(fake_google, "ingest", google_body(audience, members, consent=CONSENT))
    assert response.status_code == 200 and response.json()["requestId"]
    assert fake_google.audience_members(audience) == {h("a@x.com"), h("b@x.com")}  # denied consent does not join
    status = requests.get(
        f"{fake_google.base_url}/v1/requestStatus:retrieve",
        params={"requestId": response.json()["requestId"]},
        headers={"Authorization": f"Bearer {fake_google.access_token}"},
        timeout=TIMEOUT,
    ).json()
    assert status["requestStatusPerDestination"][0]["requestStatus"] == "SUCCESS"
    removed = google_call(fake_google, "remove", google_body(audience, [member("a@x.com")]))
    assert removed.status_code == 200
    assert fake_google.audience_members(audience) == {h("b@x.com")}


def test_google_refuses_the_whole_request_naming_the_bad_member(fake_google: FakeGoogleDataManager) -> None:
    audience = fake_google.create_audience()
    members = [member("a@x.com"), {"userData": {"userIdentifiers": [{"emailAddress": "a@x.com"}]}}]
    response = google_call(fake_google, "ingest", google_body(audience, members, consent=CONSENT))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    violations = next(d for d in error["details"] if d["@type"].endswith("BadRequest"))["fieldViolations"]
    assert violations[0]["field"] == "audience_members[1].user_data.user_identifiers[0]"
    assert violations[0]["reason"] == "INVALID_SHA256_FORMAT"
    assert fake_google.audience_members(audience) == set()


def test_google_enforces_the_member_cap_consent_and_hex_encoding(fake_google: FakeGoogleDataManager) -> None:
    audience = fake_google.create_audience()
    many = [member(f"u{i}@x.com") for i in range(10_001)]
    too_many = google_call(fake_google, "ingest", google_body(audience, many, consent=CONSENT))
    assert too_many.status_code == 400
    assert too_many.json()["error"]["details"][0]["reason"] == "TOO_MANY_AUDIENCE_MEMBERS"
    no_consent = google_call(fake_google, "ingest", google_body(audience, [member("a@x.com")]))
    assert no_consent.status_code == 400
    assert no_consent.json()["error"]["details"][0]["reason"] == "REQUIRED_FIELD_MISSING"
    base64_encoded = google_body(audience, [member("a@x.com")], consent=CONSENT, encoding="BASE64")
    assert google_call(fake_google, "ingest", base64_encoded).status_code == 400
    unknown = google_call(fake_google, "ingest", google_body("42", [member("a@x.com")], consent=CONSENT))
    assert unknown.status_code == 400
    fake_google.fail_next(429)
    limited = google_call(fake_google, "ingest", google_body(audience, [member("a@x.com")], consent=CONSENT))
    assert limited.status_code == 429 and limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert fake_google.audience_members(audience) == set()


def test_google_remove_all_as_of_a_time_keeps_members_ingested_since(fake_google: FakeGoogleDataManager) -> None:
    from datetime import UTC, datetime, timedelta

    audience = fake_google.create_audience()
    google_call(
        fake_google, "ingest", google_body(audience, [member("old@x.com"), member("kept@x.com")], consent=CONSENT)
    )
    fake_google.age_members(audience, 3600)  # synced an hour ago
    as_of = datetime.now(UTC) - timedelta(seconds=60)  # T, noted before the new members are ingested
    google_call(
        fake_google, "ingest", google_body(audience, [member("kept@x.com"), member("new@x.com")], consent=CONSENT)
    )
    destinations = google_body(audience, [member("x@x.com")])["destinations"]
    future = google_call(
        fake_google, "removeAll",
        {"destinations": destinations, "removeAsOfTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert future.status_code == 400 and future.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fake_google.audience_members(audience) == {h("old@x.com"), h("kept@x.com"), h("new@x.com")}
    done = google_call(
        fake_google,
        "removeAll",
        {"destinations": destinations, "removeAsOfTime": as_of.isoformat().replace("+00:00", "Z")},
    )
    assert done.status_code == 200 and done.json()["requestId"]
    assert fake_google.audience_members(audience) == {h("kept@x.com"), h("new@x.com")}
    everyone = google_call(fake_google, "removeAll", {"destinations": destinations})  # as of now
    assert everyone.status_code == 200 and fake_google.audience_members(audience) == set()


# ---------------------------------------------------------------------------------------------------------------
# Braze


def braze_track(api: FakeBraze, body: dict, key: str | None = None) -> requests.Response:
    return requests.post(
        f"{api.base_url}/users/track",
        json=body,
        headers={"Authorization": f"Bearer {key or api.api_key}"},
        timeout=TIMEOUT,
    )


def test_braze_refuses_a_wrong_key_and_over_75_objects(fake_braze: FakeBraze) -> None:
    wrong = braze_track(fake_braze, {"attributes": [{"external_id": "u1", "vip": True}]}, key="nope")
    assert wrong.status_code == 401 and "message" in wrong.json()
    attributes = [{"external_id": f"u{i}", "vip": True} for i in range(40)]
    events = [{"external_id": f"u{i}", "name": "synced", "time": "2026-11-01T00:00:00Z"} for i in range(36)]
    too_many = braze_track(fake_braze, {"attributes": attributes, "events": events})
    assert too_many.status_code == 400 and "75" in too_many.json()["message"]
    assert fake_braze.users == {} and fake_braze.events == []
    assert braze_track(fake_braze, {"attributes": attributes, "events": events[:35]}).status_code == 201


def test_braze_partial_errors_inside_a_201_and_idempotent_attributes(fake_braze: FakeBraze) -> None:
    fake_braze.partial_error_for(lambda obj: obj.get("external_id") == "u2")
    body = {"attributes": [{"external_id": "u1", "vip": True}, {"vip": True}, {"external_id": "u2", "vip": True}]}
    response = braze_track(fake_braze, body)
    assert response.status_code == 201
    answer = response.json()
    assert answer["message"] == "success" and answer["attributes_processed"] == 1
    assert [(e["input_array"], e["index"]) for e in answer["errors"]] == [("attributes", 1), ("attributes", 2)]
    assert fake_braze.attribute_members("vip") == {"u1"}
    braze_track(fake_braze, {"attributes": [{"external_id": "u1", "vip": True}]})  # a retry changes nothing
    assert fake_braze.users["u1"] == {"vip": True}
    braze_track(fake_braze, {"attributes": [{"external_id": "u1", "vip": None}]})  # remove: null unsets
    assert fake_braze.attribute_members("vip") == set()
    event = {"external_id": "u1", "name": "synced", "time": "2026-11-01T00:00:00Z"}
    braze_track(fake_braze, {"events": [event]})
    braze_track(fake_braze, {"events": [event]})
    assert len(fake_braze.events) == 2  # events are not idempotent: a retried batch double-counts
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(response.headers)


def test_braze_429_carries_the_reset_header(fake_braze: FakeBraze) -> None:
    fake_braze.fail_next(429)
    response = braze_track(fake_braze, {"attributes": [{"external_id": "u1", "vip": True}]})
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Remaining"] == "0" and int(response.headers["X-RateLimit-Reset"]) > time.time()
    assert fake_braze.users == {}


# ---------------------------------------------------------------------------------------------------------------
# Webhook receiver


def signed(receiver: FakeWebhookReceiver, msg_id: str, payload: dict, *, at: datetime | None = None, secret=None):
    body = json.dumps(payload)
    at = at or datetime.now(UTC)
    signature = Webhook(secret or receiver.secret).sign(msg_id, at, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return requests.post(receiver.url, data=body, headers=headers, timeout=TIMEOUT)


def test_webhook_receiver_verifies_signatures_and_dedups_by_id(fake_webhook: FakeWebhookReceiver) -> None:
    assert signed(fake_webhook, "msg_1", {"audience": "vip", "members": ["u1"]}).status_code == 200
    again = signed(fake_webhook, "msg_1", {"audience": "vip", "members": ["u1"]})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert fake_webhook.payloads() == [{"audience": "vip", "members": ["u1"]}] and fake_webhook.duplicates == 1
    other_secret = "whsec_" + base64.b64encode(b"someone-else-entirely-32-bytes!!").decode()
    assert signed(fake_webhook, "msg_2", {"x": 1}, secret=other_secret).status_code == 401
    stale = signed(fake_webhook, "msg_3", {"x": 1}, at=datetime.now(UTC) - timedelta(minutes=6))
    assert stale.status_code == 401
    unsigned = requests.post(fake_webhook.url, json={"x": 1}, timeout=TIMEOUT)
    assert unsigned.status_code == 401
    assert list(fake_webhook.deliveries) == ["msg_1"] and fake_webhook.rejected_signatures == 3
