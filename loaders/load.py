"""Landing zone → warehouse, one file per transaction: the loader's promises in one place.

- every input record is loaded, recognised as a duplicate, or quarantined with a reason, and the
  three counts add up to the file's records (`load_manifest`; a mismatch fails the file loudly);
- a file is loaded once: its rows and its manifest row commit together, so a crash leaves all of a
  file or none of it, and a rerun skips what is already there;
- a file whose content changed after it was loaded is reported, never loaded a second time;
- a file that cannot be read at all (a transaction CSV no mapping covers) is reported and the rest go on.

The same code runs in rekindle_daily's `load_landing` task and in `python -m loaders load`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from loaders import campaigns, parse
from loaders.batch import Batch
from loaders.landing import LandingFile, LandingZone, open_landing_zone
from loaders.settings import LoadOptions
from loaders.transactions import MappingError, find_mapping, load_mapping, read_transactions
from loaders.warehouse import DuckDBWarehouse, ManifestEntry, Warehouse

log = logging.getLogger(__name__)
MAPPINGS_DIR = Path(__file__).with_name("mappings")
# Files read and parsed ahead of the commit (each in a thread: DuckDB, numpy and zlib release the GIL).
PARSE_AHEAD = 2


@dataclass
class FileResult:
    source_file: str
    status: str  # loaded | skipped | changed_after_load | failed
    input_records: int = 0
    loaded_events: int = 0
    loaded_profiles: int = 0
    duplicates: int = 0
    quarantined: int = 0
    late_events: int = 0
    error: str | None = None


@dataclass
class LoadResult:
    files: list[FileResult] = field(default_factory=list)
    campaigns: int = 0

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def changed_files(self) -> list[str]:
        return [f.source_file for f in self.files if f.status == "changed_after_load"]

    @property
    def failed_files(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Prepared:
    """A file read and parsed by a worker, waiting for the main thread to commit it."""

    file: LandingFile
    sha: str
    result: FileResult | None = None  # set when there is nothing to commit (skipped, changed, failed)
    batch: Batch | None = None


class _Loader:
    def __init__(self, zone: LandingZone, warehouse: Warehouse, interval: tuple[datetime, datetime],
                 loaded_at: datetime, options: LoadOptions) -> None:  # fmt: skip
        self.zone, self.warehouse, self.interval = zone, warehouse, interval
        self.loaded_at, self.options = loaded_at, options
        self.mappings: list = []
        self._segment_names: frozenset[str] | None = None
        self._segments_read = False
        self.loaded = warehouse.loaded_files()  # one writer at a time (the Airflow pool): stays true all run

    def load_mappings(self, files: list[LandingFile]) -> list[FileResult]:
        """Transaction mappings shipped with Rekindle and those in the landing zone's transactions/ folder
        (a zone's mapping may cover files no shipped one does; two matching one file is an error)."""
        self.mappings = [load_mapping(p) for p in sorted(MAPPINGS_DIR.glob("*.yml"))]
        broken = []
        for file in files:
            if file.kind == "mapping":
                with self.zone.local_copy(file) as path:
                    try:
                        self.mappings.append(load_mapping(path))
                    except MappingError as exc:
                        log.error("%s", exc)
                        broken.append(FileResult(file.relative_path, "failed", error=str(exc)))
        return broken

    def prepare(self, file: LandingFile) -> _Prepared:
        """Read, hash and parse one file (runs in a worker thread; touches no warehouse)."""
        with self.zone.local_copy(file) as path:
            sha = _sha256(path)
            previous = self.loaded.get(file.relative_path)
            if previous == sha:
                return _Prepared(file, sha, FileResult(file.relative_path, "skipped"))
            if previous is not None:
                log.error("%s changed after it was loaded (sha256 %s… → %s…); it is NOT loaded again. Land changed "
                          "data as a new file.", file.relative_path, previous[:12], sha[:12])  # fmt: skip
                return _Prepared(file, sha, FileResult(file.relative_path, "changed_after_load"))
            try:
                return _Prepared(file, sha, batch=self.parse(file, path))
            except MappingError as exc:  # the file cannot be read at all: report it, load the rest
                log.error("%s", exc)
                return _Prepared(file, sha, FileResult(file.relative_path, "failed", error=str(exc)))

    def commit(self, prepared: _Prepared) -> FileResult:
        if prepared.result is not None:
            return prepared.result
        file, batch = prepared.file, prepared.batch
        entry = ManifestEntry(file.relative_path, prepared.sha, file.size, *self.interval, self.loaded_at)
        committed = self.warehouse.commit(batch, entry, self.options.dedup_lookback)
        return FileResult(file.relative_path, "loaded", batch.input_records, committed.loaded_events,
                          committed.loaded_profiles, committed.duplicates, committed.quarantined,
                          committed.late_events)  # fmt: skip

    def parse(self, file: LandingFile, path: Path) -> Batch:
        if file.kind == "transactions":
            mapping = find_mapping(file.relative_path, self.mappings)
            if mapping is None:
                raise MappingError(f"no transaction mapping matches {file.relative_path}; add one to "
                                   "loaders/mappings/ or the landing zone's transactions/ folder")  # fmt: skip
            return read_transactions(path, file.relative_path, mapping)
        # "In the future" means after the moment the data reached us (plus the clock-skew tolerance), not after
        # the interval: a backfill of last week finds the whole week in the landing zone, and its first day must
        # load the later days' records (dbt shows each record once the as-of instant reaches it) rather than
        # quarantine them. For a scheduled run the two instants are minutes apart.
        latest = max(self.interval[1], self.loaded_at) + self.options.future_tolerance
        return parse.read_record_file(path, file.relative_path, latest, self.options.earliest_ts)

    @property
    def segment_names(self) -> frozenset[str] | None:
        """The project's segments, read once per load and only when there is a campaigns file."""
        if not self._segments_read:
            self._segment_names, self._segments_read = campaigns.defined_segment_names(), True
        return self._segment_names

    def load_campaigns(self, file: LandingFile) -> int:
        with self.zone.local_copy(file) as path:
            rows, quarantine = campaigns.parse_campaign_file(path, file.relative_path, self.segment_names)
        self.warehouse.replace_campaigns(file.relative_path, rows, quarantine, self.loaded_at)
        return len(rows)


def load_landing(
    landing: str | LandingZone,
    warehouse: Path | Warehouse,
    interval: tuple[datetime, datetime],
    loaded_at: datetime | None = None,
    options: LoadOptions | None = None,
    progress: Callable[[int, int, FileResult], None] | None = None,
) -> LoadResult:
    """Load every new file of the landing zone into the warehouse (a DuckDB path or a Warehouse)."""
    zone = open_landing_zone(landing) if isinstance(landing, str) else landing
    writer = DuckDBWarehouse(warehouse) if isinstance(warehouse, Path) else warehouse
    loader = _Loader(zone, writer, interval, loaded_at or datetime.now(), options or LoadOptions.from_env())
    result = LoadResult()
    try:
        files = zone.list_files()
        if any(f.kind == "transactions" for f in files):
            result.files += loader.load_mappings(files)
        data_files = [f for f in files if f.kind in ("records", "transactions")]
        # Workers read and parse the next files while this thread commits, in path order, one at a time.
        with ThreadPoolExecutor(max_workers=PARSE_AHEAD) as pool:
            pending = deque(pool.submit(loader.prepare, f) for f in data_files[:PARSE_AHEAD])
            for number in range(1, len(data_files) + 1):
                prepared = pending.popleft().result()
                if number + PARSE_AHEAD <= len(data_files):
                    pending.append(pool.submit(loader.prepare, data_files[number + PARSE_AHEAD - 1]))
                file_result = loader.commit(prepared)
                log.info("%s: %s", file_result.source_file, file_result)
                result.files.append(file_result)
                if progress:
                    progress(number, len(data_files), file_result)
        result.campaigns = sum(loader.load_campaigns(f) for f in files if f.kind == "campaigns")
    finally:
        if isinstance(warehouse, Path):
            writer.close()
    return result
