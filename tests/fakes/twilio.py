"""A local Twilio Programmable Messaging API that keeps the documented contract.

Contract (../shared/reference/destinations.md, Twilio's Message resource reference and error dictionary):
- HTTP Basic `AccountSid:AuthToken`; anything else is 401 with error 20003. The path's account must be the
  authenticated one (else 20003 as well).
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded `To` (E.164), `From` or
  `MessagingServiceSid`, `Body` (at most 1,600 characters), optional `StatusCallback`.
  Answer **201** with the message JSON (`sid` "SM…", `status` "queued", `num_segments`, `error_code` null, …).
- Errors are `{"code","message","more_info","status"}`: 21604/21603/21602 a missing To/From/Body (400),
  21617 a body over 1,600 characters, 21211 an invalid `To` (not E.164, or marked with `mark_invalid`),
  21610 a recipient who replied STOP (`mark_stopped`), 20429 too many requests (HTTP 429, nothing sent).
- `reject_record(predicate)` (on the form fields) and `fail_next(400)` answer 21408, a permanent refusal of
  that recipient that is not a suppression code.
- There is no idempotency key: every accepted POST is one more message (`messages`), duplicates included.
- `GET …/Messages.json?To=&From=&DateSent>=YYYY-MM-DD&DateSent<=…&PageSize=&Page=` lists sent messages,
  newest first, in pages (`messages`, `next_page_uri`, …) so a sender can reconcile after a crash;
  `GET …/Messages/{sid}.json` fetches one.

State for assertions: `messages` (every accepted message, oldest first), `messages_to(number)`.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from .base import FakeServer, RecordedRequest, Reply

MAX_BODY_CHARS = 1_600
MAX_PAGE_SIZE = 1_000
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

ERRORS = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    21211: (400, "Invalid 'To' Phone Number"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}


def error_reply(code: int, status: int | None = None) -> Reply:
    http_status, message = ERRORS.get(code, (status or 400, "Error"))
    http_status = status or http_status
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": http_status,
    }
    return Reply(http_status, body)


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the API shows it (without the fake's private bookkeeping)."""
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _segments(body: str) -> int:
    """GSM-7 single part holds 160 characters, concatenated parts 153; UCS-2 70 and 67."""
    gsm = all(ord(ch) < 128 for ch in body)
    single, part = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / part)


