"""One HTTP client for every destination: retries only what is safe to retry, and nothing else.

Retried: 429, 5xx, timeouts and connection errors, with capped exponential backoff and full jitter
(AWS Architecture Blog, "Exponential Backoff and Jitter"), honouring `Retry-After` (seconds or an HTTP
date) and `X-RateLimit-Reset` (epoch seconds). A 400/422 raises `RejectedBatch` so the engine can split
the batch and isolate the bad record; other 4xx (auth, not found) raise `DestinationError` at once.
Request bodies and headers are never logged or put into an exception: they hold PII and secrets.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from senders.destinations.base import AmbiguousDelivery, DestinationError, RejectedBatch

log = logging.getLogger(__name__)

# Anything that looks like an email address or a phone number is masked in error messages.
_PII = re.compile(r"[^\s\"',;:<>()\[\]]+@[^\s\"',;:<>()\[\]]+|\+?\d[\d\s().-]{6,}\d")


def scrub(text: str) -> str:
    return _PII.sub("<redacted>", text)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 0.5  # seconds; attempt n waits up to base * 2**n
    max_delay: float = 30.0  # cap of one backoff wait
    max_server_wait: float = 300.0  # cap of a wait the server asks for (Retry-After, X-RateLimit-Reset)
    timeout: float = 30.0  # seconds per request (connect and read)


def error_message(response: requests.Response) -> str:
    """The vendor's error text without PII: SendGrid/Meta/Twilio/Google shapes, else the status line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    messages: list[str] = []
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list):
            messages += [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"]]
        error = body.get("error")
        if isinstance(error, dict):
            messages.append(str(error.get("message", "")))
        elif isinstance(error, str):
            messages.append(error)
        if body.get("message") and not messages:
            messages.append(str(body["message"]))
        if body.get("code") is not None:
            messages.insert(0, f"code {body['code']}")
    text = "; ".join(m for m in messages if m) or f"HTTP {response.status_code}"
    return scrub(f"HTTP {response.status_code}: {text}")[:500]


class HttpClient:
    def __init__(
        self,
        base_url: str,
        auth_headers: Mapping[str, str],
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        auth: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.retries = 0  # requests repeated after a retryable failure, over the client's life
        self.session = requests.Session()
        self.session.headers.update(auth_headers)
        self.session.auth = auth
        # A vendor whose throttling is not a 429 (Meta: HTTP 400 with error code 80004) sets this: given an
        # error response, the seconds to wait before retrying (0: the usual backoff), or None if not retryable.
        self.retry_hint: Callable[[requests.Response], float | None] | None = None

    def _url(self, path: str) -> str:
        if not path:
            return self.base_url
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _server_wait(self, response: requests.Response) -> float | None:
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            try:
                return float(retry_after)
            except ValueError:
                when = email.utils.parsedate_to_datetime(retry_after)
                if when is not None:
                    return when.timestamp() - self.clock()
        reset = response.headers.get("X-RateLimit-Reset")
        if reset and response.status_code == 429:
            try:
                return float(reset) - self.clock()
            except ValueError:
                return None
        return None

    def _backoff(self, attempt: int, response: requests.Response | None) -> None:
        wait = self._server_wait(response) if response is not None else None
        if wait is None:
            wait = random.uniform(0, min(self.policy.max_delay, self.policy.base_delay * 2**attempt))
        wait = min(max(wait, 0.0), self.policy.max_server_wait)
        self.retries += 1
        self.sleep(wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one request with retries. With idempotent=False (a POST that delivers a message), only
        failures that prove nothing was processed are retried (429, 503, connect errors); a read timeout,
        a dropped connection or another 5xx raise AmbiguousDelivery for the caller to reconcile."""
        url = self._url(path)
        label = f"{method} {path.split('?')[0]}"
        for attempt in range(self.policy.max_retries + 1):
            last = attempt == self.policy.max_retries
            try:
                response = self.session.request(
                    method, url, json=json, data=data, params=params, headers=headers, timeout=self.policy.timeout
                )
            except requests.ConnectTimeout as exc:
                problem = f"{label}: connect timeout ({type(exc).__name__})"
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = f"{label}: {type(exc).__name__}"
                refused = isinstance(exc, requests.ConnectionError) and "refused" in str(exc).lower()
                if not idempotent and not refused:
                    raise AmbiguousDelivery(f"{problem}: the request may have been accepted") from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                hint = self.retry_hint(response) if self.retry_hint is not None else None
                if hint is not None:
                    problem = f"{label}: {error_message(response)}"
                    if last:
                        raise DestinationError(f"{problem} (after {attempt} retries)")
                    log.warning("%s; throttled, retrying (attempt %d)", problem, attempt + 1)
                    self.retries += 1
                    backoff = random.uniform(0, min(self.policy.max_delay, self.policy.base_delay * 2**attempt))
                    self.sleep(min(max(hint, backoff), self.policy.max_server_wait))
                    continue
                if status in (400, 422):
                    raise RejectedBatch(f"{label}: {error_message(response)}")
                retryable = status == 429 or status >= 500
                if not retryable:
                    raise DestinationError(f"{label}: {error_message(response)}")
                if not idempotent and status not in (429, 503):
                    raise AmbiguousDelivery(f"{label}: {error_message(response)}; the request may have been accepted")
                problem = f"{label}: {error_message(response)}"
                if last:
                    raise DestinationError(f"{problem} (after {attempt} retries)")
                log.warning("%s; retrying (attempt %d)", problem, attempt + 1)
                self._backoff(attempt, response)
                continue
            if last:
                raise DestinationError(f"{problem} (after {attempt} retries)")
            log.warning("%s; retrying (attempt %d)", problem, attempt + 1)
            self._backoff(attempt, None)
        raise AssertionError("unreachable")
