"""Operator CLI: `python -m loaders load [--interval-end YYYY-MM-DD]` loads the landing zone now.

The same code runs in rekindle_daily's load_landing task; this is for a data engineer at a shell.
It prints the reconciliation table (input = loaded + duplicates + quarantined, per file).
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, datetime, timedelta

from loaders.load import load_landing
from loaders.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loaders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load new files of REKINDLE_LANDING into REKINDLE_WAREHOUSE")
    load.add_argument(
        "--interval-end",
        type=date.fromisoformat,
        default=date.today() + timedelta(days=1),
        help="end of the data interval (exclusive; default tomorrow)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    settings = load_settings()
    end = datetime.combine(args.interval_end, datetime.min.time())
    result = load_landing(settings.landing, settings.warehouse, (end - timedelta(days=1), end))
    print(f"{'file':<40} {'status':<20} {'input':>9} {'events':>9} {'profiles':>9} {'dupes':>7} {'quarant.':>8}")
    for f in result.files:
        print(
            f"{f.source_file:<40} {f.status:<20} {f.input_records:>9} {f.loaded_events:>9} "
            f"{f.loaded_profiles:>9} {f.duplicates:>7} {f.quarantined:>8}"
        )
    print(f"campaigns loaded: {result.campaigns}")
    return 1 if result.changed_files else 0


if __name__ == "__main__":
    raise SystemExit(main())
