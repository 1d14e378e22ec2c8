"""Operator CLI: `python -m loaders load [--interval-end YYYY-MM-DD]` loads the landing zone now.

The same code runs in rekindle_daily's load_landing task; this is for a data engineer at a shell. It
shows progress per file and ends with the reconciliation table (input = loaded + duplicates +
quarantined, per file). Exit status 1 when a file failed or changed after it was loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime, timedelta

from loaders.load import FileResult, load_landing
from loaders.settings import load_settings
from loaders.warehouse import open_warehouse

COLUMNS = ("input_records", "loaded_events", "loaded_profiles", "duplicates", "quarantined", "late_events")


def _progress(number: int, total: int, result: FileResult) -> None:
    width = 30
    done = width * number // total
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {number}/{total} {result.source_file[-40:]:<40}")
    if number == total:
        sys.stderr.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loaders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load new files of REKINDLE_LANDING into the warehouse (REKINDLE_TARGET)")
    load.add_argument("--interval-end", type=date.fromisoformat, default=date.today() + timedelta(days=1),
                      help="end of the data interval, exclusive (default: tomorrow)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    settings = load_settings()
    end = datetime.combine(args.interval_end, datetime.min.time())
    warehouse = open_warehouse(settings.target, settings.warehouse)
    try:
        result = load_landing(settings.landing, warehouse, (end - timedelta(days=1), end), progress=_progress)
    finally:
        warehouse.close()
    print(f"{'file':<44} {'status':<19}" + "".join(f" {c.replace('_records', '').replace('loaded_', ''):>11}"
                                                   for c in COLUMNS))  # fmt: skip
    for f in result.files:
        print(f"{f.source_file[-44:]:<44} {f.status:<19}" + "".join(f" {getattr(f, c):>11,}" for c in COLUMNS))
    print(f"{'total':<44} {'':<19}" + "".join(f" {result.total(c):>11,}" for c in COLUMNS))
    print(f"campaigns loaded: {result.campaigns}")
    for failed in result.failed_files:
        print(f"FAILED {failed.source_file}: {failed.error}", file=sys.stderr)
    return 1 if result.failed_files or result.changed_files else 0


if __name__ == "__main__":
    raise SystemExit(main())
