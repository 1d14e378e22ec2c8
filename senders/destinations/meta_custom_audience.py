"""`meta_custom_audience`: members added to and removed from a Meta Custom Audience.

`POST /v{N}/{audience_id}/users` adds and `DELETE` removes, `payload={"schema":[...],"data":[[...]]}`, at
most 10,000 rows a request, `access_token` from the connection's password. Identifiers are normalised the way
Meta documents (senders/normalise.py) and SHA-256 hashed before they leave: email, phone (digits with
country code, no `+`), first and last name, city, country; `user_id` goes unhashed as EXTERN_ID.

A 200 can carry `num_invalid_entries`: those rows were not matched, and Meta does not say which (its
`invalid_entry_samples` echo identifiers and are never logged), so they count as unattributed failures.
Throttling is an HTTP 400 with error code 17, 613, 80003 or 80004: retried with the wait Meta's
`X-Business-Use-Case-Usage` header gives, not split as a bad batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

import requests

from senders.destinations.base import BatchOutcome, Destination, Member

SCHEMA = {
    "email": "EMAIL",
    "phone": "PHONE",
    "first_name": "FN",
    "last_name": "LN",
    "city": "CT",
    "country": "COUNTRY",
    "user_id": "EXTERN_ID",
}
THROTTLING_CODES = {4, 17, 32, 613, 80003, 80004}


def throttle_wait(response: requests.Response) -> float | None:
    """Seconds to wait when Meta says it throttled the call (whatever the HTTP status), else None."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return None
    if error.get("code") not in THROTTLING_CODES:
        return None
    try:
        usage = json.loads(response.headers.get("X-Business-Use-Case-Usage") or "{}")
        minutes = max(
            float(e.get("estimated_time_to_regain_access") or 0) for entries in usage.values() for e in entries
        )
    except (ValueError, TypeError, AttributeError):
        minutes = 0.0
    return minutes * 60


class MetaCustomAudience(Destination):
    kind: ClassVar[str] = "meta_custom_audience"
    max_batch_rows: ClassVar[int] = 10_000
    supports_remove: ClassVar[bool] = True
    modes: ClassVar[tuple[str, ...]] = ("mirror", "upsert")
    default_channel: ClassVar[str] = "ads"
    required_options: ClassVar[tuple[str, ...]] = ("audience_id",)
    optional_options: ClassVar[tuple[str, ...]] = ("api_version",)
    identifier_fields: ClassVar[tuple[str, ...]] = ("email", "phone", "user_id")
    default_base_url: ClassVar[str] = "https://graph.facebook.com"

    def __init__(self, audience, credentials, http, run) -> None:
        super().__init__(audience, credentials, http, run)
        if http is not None:
            http.retry_hint = throttle_wait

    @classmethod
    def check_audience(cls, audience) -> str | None:
        unmapped = [f for f in audience.fields if f not in SCHEMA]
        if unmapped:
            return f"field 'fields' has {unmapped}, which Meta cannot match on; allowed: {', '.join(SCHEMA)}"
        return None

    def columns(self, method: str) -> list[str]:
        """Adds carry every field (more keys, better match rates); removals only the identifiers, since a
        shared first name or country must never take other people out of the audience."""
        if method == "DELETE":
            return [f for f in self.audience.fields if f in self.audience.identifiers]
        return list(self.audience.fields)

    def row(self, member: Member, columns: list[str]) -> list[str] | None:
        """The member's hashed row, or None when no identifier survives normalisation."""
        from senders import normalise

        cleaners = {
            "email": normalise.email,
            "phone": normalise.phone_meta,
            "first_name": normalise.name_meta,
            "last_name": normalise.name_meta,
            "city": normalise.name_meta,
            "country": normalise.country_meta,
        }
        values = []
        for name in columns:
            if name == "user_id":
                values.append(member.user_id)
                continue
            try:
                clean = cleaners[name](member.fields.get(name))
            except normalise.NormalisationError:
                clean = None  # one bad field does not stop matching on the others
            values.append(normalise.sha256_hex(clean) if clean else "")
        identifying = [v for name, v in zip(columns, values, strict=True) if name in self.audience.identifiers]
        return values if any(identifying) else None

    def batch_size_bytes(self, members: Sequence[Member]) -> int:
        return len(members) * (67 * len(self.audience.fields) + 4)

    def call(self, method: str, members: Sequence[Member]) -> BatchOutcome:
        version = self.audience.options.get("api_version", "v21.0")
        columns = self.columns(method)
        rows, sent, rejected = [], [], {}
        for member in members:
            row = self.row(member, columns)
            if row is None:
                rejected[member.user_id] = "no identifier that normalises (Meta's rules)"
            else:
                rows.append(row)
                sent.append(member.user_id)
        invalid = 0
        if rows:
            body = {
                "payload": {"schema": [SCHEMA[c] for c in columns], "data": rows},
                "access_token": self.credentials.get("password", ""),
            }
            path = f"/{version}/{self.audience.options['audience_id']}/users"
            answer = self.http.request(method, path, json=body).json()
            invalid = int(answer.get("num_invalid_entries") or 0)
        return BatchOutcome(accepted=sent, rejected=rejected, unattributed_failures=invalid)

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        return self.call("POST", members)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        return self.call("DELETE", members)
