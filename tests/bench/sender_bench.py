"""Sender throughput and diff efficiency, for `make bench` (a stage of run_bench.py) or on its own.

A warehouse with the marts' shapes (tests/senders_helpers.py) holds USERS members of one segment; the sync
sends them to a local Standard Webhooks receiver (tests/fakes/webhook_receiver.py: every request signed and
verified, 1,000 members a request), then 1% of the members change (half leave, half change a field) and the
sync runs again. Reported: rows per second of the first, full sync (warehouse read, diff, signing, HTTP,
state and log writes included), and rows sent in the 1% run / the full audience (goal ≤ 0.02).

    python tests/bench/sender_bench.py --users 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from fakes.webhook_receiver import FakeWebhookReceiver  # noqa: E402
from senders_helpers import make_warehouse, set_segment, settings_for, user_ids, write_audiences  # noqa: E402

from senders.http import RetryPolicy  # noqa: E402
from senders.sync import sync_audiences  # noqa: E402

START, END = datetime(2026, 10, 31), datetime(2026, 11, 1)


def measure(users: int) -> dict[str, float]:
    import os

    import duckdb

    with tempfile.TemporaryDirectory() as tmp, FakeWebhookReceiver() as receiver:
        work = Path(tmp)
        wh = make_warehouse(work / "wh.duckdb", users=users)
        members = user_ids(users)
        set_segment(wh, "bench", members)
        os.environ["AIRFLOW_CONN_BENCH_HOOK"] = json.dumps(
            {"password": receiver.secret, "extra": {"base_url": receiver.url}}
        )
        config = write_audiences(
            work / "a.yml",
            [{"name": "bench", "segment": "bench", "destination": "webhook", "conn_id": "bench_hook",
              "fields": ["user_id", "email", "first_name", "country"], "channel": "email"}],
        )  # fmt: skip
        settings = settings_for(wh, work / "out")
        quiet = {"config": config, "policy": RetryPolicy(), "report": lambda _: None}
        started = time.perf_counter()
        full = sync_audiences(settings, START, END, **quiet)["bench"]
        full_seconds = time.perf_counter() - started
        assert full["added"] == users, full
        rows_full = sum(len(d["profiles"]) for d in receiver.deliveries.values())
        # 1%: half of them leave, half change their email
        changed = users // 100
        leavers, movers = members[: changed // 2], members[changed // 2 : changed]
        set_segment(wh, "bench", members[changed // 2 :])
        with duckdb.connect(str(wh)) as con:
            con.execute("update dim_users set email = 'moved-' || email where list_contains(?, user_id)", [movers])
        before = rows_full
        started = time.perf_counter()
        delta = sync_audiences(settings, START, END, **quiet)["bench"]
        delta_seconds = time.perf_counter() - started
        rows_delta = sum(len(d["profiles"]) for d in receiver.deliveries.values()) - before
        assert (delta["added"], delta["removed"]) == (len(movers), len(leavers)), delta
        return {
            "users": users,
            "full_seconds": full_seconds,
            "rows_per_second": rows_full / full_seconds,
            "delta_seconds": delta_seconds,
            "delta_rows": rows_delta,
            "delta_ratio": rows_delta / users,
        }


def describe(result: dict[str, float]) -> str:
    return (
        f"senders: full sync of {result['users']:,} members to a local webhook: {result['full_seconds']:.1f} s,"
        f" {result['rows_per_second']:,.0f} rows/s; after a 1% change: {result['delta_rows']:,} rows sent"
        f" = {result['delta_ratio']:.3f} of the audience (goal ≤ 0.02) in {result['delta_seconds']:.1f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.users)
    if args.json:
        args.json.write_text(json.dumps(figures))
    print(describe(figures))
