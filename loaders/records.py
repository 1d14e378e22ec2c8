"""Validation of CleverTap-format records, one at a time.

A record either becomes a typed row (`EventRow`, `ProfileRow`) or a `Rejection` whose reason a data
engineer can act on. The limits are CleverTap's documented upload limits
(../shared/reference/engagement-semantics.md); reasons start with a stable code (`invalid_json`,
`missing_identity`, ...) so the quarantine can be counted by kind, followed by detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_KEY_CHARS = 120
MAX_VALUE_BYTES = 512
MAX_PROPERTIES = 256
RECORD_TYPES = ("event", "profile")


@dataclass(frozen=True)
class EventRow:
    event_id: str | None
    event_name: str
    event_ts: datetime
    identity: str | None
    object_id: str | None
    evt_data: str


@dataclass(frozen=True)
class ProfileRow:
    identity: str | None
    object_id: str | None
    updated_ts: datetime
    profile_data: str


@dataclass(frozen=True)
class Rejection:
    reason: str
    record_type: str | None = None


def parse_ts(value: Any) -> datetime | None:
    """CleverTap's `ts`: epoch seconds (number or numeric string) or ISO-8601; naive UTC out."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return parse_ts(float(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed
    return None


def _id(value: Any) -> str | None:
    """Identities may arrive as numbers; blank strings mean absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _property_problem(properties: dict[str, Any]) -> str | None:
    if len(properties) > MAX_PROPERTIES:
        return f"too_many_properties: {len(properties)} > {MAX_PROPERTIES}"
    for key, value in properties.items():
        if len(key) > MAX_KEY_CHARS:
            return f"key_too_long: {key[:40]!r}... has {len(key)} chars > {MAX_KEY_CHARS}"
        problem = _value_problem(key, value)
        if problem:
            return problem
    return None


def _value_problem(key: str, value: Any) -> str | None:
    """The 512-byte limit applies to every scalar string, also inside `Items` line items."""
    if isinstance(value, str):
        if "\x00" in value or "\x00" in key:  # "\u0000" in JSON: Postgres' jsonb cannot hold it
            return f"nul_in_value: {key!r} contains a NUL character"
        size = len(value.encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            return f"value_too_long: {key!r} has {size} bytes > {MAX_VALUE_BYTES}"
    elif isinstance(value, list):
        for item in value:
            problem = _value_problem(key, item)
            if problem:
                return problem
    elif isinstance(value, dict):
        for inner_key, inner in value.items():
            problem = _value_problem(f"{key}.{inner_key}", inner)
            if problem:
                return problem
    return None


def validate(record: Any, latest_allowed: datetime, earliest_allowed: datetime) -> EventRow | ProfileRow | Rejection:
    """Check one decoded record; `ts` must lie within [earliest_allowed, latest_allowed] (settings)."""
    if not isinstance(record, dict):
        return Rejection(f"not_an_object: got {type(record).__name__}")
    record_type = record.get("type")
    if record_type is None:
        return Rejection("missing_type: a record needs type 'event' or 'profile'")
    if record_type not in RECORD_TYPES:
        return Rejection(f"unknown_type: {str(record_type)[:40]!r} (expected 'event' or 'profile')")
    identity, object_id = _id(record.get("identity")), _id(record.get("objectId"))
    if identity is None and object_id is None:
        return Rejection("missing_identity: a record needs identity or objectId", record_type)
    ts = parse_ts(record.get("ts"))
    if ts is None:
        return Rejection(f"invalid_ts: {str(record.get('ts'))[:40]!r} is not epoch seconds or ISO-8601", record_type)
    if ts > latest_allowed:
        return Rejection(f"ts_in_future: {ts.isoformat()} is after {latest_allowed.isoformat()}", record_type)
    if ts < earliest_allowed:
        return Rejection(f"ts_too_old: {ts.isoformat()} is before {earliest_allowed.isoformat()}", record_type)

    if record_type == "event":
        name = record.get("evtName")
        if not isinstance(name, str) or not name.strip():
            return Rejection("missing_evtName: an event needs a non-empty evtName", record_type)
        data = record.get("evtData", {})
        if not isinstance(data, dict):
            return Rejection(f"invalid_evtData: expected an object, got {type(data).__name__}", record_type)
        problem = _property_problem(data)
        if problem:
            return Rejection(problem, record_type)
        return EventRow(
            event_id=_id(record.get("eventId")),
            event_name=name.strip(),
            event_ts=ts,
            identity=identity,
            object_id=object_id,
            evt_data=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        )

    data = record.get("profileData", {})
    if not isinstance(data, dict):
        return Rejection(f"invalid_profileData: expected an object, got {type(data).__name__}", record_type)
    problem = _property_problem(data)
    if problem:
        return Rejection(problem, record_type)
    return ProfileRow(
        identity=identity,
        object_id=object_id,
        updated_ts=ts,
        profile_data=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    )
