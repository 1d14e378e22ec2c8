"""The loader end to end from every kind of source into every target: S3 (moto server), transaction
CSVs (CDNOW, real data), Postgres (real server), and a load killed with SIGKILL then rerun."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import boto3
import duckdb
import psycopg2
import pytest
from moto.server import ThreadedMotoServer

from loaders.load import load_landing
from loaders.postgres import PostgresWarehouse
from loaders.s3 import S3LandingZone
from tests.conftest import PROJECT, pg_params, throwaway_pg_database

INTERVAL = (datetime(2026, 10, 31), datetime(2026, 11, 1))
CDNOW = PROJECT / "tests" / "data" / "cdnow" / "CDNOW_master.txt"
RAW_TABLES = {
    "raw.events": "event_key, event_id, event_name, event_ts, identity, object_id, evt_data::varchar, source_file,"
    " source_line",
    "raw.profiles": "profile_key, identity, object_id, updated_ts, profile_data::varchar, source_file, source_line",
    "main.quarantine_events": "source_file, source_line, record_type, reason, raw_text",
    "main.load_manifest": "source_file, sha256, size_bytes, status, input_records, loaded_events, loaded_profiles,"
    " duplicates, quarantined, late_events",
}


def snapshot(warehouse: Path) -> dict[str, list[tuple]]:
    """Every loader table without the wall-clock loaded_at, in a stable order."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute(f"select {c} from {t} order by all").fetchall() for t, c in RAW_TABLES.items()}


def test_cdnow_loads_every_purchase(tmp_path):
    landing = tmp_path / "landing"
    (landing / "transactions").mkdir(parents=True)
    shutil.copy(CDNOW, landing / "transactions" / CDNOW.name)
    warehouse = tmp_path / "w.duckdb"
    result = load_landing(str(landing), warehouse, (datetime(1998, 6, 30), datetime(1998, 7, 1)))
    assert [(f.status, f.input_records, f.loaded_events, f.quarantined) for f in result.files] == [
        ("loaded", 69_659, 69_659, 0)
    ]
    expected_cents = sum(
        round(float(line.split()[3]) * 100) for line in CDNOW.read_text().splitlines()[1:] if line.strip()
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        customers, cents = con.execute(
            "select count(distinct identity), sum(round(cast(evt_data ->> 'Amount' as decimal(18, 2)) * 100))"
            " from raw.events where event_name = 'Charged'"
        ).fetchone()
    assert (customers, cents) == (23_570, expected_cents)


def test_a_transaction_file_no_mapping_covers_is_reported_and_the_rest_loads(tmp_path):
    landing = tmp_path / "landing"
    (landing / "transactions").mkdir(parents=True)
    (landing / "transactions" / "pos_export.csv").write_text("who,when,what\n1,2,3\n")
    (landing / "events.jsonl").write_text('{"type":"event","evtName":"A","ts":1761955200,"identity":"u1"}\n')
    result = load_landing(str(landing), tmp_path / "w.duckdb", INTERVAL)
    assert [(f.source_file, f.status) for f in result.files] == [
        ("events.jsonl", "loaded"), ("transactions/pos_export.csv", "failed")]  # fmt: skip
    assert "no transaction mapping matches transactions/pos_export.csv" in result.failed_files[0].error


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_s3_landing_zone_loads_like_the_folder(s3_endpoint, small_landing, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
    client.create_bucket(Bucket="rekindle-load-sources")
    for path in sorted(small_landing.rglob("*")):
        if path.is_file():
            client.upload_file(
                str(path), "rekindle-load-sources", f"acme/prod/{path.relative_to(small_landing).as_posix()}"
            )
    from_s3, from_folder = tmp_path / "s3.duckdb", tmp_path / "folder.duckdb"
    load_landing(S3LandingZone.from_url("s3://rekindle-load-sources/acme/prod", client=client), from_s3, INTERVAL)
    load_landing(str(small_landing), from_folder, INTERVAL)
    assert snapshot(from_s3) == snapshot(from_folder)
    assert len(snapshot(from_s3)["raw.events"]) > 1000


@pytest.fixture
def pg_dsn():
    with throwaway_pg_database("rekindle_load") as name:
        yield psycopg2.extensions.make_dsn(**pg_params(name))


def test_postgres_target_gets_the_same_counts_as_duckdb(pg_dsn, small_landing, tmp_path):
    duck = load_landing(str(small_landing), tmp_path / "w.duckdb", INTERVAL)
    warehouse = PostgresWarehouse(pg_dsn)
    try:
        pg = load_landing(str(small_landing), warehouse, INTERVAL)
        again = load_landing(str(small_landing), warehouse, INTERVAL)
    finally:
        warehouse.close()
    columns = ("status", "input_records", "loaded_events", "loaded_profiles", "duplicates", "quarantined")
    assert [[getattr(f, c) for c in columns] for f in pg.files] == [
        [getattr(f, c) for c in columns] for f in duck.files
    ]
    assert {f.status for f in again.files} == {"skipped"}
    with psycopg2.connect(pg_dsn) as con, con.cursor() as cursor:
        cursor.execute("select count(*) from rekindle_raw.events")
        assert cursor.fetchone()[0] == duck.total("loaded_events")


def test_a_load_killed_mid_file_and_rerun_equals_one_clean_load(small_landing, tmp_path):
    """SIGKILL the loader while it works, at several moments; the rerun always ends like a clean load."""
    clean = tmp_path / "clean.duckdb"
    load_landing(str(small_landing), clean, INTERVAL)
    expected = snapshot(clean)
    script = (
        "import sys; from datetime import datetime as d; from pathlib import Path;"
        "from loaders.load import load_landing;"
        "load_landing(sys.argv[1], Path(sys.argv[2]), (d(2026, 10, 31), d(2026, 11, 1)))"
    )
    files = len(expected["main.load_manifest"])
    partial = []
    for attempt in range(3):
        warehouse = tmp_path / f"killed{attempt}.duckdb"
        child = subprocess.Popen([sys.executable, "-c", script, str(small_landing), str(warehouse)], cwd=PROJECT)
        # kill once the first files have committed, so the kill lands in the middle of the run
        deadline = time.monotonic() + 60
        while committed_files(warehouse) < 1 + 3 * attempt and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        partial.append(committed_files(warehouse))
        load_landing(str(small_landing), warehouse, INTERVAL)
        assert snapshot(warehouse) == expected, f"killed after {partial[-1]} files"
    assert any(0 < n < files for n in partial), partial  # the kills really interrupted a load


def committed_files(warehouse: Path) -> int:
    """Files committed so far, read from a copy: the loader holds the DuckDB file's write lock."""
    if not warehouse.exists():
        return 0
    copy = warehouse.with_suffix(".peek")
    try:
        shutil.copy(warehouse, copy)
        if warehouse.with_suffix(".duckdb.wal").exists():
            shutil.copy(warehouse.with_suffix(".duckdb.wal"), copy.with_suffix(".peek.wal"))
        with duckdb.connect(str(copy), read_only=True) as con:
            return con.execute("select count(*) from main.load_manifest").fetchone()[0]
    except (duckdb.Error, OSError):
        return 0
    finally:
        copy.unlink(missing_ok=True)
        copy.with_suffix(".peek.wal").unlink(missing_ok=True)
