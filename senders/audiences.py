"""Audience configuration (senders/audiences.yml): segment → destination, validated with clear errors.

Every error names the file, the audience and the field, and lists what is allowed. Secrets never appear
here: an audience names an Airflow Connection (`conn_id`), resolved when the sync runs (senders/credentials.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders.config_file import check_unique_names, read_entries

DEFAULT_PATH = Path(__file__).with_name("audiences.yml")
# Columns an audience may send: segment_members' own, dim_users' profile and scores, and first/last name
# split from dim_users.name (the shape SendGrid, Meta and SMS templates expect).
SEGMENT_FIELDS = ("qualified_at", "evaluated_at", "segment_name")
PROFILE_FIELDS = (
    "email",
    "phone",
    "name",
    "gender",
    "date_of_birth",
    "city",
    "country",
    "platform",
    "lifecycle_stage",
    "rfm_segment",
    "order_count",
    "revenue",
    "average_order_value",
    "clv_predicted_value",
)
DERIVED_FIELDS = ("first_name", "last_name")
FIELDS = ("user_id", *SEGMENT_FIELDS, *PROFILE_FIELDS, *DERIVED_FIELDS)
MODES = ("mirror", "upsert", "append")
# Consent channel → dim_users flag. `ads` (Meta, Google) needs email consent: matching uploads the address
# a user gave for marketing, which CleverTap and the ad platforms treat as marketing use. `none` is for
# exports that stay inside the company (file, s3), which still honour control groups and suppressions.
CHANNELS = {
    "email": "can_email",
    "sms": "can_sms",
    "push": "can_push",
    "whatsapp": "can_whatsapp",
    "ads": "can_email",
    "none": None,
}
CONN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
KNOWN_KEYS = {
    "name",
    "segment",
    "destination",
    "fields",
    "conn_id",
    "identifiers",
    "mode",
    "channel",
    "campaign",
    "batch_rows",
    "batch_bytes",
    "failure_threshold",
    "safety_limit",
    "options",
}


class AudienceConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Audience:
    name: str
    segment: str
    destination: str
    fields: tuple[str, ...]
    conn_id: str | None = None
    identifiers: tuple[str, ...] = ("user_id",)
    mode: str = "mirror"
    channel: str = "none"
    campaign: str | None = None
    batch_rows: int | None = None  # None: the destination's cap
    batch_bytes: int | None = None
    failure_threshold: float = 0.05  # fraction of the members a run attempts that may fail
    safety_limit: float = 0.25  # fraction of the synced audience that one run may add or remove
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def consent_column(self) -> str | None:
        return CHANNELS[self.channel]


def _fraction(entry: dict, key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise AudienceConfigError(f"{where}: field '{key}' must be a fraction between 0 and 1, got {value!r}")
    return float(value)


def _check(entry: dict, where: str) -> Audience:
    from senders.destinations import DESTINATIONS

    for key in ("segment", "destination", "fields"):
        if key not in entry:
            raise AudienceConfigError(f"{where}: field '{key}' is required")
    name = entry["name"]
    where = f"{where} ({name})"
    unknown_keys = sorted(set(entry) - KNOWN_KEYS)
    if unknown_keys:
        raise AudienceConfigError(f"{where}: unknown field(s) {unknown_keys}; allowed: {', '.join(sorted(KNOWN_KEYS))}")
    if entry["destination"] not in DESTINATIONS:
        raise AudienceConfigError(
            f"{where}: field 'destination' must be one of {', '.join(sorted(DESTINATIONS))},"
            f" got {entry['destination']!r}"
        )
    kind = DESTINATIONS[entry["destination"]]
    fields = entry["fields"]
    if not isinstance(fields, list) or not fields:
        raise AudienceConfigError(f"{where}: field 'fields' must be a non-empty list")
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise AudienceConfigError(f"{where}: field 'fields' has unknown {unknown}; allowed: {', '.join(FIELDS)}")
    identifiers = entry.get("identifiers", [kind.identifier_fields[0]])
    if not isinstance(identifiers, list) or not identifiers:
        raise AudienceConfigError(f"{where}: field 'identifiers' must be a non-empty list")
    bad = [i for i in identifiers if i not in kind.identifier_fields]
    if bad:
        raise AudienceConfigError(
            f"{where}: field 'identifiers' has {bad}, which {kind.kind} cannot match on;"
            f" allowed: {', '.join(kind.identifier_fields)}"
        )
    missing_ids = [i for i in identifiers if i not in fields and i != "user_id"]
    if missing_ids:
        raise AudienceConfigError(f"{where}: field 'fields' must include the identifiers {missing_ids}")
    mode = entry.get("mode", kind.modes[0])
    if mode not in kind.modes:
        raise AudienceConfigError(
            f"{where}: field 'mode' must be one of {', '.join(kind.modes)} for {kind.kind}, got {mode!r}"
        )
    if mode == "mirror" and not kind.supports_remove:
        raise AudienceConfigError(f"{where}: field 'mode': {kind.kind} cannot remove members, so it cannot mirror")
    channel = entry.get("channel", kind.default_channel)
    if channel not in CHANNELS:
        raise AudienceConfigError(f"{where}: field 'channel' must be one of {', '.join(CHANNELS)}, got {channel!r}")
    conn_id = entry.get("conn_id")
    if kind.uses_http and conn_id is None:
        raise AudienceConfigError(f"{where}: field 'conn_id' is required for {kind.kind} (an Airflow Connection id)")
    if conn_id is not None and (not isinstance(conn_id, str) or not CONN_ID.match(conn_id)):
        raise AudienceConfigError(
            f"{where}: field 'conn_id' must be a connection id (letters, digits, _ . -), got {conn_id!r}"
        )
    campaign = entry.get("campaign")
    if campaign is not None and not isinstance(campaign, str | int):
        raise AudienceConfigError(f"{where}: field 'campaign' must be a campaign id, got {campaign!r}")
    limits: dict[str, int | None] = {}
    for key, cap in (("batch_rows", kind.max_batch_rows), ("batch_bytes", kind.max_batch_bytes)):
        value = entry.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AudienceConfigError(f"{where}: field '{key}' must be a positive whole number, got {value!r}")
            if cap is not None and value > cap:
                raise AudienceConfigError(
                    f"{where}: field '{key}' is {value}, above {kind.kind}'s documented cap of {cap}"
                )
        limits[key] = value
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise AudienceConfigError(f"{where}: field 'options' must be a mapping")
    allowed_options = (*kind.required_options, *kind.optional_options)
    for key in kind.required_options:
        if options.get(key) in (None, ""):
            raise AudienceConfigError(f"{where}: field 'options.{key}' is required for {kind.kind}")
    extra = sorted(set(options) - set(allowed_options))
    if extra:
        raise AudienceConfigError(
            f"{where}: field 'options' has unknown {extra};"
            f" allowed for {kind.kind}: {', '.join(allowed_options) or 'none'}"
        )
    audience = Audience(
        name=name,
        segment=str(entry["segment"]),
        destination=entry["destination"],
        fields=tuple(fields),
        conn_id=conn_id,
        identifiers=tuple(identifiers),
        mode=mode,
        channel=channel,
        campaign=None if campaign is None else str(campaign),
        batch_rows=limits["batch_rows"],
        batch_bytes=limits["batch_bytes"],
        failure_threshold=_fraction(entry, "failure_threshold", 0.05, where),
        safety_limit=_fraction(entry, "safety_limit", 0.25, where),
        options=dict(options),
    )
    problem = kind.check_audience(audience)
    if problem:
        raise AudienceConfigError(f"{where}: {problem}")
    return audience


def load_audiences(path: Path = DEFAULT_PATH) -> list[Audience]:
    """Parse and validate every audience; the first error names the file, the entry and the field."""
    path = Path(path)
    entries = read_entries(path, "audiences", "audience", AudienceConfigError, path.name)
    audiences = [_check(entry, where) for where, _, entry in entries]
    check_unique_names(((name, where) for where, name, _ in entries), "audience", AudienceConfigError)
    return audiences
