"""What a parsed landing file becomes, before any warehouse sees it.

Every reader (CleverTap JSON lines and payloads, Parquet, transaction CSVs) turns one file into one
`Batch`: Arrow tables of accepted events and profile updates, and of quarantined records with their
reasons. Every warehouse writer (DuckDB, Postgres) takes a `Batch` and commits it in one transaction.
The counts must reconcile: input_records = events + profiles + duplicates_in_batch + quarantine rows
(and, once the warehouse has dropped re-deliveries, loaded + duplicates + quarantined).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

EVENT_SCHEMA = pa.schema(
    [
        ("event_key", pa.string()),  # eventId, or "fp:" + sha256 of the record when it has none
        ("event_id", pa.string()),
        ("event_name", pa.string()),
        ("event_ts", pa.timestamp("us")),  # UTC, naive
        ("identity", pa.string()),
        ("object_id", pa.string()),
        ("evt_data", pa.string()),  # JSON text of evtData
        ("source_line", pa.int32()),
    ]
)

PROFILE_SCHEMA = pa.schema(
    [
        ("profile_key", pa.string()),  # "fp:" + sha256 of the record
        ("identity", pa.string()),
        ("object_id", pa.string()),
        ("updated_ts", pa.timestamp("us")),
        ("profile_data", pa.string()),  # JSON text of profileData
        ("source_line", pa.int32()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_line", pa.int32()),  # line of the file, or position in a {"d": [...]} payload / Parquet row
        ("record_type", pa.string()),  # event | profile | transaction | campaign, when known
        ("reason", pa.string()),  # "<code>: <detail>", e.g. "invalid_ts: 'yesterday' is not ..."
        ("raw_text", pa.string()),
    ]
)


@dataclass
class Batch:
    source_file: str  # relative to the landing zone, "/"-separated
    input_records: int
    events: pa.Table  # EVENT_SCHEMA, unique on event_key
    profiles: pa.Table  # PROFILE_SCHEMA, unique on profile_key
    quarantine: pa.Table  # QUARANTINE_SCHEMA
    duplicates_in_batch: int = 0  # records dropped because an earlier record of the same file had their key

    def __post_init__(self) -> None:
        accounted = self.events.num_rows + self.profiles.num_rows + self.duplicates_in_batch + self.quarantine.num_rows
        if accounted != self.input_records:
            raise RuntimeError(
                f"{self.source_file}: reconciliation failed while parsing: {self.input_records} input records but "
                f"{self.events.num_rows} events + {self.profiles.num_rows} profiles + {self.duplicates_in_batch} "
                f"duplicates + {self.quarantine.num_rows} quarantined = {accounted}"
            )


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
