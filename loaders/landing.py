"""The landing zone: which files are there, and the records inside them with their positions.

Record files are `.jsonl`, `.jsonl.gz` (one record per line) and `.json` (CleverTap's upload
payload `{"d": [...]}`); each record says its own `type`, so events and profiles may share a file.
Campaign definitions are YAML under `campaigns/`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json")
CAMPAIGN_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class RawRecord:
    line: int  # 1-based line of a .jsonl file, or 1-based position in the "d" list of a .json file
    text: str  # the raw text, kept for the quarantine
    value: Any = None  # the decoded JSON when it decodes
    error: str | None = None  # why it did not decode


def local_root(landing: str) -> Path:
    if landing.startswith("s3://"):
        # S3 landing zones arrive with the ingestion issue (#3); say so instead of misreading the path.
        raise NotImplementedError(
            f"REKINDLE_LANDING={landing}: S3 landing zones are not supported yet; use a local folder"
        )
    return Path(landing)


def list_record_files(root: Path) -> list[Path]:
    """Every record file under the landing zone, in a stable order (path order = arrival order)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(RECORD_SUFFIXES))


def list_campaign_files(root: Path) -> list[Path]:
    folder = root / "campaigns"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(CAMPAIGN_SUFFIXES))


def _decode_line(line_no: int, raw: bytes) -> RawRecord:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(
            line_no, raw.decode("utf-8", "replace"), error=f"invalid_utf8: {exc.reason} at byte {exc.start}"
        )
    if "\x00" in text:
        return RawRecord(line_no, text.replace("\x00", "\\u0000"), error="nul_byte: the line contains a NUL byte")
    try:
        return RawRecord(line_no, text, value=json.loads(text))
    except json.JSONDecodeError as exc:
        return RawRecord(line_no, text, error=f"invalid_json: {exc.msg} at column {exc.colno}")


def read_records(path: Path) -> Iterator[RawRecord]:
    """Yield every record of a file, decodable or not; blank lines are not records."""
    if path.name.endswith(".json"):
        yield from _read_payload(path)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield _decode_line(line_no, raw)


def _read_payload(path: Path) -> Iterator[RawRecord]:
    """A `.json` file is one upload call; if the payload itself is broken it is one bad record."""
    raw = path.read_bytes()
    whole = _decode_line(1, raw)
    if whole.error:
        yield RawRecord(1, whole.text[:10_000], error=whole.error)
        return
    payload = whole.value
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), list):
        yield RawRecord(1, whole.text[:10_000], error='invalid_payload: a .json file must hold {"d": [...]}')
        return
    for position, value in enumerate(payload["d"], start=1):
        yield RawRecord(position, json.dumps(value, ensure_ascii=False), value=value)
