"""The landing zone: which files are there, and a local path to read each one from.

`REKINDLE_LANDING` is a local folder or `s3://bucket/prefix` (see `loaders/s3.py`). Inside it:

    events/, profiles/, ...   CleverTap records: .jsonl, .jsonl.gz, .json ({"d": [...]}), .parquet;
                              each record says its own `type`, so events and profiles may share a file
    transactions/             purchase CSVs, read with a mapping from loaders/mappings/ (or the folder)
    campaigns/                campaign definitions, .yml / .yaml

Files are processed in path order, which is arrival order when files are named by date.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
TRANSACTION_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".txt.gz")
CAMPAIGN_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class LandingFile:
    relative_path: str  # "/"-separated, relative to the zone root
    size: int

    @property
    def kind(self) -> str | None:
        """records | transactions | campaigns | mapping, or None for files the loaders ignore."""
        name, top = self.relative_path.lower(), self.relative_path.split("/", 1)[0]
        if top == "campaigns" and name.endswith(CAMPAIGN_SUFFIXES):
            return "campaigns"
        if top == "transactions":
            if name.endswith(CAMPAIGN_SUFFIXES):
                return "mapping"
            return "transactions" if name.endswith(TRANSACTION_SUFFIXES) else None
        return "records" if name.endswith(RECORD_SUFFIXES) else None


class LandingZone(Protocol):
    def list_files(self) -> list[LandingFile]:
        """Every file in the zone, sorted by relative path."""

    def local_copy(self, file: LandingFile) -> AbstractContextManager[Path]:
        """A local path holding the file's bytes for the duration of the with-block."""

    def describe(self) -> str: ...


class LocalLandingZone:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"landing zone {root} does not exist or is not a folder (set REKINDLE_LANDING)")
        self.root = root

    def list_files(self) -> list[LandingFile]:
        files = (p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(
            (LandingFile(p.relative_to(self.root).as_posix(), p.stat().st_size) for p in files),
            key=lambda f: f.relative_path,
        )

    @contextmanager
    def local_copy(self, file: LandingFile) -> Iterator[Path]:
        yield self.root / file.relative_path

    def describe(self) -> str:
        return str(self.root)


def open_landing_zone(location: str) -> LandingZone:
    """A folder path or s3://bucket/prefix → the landing zone that reads it."""
    if location.startswith("s3://"):
        from loaders.s3 import S3LandingZone

        return S3LandingZone.from_url(location)
    return LocalLandingZone(Path(location))
