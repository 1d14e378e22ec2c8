"""`meta_custom_audience`: members added to and removed from a Meta Custom Audience.

`POST /v{N}/{audience_id}/users` adds and `DELETE` removes, `payload={"schema":[...],"data":[[...]]}`, at
most 10,000 rows a request, `access_token` from the connection's password. Identifiers are normalised the way
Meta documents (senders/normalise.py) and SHA-256 hashed before they leave: email, phone (digits with
country code, no `+`), first and last name, city, country; `user_id` goes unhashed as EXTERN_ID.

The hashes of the identifiers sent (email, phone) are reported to the engine, which keeps them in sync_state:
removals send those stored hashes (the member's profile may have changed or gone since), with the user id as
EXTERN_ID when it is an identifier.

Replace (`usersreplace`): one session per replace, `session={"session_id","batch_seq","last_batch_flag",
"estimated_num_total"}`, batches numbered from 1 in order; Meta keeps the old audience live until the batch
flagged last arrives, and takes a repeated batch number as a retry. The session id and the number of batches
already accepted live in the engine's `sync_replace` ledger, so a rerun after a crash continues the session.

A 200 can carry `num_invalid_entries`: those rows were not matched, and Meta does not say which (its
`invalid_entry_samples` echo identifiers and are never logged), so they count as unattributed failures.
Throttling is an HTTP 400 with error code 17, 613, 80003 or 80004: retried with the wait Meta's
`X-Business-Use-Case-Usage` header gives, not split as a bad batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import ClassVar

import requests

from senders import normalise
from senders.destinations.base import (
    WIRE_HASHES,
    WIRE_ROW,
    BatchOutcome,
    Destination,
    DestinationError,
    Member,
    ReplaceBatch,
)

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
CLEANERS = {
    "email": normalise.email,
    "phone": normalise.phone_meta,
    "first_name": normalise.name_meta,
    "last_name": normalise.name_meta,
    "city": normalise.name_meta,
    "country": normalise.country_meta,
}


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
    hashed: ClassVar[bool] = True
    supports_replace: ClassVar[bool] = True
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
        self.cache: dict[tuple[str, object], str] = {}
        self.prepared: dict[int, tuple[Sequence[Member], tuple[str, BatchOutcome]]] = {}  # by id() of the list

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

    @staticmethod
    def hash_field(name: str, raw: object) -> str:
        # the common case first, with what normalise.email and .phone_meta would return for it
        if type(raw) is str:
            if name == "email":
                clean = raw.strip().lower()
                if len(clean) <= 254 and normalise.PLAIN_EMAIL.fullmatch(clean):
                    return hashlib.sha256(clean.encode()).hexdigest()
            elif name == "phone":
                clean = raw.strip()
                if normalise.E164.fullmatch(clean):
                    return hashlib.sha256(clean[1:].encode()).hexdigest()
        try:
            clean = CLEANERS[name](raw)
        except normalise.NormalisationError:
            clean = None  # one bad field does not stop matching on the others
        return normalise.sha256_hex(clean) if clean else ""

    def row(self, member: Member, columns: list[str]) -> tuple[list[str], dict[str, str]] | None:
        """The member's hashed row and the hashes of its identifiers, or None when no identifier survives
        normalisation. Values the warehouse hashed already (`member.hashed`) are taken as they are."""
        values = []
        hashes: dict[str, str] = {}
        identifiers = self.audience.identifiers
        cache = self.cache
        done = member.hashed or {}
        for name in columns:
            if name == "user_id":
                values.append(member.user_id)
                continue
            value = done.get(name)
            if value is None:
                raw = member.fields.get(name)
                if name in identifiers:
                    value = self.hash_field(name, raw)
                else:
                    # names and countries repeat across members: normalise and hash each value once
                    value = cache.get((name, raw))
                    if value is None:
                        if len(cache) > 100_000:
                            cache.clear()
                        value = cache[(name, raw)] = self.hash_field(name, raw)
            if value and name in identifiers:
                hashes[name] = value
            values.append(value)
        if not hashes and not ("user_id" in identifiers and "user_id" in columns):
            return None
        return values, hashes

    def hashes(self, member: Member) -> dict[str, str]:
        built = self.row(member, self.columns("POST"))
        return built[1] if built else {}

    def batch_size_bytes(self, members: Sequence[Member]) -> int:
        return len(members) * (67 * len(self.audience.fields) + 4)

    @classmethod
    def hash_sql(cls, audience, sql: normalise.SqlDialect, column: Callable[[str], str]) -> dict[str, str]:
        source = {"first_name": "name", "last_name": "name"}  # derived from the profile's name (member_fields)
        exprs = {name: normalise.meta_hash_sql(sql, name, column(source.get(name, name))) for name in audience.fields}
        return {name: expr for name, expr in exprs.items() if expr is not None}

    @classmethod
    def wire_sql(cls, audience, sql: normalise.SqlDialect, hashed: Callable[[str], str]) -> dict[str, str]:
        """The member's `data` row as JSON text (WIRE_ROW) and the identifier hashes sent as sync_state keeps them
        (WIRE_HASHES), when the warehouse decided every field; NULL (Python builds them) otherwise, and where no
        identifier survives (Python refuses the member with its reason)."""
        columns = list(audience.fields)
        identifiers = [c for c in columns if c in audience.identifiers and c != "user_id"]
        if any(hashed(c) is None for c in columns):  # a field without a hash column: Python builds the rows
            return {}
        pieces = []
        for name in columns:
            if name == "user_id":  # EXTERN_ID goes unhashed: as JSON text only when it needs no escaping
                uid = hashed("user_id")
                plain = f"{sql.full_match(uid, '[ -~]*')} and strpos({uid}, '\"') = 0 and strpos({uid}, '\\') = 0"
                pieces.append(f"case when {plain} then {uid} end")
            else:
                pieces.append(hashed(name))
        row = " || '\",\"' || ".join(pieces)
        usable = " or ".join(f"{hashed(c)} <> ''" for c in identifiers) or "false"
        if "user_id" in audience.identifiers and "user_id" in columns:
            usable = "true"
        hashes = ", ".join(f"case when {hashed(c)} <> '' then '{c}=' || {hashed(c)} end" for c in sorted(identifiers))
        return {
            WIRE_ROW: f"case when {usable} then '[\"' || {row} || '\"]' end",
            WIRE_HASHES: f"concat_ws(';', {hashes})" if identifiers else "''",
        }

    def prepare(self, members: Sequence[Member]) -> None:
        """Hash the rows and encode them as JSON ahead of the request (see Destination.prepare)."""
        self.prepared[id(members)] = (members, self.encode(members))

    def encode(self, members: Sequence[Member]) -> tuple[str, BatchOutcome]:
        """The request's `payload` as JSON text, and the outcome it implies (who is in it, with what hashes)."""
        columns = self.columns("POST")
        rows, outcome = [], BatchOutcome()
        accepted, hashes, hashes_text = outcome.accepted, outcome.hashes, outcome.hashes_text
        for member in members:
            wire = member.hashed.get(WIRE_ROW) if member.hashed else None
            if wire is not None:  # built in the warehouse (wire_sql): JSON text already
                rows.append(wire)
                accepted.append(member.user_id)
                hashes_text[member.user_id] = member.hashed[WIRE_HASHES]
                continue
            built = self.row(member, columns)
            if built is None:
                outcome.rejected[member.user_id] = "no identifier that normalises (Meta's rules)"
            else:
                rows.append(json.dumps(built[0]))
                accepted.append(member.user_id)
                hashes[member.user_id] = built[1]
        if not rows:
            return "", outcome
        payload = f'{{"schema": {json.dumps([SCHEMA[c] for c in columns])}, "data": [{", ".join(rows)}]}}'
        return payload, outcome

    def post(self, edge: str, method: str, payload: str, session: dict | None) -> int:
        """One request with the payload's JSON text; the number of rows Meta could not use
        (`num_invalid_entries`)."""
        version = self.audience.options.get("api_version", "v21.0")
        # the body is assembled as text around the payload encoded beforehand (10,000 rows: the bulk of it)
        body = f'{{"payload": {payload}, "access_token": {json.dumps(self.credentials.get("password", ""))}'
        if session is not None:
            body += f', "session": {json.dumps(session)}'
        body += "}"
        path = f"/{version}/{self.audience.options['audience_id']}/{edge}"
        answer = self.http.request(
            method, path, data=body.encode(), headers={"Content-Type": "application/json"}
        ).json()
        return int(answer.get("num_invalid_entries") or 0)

    def upload(self, members: Sequence[Member], edge: str, session: dict | None = None) -> BatchOutcome:
        ready = self.prepared.pop(id(members), None)  # used once: a retry after a split encodes its halves
        # the same list object, not a later one that happens to have the same id
        payload, outcome = ready[1] if ready is not None and ready[0] is members else self.encode(members)
        if payload:
            outcome.unattributed_failures = self.post(edge, "POST", payload, session)
        elif session is not None:
            # Skipping the request would leave a gap in the session's batch numbers, which Meta refuses.
            raise DestinationError(f"replace batch {session['batch_seq']}: no member has an identifier that normalises")
        return outcome

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        return self.upload(members, "users")

    def replace(self, members: Sequence[Member], batch: ReplaceBatch) -> BatchOutcome:
        session = {
            "session_id": batch.session_id,
            "batch_seq": batch.batch_seq,
            "last_batch_flag": batch.last,
            "estimated_num_total": batch.estimated_total,
        }
        return self.upload(members, "usersreplace", session)

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        """`members` carry the stored identifier hashes as their fields (see Destination.hashed)."""
        columns = self.columns("DELETE")
        rows, outcome = [], BatchOutcome()
        for member in members:
            row = [member.user_id if c == "user_id" else str(member.fields.get(c) or "") for c in columns]
            if any(row):
                rows.append(row)
                outcome.accepted.append(member.user_id)
            else:
                outcome.rejected[member.user_id] = "no identifier hash to remove by"
        if rows:
            payload = json.dumps({"schema": [SCHEMA[c] for c in columns], "data": rows})
            outcome.unattributed_failures = self.post("users", "DELETE", payload, None)
        return outcome
