"""The `file` destination: a segment's members as CSV under REKINDLE_OUT/exports/.

Exports are addressed by audience and run date (`exports/<audience>/<YYYY-MM-DD>.csv`), written to a
temporary name and renamed, so a rerun of the same day replaces the file with identical content and a
reader never sees half a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from senders.audiences import Audience


@dataclass(frozen=True)
class ExportResult:
    audience: str
    path: Path
    rows: int


def export_audience(warehouse: Path, audience: Audience, exports_dir: Path, run_date: date) -> ExportResult:
    """Write the audience's members, one row per member in user_id order, with a header."""
    target = exports_dir / audience.name / f"{run_date.isoformat()}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".csv.partial")
    # Column names come from the validated allow-list in senders.audiences; the segment is bound.
    columns = ", ".join(audience.fields)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute(
            f"copy (select {columns} from main.segment_members where segment_name = ? order by user_id)"
            f" to '{_sql_string(partial)}' (header, delimiter ',')",
            [audience.segment],
        ).fetchall()
        rows = con.execute(
            "select count(*) from main.segment_members where segment_name = ?", [audience.segment]
        ).fetchone()[0]
    finally:
        con.close()
    os.replace(partial, target)
    return ExportResult(audience.name, target, rows)


def _sql_string(path: Path) -> str:
    """A path inside a SQL string literal (COPY cannot take the target as a parameter)."""
    return path.as_posix().replace("'", "''")