class FakeTwilio(FakeServer):
    vendor = "Twilio"

    def __init__(self, account_sid: str | None = None, auth_token: str = "test-auth-token") -> None:
        super().__init__()
        self.account_sid = account_sid or "AC" + uuid.uuid4().hex
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []
        self.stopped: set[str] = set()
        self.invalid: set[str] = set()

    # ---- setup and assertions --------------------------------------------------------------------------

    def mark_stopped(self, number: str) -> None:
        """The recipient replied STOP: sends to it fail with 21610 until `mark_started`."""
        with self.lock:
            self.stopped.add(number)

    def mark_started(self, number: str) -> None:
        with self.lock:
            self.stopped.discard(number)

    def mark_invalid(self, number: str) -> None:
        """A well-formed number Twilio cannot route (e.g. a landline): 21211."""
        with self.lock:
            self.invalid.add(number)

    def messages_to(self, number: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if m["to"] == number]

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    # ---- base hooks ------------------------------------------------------------------------------------

    def fault_reply(self, status: int) -> Reply:
        if status == 429:
            return error_reply(20429)
        if status >= 500:
            return error_reply(20500, status)
        if status == 401:
            return error_reply(20003)
        if status == 404:
            return error_reply(20404)
        return error_reply(21408 if status == 400 else status, status)  # a refusal, not a suppression code

    # ---- routes ------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Reply:
        if not self._authenticated(request):
            return error_reply(20003)
        m = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages(?:/([^/]+))?\.json", request.path)
        if m is None:
            return error_reply(20404)
        if m.group(1) != self.account_sid:
            return error_reply(20003)
        sid = m.group(2)
        if sid is None and request.method == "POST":
            return self._create(request)
        if sid is None and request.method == "GET":
            return self._list(request)
        if sid is not None and request.method == "GET":
            found = next((msg for msg in self.messages if msg["sid"] == sid), None)
            return Reply(200, _public(found)) if found else error_reply(20404)
        return Reply(405, {"code": 20004, "message": "Method not allowed", "status": 405})

    def _authenticated(self, request: RecordedRequest) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def _create(self, request: RecordedRequest) -> Reply:
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return error_reply(21604)  # Twilio reads form fields only: a JSON body has no `To`
        form = {k: v[0] for k, v in request.form().items()}
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body = form.get("Body")
        if not to:
            return error_reply(21604)
        if not sender and not service:
            return error_reply(21603)
        if not body and not form.get("MediaUrl"):
            return error_reply(21602)
        if body and len(body) > MAX_BODY_CHARS:
            return error_reply(21617)
        if not _E164.match(to) or to in self.invalid:
            return error_reply(21211)
        if to in self.stopped:
            return error_reply(21610)
        if self.rejected([form]):
            return error_reply(21408)
        now = datetime.now(UTC)
        sid = "SM" + uuid.uuid4().hex
        message = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": to,
            "from": sender,
            "messaging_service_sid": service,
            "body": body or "",
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": str(_segments(body or "")),
            "num_media": "1" if form.get("MediaUrl") else "0",
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "date_created": format_datetime(now),
            "date_updated": format_datetime(now),
            "date_sent": None,
            "uri": f"{self.messages_path[:-5]}/{sid}.json",
            "subresource_uris": {"media": f"{self.messages_path[:-5]}/{sid}/Media.json"},
        }
        answer = dict(message)
        # The fake hands the message to the carrier at once: what a later listing shows is a sent message.
        message.update(status="sent", date_sent=format_datetime(now), _sent_at=now)
        self.messages.append(message)
        return Reply(201, answer)

    def _list(self, request: RecordedRequest) -> Reply:
        try:
            page_size = int(request.param("PageSize") or 50)
            page = int(request.param("Page") or 0)
            bounds = self._date_sent_bounds(request)
        except ValueError as exc:
            return Reply(400, {"code": 20001, "message": str(exc), "status": 400})
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
            return Reply(400, {"code": 20001, "message": "Invalid PageSize or Page", "status": 400})
        selected = [
            m
            for m in reversed(self.messages)  # newest first, as Twilio lists
            if (request.param("To") is None or m["to"] == request.param("To"))
            and (request.param("From") is None or m["from"] == request.param("From"))
            and all(test(m["_sent_at"].date()) for test in bounds)
        ]
        chunk = selected[page * page_size : (page + 1) * page_size]
        filters = {k: v[0] for k, v in request.query.items() if k not in ("Page", "PageSize", "PageToken")}

        def page_uri(number: int) -> str:
            return f"{self.messages_path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        has_next = (page + 1) * page_size < len(selected)
        return Reply(
            200,
            {
                "messages": [_public(m) for m in chunk],
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "end": page * page_size + max(len(chunk) - 1, 0),
                "uri": page_uri(page),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if has_next else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            },
        )

    @staticmethod
    def _date_sent_bounds(request: RecordedRequest) -> list:
        """Twilio's DateSent filters: `DateSent=`, `DateSent>=` and `DateSent<=` with a YYYY-MM-DD date (the
        `>`/`<` arrive as part of the parameter name: `DateSent>=2026-11-01` parses as name `DateSent>`)."""
        tests = []
        for name, values in request.query.items():
            if not name.startswith("DateSent"):
                continue
            op = name[len("DateSent") :]
            try:
                day = datetime.strptime(values[0], "%Y-%m-%d").date()
            except ValueError:
                raise ValueError(f"DateSent must be a date as YYYY-MM-DD, got {values[0]!r}") from None
            if op == "":
                tests.append(lambda d, day=day: d == day)
            elif op == ">":
                tests.append(lambda d, day=day: d >= day)
            elif op == "<":
                tests.append(lambda d, day=day: d <= day)
            else:
                raise ValueError(f"unknown filter {name!r}")
        return tests
