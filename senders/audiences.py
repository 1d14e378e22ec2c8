"""Audience configuration (senders/audiences.yml): segment → destination, validated with clear errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("audiences.yml")
DESTINATIONS = ("file",)
# Columns a file export may carry: what segment_members holds for every member.
FIELDS = ("user_id", "email", "qualified_at", "evaluated_at", "segment_name")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AudienceConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Audience:
    name: str
    segment: str
    destination: str
    fields: tuple[str, ...]


def _check(entry: object, where: str) -> Audience:
    if not isinstance(entry, dict):
        raise AudienceConfigError(f"{where}: each audience must be a mapping")
    for field in ("name", "segment", "destination", "fields"):
        if field not in entry:
            raise AudienceConfigError(f"{where}: field '{field}' is required")
    name = entry["name"]
    where = f"{where} ({name})"
    if not isinstance(name, str) or not NAME.match(name):
        raise AudienceConfigError(f"{where}: field 'name' must be snake_case, got {name!r}")
    if entry["destination"] not in DESTINATIONS:
        raise AudienceConfigError(
            f"{where}: field 'destination' must be one of {', '.join(DESTINATIONS)}, got {entry['destination']!r}"
        )
    fields = entry["fields"]
    if not isinstance(fields, list) or not fields:
        raise AudienceConfigError(f"{where}: field 'fields' must be a non-empty list")
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise AudienceConfigError(f"{where}: field 'fields' has unknown {unknown}; allowed: {', '.join(FIELDS)}")
    return Audience(name, str(entry["segment"]), entry["destination"], tuple(fields))


def load_audiences(path: Path = DEFAULT_PATH) -> list[Audience]:
    """Parse and validate every audience; the first error names the file, the entry and the field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AudienceConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("audiences"), list):
        raise AudienceConfigError(f"{path}: must hold 'audiences:' with a list of entries")
    audiences = [_check(entry, f"{path.name}, audience #{i}") for i, entry in enumerate(document["audiences"], 1)]
    names = [a.name for a in audiences]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise AudienceConfigError(f"{path.name}: audience names must be unique; repeated: {duplicated}")
    return audiences
