"""The HTTP client every destination shares: what it retries, how long it waits, what it never says."""

from __future__ import annotations

import email.utils
import socket

import pytest
from fakes.sendgrid import FakeSendGrid
from fakes.twilio import FakeTwilio

from senders.destinations.base import AmbiguousDelivery, DestinationError, RejectedBatch
from senders.http import HttpClient, RetryPolicy

NOW = 1_800_000_000.0


class Waits(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(api, waits, **policy) -> HttpClient:
    return HttpClient(
        api.base_url,
        {"Authorization": f"Bearer {api.api_key}"},
        RetryPolicy(**{"max_retries": 3, "base_delay": 0.5, "max_delay": 4, "timeout": 2, **policy}),
        waits,
        clock=lambda: NOW,
    )


def test_retry_after_in_seconds_and_as_an_http_date():
    with FakeSendGrid() as api:
        waits = Waits()
        http = client(api, waits)
        api.fail_next(503, headers={"Retry-After": "7"})
        api.fail_next(503, headers={"Retry-After": email.utils.formatdate(NOW + 12, usegmt=True)})
        assert http.request("POST", "/v3/marketing/lists", json={"name": "x"}).status_code == 201
        assert waits == [7.0, 12.0] and http.retries == 2


def test_x_ratelimit_reset_on_429_and_capped_jittered_backoff_otherwise():
    with FakeSendGrid() as api:
        waits = Waits()
        http = client(api, waits)
        api.fail_next(429, headers={"X-RateLimit-Reset": str(int(NOW + 30))})
        api.fail_next(500, times=2)
        http.request("POST", "/v3/marketing/lists", json={"name": "x"})
        assert waits[0] == 30.0
        assert 0 <= waits[1] <= 1.0 and 0 <= waits[2] <= 2.0  # full jitter under base * 2**attempt


def test_gives_up_after_the_last_retry():
    with FakeSendGrid() as api:
        waits = Waits()
        api.fail_next(500, times=10)
        with pytest.raises(DestinationError, match=r"HTTP 500.*after 3 retries"):
            client(api, waits).request("POST", "/v3/marketing/lists", json={"name": "x"})
        assert len(api.requests) == 4


def test_no_retry_on_auth_errors_and_400_is_a_rejected_batch_without_pii():
    with FakeSendGrid() as api:
        waits = Waits()
        http = client(api, waits)
        api.fail_next(401)
        with pytest.raises(DestinationError, match="HTTP 401: authorization required"):
            http.request("GET", "/v3/marketing/lists/x")
        api.fail_next(
            400, body={"errors": [{"field": "email", "message": "bad address ann@example.com, +44 7946 000000"}]}
        )
        with pytest.raises(RejectedBatch) as rejected:
            http.request("PUT", "/v3/marketing/contacts", json={})
        assert "example.com" not in str(rejected.value) and "7946" not in str(rejected.value)
        assert "<redacted>" in str(rejected.value)
        assert waits == [] and len(api.requests) == 2


def test_connection_refused_is_retried():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the socket closes
    waits = Waits()
    http = HttpClient(f"http://127.0.0.1:{port}", {}, RetryPolicy(max_retries=2, timeout=1), waits)
    with pytest.raises(DestinationError, match=r"ConnectionError.*after 2 retries"):
        http.request("GET", "/")
    assert len(waits) == 2


def test_a_non_idempotent_post_is_never_blindly_retried():
    with FakeTwilio() as api:
        import base64

        auth = base64.b64encode(f"{api.account_sid}:{api.auth_token}".encode()).decode()
        http = HttpClient(api.base_url, {"Authorization": f"Basic {auth}"}, RetryPolicy(timeout=1), Waits())
        form = {"To": "+447900000001", "From": "+15005550006", "Body": "hi"}
        api.fail_next(429)  # 20429: never processed, retried
        api.drop_connection_after_accept()
        with pytest.raises(AmbiguousDelivery):
            http.request("POST", api.messages_path, data=form, idempotent=False)
        assert len(api.messages) == 1  # sent once, and not again by the client
        api.fail_next(500)
        with pytest.raises(AmbiguousDelivery):
            http.request("POST", api.messages_path, data=form, idempotent=False)
        assert len(api.requests_to("POST")) == 3
