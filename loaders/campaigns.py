"""Campaign definitions (marketer-edited YAML) → `raw.campaigns`.

A campaigns file is configuration, not a stream: each load replaces the rows that came from the same
file, so editing a campaign and rerunning updates it. An entry that does not validate is quarantined
with a reason naming the file, the entry and the field; the other entries still load.

Schema of one entry (all required unless marked):
    id: snake_case id, unique across files      channel: email | push | sms | whatsapp
    name: display name                           segment: a segment of dbt_project/segments/*.yml, or all_users
    goal_event: event that counts as conversion  goal_filter: (optional) {property, op, value}
    conversion_window_days: (optional) positive integer; without it the attribution windows per channel
        (dbt var rekindle_attribution_window_hours: 5 days for email, 24 hours for SMS, ...) apply
    control_group_pct: 0 to 90 (default 0)      start, end: dates (YYYY-MM-DD), start <= end

Users qualify while the campaign runs (start to end, both whole days, UTC); the global control group
(dbt var rekindle_global_control_pct) and the campaign's own control group are hash buckets of the user
id, assigned in dbt's campaign_exposures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from loaders.batch import QUARANTINE_SCHEMA

CHANNELS = ("email", "push", "sms", "whatsapp")
FILTER_OPS = ("eq", "neq", "gt", "gte", "lt", "lte")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
ALL_USERS = "all_users"  # the segment of every identified user


class CampaignError(ValueError):
    pass


def _require(entry: dict[str, Any], field: str, where: str) -> Any:
    if entry.get(field) in (None, ""):
        raise CampaignError(f"{where}: field '{field}' is required")
    return entry[field]


def _as_date(value: Any, field: str, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CampaignError(f"{where}: field '{field}' must be a date YYYY-MM-DD, got {value!r}") from None


def validate_entry(entry: Any, where: str, segment_names: Collection[str] | None = None) -> dict[str, Any]:
    """One campaign entry → a row for raw.campaigns, or CampaignError naming the field at fault.

    segment_names: the segments defined in the project; None skips that check (no project at hand)."""
    if not isinstance(entry, dict):
        raise CampaignError(f"{where}: each campaign must be a mapping, got {type(entry).__name__}")
    campaign_id = str(_require(entry, "id", where))
    where = f"{where} (id {campaign_id})"
    if not ID_PATTERN.match(campaign_id):
        raise CampaignError(f"{where}: field 'id' must be snake_case (a-z, 0-9, _), got {campaign_id!r}")
    channel = _require(entry, "channel", where)
    if channel not in CHANNELS:
        raise CampaignError(f"{where}: field 'channel' must be one of {', '.join(CHANNELS)}, got {channel!r}")
    window = entry.get("conversion_window_days")
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window <= 0):
        raise CampaignError(f"{where}: field 'conversion_window_days' must be a positive integer, got {window!r}")
    control = entry.get("control_group_pct", 0)
    if not isinstance(control, int | float) or isinstance(control, bool) or not 0 <= control <= 90:
        raise CampaignError(f"{where}: field 'control_group_pct' must be a number from 0 to 90, got {control!r}")
    goal_filter = entry.get("goal_filter")
    if goal_filter is not None:
        if not isinstance(goal_filter, dict) or set(goal_filter) != {"property", "op", "value"}:
            raise CampaignError(f"{where}: field 'goal_filter' must be {{property, op, value}}, got {goal_filter!r}")
        if goal_filter["op"] not in FILTER_OPS:
            raise CampaignError(
                f"{where}: field 'goal_filter.op' must be one of {', '.join(FILTER_OPS)}, got {goal_filter['op']!r}"
            )
    segment = str(_require(entry, "segment", where))
    if segment_names is not None and segment != ALL_USERS and segment not in segment_names:
        known = ", ".join(sorted({ALL_USERS, *segment_names}))
        raise CampaignError(
            f"{where}: field 'segment' names no defined segment: {segment!r}; define it in "
            f"dbt_project/segments/*.yml or use one of: {known}"
        )
    start = _as_date(_require(entry, "start", where), "start", where)
    end = _as_date(_require(entry, "end", where), "end", where)
    if end < start:
        raise CampaignError(f"{where}: field 'end' ({end}) is before 'start' ({start})")
    return {
        "campaign_id": campaign_id,
        "campaign_name": str(_require(entry, "name", where)),
        "channel": channel,
        "segment": segment,
        "goal_event": str(_require(entry, "goal_event", where)),
        "goal_filter": json.dumps(goal_filter) if goal_filter is not None else None,
        "conversion_window_days": window,
        "control_group_pct": float(control),
        "start_date": start,
        "end_date": end,
    }


def parse_campaign_file(
    path: Path, source_file: str, segment_names: Collection[str] | None = None
) -> tuple[list[dict[str, Any]], pa.Table]:
    """Valid campaign rows, and a quarantine table naming the entry and field of every invalid one.

    segment_names: the segments a campaign may target (besides all_users); None skips that check."""
    rows: list[dict[str, Any]] = []
    rejected: list[tuple[int, str, str]] = []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        document, rejected = None, [(1, f"invalid_yaml: {source_file}: {exc}", "")]
    if document is not None and not (isinstance(document, dict) and isinstance(document.get("campaigns"), list)):
        rejected = [(1, f"invalid_campaigns_file: {source_file} must hold 'campaigns:' with a list of entries", "")]
    elif document is not None:
        for position, entry in enumerate(document["campaigns"], start=1):
            try:
                rows.append(validate_entry(entry, f"{source_file}, campaign #{position}", segment_names))
            except CampaignError as exc:
                rejected.append((position, f"invalid_campaign: {exc}", json.dumps(entry, default=str)))
    quarantine = pa.table(
        {
            "source_line": pa.array([r[0] for r in rejected], pa.int32()),
            "record_type": pa.array(["campaign"] * len(rejected), pa.string()),
            "reason": pa.array([r[1] for r in rejected], pa.string()),
            "raw_text": pa.array([r[2] for r in rejected], pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return rows, quarantine


def defined_segment_names() -> frozenset[str] | None:
    """The names of the segments in the project's dbt_project/segments/*.yml, which a campaign's `segment`
    must name; None (no check) when those files do not validate: `python -m loaders segments check` and the
    dbt build report that, and a campaign should not be quarantined for another file's error."""
    from loaders import segments

    try:
        return frozenset(segment.name for segment in segments.load_segments())
    except (segments.SegmentDefinitionError, OSError):
        return None
