"""Sender throughput and diff efficiency, for `make bench` (a stage of run_bench.py) or on its own.

Issue 7's goal: "an initial sync of a 1,000,000-member audience to the local Meta contract server: ≥ 20,000
members/s; a follow-up sync after a 1% change sends ≤ 2% of the rows."

A warehouse with the marts' shapes (tests/senders_helpers.py) holds USERS members of one segment; the sync sends
them to the local Meta server (tests/fakes/meta.py: every request parsed and checked as the contract says, the
first sync as one `usersreplace` session of 10,000-row batches) with email, phone, first name and country,
normalised and SHA-256 hashed. Then 1% of the members change (half leave the segment, half change their
email) and the sync runs again. Reported: members per second of the first sync (warehouse read, eligibility,
diff, normalising and hashing, HTTP, state and log writes included), and the rows the follow-up sent to Meta
(adds, removals of leavers and removals of the old email hashes, counted by the server) / the audience.

The fake runs in its own process, so the figure is the sender's and not the two sharing one interpreter's
lock; the rows it counts are the ground truth for the 2% goal. `--webhook` also times the Standard Webhooks
receiver (in process, as before).

    python tests/bench/sender_bench.py --users 1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from senders_helpers import make_warehouse, set_segment, settings_for, user_ids, write_audiences  # noqa: E402

from senders.http import RetryPolicy  # noqa: E402
from senders.sync import sync_audiences  # noqa: E402

START, END = datetime(2026, 10, 31), datetime(2026, 11, 1)


def serve_meta(conn) -> None:
    """The child process: a FakeMeta answering until told to stop; reports what it received on request."""
    sys.path[:0] = [str(TESTS), str(TESTS.parent)]
    from fakes.meta import FakeMeta

    FakeMeta.keep_bodies = False  # 10^6 rows of request bodies would only cost memory
    with FakeMeta() as api:
        audience_id = api.create_audience()
        conn.send((api.base_url, api.access_token, audience_id))
        while True:
            command = conn.recv()
            if command == "stop":
                return
            with api.lock:
                conn.send(
                    {
                        "rows_received": dict(api.rows_received),
                        "members": len(api.audiences[audience_id].rows),
                        "requests": len(api.requests),
                        "cpu_seconds": time.process_time(),  # the server's own work
                    }
                )


def measure(users: int) -> dict[str, float]:
    import duckdb

    parent, child = multiprocessing.get_context("spawn").Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve_meta, args=(child,), daemon=True)
    server.start()
    try:
        base_url, token, audience_id = parent.recv()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            wh = make_warehouse(work / "wh.duckdb", users=users)
            members = user_ids(users)
            set_segment(wh, "bench", members)
            os.environ["AIRFLOW_CONN_BENCH_META"] = json.dumps({"password": token, "extra": {"base_url": base_url}})
            config = write_audiences(
                work / "a.yml",
                [{"name": "bench", "segment": "bench", "destination": "meta_custom_audience", "conn_id": "bench_meta",
                  "fields": ["email", "phone", "first_name", "country"], "identifiers": ["email", "phone"],
                  "options": {"audience_id": audience_id}}],
            )  # fmt: skip
            settings = settings_for(wh, work / "out")
            quiet = {"config": config, "policy": RetryPolicy(), "report": lambda _: None}
            started, cpu = time.perf_counter(), time.process_time()
            full = sync_audiences(settings, START, END, **quiet)["bench"]
            full_seconds, full_cpu = time.perf_counter() - started, time.process_time() - cpu
            parent.send("status")
            after_full = parent.recv()
            assert full["added"] == users and after_full["members"] == users, (full, after_full)
            # 1%: half of them leave, half change their email
            changed = users // 100
            leavers, movers = members[: changed // 2], members[changed // 2 : changed]
            set_segment(wh, "bench", members[changed // 2 :])
            with duckdb.connect(str(wh)) as con:
                con.execute("update dim_users set email = 'moved-' || email where list_contains(?, user_id)", [movers])
            started = time.perf_counter()
            delta = sync_audiences(settings, START, END, **quiet)["bench"]
            delta_seconds = time.perf_counter() - started
            parent.send("status")
            after_delta = parent.recv()
            assert (delta["added"], delta["removed"]) == (len(movers), len(leavers)), delta
            before, after = after_full["rows_received"], after_delta["rows_received"]
            rows_delta = sum(after.values()) - sum(before.values())
            return {
                "users": users,
                "full_seconds": full_seconds,
                "members_per_second": users / full_seconds,
                # the sender's own CPU time (the server is another process): what a core of its own would give
                "members_per_cpu_second": users / full_cpu,
                "full_requests": after_full["requests"],
                "full_cpu_seconds": full_cpu,
                "server_cpu_seconds": after_full["cpu_seconds"],
                "delta_seconds": delta_seconds,
                "delta_rows": rows_delta,
                "delta_rows_by_operation": {op: after.get(op, 0) - before.get(op, 0) for op in after},
                "delta_ratio": rows_delta / users,
                "load_average": os.getloadavg(),
            }
    finally:
        parent.send("stop")
        server.join(timeout=30)


def measure_webhook(users: int) -> dict[str, float]:
    from fakes.webhook_receiver import FakeWebhookReceiver

    with tempfile.TemporaryDirectory() as tmp, FakeWebhookReceiver() as receiver:
        work = Path(tmp)
        wh = make_warehouse(work / "wh.duckdb", users=users)
        set_segment(wh, "bench", user_ids(users))
        os.environ["AIRFLOW_CONN_BENCH_HOOK"] = json.dumps(
            {"password": receiver.secret, "extra": {"base_url": receiver.url}}
        )
        config = write_audiences(
            work / "a.yml",
            [{"name": "bench", "segment": "bench", "destination": "webhook", "conn_id": "bench_hook",
              "fields": ["user_id", "email", "first_name", "country"], "channel": "email"}],
        )  # fmt: skip
        started = time.perf_counter()
        sync_audiences(settings_for(wh, work / "out"), START, END, config=config, report=lambda _: None)
        seconds = time.perf_counter() - started
        return {"webhook_users": users, "webhook_seconds": seconds, "webhook_rows_per_second": users / seconds}


def describe(result: dict) -> str:
    load = ", ".join(f"{x:.2f}" for x in result["load_average"])
    text = (
        f"senders: initial sync of {result['users']:,} members to the local Meta server:"
        f" {result['full_seconds']:.1f} s,"
        f" {result['members_per_second']:,.0f} members/s (goal ≥ 20,000;"
        f" {result['members_per_cpu_second']:,.0f} members per CPU-second of the sender; CPU: sender"
        f" {result['full_cpu_seconds']:.0f} s, Meta server {result['server_cpu_seconds']:.0f} s);"
        f" after a 1% change: {result['delta_rows']:,}"
        f" rows sent {result['delta_rows_by_operation']} = {result['delta_ratio']:.3f} of the audience (goal ≤ 0.02)"
        f" in {result['delta_seconds']:.1f} s; load average at the end {load} on {os.cpu_count()} cores"
    )
    if "webhook_seconds" in result:
        text += (
            f"; webhook: {result['webhook_users']:,} members in {result['webhook_seconds']:.1f} s,"
            f" {result['webhook_rows_per_second']:,.0f} rows/s"
        )
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--webhook", action="store_true", help="also time the webhook destination")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(args.users)
    if args.webhook:
        figures.update(measure_webhook(args.users))
    if args.json:
        args.json.write_text(json.dumps(figures))
    print(describe(figures))
