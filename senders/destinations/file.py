"""`file`: each batch as a CSV or Parquet file under REKINDLE_OUT/exports/<audience>/<run>/.

A file is named by the batch's action and content digest (`add-<digest>.csv`), written to a temporary name
and renamed: a rerun of a crashed batch rewrites the same file with the same bytes, and a reader never sees
half a file. Removals are files too (`remove-…`), holding the user ids to take out downstream.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from senders.destinations.base import BatchOutcome, Destination, Member, batch_digest

FORMATS = ("csv", "parquet")


class FileDestination(Destination):
    kind: ClassVar[str] = "file"
    max_batch_rows: ClassVar[int] = 1_000_000
    supports_remove: ClassVar[bool] = True
    default_channel: ClassVar[str] = "none"
    optional_options: ClassVar[tuple[str, ...]] = ("format",)
    uses_http: ClassVar[bool] = False

    @classmethod
    def check_audience(cls, audience) -> str | None:
        fmt = audience.options.get("format", "csv")
        if fmt not in FORMATS:
            return f"field 'options.format' must be one of {', '.join(FORMATS)}, got {fmt!r}"
        return None

    @property
    def folder(self) -> Path:
        return self.run.out / "exports" / self.audience.name / self.run.run_id

    def _columns(self, action: str) -> list[str]:
        fields = list(self.audience.fields)
        return ["user_id", *[f for f in fields if f != "user_id"]] if action != "remove" else ["user_id"]

    def write(self, action: str, members: Sequence[Member]) -> Path:
        fmt = self.audience.options.get("format", "csv")
        target = self.folder / f"{action}-{batch_digest(action, members)[:16]}.{fmt}"
        if target.exists():
            return target  # the same content was written by an earlier attempt of this run
        target.parent.mkdir(parents=True, exist_ok=True)
        columns = self._columns(action)
        rows = [[m.user_id if c == "user_id" else m.fields.get(c) for c in columns] for m in members]
        partial = target.with_name(target.name + ".partial")
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
            partial.write_text(buffer.getvalue(), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
            pq.write_table(table, partial)
        os.replace(partial, target)
        return target

    def add(self, members: Sequence[Member]) -> BatchOutcome:
        self.write("add" if self.audience.mode != "append" else "send", members)
        return BatchOutcome(accepted=[m.user_id for m in members])

    def remove(self, members: Sequence[Member]) -> BatchOutcome:
        self.write("remove", members)
        return BatchOutcome(accepted=[m.user_id for m in members])
