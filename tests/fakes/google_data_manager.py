"""A local Google Data Manager API (audience members) that keeps the documented contract.

Contract (../shared/reference/destinations.md, Data Manager API reference for `audienceMembers.ingest`,
`audienceMembers.remove`, `ErrorReason` and its limits page):
- `POST /v1/audienceMembers:ingest` and `POST /v1/audienceMembers:remove`, `Authorization: Bearer <token>`;
  anything else is 401 `UNAUTHENTICATED`. Errors are google.rpc.Status:
  `{"error":{"code","message","status","details":[{"@type":"…ErrorInfo","reason",…},{"@type":"…BadRequest",
  "fieldViolations":[{"field","description","reason"}]}]}}`.
- Body `{"destinations":[{"operatingAccount":{"accountType","accountId"},"productDestinationId"}],
  "audienceMembers":[{"userData":{"userIdentifiers":[{"emailAddress":h},{"phoneNumber":h}]}}],
  "consent":{"adUserData","adPersonalization"},"encoding":"HEX","validateOnly":false}`.
  At most 10,000 members (`TOO_MANY_AUDIENCE_MEMBERS`), 10 identifiers a member, 10 destinations. With
  `encoding: HEX` every identifier is a SHA-256 as 64 hex characters (`INVALID_SHA256_FORMAT`); the whole
  request is refused with a field violation naming `audience_members[i]…` (no partial apply).
  Ingest needs consent (request-level or per member): this fake refuses an ingest without it
  (`REQUIRED_FIELD_MISSING`), as Google does for EEA users; members with `adUserData: CONSENT_DENIED` are
  accepted but do not join the audience.
- `POST /v1/audienceMembers:removeAll` `{"destinations":[...],"removeAsOfTime":"<RFC 3339>","validateOnly"}`
  removes the members *last added* before `removeAsOfTime` (default: now; a time in the future is refused):
  Google's documented replace is "note T, ingest the new members, then removeAll as of T", so a member
  ingested (again) after T stays and the list is never empty meanwhile. The fake keeps each member's
  last-added time for that.
- Answer 200 `{"requestId"}`; `GET /v1/requestStatus:retrieve?requestId=` reports it.
- Rate limit: 429 `RESOURCE_EXHAUSTED`.

State for assertions: `audience_members(destination_id, key="emailAddress")` (set of hashes);
`age_members(destination_id, seconds)` moves every member's last-added time back (members from an earlier day).
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from typing import Any

from .base import FakeServer, RecordedRequest, Reply, bearer_token, json_body

MAX_MEMBERS = 10_000
MAX_IDENTIFIERS = 10
MAX_DESTINATIONS = 10
IDENTIFIER_KEYS = ("emailAddress", "phoneNumber", "address")
CONSENT_VALUES = {"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"}
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(code: int, message: str, reason: str, violations: list[dict[str, str]] | None = None) -> Reply:
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "datamanager.googleapis.com"}
    ]
    if violations:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations})
    status = _STATUS.get(code, "UNKNOWN")
    return Reply(code, {"error": {"code": code, "message": message, "status": status, "details": details}})


class FakeGoogleDataManager(FakeServer):
    vendor = "Google Data Manager"

    def __init__(self, access_token: str = "ya29.test-token") -> None:
        super().__init__()
        self.access_token = access_token
        # productDestinationId -> {member key: (identifiers (key -> hash), last added, epoch seconds)}
        self.audiences: dict[str, dict[tuple, tuple[dict[str, str], float]]] = {}
        self.request_status: dict[str, dict[str, Any]] = {}

    # ---- setup and assertions --------------------------------------------------------------------------

    def create_audience(self) -> str:
        with self.lock:
            audience_id = str(9_000_000_000 + len(self.audiences) + 1)
            self.audiences[audience_id] = {}
            return audience_id

    def audience_members(self, audience_id: str, key: str = "emailAddress") -> set[str]:
        with self.lock:
            return {m[key] for m, _ in self.audiences[audience_id].values() if m.get(key)}

    def age_members(self, audience_id: str, seconds: float) -> None:
        with self.lock:
            members = self.audiences[audience_id]
            for key, (keyed, added) in members.items():
                members[key] = (keyed, added - seconds)

    # ---- base hooks ------------------------------------------------------------------------------------

    def fault_reply(self, status: int) -> Reply:
        messages = {
            429: ("Quota exceeded for quota metric 'Ingestion requests'", "RESOURCE_EXHAUSTED"),
            401: ("Request had invalid authentication credentials.", "ACCESS_TOKEN_EXPIRED"),
        }
        message, reason = messages.get(status, (f"The service returned {status}.", _STATUS.get(status, "UNKNOWN")))
        reply = google_error(status, message, reason)
        if status == 429:
            reply.headers["Retry-After"] = "1"
        return reply

    # ---- routes ------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Reply:
        if bearer_token(request) != self.access_token:
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            )
        if request.method == "POST" and request.path == "/v1/audienceMembers:ingest":
            return self._change(request, ingest=True)
        if request.method == "POST" and request.path == "/v1/audienceMembers:remove":
            return self._change(request, ingest=False)
        if request.method == "POST" and request.path == "/v1/audienceMembers:removeAll":
            return self._remove_all(request)
        if request.method == "GET" and request.path == "/v1/requestStatus:retrieve":
            status = self.request_status.get(request.param("requestId") or "")
            if status is None:
                return google_error(404, "Request not found.", "NOT_FOUND")
            return Reply(200, status)
        return google_error(404, f"The requested URL {request.path} was not found.", "NOT_FOUND")

    def _change(self, request: RecordedRequest, *, ingest: bool) -> Reply:
        try:
            body = json_body(request)
        except ValueError as exc:
            return google_error(400, str(exc), "INVALID_ARGUMENT")
        if not isinstance(body, dict):
            return google_error(400, "The request body must be a JSON object.", "INVALID_ARGUMENT")
        violations: list[dict[str, str]] = []

        def violation(field: str, reason: str, description: str) -> None:
            violations.append({"field": field, "reason": reason, "description": description})

        destinations = body.get("destinations")
        members = body.get("audienceMembers")
        if not isinstance(destinations, list) or not destinations:
            violation("destinations", "REQUIRED_FIELD_MISSING", "At least one destination is required.")
            destinations = []
        elif len(destinations) > MAX_DESTINATIONS:
            violation("destinations", "TOO_MANY_DESTINATIONS", "At most 10 destinations are allowed.")
        if not isinstance(members, list) or not members:
            violation("audience_members", "REQUIRED_FIELD_MISSING", "At least one audience member is required.")
            members = []
        elif len(members) > MAX_MEMBERS:
            return google_error(
                400,
                f"Maximum number of audience members allowed per request is {MAX_MEMBERS:,}.",
                "TOO_MANY_AUDIENCE_MEMBERS",
                [
                    {
                        "field": "audience_members",
                        "reason": "TOO_MANY_AUDIENCE_MEMBERS",
                        "description": f"{len(members)} members sent.",
                    }
                ],
            )
        targets: list[str] = []
        for i, destination in enumerate(destinations):
            product_id = destination.get("productDestinationId") if isinstance(destination, dict) else None
            account = destination.get("operatingAccount") if isinstance(destination, dict) else None
            if not isinstance(account, dict) or not account.get("accountId"):
                violation(
                    f"destinations[{i}].operating_account",
                    "REQUIRED_FIELD_MISSING",
                    "operatingAccount with an accountId is required.",
                )
            if product_id not in self.audiences:
                violation(
                    f"destinations[{i}].product_destination_id", "INVALID_DESTINATION", "This Destination is not valid."
                )
            else:
                targets.append(product_id)
        encoding = body.get("encoding")
        if encoding != "HEX":
            # The fake speaks only the encoding Rekindle sends; Google also takes BASE64.
            violation("encoding", "INVALID_ENUM_VALUE", "encoding must be HEX for hashed user data.")
        request_consent = body.get("consent")
        consent_problem = self._consent_problem(request_consent)
        if consent_problem:
            violation("consent", "INVALID_ENUM_VALUE", consent_problem)
        parsed: list[tuple[dict[str, str], bool]] = []  # identifiers, consented
        for i, member in enumerate(members):
            identifiers = (
                ((member or {}).get("userData") or {}).get("userIdentifiers") if isinstance(member, dict) else None
            )
            if not isinstance(identifiers, list) or not identifiers:
                violation(
                    f"audience_members[{i}].user_data",
                    "REQUIRED_FIELD_MISSING",
                    "userData.userIdentifiers is required.",
                )
                continue
            if len(identifiers) > MAX_IDENTIFIERS:
                violation(
                    f"audience_members[{i}].user_data.user_identifiers",
                    "TOO_MANY_USER_IDENTIFIERS",
                    "Maximum number of user identifiers allowed per audience member is 10.",
                )
                continue
            keyed: dict[str, str] = {}
            for j, identifier in enumerate(identifiers):
                field = f"audience_members[{i}].user_data.user_identifiers[{j}]"
                if (
                    not isinstance(identifier, dict)
                    or len(identifier) != 1
                    or next(iter(identifier)) not in IDENTIFIER_KEYS
                ):
                    violation(
                        field,
                        "INVALID_FORMAT",
                        "Each identifier sets exactly one of emailAddress, phoneNumber, address.",
                    )
                    continue
                key, value = next(iter(identifier.items()))
                if key == "address":
                    continue  # accepted, not matched on by this fake
                if not isinstance(value, str) or not _HEX_SHA256.match(value):
                    violation(field, "INVALID_SHA256_FORMAT", "The SHA256 encoded value is malformed.")
                    continue
                keyed[key] = value.lower()
            member_consent = member.get("consent")
            problem = self._consent_problem(member_consent)
            if problem:
                violation(f"audience_members[{i}].consent", "INVALID_ENUM_VALUE", problem)
            consent = member_consent or request_consent
            if ingest and not consent:
                violation(
                    f"audience_members[{i}].consent",
                    "REQUIRED_FIELD_MISSING",
                    "Consent (adUserData, adPersonalization) is required, on the request or the member.",
                )
            granted = bool(consent) and consent.get("adUserData") == "CONSENT_GRANTED"
            parsed.append((keyed, granted))
        rejected = self.rejected(members)
        for i in rejected:
            violation(f"audience_members[{i}]", "INVALID_AUDIENCE_MEMBER", "This audience member is not valid.")
        if violations:
            return google_error(400, "There was a problem with the request.", violations[0]["reason"], violations)
        request_id = str(uuid.uuid4())
        if not body.get("validateOnly"):
            now = time.time()
            for target in targets:
                audience = self.audiences[target]
                if ingest:  # a member ingested again is "last added" now
                    for keyed, granted in parsed:
                        if keyed and granted:
                            audience[tuple(sorted(keyed.items()))] = (keyed, now)
                else:  # a removed member takes out everyone it matches on any identifier
                    gone = {(k, v) for keyed, _ in parsed for k, v in keyed.items()}
                    for key in [key for key in audience if any(pair in gone for pair in key)]:
                        del audience[key]
        self.request_status[request_id] = {
            "requestStatusPerDestination": [
                {
                    "destination": {"productDestinationId": target},
                    "requestStatus": "SUCCESS",
                    "audienceMembersIngestionStatus" if ingest else "audienceMembersRemovalStatus": {
                        "userDataIngestionStatus" if ingest else "userDataRemovalStatus": {
                            "recordCount": str(len(parsed)),
                            "userIdentifierCount": str(sum(len(k) for k, _ in parsed)),
                        }
                    },
                }
                for target in targets
            ]
        }
        return Reply(200, {"requestId": request_id})

    def _remove_all(self, request: RecordedRequest) -> Reply:
        try:
            body = json_body(request)
        except ValueError as exc:
            return google_error(400, str(exc), "INVALID_ARGUMENT")
        destinations = body.get("destinations") if isinstance(body, dict) else None
        if not isinstance(destinations, list) or not destinations:
            return google_error(
                400,
                "There was a problem with the request.",
                "REQUIRED_FIELD_MISSING",
                [{"field": "destinations", "reason": "REQUIRED_FIELD_MISSING", "description": "Required."}],
            )
        targets = [d.get("productDestinationId") if isinstance(d, dict) else None for d in destinations]
        for i, target in enumerate(targets):
            if target not in self.audiences:
                return google_error(
                    400,
                    "There was a problem with the request.",
                    "INVALID_DESTINATION",
                    [
                        {
                            "field": f"destinations[{i}].product_destination_id",
                            "reason": "INVALID_DESTINATION",
                            "description": "This Destination is not valid.",
                        }
                    ],
                )
        now = time.time()
        raw = body.get("removeAsOfTime")
        as_of = now
        if raw is not None:
            try:
                when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
                if when.tzinfo is None:
                    raise ValueError("RFC 3339 needs an offset")
                as_of = when.timestamp()
            except ValueError:
                return google_error(
                    400,
                    "There was a problem with the request.",
                    "INVALID_ARGUMENT",
                    [{"field": "remove_as_of_time", "reason": "INVALID_ARGUMENT", "description": "Not RFC 3339."}],
                )
            if as_of > now + 1:  # a second's grace for clocks, as any server allows
                return google_error(
                    400,
                    "There was a problem with the request.",
                    "INVALID_ARGUMENT",
                    [
                        {
                            "field": "remove_as_of_time",
                            "reason": "INVALID_ARGUMENT",
                            "description": "The remove as of time must not be in the future.",
                        }
                    ],
                )
        request_id = str(uuid.uuid4())
        if not body.get("validateOnly"):
            for target in targets:
                audience = self.audiences[target]
                for key in [key for key, (_, added) in audience.items() if added < as_of]:
                    del audience[key]
        self.request_status[request_id] = {
            "requestStatusPerDestination": [
                {"destination": {"productDestinationId": t}, "requestStatus": "SUCCESS"} for t in targets
            ]
        }
        return Reply(200, {"requestId": request_id})

    @staticmethod
    def _consent_problem(consent: Any) -> str | None:
        if consent is None:
            return None
        if not isinstance(consent, dict):
            return "consent must be an object."
        for key in ("adUserData", "adPersonalization"):
            if key in consent and consent[key] not in CONSENT_VALUES:
                return f"consent.{key} must be one of {sorted(CONSENT_VALUES)}."
        return None
