"""`python -m senders check | dry-run | sync`: validate the audiences, preview a sync, or run one.

    python -m senders check [--config senders/audiences.yml]
    python -m senders dry-run [--audience NAME ...] [--interval-end 2026-11-01T00:00:00]
    python -m senders sync [--audience NAME ...] [--interval-end ...] [--allow-large-change] [--full-resync]

The interval defaults to the last whole UTC day (what a daily DAG run would sync). Settings come from the
REKINDLE_* environment variables; credentials from Airflow Connections or AIRFLOW_CONN_<ID>.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from senders.audiences import DEFAULT_PATH, AudienceConfigError, load_audiences


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m senders", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("check", "dry-run", "sync"))
    parser.add_argument("--config", type=Path, default=DEFAULT_PATH, help="audiences YAML (default: %(default)s)")
    parser.add_argument("--audience", action="append", help="only this audience (repeatable)")
    parser.add_argument("--interval-start", type=_instant, help="data interval start (default: interval end - 1 day)")
    parser.add_argument("--interval-end", type=_instant, help="data interval end (default: today 00:00 UTC)")
    parser.add_argument(
        "--allow-large-change", action="store_true", help="let this run exceed the audiences' safety limits"
    )
    parser.add_argument(
        "--full-resync",
        action="store_true",
        help="replace each audience whole where the destination can (Meta, Google), else resend every member",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        audiences = load_audiences(args.config)
    except AudienceConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        for a in audiences:
            print(f"{a.name}: segment {a.segment} → {a.destination} ({a.mode}, channel {a.channel})")
        print(f"{args.config}: {len(audiences)} audiences valid")
        return 0

    from loaders.settings import load_settings
    from senders.sync import SyncFailed, sync_audiences

    end = args.interval_end or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = args.interval_start or end - timedelta(days=1)
    try:
        results = sync_audiences(
            load_settings(),
            start,
            end,
            dry_run=args.command == "dry-run",
            allow_large_change=args.allow_large_change,
            full_resync=args.full_resync,
            audiences=args.audience,
            config=args.config,
        )
    except SyncFailed as exc:
        print(f"sync failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
