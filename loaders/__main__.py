"""Operator CLI.

`python -m loaders load [--interval-end YYYY-MM-DD]` loads the landing zone now.
`python -m loaders segments check|build|preview` validates the segment definitions
(dbt_project/segments/*.yml), regenerates their dbt models, or previews one segment (or a file's).
`python -m loaders funnels check|build` validates the funnel definitions (dbt_project/funnels/*.yml) or
regenerates the model that computes them (rpt_funnels).

The same code runs in rekindle_daily's load_landing task; this is for a data engineer at a shell. It
shows progress per file and ends with the reconciliation table (input = loaded + duplicates +
quarantined, per file). Exit status 1 when a file failed or changed after it was loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from loaders.load import FileResult, load_landing
from loaders.settings import PROJECT_ROOT, load_settings
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
    segments = sub.add_parser("segments", help="check, build or preview segment definitions")
    segments.add_argument("action", choices=("check", "build", "preview"),
                          help="check: validate; build: validate and regenerate the dbt models; "
                               "preview: size and sample members of SEGMENT from the current warehouse")  # fmt: skip
    segments.add_argument("segment", nargs="?", help="preview: a segment name or a YAML file of definitions")
    segments.add_argument("--as-of", type=datetime.fromisoformat, help="preview: evaluate as of this instant")
    segments.add_argument("--sample", type=int, default=10, help="preview: members to show (default 10)")
    funnels = sub.add_parser("funnels", help="check or build the funnel definitions")
    funnels.add_argument("action", choices=("check", "build"),
                         help="check: validate; build: validate and regenerate the funnel models")  # fmt: skip
    funnels.add_argument("--project", type=Path, default=PROJECT_ROOT, help="the dbt project (default: this one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "segments":
        return _segments(args)
    if args.command == "funnels":
        return _funnels(args)

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


def _segments(args: argparse.Namespace) -> int:
    from loaders import segments

    try:
        if args.action == "check":
            found = segments.load_segments()
            stale = segments.out_of_date(segments=found)
            print(f"{len(found)} segments valid: {', '.join(s.name for s in found)}")
            if stale:
                print("generated models out of date, run `python -m loaders segments build`:", file=sys.stderr)
                print("\n".join(f"  {p}" for p in stale), file=sys.stderr)
                return 1
            return 0
        if args.action == "build":
            changed = segments.build()
            print("\n".join(f"wrote {p}" for p in changed) or "generated models already up to date")
            return 0
        if not args.segment:
            print("preview needs a segment name or a YAML file", file=sys.stderr)
            return 2
        for result in segments.preview(args.segment, as_of=args.as_of, sample=args.sample):
            print(f"{result.name}: {result.size:,} members")
            for row in result.sample:
                print("  " + ", ".join(f"{c}={v}" for c, v in zip(result.columns, row, strict=True)))
        return 0
    except segments.SegmentDefinitionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _funnels(args: argparse.Namespace) -> int:
    from loaders import funnels

    try:
        found = funnels.load_funnels(args.project)
        if args.action == "check":
            print(f"{len(found)} funnels valid: {', '.join(f.name for f in found)}")
            if stale := funnels.out_of_date(args.project, funnels=found):
                print("generated model out of date, run `python -m loaders funnels build`:", file=sys.stderr)
                print("\n".join(f"  {p}" for p in stale), file=sys.stderr)
                return 1
            return 0
        changed = funnels.build(args.project)
        print("\n".join(f"wrote {p}" for p in changed) or "generated model already up to date")
        return 0
    except funnels.FunnelDefinitionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
